"""The replay source against damaged and day-spanning twarc2 archives built from the shared real
recordings (../shared/x-api-v2): what a page holds decides what it is, every line lands in exactly
one day, damaged files give up only their unreadable rest, and a page split by day gives each day
its own expansions and each API error once. Expectations are computed here with the json and zlib
modules, not with the code under test.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import zlib
from collections import Counter
from datetime import datetime, timezone

import orjson
import pytest

from tweet_assets.partitions import day_window
from tweet_assets.sources import ReplaySource
from tweet_assets.sources.jsonl_files import JsonLinesFile

LOG = logging.getLogger("test_replay")
EVERYTHING = (datetime(2006, 3, 21, tzinfo=timezone.utc), datetime(2030, 1, 1, tzinfo=timezone.utc))
BOM = b"\xef\xbb\xbf"


def _lines(x_api_v2, name: str) -> list[bytes]:
    return [line for line in (x_api_v2 / name).read_bytes().splitlines() if line.strip()]


def _replay(path, window=EVERYTHING):
    return list(ReplaySource(path=str(path)).pages(*window, LOG))


def _body(page) -> dict:
    return json.loads(page.body)


# --- a page of one day: landed byte for byte, twarc's key included ---------------------------------


def test_a_page_of_one_day_is_landed_byte_for_byte_with_twarc_key(x_api_v2):
    lines = _lines(x_api_v2, "twarc-network-test-data/tweets.jsonl")
    got = _replay(x_api_v2 / "twarc-network-test-data" / "tweets.jsonl")
    assert [p.body for p in got] == lines
    assert all("__twarc" in _body(p) for p in got)
    assert [p.posts for p in got] == [len(json.loads(line)["data"]) for line in lines]
    assert [p.api_errors for p in got] == [len(json.loads(line).get("errors", [])) for line in lines]


# --- a page that spans days: per-day includes, each error once -----------------------------------


def _expansion_keys(posts: list, included_tweets: dict) -> dict[str, set]:
    """The includes a list of posts needs, by the API's expansions (independent of day_split)."""
    need = {"users": set(), "usernames": set(), "tweets": set(), "media": set(), "polls": set(), "places": set()}
    todo = list(posts)
    while todo:
        post = todo.pop()
        need["users"].update(x for x in (post.get("author_id"), post.get("in_reply_to_user_id")) if x)
        for m in (post.get("entities") or {}).get("mentions", []):
            need["usernames"].add(m["username"].lower())
        need["media"].update((post.get("attachments") or {}).get("media_keys", []))
        need["polls"].update((post.get("attachments") or {}).get("poll_ids", []))
        if (post.get("geo") or {}).get("place_id"):
            need["places"].add(post["geo"]["place_id"])
        for ref in post.get("referenced_tweets") or []:
            if ref["id"] not in need["tweets"]:
                need["tweets"].add(ref["id"])
                if ref["id"] in included_tweets:
                    todo.append(included_tweets[ref["id"]])
    return need


def _needed(kind: str, obj: dict, need: dict) -> bool:
    if kind == "users":
        return obj["id"] in need["users"] or obj["username"].lower() in need["usernames"]
    return obj["media_key" if kind == "media" else "id"] in need[kind]


@pytest.mark.parametrize("name", ["twarc-edits-test-data/tweets.jsonl", "twarc-csv-test-data/withheld.jsonl"])
def test_a_day_spanning_page_gives_each_day_its_includes_and_each_error_once(x_api_v2, tmp_path, name):
    lines = _lines(x_api_v2, name)
    spanning = [json.loads(line) for line in lines if len({p["created_at"][:10] for p in json.loads(line)["data"]}) > 1]
    assert spanning and sum(len(p.get("errors", [])) for p in spanning) > 0
    for n, page in enumerate(spanning):
        page["includes"]["users"].append({"id": "12", "name": "no post refers to me", "username": "orphan_user"})
        archive = tmp_path / f"{n}.jsonl"
        archive.write_bytes(json.dumps(page).encode() + b"\n")
        got = _replay(archive)
        days = {p["created_at"][:10] for p in page["data"]}
        assert sorted(p.day for p in got) == sorted(days)  # one piece per day
        # posts: each once, in its day
        assert sorted(x["id"] for p in got for x in _body(p)["data"]) == sorted(x["id"] for x in page["data"])
        assert all(x["created_at"].startswith(p.day) for p in got for x in _body(p)["data"])
        # errors: each entry exactly once over the pieces, and counted as such
        pieces_errors = [json.dumps(e, sort_keys=True) for p in got for e in _body(p).get("errors", [])]
        assert Counter(pieces_errors) == Counter(json.dumps(e, sort_keys=True) for e in page["errors"])
        assert sum(p.api_errors for p in got) == len(page["errors"])
        assert [p.api_errors for p in got] == [len(_body(p).get("errors", [])) for p in got]
        tweets = {t["id"]: t for t in page["includes"].get("tweets", [])}
        all_need = _expansion_keys(page["data"], tweets)
        for p in got:
            body = _body(p)
            need = _expansion_keys(body["data"], tweets)
            includes = body.get("includes", {})
            # every expansion of the day's posts that the page had is in the day's piece
            for kind, objects in page["includes"].items():
                held = {json.dumps(o, sort_keys=True) for o in includes.get(kind, [])}
                for obj in objects:
                    if _needed(kind, obj, need):
                        assert json.dumps(obj, sort_keys=True) in held, (p.day, kind)
            # and nothing else, except the page's unreferenced objects, which go with the first piece
            for kind, objects in includes.items():
                for obj in objects:
                    assert _needed(kind, obj, need) or (p is got[0] and not _needed(kind, obj, all_need)), (p.day, kind, obj.get("id"))
            # an error goes with a day whose posts concern it when there is one
            for error in body.get("errors", []):
                keys = {error.get("resource_id"), error.get("value")}
                concerned = [q.day for q in got if keys & set().union(*_expansion_keys(_body(q)["data"], tweets).values(), {x["id"] for x in _body(q)["data"]})]
                assert not concerned or concerned[0] == p.day
            assert body["__twarc"] == page["__twarc"] and body["meta"] == page["meta"]
        # the pieces together hold every included object of the page
        for kind, objects in page["includes"].items():
            landed = {json.dumps(o, sort_keys=True) for p in got for o in _body(p).get("includes", {}).get(kind, [])}
            assert landed == {json.dumps(o, sort_keys=True) for o in objects}
        assert sum(len(p.body) for p in got) < 2 * len(json.dumps(page))


