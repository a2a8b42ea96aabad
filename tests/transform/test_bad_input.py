"""Bad input never crashes the flattener and is never lost: property-based mutations of real
recorded pages (hypothesis) must always give rows + quarantined + deduplicated == posts read, with
every term counted by the test itself (the json module and the published ids), never taken from the
code's own counters; once on the flattener alone, once through the replay source (an archive file
replayed over a two-day window, then flattened day by day as clean_tweets does).
"""

from __future__ import annotations

import copy
import json
import logging
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tweet_assets.transform.flatten import flatten_day
from tweet_assets.partitions import day_window

WINDOW = day_window("2021-06-26")
#: Examples per property (150; `make mutation` runs fewer per mutant: TWEET_ASSETS_HYPOTHESIS_EXAMPLES).
EXAMPLES = int(os.environ.get("TWEET_ASSETS_HYPOTHESIS_EXAMPLES", "150"))


@pytest.fixture(scope="module")
def real_pages(x_api_v2):
    lines = (x_api_v2 / "twarc-network-test-data" / "tweets.jsonl").read_bytes().splitlines()
    pages = [json.loads(line) for line in lines[:2]]
    for page in pages:  # keep the pages small so each example is fast: 15 posts and their includes
        page["data"] = page["data"][:15]
    return pages


ODD_VALUES = st.sampled_from([None, 0, -1, 2**70, 1.5, "", "x", "12345", "2021-06-26T12:00:00.000Z", True, [], {}, ["a"], {"id": "1"}, "😀\u200b\u202e", "a" * 30000])
POST_KEYS = st.sampled_from(["id", "created_at", "text", "author_id", "public_metrics", "entities", "referenced_tweets", "attachments", "geo", "edit_history_tweet_ids", "edit_controls", "lang", "conversation_id", "note_tweet", "withheld"])


@st.composite
def mutation(draw):
    kind = draw(st.sampled_from(["set", "delete", "dup_post", "drop_includes", "outside", "id_number", "data_kind", "page_kind", "truncate", "bad_utf8", "extra_field", "errors_only"]))
    return kind, draw(st.integers(0, 14)), draw(POST_KEYS), draw(ODD_VALUES), draw(st.integers(1, 4000))


def apply(pages, mutations, originals: list | None = None) -> list[bytes]:
    """The mutated pages as lines; ``originals`` (if given) gets, per line, the page's serialization
    before a byte-level edit (``bad_utf8``), else None: the test's reading of a page whose bytes
    no JSON reader takes but whose posts are still there (#27 point 8)."""
    pages = copy.deepcopy(pages)
    raw_edits = {}
    for kind, index, key, value, cut in mutations:
        value = copy.deepcopy(value)  # ODD_VALUES' {} and [] are shared: a page must never hold itself
        page = pages[index % len(pages)]
        if not isinstance(page, dict):  # an earlier mutation made it a non-object
            page = {}
        posts = page.get("data") if isinstance(page.get("data"), list) else None
        post = posts[index % len(posts)] if posts else None
        if kind == "set" and isinstance(post, dict):
            post[key] = value
        elif kind == "delete" and isinstance(post, dict):
            post.pop(key, None)
        elif kind == "dup_post" and posts:
            posts.append(copy.deepcopy(posts[index % len(posts)]))
        elif kind == "drop_includes":
            page.pop("includes", None)
        elif kind == "outside" and isinstance(post, dict):
            post["created_at"] = "2021-06-27T00:00:00.000Z"
        elif kind == "id_number" and isinstance(post, dict) and str(post.get("id", "")).isdigit():
            post["id"] = int(post["id"])
        elif kind == "data_kind":
            page["data"] = value
        elif kind == "page_kind":
            pages[index % len(pages)] = value
        elif kind == "extra_field" and isinstance(post, dict):
            post[f"new_field_{cut}"] = {"nested": [value]}
        elif kind == "errors_only":
            pages[index % len(pages)] = {"errors": [{"title": "Not Found Error", "detail": "gone", "value": "1"}]}
        elif kind in ("truncate", "bad_utf8"):
            raw_edits[index % len(pages)] = (kind, cut)
    lines = []
    for i, page in enumerate(pages):
        line = json.dumps(page).encode()  # json, not orjson: it writes integers beyond 64 bits
        before = None
        if i in raw_edits:
            kind, cut = raw_edits[i]
            before = line if kind == "bad_utf8" else None
            line = line[: max(1, len(line) - cut)] if kind == "truncate" else line[:cut] + b"\xff\xfe" + line[cut:]
        lines.append(line)
        if originals is not None:
            originals.append(before)
    return lines


