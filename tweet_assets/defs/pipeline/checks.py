"""Asset checks, partition-aware: each day of the run that materialized them gets its own result.

Each check yields one evaluation per partition (:func:`partition_checks.per_partition`), so Dagit's
asset graph, the Checks tab and the partitions view show every day passed or failed (a range run's
single ``AssetCheckResult`` would leave every day "Skipped" in Dagster 1.13: partition_checks.py).
The two on ``clean_tweets`` are blocking: a failure stops ``s3_parquet`` from publishing the run.
The one on ``s3_parquet`` reads the written Parquet files back and compares their physical schema
with the declared one (``schema.PUBLISHED_SCHEMA``), so what Athena reads is what the DDL says.
The one on ``raw_tweets`` (completeness, a warning) compares the posts landed per day with the X
API's own count of matching posts; only the live search source records that count, so the check is
part of the code location only with ``TWEET_ASSETS_SOURCE=x_api`` (:func:`checks`), and a day
without a count (a timeline, a count the API refused) is not evaluated (Skipped, the reason in
the run log), never passed on zeros.
"""


import os
import warnings

import pyarrow.parquet as pq

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetRecordsFilter,
    Definitions,
    MetadataValue,
    PreviewWarning,
    asset_check,
    definitions,
)

from tweet_assets.defs.pipeline import assets as pipeline  # the module, not its objects: dg loads each object from the file that defines it
from tweet_assets.defs.pipeline.partition_checks import own_output, per_partition
from tweet_assets.defs.pipeline.layout import asset_metadata, checked_asset
from tweet_assets.lake.empty_days import EmptyTable, read_days, recorded_empty
from tweet_assets.lake.io_manager import LakeIOManager, LakeResource
from tweet_assets.lake.values import StoredTable
from tweet_assets.partitions import daily_partitions, day_window
from tweet_assets.schema import PUBLISHED_SCHEMA
from tweet_assets.tables.iceberg import IcebergTable
from tweet_assets.tables.iceberg_schema import SchemaChangeRefused, evolution, file_schema

# Partitioned asset checks are "preview" in Dagster 1.13; they are what makes checks per day.
warnings.filterwarnings("ignore", category=PreviewWarning, message=".*partitions_def on an AssetCheckSpec.*")


@own_output  # one snapshot in every process (see own_output)
@asset_check(asset=pipeline.clean_tweets, blocking=True, partitions_def=daily_partitions, description="Every row has an id, and no id appears twice in a day.")
def ids_unique_and_not_null(context: AssetCheckExecutionContext, clean_tweets: dict[str, StoredTable]):
    """Per day: ``rows``, ``null_ids``, ``duplicate_ids`` (counts); passes when both are 0."""
    results = {}
    for day, stored in clean_tweets.items():
        ids = stored.frame(["id"]).get_column("id")
        nulls, dupes = ids.null_count(), ids.len() - ids.n_unique()
        results[day] = AssetCheckResult(passed=not nulls and not dupes, metadata={"rows": ids.len(), "null_ids": nulls, "duplicate_ids": dupes})
    yield from per_partition(context, results)


@own_output
@asset_check(asset=pipeline.clean_tweets, blocking=True, partitions_def=daily_partitions, description="Every created_at lies in its partition's UTC day [00:00Z, next 00:00Z).")
def created_at_in_partition(context: AssetCheckExecutionContext, clean_tweets: dict[str, StoredTable]):
    """Per day: ``rows`` and ``rows_outside`` (null or outside the day's UTC window); passes at 0."""
    results = {}
    for day, stored in clean_tweets.items():
        start, end = day_window(day)
        col = stored.frame(["created_at"]).get_column("created_at")
        bad = int((col.is_null() | (col < start) | (col >= end)).sum())
        results[day] = AssetCheckResult(passed=not bad, metadata={"rows": col.len(), "rows_outside": bad})
    yield from per_partition(context, results)


