"""Compliance in Dagster: the ``compliance_ledger`` asset, its check, the ``compliance_job`` and its
weekly schedule (stopped by default). The work itself is in :mod:`tweet_assets.compliance`.

One run of ``compliance_job``:

1. lists the published days (``tweets/dt=…``) in the configured range (default: all of them) and
   reads their ``id`` column and the ids their rows reference (``retweeted_id``, ``quoted_id``,
   ``replied_to_id``: a referenced post's copy is held in the referencing page's ``includes``);
2. submits the ids (deduplicated per day and per job) to X API v2 batch compliance jobs (``ids_per_job`` ids each, one job at a time),
   logging the status of each as it is polled, and downloads each result;
3. adds the results to the ledger (``clean_tweets/_compliance_ledger/part-00000.parquet``, ids only) and stores
   it **before** removing anything, so a failed removal is finished by the next run;
4. rewrites every day of the range holding a ledger id, published or referenced by a published
   row (published, clean and raw objects, retweets of a ledger post included: see
   :func:`tweet_assets.compliance.rewrite.remove_from_day`), and records for each such day a new
   ``s3_parquet`` materialization whose metadata counts the posts removed, by reason.

``clean_tweets`` drops ledger ids and retweets of them as it flattens, so a recompute (from raw, or a replay that lands
a deleted post again) never republishes one; the check ``no_published_id_in_ledger`` proves it for
the days the ledger names.
"""


import os
import posixpath
import time
import warnings
from collections import Counter
from datetime import datetime, timezone
from typing import Iterator

import pyarrow as pa
import pyarrow.compute as pc
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetExecutionContext,
    AssetKey,
    AssetMaterialization,
    Config,
    DefaultScheduleStatus,
    MaterializeResult,
    MetadataValue,
    PreviewWarning,
    ScheduleDefinition,
    asset,
    asset_check,
    define_asset_job,
)
from pydantic import Field

from tweet_assets.compliance.ledger import LEDGER_KEY, add_to_ledger, ledger_ids, parse_results, read_ledger
from tweet_assets.compliance.api import ComplianceApi
from tweet_assets.compliance.rewrite import DayRemoval, published_days, published_ids, remove_from_day, submitted_ids
from tweet_assets.defs.pipeline import partition_checks  # one evaluation per partition (Dagit shows each day)
from tweet_assets.lake.io_manager import LakeIOManager, LakeResource
from tweet_assets.partitions import daily_partitions
from tweet_assets.lake.store import Lake
from tweet_assets.lake import lineage
from tweet_assets.lake.leases import DayLeases, dagster_run_finished, lease_wait_s
from tweet_assets.lake.prefixes import sub_lake
from tweet_assets.defs.pipeline.layout import asset_metadata, checked_asset, published_collections
from tweet_assets.tables.iceberg import IcebergTable
from tweet_assets.tables.maintenance import parquet_ids
from tweet_assets.tables.removal import remove_posts

# Partitioned asset checks are "preview" in Dagster 1.13 (as in checks.py).
warnings.filterwarnings("ignore", category=PreviewWarning, message=".*partitions_def on an AssetCheckSpec.*")

GROUP = "compliance"
OWNERS = ["team:data-engineering"]
#: Post ids per compliance job (one upload file: ~20 bytes an id).
IDS_PER_JOB = 500_000


class ComplianceConfig(Config):
    """Which published days to check (inclusive, ``YYYY-MM-DD``, UTC; empty: from the first / to
    the last published day) and how many ids per compliance job."""

    first_day: str = Field(default="", description="First published day to check (empty: the first).")
    last_day: str = Field(default="", description="Last published day to check (empty: the last).")
    ids_per_job: int = Field(default=IDS_PER_JOB, description="Post ids uploaded per compliance job.")
    raw_stream: bool = Field(
        default=os.environ.get("TWEET_ASSETS_SOURCE", "").strip().lower() == "stream",
        description=(
            "Also rewrite the filtered stream's landed segments (raw_stream/dt=…) of affected days. "
            "Default: on when TWEET_ASSETS_SOURCE=stream (the role then has the raw_stream prefix)."
        ),
    )


