"""Hostile pages (#27 points 8-11), built from the shared real recordings (../shared/x-api-v2): a
post orjson refuses costs only that post, a page is dated from its readable posts, every counter
counts posts (never a page as 1), and RFC 3339 offsets are converted to UTC. The expected figures
come from the json module (recursion limit raised so that it reads the deep nesting too) and from
the published ids, not from the code's own counters."""

from __future__ import annotations

import json
import logging
import sys
from collections import Counter
from datetime import datetime, timezone

import pytest

from tweet_assets.partitions import day_window
from tweet_assets.sources import ReplaySource
from tweet_assets.sources.replay_plan import plan_runs, replay_archive
from tweet_assets.transform.flatten import flatten_day, iter_days

LOG = logging.getLogger("test_hostile_pages")
NET = "twarc-network-test-data/tweets.jsonl"  # 5 pages of 100 posts, 2021-06-26
ENTITIES = "twarc-csv-test-data/entities_test.jsonl"  # 1 page of 474 posts, 2022-09-25


def _line(x_api_v2, name, index=0) -> bytes:
    return (x_api_v2 / name).read_bytes().splitlines()[index]


def _json_posts(line: bytes) -> list:
    """The page's posts as the json module reads them (deep nesting included)."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(20000)
    try:
        return json.loads(line.decode("utf-8", "replace"), strict=False)["data"]
    finally:
        sys.setrecursionlimit(limit)


def _with_text(line: bytes, index: int, raw: bytes) -> bytes:
    """``line`` with post ``index``'s text replaced by the JSON string body ``raw`` (bytes as written)."""
    page = json.loads(line)
    marker = "@@TEXT@@"
    page["data"][index]["text"] = marker
    return json.dumps(page).encode().replace(f'"{marker}"'.encode(), b'"' + raw + b'"')


def _with_field(line: bytes, index: int, raw: bytes, more: dict | None = None) -> bytes:
    """``line`` with ``raw`` (``"key": value`` bytes) added as the first field of post ``index``
    (and of the posts in ``more``: ``{index: raw}``)."""
    page = json.loads(line)
    fields = {index: raw, **(more or {})}
    for i in fields:
        page["data"][i] = {f"@@F{i}@@": 0, **page["data"][i]}
    text = json.dumps(page).encode()
    for i, value in fields.items():
        text = text.replace(f'"@@F{i}@@": 0'.encode(), value)
    return text


@pytest.mark.parametrize(
    "raw, replaced",
    [
        (b"cut emoji \\ud83d", 1),  # a lone high surrogate: valid JSON, refused by orjson
        (b"reversed \\udc00\\ud83d pair", 2),
        (b"raw \x01 control", 0),
    ],
)
def test_one_post_orjson_refuses_costs_only_that_post(x_api_v2, raw, replaced):
    original = json.loads(_line(x_api_v2, NET))
    plain = next(i for i, p in enumerate(original["data"]) if not any(r["type"] == "retweeted" for r in p.get("referenced_tweets", [])))
    line = _with_text(_line(x_api_v2, NET), plain, raw)
    posts = _json_posts(line)
    out = flatten_day([("p:1", line)], day_window("2021-06-26"))
    ids = sorted(str(i) for i in out.frame.get_column("id").to_list())
    assert ids == sorted(p["id"] for p in posts) and len(ids) == 100  # every post published, none quarantined
    assert out.quarantined == []
    text = out.frame.filter(out.frame.get_column("id") == int(posts[plain]["id"])).get_column("text").to_list()[0]
    assert ("\ufffd" in text) == bool(replaced)
    assert out.stats.get("coerced:<lone surrogate>", 0) == replaced


def test_an_unreadable_post_is_quarantined_alone_at_its_index(x_api_v2):
    line = _with_field(_line(x_api_v2, NET), 7, b'"lang": "en" "fr"')  # a syntax error inside one post
    out = flatten_day([("p:1", line)], day_window("2021-06-26"))
    assert out.height == 99
    assert [(q.location, q.reason, q.posts) for q in out.quarantined] == [("p:1#7", "unreadable_post", 1)]
    assert "JSONDecodeError" in out.quarantined[0].detail


def _archive(x_api_v2, tmp_path):
    """A 2021-06-11 page, then two 2021-06-12 pages each with bad posts (a lone surrogate; a
    2,000-deep nested unknown field and a 2,000-deep ``entities``), as one twarc2 file."""
    first = _line(x_api_v2, NET, 2).replace(b'"created_at": "2021-06-26T', b'"created_at": "2021-06-11T')
    second = _with_text(_line(x_api_v2, NET, 0), 5, b"cut \\ud83d").replace(b'"created_at": "2021-06-26T', b'"created_at": "2021-06-12T')
    third = _line(x_api_v2, ENTITIES).replace(b'"created_at": "2022-09-25T', b'"created_at": "2021-06-12T')
    # the 20th: a 2,000-deep entities, which no reader makes a row of
    third = _with_field(third, 10, b'"unknown_deep": ' + b"[" * 2000 + b"]" * 2000, {20: b'"entities": ' + b"[" * 2000 + b"]" * 2000})
    path = tmp_path / "archive.jsonl"
    path.write_bytes(first + b"\n" + second + b"\n" + third + b"\n")
    return path, [first, second, third]


