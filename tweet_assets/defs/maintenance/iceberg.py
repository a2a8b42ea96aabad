"""``iceberg_maintenance``: the Iceberg tables' upkeep, as an asset with its job and daily schedule
(stopped by default), part of the code location when a table can be Iceberg
(``TWEET_ASSETS_TABLE_FORMAT=iceberg`` or a collection with ``table_format: iceberg``:
:func:`maintenance`). Hive tables need none.

For each collection's Iceberg table (found in the catalog by its location, as the compliance job
finds it: tweet_assets.tables.iceberg.IcebergTable.at):

1. compacts each day held in several data files (after compliance rewrites, or files other engines
   added) into one, sorted by ``created_at, id``, all such days in one commit, each day under its
   lease (a day a run is writing is skipped this time, and named);
2. expires every snapshot older than ``TWEET_ASSETS_ICEBERG_SNAPSHOT_RETENTION`` hours and deletes
   the files only those reached; sweeps orphan files older than ``TWEET_ASSETS_ICEBERG_ORPHAN_GRACE_S``,
   except those a run holding their day's lease may still commit (tweet_assets.tables.maintenance).

Its metadata says data files before and after, days compacted and skipped, snapshots expired and
files deleted. Athena's ``OPTIMIZE <table> REWRITE DATA USING BIN_PACK`` and ``VACUUM <table>`` do
the same from Athena (docs/warehouses.md).
"""

import os
from pathlib import Path

from dagster import AssetExecutionContext, DefaultScheduleStatus, Definitions, MaterializeResult, MetadataValue, ScheduleDefinition, asset, define_asset_job, definitions

from tweet_assets.defs.pipeline.layout import published_collections
from tweet_assets.lake.io_manager import LakeResource
from tweet_assets.lake.leases import DayLeases, LeaseConflict, dagster_run_finished
from tweet_assets.lake.prefixes import sub_lake
from tweet_assets.tables import table_format
from tweet_assets.tables.iceberg import IcebergTable, renew_leases
from tweet_assets.tables.maintenance import compact, expire_snapshots, remove_orphan_files

#: The defs folder, where each collection's defs.yaml is.
DEFS = Path(__file__).resolve().parent.parent
#: A day held in at least this many data files is compacted into one.
COMPACT_FROM_FILES = 2


@asset(
    group_name="maintenance",
    kinds={"iceberg"},
    description=(
        "Each Iceberg published table compacted (a day in several data files rewritten as one), its snapshots older than "
        "TWEET_ASSETS_ICEBERG_SNAPSHOT_RETENTION expired with the files only they held, and orphan files removed. "
        "Hive tables are left alone."
    ),
)
def iceberg_maintenance(context: AssetExecutionContext, lake: LakeResource) -> MaterializeResult:
    store = lake.lake()
    tables = {}
    for c in published_collections(context.instance):
        zone = sub_lake(store, c.prefix)
        names = [c.prefix] if c.prefix else [os.environ.get("TWEET_ASSETS_GLUE_TABLE", "").strip() or "tweets"]
        table = IcebergTable.at(zone, "tweets", names)
        if table is None:
            continue
        leases = DayLeases(zone, context.run.run_id, "iceberg_maintenance compaction", dagster_run_finished(context.instance))
        held, skipped = [], []

        def hold(days: list[str]) -> list[str]:  # a day a run is writing now is compacted another time
            for day in days:
                try:
                    leases.acquire_one(day)
                    held.append(day)
                except LeaseConflict as exc:
                    skipped.append(day)
                    context.log.info(f"{table.qualified_name}: {day} not compacted this time: {str(exc).split(':')[0]}")
            return list(held)

        try:
            compaction = compact(table, None, COMPACT_FROM_FILES, before_commit=lambda days: renew_leases(leases, days), run_id=context.run.run_id, hold=hold)
        finally:
            leases.release(held)
        loaded, expiry = expire_snapshots(table.load())
        sweep = remove_orphan_files(loaded, leases=leases)
        tables[table.qualified_name] = {
            "data_files_before": compaction.files_before,
            "data_files_after": compaction.files_after,
            "days_compacted": len(compaction.days),
            "days_skipped_held_by_a_run": skipped,
            "snapshots_expired": expiry.snapshots_expired,
            "snapshots_kept": expiry.snapshots_kept,
            "files_deleted": expiry.deleted + sweep.deleted,
            "orphans_younger_than_grace": sweep.young,
            "orphans_kept_for_runs_holding_their_day": sweep.held,
        }
        context.log.info(
            f"{table.qualified_name}: data files {compaction.files_before} → {compaction.files_after} ({len(compaction.days)} day(s) compacted), "
            f"{expiry.snapshots_expired} snapshot(s) expired, {expiry.deleted + sweep.deleted} file(s) deleted"
            + (f"; {sweep.held} unreferenced file(s) kept while run(s) {', '.join(sweep.held_by)} hold their days" if sweep.held else "")
        )
    return MaterializeResult(
        metadata={
            "tables": MetadataValue.json(tables),
            "data_files_before": sum(t["data_files_before"] for t in tables.values()),
            "data_files_after": sum(t["data_files_after"] for t in tables.values()),
            "files_deleted": sum(t["files_deleted"] for t in tables.values()),
        }
    )


_iceberg_maintenance_job = define_asset_job(
    "iceberg_maintenance_job",
    selection=[iceberg_maintenance.key],
    description="Compact, expire snapshots and remove orphan files of every Iceberg published table.",
)

#: Daily, 04:00 UTC (after the daily runs, away from the weekly compliance job's 03:00); stopped by default.
_iceberg_maintenance_schedule = ScheduleDefinition(
    name="iceberg_maintenance_schedule",
    job=_iceberg_maintenance_job,
    cron_schedule="0 4 * * *",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.STOPPED,
)


def iceberg_used(env=None) -> bool:
    """Whether any published table of this code location can be Iceberg: the deployment's format,
    or a collection's ``table_format: iceberg`` (its defs.yaml under defs/)."""
    if table_format(env) == "iceberg":
        return True
    import yaml

    for path in sorted(DEFS.glob("*/defs.yaml")):  # as tweet_assets.components.lookup finds them (components imports defs: not imported here)
        for document in yaml.safe_load_all(path.read_text()):
            attributes = (document.get("attributes") or {}) if isinstance(document, dict) else {}
            if document and document.get("type") == "tweet_assets.TweetCollection" and str(attributes.get("table_format", "")).strip().lower() == "iceberg":
                return True
    return False


@definitions
def maintenance() -> Definitions:
    """The asset, its job and schedule when a table can be Iceberg (:func:`iceberg_used`), else nothing."""
    if not iceberg_used():
        return Definitions()
    return Definitions(assets=[iceberg_maintenance], jobs=[_iceberg_maintenance_job], schedules=[_iceberg_maintenance_schedule])