@asset(
    group_name=GROUP,
    owners=OWNERS,
    kinds={"python", "parquet", "s3"},
    metadata={"lake/key": LEDGER_KEY, "lake/format": "parquet"},
    description=(
        "Posts X reports as deleted, protected, suspended or withheld (X API v2 batch compliance "
        "jobs over the published ids): id, action, reason, the post's created_at, redacted_at, "
        "checked_at, job_id. Ids only, never content. Materializing it also removes those posts "
        "from tweets, clean_tweets and raw_tweets (each affected day's object rewritten)."
    ),
)
def compliance_ledger(context: AssetExecutionContext, config: ComplianceConfig, lake: LakeResource, compliance_api: ComplianceApi) -> MaterializeResult:
    """Check the range's published ids with X, record the affected ones, remove them everywhere."""
    store = lake.lake()
    # every collection's published table (the environment's tweets/ and each <collection>/tweets/): one ledger for all
    collections = [(c, sub_lake(store, c.prefix)) for c in published_collections(context.instance, config.raw_stream)]
    places = [(c, zone, day) for c, zone in collections for day in published_days(zone, config.first_day or None, config.last_day or None)]
    # a collection's Iceberg table (tweet_assets.tables), found by its location in the catalog
    icebergs = [(c, zone, t) for c, zone in collections if (t := IcebergTable.at(zone, "tweets", _table_names(c))) is not None]
    places += [(c, t, day) for c, _, t in icebergs for day in t.days(config.first_day or None, config.last_day or None)]
    days = sorted({day for _, _, day in places})
    context.log.info(
        f"checking {len(days)} published day(s) {days[0] if days else ''}…{days[-1] if days else ''} under "
        + ", ".join(zone.uri("tweets") for _, zone in collections)
    )
    ledger = read_ledger(store)
    rows_before = ledger.num_rows
    found, jobs = [], []
    started = time.monotonic()
    checked = 0
    waits = compliance_api.wait_budget()  # one ceiling on the run's 429 waits, all its jobs together
    for number, part in enumerate(_id_batches([(zone, day) for _, zone, day in places], max(1, config.ids_per_job)), start=1):
        job, body = compliance_api.check(part, name=f"tweet_assets {days[0]}..{days[-1]} part {number}", log=context.log, budget=waits)
        result = parse_results(body, datetime.now(timezone.utc), job.id)
        checked += len(part)
        context.log.info(f"compliance job {job.id}: {result.num_rows:,} of {len(part):,} ids affected ({checked:,} ids of {len(days)} day(s) checked so far, {time.monotonic() - started:.0f}s)")
        found.append(result)
        jobs.append(job.id)
        # stored after each job and before any removal: a later failure loses no result, and a
        # failed removal is finished by the next run (it rewrites every day holding a ledger id)
        ledger = add_to_ledger(store, result)  # conditional: a concurrent run's ids are kept
    new = pa.concat_tables(found) if found else ledger.schema.empty_table()
    reasons = dict(zip(ledger.column("id").to_pylist(), ledger.column("reason").to_pylist()))
    removed_by_day = {}
    for c, zone in collections:
        removed = _remove(context, zone, [day for d_c, where, day in places if d_c is c and where is zone], ledger, c.stream_prefix, c.key)
        removed_by_day.update({f"{c.prefix}/{day}" if c.prefix else day: r for day, r in removed.items()})
    iceberg = Counter()
    for c, zone, table in icebergs:
        removed, counts = _remove_iceberg(context, zone, table, ledger, c.stream_prefix, c.key)
        removed_by_day.update({f"{c.prefix}/{day}" if c.prefix else day: r for day, r in removed.items()})
        iceberg.update(counts)
    removed_reasons = Counter(_reason(reasons, i) for day in removed_by_day.values() for i in day.removed_ids)
    return MaterializeResult(
        metadata={
            "dagster/row_count": ledger.num_rows,
            "uri": store.uri(LEDGER_KEY),
            "days_checked": len(days),
            "ids_checked": checked,
            "compliance_jobs": MetadataValue.json(jobs),
            "affected_ids_reported": new.num_rows,
            "new_ledger_rows": ledger.num_rows - rows_before,
            "removed_by_reason": MetadataValue.json(dict(removed_reasons)),
            "days_rewritten": MetadataValue.json(sorted(d for d, r in removed_by_day.items() if r.removed_ids or r.raw_posts)),
            # Iceberg tables: ids removed, data files rewritten (row-level deletes), files physically deleted (expiry and orphans)
            **({f"iceberg_{k}": v for k, v in sorted(iceberg.items())} if icebergs else {}),
        }
    )


