"""``tweet-assets stream``: the filtered-stream consumer (:mod:`tweet_assets.stream.service`, its
variables) until stopped; a configuration or access problem is one clear line."""

from __future__ import annotations

import argparse
import sys

NAME = "stream"
ENV = ["X_BEARER_TOKEN (app-only)", "TWEET_ASSETS_LAKE_URL", "TWEET_ASSETS_STREAM_RULES (JSON [{value, tag}] or @file)", "TWEET_ASSETS_STREAM_RULE_PREFIX, _PRUNE_FOREIGN, _SPOOL_DIR,",
       "  _SEGMENT_SECONDS, _SEGMENT_MB, _FSYNC, _STALL_S (tweet_assets/stream/service.py)"]


def add_parser(sub, formatter, epilog) -> argparse.ArgumentParser:
    stream = sub.add_parser(NAME, help="land the X API v2 filtered stream in the lake until stopped",
                            description="Run the filtered-stream consumer: sync the rules, land posts as 5-minute gzip JSON-lines segments under raw_stream/, reconnect with backoff, until stopped (SIGTERM/Ctrl-C). See docs/stream.md.",
                            epilog=epilog(ENV), formatter_class=formatter)
    stream.add_argument("--collection", metavar="NAME", help="act on this collection (default: the environment's, tweets)")
    return stream


def stream_collections(only: str | None = None) -> dict:
    """``{collection: [(value, tag)]}`` of the stream collections (tweet_assets/defs/*/defs.yaml), or of ``only``."""
    from tweet_assets.components.lookup import collection_yamls, find_collection

    found = {}
    for name in [only] if only else collection_yamls():
        collection = find_collection(name)
        if collection.stream is not None:
            found[name] = [(r.value, r.tag) for r in collection.stream.rules]
    if only and not found:
        raise ValueError(f"collection {only!r} has no stream rules: --collection names a collection with a stream: source")
    return found


def run(args, command: argparse.ArgumentParser) -> int:
    import logging

    from tweet_assets.lake.store import LakeError
    from tweet_assets.stream.reconnect import FatalStreamError
    from tweet_assets.stream.service import run as consume

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return consume(collections=stream_collections(args.collection))
    except (FatalStreamError, LakeError, ValueError, LookupError) as exc:  # RulesError is a ValueError
        print(f"tweet-assets stream: {exc}", file=sys.stderr)
        return 2