def posts_read(lines, originals=None) -> tuple[int, int]:
    """(posts in pages that are readable JSON objects, unreadable lines): the ground truth. A line
    with inserted bytes that json cannot read counts the posts of its page before the insertion."""
    posts = unreadable = 0
    for i, line in enumerate(lines):
        try:
            page = json.loads(line.decode("utf-8", errors="replace"))
        except ValueError:
            unreadable += 1
            if originals is not None and originals[i] is not None:
                posts += len(_landed_posts("", originals[i]))
            continue
        if not isinstance(page, dict):
            unreadable += 1
            continue
        data = page.get("data")
        posts += 1 if isinstance(data, dict) else len(data) if isinstance(data, list) else 0
    return posts, unreadable


def _post_id(post) -> str | None:
    """The id a published row would carry, read independently: a post object's ``id`` as a
    decimal string or integer within int64; None if it has none."""
    value = post.get("id") if isinstance(post, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return None
    text = str(value)
    return text if text.isascii() and text.isdigit() and int(text) < 2**63 else None


def _landed_posts(location: str, body: bytes, original: bytes | None = None) -> list[tuple[str, object]]:
    """``[(location#index, post)]`` of one page as the test reads it (json, invalid UTF-8 replaced);
    for a body json cannot read, ``original``'s (the page before bytes were inserted), if given."""
    try:
        page = json.loads(body.decode("utf-8", errors="replace"))
    except ValueError:
        return _landed_posts(location, original) if original is not None else []
    if not isinstance(page, dict):
        return []
    data = page.get("data")
    items = [data] if isinstance(data, dict) else data if isinstance(data, list) else []
    return [(f"{location}#{index}", post) for index, post in enumerate(items)]


def account(pages, out, originals=None) -> dict:
    """Accounts for every post of ``pages`` (``(location, body)``) against one day's result
    ``out``, by the test's own reading: each post is quarantined (a record at its ``location#i``),
    or published (its id is a row's id), or removed as a copy or an older edit of a published row
    (its id is a row's id, or in a row's ``edit_history_tweet_ids``). Fails on a post that is none
    of these, a row that no post accounts for, or a quarantine record that points at no post."""
    rows = out.frame.select("id", "edit_history_tweet_ids").to_dicts()
    row_ids = [str(r["id"]) for r in rows]
    assert len(row_ids) == len(set(row_ids)) and None not in [r["id"] for r in rows]
    older = {str(h) for r in rows for h in (r["edit_history_tweet_ids"] or []) if h is not None and str(h) != str(r["id"])}
    originals = originals or {}
    posts = [lp for location, body in pages for lp in _landed_posts(location, body, originals.get(location))]
    at = {where for where, _ in posts}
    whole = {q.location for q in out.quarantined if "#" not in q.location}  # a page quarantined whole: all its posts
    quarantined = [q.location for q in out.quarantined if "#" in q.location] + [w for w, _ in posts if w.rsplit("#", 1)[0] in whole]
    assert len(quarantined) == len(set(quarantined)) and set(quarantined) <= at, "a quarantine record per post, at a real post"
    kept = [(where, _post_id(post)) for where, post in posts if where not in set(quarantined)]
    lost = [(where, pid) for where, pid in kept if pid is None or (pid not in row_ids and pid not in older)]
    assert lost == [], f"posts neither published, quarantined nor a copy/older edit of a published row: {lost[:5]}"
    assert set(row_ids) <= {pid for _, pid in kept}, "a published row no post accounts for"
    return {"posts": len(posts), "rows": len(row_ids), "quarantined": len(quarantined), "removed": len(kept) - len(row_ids)}


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(mutations=st.lists(mutation(), min_size=1, max_size=6))
def test_mutated_real_pages_rows_plus_quarantined_equals_posts(real_pages, mutations):
    originals: list = []
    lines = apply(real_pages, mutations, originals)
    posts, unreadable = posts_read(lines, originals)
    pages = [(f"p:{i + 1}", line) for i, line in enumerate(lines)]
    out = flatten_day(iter(pages), WINDOW)
    quarantined_pages = sum(1 for q in out.quarantined if "#" not in q.location)
    assert quarantined_pages <= unreadable  # a page json cannot read may still give up only its bad post
    counts = account(pages, out, {f"p:{i + 1}": o for i, o in enumerate(originals) if o is not None})
    assert counts["posts"] == posts  # the test's reading of the pages, not the flattener's
    assert counts["rows"] + counts["quarantined"] + counts["removed"] == posts and counts["removed"] >= 0
    for q in out.quarantined:
        assert q.reason and q.location


@settings(max_examples=max(10, EXAMPLES * 2 // 5), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(mutations=st.lists(mutation(), min_size=1, max_size=6), bom=st.booleans(), gz=st.booleans())
def test_mutated_archive_through_the_replay_source_loses_no_post(real_pages, tmp_path_factory, mutations, bom, gz):
    """The mutated pages as a twarc2 archive (optionally gzip, optionally with a UTF-8 BOM),
    replayed over [2021-06-26, 2021-06-28) and flattened day by day: every post read from the
    file by the json module is published, quarantined, or removed as a copy of a published row."""
    import gzip as gzip_module

    from tweet_assets.transform.flatten import iter_days
    from tweet_assets.sources import ReplaySource

    originals: list = []
    lines = apply(real_pages, mutations, originals)
    posts, _ = posts_read(lines, originals)
    archive = tmp_path_factory.mktemp("archive") / ("search.jsonl.gz" if gz else "search.jsonl")
    data = (b"\xef\xbb\xbf" if bom else b"") + b"\n".join(lines) + b"\n"
    archive.write_bytes(gzip_module.compress(data) if gz else data)

    start, end = WINDOW[0], WINDOW[0] + (WINDOW[1] - WINDOW[0]) * 2
    landed = sorted(ReplaySource(path=str(archive)).pages(start, end, logging.getLogger("test")), key=lambda p: p.day)
    assert {p.day for p in landed} <= {"2021-06-26", "2021-06-27"}
    total = {"posts": 0, "rows": 0, "quarantined": 0, "removed": 0}
    by_day = {day: [(p.location, p.body) for p in landed if p.day == day] for day in {p.day for p in landed}}
    for day, out in iter_days((p.day, p.location, p.body) for p in landed):
        counts = account(by_day[day], out, {f"{archive}:{i + 1}": o for i, o in enumerate(originals) if o is not None})
        total = {k: total[k] + counts[k] for k in total}
    assert total["posts"] == posts, "the replay landed a different number of posts than the archive holds"
    assert total["rows"] + total["quarantined"] + total["removed"] == posts


def test_a_raw_newline_inside_a_line_is_read_or_quarantined_never_split(real_pages):
    """A page pretty-printed on one line (raw newlines as JSON whitespace) is read like the compact
    page; a line holding two pages is quarantined as one bad line, not read as two rows."""
    from tweet_assets.transform.pages import decode_pages

    compact = [json.dumps(page).encode() for page in real_pages]
    pretty = json.dumps(real_pages[0], indent=1).encode()
    assert pretty.count(b"\n") > 100 and pretty[:1] == b"{" and pretty[-1:] == b"}"
    two_in_one = compact[0] + b"\n" + compact[1]

    good = decode_pages(compact, ["a:1", "a:2"])
    mixed = decode_pages([pretty, compact[1]], ["b:1", "b:2"])
    assert mixed.table.equals(good.table)
    assert mixed.locations == ["b:1", "b:2"] and not mixed.quarantined

    bad = decode_pages([two_in_one, compact[1]], ["c:1", "c:2"])
    assert bad.table.num_rows == 1 and bad.locations == ["c:2"]
    assert [(q.location, q.reason) for q in bad.quarantined] == [("c:1", "invalid_json")]


# --- pages.py's rules one by one (the coercion rules of its docstring; found by mutation testing) ---


def test_coerce_follows_each_documented_rule():
    from collections import Counter

    import pyarrow as pa

    from tweet_assets.transform.pages import coerce

    S, I, F, B = pa.string(), pa.int64(), pa.float64(), pa.bool_()
    cases = [  # (value, type, result, counted)
        (None, S, None, False),
        ("a", S, "a", False),
        (True, S, "true", True),
        (False, S, "false", True),
        (5, S, "5", True),
        (1.5, S, "1.5", True),
        ([1], S, None, True),
        (7, I, 7, False),
        (2**63 - 1, I, 2**63 - 1, False),
        (-(2**63), I, -(2**63), False),
        (2**63, I, None, True),
        (-(2**63) - 1, I, None, True),
        (True, I, None, True),
        (5.0, I, 5, True),
        (5.5, I, None, True),
        (" 42 ", I, 42, True),
        ("9223372036854775808", I, None, True),
        ("-9223372036854775809", I, None, True),
        ("1000", I, 1000, True),
        ("-9223372036854775808", I, -(2**63), True),
        ("x", I, None, True),
        ({"a": 1}, I, None, True),
        (3, F, 3.0, False),
        (2.5, F, 2.5, False),
        (True, F, None, True),
        ("2.5", F, 2.5, True),
        ("x", F, None, True),
        ([2.5], F, None, True),
        (True, B, True, False),
        (False, B, False, False),
        ("TRUE", B, True, True),
        ("False", B, False, True),
        ("yes", B, None, True),
        (1, B, None, True),
    ]
    for value, typ, result, counted in cases:
        seen = Counter()
        got = coerce(value, typ, "p.q", seen)
        assert got == result and type(got) is type(result), (value, typ, got)
        assert seen == (Counter({"p.q": 1}) if counted else Counter()), (value, typ, seen)

    tags = pa.list_(pa.struct([pa.field("tag", S), pa.field("start", I)]))
    seen = Counter()
    assert coerce({"tag": "a", "start": "3"}, tags, "entities.hashtags", seen) == [{"tag": "a", "start": 3}]  # one object: a list of one
    assert coerce("a", tags, "entities.hashtags", seen) is None  # a scalar where a list is: null
    assert coerce([{"tag": 1, "start": 2, "extra": "x"}], tags, "entities.hashtags", seen) == [{"tag": "1", "start": 2}]  # unknown keys kept out
    assert seen == Counter({"entities.hashtags": 2, "entities.hashtags.start": 1, "entities.hashtags.tag": 1})
    seen = Counter()  # each value counted: two bad values at one path count 2
    assert coerce([1, True, "x"], pa.list_(S), "a", seen) == ["1", "true", "x"] and seen == Counter({"a": 2})
    assert coerce(["1", "2.5"], pa.list_(I), "b", seen) == [1, None] and coerce(["x", 1.0], pa.list_(B), "c", seen) == [None, None]
    assert coerce([{"x": 1}, 2, "3"], pa.list_(pa.struct([pa.field("x", I)])), "", seen) == [{"x": 1}, None, None]
    assert seen == Counter({"a": 2, "b": 2, "c": 2, "<page>": 2})
    page = pa.struct([pa.field("data", pa.list_(pa.struct([pa.field("id", S)])))])
    seen = Counter()
    assert coerce([1], page, "", seen) is None and seen == Counter({"<page>": 1})  # not an object at the top: the page
    assert coerce({"data": [{"id": 12}, "x"]}, page, "", seen) == {"data": [{"id": "12"}, None]}
    assert seen == Counter({"<page>": 1, "data.id": 1, "data": 1})
    with pytest.raises(TypeError, match=r"no coercion rule for Arrow type timestamp\[ms\] at p.q"):
        coerce(1, pa.timestamp("ms"), "p.q", Counter())


def test_parse_page_says_what_it_could_not_read():
    from tweet_assets.transform.pages import DecodedBatch, decode_pages, parse_page

    batch = DecodedBatch(None, [])
    assert parse_page(b'{"data": {"id": "1"}}', "s:1", batch, "2024-01-02") == {"data": [{"id": "1"}]}  # a stream message
    assert parse_page(b'{"data": [{"id": "1", "text": "\xff"}]}', "b:1", batch, "2024-01-02") == {"data": [{"id": "1", "text": "\ufffd"}]}
    assert parse_page(b"[1, 2]", "l:1", batch, "2024-01-03") is None
    assert parse_page(b'{"data": [' + b"x" * 100, "j:1", batch, None) is None
    assert parse_page(b'{"data": "\xff', "k:1", batch, None) is None  # not UTF-8 and not JSON either
    assert batch.coerced == {"2024-01-02": {"<invalid utf-8>": 1}}
    got = [(q.location, q.reason, q.day) for q in batch.quarantined]
    assert got == [("l:1", "not_an_object", "2024-01-03"), ("j:1", "invalid_json", None), ("k:1", "invalid_json", None)]
    assert batch.quarantined[0].detail == "a JSON list"
    # not UTF-8 and not JSON: the reason is the JSON error of the replaced text, the preview shows it
    assert batch.quarantined[2].detail.startswith("unexpected end of data: ")
    assert batch.quarantined[2].detail.endswith("(line starts '{\"data\": \"\ufffd', 11 bytes)")
    detail = batch.quarantined[1].detail
    preview = '{"data": [' + "x" * 70
    assert detail.endswith(f"(line starts {preview!r}, 110 bytes)")
    assert parse_page(b"null", "n:1") is None  # without a batch: nothing recorded, nothing raised

    with pytest.raises(ValueError, match="2 lines but 1 locations and 2 days"):
        decode_pages([b"{}", b"{}"], ["a:1"], ["2024-01-02", "2024-01-02"])
    empty = decode_pages([], [])
    assert empty.table.num_rows == 0 and empty.table.schema == decode_pages([b"{}"], ["a:1"]).table.schema
    one_day = decode_pages([b'{"data": []}', b'{"data": []}'], ["a:1", "a:2"])
    assert one_day.fast_path and one_day.days == [] and one_day.locations == ["a:1", "a:2"]
    two_days = decode_pages([b'{"data": []}', b"null", b'{"data": {"id": "1"}}'], ["a:1", "a:2", "a:3"], ["2024-01-02", "2024-01-02", "2024-01-03"])
    assert two_days.fast_path is False and two_days.days == ["2024-01-02", "2024-01-03"] and two_days.locations == ["a:1", "a:3"]
    one_by_one = decode_pages([b'{"data": []}', b"null"], ["a:1", "a:2"])  # one day, read page by page
    assert one_by_one.fast_path is False and one_by_one.days == [] and one_by_one.table.num_rows == 1
    # a wrong JSON type, coerced, is counted under its key path
    typed = decode_pages([b'{"data": [{"id": 5, "text": "a"}]}'], ["a:1"])
    assert typed.coerced == {None: {"data.id": 1}} and typed.table.column("data").to_pylist()[0][0]["id"] == "5"
    # the bulk JSON reader does not check UTF-8: the batch is checked, and read again page by page
    utf8 = decode_pages([b'{"data": [{"id": "1", "text": "\xff"}]}'], ["a:1"])
    assert utf8.fast_path is False and utf8.coerced == {None: {"<invalid utf-8>": 1}}
    assert utf8.table.column("data").to_pylist()[0][0]["text"] == "\ufffd"
    # a page longer than the reader's default block (1 MiB) is still read in bulk
    big = b'{"data": [{"id": "1", "text": "' + b"x" * 3_000_000 + b'"}]}'
    bulk = decode_pages([big, b'{"data": []}', b'{"data": []}'], ["a:1", "a:2", "a:3"])
    assert bulk.fast_path is True and bulk.table.num_rows == 3 and len(bulk.table.column("data").to_pylist()[0][0]["text"]) == 3_000_000
    assert two_days.table.column("data").to_pylist()[1][0]["id"] == "1"
    assert [(q.location, q.reason) for q in two_days.quarantined] == [("a:2", "not_an_object")]