# --- classification by what a page holds ----------------------------------------------------------


def test_pages_are_classified_by_what_they_hold_not_their_first_item(x_api_v2, tmp_path):
    net = _lines(x_api_v2, "twarc-network-test-data/tweets.jsonl")
    null_first = json.loads(net[1])
    null_first["data"][0] = None
    bare_first = json.loads(net[2])
    for key in ("text", "author_id", "edit_history_tweet_ids"):
        bare_first["data"][0].pop(key, None)
    (tmp_path / "a.jsonl").write_bytes(b"[" + net[0] + b"]\n" + json.dumps(null_first).encode() + b"\n" + json.dumps(bare_first).encode() + b"\n")
    (tmp_path / "b.jsonl").write_bytes(b"[" + net[3] + b", 5]\n")
    got = _replay(tmp_path)
    assert [p.posts for p in got] == [100, 100, 100, 100, 0]
    assert json.loads(got[0].body) == json.loads(net[0])  # the array's page, whole
    assert json.loads(got[1].body)["data"][0] is None and json.loads(got[2].body) == bare_first
    assert json.loads(got[3].body) == json.loads(net[3]) and got[4].body == b"5"  # the 5 is landed, quarantined


def test_other_endpoints_pages_are_still_skipped(x_api_v2, caplog):
    folder = x_api_v2 / "twarc-csv-test-data"
    with caplog.at_level(logging.WARNING):
        for name in ("users.jsonl", "lists.jsonl", "counts.jsonl", "tweets_compliance.jsonl", "users_compliance.jsonl", "flat.jsonl"):
            assert _replay(folder / name) == [], name
    assert "users.jsonl: skipped pages of other endpoints (no posts): {'users': 1}" in caplog.text
    assert "'lists': 2" in caplog.text and "'counts': 1" in caplog.text and "'flattened_posts': 100" in caplog.text


# --- undated lines land in exactly one day, whatever the window -----------------------------------


def test_undated_lines_land_in_one_deterministic_day(x_api_v2, tmp_path):
    net = _lines(x_api_v2, "twarc-network-test-data/tweets.jsonl")  # 2021-06-26
    mpv = _lines(x_api_v2, "twarc-csv-test-data/media_policy_violation_off.jsonl")  # 2021-05-07..11, spans days
    undated = json.loads(net[2])
    for post in undated["data"]:
        del post["created_at"]
    errors_only = json.dumps({"errors": json.loads(net[1])["errors"]}).encode()
    (tmp_path / "1.jsonl").write_bytes(b"not json\n" + mpv[0] + b"\n" + b"null\n")  # before: next page; after: previous page
    (tmp_path / "2.jsonl").write_bytes(json.dumps(undated).encode() + b"\n" + errors_only + b"\n")  # no dated page: previous file
    (tmp_path / "3.jsonl").write_bytes(net[0] + b"\n")
    days_in_order = list(dict.fromkeys(p["created_at"][:10] for p in json.loads(mpv[0])["data"]))  # the split's pieces
    lands = {}
    for day in ("2021-05-06", "2021-05-07", "2021-05-11", "2021-06-26"):
        for page in _replay(tmp_path, day_window(day)):
            lands.setdefault(page.body, []).append(page.day)
    assert days_in_order[0] == "2021-05-11" and days_in_order[-1] == "2021-05-07"
    assert lands[b"not json"] == [days_in_order[0]]  # the first piece of the page that follows
    assert lands[b"null"] == [days_in_order[-1]]  # the last piece of the page before it
    assert lands[json.dumps(undated).encode()] == [days_in_order[-1]]  # the last day of the file before
    assert lands[errors_only] == [days_in_order[-1]]
    everything = _replay(tmp_path)
    assert sum(p.posts for p in everything) == 300 and sum(p.api_errors for p in everything) == len(json.loads(net[1])["errors"])
    assert ReplaySource(path=str(tmp_path)).days(LOG) == Counter(
        {d: sum(p.posts for p in everything if p.day == d) for d in {p.day for p in everything}}
    )


