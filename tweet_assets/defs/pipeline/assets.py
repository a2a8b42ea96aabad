"""The three assets, thin: call a source or ``flatten``, return values, add metadata.

``raw_tweets`` (landing zone) → ``clean_tweets`` (one typed row per post) → ``s3_parquet`` (the
published Athena table). All share the daily UTC partitions and ``BackfillPolicy.single_run()``, so
a backfill of any range is one run (or runs of N days with ``TWEET_ASSETS_BACKFILL_PARTITIONS_PER_RUN``,
partitions.py); every value is ``{partition_key: value}``.
"""


import functools
import itertools
import os
import time
import warnings
from collections import Counter

import polars as pl
from dagster import AssetExecutionContext, AssetIn, AssetsDefinition, BackfillPolicy, BetaWarning, MaterializeResult, MetadataValue, asset

from tweet_assets.compliance.ledger import ledger_ids
from tweet_assets.compliance.rewrite import filter_chunks
from tweet_assets.transform.day_rows import DayResult
from tweet_assets.transform.day_workers import WORKERS, day_groups, flatten_days_in_threads
from tweet_assets.transform.flatten import finalize_days
from tweet_assets.transform.pages import PAGE_REASONS, count_quarantined
from tweet_assets.lake.io_manager import LakeResource, hold_days_for_source, zone_of
from tweet_assets.lake.values import RawDay, SpooledTable, SpoolSet, StoredPages, StoredTable, spool_table
from tweet_assets.partitions import backfill_policy_from_env, projection_start_date
from tweet_assets.lake.parquet import SORTED_BY, is_sorted_by
from tweet_assets.schema import PUBLISHED_SCHEMA
from tweet_assets.warehouses.athena import dagster_table_schema
from tweet_assets.sources.base import PostSource
from tweet_assets.sources.budget import guard_run
from tweet_assets.warehouses import DIALECTS
from tweet_assets.warehouses import ddl as warehouse_ddl
from tweet_assets.schema import DEFAULT_TABLE
from tweet_assets.lake.spools import open_spool_dir
from tweet_assets.defs.pipeline.layout import ENVIRONMENT, PipelineLayout, with_resource_key
from tweet_assets.lake.leases import DayLeases, dagster_run_finished, lost_lease
from tweet_assets.tables.iceberg import IcebergTable, renew_leases

# BackfillPolicy is marked beta in Dagster 1.13; it is the documented way to run a range in one run.
warnings.filterwarnings("ignore", category=BetaWarning, message=".*backfill_policy.*")

GROUP = "tweets"
OWNERS = ["team:data-engineering"]
SINGLE_RUN = BackfillPolicy.single_run()
#: single_run(), or multi_run(N) with TWEET_ASSETS_BACKFILL_PARTITIONS_PER_RUN=N (partitions.py)
BACKFILL_POLICY = backfill_policy_from_env()
PROGRESS_EVERY_S = 10.0
QUARANTINE_SAMPLE = 20
PUBLISHED_TABLE = "tweets"
#: Definition metadata naming the published asset's table format (``iceberg``; absent: Hive).
TABLE_FORMAT_METADATA = "tweet_assets/table_format"


