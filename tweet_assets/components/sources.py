"""A collection's source resource from its YAML attributes (``search``, ``timelines``, ``stream``,
``replay``, ``sample``): the same source classes the environment's collection uses
(tweet_assets.settings), secrets still read as ``EnvVar`` from the environment."""

from __future__ import annotations

import os

from tweet_assets.settings import lake_from_env
from tweet_assets.sources import ReplaySource, SampleSource
from tweet_assets.sources.base import PostSource

SOURCE_ATTRIBUTES = ("search", "timelines", "stream", "replay", "sample")


def x_api_source(env, *, query: str = "", accounts: list[str] | None = None, full_archive: bool = False, context_annotations: bool = True,
                 max_posts_per_run: int | None = None, collection: str | None = None):
    """An ``XApiSource`` for a search ``query`` or the timelines of ``accounts``; credentials,
    timeouts and counts from the environment (``XApiSource.from_env``: ``X_BEARER_TOKEN`` … as
    ``EnvVar``), the API host from ``X_API_BASE_URL`` when set (as the stream consumer reads it);
    ``max_posts_per_run`` (the ``collection``'s) in place of ``TWEET_ASSETS_MAX_POSTS_PER_RUN``.

    Raises:
        ValueError: no credential variable is set (the message names them).
    """
    from tweet_assets.sources.x_api import XApiSource

    overlay = {
        **env,
        "X_QUERY": query,
        "X_ACCOUNTS": ",".join(accounts or []),
        "X_FULL_ARCHIVE": "1" if full_archive else "0",
        "X_CONTEXT_ANNOTATIONS": "1" if context_annotations else "0",
    }
    source = XApiSource.from_env(overlay)
    base_url = env.get("X_API_BASE_URL", "").strip()
    limit = {"max_posts_per_run": max_posts_per_run, "max_posts_setting": f"max_posts_per_run of collection {collection}"} if max_posts_per_run is not None else {}
    if base_url or limit:
        fields = {name: getattr(source, name) for name in type(source).model_fields}
        source = XApiSource(**{**fields, **({"base_url": base_url} if base_url else {}), **limit})
    return source


def source_resource(collection, env=None) -> PostSource:
    """The ``source__<name>`` resource of ``collection`` (a :class:`TweetCollection`)."""
    env = os.environ if env is None else env
    if collection.search is not None:
        s = collection.search
        return x_api_source(env, query=s.query, full_archive=s.full_archive, context_annotations=s.context_annotations,
                            max_posts_per_run=collection.max_posts_per_run, collection=collection.name)
    if collection.timelines is not None:
        return x_api_source(env, accounts=[a.strip().lstrip("@") for a in collection.timelines.accounts],
                            max_posts_per_run=collection.max_posts_per_run, collection=collection.name)
    if collection.stream is not None:
        from tweet_assets.sources.stream import PREFIX, StreamSource

        return StreamSource(location=lake_from_env(env), prefix=f"{collection.name}/{PREFIX}")
    if collection.replay is not None:
        return ReplaySource(path=collection.replay.path)
    return SampleSource(posts_per_day=collection.sample.posts_per_day)
