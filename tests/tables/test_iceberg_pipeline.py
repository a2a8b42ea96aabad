"""s3_parquet as an Iceberg table, through Dagster (point 1): one commit per run replacing exactly
the run's days, metadata per partition, the checks; read back with pyiceberg and polars."""

from __future__ import annotations

import polars as pl
import pytest

from tests.helpers import resources
from tests.tables.iceberg_helpers import ALL, ICEBERG, read_both, run
from tweet_assets.defs.pipeline import assets
from tweet_assets.defs.pipeline.layout import PipelineLayout
from tweet_assets.lake.store import open_lake
from tweet_assets.sources.sample import SampleSource
from tweet_assets.tables import FORMAT_ENV, table_format
from tweet_assets.tables.iceberg import IcebergTable


@pytest.fixture
def lake(tmp_path, monkeypatch):
    monkeypatch.delenv("TWEET_ASSETS_ICEBERG_CATALOG", raising=False)
    monkeypatch.delenv("TWEET_ASSETS_GLUE_DATABASE", raising=False)
    return str(tmp_path / "lake")


def _table(lake: str) -> IcebergTable:
    return IcebergTable.open(open_lake(lake), "tweets", "tweets")


def test_format_setting_default_and_refusal():
    assert table_format({}) == "hive"
    assert table_format({FORMAT_ENV: " Iceberg "}) == "iceberg"
    with pytest.raises(ValueError, match=f"{FORMAT_ENV}='delta': use one of hive, iceberg"):
        table_format({FORMAT_ENV: "delta"})
    assert ICEBERG.metadata_by_key[ICEBERG.key]["tweet_assets/table_format"] == "iceberg" and assets.s3_parquet_asset(PipelineLayout(table_format="hive")).metadata_by_key[ICEBERG.key]["lake/format"] == "parquet"


def test_one_commit_per_run_replaces_exactly_the_run_days(lake, instance):
    res = resources(lake, SampleSource(posts_per_day=40))
    first = run(res, "2024-03-01", "2024-03-03", instance=instance)
    assert first.success
    table = _table(lake).load()
    assert len(table.snapshots()) == 1  # the whole 3-day run: one commit, one snapshot
    snapshot = table.current_snapshot()
    assert snapshot.summary["added-data-files"] == "3" and snapshot.summary["added-records"] == "120"
    assert snapshot.summary["tweet-assets.run-id"] == first.run_id
    day_two = {r["id"] for r in table.scan(row_filter="created_at >= '2024-03-02T00:00:00+00:00' and created_at < '2024-03-03T00:00:00+00:00'").to_arrow().select(["id"]).to_pylist()}
    files_before = {t.file.file_path: t.file.partition[0] for t in table.scan().plan_files()}

    # a rerun of the middle day with another source replaces that day and nothing else
    again = run(resources(lake, SampleSource(posts_per_day=10, seed=99)), "2024-03-02", instance=instance, raise_on_error=False)
    assert again.success
    table = table.refresh()
    assert len(table.snapshots()) == 2
    summary = table.current_snapshot().summary
    assert summary.operation.value == "overwrite"
    assert (summary["added-data-files"], summary["deleted-data-files"], summary["added-records"], summary["deleted-records"]) == ("1", "1", "10", "40")
    files_after = {t.file.file_path: t.file.partition[0] for t in table.scan().plan_files()}
    kept = {p for p in files_before if p in files_after}
    assert len(kept) == 2 and all(files_before[p] != files_before[next(iter(set(files_before) - kept))] for p in kept)
    scanned, frame = read_both(table)
    assert scanned.num_rows == frame.height == 90
    new_day_two = set(frame.filter(pl.col("created_at").dt.date() == pl.date(2024, 3, 2)).get_column("id").to_list())
    assert len(new_day_two) == 10 and not new_day_two & day_two

    # each partition's materialization names its snapshot and its files and records
    [mat] = again.asset_materializations_for_node("s3_parquet")
    meta = {k: v.value for k, v in mat.metadata.items()}
    assert meta["iceberg/snapshot_id"] == str(table.current_snapshot().snapshot_id)
    assert (meta["data_files_added"], meta["data_files_removed"], meta["records_added"], meta["records_removed"], meta["dagster/row_count"]) == (1, 1, 10, 40, 10)
    checks = {(e.check_name, e.partition): e.passed for e in again.get_asset_check_evaluations()}
    assert checks[("published_schema_matches", "2024-03-02")] and checks[("published_ids_not_in_ledger", "2024-03-02")]


