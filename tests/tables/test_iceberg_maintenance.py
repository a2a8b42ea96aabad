"""Maintenance (point 9): iceberg_maintenance compacts a day held in several data files into one,
skips a day a run is writing, expires old snapshots deleting the files only they held, and removes
orphan files older than the grace period (a younger one, maybe another writer's, stays)."""

from __future__ import annotations

import os
import time

import polars as pl
import pytest
from dagster import materialize

from tests.tables.iceberg_helpers import day_rows, rows
from tweet_assets.defs.maintenance import iceberg as maintenance
from tweet_assets.defs.maintenance.iceberg import iceberg_maintenance
from tweet_assets.lake.io_manager import LakeResource
from tweet_assets.lake.leases import DayLeases
from tweet_assets.lake.store import open_lake
from tweet_assets.tables.iceberg import IcebergTable
from tweet_assets.tables.iceberg_schema import iceberg_arrow_schema
from tweet_assets.tables.maintenance import data_files_by_day, files_under


@pytest.fixture
def lake_url(tmp_path, monkeypatch):
    monkeypatch.delenv("TWEET_ASSETS_ICEBERG_CATALOG", raising=False)
    monkeypatch.delenv("TWEET_ASSETS_GLUE_DATABASE", raising=False)
    return str(tmp_path / "lake")


def test_maintenance_compacts_expires_and_sweeps(lake_url, instance):
    lake = open_lake(lake_url)
    table = IcebergTable.open(lake, "tweets", "tweets")
    table.publish({"2024-06-01": day_rows(rows("2024-06-01", [1, 2])), "2024-06-02": day_rows(rows("2024-06-02", [5]))}, "run-1")
    for ids in ([3], [4]):  # small files added to 2024-06-01 (as another engine's INSERT would)
        table.load().append(rows("2024-06-01", ids).cast(iceberg_arrow_schema()))
    table.load().append(rows("2024-06-02", [6]).cast(iceberg_arrow_schema()))
    before = pl.from_arrow(table.load().scan().to_arrow()).sort("id")
    assert {d: len(f) for d, f in data_files_by_day(table.load()).items()} == {"2024-06-01": 3, "2024-06-02": 2}
    # a run is writing 2024-06-02: maintenance leaves that day alone this time
    DayLeases(lake, "backfill-run", "raw_tweets").acquire(["2024-06-02"])
    data = table.location[len("file://") :] + "/data"
    old_orphan, young_orphan = f"{data}/created_at_day=2024-06-01/orphan-old.parquet", f"{data}/created_at_day=2024-06-01/orphan-young.parquet"
    for path in (old_orphan, young_orphan):
        with open(path, "wb") as out:
            out.write(b"PAR1 left by a killed writer")
    os.utime(old_orphan, (time.time() - 2 * 3600, time.time() - 2 * 3600))  # past the 1 h grace
    result = materialize([iceberg_maintenance], resources={"lake": LakeResource(url=lake_url)}, instance=instance)
    assert result.success
    [mat] = result.asset_materializations_for_node("iceberg_maintenance")
    stats = mat.metadata["tables"].value["default.tweets"]
    assert (stats["data_files_before"], stats["data_files_after"], stats["days_compacted"], stats["days_skipped_held_by_a_run"]) == (5, 3, 1, ["2024-06-02"])
    assert stats["snapshots_expired"] == 4 and stats["snapshots_kept"] == 1 and stats["orphans_younger_than_grace"] == 1
    assert stats["files_deleted"] >= 4 and mat.metadata["data_files_after"].value == 3
    loaded = table.load()
    assert {d: len(f) for d, f in data_files_by_day(loaded).items()} == {"2024-06-01": 1, "2024-06-02": 2}
    after = pl.from_arrow(loaded.scan().to_arrow()).sort("id")
    assert after.equals(before)  # the same rows, every value (nulls included)
    # the compacted day is one file sorted by (created_at, id): 1, 3 and 4 at 00:00:00, 2 at 00:00:01
    assert loaded.scan(row_filter="created_at < '2024-06-02T00:00:00+00:00'").to_arrow().column("id").to_pylist() == [1, 3, 4, 2]
    stored = {p for p, _ in files_under(loaded, "data")}
    assert not any(p.endswith("orphan-old.parquet") for p in stored) and any(p.endswith("orphan-young.parquet") for p in stored)
    assert len([p for p in stored if p.endswith(".parquet")]) == 3 + 1  # the live data files and the young orphan



