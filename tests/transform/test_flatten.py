"""flatten: pages → rows, on the recorded pages, with twarc's own flattened output as an oracle."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timezone

import orjson
import polars as pl
import pytest

from tests.helpers import post_page_files, unescape
from tweet_assets.transform.flatten import finalize_day, flatten_batch, flatten_day
from tweet_assets.transform.pages import decode_pages
from tweet_assets.partitions import day_window
from tweet_assets.schema import COLUMN_NAMES, PUBLISHED_SCHEMA


def _flatten_file(path, window=None):
    lines = [line for line in path.read_bytes().splitlines() if line.strip()]
    return flatten_day(((f"{path.name}:{i + 1}", line) for i, line in enumerate(lines)), window)


def test_every_recorded_file_rows_plus_quarantined_equals_posts(x_api_v2):
    for path in post_page_files(x_api_v2):
        out = _flatten_file(path)
        posts = 0
        for line in path.read_bytes().splitlines():
            try:
                data = json.loads(line).get("data")
            except ValueError:
                continue
            posts += 1 if isinstance(data, dict) else len(data or [])
        quarantined_posts = sum(1 for q in out.quarantined if "#" in q.location)
        assert out.stats["posts"] == posts, path.name
        assert out.frame.height + quarantined_posts + out.stats["duplicates"] + out.stats["superseded_edits"] == posts, path.name
        assert out.frame.columns == list(COLUMN_NAMES)
        assert out.frame.to_arrow().cast(PUBLISHED_SCHEMA).schema.equals(PUBLISHED_SCHEMA)


def test_joins_match_twarcs_own_flattened_file(x_api_v2):
    """flat.jsonl is twarc's ensure_flattened output for the same 100 posts as noflat.jsonl."""
    folder = x_api_v2 / "twarc-csv-test-data"
    frame = _flatten_file(folder / "noflat.jsonl").frame
    rows = {r["id"]: r for r in frame.to_dicts()}
    flat = [json.loads(line) for line in (folder / "flat.jsonl").read_bytes().splitlines()]
    assert len(flat) == len(rows) == 100
    checked = Counter()
    for post in flat:
        row = rows[int(post["id"])]
        author = post["author"]
        assert row["author_username"] == author["username"]
        assert row["author_name"] == author["name"]
        assert row["author_followers_count"] == author["public_metrics"]["followers_count"]
        assert row["author_created_at"].strftime("%Y-%m-%dT%H:%M:%S") == author["created_at"][:19]
        if "in_reply_to_user" in post:
            assert row["in_reply_to_username"] == post["in_reply_to_user"]["username"]
            checked["reply"] += 1
        for ref in post.get("referenced_tweets", []):
            if "author" not in ref:
                continue  # referenced post missing from includes (deleted/protected)
            if ref["type"] == "retweeted":
                assert row["retweeted_username"] == ref["author"]["username"]
                assert row["text"] == unescape(ref["text"])
                assert row["like_count"] == ref["public_metrics"]["like_count"]
                checked["retweet"] += 1
            if ref["type"] == "quoted":
                assert row["quoted_username"] == ref["author"]["username"]
                assert row["quoted_user_id"] == int(ref["author_id"])
                checked["quote"] += 1
        media = post.get("attachments", {}).get("media", [])
        source = next((r for r in post.get("referenced_tweets", []) if r["type"] == "retweeted" and "author" in r), post)
        media = source.get("attachments", {}).get("media", media)
        if media:
            # twarc leaves {} for a media key missing from includes; we keep the key, other fields null
            keys = source["attachments"]["media_keys"]
            assert [m["media_key"] for m in row["media"]] == keys
            assert [m["type"] for m in row["media"]] == [m.get("type") for m in media]
            checked["media"] += 1
    assert checked["retweet"] > 30 and checked["reply"] > 5 and checked["quote"] > 0 and checked["media"] > 0, checked


def test_geo_poll_edits_withheld_verified_type(x_api_v2):
    folder = x_api_v2 / "twarc-csv-test-data"
    geo = _flatten_file(folder / "geo_tweets.jsonl").frame
    located = geo.filter(pl.col("place_id").is_not_null())
    assert located.height >= 1 and located["place_full_name"].null_count() == 0
    assert located["place_bbox"].list.len().to_list() == [4] * located.height
    edited = _flatten_file(folder / "edited.jsonl").frame.row(0, named=True)
    page = json.loads((folder / "edited.jsonl").read_bytes())
    assert edited["edit_history_tweet_ids"] == [int(i) for i in page["data"][0]["edit_history_tweet_ids"]]
    assert edited["edits_remaining"] == int(page["data"][0]["edit_controls"]["edits_remaining"])  # "5" in the page: coerced
    withheld = _flatten_file(folder / "withheld.jsonl").frame.filter(pl.col("withheld_country_codes").is_not_null())
    assert withheld.height > 0
    verified = _flatten_file(folder / "verified_type.jsonl").frame
    assert verified["author_verified_type"].to_list() == [json.loads((folder / "verified_type.jsonl").read_bytes())["includes"]["users"][0]["verified_type"]]
    brexit = _flatten_file(folder / "brexit.jsonl").frame
    polls = brexit.filter(pl.col("poll_id").is_not_null())
    assert polls.height == 1 and len(polls["poll_options"][0]) >= 2 and polls["poll_voting_status"][0] in ("open", "closed")


