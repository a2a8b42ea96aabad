"""Test helpers: materialize with test resources, and an independent reading of recorded pages."""

from __future__ import annotations

import re

import json
from collections import defaultdict
from pathlib import Path

from dagster import materialize
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from tweet_assets.defs.pipeline import assets
from tweet_assets.defs.pipeline import checks
from tweet_assets.settings import lake_from_env
from tweet_assets.lake.io_manager import LakeIOManager

ALL = [assets.raw_tweets, assets.clean_tweets, assets.s3_parquet, checks.ids_unique_and_not_null, checks.created_at_in_partition, checks.published_schema_matches]

#: twarc2 files of post pages (the others are users, lists, counts, compliance rows or flattened).
NOT_POST_PAGES = {"counts.jsonl", "lists.jsonl", "users.jsonl", "flat.jsonl", "tweets_compliance.jsonl", "users_compliance.jsonl"}


def post_page_files(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("twarc-*/*.jsonl") if p.name not in NOT_POST_PAGES)


def resources(lake_url: str, source, env: dict | None = None) -> dict:
    """Test resources: the given source and lake URL (S3 settings from the environment)."""
    import os

    lake = lake_from_env({**os.environ, **(env or {}), "TWEET_ASSETS_LAKE_URL": lake_url})
    return {"source": source, "lake": lake, "io_manager": LakeIOManager(location=lake)}


def run(res: dict, start: str, end: str | None = None, instance=None, selection=None, raise_on_error=True):
    """Materialize the three assets and their checks for ``start`` or the range ``start…end``."""
    kwargs = {}
    if end is None:
        kwargs["partition_key"] = start
    else:
        kwargs["tags"] = {ASSET_PARTITION_RANGE_START_TAG: start, ASSET_PARTITION_RANGE_END_TAG: end}
    return materialize(ALL, resources=res, instance=instance, selection=selection, raise_on_error=raise_on_error, **kwargs)


def expected_posts(files: list[Path]) -> dict[str, dict[str, dict]]:
    """``{day: {id: post}}`` read with the json module alone: the last copy of an id wins (files
    sorted, lines in order), each post with ``_users``/``_tweets`` maps of its page's includes.
    Unparseable lines and posts without created_at are skipped (they are quarantined).
    """
    days: dict[str, dict[str, dict]] = defaultdict(dict)
    for path in files:
        for line in path.read_bytes().splitlines():
            try:
                page = json.loads(line)
            except ValueError:
                continue
            data = page.get("data")
            posts = [data] if isinstance(data, dict) else (data or [])
            inc = page.get("includes", {})
            users = {u["id"]: u for u in inc.get("users", [])}
            tweets = {t["id"]: t for t in inc.get("tweets", [])}
            for post in posts:
                if "created_at" not in post or "text" not in post:
                    continue
                days[post["created_at"][:10]].pop(post["id"], None)
                days[post["created_at"][:10]][post["id"]] = dict(post, _users=users, _tweets=tweets)
    # an edited post's older versions give way to its newest version present that day
    for posts in days.values():
        older = set()
        for post in posts.values():
            history = post.get("edit_history_tweet_ids") or []
            if len(history) > 1 and history[-1] == post["id"]:
                older.update(history[:-1])
        for old in older:
            posts.pop(old, None)
    return dict(days)


def unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def expected_text(post: dict) -> str:
    """twarc-csv's rule: a retweet shows the retweeted post's text; long posts note_tweet.text."""
    for ref in post.get("referenced_tweets") or []:
        if ref["type"] == "retweeted" and ref["id"] in post["_tweets"]:
            post = post["_tweets"][ref["id"]]
            break
    return unescape((post.get("note_tweet") or {}).get("text") or post["text"])


#: The lake's own bookkeeping beside the data objects (tweet_assets.lake.leases: a day's lease;
#: tweet_assets.lake.lineage: which run wrote each zone; the local lake's lock files): left out
#: where a test compares the data objects, and asserted on where a test is about them. The X API
#: cap ledger (tweet_assets.sources.cap_ledger) too.
BOOKKEEPING = re.compile(r"(^|/)(_leases|_lineage|_x_api_cap|\.tweet_assets-locks)/")


def is_bookkeeping(key: str) -> bool:
    """True for a lease, lineage or lock object's key or relative path."""
    return bool(BOOKKEEPING.search(str(key)))
