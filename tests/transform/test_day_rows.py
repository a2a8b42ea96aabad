"""day_rows: a day gathered as sorted runs, spilled to disk, handed out in order chunk by chunk.

The same pages flattened as one in-memory run and as many small runs spilled to Arrow IPC files,
read back in small chunks, must give the same table.
"""

from __future__ import annotations

import os

import orjson
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tests.helpers import post_page_files
from tweet_assets.transform import day_rows
from tweet_assets.transform.flatten import POLARS_SCHEMA, flatten_batch, flatten_day
from tweet_assets.transform.pages import decode_pages


def _lines(paths):
    for path in paths:
        for number, line in enumerate(path.read_bytes().splitlines(), start=1):
            if line.strip():
                yield f"{path.name}:{number}", line


def test_spilled_runs_read_in_small_chunks_equal_one_in_memory_run(x_api_v2, monkeypatch):
    files = post_page_files(x_api_v2)
    whole = flatten_day(_lines(files), batch_pages=100_000, batch_bytes=1 << 40)
    assert len(whole.runs) == 1 and whole.runs[0].path is None

    monkeypatch.setattr(day_rows, "SPILL_AFTER_BYTES", 0)  # every run goes to disk
    monkeypatch.setattr(day_rows, "SPILL_RUN_BYTES", 0)  # one run per batch
    spilled = flatten_day(_lines(files), batch_pages=1)
    assert len(spilled.runs) > 20 and all(run.path and os.path.exists(run.path) for run in spilled.runs)
    assert spilled.height == whole.height > 2_000
    assert spilled.stats == whole.stats and len(spilled.quarantined) == len(whole.quarantined)

    chunks = list(spilled.chunks(rows=97))
    assert [c.height for c in chunks[:-1]] == [97] * (len(chunks) - 1)
    assert_frame_equal(pl.concat(chunks), whole.frame)
    assert pl.concat(chunks).get_column("id").is_unique().all()
    assert_frame_equal(pl.concat(spilled.chunks(rows=500, columns=["id", "text"])), whole.frame.select("id", "text"))
    assert spilled.column("author_id").to_list() == whole.frame.get_column("author_id").to_list()

    folder = spilled.spill.name
    spilled.close()
    assert not os.path.exists(folder)


def test_batches_past_the_budget_are_sorted_into_few_runs_and_read_the_same(x_api_v2, monkeypatch):
    """Past SPILL_AFTER_BYTES (and SPILL_GROUP_AFTER_BYTES), batches wait until SPILL_RUN_BYTES and
    go to disk as one sorted run (a chunk reads from every run: fewer runs, fewer reads); the last
    waiting ones stay in memory. Before SPILL_GROUP_AFTER_BYTES, one run per batch."""
    files = post_page_files(x_api_v2)
    whole = flatten_day(_lines(files), batch_pages=100_000, batch_bytes=1 << 40)
    monkeypatch.setattr(day_rows, "SPILL_AFTER_BYTES", 0)
    monkeypatch.setattr(day_rows, "SPILL_RUN_BYTES", 600_000)
    monkeypatch.setattr(day_rows, "SPILL_GROUP_AFTER_BYTES", 0)  # gathered from the first spill on
    grouped = flatten_day(_lines(files), batch_pages=1)
    on_disk = [run for run in grouped.runs if run.path]
    assert 2 <= len(on_disk) < 15 and grouped.runs[-1].path is None  # from ~40 batches
    assert sum(run.height for run in grouped.runs) == whole.runs[0].height
    assert_frame_equal(pl.concat(grouped.chunks(rows=97)), whole.frame)
    assert grouped.stats == whole.stats
    grouped.close()
    monkeypatch.setattr(day_rows, "SPILL_GROUP_AFTER_BYTES", 1 << 40)
    per_batch = flatten_day(_lines(files), batch_pages=1)
    assert len(per_batch.runs) > 20 and all(run.path for run in per_batch.runs)
    per_batch.close()


def _page(*posts) -> bytes:
    users = [{"id": "1", "username": "ana", "name": "Ana"}]
    return orjson.dumps({"data": list(posts), "includes": {"users": users}, "meta": {"result_count": len(posts)}})


def _post(i, text, created="2024-01-01T10:00:00.000Z", history=None):
    return {"id": str(i), "text": text, "created_at": created, "author_id": "1", "edit_history_tweet_ids": history or [str(i)]}