def land_raw_tweets(context: AssetExecutionContext, source: PostSource, lake: LakeResource) -> dict[str, RawDay]:
    """Check the lake takes writes, then stream the window's pages from the source into one spool
    file per day."""
    days = list(context.partition_keys)
    start, end = context.partition_time_window
    # before the first request to the source (the live API spends quota): a missing bucket or a
    # denied write fails now, naming bucket, key and endpoint (tweet_assets.lake.store.Lake.check_writable)
    lake.lake().check_writable(context.run.run_id)
    # one writer per day, and one source per landed day (tweet_assets.lake.leases, docs/concurrency.md)
    raw_table = str(context.assets_def.metadata_by_key[context.asset_key].get("lake/table", "raw_tweets"))
    zone = zone_of(lake.lake(), raw_table)[0]
    hold_days_for_source(zone, days, context.run.run_id, source.source_name, context.instance)
    # spend follows intent: a run that would overrun the post cap or its limit is refused before its
    # first post request; its expected posts are reserved in the lake's cap ledger until the fetch
    # ends, however it ends (tweet_assets.sources.budget)
    budget = guard_run(source, lake.lake(), run_id=context.run.run_id, collection="/".join(context.asset_key.path[:-1]) or "tweets",
                       start=start, end=end, log=context.log, run_finished=dagster_run_finished(context.instance))
    spool_dir = open_spool_dir("raw_tweets", context.run.run_id)  # removed by the IO manager once stored, or at the step's end
    with budget, SpoolSet(spool_dir, days) as spools:  # compressed on a worker thread as pages arrive
        stats = {day: Counter() for day in days}
        spans: dict[str, list[str]] = {day: [] for day in days}
        damaged: dict[str, list[str]] = {day: [] for day in days}  # damaged input files (their unreadable rest lands here)
        context.log.info(f"fetching {len(days)} day(s) {days[0]}…{days[-1]} from {source.describe()}")
        started = last_report = time.monotonic()
        for page in budget.pages(source.pages(start, end, context.log)):
            lost = lost_lease(zone.url, context.run.run_id)  # found by the leases' heartbeat: stop fetching (and spending quota) now
            if lost is not None:
                raise lost
            if page.day not in spools.spools:
                raise RuntimeError(f"source {source.source_name} yielded a page for {page.day}, outside the run's {days[0]}…{days[-1]} ({page.location})")
            spools.write(page.day, page.body)
            day_stats = stats[page.day]
            day_stats["pages"] += 1
            day_stats["posts"] += page.posts
            day_stats["api_errors"] += page.api_errors
            day_stats["requests"] += page.requests
            day_stats["retries"] += page.retries
            day_stats["rate_limit_wait_s"] += page.rate_limit_wait_s
            spans[page.day].extend(s for s in (page.earliest, page.latest) if s)
            if page.damaged:
                damaged[page.day].append(page.damaged)
            if time.monotonic() - last_report >= PROGRESS_EVERY_S:
                last_report = time.monotonic()
                context.log.info(
                    f"{sum(s['pages'] for s in stats.values()):,} pages, {sum(s['posts'] for s in stats.values()):,} posts so far (latest day {page.day})"
                )
        result = spools.close()
    learnt = source.day_metadata()  # e.g. the API's own post count per day (sources/x_api.py)
    for day in days:
        s = stats[day]
        context.add_asset_metadata(
            {
                "pages": s["pages"],
                "posts": s["posts"],
                "api_errors": s["api_errors"],
                "earliest_created_at": min(spans[day]) if spans[day] else "",
                "latest_created_at": max(spans[day]) if spans[day] else "",
                "source": source.describe(),
                "uncompressed_bytes": spools.spools[day].bytes_in,
                "posts_read": 0,  # what X's post cap was charged for (an X API source's own count, in learnt)
                "api_requests": s["requests"],
                "api_retries": s["retries"],
                "rate_limit_wait_s": round(s["rate_limit_wait_s"], 1),
                "damaged_input": MetadataValue.json(damaged[day]),
                **learnt.get(day, {}),
            },
            partition_key=day,
        )
    total = sum(s["posts"] for s in stats.values())
    context.log.info(f"landed {total:,} posts in {sum(s['pages'] for s in stats.values()):,} pages over {len(days)} day(s) in {time.monotonic() - started:.1f}s")
    return budget.landed(result)  # after a cap hit: the day in progress (and later ones) not landed


def flatten_clean_tweets(context: AssetExecutionContext, raw_tweets: dict[str, StoredPages], lake: LakeResource) -> dict[str, SpooledTable]:
    """Flatten the run's landed pages (read back in batches, several small days per batch) into
    each day's rows; a run of many days is flattened on worker threads (tweet_assets.transform.day_workers).
    Posts in the compliance ledger (tweet_assets.compliance.ledger) are left out, so a recompute never
    republishes a deleted post."""
    started = time.monotonic()
    removed_ids = ledger_ids(lake.lake())
    last = [started]

    def progress(pages: int, rows: int) -> None:
        if time.monotonic() - last[0] >= PROGRESS_EVERY_S:
            last[0] = time.monotonic()
            context.log.info(f"{pages:,} pages flattened, {rows:,} rows so far")

    spool_dir = open_spool_dir("clean_tweets", context.run.run_id)  # removed by the IO manager once stored, or at the step's end
    sizes = {day: stored.size() for day, stored in raw_tweets.items()}
    groups = day_groups(sizes, WORKERS)
    if len(groups) > 1:
        context.log.info(f"flattening {len(raw_tweets)} days on {len(groups)} threads: " + ", ".join(f"{g[0]}…{g[-1]}" for g in groups))
    days = flatten_days_in_threads(
        {day: stored.lines for day, stored in raw_tweets.items()}, sizes, lambda day, out: _write_day(day, out, spool_dir, removed_ids), progress=progress
    )
    empty = finalize_days([], list(raw_tweets))  # days without pages: an empty table each
    result: dict[str, SpooledTable] = {}
    empty_days = ((day, _write_day(day, empty[day], spool_dir)) for day in raw_tweets if day not in result)
    for day, (table, metadata, warning) in itertools.chain(days, empty_days):
        if warning:
            context.log.warning(warning)
        result[day] = table
        context.add_asset_metadata(metadata, partition_key=day)
    total = sum(t.rows for t in result.values())
    context.log.info(f"{total:,} rows over {len(result)} day(s) in {time.monotonic() - started:.1f}s")
    context.add_output_metadata({"duration_s": round(time.monotonic() - started, 3)})
    return {day: result[day] for day in raw_tweets}


