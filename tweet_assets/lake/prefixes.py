"""A collection's folder of the lake as a lake of its own: ``<lake>/<name>/`` holds the same
``raw_tweets/``, ``clean_tweets/``, ``tweets/`` (and ``raw_stream/``) tables as the lake's root,
so the code that works on one collection's tables (compliance removal, the stream source) runs
unchanged on any collection's."""

from __future__ import annotations

import os

from tweet_assets.lake.store import Lake, LakeError, LocalLake, S3Lake


def sub_lake(lake: Lake, prefix: str) -> Lake:
    """The lake at ``<lake>/<prefix>/`` (same client and endpoint); ``lake`` itself for ``""``.

    Raises:
        LakeError: ``prefix`` is not a relative ``/``-separated path, or ``lake`` is of an unknown kind.
    """
    prefix = prefix.strip("/")
    if not prefix:
        return lake
    if any(part in ("", ".", "..") for part in prefix.split("/")):
        raise LakeError(f"lake prefix {prefix!r}: use a relative path of names, e.g. brand_mentions")
    if isinstance(lake, S3Lake):
        return S3Lake(f"{lake.url}/{prefix}", lake.client, lake.endpoint)
    if isinstance(lake, LocalLake):
        # the same lock folder as the parent: one file, one lock, whichever view writes it
        return LocalLake(os.path.join(lake.root, *prefix.split("/")), lock_root=lake.lock_root)
    raise LakeError(f"cannot open {prefix!r} inside a {type(lake).__name__}")