def test_the_maintenance_job_is_there_when_a_table_can_be_iceberg(monkeypatch):
    monkeypatch.delenv("TWEET_ASSETS_TABLE_FORMAT", raising=False)
    assert not maintenance.iceberg_used() and not maintenance.maintenance().assets  # no collection YAML in the repository
    monkeypatch.setenv("TWEET_ASSETS_TABLE_FORMAT", "iceberg")
    defs = maintenance.maintenance()
    [job] = defs.jobs
    [schedule] = defs.schedules
    assert job.name == "iceberg_maintenance_job" and schedule.cron_schedule == "0 4 * * *" and schedule.default_status.value == "STOPPED"


def test_a_collection_with_table_format_iceberg_brings_the_maintenance_job(monkeypatch, tmp_path):
    monkeypatch.delenv("TWEET_ASSETS_TABLE_FORMAT", raising=False)
    (tmp_path / "brand").mkdir()
    (tmp_path / "brand" / "defs.yaml").write_text("type: tweet_assets.TweetCollection\nattributes: {name: brand, sample: {posts_per_day: 5}, table_format: Iceberg}\n")
    monkeypatch.setattr(maintenance, "DEFS", tmp_path)
    assert maintenance.iceberg_used() and maintenance.maintenance().jobs


# --- review (notes/review_lake.md) 2: the orphan sweep and a live writer's uncommitted files -------


def _age(paths, seconds: float) -> None:
    for path in paths:
        os.utime(path, (time.time() - seconds, time.time() - seconds))


def test_review2_a_sweep_during_a_long_publish_leaves_the_live_writers_files(lake_url):
    """A backfill holds its days' leases and has written their data files two hours ago (past the
    orphan grace period); before it commits, the compliance job removes posts of another day and
    sweeps orphans. The backfill's uncommitted files must survive and its commit read back whole;
    a really orphaned old file of a day nobody holds still goes (deleted posts leave)."""
    import pyarrow as pa

    from tweet_assets.tables.iceberg import renew_leases
    from tweet_assets.tables.removal import remove_posts

    lake = open_lake(lake_url)
    table = IcebergTable.open(lake, "tweets", "tweets")
    table.publish({"2024-06-01": day_rows(rows("2024-06-01", [1, 2]))}, "run-1")
    data = table.location[len("file://") :] + "/data"
    orphan = f"{data}/created_at_day=2024-06-01/orphan-old.parquet"
    with open(orphan, "wb") as out:
        out.write(b"PAR1 left by a killed writer")
    _age([orphan], 2 * 3600)
    backfill = DayLeases(lake, "backfill-run", "raw_tweets")
    days = ["2024-06-02", "2024-06-03"]
    backfill.acquire(days)
    swept, said = [], []

    def before_commit():
        renew_leases(backfill, days)
        if swept:  # a later attempt (the compliance commit expired the snapshot this one had planned on)
            return
        written = [p for p, _ in files_under(table.load(), "data") if "created_at_day=2024-06-0" in p and "2024-06-01" not in p]
        assert len(written) == 2
        _age(written, 2 * 3600)  # written two hours ago: a long backfill
        done = remove_posts(table, pa.array([2], pa.int64()), [], DayLeases(lake, "compliance-run", "compliance_job delete"), wait_s=0)
        swept.append(done.sweep)

    commit = table.publish({d: day_rows(rows(d, [10 + i])) for i, d in enumerate(days)}, "backfill-run", before_commit=before_commit, log=said.append)
    backfill.release(days)
    [sweep] = swept
    assert sweep.held == 2 and sweep.held_by == ["backfill-run"]
    assert sorted(table.load().scan().to_arrow().column("id").to_pylist()) == [1, 10, 11] and commit.snapshot_id
    assert not os.path.exists(orphan)
    # its first plan read the snapshot the compliance job expired meanwhile (its manifest list deleted): planned again
    assert commit.attempts == 2 and "the table changed while it was planned" in said[0]