def test_a_page_with_bad_posts_is_dated_planned_and_flattened_by_its_readable_posts(x_api_v2, tmp_path):
    path, lines = _archive(x_api_v2, tmp_path)
    counts = [len(_json_posts(line)) for line in lines]
    assert counts == [100, 100, 474]
    source = ReplaySource(path=str(path))

    days = source.days(LOG)
    assert days == Counter({"2021-06-11": 100, "2021-06-12": 574})  # not filed under 2021-06-11
    runs = plan_runs(days)
    assert [(r.start, r.end, r.posts) for r in runs] == [("2021-06-11", "2021-06-12", 674)]
    said = []
    replay_archive(runs, lambda planned: type("R", (), {"success": True, "run_id": "r"})(), progress=said.append)
    assert said[-1].endswith("s") and "674 of 674 posts" in said[-1]

    landed = list(source.pages(datetime(2021, 6, 12, tzinfo=timezone.utc), datetime(2021, 6, 13, tzinfo=timezone.utc), LOG))
    assert [p.body for p in landed] == lines[1:] and [p.posts for p in landed] == [100, 474]  # byte for byte
    (day, out), = iter_days((p.day, p.location, p.body) for p in landed)
    assert day == "2021-06-12"
    published = {str(i) for i in out.frame.get_column("id").to_list()}
    expected = {p["id"] for line in lines[1:] for p in _json_posts(line)}
    bad = _json_posts(lines[2])[20]["id"]
    assert published == expected - {bad}  # the deep unknown field is skipped, its post published
    assert [(q.location, q.reason) for q in out.quarantined] == [(f"{path}:3#20", "unreadable_post")]
    # the counters agree: raw posts = rows + quarantined + duplicates + superseded
    raw_posts = sum(p.posts for p in landed)
    assert raw_posts == out.stats["posts"] == out.height + len(out.quarantined) + out.stats["duplicates"] + out.stats["superseded_edits"] == 574


def test_a_page_quarantined_whole_counts_its_posts(x_api_v2, tmp_path):
    from tweet_assets.transform.pages import count_quarantined

    line = _line(x_api_v2, NET)
    cut = line[: line.index(b'"includes"') + 20]  # cut short after its 100 posts
    out = flatten_day([("p:1", cut)], day_window("2021-06-26"))
    assert [(q.reason, q.posts) for q in out.quarantined] == [("invalid_json", 100)]
    assert count_quarantined(out.quarantined) == (100, 0)
    assert "[100 post(s) in data]" in out.quarantined[0].detail
    unknown = flatten_day([("p:1", b'{"meta": {"result_count": 3')], day_window("2021-06-26"))
    assert count_quarantined(unknown.quarantined) == (0, 1) and "[posts: unknown]" in unknown.quarantined[0].detail
    path = tmp_path / "cut.jsonl"
    path.write_bytes(line + b"\n" + cut + b"\n")
    assert sum(p.posts for p in ReplaySource(path=str(path)).pages(*day_window("2021-06-26"), LOG)) == 200


def test_created_at_with_an_offset_is_converted_to_utc_other_formats_stay_quarantined(x_api_v2, tmp_path):
    page = json.loads(_line(x_api_v2, NET))
    stamps = {0: "2021-06-26T01:00:00+02:00", 1: "2021-06-26T12:00:00.250+02:00", 2: "Sat Jun 26 10:00:00 +0000 2021", 3: "1624701600"}
    for index, stamp in stamps.items():
        page["data"][index]["created_at"] = stamp
    ids = [page["data"][i]["id"] for i in range(4)]
    path = tmp_path / "offsets.jsonl"
    path.write_bytes(json.dumps(page).encode() + b"\n")
    landed = list(ReplaySource(path=str(path)).pages(*day_window("2021-06-25")[:1], day_window("2021-06-26")[1], LOG))
    by_day = dict(iter_days((p.day, p.location, p.body) for p in landed))
    assert set(by_day) == {"2021-06-25", "2021-06-26"}  # 01:00+02:00 is 23:00 UTC the day before
    early = by_day["2021-06-25"].frame
    assert early.get_column("id").to_list() == [int(ids[0])]
    assert early.get_column("created_at").to_list()[0] == datetime(2021, 6, 25, 23, 0, tzinfo=timezone.utc)
    late = by_day["2021-06-26"]
    row = late.frame.filter(late.frame.get_column("id") == int(ids[1]))
    assert row.get_column("created_at").to_list() == [datetime(2021, 6, 26, 10, 0, 0, 250000, tzinfo=timezone.utc)]
    # the undated posts go with the page's first piece (its first dated post's day)
    quarantined = by_day["2021-06-25"].quarantined + late.quarantined
    assert sorted(q.detail.split()[0] + " " + q.reason for q in quarantined) == sorted(f"id={ids[i]!r} invalid_created_at" for i in (2, 3))
    assert late.height == 97 and early.height == 1
