"""A hostile archive directory (#27 points 6-7), built from the shared real recordings
(../shared/x-api-v2): hidden and upper-case file names are read like the others, links leaving the
archive are refused (named, counted), a link loop is named instead of failing the replay. The
posts expected are counted here with the json module, not by the code under test."""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime, timezone

import pytest

from tweet_assets.sources import ReplaySource

LOG = logging.getLogger("test_hostile_archive")
EVERYTHING = (datetime(2006, 3, 21, tzinfo=timezone.utc), datetime(2030, 1, 1, tzinfo=timezone.utc))


def _posts(data: bytes) -> int:
    """Posts in a twarc2 file, read by the json module."""
    total = 0
    for line in data.splitlines():
        if line.strip():
            page = json.loads(line)
            items = page.get("data")
            total += 1 if isinstance(items, dict) else len(items or [])
    return total


@pytest.fixture
def archive(x_api_v2, tmp_path):
    root = tmp_path / "archive"
    root.mkdir()
    sources = {
        "search.jsonl": "twarc-network-test-data/tweets.jsonl",
        "..jsonl": "twarc-hashtags-test-data/tweets1.jsonl",
        ".hidden.jsonl": "twarc-csv-test-data/noflat.jsonl",
        "x.JSONL": "twarc-csv-test-data/brexit.jsonl",
        "sub/Kpop.JsonL.gz": "twarc-csv-test-data/kpop.jsonl",
    }
    expected = 0
    for name, source in sources.items():
        data = (x_api_v2 / source).read_bytes()
        target = root / name
        target.parent.mkdir(exist_ok=True)
        if name.endswith(".gz"):
            import gzip

            target.write_bytes(gzip.compress(data))
        else:
            target.write_bytes(data)
        expected += _posts(data)
    return root, expected


def test_hidden_and_upper_case_files_are_read_like_the_others(archive, caplog):
    root, expected = archive
    source = ReplaySource(path=str(root))
    names = sorted(os.path.relpath(f, root) for f in source.files())
    assert names == sorted(["search.jsonl", "..jsonl", ".hidden.jsonl", "x.JSONL", "sub/Kpop.JsonL.gz"])
    pages = list(source.pages(*EVERYTHING, LOG))
    assert sum(p.posts for p in pages) == expected
    landed = sum(_posts(p.body) for p in pages)  # the bodies, read with json
    assert landed == expected
    assert sum(source.days(LOG).values()) == expected


def test_links_leaving_the_archive_are_refused_and_a_loop_is_named(archive, tmp_path, x_api_v2, caplog):
    root, expected = archive
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    secret = outside / "credentials.jsonl"
    secret.write_text('{"aws_access_key_id": "EXAMPLE-NOT-A-KEY"}\n')
    outside_pages = outside / "more.jsonl"
    outside_pages.write_bytes((x_api_v2 / "twarc-csv-test-data/kpop.jsonl").read_bytes())
    os.symlink(secret, root / "creds.jsonl")
    os.symlink(outside, root / "elsewhere")
    os.symlink(".", root / "sub" / "loop")
    os.symlink("search.jsonl", root / "again.jsonl")  # inside, a file read already
    os.symlink("missing.jsonl", root / "broken.jsonl")

    source = ReplaySource(path=str(root))
    with caplog.at_level(logging.WARNING):
        pages = list(source.pages(*EVERYTHING, LOG))
    assert sum(_posts(p.body) for p in pages) == expected  # nothing from outside, nothing twice
    assert all(b"EXAMPLE-NOT-A-KEY" not in p.body for p in pages)
    listing = source.scan()
    refused = {os.path.relpath(r.path, root): r for r in listing.refused}
    assert set(refused) == {"creds.jsonl", "elsewhere", "sub/loop", "again.jsonl", "broken.jsonl"}
    assert "outside the archive" in refused["creds.jsonl"].why and refused["creds.jsonl"].size == secret.stat().st_size
    assert "loop" in refused["sub/loop"].why
    text = caplog.text
    for name in refused:
        assert os.path.join(str(root), name) in text
    assert "5 entries of" in text

    # an explicit choice reads the outside file link (the directory link stays unwalked)
    following = ReplaySource(path=str(root), follow_outside_links=True)
    assert str(root / "creds.jsonl") in following.files()


def test_the_archive_index_reads_only_a_runs_days_and_lands_the_same_pages(x_api_v2, tmp_path, monkeypatch):
    """#31 point 4: after the planner's scan (days()), each run of the replay parses only the lines
    of its own days, and lands exactly what a full read of the archive lands for that window."""
    from tweet_assets.sources import replay
    from tweet_assets.sources.replay_plan import plan_runs

    root = tmp_path / "sparse"
    root.mkdir()
    for name in ("withheld.jsonl", "media_policy_violation_off.jsonl", "geo_tweets.jsonl"):
        (root / name).write_bytes((x_api_v2 / "twarc-csv-test-data" / name).read_bytes())
    source = ReplaySource(path=str(root))
    runs = plan_runs(source.days(LOG))
    assert len(runs) > 3
    parsed = []
    real = replay._read_line
    monkeypatch.setattr(replay, "_read_line", lambda line, location, *a: (parsed.append(location), real(line, location, *a))[1])
    total_lines = sum(1 for f in source.files() for line in open(f, "rb") if line.strip())
    for planned in runs:
        start = datetime.fromisoformat(planned.start).replace(tzinfo=timezone.utc)
        end = datetime.fromisoformat(planned.end).replace(tzinfo=timezone.utc) + (datetime(2000, 1, 2) - datetime(2000, 1, 1))
        parsed.clear()
        indexed = [(p.day, p.location, p.body, p.posts) for p in source.pages(start, end, LOG)]
        read = len(parsed)
        replay._INDEXES.clear()  # the same window read whole, without the index (pages() alone builds none)
        full = [(p.day, p.location, p.body, p.posts) for p in source.pages(start, end, LOG)]
        assert indexed == full and sum(p[3] for p in indexed) == planned.posts
        assert read < total_lines  # only its own lines were parsed
        source.days(LOG)  # the index again, for the next run