#: The reason counted for a removed retweet of a ledger post (its own id is not in the ledger).
RETWEET_OF_REMOVED = "retweet_of_removed_post"


def _reason(reasons: dict, post_id: int) -> str:
    if post_id not in reasons:
        return RETWEET_OF_REMOVED
    return reasons[post_id] or "unknown"


def _table_names(c) -> list[str]:
    """The Iceberg table names to try first for collection ``c``: the environment's
    (``TWEET_ASSETS_GLUE_TABLE`` or ``tweets``), a collection's own name (its default table)."""
    return [c.prefix] if c.prefix else [os.environ.get("TWEET_ASSETS_GLUE_TABLE", "").strip() or "tweets"]


def _submitted(store, day: str, loaded: dict) -> pa.Array:
    """The ids to check of one day: from a Hive day's object, or an Iceberg table's rows (each table
    loaded once per list of ids, kept in ``loaded``: one catalog call for the days read together)."""
    if not isinstance(store, IcebergTable):
        return submitted_ids(store, day)
    if id(store) not in loaded:
        loaded[id(store)] = store.load()
    return store.submitted_ids(day, loaded[id(store)])


def _id_batches(places: list[tuple[Lake, str]], size: int) -> Iterator[list[int]]:
    """The ids to check of ``places`` (``(lake of a collection, day)``: published and referenced ids,
    :func:`tweet_assets.compliance.rewrite.submitted_ids`), day after day, in lists of at most ``size``
    ids without repeats (an id referenced on several days or collections can recur in a later list;
    the ledger keeps its first result), so a lake of years is never held whole."""
    batch: dict[int, None] = {}
    loaded: dict = {}
    for store, day in places:
        for i in _submitted(store, day, loaded).to_pylist():
            batch[i] = None
            if len(batch) == size:
                loaded.clear()  # a compliance job runs (minutes) before the next day is read: load the tables again then
                yield list(batch)
                batch = {}
    if batch:
        yield list(batch)