def _page(posts, **extra) -> bytes:
    return orjson.dumps({"data": posts, "includes": {"users": [{"id": "1", "username": "ana", "name": "Ana"}]}, "meta": {"result_count": len(posts)}, **extra})


def _post(i, created="2024-01-01T10:00:00.000Z", **fields):
    return {"id": str(i), "text": f"post {i}", "created_at": created, "author_id": "1", "edit_history_tweet_ids": [str(i)], **fields}


def test_quarantine_reasons_window_and_dedup():
    window = day_window("2024-01-01")
    pages = [
        _page([_post(1), _post(2, created="2024-01-02T00:00:00.000Z"), _post(3, created="2023-12-31T23:59:59.999Z")]),
        _page([_post(1), {"text": "no id", "created_at": "2024-01-01T01:00:00Z"}, _post("x9")]),
        _page([{"id": "5", "text": "no date"}, _post(6, created="yesterday")]),
        b'{"data": [',
        b"[1, 2]",
    ]
    out = flatten_day(((f"p:{i + 1}", p) for i, p in enumerate(pages)), window)
    reasons = Counter(q.reason for q in out.quarantined)
    assert reasons == {
        "outside_partition": 2,
        "missing_id": 1,
        "invalid_id": 1,
        "missing_created_at": 1,
        "invalid_created_at": 1,
        "invalid_json": 1,
        "not_an_object": 1,
    }
    assert out.frame["id"].to_list() == [1]
    assert out.stats["duplicates"] == 1
    assert {q.location for q in out.quarantined if q.reason == "outside_partition"} == {"p:1#1", "p:1#2"}
    # the window is [start, end): exactly 00:00:00.000Z of the next day is outside, 23:59:59.999 of the day before too
    start, end = window
    assert start == datetime(2024, 1, 1, tzinfo=timezone.utc)


def test_edit_newest_version_wins_and_html_unescaped():
    old = _post(10, text="a &amp; b &lt;3", edit_history_tweet_ids=["10"])
    new = _post(11, created="2024-01-01T10:05:00.000Z", text="a &amp;amp; b", edit_history_tweet_ids=["10", "11"])
    out = flatten_day([("p:1", _page([old, new]))], day_window("2024-01-01"))
    assert out.frame["id"].to_list() == [11]
    assert out.frame["text"].to_list() == ["a &amp; b"]  # unescaped once, not twice
    assert out.frame["edit_history_tweet_ids"].to_list() == [[10, 11]]
    assert out.stats["superseded_edits"] == 1


def test_missing_metrics_are_null_and_note_tweet_text_wins():
    post = _post(1, public_metrics={"like_count": 3, "retweet_count": 0, "reply_count": 0, "quote_count": 0},
                 note_tweet={"text": "long " * 100, "entities": {"hashtags": [{"start": 0, "end": 4, "tag": "long"}]}},
                 entities={"hashtags": [{"start": 0, "end": 4, "tag": "short"}]})
    row = flatten_day([("p:1", _page([post]))]).frame.row(0, named=True)
    assert row["like_count"] == 3 and row["impression_count"] is None and row["bookmark_count"] is None
    assert row["text"] == "long " * 100 and row["has_note_tweet"] is True
    assert row["hashtags"] == ["long"]


def test_wrong_json_types_are_coerced_and_counted():
    post = _post(1, public_metrics={"like_count": "7", "retweet_count": 1.0, "reply_count": "many"}, possibly_sensitive="false")
    post["id"] = 1  # a number instead of a string
    batch = decode_pages([_page([post])], ["p:1"])
    assert not batch.fast_path
    flat = flatten_batch(batch)
    row = flat.frame.row(0, named=True)
    assert row["id"] == 1 and row["like_count"] == 7 and row["retweet_count"] == 1 and row["reply_count"] is None
    assert row["possibly_sensitive"] is False
    assert flat.stats["coerced:data.id"] == 1 and flat.stats["coerced:data.public_metrics.reply_count"] == 1


@pytest.mark.parametrize("text", ["😀" * 5000, "مرحبا بالعالم", "a\u200bb\u200fc", "x" * 25000])
def test_odd_texts_survive(text):
    row = flatten_day([("p:1", _page([_post(1, text=text)]))]).frame.row(0, named=True)
    assert row["text"] == text


def test_invalid_utf8_is_replaced_not_lost():
    line = _page([_post(1, text="ok")]).replace(b"ok", b"o\xffk")
    out = flatten_day([("p:1", line)])
    assert out.frame["text"].to_list() == ["o\ufffdk"]
    assert out.stats["coerced:<invalid utf-8>"] == 1


def test_sorted_by_created_at():
    posts = [_post(i, created=f"2024-01-01T{23 - i:02d}:00:00.000Z") for i in range(5)]
    frame = finalize_day([flatten_batch(decode_pages([_page(posts)], ["p:1"]))]).frame
    assert frame["created_at"].is_sorted()