def schema_mismatches(schema) -> list[str]:
    """How a Parquet file's Arrow ``schema`` differs from ``PUBLISHED_SCHEMA`` (empty when equal)."""
    if schema.equals(PUBLISHED_SCHEMA, check_metadata=False):
        return []
    diff = [
        f"{f.name}: {f.type} != {schema.field(f.name).type if f.name in schema.names else 'missing'}"
        for f in PUBLISHED_SCHEMA
        if f.name not in schema.names or not schema.field(f.name).type.equals(f.type)
    ]
    extra = [n for n in schema.names if n not in PUBLISHED_SCHEMA.names]
    return diff + [f"unexpected column {n}" for n in extra] or ["column order or nullability differs"]


@asset_check(
    asset=pipeline.s3_parquet,
    partitions_def=daily_partitions,
    description="Each written Parquet file's schema equals the declared published schema (the Athena DDL's; an Iceberg table's: its schema with field ids, timestamps in µs).",
)
def published_schema_matches(context: AssetCheckExecutionContext, lake: LakeResource):
    """Per day: ``empty_day`` (a day without posts stores no object: nothing Athena could misread)
    and ``mismatches`` (one line per differing column)."""
    store = lake.lake()
    checked, table = checked_asset(context)  # s3_parquet or a collection's [<name>, tweets]
    definition = asset_metadata(context, checked)
    if definition.get(pipeline.TABLE_FORMAT_METADATA) == "iceberg":
        yield from per_partition(context, iceberg_schema_results(IcebergTable.open(store, table, str(definition.get("athena/table"))), list(context.partition_keys)))
        return
    keys = {day: LakeIOManager.key(table, "parquet", day) for day in context.partition_keys}
    # a day stored empty has no object (tweet_assets.lake.empty_days): 0 rows, nothing to compare
    days = read_days(store, keys, "parquet", lambda missing: recorded_empty(context.instance, checked, missing), lambda s, k, f: StoredTable(s, k, s.uri(k)))
    results = {}
    for day, stored in days.items():
        if isinstance(stored, EmptyTable):
            results[day] = AssetCheckResult(passed=True, description="no posts that day: no object stored, nothing to compare", metadata={"empty_day": True, "mismatches": MetadataValue.json([])})
            continue
        mismatches = schema_mismatches(stored.metadata().schema.to_arrow_schema())
        results[day] = AssetCheckResult(passed=not mismatches, metadata={"empty_day": False, "uri": stored.uri, "mismatches": MetadataValue.json(mismatches)})
    yield from per_partition(context, results)


def iceberg_schema_results(published: IcebergTable, days: list[str]) -> dict[str, AssetCheckResult]:
    """Per day: the footer of each of the day's data files (read with pyarrow through the table's
    FileIO) against the table's schema with its field ids (tweet_assets.tables.iceberg_schema), and
    the table's columns against schema.py's (``mismatches``, one line each)."""
    table = published.load()
    if table is None:
        return {day: AssetCheckResult(passed=False, metadata={"mismatches": MetadataValue.json([f"no Iceberg table {published.qualified_name}"])}) for day in days}
    expected = file_schema(table.schema())
    try:  # the table holds schema.py's columns when adding them would change nothing
        evolved = evolution(table)
        declared = [] if evolved is None else [f"the table lacks schema.py's column(s) {sorted(set(evolved.column_names) - set(table.schema().column_names))}"]
    except SchemaChangeRefused as exc:
        declared = [str(exc)]
    files = published.day_files(table, days)
    results = {}
    for day in days:
        mismatches = list(declared)
        for data_file in files.get(day, []):
            with table.io.new_input(data_file.file_path).open() as handle:
                found = pq.read_metadata(handle).schema.to_arrow_schema()
            name = data_file.file_path.rsplit("/", 1)[-1]
            mismatches += [f"{name}: {line}" for line in schema_mismatches_of(expected, found)]
            ids = [(f.name, (f.metadata or {}).get(b"PARQUET:field_id")) for f in found]
            if ids != [(f.name, f.metadata[b"PARQUET:field_id"]) for f in expected if f.name in found.names]:
                mismatches.append(f"{name}: field ids {ids} differ from the table's")
        results[day] = AssetCheckResult(
            passed=not mismatches,
            metadata={"empty_day": not files.get(day), "data_files": len(files.get(day, [])), "mismatches": MetadataValue.json(mismatches)},
        )
    return results