def _remove(context: AssetExecutionContext, store: Lake, days: list[str], ledger: pa.Table, stream_prefix: str | None, published_key: AssetKey = AssetKey("s3_parquet")) -> dict:
    """Rewrite each day of ``days`` whose published rows hold or reference (retweet, quote, reply)
    a ledger id, or named by a ledger row's created_at; record per day the posts removed by reason
    as a materialization of ``published_key`` (``s3_parquet`` or a collection's ``[<name>, tweets]``)."""
    ids = ledger.column("id").combine_chunks()
    reasons = dict(zip(ledger.column("id").to_pylist(), ledger.column("reason").to_pylist()))
    named = {t.strftime("%Y-%m-%d") for t in ledger.column("created_at").to_pylist() if t is not None}
    out = {}
    # a day is rewritten under its lease (tweet_assets.lake.leases): a run writing that day (a
    # backfill) finishes first, and its published rows are then filtered too
    leases = DayLeases(store, context.run.run_id, "compliance_job rewrite", dagster_run_finished(context.instance))
    for day in days:
        if day not in named and not pc.any(pc.is_in(submitted_ids(store, day), value_set=ids)).as_py():
            continue
        leases.acquire_one(day, wait_s=lease_wait_s())
        try:
            removal = _rewrite_day(store, day, ids, stream_prefix, leases)
        finally:
            leases.release([day])
        out[day] = removal
        if not (removal.removed_ids or removal.raw_posts or removal.raw_unreadable_lines_dropped):
            continue
        by_reason = Counter(_reason(reasons, i) for i in removal.published)
        context.log.info(
            f"{day}: removed {len(removal.published)} published, {len(removal.clean)} clean, {removal.raw_posts} raw post(s) "
            f"({removal.raw_pages_rewritten} raw page(s) rewritten) by reason {dict(by_reason)}"
        )
        if removal.published:
            context.log_event(
                AssetMaterialization(
                    asset_key=published_key,
                    partition=day,
                    description="rewritten without posts in the compliance ledger",
                    metadata={
                        "dagster/row_count": removal.published_rows,
                        "rows": removal.published_rows,
                        "compliance_removed": len(removal.published),
                        "compliance_removed_by_reason": MetadataValue.json(dict(by_reason)),
                        "compliance_raw_posts_removed": removal.raw_posts,
                        "compliance_raw_pages_rewritten": removal.raw_pages_rewritten,
                    },
                )
            )
    return out


def _rewrite_day(store: Lake, day: str, ids: pa.Array, stream_prefix: str | None, leases: DayLeases) -> DayRemoval:
    """Rewrite ``day``'s objects without ``ids`` (:func:`~tweet_assets.compliance.rewrite.remove_from_day`,
    every write fenced by the day's held lease) and, when the zones agreed before, refresh the day's
    lineage with the ETags the writes answered, right after a forced check of the lease (a run paused
    past it fails with ``LeaseLost`` instead of overwriting the new holder's entries)."""
    agreed = all(lineage.input_problem(store, day, zone) is None for zone in ("clean_tweets", "tweets"))
    removal = remove_from_day(store, day, ids, stream_prefix, leases)
    if agreed and (removal.removed_ids or removal.raw_posts or removal.raw_unreadable_lines_dropped):
        lineage.refresh_after_rewrite(store, day, leases.run_id, removal.etags, fence=lambda: leases.check(day, force=True))
    return removal


