"""flatten's stages called one by one (eager frames), on the recorded twarc2 pages, against the
pages as the test reads them itself (orjson)."""

from __future__ import annotations

import html
from datetime import datetime, timedelta

import orjson
import polars as pl
import pytest

from tweet_assets.transform import flatten
from tweet_assets.transform.pages import decode_pages

RECORDING = "twarc-network-test-data/tweets.jsonl"


@pytest.fixture(scope="module")
def pages(x_api_v2):
    lines = [line for line in (x_api_v2 / RECORDING).read_bytes().splitlines() if line.strip()][:3]
    return lines, decode_pages(lines, [f"tweets.jsonl:{i + 1}" for i in range(len(lines))])


def _kept(batch):
    rows, set_aside = flatten.quarantine(flatten.posts(batch.table))
    assert set_aside.height == 0
    return rows


def test_posts_locate_every_post_in_its_page(pages):
    lines, batch = pages
    rows = flatten.posts(batch.table)
    expected = [(page, pos, post["id"]) for page, line in enumerate(lines) for pos, post in enumerate(orjson.loads(line)["data"])]
    assert rows.select("_page", "_pos", "id").rows() == expected
    assert rows.get_column("_row").to_list() == list(range(len(expected)))


def test_quarantine_sets_aside_posts_without_a_usable_id_or_time(pages):
    lines, _ = pages
    page = orjson.loads(lines[0])
    page["data"][1]["id"] = "not-a-number"
    del page["data"][2]["created_at"]
    batch = decode_pages([orjson.dumps(page)], ["p:1"])
    start = datetime.fromisoformat(page["data"][0]["created_at"].replace("Z", "+00:00")).replace(hour=0, minute=0, second=0, microsecond=0)
    window = (start, start + timedelta(days=1))
    kept, set_aside = flatten.quarantine(flatten.posts(batch.table), window)
    assert dict(zip(set_aside.get_column("_pos"), set_aside.get_column("_reason"))) == {1: "invalid_id", 2: "missing_created_at"}
    assert kept.height == len(page["data"]) - 2 and "_reason" not in kept.columns
    records = flatten.quarantine_records(set_aside, batch.locations)
    assert [(q.location, q.reason) for q in records] == [("p:1#1", "invalid_id"), ("p:1#2", "missing_created_at")]


def test_referenced_posts_give_a_retweet_the_retweeted_posts_text(pages):
    lines, batch = pages
    frame = flatten.referenced_posts(flatten.own_fields(_kept(batch)), batch.table)
    texts = frame.select("id", "text", "is_retweet").rows()
    seen_retweet = False
    for (row_id, text, is_retweet), (page, post) in zip(texts, ((orjson.loads(line), p) for line in lines for p in orjson.loads(line)["data"])):
        assert row_id == int(post["id"])
        refs = {r["type"]: r["id"] for r in post.get("referenced_tweets", [])}
        included = {t["id"]: t for t in page["includes"].get("tweets", [])}
        assert is_retweet == ("retweeted" in refs)
        source = included.get(refs.get("retweeted"), post)
        own = (source.get("note_tweet") or {}).get("text") or source["text"]
        assert text == html.unescape(own) or text == own.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
        seen_retweet |= "retweeted" in refs and refs["retweeted"] in included
    assert seen_retweet, "the recording has retweets whose original is included"
    assert "_referenced_tweets" not in frame.columns


def test_users_join_the_author_of_the_posts_own_page(pages):
    lines, batch = pages
    frame = flatten.users(flatten.referenced_posts(flatten.own_fields(_kept(batch)), batch.table), batch.table)
    expected = []
    for line in lines:
        page = orjson.loads(line)
        by_id = {u["id"]: u for u in page["includes"]["users"]}
        expected += [(int(p["id"]), by_id[p["author_id"]]["username"], by_id[p["author_id"]]["public_metrics"]["followers_count"]) for p in page["data"]]
    assert frame.select("id", "author_username", "author_followers_count").rows() == expected


def test_stages_give_the_same_rows_eager_and_lazy(pages):
    _, batch = pages
    table = batch.table
    eager = flatten.ids(flatten.retrieval(flatten.attachments(flatten.users(flatten.referenced_posts(flatten.own_fields(_kept(batch)), table), table), table), table))
    lazy = flatten.ids(flatten.retrieval(flatten.attachments(flatten.users(flatten.referenced_posts(flatten.own_fields(_kept(batch).lazy()), table), table), table), table)).collect()
    assert eager.equals(lazy)
    assert flatten.conform(eager).equals(flatten.flatten_batch(batch).frame)
    assert isinstance(eager, pl.DataFrame)
