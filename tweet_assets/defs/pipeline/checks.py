"""Asset checks, partition-aware: they run for the partitions of the run that materialized them.

The two on ``clean_tweets`` are blocking: a failure stops ``s3_parquet`` from publishing the day.
The one on ``s3_parquet`` reads the written Parquet files back and compares their physical schema
with the declared one (``schema.PUBLISHED_SCHEMA``), so what Athena reads is what the DDL says.
The one on ``raw_tweets`` (completeness, a warning) compares the posts landed per day with the X
API's own count of matching posts recorded by the live search source.
"""


import warnings

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetRecordsFilter,
    MetadataValue,
    PreviewWarning,
    asset_check,
)

from tweet_assets.defs.pipeline import assets as pipeline  # the module, not its objects: dg loads each object from the file that defines it
from tweet_assets.defs.pipeline.layout import checked_asset
from tweet_assets.lake.empty_days import EmptyTable, read_days, recorded_empty
from tweet_assets.lake.io_manager import LakeIOManager, LakeResource
from tweet_assets.lake.values import StoredTable
from tweet_assets.partitions import daily_partitions, day_window
from tweet_assets.schema import PUBLISHED_SCHEMA

# Partitioned asset checks are "preview" in Dagster 1.13; they are what makes checks per day.
warnings.filterwarnings("ignore", category=PreviewWarning, message=".*partitions_def on an AssetCheckSpec.*")


@asset_check(asset=pipeline.clean_tweets, blocking=True, partitions_def=daily_partitions, description="Every row has an id, and no id appears twice in a day.")
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


@asset_check(asset=pipeline.clean_tweets, blocking=True, partitions_def=daily_partitions, description="Every created_at lies in its partition's UTC day [00:00Z, next 00:00Z).")
def created_at_in_partition(context: AssetCheckExecutionContext, clean_tweets: dict[str, StoredTable]) -> AssetCheckResult:
    outside = {}
    for day, stored in clean_tweets.items():
        start, end = day_window(day)
        col = stored.frame(["created_at"]).get_column("created_at")
        bad = int((col.is_null() | (col < start) | (col >= end)).sum())
        if bad:
            outside[day] = bad
    return AssetCheckResult(passed=not outside, metadata={"days_checked": len(clean_tweets), "rows_outside": MetadataValue.json(outside)})


@asset_check(asset=pipeline.s3_parquet, partitions_def=daily_partitions, description="Each written Parquet file's schema equals the declared published schema (the Athena DDL's).")
def published_schema_matches(context: AssetCheckExecutionContext, lake: LakeResource) -> AssetCheckResult:
    store = lake.lake()
    mismatches = {}
    checked, table = checked_asset(context)  # s3_parquet or a collection's [<name>, tweets]
    keys = {day: LakeIOManager.key(table, "parquet", day) for day in context.partition_keys}
    # a day stored empty has no object (tweet_assets.lake.empty_days): 0 rows, nothing to compare
    days = read_days(store, keys, "parquet", lambda missing: recorded_empty(context.instance, checked, missing), lambda s, k, f: StoredTable(s, k, s.uri(k)))
    empty = [day for day, stored in days.items() if isinstance(stored, EmptyTable)]
    for day, stored in days.items():
        if day in empty:
            continue
        schema = stored.metadata().schema.to_arrow_schema()
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
        metadata={"days_checked": len(context.partition_keys), "empty_days": len(empty), "mismatches": MetadataValue.json(mismatches)},
    )


#: Completeness tolerance: landed posts may differ from the API's count by this many posts or this
#: fraction of the count, whichever is larger (posts deleted or made protected between the count
#: and the search, the counts endpoint's own approximations).
COUNT_TOLERANCE_POSTS = 2
COUNT_TOLERANCE_FRACTION = 0.01


def count_mismatches(days: dict[str, dict]) -> tuple[dict[str, dict], list[str]]:
    """Compare each day's ``posts`` with its ``api_post_count`` (``raw_tweets`` metadata values).

    Returns ``({day: {"landed", "api_count", "difference"}}`` for days off by more than
    ``max(COUNT_TOLERANCE_POSTS, COUNT_TOLERANCE_FRACTION × api_count)``, ``[days without a count]``).
    """
    off, without = {}, []
    for day, values in sorted(days.items()):
        counted, landed = values.get("api_post_count"), values.get("posts")
        if counted is None or landed is None:
            without.append(day)
            continue
        if abs(landed - counted) > max(COUNT_TOLERANCE_POSTS, COUNT_TOLERANCE_FRACTION * counted):
            off[day] = {"landed": landed, "api_count": counted, "difference": landed - counted}
    return off, without


@asset_check(
    asset=pipeline.raw_tweets,
    partitions_def=daily_partitions,
    description=(
        "Posts landed per day match the X API's own count for the same query and window "
        "(GET /2/tweets/counts/recent or /counts/all, recorded as api_post_count by the live search "
        f"source) within max({COUNT_TOLERANCE_POSTS} posts, {COUNT_TOLERANCE_FRACTION:.0%}): a silently short day "
        "(a dropped page, a cap hit) warns. Days without a count (other sources, timelines) are not compared."
    ),
)
def raw_posts_match_api_count(context: AssetCheckExecutionContext) -> AssetCheckResult:
    """Read the latest ``raw_tweets`` materialization of each of the run's days and compare its
    ``posts`` with its ``api_post_count`` (:func:`count_mismatches`); fails with severity WARN."""
    days = list(context.partition_keys)
    records = context.instance.fetch_materializations(AssetRecordsFilter(asset_key=checked_asset(context)[0], asset_partitions=days), limit=len(days)).records
    latest: dict[str, dict] = {}
    for record in records:  # newest first: the first per day is its latest materialization
        materialization = record.asset_materialization
        if materialization is not None and materialization.partition not in latest:
            latest[materialization.partition] = {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}
    off, without = count_mismatches({day: latest.get(day, {}) for day in days})
    if off:
        context.log.warning(
            f"{len(off)} day(s) differ from the X API's count by more than the tolerance: "
            + ", ".join(f"{d} landed {v['landed']:,} of {v['api_count']:,}" for d, v in list(off.items())[:10])
        )
    counted = [d for d in days if d not in without]
    return AssetCheckResult(
        passed=not off,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "days_checked": len(days),
            "days_with_api_count": len(counted),
            "posts_landed": sum(int(latest[d].get("posts", 0)) for d in counted),
            "api_post_count": sum(int(latest[d]["api_post_count"]) for d in counted),
            "days_off": MetadataValue.json(off),
            "days_without_api_count": MetadataValue.json(without[:100]),
            "tolerance": f"max({COUNT_TOLERANCE_POSTS} posts, {COUNT_TOLERANCE_FRACTION:.0%} of the count)",
        },
    )