def _write_day(day: str, out: DayResult, spool_dir: str, removed_ids=None) -> tuple[SpooledTable, dict, str | None]:
    """Write one flattened day to ``<spool_dir>/<day>.parquet`` (published schema, sorted), without
    the posts in ``removed_ids`` (the compliance ledger's), and return it with its partition
    metadata and, if posts were quarantined, a warning line. Runs on a worker thread: no Dagster
    context here."""
    reasons = Counter(q.reason for q in out.quarantined)
    # counted per post (#27 point 10): a quarantined page counts the posts found in it, not 1
    quarantined, unknown = count_quarantined(out.quarantined)
    in_quarantined_pages = sum(q.posts or 0 for q in out.quarantined if q.reason in PAGE_REASONS)
    warning = None
    if out.quarantined:
        warning = f"{day}: quarantined {quarantined} post(s){f' and {unknown} page(s) of unknown posts' if unknown else ''} ({dict(reasons)}); first: " + "; ".join(
            f"{q.location} {q.reason}: {q.detail[:200]}" for q in out.quarantined[:3]
        )
    authors: list = []
    # unique() copies: a column of the chunk itself could keep its spill batch alive
    chunks = out.arrow_chunks(each=lambda chunk: authors.append(chunk.get_column("author_id").unique()))
    removed: list[int] = []
    if removed_ids is not None and len(removed_ids):
        chunks = filter_chunks(chunks, removed_ids, removed)
    if out.height:
        table = spool_table(chunks, spool_dir, day, PUBLISHED_SCHEMA, SORTED_BY)
    else:  # a day without rows stores no object (tweet_assets.lake.empty_days): no file to write either
        table = SpooledTable(os.path.join(spool_dir, f"{day}.parquet"), 0)
    out.close()
    metadata = {
        "dagster/row_count": table.rows,
        "compliance_removed": len(removed),
        "posts_in_pages": out.stats["posts"] + in_quarantined_pages,
        "authors": pl.concat(authors).n_unique() if out.height else 0,
        "quarantined": quarantined,
        "quarantined_pages_posts_unknown": unknown,
        "quarantined_by_reason": MetadataValue.json(dict(reasons)),
        "quarantine_sample": MetadataValue.json([q.__dict__ for q in out.quarantined[:QUARANTINE_SAMPLE]]),
        "api_errors": out.stats["api_errors"],
        "duplicates_removed": out.stats["duplicates"],
        "posts_merged_from_copies": out.stats["merged_posts"],
        "superseded_edits": out.stats["superseded_edits"],
        "values_coerced_or_nulled": MetadataValue.json({k: v for k, v in out.stats.items() if k.startswith(("coerced:", "invalid_"))}),
    }
    return table, metadata, warning


def publish_s3_parquet(context: AssetExecutionContext, clean_tweets: dict[str, StoredTable], lake: LakeResource) -> dict:
    """Publish each day's rows: clean_tweets' object as it is when its footer shows the published
    schema and rows sorted by ``(created_at, id)`` (a server-side copy on S3), otherwise the rows
    cast to the published schema and sorted, one day at a time."""
    spool_dir = open_spool_dir("s3_parquet", context.run.run_id)  # removed by the IO manager once stored, or at the step's end
    result: dict = {}
    copied = 0
    for day, stored in clean_tweets.items():
        footer = stored.metadata()
        if footer.schema.to_arrow_schema().equals(PUBLISHED_SCHEMA, check_metadata=False) and is_sorted_by(footer, SORTED_BY):
            result[day], rows = stored, footer.num_rows
            copied += 1
        else:
            result[day] = spool_table(_sorted_batches(stored), spool_dir, day, PUBLISHED_SCHEMA, SORTED_BY)
            rows = result[day].rows
        context.add_asset_metadata({"dagster/row_count": rows, "rows": rows}, partition_key=day)
    table, warehouse_table, first_day = _publishing(context)  # the collection's (tweet_assets.defs.pipeline.layout)
    location = lake.lake().uri(table)
    context.log.info(f"publishing {len(result)} day(s) to {location}: {copied} copied as they are, {len(result) - copied} rewritten")
    context.add_output_metadata(
        {
            "table_location": location,
            # each starts with its "-- dialect: …" line (tweet_assets.warehouses)
            **{
                f"{dialect}_ddl": MetadataValue.md(f"```sql\n{warehouse_ddl(dialect, location, table=warehouse_table, first_day=first_day, header=True)}```")
                for dialect in DIALECTS
            },
        }
    )
    return result