def test_timestamps_are_microseconds_utc_and_equal_the_hive_rows_at_ms(lake, tmp_path, instance):
    res = resources(lake, SampleSource(posts_per_day=30))
    assert run(res, "2024-03-05", instance=instance).success
    scanned, _ = read_both(_table(lake).load())
    assert str(scanned.schema.field("created_at").type) == "timestamp[us, tz=UTC]"
    from tests.helpers import run as run_hive

    hive_lake = str(tmp_path / "hive")
    assert run_hive(resources(hive_lake, SampleSource(posts_per_day=30)), "2024-03-05", instance=instance).success
    hive = pl.read_parquet(f"{hive_lake}/tweets/dt=2024-03-05/part-00000.parquet").sort("id")
    ice = pl.from_arrow(scanned).sort("id")
    assert ice.columns == hive.columns
    for column in hive.columns:
        left, right = ice.get_column(column), hive.get_column(column)
        if left.dtype == pl.Datetime("us", "UTC"):
            left = left.dt.cast_time_unit("ms")
        assert left.cast(right.dtype).equals(right), column


def test_empty_day_replaces_a_day_with_nothing(lake, instance):
    assert run(resources(lake, SampleSource(posts_per_day=5)), "2024-03-07", instance=instance).success
    result = run(resources(lake, SampleSource(posts_per_day=0)), "2024-03-07", instance=instance)
    assert result.success
    table = _table(lake).load()
    assert table.scan().to_arrow().num_rows == 0 and _table(lake).days() == []
    [mat] = result.asset_materializations_for_node("s3_parquet")
    assert mat.metadata["records_removed"].value == 5 and mat.metadata["dagster/row_count"].value == 0


def test_a_collection_chooses_its_table_format():
    from tweet_assets.components.collection import CollectionError, SampleSettings, TweetCollection
    from tweet_assets.components.factory import collection_defs

    defs = collection_defs(TweetCollection(name="brand", sample=SampleSettings(posts_per_day=5), table_format="Iceberg"))
    published = next(a for a in defs.assets if a.key.path == ["brand", "tweets"])
    metadata = published.metadata_by_key[published.key]
    assert metadata["tweet_assets/table_format"] == "iceberg" and metadata["lake/table"] == "brand/tweets" and metadata["athena/table"] == "brand"
    other = next(a for a in collection_defs(TweetCollection(name="other", sample=SampleSettings(posts_per_day=5))).assets if a.key.path == ["other", "tweets"])
    assert "tweet_assets/table_format" not in other.metadata_by_key[other.key]  # the deployment's default: hive
    with pytest.raises(CollectionError, match="collection 'brand': table_format='orc': use one of hive, iceberg"):
        TweetCollection(name="brand", sample=SampleSettings(), table_format="orc")


def test_no_hive_glue_table_asset_beside_an_iceberg_table(monkeypatch):
    """With TWEET_ASSETS_GLUE_DATABASE set the glue_table asset registers the Hive table; with the
    Iceberg format the Glue catalog registers the Iceberg table under that name, so the asset is not there."""
    from tweet_assets.defs.catalog import glue

    monkeypatch.setenv("TWEET_ASSETS_GLUE_DATABASE", "tweets_db")
    assert {a.key.to_user_string() for a in glue.catalog().assets} == {"glue_table", "glue_partitions"}
    monkeypatch.setenv(FORMAT_ENV, "iceberg")
    assert not glue.catalog().assets
