"""``tweet-assets stream``: settings from the environment, rules sync, recovery, the consumer loop.

==========================================  ======================================================
``X_BEARER_TOKEN``                          the app's bearer token (required; app-only auth)
``TWEET_ASSETS_LAKE_URL``                   ``s3://bucket/prefix`` or a local directory (``lake``)
``TWEET_ASSETS_STREAM_RULES``               JSON ``[{"value", "tag"}]``, ``@/path/rules.json`` or
                                            ``value<TAB>tag`` lines; unset: the rules are left as
                                            they are (listed in the log)
``TWEET_ASSETS_STREAM_RULE_PREFIX``         tag prefix of the rules this app owns (``tweet_assets:``)
``TWEET_ASSETS_STREAM_PRUNE_FOREIGN``       ``1``: also delete rules of other prefixes
``TWEET_ASSETS_STREAM_PRUNE_TO_EMPTY``      ``1``: a rule set parsing to zero rules deletes the
                                            owned ones (otherwise refused, nothing deleted)
``TWEET_ASSETS_STREAM_SPOOL_DIR``           local spool directory (``stream_spool``); must survive
                                            restarts (not tmpfs)
``TWEET_ASSETS_STREAM_SEGMENT_SECONDS``     roll a segment after this many seconds (300)
``TWEET_ASSETS_STREAM_SEGMENT_MB``          ... or this many MB uncompressed (16)
``TWEET_ASSETS_STREAM_FSYNC``               ``1`` (default) fsync every message; ``0`` flush only
``TWEET_ASSETS_STREAM_STALL_S``             stall timeout (90; tests shrink it)
``X_API_BASE_URL``                          the API host (tests point it at a loopback server)
``AWS_REGION``, ``AWS_ENDPOINT_URL``, ...   the standard AWS settings (boto3)
==========================================  ======================================================

SIGTERM and SIGINT stop the loop after the current line; open spools are then published.
"""

from __future__ import annotations

import logging
import os
import signal

import orjson

from tweet_assets import config
from tweet_assets.lake.store import open_lake
from tweet_assets.x import session as http
from tweet_assets.x.session import API_HOST
from tweet_assets.stream.consumer import StreamConsumer
from tweet_assets.stream.reconnect import FatalStreamError
from tweet_assets.stream.collections import CollectionRouter, collection_rules
from tweet_assets.stream.rules import TAG_PREFIX, list_rules, load_rules, sync_rules
from tweet_assets.stream.segments import PREFIX, SegmentWriter

RULES_KEY = "_consumer/rules.json"
RULES_PATH = "GET/POST /2/tweets/search/stream/rules"
log = logging.getLogger("tweet_assets.stream")


def lake_from_env(env):
    """The :class:`~tweet_assets.lake.store.Lake` of ``TWEET_ASSETS_LAKE_URL`` (boto3 for ``s3://``)."""
    url = env.get("TWEET_ASSETS_LAKE_URL", "").strip() or "lake"
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None

    def client():
        import boto3

        return boto3.client("s3", endpoint_url=endpoint, region_name=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None)

    return open_lake(url, client, endpoint)


def rules_client(token: str, base_url: str = API_HOST):
    """A ``tweepy.StreamingClient`` for the rules endpoints (``return_type=dict``), its session
    pointed at ``base_url`` with twarc's timeouts (:func:`tweet_assets.x.session.rules_client`)."""
    return http.rules_client(token, base_url)


def run(env=None, collections: dict[str, list[tuple[str, str | None]]] | None = None) -> int:
    """Run the consumer until SIGTERM/SIGINT; returns the exit status (0 after a stop).

    Raises:
        FatalStreamError (also for a refused or unreachable rules endpoint), RulesError,
            ValueError: configuration or access problems (the message says what to set);
        tweet_assets.lake.store.LakeError: the lake refused the rules record.
    """
    env = os.environ if env is None else env
    token = env.get("X_BEARER_TOKEN", "").strip()
    if not token:
        raise ValueError("tweet-assets stream needs X_BEARER_TOKEN (the app's bearer token: the filtered stream is app-only)")
    base_url = env.get("X_API_BASE_URL", "").strip() or API_HOST
    lake = lake_from_env(env)
    prefix = env.get("TWEET_ASSETS_STREAM_RULE_PREFIX", "").strip() or TAG_PREFIX
    writer = SegmentWriter(
        lake,
        env.get("TWEET_ASSETS_STREAM_SPOOL_DIR", "").strip() or "stream_spool",
        max_age_s=config.number("TWEET_ASSETS_STREAM_SEGMENT_SECONDS", env),
        max_bytes=int(config.number("TWEET_ASSETS_STREAM_SEGMENT_MB", env) * (1 << 20)),
        fsync=env.get("TWEET_ASSETS_STREAM_FSYNC", "1").strip() not in ("0", "false", "no"),
    )
    if collections:  # the stream collections' rules on this one connection (tweet_assets.stream.collections)
        writer = CollectionRouter(writer, {
            name: SegmentWriter(lake, os.path.join(writer.spool_dir, name), prefix=f"{name}/{PREFIX}", max_age_s=writer.max_age_s, max_bytes=writer.max_bytes, fsync=writer.fsync)
            for name in collections
        }, prefix)
    recovered = writer.recover()  # what a crash left goes first
    log.info("lake %s; %d segment(s) recovered from %s", lake.url, len(recovered), writer.spool_dir)
    client = rules_client(token, base_url)
    configured = env.get("TWEET_ASSETS_STREAM_RULES", "").strip()
    desired = load_rules(configured, prefix) if configured else None  # a bad file fails before any request
    if collections:
        desired = (desired or []) + collection_rules(collections, prefix)
    try:
        if desired is not None:
            active = sync_rules(
                client, desired, log, prefix, env.get("TWEET_ASSETS_STREAM_PRUNE_FOREIGN", "") in ("1", "true", "yes"),
                prune_to_empty=env.get("TWEET_ASSETS_STREAM_PRUNE_TO_EMPTY", "") in ("1", "true", "yes"),
            )
        else:
            active = list_rules(client)
            for r in active:
                log.info("active rule (not managed: TWEET_ASSETS_STREAM_RULES unset): id %s tag %r value %r", r.get("id"), r.get("tag"), r.get("value"))
    except http.REQUEST_ERRORS as exc:
        raise FatalStreamError(
            f"{RULES_PATH}: {' '.join(str(exc).split())[:300]}. Check X_BEARER_TOKEN and that your access tier includes "
            "the filtered stream (Pro or higher; check your developer portal)."
        ) from None
    lake.put_bytes(f"{PREFIX}/{RULES_KEY}", orjson.dumps({"rules": active, "tag_prefix": prefix, "managed": bool(configured or collections)}))
    consumer = StreamConsumer(token, writer, base_url=base_url, stall_timeout_s=config.number("TWEET_ASSETS_STREAM_STALL_S", env))
    previous = {sig: signal.signal(sig, lambda *_: consumer.stop()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        consumer.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("stopped: %s", consumer.health())
    return 0
