"""The sources by name (``TWEET_ASSETS_SOURCE``): a new source is a module with a
:class:`~tweet_assets.sources.base.PostSource` subclass that has ``from_env``, named here.

Classes are imported when chosen, so a code location using ``sample`` never imports tweepy.
"""

from __future__ import annotations

import importlib

from tweet_assets.sources.base import ConfigurationError, PostSource

#: name → ``module:Class``.
REGISTRY: dict[str, str] = {
    "sample": "tweet_assets.sources.sample:SampleSource",
    "replay": "tweet_assets.sources.replay:ReplaySource",
    "x_api": "tweet_assets.sources.x_api:XApiSource",
    "stream": "tweet_assets.sources.stream:StreamSource",
}
SOURCES: tuple[str, ...] = tuple(REGISTRY)


def source_class(name: str) -> type[PostSource]:
    """The source class registered as ``name``.

    Raises:
        ConfigurationError: no source has that name.
    """
    target = REGISTRY.get(name)
    if target is None:
        raise ConfigurationError(f"TWEET_ASSETS_SOURCE={name!r} is not a source: use one of {', '.join(SOURCES)}.")
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)