def schema_mismatches_of(expected, schema) -> list[str]:
    """How Arrow ``schema`` differs from ``expected`` by name and type (empty when equal; nullability
    and field metadata are not compared)."""
    diff = [
        f"{f.name}: {f.type} != {schema.field(f.name).type if f.name in schema.names else 'missing'}"
        for f in expected
        if f.name not in schema.names or not schema.field(f.name).type.equals(f.type)
    ]
    return diff + [f"unexpected column {n}" for n in schema.names if n not in expected.names]


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
        "(a dropped page, a cap hit) warns. A day without a count is not evaluated (Skipped; the reason is in the run log)."
    ),
)
def raw_posts_match_api_count(context: AssetCheckExecutionContext):
    """Read the latest ``raw_tweets`` materialization of each of the run's days and compare its
    ``posts`` with its ``api_post_count`` (:func:`count_mismatches`); a day off fails with severity
    WARN; a day without a count yields no evaluation (Dagit: Skipped) and a log line with the
    source's reason (``api_post_count_skipped`` / ``api_post_count_error``)."""
    days = list(context.partition_keys)
    raw_key = checked_asset(context)[0]  # raw_tweets or a collection's [<name>, raw_tweets]
    latest: dict[str, dict] = {}
    for day in days:  # the latest materialization of each day (one query each: older ones never crowd out a day)
        records = context.instance.fetch_materializations(AssetRecordsFilter(asset_key=raw_key, asset_partitions=[day]), limit=1).records
        materialization = records[0].asset_materialization if records else None
        if materialization is not None:
            latest[day] = {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}
    off, without = count_mismatches({day: latest.get(day, {}) for day in days})
    if off:
        context.log.warning(
            f"{len(off)} day(s) differ from the X API's count by more than the tolerance: "
            + ", ".join(f"{d} landed {v['landed']:,} of {v['api_count']:,}" for d, v in list(off.items())[:10])
        )
    if without:
        reasons = {d: latest.get(d, {}).get("api_post_count_skipped") or latest.get(d, {}).get("api_post_count_error") or "no api_post_count recorded" for d in without}
        context.log.info("not compared (no X API count), shown as Skipped: " + "; ".join(f"{d}: {r}" for d, r in list(reasons.items())[:10]))
    tolerance = f"max({COUNT_TOLERANCE_POSTS} posts, {COUNT_TOLERANCE_FRACTION:.0%} of the count)"
    results = {}
    for day in days:
        if day in without:
            continue
        landed, counted = int(latest[day]["posts"]), int(latest[day]["api_post_count"])
        results[day] = AssetCheckResult(
            passed=day not in off,
            severity=AssetCheckSeverity.WARN,
            metadata={"posts_landed": landed, "api_post_count": counted, "difference": landed - counted, "tolerance": tolerance},
        )
    yield from per_partition(context, results)


#: The sources that record ``api_post_count`` (``TWEET_ASSETS_SOURCE``): only the live search.
COUNTING_SOURCES = ("x_api",)


@definitions
def checks() -> Definitions:
    """The pipeline's checks; ``raw_posts_match_api_count`` only when the source records the X
    API's count (``TWEET_ASSETS_SOURCE`` in :data:`COUNTING_SOURCES`): with the sample, a replay or
    the stream there is nothing to compare, and a check that cannot compare is not shown."""
    found = [ids_unique_and_not_null, created_at_in_partition, published_schema_matches]
    if os.environ.get("TWEET_ASSETS_SOURCE", "sample").strip().lower() in COUNTING_SOURCES:
        found.append(raw_posts_match_api_count)
    return Definitions(asset_checks=found)