def test_an_archive_without_any_dated_page_lands_with_the_runs_first_day(tmp_path):
    (tmp_path / "a.jsonl").write_bytes(b'{"errors": [{"title": "Not Found Error", "value": "1"}]}\n{"data": [{"id": "2", "text": "x"}]}\n')
    got = _replay(tmp_path, (day_window("2024-01-02")[0], day_window("2024-01-04")[0]))
    assert [(p.day, p.posts, p.api_errors) for p in got] == [("2024-01-02", 0, 1), ("2024-01-02", 1, 0)]


# --- bad bytes and BOM -----------------------------------------------------------------------------


def test_invalid_utf8_in_a_day_spanning_page_is_split_not_rejected(x_api_v2, tmp_path):
    line = _lines(x_api_v2, "twarc-csv-test-data/media_policy_violation_off.jsonl")[0]
    cut = line.index(b'"text": "') + len(b'"text": "')
    (tmp_path / "a.jsonl").write_bytes(line[:cut] + b"\xff" + line[cut:] + b"\n")
    got = _replay(tmp_path / "a.jsonl")
    assert len(got) == 5 and sum(p.posts for p in got) == 100
    texts = [x["text"] for p in got for x in orjson.loads(p.body)["data"]]  # orjson: strict UTF-8
    assert sum("\ufffd" in t for t in texts) == 1


def test_invalid_utf8_in_a_page_of_one_day_is_landed_as_received(x_api_v2, tmp_path):
    line = _lines(x_api_v2, "twarc-network-test-data/tweets.jsonl")[0]
    bad = line.replace(b'"text": "', b'"text": "\xc3', 1)
    (tmp_path / "a.jsonl").write_bytes(bad + b"\n")
    assert [(p.body, p.posts) for p in _replay(tmp_path / "a.jsonl")] == [(bad, 100)]


def test_a_byte_order_mark_is_removed(x_api_v2, tmp_path):
    line = _lines(x_api_v2, "twarc-network-test-data/tweets.jsonl")[0]
    (tmp_path / "a.jsonl").write_bytes(BOM + line + b"\r\n")
    (tmp_path / "b.jsonl.gz").write_bytes(gzip.compress(BOM + line + b"\n"))
    assert [p.body for p in _replay(tmp_path)] == [line, line]


# --- damaged files ---------------------------------------------------------------------------------


def _zlib_stop(data: bytes) -> tuple[bytes, int | None]:
    """What zlib gets out of (possibly damaged) gzip bytes, and the byte where it fails (None if
    it does not): fed 4 KB at a time, the failing 4 KB again byte by byte."""
    d = zlib.decompressobj(wbits=31)
    out = b""
    for i in range(0, len(data), 4096):
        saved = d.copy()
        try:
            out += d.decompress(data[i : i + 4096])
        except zlib.error:
            for j in range(i, i + 4096):
                try:
                    out += saved.decompress(data[j : j + 1])
                except zlib.error:
                    return out, j
    return out, None


def _gunzip_prefix(data: bytes) -> bytes:
    return _zlib_stop(data)[0]


