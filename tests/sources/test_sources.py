"""Sources: replay's window rule on real archives, sample's determinism and shape."""

from __future__ import annotations

import json
import logging

import orjson

from tweet_assets.transform.flatten import flatten_day
from tweet_assets.partitions import day_window
from tweet_assets.sources import ReplaySource, SampleSource

LOG = logging.getLogger("test")


def _window(a, b):
    return day_window(a)[0], day_window(b)[0]


def test_replay_yields_the_days_posts_only(x_api_v2):
    path = x_api_v2 / "twarc-edits-test-data" / "tweets.jsonl"  # 199 posts over 37 days
    pages = [json.loads(line) for line in path.read_bytes().splitlines()]
    per_day = {}
    for page in pages:
        for post in page["data"]:
            per_day.setdefault(post["created_at"][:10], set()).add(post["id"])
    day = max(per_day, key=lambda d: len(per_day[d]))
    got = list(ReplaySource(path=str(path)).pages(*day_window(day), LOG))
    assert {p.day for p in got} == {day}
    ids = {post["id"] for p in got for post in orjson.loads(p.body)["data"]}
    assert ids == per_day[day]
    assert sum(p.posts for p in got) == len(per_day[day])
    originals = {json.dumps(page["__twarc"], sort_keys=True) for page in pages}
    for p in got:  # includes, meta and twarc's own key (retrieval provenance) travel with the split pages
        body = orjson.loads(p.body)
        assert "includes" in body and "meta" in body
        assert json.dumps(body["__twarc"], sort_keys=True) in originals


def test_replay_window_start_inclusive_end_exclusive(tmp_path):
    posts = [
        {"id": "1", "text": "a", "created_at": "2024-01-01T00:00:00.000Z"},
        {"id": "2", "text": "b", "created_at": "2024-01-01T23:59:59.999Z"},
        {"id": "3", "text": "c", "created_at": "2024-01-02T00:00:00.000Z"},
        {"id": "4", "text": "d", "created_at": "2023-12-31T23:59:59.999Z"},
    ]
    archive = tmp_path / "a.jsonl"
    archive.write_bytes(orjson.dumps({"data": posts, "includes": {}, "meta": {"result_count": 4}, "__twarc": {"url": "x"}}) + b"\n")
    got = list(ReplaySource(path=str(archive)).pages(*day_window("2024-01-01"), LOG))
    assert [[p["id"] for p in orjson.loads(page.body)["data"]] for page in got] == [["1", "2"]]
    two_days = list(ReplaySource(path=str(tmp_path)).pages(*_window("2023-12-31", "2024-01-02"), LOG))
    assert sorted(p.day for p in two_days) == ["2023-12-31", "2024-01-01"]


def test_replay_skips_other_endpoints_and_says_so(x_api_v2, caplog):
    folder = x_api_v2 / "twarc-csv-test-data"
    with caplog.at_level(logging.WARNING):
        got = list(ReplaySource(path=str(folder / "users.jsonl")).pages(*_window("2006-03-21", "2030-01-01"), LOG))
    assert got == []
    assert "users.jsonl: skipped pages of other endpoints" in caplog.text


def test_replay_missing_path_says_what_to_set(tmp_path):
    try:
        list(ReplaySource(path=str(tmp_path / "nope")).pages(*day_window("2024-01-01"), LOG))
    except FileNotFoundError as exc:
        assert "TWEET_ASSETS_REPLAY_DIR" in str(exc)
    else:
        raise AssertionError("no error")


def test_sample_is_deterministic_and_api_shaped():
    source = SampleSource(posts_per_day=250, page_size=100)
    a = [p.body for p in source.pages(*day_window("2024-02-29"), LOG)]
    b = [p.body for p in source.pages(*day_window("2024-02-29"), LOG)]
    c = [p.body for p in SampleSource(posts_per_day=250, seed=8).pages(*day_window("2024-02-29"), LOG)]
    assert a == b and a != c and len(a) == 3
    pages = [orjson.loads(x) for x in a]
    assert [len(p["data"]) for p in pages] == [100, 100, 50]
    assert "next_token" in pages[0]["meta"] and "next_token" not in pages[-1]["meta"]
    out = flatten_day(((f"s:{i}", x) for i, x in enumerate(a)), day_window("2024-02-29"))
    frame = out.frame
    assert frame.height == 250 and not out.quarantined
    assert frame["author_username"].null_count() == 0
    assert frame["is_retweet"].sum() > 20 and frame["retweeted_username"].null_count() < 250
    assert frame["in_reply_to_username"].drop_nulls().len() > 10
    assert frame["text"].str.contains("[^\\x00-\\x7f]").sum() > 100  # non-ASCII text


def test_sample_volume_is_configurable_and_old_days_work():
    source = SampleSource(posts_per_day=1000, page_size=500)
    pages = list(source.pages(*day_window("2007-06-01"), LOG))
    assert sum(p.posts for p in pages) == 1000 and len(pages) == 2
    frame = flatten_day((p.location, p.body) for p in pages).frame
    assert frame["id"].n_unique() == 1000


def test_sample_timestamps_and_embedded_users_are_what_the_api_sends():
    from datetime import datetime, timezone

    from tweet_assets.sources.sample import _iso

    for ms in (0, 999, 86_399_999, 1_709_164_800_000, 1_709_251_199_999, 1_288_834_974_657, 946_684_800_123):
        expected = datetime.fromtimestamp(ms // 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}Z"
        assert _iso(ms) == expected
    page = orjson.loads(next(SampleSource(posts_per_day=100).pages(*day_window("2024-02-29"), LOG)).body)
    users = {u["id"]: u for u in page["includes"]["users"]}
    assert len(users) == len(page["includes"]["users"])  # each user once per page
    assert {p["author_id"] for p in page["data"]} <= set(users)
    assert all({"username", "name", "public_metrics", "entities"} <= set(u) for u in users.values())
    assert all(p["created_at"].startswith("2024-02-29T") for p in page["data"])