def test_review2_publish_verifies_its_files_before_it_commits(lake_url):
    """Files of a run removed before its commit (a sweep that did not see its lease): the commit is
    refused in one line naming a missing file and what removes them; nothing is committed."""
    from tweet_assets.tables.iceberg import TableCommitError

    lake = open_lake(lake_url)
    table = IcebergTable.open(lake, "tweets", "tweets")
    table.publish({"2024-06-01": day_rows(rows("2024-06-01", [1]))}, "run-1")

    def swept():
        for path, _ in files_under(table.load(), "data"):
            if "created_at_day=2024-06-02" in path:
                os.remove(path)

    with pytest.raises(TableCommitError, match=r"1 data file\(s\) this run wrote are gone before its commit \(.*created_at_day=2024-06-02/.*TWEET_ASSETS_ICEBERG_ORPHAN_GRACE_S") as refused:
        table.publish({"2024-06-02": day_rows(rows("2024-06-02", [2]))}, "run-2", before_commit=swept)
    assert "\n" not in str(refused.value)
    assert len(table.load().snapshots()) == 1 and table.load().scan().to_arrow().column("id").to_pylist() == [1]


def test_review2_old_metadata_orphans_wait_while_any_day_is_held(lake_url):
    """A commit's manifests name no day: an old unreferenced one is kept while any run holds a day
    of the lake (it may be a paused writer's commit in progress), and goes once none does."""
    from tweet_assets.tables.maintenance import remove_orphan_files

    lake = open_lake(lake_url)
    table = IcebergTable.open(lake, "tweets", "tweets")
    table.publish({"2024-06-01": day_rows(rows("2024-06-01", [1]))}, "run-1")
    manifest = table.location[len("file://") :] + "/metadata/left-by-a-writer-m0.avro"
    with open(manifest, "wb") as out:
        out.write(b"Obj\x01")
    _age([manifest], 2 * 3600)
    writer = DayLeases(lake, "writer-run", "raw_tweets")
    writer.acquire(["2024-07-09"])
    sweeper = DayLeases(lake, "maintenance-run", "iceberg_maintenance compaction")
    sweep = remove_orphan_files(table.load(), leases=sweeper)
    assert (sweep.held, sweep.held_by, sweep.deleted) == (1, ["writer-run"], 0) and os.path.exists(manifest)
    writer.release(["2024-07-09"])
    sweep = remove_orphan_files(table.load(), leases=sweeper)
    assert (sweep.held, sweep.deleted) == (0, 1) and not os.path.exists(manifest)


def test_review11_a_day_committed_while_the_sweep_runs_keeps_its_files(lake_url, monkeypatch):
    """The sweep reads what the table reaches, then a backfill commits its day (files written two
    hours ago) and releases the day's lease, then the sweep asks who writes that day: nobody. The
    files are reached by the table now and must stay (before: deleted, and the committed snapshot's
    scan failed with FileNotFoundError). Forced: the sweep's first read of the table waits for the
    backfill's commit and release, in a thread, held by events."""
    import threading

    from tweet_assets.tables import maintenance as tables_maintenance

    lake = open_lake(lake_url)
    table = IcebergTable.open(lake, "tweets", "tweets")
    table.publish({"2024-06-01": day_rows(rows("2024-06-01", [1]))}, "run-1")
    backfill = DayLeases(lake, "backfill-run", "raw_tweets")
    backfill.acquire(["2024-06-02"])
    files_ready, go, committed = threading.Event(), threading.Event(), threading.Event()
    failure = []

    def hold_before_commit():
        _age([p for p, _ in files_under(table.load(), "data") if "created_at_day=2024-06-02" in p], 2 * 3600)
        files_ready.set()
        assert go.wait(60)

    def publish():
        try:
            table.publish({"2024-06-02": day_rows(rows("2024-06-02", [2]))}, "backfill-run", before_commit=hold_before_commit)
            backfill.release(["2024-06-02"])
        except Exception as exc:  # noqa: BLE001 - reported by the test
            failure.append(exc)
        finally:
            committed.set()

    original, calls = tables_maintenance.reachable, []

    def reachable(t):
        found = original(t)
        calls.append(len(found))
        if len(calls) == 1:  # the sweep's first read of the table: the backfill commits now
            go.set()
            assert committed.wait(60)
        return found

    writer = threading.Thread(target=publish, name="backfill")
    writer.start()
    assert files_ready.wait(60)
    monkeypatch.setattr(tables_maintenance, "reachable", reachable)
    sweep = tables_maintenance.remove_orphan_files(table.load(), leases=DayLeases(lake, "maintenance-run", "iceberg_maintenance compaction"))
    writer.join(60)
    assert failure == [] and len(calls) >= 1
    assert sweep.deleted == 0
    assert sorted(table.load().scan().to_arrow().column("id").to_pylist()) == [1, 2]


