"""Asset checks, partition-aware: they run for the partitions of the run that materialized them.

The two on ``clean_tweets`` are blocking: a failure stops ``s3_parquet`` from publishing the day.
The one on ``s3_parquet`` reads the written Parquet files back and compares their physical schema
with the declared one (``schema.PUBLISHED_SCHEMA``), so what Athena reads is what the DDL says.
"""


import warnings

from dagster import AssetCheckExecutionContext, AssetCheckResult, MetadataValue, PreviewWarning, asset_check

from .assets import PUBLISHED_TABLE, clean_tweets, s3_parquet
from .io_manager import LakeIOManager, LakeResource, StoredTable
from .partitions import daily_partitions, day_window
from .schema import PUBLISHED_SCHEMA

# Partitioned asset checks are "preview" in Dagster 1.13; they are what makes checks per day.
warnings.filterwarnings("ignore", category=PreviewWarning, message=".*partitions_def on an AssetCheckSpec.*")


@asset_check(asset=clean_tweets, blocking=True, partitions_def=daily_partitions, description="Every row has an id, and no id appears twice in a day.")
def ids_unique_and_not_null(context: AssetCheckExecutionContext, clean_tweets: dict[str, StoredTable]) -> AssetCheckResult:
    nulls, dupes = {}, {}
    for day, stored in clean_tweets.items():
        ids = stored.frame(["id"]).get_column("id")
        if ids.null_count():
            nulls[day] = ids.null_count()
        if ids.n_unique() != ids.len():
            dupes[day] = ids.len() - ids.n_unique()
    return AssetCheckResult(
        passed=not nulls and not dupes,
        metadata={"days_checked": len(clean_tweets), "null_ids": MetadataValue.json(nulls), "duplicate_ids": MetadataValue.json(dupes)},
    )


@asset_check(asset=clean_tweets, blocking=True, partitions_def=daily_partitions, description="Every created_at lies in its partition's UTC day [00:00Z, next 00:00Z).")
def created_at_in_partition(context: AssetCheckExecutionContext, clean_tweets: dict[str, StoredTable]) -> AssetCheckResult:
    outside = {}
    for day, stored in clean_tweets.items():
        start, end = day_window(day)
        col = stored.frame(["created_at"]).get_column("created_at")
        bad = int((col.is_null() | (col < start) | (col >= end)).sum())
        if bad:
            outside[day] = bad
    return AssetCheckResult(passed=not outside, metadata={"days_checked": len(clean_tweets), "rows_outside": MetadataValue.json(outside)})


@asset_check(asset=s3_parquet, partitions_def=daily_partitions, description="Each written Parquet file's schema equals the declared published schema (the Athena DDL's).")
def published_schema_matches(context: AssetCheckExecutionContext, lake: LakeResource) -> AssetCheckResult:
    store = lake.lake()
    mismatches = {}
    for day in context.partition_keys:
        key = LakeIOManager.key(PUBLISHED_TABLE, "parquet", day)
        schema = StoredTable(store, key, store.uri(key)).metadata().schema.to_arrow_schema()
        if not schema.equals(PUBLISHED_SCHEMA, check_metadata=False):
            diff = [
                f"{f.name}: {f.type} != {schema.field(f.name).type if f.name in schema.names else 'missing'}"
                for f in PUBLISHED_SCHEMA
                if f.name not in schema.names or not schema.field(f.name).type.equals(f.type)
            ]
            extra = [n for n in schema.names if n not in PUBLISHED_SCHEMA.names]
            mismatches[day] = diff + [f"unexpected column {n}" for n in extra] or ["column order or nullability differs"]
    return AssetCheckResult(
        passed=not mismatches,
        metadata={"days_checked": len(context.partition_keys), "mismatches": MetadataValue.json(mismatches)},
    )
