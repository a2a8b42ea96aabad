"""Helpers for the Iceberg tests: the pipeline with an Iceberg published asset, rows to publish,
reading a table back through pyiceberg and polars."""

from __future__ import annotations

import os

import polars as pl
from dagster import materialize
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from tweet_assets.defs.compliance import assets as compliance
from tweet_assets.defs.pipeline import assets, checks
from tweet_assets.defs.pipeline.layout import PipelineLayout
from tests.tables.rows import day_rows, rows  # noqa: F401  (the tests take them from here)

# polars plans an Iceberg scan with pyiceberg (its own planner plugin is not installed): say so once, quietly
os.environ.setdefault("POLARS_ICEBERG_PLANNER", "pyiceberg")

ICEBERG = assets.s3_parquet_asset(PipelineLayout(table_format="iceberg"))
#: The pipeline with the Iceberg published asset and the checks of the published table.
ALL = [assets.raw_tweets, assets.clean_tweets, ICEBERG, checks.ids_unique_and_not_null, checks.created_at_in_partition, checks.published_schema_matches, compliance.published_ids_not_in_ledger]


def run(res: dict, start: str, end: str | None = None, instance=None, selection=None, raise_on_error=True, assets_=None):
    kwargs = {"partition_key": start} if end is None else {"tags": {ASSET_PARTITION_RANGE_START_TAG: start, ASSET_PARTITION_RANGE_END_TAG: end}}
    return materialize(assets_ or ALL, resources=res, instance=instance, selection=selection, raise_on_error=raise_on_error, **kwargs)


def read_both(table) -> tuple[pa.Table, pl.DataFrame]:
    """The whole table through pyiceberg's scan and through ``polars.scan_iceberg``, sorted by id."""
    scanned = table.scan().to_arrow().sort_by("id")
    frame = pl.scan_iceberg(table).collect().sort("id")
    return scanned, frame