def publish_iceberg(context: AssetExecutionContext, clean_tweets: dict[str, StoredTable], lake: LakeResource) -> MaterializeResult:
    """Commit the run's days into the collection's Iceberg table in one commit (tweet_assets.tables.iceberg):
    each day replaced by clean_tweets' rows, timestamps in µs, under the run's day leases (renewed
    right before each commit attempt, released after). Each partition's metadata: the snapshot, data
    files and records added and removed."""
    table, warehouse_table, _ = _publishing(context)
    store = lake.lake()
    published = IcebergTable.open(store, table, warehouse_table)
    zone, zone_table = zone_of(store, table)
    days = list(clean_tweets)
    leases = DayLeases(zone, context.run.run_id, zone_table, dagster_run_finished(context.instance))
    context.log.info(f"committing {len(days)} day(s) to Iceberg table {published.qualified_name} (catalog {published.catalog_label}) at {published.location}")
    commit = published.publish({day: functools.partial(_sorted_batches, stored) for day, stored in clean_tweets.items()}, context.run.run_id, before_commit=lambda: renew_leases(leases, days), log=context.log.info)
    leases.release(days)  # the run's writes of these days end here (as the IO manager releases them after the Hive table)
    for day in days:
        rows = commit.days[day].records_added
        context.add_asset_metadata({"dagster/row_count": rows, "rows": rows, **commit.day_metadata(day)}, partition_key=day)
    context.log.info(f"snapshot {commit.snapshot_id} of {published.qualified_name}: {len(days)} day(s) in {commit.attempts} attempt(s)" + (f", columns added {commit.columns_added}" if commit.columns_added else ""))
    return MaterializeResult(
        metadata={
            "table_location": published.location,
            "iceberg/table": published.qualified_name,
            "iceberg/catalog": published.catalog_label,
            "iceberg/snapshot_id": str(commit.snapshot_id),
            "commit_attempts": commit.attempts,
            # what each warehouse needs for this table (tweet_assets.warehouses, --format iceberg)
            **{
                f"{dialect}_ddl": MetadataValue.md(f"```sql\n{warehouse_ddl(dialect, published.location, table=warehouse_table, database=published.database, table_format='iceberg')}```")
                for dialect in DIALECTS
            },
        }
    )


def _sorted_batches(stored: StoredTable):
    """The day's rows a row group at a time when they are sorted by ``created_at``; otherwise
    the whole day, sorted."""
    if stored.frame(["created_at"]).get_column("created_at").is_sorted():
        yield from stored.batches()
    else:
        yield stored.frame().sort(["created_at", "id"]).to_arrow()


def _publishing(context: AssetExecutionContext) -> tuple[str, str, str]:
    """The running published asset's lake table (``tweets`` or ``<collection>/tweets``), warehouse
    table name and first partition day (``YYYY-MM-DD``), from its definition."""
    metadata = context.assets_def.metadata_by_key[context.asset_key]
    table = str(metadata["lake/table"])
    # the environment's table: the fixed projection start (the partitions' start may be a moving
    # window, partitions.default_start_date); a collection's: its own first partition
    first_day = projection_start_date() if table == PUBLISHED_TABLE else context.assets_def.partitions_def.start.strftime("%Y-%m-%d")
    return table, str(metadata.get("athena/table") or DEFAULT_TABLE), first_day


# --- The builders: the same three bodies, decorated for one collection (tweet_assets.components).
# The environment's collection (ENVIRONMENT) gives today's keys, group and lake tables.


def raw_tweets_asset(layout: PipelineLayout = ENVIRONMENT) -> AssetsDefinition:
    """``raw_tweets`` of ``layout``'s collection: its source resource, its lake table, the shared ``x_api`` pool."""
    return asset(
        name="raw_tweets",
        key_prefix=layout.key_prefix,
        partitions_def=layout.partitions_def,
        backfill_policy=BACKFILL_POLICY,
        pool="x_api",
        group_name=layout.group,
        owners=OWNERS,
        kinds={"python", "json"},
        metadata={"lake/table": layout.table("raw_tweets"), "lake/format": "jsonl.gz", **layout.metadata},
        description=(
            "The day's X API v2 response pages as received (data, includes, meta, errors), one page per "
            "line in gzip JSON lines: the landing zone, from which everything downstream can be "
            "recomputed without calling the API again."
        ),
    )(with_resource_key(land_raw_tweets, "source", layout.source_key))


