"""Done-when of #37: the shared twarc recordings replayed through the pipeline publish the same rows
through Iceberg as through Hive, column by column (timestamps compared at ms); the Iceberg table
reads the same through pyiceberg's scan and polars.scan_iceberg. Each range is one single-run
backfill of raw_tweets → clean_tweets → the Hive s3_parquet, then the Iceberg s3_parquet over the
same clean_tweets (one commit per range)."""

from __future__ import annotations

import polars as pl
import pytest
from dagster import DagsterInstance, materialize
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from tests.helpers import post_page_files, resources, run
from tests.reference import reference_table
from tests.tables.iceberg_helpers import ICEBERG, read_both
from tests.transform.test_fidelity import _ranges
from tweet_assets.defs.pipeline import assets
from tweet_assets.lake.store import open_lake
from tweet_assets.schema import COLUMN_NAMES
from tweet_assets.sources import ReplaySource
from tweet_assets.tables.iceberg import IcebergTable


@pytest.fixture(scope="module")
def both(x_api_v2, tmp_path_factory):
    import os

    for name in ("TWEET_ASSETS_ICEBERG_CATALOG", "TWEET_ASSETS_GLUE_DATABASE"):
        os.environ.pop(name, None)
    files = post_page_files(x_api_v2)
    days = list(reference_table(files))
    lake = tmp_path_factory.mktemp("lake")
    commits = 0
    with DagsterInstance.ephemeral() as instance:
        res = resources(str(lake), ReplaySource(path=str(x_api_v2)))
        for start, end in _ranges(days, gap=8):
            assert run(res, start, end, instance=instance).success
            published = materialize(
                [assets.raw_tweets, assets.clean_tweets, ICEBERG], resources=res, instance=instance, selection=[ICEBERG],
                tags={ASSET_PARTITION_RANGE_START_TAG: start, ASSET_PARTITION_RANGE_END_TAG: end},
            )
            assert published.success
            commits += 1
    hive = pl.scan_parquet(str(lake / "tweets" / "dt=*" / "*.parquet"), hive_partitioning=False).collect()  # the Hive objects only (Iceberg's are under tweets/data/)
    table = IcebergTable.open(open_lake(str(lake)), "tweets", "tweets").load()
    return hive.sort("id"), table, commits


def _at_ms(frame: pl.DataFrame) -> pl.DataFrame:
    """Every timestamp column (nested ones too, through a cast to the Hive frame's types) at ms."""
    return frame.with_columns([pl.col(c).dt.cast_time_unit("ms") for c, t in frame.schema.items() if isinstance(t, pl.Datetime)])


@pytest.mark.slow
def test_the_recordings_publish_the_same_rows_through_iceberg_as_through_hive(both):
    hive, table, commits = both
    assert hive.height > 1000 and len(table.snapshots()) == commits  # one commit per run
    scanned, frame = read_both(table)
    for name, iceberg in (("pyiceberg", pl.from_arrow(scanned)), ("polars.scan_iceberg", frame)):
        iceberg = _at_ms(iceberg).sort("id")
        assert iceberg.columns == list(COLUMN_NAMES) == hive.columns, name
        assert iceberg.height == hive.height, name
        mismatches = {}
        for column in COLUMN_NAMES:
            left = iceberg.get_column(column).cast(hive.schema[column])  # µs → ms inside lists and structs, large → plain strings
            right = hive.get_column(column)
            if not left.equals(right, check_names=True):
                differ = (left.to_frame().with_row_index().join(right.to_frame("h").with_row_index(), on="index")).filter(pl.col(column).ne_missing(pl.col("h")))
                mismatches[column] = differ.height
        assert not mismatches, (name, mismatches)
