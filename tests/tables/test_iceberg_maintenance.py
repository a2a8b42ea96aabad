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