@pytest.mark.parametrize("run_bytes, runs", [(0, 4), (1 << 40, 1)], ids=["one run per batch", "batches sorted into one run"])
def test_last_seen_wins_and_edits_supersede_across_spilled_runs(monkeypatch, run_bytes, runs):
    """Copies merge newest last and edits supersede across runs; batches sorted together into one
    run (SPILL_RUN_BYTES) keep their landing order for both."""
    monkeypatch.setattr(day_rows, "SPILL_AFTER_BYTES", 0)
    monkeypatch.setattr(day_rows, "SPILL_RUN_BYTES", run_bytes)
    monkeypatch.setattr(day_rows, "SPILL_GROUP_AFTER_BYTES", 0)
    pages = [
        _page(_post(1, "first"), _post(2, "two", "2024-01-01T09:00:00.000Z"), _post(1, "second")),
        _page(_post(3, "original", "2024-01-01T08:00:00.000Z")),
        _page(_post(1, "third"), _post(4, "edited", "2024-01-01T08:30:00.000Z", history=["3", "4"])),
        _page(_post(5, "same time", "2024-01-01T09:00:00.000Z"), _post(0, "same time, lower id", "2024-01-01T09:00:00.000Z")),
    ]
    out = flatten_day(((f"p:{n}", page) for n, page in enumerate(pages, start=1)), batch_pages=1)
    assert len(out.runs) == runs and all(run.path for run in out.runs) == (run_bytes == 0)
    frame = pl.concat(out.chunks(rows=2))
    assert frame.select("id", "text").rows() == [
        (4, "edited"),
        (0, "same time, lower id"),
        (2, "two"),
        (5, "same time"),
        (1, "third"),
    ]
    assert out.stats["duplicates"] == 2 and out.stats["superseded_edits"] == 1


def test_a_day_without_rows_gives_one_empty_chunk_with_the_columns():
    batch = flatten_batch(decode_pages([orjson.dumps({"meta": {"result_count": 0}})], ["p:1"]))
    rows = day_rows.DayRows(POLARS_SCHEMA)
    for frame in batch.frames.values():
        rows.add(frame)
    out = rows.finish()
    chunks = list(out.chunks())
    assert out.height == 0 and len(chunks) == 1 and chunks[0].schema == POLARS_SCHEMA


@pytest.mark.parametrize("cast", [False, True], ids=["as-given", "cast-to-published-schema"])
def test_writing_a_day_holds_one_chunk_at_a_time(x_api_v2, tmp_path, cast):
    """DayResult.arrow_chunks and write_parquet let go of each chunk (and of its uncast original)
    before the next is built: memory while writing a day is one chunk, whatever the day's size."""
    import gc
    import weakref

    import pyarrow.parquet as pq

    from tweet_assets.lake.parquet import write_parquet
    from tweet_assets.schema import PUBLISHED_SCHEMA

    day = flatten_day(_lines(post_page_files(x_api_v2)))
    written: list[weakref.ref] = []
    alive_before_next: list[int] = []

    def tracked(table):
        written.append(weakref.ref(table))
        return table

    def count_alive(_chunk):  # called as each next chunk is built
        gc.collect()
        alive_before_next.append(sum(ref() is not None for ref in written))

    chunks = map(tracked, day.arrow_chunks(rows=500, each=count_alive))  # map keeps no reference
    rows = write_parquet(chunks, str(tmp_path / "day.parquet"), PUBLISHED_SCHEMA if cast else None)
    assert rows == day.height == pq.read_metadata(tmp_path / "day.parquet").num_rows
    assert len(alive_before_next) > 4 and alive_before_next == [0] * len(alive_before_next)


def test_spilled_runs_live_in_a_spool_directory_that_a_killed_process_leaves_to_the_sweep(monkeypatch, tmp_path):
    """A day's spilled runs go to a locked spool directory (tweet_assets.lake.spools): removed when the
    day is closed, and, when the process is killed mid-day, by the next run's sweep (issue #22:
    no debris after a killed run and its rerun)."""
    import subprocess
    import sys
    import tempfile

    from tweet_assets.lake.spools import PREFIX, open_spool_dir, remove_spool_dir

    root = tmp_path / "tmpdir"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    monkeypatch.setattr(day_rows, "SPILL_AFTER_BYTES", 0)
    monkeypatch.setattr(day_rows, "SPILL_RUN_BYTES", 0)  # one run per batch
    out = flatten_day([("p:1", _page(_post(1, "one"))), ("p:2", _page(_post(2, "two")))], batch_pages=1)
    spilled = {os.path.dirname(run.path) for run in out.runs}
    assert len(spilled) == 1 and os.path.basename(spilled.pop()).startswith(PREFIX)
    out.close()
    assert list(root.iterdir()) == []
    # a process that spills and dies without cleaning up (SIGKILL: no finalizer runs)
    script = (
        "import os, sys, tempfile; tempfile.tempdir = sys.argv[1]\n"
        "from tweet_assets.transform import day_rows; day_rows.SPILL_AFTER_BYTES = 0; day_rows.SPILL_RUN_BYTES = 0\n"
        "from tests.transform.test_day_rows import _page, _post\n"
        "from tweet_assets.transform.flatten import flatten_day\n"
        "out = flatten_day([('p:1', _page(_post(1, 'one'))), ('p:2', _page(_post(2, 'two')))], batch_pages=1)\n"
        "print(len(out.runs), flush=True); os.kill(os.getpid(), 9)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", script, str(root)], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == -9 and proc.stdout.strip() == "2", proc.stderr[-2000:]
    left = [p for p in root.iterdir()]
    assert len(left) == 1 and left[0].name.startswith(PREFIX) and any(f.suffix == ".arrow" for f in left[0].iterdir())
    mine = open_spool_dir("raw_tweets", "rerun")  # the rerun's first spool sweeps the dead one
    assert [p.name for p in root.iterdir()] == [os.path.basename(mine)]
    remove_spool_dir(mine)