def test_a_truncated_gzip_yields_its_readable_lines_then_its_damage(x_api_v2, tmp_path):
    lines = _lines(x_api_v2, "twarc-network-test-data/tweets.jsonl")
    whole = gzip.compress(b"\n".join(lines) + b"\n")
    cut = whole[: len(whole) // 2]
    (tmp_path / "a.jsonl.gz").write_bytes(cut)
    text = _gunzip_prefix(cut)
    archive = JsonLinesFile(str(tmp_path / "a.jsonl.gz"))
    got = [line for _, line in archive.lines()]
    assert got == [x for x in text.split(b"\n") if x]  # complete lines, then the cut-short one
    assert got[:-1] == lines[: len(got) - 1] and lines[len(got) - 1].startswith(got[-1])
    assert archive.damage.offset == len(cut) == archive.damage.size
    assert "truncated" in archive.damage.reason and str(tmp_path / "a.jsonl.gz") in str(archive.damage)


def test_corrupt_gzip_data_names_the_byte_and_keeps_what_precedes(x_api_v2, tmp_path):
    lines = _lines(x_api_v2, "twarc-csv-test-data/brexit.jsonl") + _lines(x_api_v2, "twarc-csv-test-data/kpop.jsonl")
    for damage in (bytes(64), b"\xff" * 64):  # zeros: a bad checksum at the end; 0xff: a bad block at once
        whole = bytearray(gzip.compress(b"\n".join(lines) + b"\n"))
        at = len(whole) * 3 // 5
        whole[at : at + 64] = damage
        (tmp_path / "a.jsonl.gz").write_bytes(bytes(whole))
        archive = JsonLinesFile(str(tmp_path / "a.jsonl.gz"))
        got = [line for _, line in archive.lines()]
        text, stop = _zlib_stop(bytes(whole))
        assert b"\n".join(got) == text.rstrip(b"\n") and len(got) >= 1 and got[0] == lines[0]
        assert archive.damage.offset == stop >= at and "gzip data corrupt" in archive.damage.reason


def test_gzip_members_zero_padding_garbage_and_misnamed_files(x_api_v2, tmp_path):
    a, b = _lines(x_api_v2, "twarc-network-test-data/tweets.jsonl")[:2]
    (tmp_path / "members.jsonl.gz").write_bytes(gzip.compress(a + b"\n") + gzip.compress(b + b"\n") + bytes(100))
    (tmp_path / "garbage.jsonl.gz").write_bytes(gzip.compress(a + b"\n") + b"PK\x03\x04 not gzip")
    (tmp_path / "plain.jsonl.gz").write_bytes(a + b"\n")
    (tmp_path / "zipped.jsonl").write_bytes(gzip.compress(b + b"\n"))
    members = JsonLinesFile(str(tmp_path / "members.jsonl.gz"))
    assert [x for _, x in members.lines()] == [a, b] and members.damage is None
    garbage = JsonLinesFile(str(tmp_path / "garbage.jsonl.gz"))
    assert [x for _, x in garbage.lines()] == [a]
    assert garbage.damage.offset == len(gzip.compress(a + b"\n")) and "not gzip" in garbage.damage.reason
    plain = JsonLinesFile(str(tmp_path / "plain.jsonl.gz"))
    assert [x for _, x in plain.lines()] == [a] and not plain.gzip and "not gzip" in plain.note
    zipped = JsonLinesFile(str(tmp_path / "zipped.jsonl"))
    assert [x for _, x in zipped.lines()] == [b] and zipped.gzip


def test_a_damaged_file_does_not_stop_the_others_and_says_where(x_api_v2, tmp_path, caplog):
    lines = _lines(x_api_v2, "twarc-network-test-data/tweets.jsonl")
    whole = gzip.compress(b"\n".join(lines[:3]) + b"\n")
    cut = whole[: len(whole) * 2 // 3]
    (tmp_path / "a.jsonl.gz").write_bytes(cut)
    (tmp_path / "b.jsonl.gz").write_bytes(gzip.compress(b"\n".join(lines[3:]) + b"\n"))
    with caplog.at_level(logging.WARNING):
        got = _replay(tmp_path)
    readable = [x for x in _gunzip_prefix(cut).split(b"\n") if x]
    damaged = [p for p in got if p.damaged]
    assert len(damaged) == 1 and f"at byte {len(cut):,} of {len(cut):,}" in damaged[0].damaged
    assert str(tmp_path / "a.jsonl.gz") in damaged[0].damaged and damaged[0].body.startswith(b"unreadable rest")
    assert [p.body for p in got if not p.damaged] == readable + lines[3:]
    assert str(tmp_path / "a.jsonl.gz") in caplog.text and "damaged file" in caplog.text


# --- through the assets: posts in == published + quarantined, counted here ---------------------------


def _independent_count(folder) -> dict:
    """Read the built archive with json and zlib alone: posts by validity and day, unreadable
    lines, damaged files, API errors entries."""
    count = {"posts": 0, "valid": {}, "missing_id": 0, "missing_created_at": 0, "unreadable": 0, "damaged": [], "errors": 0}
    for path in sorted(folder.iterdir()):
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            text, stop = _zlib_stop(raw)
            d = zlib.decompressobj(wbits=31)
            d.decompress(raw)
            if not d.eof:
                count["damaged"].append((str(path), len(raw) if stop is None else stop))
            raw = text
        if raw.startswith(BOM):
            raw = raw[3:]
        for line in raw.split(b"\n"):
            if not line.strip():
                continue
            try:
                value = json.loads(line.decode("utf-8", errors="replace"))
            except ValueError:
                count["unreadable"] += 1
                continue
            for page in value if isinstance(value, list) else [value]:
                count["errors"] += len(page.get("errors", []))
                data = page.get("data") or []
                for post in [data] if isinstance(data, dict) else data:
                    count["posts"] += 1
                    if not isinstance(post, dict) or "id" not in post:
                        count["missing_id"] += 1
                    elif "created_at" not in post:
                        count["missing_created_at"] += 1
                    else:
                        count["valid"].setdefault(post["created_at"][:10], set()).add(int(post["id"]))
    count["unreadable"] += len(count["damaged"])  # the unreadable rest of each damaged file
    return count


def test_a_damaged_archive_through_the_assets_loses_nothing(x_api_v2, tmp_path, instance):
    import duckdb

    from tests.helpers import resources, run

    net = _lines(x_api_v2, "twarc-network-test-data/tweets.jsonl")  # 5 pages of 2021-06-26
    mpv = _lines(x_api_v2, "twarc-csv-test-data/media_policy_violation_off.jsonl")[0]  # spans 2021-05-07..11
    withheld = _lines(x_api_v2, "twarc-csv-test-data/withheld.jsonl")[4]  # 2021-06-14, 3 errors
    kpop = _lines(x_api_v2, "twarc-csv-test-data/kpop.jsonl")[0]
    folder = tmp_path / "archive"
    folder.mkdir()
    errors_only = json.dumps({"errors": json.loads(net[1])["errors"], "__twarc": json.loads(net[1])["__twarc"]}).encode()
    null_first = json.loads(net[1])
    null_first["data"][0] = None
    for key in ("text", "author_id", "edit_history_tweet_ids"):
        null_first["data"][1].pop(key, None)
    undated = json.loads(net[2])
    for post in undated["data"]:
        del post["created_at"]
    cut_at = mpv.index(b'"text": "') + len(b'"text": "')
    whole = gzip.compress(net[4] + b"\n" + kpop + b"\n")
    truncated = whole[: len(whole) * 3 // 4]
    (folder / "a_list.jsonl").write_bytes(b"[" + net[0] + b"]\n")
    (folder / "b_null.jsonl").write_bytes(errors_only + b"\n" + json.dumps(null_first).encode() + b"\n")
    (folder / "c_undated.jsonl").write_bytes(json.dumps(undated).encode() + b"\n")
    (folder / "d_badbyte.jsonl").write_bytes(mpv[:cut_at] + b"\xff" + mpv[cut_at:] + b"\n")
    (folder / "e_bom.jsonl").write_bytes(BOM + net[3] + b"\n")
    (folder / "f_truncated.jsonl.gz").write_bytes(truncated)
    (folder / "g_good.jsonl.gz").write_bytes(gzip.compress(withheld + b"\n"))
    want = _independent_count(folder)
    # the damages are there: a cut-short line and one damaged file; ids are distinct (no dedupe)
    assert want["damaged"] == [(str(folder / "f_truncated.jsonl.gz"), len(truncated))] and want["unreadable"] == 2
    assert want["posts"] == 100 * 5 + 100 + 112 and want["missing_id"] == 1 and want["missing_created_at"] == 100
    valid = sum(len(ids) for ids in want["valid"].values())
    assert valid == want["posts"] - 101

    result = run(resources(str(tmp_path / "lake"), ReplaySource(path=str(folder))), "2021-05-07", "2021-06-26", instance=instance)
    assert result.success
    clean = {m.partition: m.metadata for m in result.asset_materializations_for_node("clean_tweets")}
    raw = {m.partition: m.metadata for m in result.asset_materializations_for_node("raw_tweets")}
    rows = sum(m["dagster/row_count"].value for m in clean.values())
    reasons: Counter = Counter()
    for m in clean.values():
        reasons.update(m["quarantined_by_reason"].value)
    quarantined_posts = reasons["missing_id"] + reasons["missing_created_at"] + reasons["invalid_id"] + reasons["invalid_created_at"] + reasons["outside_partition"]
    assert reasons == {"missing_id": 1, "missing_created_at": 100, "invalid_json": 2}  # nothing outside its partition
    assert rows + quarantined_posts == want["posts"]  # posts in == published + quarantined
    assert reasons["invalid_json"] == want["unreadable"]
    assert rows == valid
    assert sum(m["api_errors"].value for m in clean.values()) == sum(m["api_errors"].value for m in raw.values()) == want["errors"]
    # the damaged file is named, with the byte, in the run's metadata
    damaged = [d for m in raw.values() for d in m["damaged_input"].value]
    assert len(damaged) == 1 and str(folder / "f_truncated.jsonl.gz") in damaged[0] and f"at byte {len(truncated):,}" in damaged[0]
    details = [q["detail"] for m in clean.values() for q in m["quarantine_sample"].value if q["reason"] == "invalid_json"]
    assert any(f"f_truncated.jsonl.gz from byte {len(truncated):,}" in d for d in details), details  # and in the quarantine
    # the published table holds exactly the valid posts, each in its day
    published = duckdb.connect().execute(
        f"SELECT CAST(dt AS VARCHAR), id FROM read_parquet('{tmp_path}/lake/tweets/*/*.parquet', hive_partitioning=true)"
    ).fetchall()
    by_day: dict = {}
    for day, pid in published:
        by_day.setdefault(day, set()).add(pid)
    assert by_day == want["valid"]
    # the raw zone holds the error-only page as received, and twarc's key on every landed page
    landed = []
    for path in (tmp_path / "lake/raw_tweets").glob("dt=*/part-00000.jsonl.gz"):
        landed += gzip.decompress(path.read_bytes()).splitlines()
    assert errors_only in landed
    pages = []
    for line in landed:
        try:
            pages.append(json.loads(line.decode("utf-8", errors="replace")))
        except ValueError:
            continue
    assert len(pages) == len(landed) - 2 and all("__twarc" in page for page in pages)


def test_lines_are_the_same_whatever_the_read_size(monkeypatch, tmp_path):
    """Lines that span read blocks (plain and gzip), CR LF, blank lines, no final newline."""
    import random

    from tweet_assets.sources import jsonl_files

    rng = random.Random(7)
    for size in (1, 7, 64):
        monkeypatch.setattr(jsonl_files, "PLAIN_CHUNK", size)
        monkeypatch.setattr(jsonl_files, "COMPRESSED_CHUNK", size)
        for trial in range(60):
            data = bytes(rng.choice(b"ab\n\r ") for _ in range(rng.randint(0, 80)))
            want = [(i, line.removesuffix(b"\r")) for i, line in enumerate(data.split(b"\n"), 1) if line.removesuffix(b"\r").strip()]
            (tmp_path / "a.jsonl").write_bytes(data)
            (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(data))
            assert list(JsonLinesFile(str(tmp_path / "a.jsonl")).lines()) == want, data
            assert list(JsonLinesFile(str(tmp_path / "a.jsonl.gz")).lines()) == want, data


# --- what each landed page says of itself (found by mutation testing, #22) --------------------------


def _span(body: bytes) -> tuple[str | None, str | None]:
    """Smallest and largest created_at among the posts of a page that have a real date (as json reads it)."""
    data = json.loads(body).get("data")
    posts = [data] if isinstance(data, dict) else data or []
    stamps = []
    for post in posts:
        stamp = post.get("created_at") if isinstance(post, dict) else None
        try:
            datetime.strptime(stamp[:10], "%Y-%m-%d")
        except (TypeError, ValueError):
            continue
        stamps.append(stamp)
    return (min(stamps), max(stamps)) if stamps else (None, None)


def test_each_landed_page_reports_the_created_at_span_of_its_posts(x_api_v2, tmp_path):
    """raw_tweets' earliest/latest_created_at metadata comes from these: for a page of one day, a
    piece of a split page, and a one-day page holding posts without a readable day."""
    net = _lines(x_api_v2, "twarc-network-test-data/tweets.jsonl")
    mpv = _lines(x_api_v2, "twarc-csv-test-data/media_policy_violation_off.jsonl")
    partly = json.loads(net[1])
    partly["data"][0]["created_at"] = "2021-13-45T00:00:00.000Z"  # no such day
    partly["data"][1]["created_at"] = None
    (tmp_path / "a.jsonl").write_bytes(net[0] + b"\n" + mpv[0] + b"\n" + json.dumps(partly).encode() + b"\n")
    (tmp_path / "b.jsonl").write_bytes(b"[" + json.dumps(partly).encode() + b"]\n")  # the same, serialized from an array
    got = _replay(tmp_path)
    assert len(got) == 1 + 5 + 1 + 1 and sum(p.posts for p in got) == 400  # mpv spans five days
    for page in got:
        assert (page.earliest, page.latest) == _span(page.body), page.location
        assert page.earliest is not None
    assert json.loads(got[-1].body) == partly  # from the array: the page itself, serialized
    assert got[6].body == json.dumps(partly).encode()  # from a line: as received, byte for byte
    assert [p.location for p in got] == [f"{tmp_path / 'a.jsonl'}:{n}" for n in (1, 2, 2, 2, 2, 2, 3)] + [f"{tmp_path / 'b.jsonl'}:1[0]"]
    assert got[0].api_errors == len(json.loads(net[0]).get("errors", []))
    assert got[6].api_errors == got[7].api_errors == len(partly["errors"]) > 0
    assert sum(p.api_errors for p in got[1:6]) == len(json.loads(mpv[0]).get("errors", []))


def test_a_page_of_one_day_is_not_split(x_api_v2, tmp_path, monkeypatch):
    """The one-day fast path (the day_split module docstring: splitting runs only for pages that
    span days): a page of one day never goes through split_by_day, a page of several does."""
    from tweet_assets.sources import replay

    calls = []
    real = replay.split_by_day
    monkeypatch.setattr(replay, "split_by_day", lambda *a: calls.append(a[0]) or real(*a))
    net = _lines(x_api_v2, "twarc-network-test-data/tweets.jsonl")
    mpv = _lines(x_api_v2, "twarc-csv-test-data/media_policy_violation_off.jsonl")
    (tmp_path / "a.jsonl").write_bytes(b"\n".join(net) + b"\n")
    assert sum(p.posts for p in _replay(tmp_path)) == sum(len(json.loads(x)["data"]) for x in net) and calls == []
    (tmp_path / "a.jsonl").write_bytes(mpv[0] + b"\n")
    assert len(_replay(tmp_path)) == 5 and len(calls) == 1


def test_undated_pages_keep_their_api_errors_and_nested_files_are_read(x_api_v2, tmp_path):
    net = _lines(x_api_v2, "twarc-network-test-data/tweets.jsonl")
    undated = json.loads(net[1])
    for post in undated["data"]:
        post.pop("created_at")
    assert undated["errors"]
    (tmp_path / "2021" / "06").mkdir(parents=True)
    (tmp_path / "2021" / "06" / "a.jsonl").write_bytes(json.dumps(undated).encode() + b"\n" + net[0] + b"\n")
    got = _replay(tmp_path)
    assert [(p.posts, p.api_errors, p.day) for p in got] == [(100, len(undated["errors"]), "2021-06-26"), (100, len(json.loads(net[0]).get("errors", [])), "2021-06-26")]


def test_a_date_only_created_at_gives_its_day_and_an_impossible_date_none(x_api_v2, tmp_path):
    mpv = json.loads(_lines(x_api_v2, "twarc-csv-test-data/media_policy_violation_off.jsonl")[0])
    first_day = mpv["data"][0]["created_at"][:10]
    mpv["data"][5]["created_at"] = "2021-05-08"  # exactly ten characters: a day
    mpv["data"][6]["created_at"] = "2021-02-30T10:00:00.000Z"  # looks like a day, is none: with the first piece
    mpv["data"][7]["created_at"] = "2021-05-0"  # too short
    (tmp_path / "a.jsonl").write_bytes(json.dumps(mpv).encode() + b"\n")
    got = _replay(tmp_path)
    assert {p.day for p in got} == {"2021-05-07", "2021-05-08", "2021-05-09", "2021-05-10", "2021-05-11"}
    where = {x["id"]: p.day for p in got for x in _body(p)["data"]}
    assert where[mpv["data"][5]["id"]] == "2021-05-08"
    assert where[mpv["data"][6]["id"]] == first_day and where[mpv["data"][7]["id"]] == first_day
    assert sum(p.posts for p in got) == 100


def test_a_page_is_another_endpoints_only_when_an_item_says_so(tmp_path, caplog):
    users_after_null = {"data": [None, {"id": "12", "username": "jack", "name": "jack"}]}
    nothing_known = {"data": [None, {"id": "13"}]}
    flattened = [{"id": "14", "username": "jack"}, {"id": "15"}, {"id": "16", "text": "a flattened post"}]  # twarc2 flatten lines
    (tmp_path / "a.jsonl").write_bytes(
        json.dumps(users_after_null).encode() + b"\n" + json.dumps(nothing_known).encode() + b"\n" + json.dumps([users_after_null]).encode() + b"\n"
        + b"".join(json.dumps(x).encode() + b"\n" for x in flattened)
    )
    with caplog.at_level(logging.WARNING):
        got = _replay(tmp_path, (day_window("2024-01-02")[0], day_window("2024-01-03")[0]))
    # the users page is skipped and counted; the page of unknowns is landed for clean_tweets to judge
    assert [(p.day, p.posts, _body(p)) for p in got] == [("2024-01-02", 2, nothing_known)]
    said = [r.getMessage() for r in caplog.records if r.name == LOG.name]
    path = tmp_path / "a.jsonl"
    assert said == [
        f"{path}: skipped pages of other endpoints (no posts): {{'users': 3, 'other': 1, 'flattened_posts': 1}}",
        f"replay: no page of the archive has a dated post; 1 undated line(s) landed with the run's first day 2024-01-02: {path}:2",
    ]


def test_an_archive_without_dated_posts_says_where_its_lines_went(tmp_path, caplog):
    (tmp_path / "a.jsonl").write_bytes(b"not json\n[]\n")
    with caplog.at_level(logging.WARNING):
        got = _replay(tmp_path, (day_window("2024-01-02")[0], day_window("2024-01-04")[0]))
    assert [(p.day, p.body) for p in got] == [("2024-01-02", b"not json"), ("2024-01-02", b"[]")]
    path = tmp_path / "a.jsonl"
    said = [r.getMessage() for r in caplog.records if r.name == LOG.name and "no page of the archive" in r.getMessage()]
    assert said == [f"replay: no page of the archive has a dated post; 2 undated line(s) landed with the run's first day 2024-01-02: {path}:1, {path}:2"]


def test_what_the_replay_log_says_of_each_undated_line_and_damaged_file(x_api_v2, tmp_path, caplog):
    """The warnings are how an operator learns where each quarantined line went: every one names the
    line, why, the day and the rule that chose it; five per file, then a count; a damaged file is an
    error naming the file and byte. A file name with a newline and a non-UTF-8 byte (legal on Linux)
    still gives a one-line marker page."""
    net = _lines(x_api_v2, "twarc-network-test-data/tweets.jsonl")  # 2021-06-26
    day = "2021-06-26"
    first = tmp_path / "1.jsonl"
    first.write_bytes(b"not json\n[5, " + net[0] + b"]\nnull\n" + b"nope\n" * 7)
    bad_utf8 = net[1].replace(b'"text": "', b'"text": "\xc3', 1)
    bad_utf8_too = net[4].replace(b'"text": "', b'"text": "\xff', 1)
    whole = gzip.compress(BOM + bad_utf8 + b"\n" + bad_utf8_too + b"\n" + net[2] + b"\n")
    second = tmp_path / "2.jsonl.gz"
    second.write_bytes(whole[:-200])
    third = tmp_path / os.fsdecode(b"3\n\xff.jsonl.gz")
    third.write_bytes(gzip.compress(net[3] + b"\n")[:100])
    # the records name a file whose name is not UTF-8 (a lone surrogate, as os.fsdecode gives it):
    # kept to this test (no propagation to the root logger, whose capture goes into the test report,
    # which pytest-xdist's workers must send as UTF-8)
    handler = logging.Handler(logging.WARNING)
    records: list[logging.LogRecord] = []
    handler.emit = records.append
    LOG.addHandler(handler)
    propagate, LOG.propagate = LOG.propagate, False
    try:
        got = _replay(tmp_path)
    finally:
        LOG.removeHandler(handler)
        LOG.propagate = propagate
    said = [(r.levelname, r.getMessage()) for r in records if r.name == LOG.name]
    quarantined = "quarantined by clean_tweets"
    nxt, prev, before = "the next page of its file", "the previous page of its file", "the last dated page of the files before it"
    expected = [
        ("WARNING", f"{first}:1 is not valid JSON; landed as received with {day} ({nxt}), {quarantined}"),
        ("WARNING", f"{first}:2[0] is a JSON int in an array of pages; landed as received with {day} ({nxt}), {quarantined}"),
        ("WARNING", f"{first}:3 is a JSON NoneType, not a page object; landed as received with {day} ({prev}), {quarantined}"),
        ("WARNING", f"{first}:4 is not valid JSON; landed as received with {day} ({prev}), {quarantined}"),
        ("WARNING", f"{first}:5 is not valid JSON; landed as received with {day} ({prev}), {quarantined}"),
        ("WARNING", f"{first}: 10 undated line(s) in all, landed with a neighbour's day"),
        ("WARNING", f"{second}:3 is not valid JSON; landed as received with {day} ({prev}), {quarantined}"),  # the line cut short
        ("ERROR", f"replay: damaged file: {second}: gzip stream truncated"),
        ("WARNING", f"{second}@{len(whole) - 200} is a damaged file's unreadable rest; landed as received with {day} ({prev}), {quarantined}"),
        ("WARNING", f"replay: {second} starts with a UTF-8 byte order mark; removed"),
        ("WARNING", f"replay: {second}: 2 line(s) had invalid UTF-8, read with U+FFFD replacement characters"),
        ("ERROR", f"replay: damaged file: {third}: gzip stream truncated"),
        ("WARNING", f"{third}:1 is not valid JSON; landed as received with {day} ({before}), {quarantined}"),
        ("WARNING", f"{third}@100 is a damaged file's unreadable rest; landed as received with {day} ({before}), {quarantined}"),
    ]
    assert len(said) == len(expected)
    for (level, message), (want_level, want) in zip(said, expected):
        assert level == want_level and message.startswith(want), (message, want)
        if level == "ERROR":
            size = second.stat().st_size if want.startswith(f"replay: damaged file: {second}") else 100
            assert f"at byte {size:,} of {size:,}" in message and message.endswith("; going on with the other files")
    # every line landed, each where the log says; the markers are one line each, whatever the name
    # the line cut short counts the posts of its data (#27 point 10): the cut lies past its data
    cut_line = next(p for p in got if p.location == f"{second}:3")
    assert b'"includes"' in cut_line.body and cut_line.posts == len(json.loads(net[2])["data"]) == 100
    # the 3rd file's readable bytes begin one post of its data: 1 post, quarantined with the line
    third_line = next(p for p in got if p.location == f"{third}:1")
    assert third_line.body.startswith(b'{"data": [{') and third_line.posts == 1
    assert [p.day for p in got] == [day] * len(got) and sum(p.posts for p in got) == 401
    assert [p.location for p in got if p.posts] == [f"{first}:2[1]", f"{second}:1", f"{second}:2", f"{second}:3", f"{third}:1"]
    markers = [p for p in got if p.damaged]
    assert [m.location for m in markers] == [f"{second}@{len(whole) - 200}", f"{third}@100"]
    for marker in markers:
        assert b"\n" not in marker.body and marker.body.decode("utf-8").startswith("unreadable rest of damaged file")
    cut = len(whole) - 200
    assert markers[0].body == f"unreadable rest of damaged file 2.jsonl.gz from byte {cut:,}: {markers[0].damaged}".encode()
    assert markers[1].body.startswith("unreadable rest of damaged file 3 ?.jsonl.gz from byte 100: ".encode())


def test_filtered_stream_messages_are_pages_of_one_post(x_api_v2, tmp_path):
    """A filtered-stream message's ``data`` is one post object (with ``matching_rules``), not a list."""
    lines = (x_api_v2 / "twarc-csv-test-data" / "streaming_output_with_error.jsonl").read_bytes().splitlines()
    messages, stamps = [], []
    for line in filter(bytes.strip, lines):
        try:
            stamps.append(json.loads(line)["data"]["created_at"])
        except ValueError:
            continue  # the recording's truncated line
        messages.append(line)
    assert len(stamps) == len(messages) == 7
    (tmp_path / "stream.jsonl").write_bytes(b"\n".join(messages) + b"\n")
    got = _replay(tmp_path)
    assert [(p.body, p.posts, p.day, p.earliest, p.latest) for p in got] == [(m, 1, s[:10], s, s) for m, s in zip(messages, stamps)]
    two_days = json.loads(messages[0])
    two_days["data"]["created_at"] = "2021-04-02T00:00:00.000Z"
    (tmp_path / "stream.jsonl").write_bytes(messages[1] + b"\n" + json.dumps(two_days).encode() + b"\n")
    assert [(p.day, p.posts) for p in _replay(tmp_path)] == [("2021-04-01", 1), ("2021-04-02", 1)]


def test_each_kind_of_line_without_a_day_is_named_in_the_log(tmp_path, caplog):
    """Five undated lines in a file: five warnings, each naming what the line is, and no count line
    (that comes only past five); empty result pages are counted as skipped."""
    errors = {"errors": [{"title": "Not Found Error", "resource_id": "1", "value": "1"}]}
    undated = {"data": [{"id": "2", "text": "no created_at"}], "errors": [{"title": "x", "value": "2"}]}
    lines = [b"5", b'"s"', json.dumps(errors).encode(), json.dumps([errors, undated]).encode(), b'{"meta": {"result_count": 0}}', b'{"meta": {}}']
    (tmp_path / "a.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    dated = {"data": [{"id": "3", "text": "t", "created_at": "2024-01-02T00:00:00.000Z"}]}
    (tmp_path / "b.jsonl").write_bytes(json.dumps(dated).encode() + b"\n")
    with caplog.at_level(logging.WARNING):
        got = _replay(tmp_path)
    path = tmp_path / "a.jsonl"
    rule = "landed as received with 2024-01-02 (the first dated page of the files after it)"
    said = [r.getMessage() for r in caplog.records if r.name == LOG.name]
    assert said == [
        f"{path}: skipped pages of other endpoints (no posts): {{'no_data': 2}}",
        f"{path}:1 is a JSON int, not a page object; {rule}, quarantined by clean_tweets",
        f"{path}:2 is a JSON str, not a page object; {rule}, quarantined by clean_tweets",
        f"{path}:3 holds API errors and no posts; {rule}, its errors counted in api_errors",
        f"{path}:4[0] holds API errors and no posts; {rule}, its errors counted in api_errors",
        f"{path}:4[1] has no post with a readable created_at; {rule}, quarantined by clean_tweets",
    ]
    assert [(p.body, p.posts, p.api_errors) for p in got] == [
        (b"5", 0, 0),
        (b'"s"', 0, 0),
        (json.dumps(errors).encode(), 0, 1),
        (orjson.dumps(errors), 0, 1),  # from the array: the page itself, serialized
        (orjson.dumps(undated), 1, 1),
        (json.dumps(dated).encode(), 1, 0),
    ]
