"""Helpers for the Iceberg tests: the pipeline with an Iceberg published asset, rows to publish,
reading a table back through pyiceberg and polars."""

from __future__ import annotations

import datetime as dt
import os

import polars as pl
import pyarrow as pa
from dagster import materialize
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from tweet_assets.defs.compliance import assets as compliance
from tweet_assets.defs.pipeline import assets, checks
from tweet_assets.defs.pipeline.layout import PipelineLayout
from tweet_assets.schema import PUBLISHED_SCHEMA

# polars plans an Iceberg scan with pyiceberg (its own planner plugin is not installed): say so once, quietly
os.environ.setdefault("POLARS_ICEBERG_PLANNER", "pyiceberg")

ICEBERG = assets.s3_parquet_asset(PipelineLayout(table_format="iceberg"))
#: The pipeline with the Iceberg published asset and the checks of the published table.
ALL = [assets.raw_tweets, assets.clean_tweets, ICEBERG, checks.ids_unique_and_not_null, checks.created_at_in_partition, checks.published_schema_matches, compliance.published_ids_not_in_ledger]


def run(res: dict, start: str, end: str | None = None, instance=None, selection=None, raise_on_error=True, assets_=None):
    kwargs = {"partition_key": start} if end is None else {"tags": {ASSET_PARTITION_RANGE_START_TAG: start, ASSET_PARTITION_RANGE_END_TAG: end}}
    return materialize(assets_ or ALL, resources=res, instance=instance, selection=selection, raise_on_error=raise_on_error, **kwargs)


def rows(day: str, ids: list[int], retweets: dict[int, int] | None = None, texts: dict[int, str] | None = None) -> pa.Table:
    """A day's rows in the published schema: ``ids`` one second apart from midnight UTC, ``retweets``
    ``{id: retweeted_id}``, ``texts`` ``{id: text}`` (default ``post <id>``)."""
    start = dt.datetime.fromisoformat(day).replace(tzinfo=dt.timezone.utc)
    data: dict[str, list] = {f.name: [None] * len(ids) for f in PUBLISHED_SCHEMA}
    data["id"] = list(ids)
    data["created_at"] = [start + dt.timedelta(seconds=i) for i in range(len(ids))]
    data["text"] = [(texts or {}).get(i, f"post {i}") for i in ids]
    data["author_id"] = [7] * len(ids)
    data["retweeted_id"] = [(retweets or {}).get(i) for i in ids]
    data["is_retweet"] = [i in (retweets or {}) for i in ids]
    return pa.table(data, schema=PUBLISHED_SCHEMA)


def day_rows(table: pa.Table):
    """A ``DayRows`` callable for ``table``."""
    return lambda: iter([table])


def read_both(table) -> tuple[pa.Table, pl.DataFrame]:
    """The whole table through pyiceberg's scan and through ``polars.scan_iceberg``, sorted by id."""
    scanned = table.scan().to_arrow().sort_by("id")
    frame = pl.scan_iceberg(table).collect().sort("id")
    return scanned, frame