def _remove_iceberg(context: AssetExecutionContext, store: Lake, table: IcebergTable, ledger: pa.Table, stream_prefix: str | None, published_key: AssetKey) -> tuple[dict, Counter]:
    """Remove the ledger's posts (and retweets of them) from a collection's Iceberg table in one
    commit under the affected days' leases, the same days' clean and raw objects as today, then
    expire old snapshots and delete the files only they held (tweet_assets.tables.removal); one
    ``published_key`` materialization per day naming the snapshot. Returns ``({day: DayRemoval},
    counts)``."""
    ids = ledger.column("id").combine_chunks()
    reasons = dict(zip(ledger.column("id").to_pylist(), ledger.column("reason").to_pylist()))
    named = {t.strftime("%Y-%m-%d") for t in ledger.column("created_at").to_pylist() if t is not None}
    leases = DayLeases(store, context.run.run_id, "compliance_job delete", dagster_run_finished(context.instance))
    others: dict[str, DayRemoval] = {}

    def zones(day: str) -> None:  # the day's clean and raw objects (and any Hive object left), under the held lease
        others[day] = _rewrite_day(store, day, ids, stream_prefix, leases)

    done = remove_posts(table, ids, named, leases, lease_wait_s(), per_day=zones, log=context.log.info)
    out = {}
    for day in done.days:
        removal = others.get(day, DayRemoval(day))
        removal.published = sorted(set(removal.published) | set(done.removal.removed_ids.get(day, [])))
        out[day] = removal
        if not done.removal.removed_ids.get(day):
            continue
        by_reason = Counter(_reason(reasons, i) for i in done.removal.removed_ids[day])
        context.log.info(f"{day}: removed {len(done.removal.removed_ids[day])} post(s) from Iceberg table {table.qualified_name}, {len(removal.clean)} clean, {removal.raw_posts} raw, by reason {dict(by_reason)}")
        context.log_event(
            AssetMaterialization(
                asset_key=published_key,
                partition=day,
                description=f"rows removed from Iceberg table {table.qualified_name} (posts in the compliance ledger)",
                metadata={
                    "table_format": "iceberg",
                    "iceberg/snapshot_id": str(done.removal.snapshot_ids[-1]) if done.removal.snapshot_ids else "",
                    "compliance_removed": len(done.removal.removed_ids[day]),
                    "compliance_removed_by_reason": MetadataValue.json(dict(by_reason)),
                    "compliance_raw_posts_removed": removal.raw_posts,
                },
            )
        )
    counts = Counter(
        ids_removed=sum(len(v) for v in done.removal.removed_ids.values()),
        data_files_rewritten=done.removal.files_rewritten,
        data_files_dropped=done.removal.files_deleted,
        snapshots_expired=done.expiry.snapshots_expired,
        files_deleted=done.files_deleted,
        orphans_kept_for_runs_holding_their_day=done.sweep.held,
    )
    context.log.info(
        f"Iceberg table {table.qualified_name}: {counts['ids_removed']} row(s) removed over {len(done.days)} day(s) in one commit, "
        f"{counts['data_files_rewritten']} data file(s) rewritten; {counts['snapshots_expired']} snapshot(s) expired, {counts['files_deleted']} file(s) deleted"
        + (f"; {done.sweep.held} unreferenced file(s) kept while run(s) {', '.join(done.sweep.held_by)} hold their days (removed by a later sweep)" if done.sweep.held else "")
    )
    return out, counts


def ledger_ids_published(store: Lake, days: list[str] | None = None, published: Lake | None = None) -> dict[str, int]:
    """``{day: count}`` of ledger ids still published in ``published`` (a collection's lake,
    tweet_assets.lake.prefixes; default ``store``), over ``days`` (default: the days the ledger's
    created_at values name that have a published object). The ledger is ``store``'s."""
    ledger = read_ledger(store)
    store = published or store
    ids = ledger.column("id").combine_chunks()
    if days is None:
        named = {t.strftime("%Y-%m-%d") for t in ledger.column("created_at").to_pylist() if t is not None}
        days = [d for d in published_days(store) if d in named]
    found = {}
    for day in days:
        hits = int(pc.sum(pc.is_in(published_ids(store, day), value_set=ids)).as_py() or 0)
        if hits:
            found[day] = hits
    return found


def ledger_ids_in_iceberg_files(table: IcebergTable, ids: pa.Array) -> tuple[dict[str, int], int]:
    """``({file: count}, files read)``: the ledger ids (as ``id`` or ``retweeted_id``) in **every**
    Parquet file under the Iceberg table's location, each read with pyarrow, not through the
    catalog: data files of old snapshots and orphans count too (what is in storage, not what a
    query sees)."""
    loaded = table.load()
    if loaded is None:
        return {}, 0
    read = parquet_ids(loaded)
    hit = pc.or_(pc.fill_null(pc.is_in(read.column("id"), value_set=ids), False), pc.fill_null(pc.is_in(read.column("retweeted_id"), value_set=ids), False))
    files = Counter(read.column("file").filter(hit).to_pylist())
    return dict(files), len(set(read.column("file").to_pylist()))