def test_review11_a_writer_paused_past_its_lease_keeps_its_files_until_its_run_ends(lake_url):
    """A run paused past its lease's expiry (nobody took the day) may resume, renew and commit the
    files it wrote: the sweep keeps them while Dagster says the run is not finished (before: an
    expired lease counted as free and the files went), and deletes them once it is."""
    from tweet_assets.lake.leases import lease_key
    from tweet_assets.tables.maintenance import remove_orphan_files

    lake = open_lake(lake_url)
    table = IcebergTable.open(lake, "tweets", "tweets")
    table.publish({"2024-06-01": day_rows(rows("2024-06-01", [1]))}, "run-1")
    written = table.location[len("file://") :] + "/data/created_at_day=2024-06-02/written-by-the-paused-run.parquet"
    os.makedirs(os.path.dirname(written), exist_ok=True)
    with open(written, "wb") as out:
        out.write(b"PAR1 not committed yet")
    paused = DayLeases(lake, "paused-run", "raw_tweets", ttl_s=60)
    paused.acquire(["2024-06-02"])
    paused.forget()  # its process is stopped: no heartbeat
    _age([written, os.path.join(lake_url, lease_key("2024-06-02"))], 2 * 3600)  # the lease expired 2 h - 60 s ago
    assert DayLeases(lake, "maintenance-run", "sweep").holder("2024-06-02") is None  # expired: another run could take it
    running = remove_orphan_files(table.load(), leases=DayLeases(lake, "maintenance-run", "sweep", run_finished=lambda run: False))
    assert (running.held, running.held_by, running.deleted) == (1, ["paused-run"], 0) and os.path.exists(written)
    ended = remove_orphan_files(table.load(), leases=DayLeases(lake, "maintenance-run", "sweep", run_finished=lambda run: run == "paused-run"))
    assert (ended.held, ended.deleted) == (0, 1) and not os.path.exists(written)


def test_review11_files_after_a_compaction_count_a_commit_made_meanwhile(lake_url):
    """Another run publishes a new day between the compaction's plan and its commit: files after
    are the committed snapshot's (2024-06-01 compacted to 1, 2024-06-02's 1, the new day's 1: 3),
    not the plan's count plus this commit's change (4 - 3 + 1 = 2: before, the new file was missed)."""
    from tweet_assets.tables.maintenance import compact

    lake = open_lake(lake_url)
    table = IcebergTable.open(lake, "tweets", "tweets")
    table.publish({"2024-06-01": day_rows(rows("2024-06-01", [1, 2])), "2024-06-02": day_rows(rows("2024-06-02", [5]))}, "run-1")
    for ids in ([3], [4]):
        table.load().append(rows("2024-06-01", ids).cast(iceberg_arrow_schema()))

    def hold(days):
        table.publish({"2024-06-03": day_rows(rows("2024-06-03", [7]))}, "run-2")  # lands after the plan
        return days

    done = compact(table, None, 2, hold=hold)
    assert (done.days, done.files_before) == (["2024-06-01"], 4)
    assert done.files_after == 3 == sum(len(f) for f in data_files_by_day(table.load()).values())


def test_review11_a_day_read_from_a_table_loaded_before_an_expiry_is_read_from_the_current_snapshot(lake_url):
    """Reading many days from one loaded table (the Hive import, the compliance id lists): another
    run commits and an expiry deletes the loaded snapshot's files; the next day's read loads the
    table again instead of failing with FileNotFoundError (before)."""
    from tweet_assets.tables.maintenance import expire_snapshots

    lake = open_lake(lake_url)
    table = IcebergTable.open(lake, "tweets", "tweets")
    table.publish({"2024-06-01": day_rows(rows("2024-06-01", [1])), "2024-06-02": day_rows(rows("2024-06-02", [2]))}, "run-1")
    loaded = table.load()
    table.publish({"2024-06-02": day_rows(rows("2024-06-02", [2, 3]))}, "run-2")
    _, expiry = expire_snapshots(table.load())  # retention 0 h: the loaded snapshot and its manifest list go
    assert expiry.snapshots_expired == 1
    assert sorted(table.read_day("2024-06-02", ["id"], table=loaded).column("id").to_pylist()) == [2, 3]
