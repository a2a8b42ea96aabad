"""The Iceberg table itself, without Dagster: its shape (partitioning, sort order, zstd, field ids,
no content in the manifests' bounds), one commit replacing exactly the given days, row-level
removal of posts and their retweets, nothing committed when the run lost its lease."""

from __future__ import annotations

import glob
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.tables.iceberg_helpers import day_rows, read_both, rows
from tweet_assets.lake.leases import LeaseConflict
from tweet_assets.lake.store import open_lake
from tweet_assets.tables.iceberg import BOUNDED_COLUMNS, IcebergTable, days_filter
from tweet_assets.tables.iceberg_schema import iceberg_arrow_schema


@pytest.fixture
def table(tmp_path, monkeypatch):
    monkeypatch.delenv("TWEET_ASSETS_ICEBERG_CATALOG", raising=False)
    monkeypatch.delenv("TWEET_ASSETS_GLUE_DATABASE", raising=False)
    return IcebergTable.open(open_lake(str(tmp_path / "lake")), "tweets", "tweets")


def _ids(table: IcebergTable) -> list[int]:
    scanned, frame = read_both(table.load())
    assert scanned.column("id").to_pylist() == frame.get_column("id").to_list()
    return scanned.column("id").to_pylist()


def test_shape_partitioned_by_day_sorted_zstd_field_ids(table):
    commit = table.publish({"2024-01-01": day_rows(rows("2024-01-01", [1, 2])), "2024-01-02": day_rows(rows("2024-01-02", [3]))}, "run-1")
    loaded = table.load()
    assert loaded.format_version == 2 and loaded.location() == table.location and table.location.endswith("/lake/tweets")
    [field] = loaded.spec().fields
    assert (str(field.transform), field.name, loaded.schema().find_field(field.source_id).name) == ("day", "created_at_day", "created_at")
    assert [(loaded.schema().find_field(f.source_id).name, str(f.direction)) for f in loaded.sort_order().fields] == [("created_at", "ASC"), ("id", "ASC")]
    assert loaded.schema().find_field("id").required and loaded.schema().find_field("created_at").required
    files = sorted(glob.glob(table.location[len("file://") :] + "/data/created_at_day=*/*.parquet"))
    assert [os.path.basename(os.path.dirname(f)) for f in files] == ["created_at_day=2024-01-01", "created_at_day=2024-01-02"]
    meta = pq.read_metadata(files[0])
    assert meta.row_group(0).column(0).compression == "ZSTD"
    arrow = meta.schema.to_arrow_schema()
    assert arrow.field("created_at").type == pa.timestamp("us", tz="UTC")
    assert {f.name: int(f.metadata[b"PARQUET:field_id"]) for f in arrow} == {f.name: loaded.schema().find_field(f.name).field_id for f in arrow}
    # the manifests keep bounds of ids and times only: no post text is copied into metadata
    for task in loaded.scan().plan_files():
        bounded = {loaded.schema().find_column_name(i) for i in task.file.lower_bounds}
        assert bounded <= set(BOUNDED_COLUMNS) and "id" in bounded
    assert commit.snapshot_id == loaded.current_snapshot().snapshot_id and task.file.sort_order_id == loaded.sort_order().order_id


def test_a_commit_replaces_exactly_its_days(table):
    table.publish({"2024-01-01": day_rows(rows("2024-01-01", [1, 2])), "2024-01-02": day_rows(rows("2024-01-02", [3, 4]))}, "run-1")
    commit = table.publish({"2024-01-02": day_rows(rows("2024-01-02", [5])), "2024-01-03": day_rows(rows("2024-01-03", [6]))}, "run-2")
    assert _ids(table) == [1, 2, 5, 6]
    assert len(table.load().snapshots()) == 2
    change = commit.days["2024-01-02"]
    assert (change.files_added, change.records_added, change.files_removed, change.records_removed) == (1, 1, 1, 2)
    assert commit.day_metadata("2024-01-03")["records_added"] == 1 and commit.day_metadata("2024-01-03")["iceberg/snapshot_id"] == str(commit.snapshot_id)
    assert table.days() == ["2024-01-01", "2024-01-02", "2024-01-03"] and table.days("2024-01-02", "2024-01-02") == ["2024-01-02"]
    # a day given without rows is left without rows; the others stay
    table.publish({"2024-01-01": lambda: iter(())}, "run-3")
    assert _ids(table) == [5, 6]
    assert table.read_day("2024-01-02", ["id"]).column("id").to_pylist() == [5]


def test_rows_outside_their_day_are_refused_and_nothing_is_left(table):
    with pytest.raises(ValueError, match="outside that UTC day"):
        table.publish({"2024-01-01": day_rows(rows("2024-01-02", [1]))}, "run-1")
    assert glob.glob(table.location[len("file://") :] + "/data/**/*.parquet", recursive=True) == []