@asset_check(
    asset=compliance_ledger,
    description=(
        "No published id is in the compliance ledger: Hive days (tweets/dt=…, on the days the ledger's posts were created), and every "
        "Parquet file under each Iceberg table's location, read with pyarrow (data files of old snapshots and orphans too)."
    ),
)
def no_published_id_in_ledger(context: AssetCheckExecutionContext, lake: LakeResource) -> AssetCheckResult:
    store = lake.lake()
    found = {}
    iceberg_files = 0
    ids = ledger_ids(store)
    for c in published_collections(context.instance):  # every collection's tweets/ (the environment's: its days as keys)
        zone = sub_lake(store, c.prefix)
        found.update({f"{c.prefix}/{day}" if c.prefix else day: n for day, n in ledger_ids_published(store, None, zone).items()})
        table = IcebergTable.at(zone, "tweets", _table_names(c))
        if table is not None:
            in_files, read = ledger_ids_in_iceberg_files(table, ids)
            iceberg_files += read
            found.update(in_files)
    return AssetCheckResult(
        passed=not found,
        metadata={"ledger_rows": len(ids), "published_ledger_ids_by_day": MetadataValue.json(found), "iceberg_parquet_files_read": iceberg_files},
    )


@asset_check(
    asset=AssetKey("s3_parquet"),
    partitions_def=daily_partitions,
    description="No id published on the run's days is in the compliance ledger (clean_tweets leaves ledger posts out; this proves it per day).",
)
def published_ids_not_in_ledger(context: AssetCheckExecutionContext, lake: LakeResource):
    """Per day of the run: ``published_ledger_ids_by_day`` (``{day: count}``, empty when none) and
    ``stored`` (False for a day without posts: no object, nothing published); one evaluation per
    day (tweet_assets.defs.pipeline.partition_checks)."""
    store = lake.lake()
    key, table_path = checked_asset(context)
    zone = sub_lake(store, posixpath.dirname(table_path))  # s3_parquet's tweets/ or <collection>/tweets/
    results = {}
    definition = asset_metadata(context, key)
    if definition.get("tweet_assets/table_format") == "iceberg":  # the day's rows as the table has them now
        table = IcebergTable.open(store, table_path, str(definition.get("athena/table")))
        ids = ledger_ids(store)
        loaded = table.load()  # once for the run's days
        for day in context.partition_keys:
            day_ids = table.read_day(day, ["id", "retweeted_id"], loaded)
            hits = int(pc.sum(pc.or_(pc.fill_null(pc.is_in(day_ids.column("id"), value_set=ids), False), pc.fill_null(pc.is_in(day_ids.column("retweeted_id"), value_set=ids), False))).as_py() or 0)
            results[day] = AssetCheckResult(passed=not hits, metadata={"stored": day_ids.num_rows > 0, "published_ledger_ids_by_day": MetadataValue.json({day: hits} if hits else {})})
        yield from partition_checks.per_partition(context, results)
        return
    for day in context.partition_keys:
        if zone.size(LakeIOManager.key("tweets", "parquet", day)) is None:  # empty days store no object
            results[day] = AssetCheckResult(passed=True, description="no posts that day: nothing published", metadata={"stored": False, "published_ledger_ids_by_day": MetadataValue.json({})})
            continue
        found = ledger_ids_published(store, [day], zone)
        results[day] = AssetCheckResult(passed=not found, metadata={"stored": True, "published_ledger_ids_by_day": MetadataValue.json(found)})
    yield from partition_checks.per_partition(context, results)


compliance_job = define_asset_job(
    "compliance_job",
    selection=[compliance_ledger.key],
    description="X API v2 batch compliance over the published ids; records the ledger and removes affected posts from every zone.",
)

#: Weekly, Monday 03:00 UTC; stopped by default (turn it on in Dagit or with `dagster schedule start`).
compliance_schedule = ScheduleDefinition(
    name="compliance_weekly_schedule",
    job=compliance_job,
    cron_schedule="0 3 * * 1",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.STOPPED,
)

COMPLIANCE_ASSETS = [compliance_ledger]
COMPLIANCE_CHECKS = [no_published_id_in_ledger, published_ids_not_in_ledger]
COMPLIANCE_JOBS = [compliance_job]
COMPLIANCE_SCHEDULES = [compliance_schedule]