def clean_tweets_asset(layout: PipelineLayout = ENVIRONMENT) -> AssetsDefinition:
    """``clean_tweets`` of ``layout``'s collection (reads its ``raw_tweets``)."""
    return asset(
        name="clean_tweets",
        key_prefix=layout.key_prefix,
        ins={"raw_tweets": AssetIn(key=layout.key("raw_tweets"))},
        partitions_def=layout.partitions_def,
        backfill_policy=BACKFILL_POLICY,
        group_name=layout.group,
        owners=OWNERS,
        kinds={"polars", "parquet"},
        metadata={"lake/table": layout.table("clean_tweets"), "lake/format": "parquet", "dagster/column_schema": dagster_table_schema(), **layout.metadata},
        description=(
            "One typed row per post (its copies in the day merged field by field): every field of the API v2 post "
            "object and its expansions (author, referenced posts, media, poll, place) as columns "
            "(tweet_assets.schema). Unreadable pages and posts are quarantined and counted."
        ),
    )(flatten_clean_tweets)


def _lake_kind() -> list[str]:
    """Dagit's ``s3`` kind tag, only on an ``s3://`` lake (issue #39: kinds follow the configured lake)."""
    return ["s3"] if os.environ.get("TWEET_ASSETS_LAKE_URL", "").strip().startswith("s3://") else []


def _published(layout: PipelineLayout) -> dict:
    """What the published table's asset is, in either format: key, input, partitions, group, owners."""
    return {
        "name": layout.published_name,
        "key_prefix": layout.key_prefix,
        "ins": {"clean_tweets": AssetIn(key=layout.key("clean_tweets"))},
        "partitions_def": layout.partitions_def,
        "backfill_policy": BACKFILL_POLICY,
        "group_name": layout.group,
        "owners": OWNERS,
    }


def s3_parquet_asset(layout: PipelineLayout = ENVIRONMENT) -> AssetsDefinition:
    """The published table of ``layout``'s collection (``s3_parquet``, or ``[<collection>, tweets]``),
    in its table format (Hive files, or an Iceberg table: :func:`iceberg_asset`)."""
    if layout.table_format == "iceberg":
        return iceberg_asset(layout)
    return asset(
        **_published(layout),
        kinds={"parquet", "athena", *_lake_kind()},
        metadata={
            "lake/table": layout.table(PUBLISHED_TABLE),
            "lake/format": "parquet",
            "dagster/column_schema": dagster_table_schema(),
            "athena/table": layout.warehouse_table,
            **layout.metadata,
        },
        description=(
            f"The published table: Hive layout {layout.table(PUBLISHED_TABLE)}/dt=YYYY-MM-DD/part-00000.parquet (dt not in the "
            "file), zstd, timestamps in ms UTC, sorted by created_at, one object per day overwritten on "
            "rerun. Query it from Athena, Redshift Spectrum or Snowflake with the DDL in this asset's metadata (athena_ddl, redshift_ddl, snowflake_ddl)."
        ),
    )(publish_s3_parquet)


def iceberg_asset(layout: PipelineLayout) -> AssetsDefinition:
    """The published table of ``layout``'s collection as an Iceberg table (same key, group and
    partitions as the Hive one; no IO manager: the asset commits itself)."""
    return asset(
        **_published(layout),
        kinds={"iceberg", "parquet", *_lake_kind()},
        metadata={
            "lake/table": layout.table(PUBLISHED_TABLE),
            TABLE_FORMAT_METADATA: "iceberg",
            "dagster/column_schema": dagster_table_schema(),
            "athena/table": layout.warehouse_table,
            **layout.metadata,
        },
        description=(
            f"The published table as an Apache Iceberg v2 table ({layout.warehouse_table}, data under {layout.table(PUBLISHED_TABLE)}/data/): "
            "partitioned by day(created_at), zstd Parquet, timestamps in µs UTC, sorted by created_at, id; one commit per run replaces "
            "exactly the run's days. Each partition's metadata names its snapshot. Query it with pyiceberg, polars.scan_iceberg or "
            "Athena (docs/warehouses.md)."
        ),
    )(publish_iceberg)


raw_tweets = raw_tweets_asset()
clean_tweets = clean_tweets_asset()
s3_parquet = s3_parquet_asset()