def test_a_run_that_lost_its_lease_commits_nothing(table):
    table.publish({"2024-01-01": day_rows(rows("2024-01-01", [1]))}, "run-1")

    def lost():
        raise LeaseConflict("2024-01-01 is being written by Dagster run other", "2024-01-01", {"run_id": "other"})

    with pytest.raises(LeaseConflict):
        table.publish({"2024-01-01": day_rows(rows("2024-01-01", [2]))}, "run-2", before_commit=lost)
    assert _ids(table) == [1] and len(table.load().snapshots()) == 1
    # the data file written for the lost commit is gone again (never referenced)
    assert len(glob.glob(table.location[len("file://") :] + "/data/**/*.parquet", recursive=True)) == 1


def test_remove_ids_deletes_posts_and_their_retweets_in_one_commit_keeping_other_values(table):
    media = pa.array([None, [{"media_key": "3_1", "type": "photo"}], None], type=rows("2024-01-01", [1]).schema.field("media").type)
    first = rows("2024-01-01", [1, 2, 3]).set_column(rows("2024-01-01", [1]).schema.get_field_index("media"), "media", media)
    table.publish({"2024-01-01": day_rows(first), "2024-01-02": day_rows(rows("2024-01-02", [10, 11], retweets={11: 2})), "2024-01-03": day_rows(rows("2024-01-03", [20]))}, "run-1")
    before = len(table.load().snapshots())
    removal = table.remove_ids(pa.array([2, 20], pa.int64()))
    assert removal.removed_ids == {"2024-01-01": [2], "2024-01-02": [11], "2024-01-03": [20]}
    assert (removal.files_rewritten, removal.files_deleted, removal.records_removed) == (2, 1, 3)
    loaded = table.load()
    assert _ids(table) == [1, 3, 10]
    # one commit: the table's metadata versions are the creation's, the publish's (logged) and the removal's (current)
    assert len(loaded.metadata.metadata_log) == 2 and len(loaded.snapshots()) - before == len(removal.snapshot_ids)
    # the kept rows' values are as published: a null list of structs stays null
    kept = {r["id"]: r for r in loaded.scan().to_arrow().to_pylist()}
    assert kept[1]["media"] is None and kept[3]["media"] is None
    assert table.remove_ids(pa.array([2], pa.int64())).removed_ids == {}


def test_days_filter_merges_consecutive_days_and_stays_shallow():
    expr = days_filter([f"2024-01-{d:02d}" for d in range(1, 31)] + ["2024-03-01"])
    assert repr(expr).count("GreaterThanOrEqual") == 2
    deep = days_filter([f"2024-{m:02d}-{d:02d}" for m in range(1, 13) for d in range(1, 28, 2)])  # 168 separate days

    def depth(e) -> int:
        children = [c for c in (getattr(e, "left", None), getattr(e, "right", None)) if c is not None]
        return 1 + max((depth(c) for c in children), default=0)

    assert depth(deep) <= 12
    assert iceberg_arrow_schema().field("created_at").type == pa.timestamp("us", tz="UTC")


def test_review7_removal_counts_only_its_own_snapshots_when_another_commit_lands_first(table):
    """Another run commits (a publish of another day) between the removal's plan and its commit:
    pyiceberg's retry puts the delete on top of it, and the counts must still be the delete's own
    (the other run's overwrite added a file and removed none: counted, it skewed both numbers)."""
    table.publish({"2024-01-01": day_rows(rows("2024-01-01", [1, 2, 3])), "2024-01-02": day_rows(rows("2024-01-02", [4]))}, "run-1")
    other = IcebergTable.open(open_lake(table.location[len("file://") : -len("/tweets")]), "tweets", "tweets")
    landed = []

    def another_commit_first():
        landed.append(other.publish({"2024-01-05": day_rows(rows("2024-01-05", [9]))}, "run-other").snapshot_id)

    removal = table.remove_ids(pa.array([2, 4], pa.int64()), before_commit=another_commit_first)
    assert removal.removed_ids == {"2024-01-01": [2], "2024-01-02": [4]}
    assert (removal.files_rewritten, removal.files_deleted, removal.records_removed) == (1, 1, 2)
    assert landed and landed[0] not in removal.snapshot_ids and len(removal.snapshot_ids) == 2
    assert _ids(table) == [1, 3, 9]


def test_review10_the_compliance_job_loads_a_table_once_per_list_of_ids_not_per_day(table, monkeypatch):
    from pyiceberg.catalog.sql import SqlCatalog

    from tweet_assets.defs.compliance.assets import _id_batches

    days = [f"2024-01-0{d}" for d in range(1, 6)]
    table.publish({d: day_rows(rows(d, [10 * n + 1, 10 * n + 2])) for n, d in enumerate(days)}, "run-1")
    loads = []
    real = SqlCatalog.load_table
    monkeypatch.setattr(SqlCatalog, "load_table", lambda self, identifier: loads.append(identifier) or real(self, identifier))
    assert [len(b) for b in _id_batches([(table, d) for d in days], 1000)] == [10]
    assert len(loads) == 1  # 5 before: one per day
    loads.clear()
    assert [len(b) for b in _id_batches([(table, d) for d in days], 4)] == [4, 4, 2]
    assert len(loads) == 3  # once per list: a compliance job runs between two lists
