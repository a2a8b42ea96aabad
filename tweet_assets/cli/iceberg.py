"""``tweet-assets iceberg import``: load the published Hive days into the Iceberg table
(tweet_assets.tables.migrate), printing the posts read and committed per day."""

from __future__ import annotations

import argparse
import sys
import uuid

NAME = "iceberg"
ENV = [
    "TWEET_ASSETS_LAKE_URL (the lake; default ./lake)", "TWEET_ASSETS_ICEBERG_CATALOG (a pyiceberg catalog's name; default: the embedded SQLite catalog of a local lake)",
    "TWEET_ASSETS_GLUE_DATABASE (the table's namespace; default default), TWEET_ASSETS_GLUE_TABLE (default tweets)",
    "PYICEBERG_CATALOG__<NAME>__* or .pyiceberg.yaml (pyiceberg's own catalog configuration)", "AWS_REGION, AWS_ENDPOINT_URL, AWS_PROFILE (an s3:// lake, Glue)",
]


def add_parser(sub, formatter, epilog) -> argparse.ArgumentParser:
    iceberg = sub.add_parser(NAME, help="the Iceberg table: import the published Hive days into it",
                             description="Work on the published Iceberg table (docs/warehouses.md).", epilog=epilog(ENV), formatter_class=formatter)
    commands = iceberg.add_subparsers(dest="iceberg_command", required=True, metavar="SUBCOMMAND", help="import: load the published Hive days into the Iceberg table")
    load = commands.add_parser("import", help="load published Hive days into the Iceberg table (idempotent)",
                               description="Load the published Hive days (tweets/dt=…) into the Iceberg table, each day replacing that day, "
                                           "in commits of --days-per-commit days under the days' leases. A day the table already holds with the same "
                                           "rows is left alone: run it twice, same table. Prints the posts read and committed per day.",
                               epilog=epilog(ENV), formatter_class=formatter)
    load.add_argument("--from", dest="first", metavar="DAY", help="first day, YYYY-MM-DD (default: the first published)")
    load.add_argument("--to", dest="last", metavar="DAY", help="last day, inclusive (default: the last published)")
    load.add_argument("--collection", metavar="NAME", help="act on this collection (default: the environment's, tweets)")
    load.add_argument("--days-per-commit", type=int, default=30, metavar="N", help="days per commit (default 30)")
    iceberg._tweet_assets_import = load  # noqa: SLF001 - its errors show its own usage
    return iceberg


def run(args, command: argparse.ArgumentParser) -> int:
    import os
    from datetime import datetime

    from tweet_assets.lake.leases import DayLeases, LeaseConflict
    from tweet_assets.partitions import DAY_FORMAT
    from tweet_assets.schema import DEFAULT_TABLE
    from tweet_assets.settings import lake_from_env
    from tweet_assets.tables.catalogs import CatalogError
    from tweet_assets.tables.hive import HiveTable
    from tweet_assets.tables.iceberg import IcebergTable, TableCommitError
    from tweet_assets.tables.iceberg_schema import SchemaChangeRefused
    from tweet_assets.tables.migrate import import_days

    usage = command._tweet_assets_import  # noqa: SLF001
    for flag, value in (("--from", args.first), ("--to", args.last)):
        if value is not None:
            try:
                datetime.strptime(value, DAY_FORMAT)
            except ValueError:
                usage.error(f"{flag} {value!r} is not a YYYY-MM-DD day")
    if args.first and args.last and args.first > args.last:
        usage.error(f"--from {args.first} is after --to {args.last}")
    if args.days_per_commit < 1:
        usage.error(f"--days-per-commit {args.days_per_commit}: use a whole number >= 1")
    from tweet_assets import config
    from tweet_assets.cli.checks import check_lake_url

    try:
        config.check()
        check_lake_url(lake_from_env().url)
    except ValueError as exc:
        usage.exit(2, f"tweet-assets iceberg import: {exc}\n")
    name = os.environ.get("TWEET_ASSETS_GLUE_TABLE", "").strip() or DEFAULT_TABLE
    folder = "tweets"
    if args.collection:
        from tweet_assets.components.lookup import find_collection

        try:
            collection = find_collection(args.collection)
        except LookupError as exc:
            usage.error(str(exc))
        name, folder = collection.table or collection.name, f"{collection.name}/tweets"
    lake = lake_from_env().lake()
    hive = HiveTable(lake, folder)
    days = hive.days(args.first, args.last)
    if not days:
        print(f"tweet-assets iceberg import: no published Hive day under {hive.location}" + (f" in {args.first or '…'}…{args.last or '…'}" if args.first or args.last else ""))
        return 0
    run_id = f"iceberg-import-{uuid.uuid4().hex[:12]}"
    try:
        table = IcebergTable.open(lake, folder, name)
        print(f"tweet-assets iceberg import: {len(days)} Hive day(s) {days[0]}…{days[-1]} from {hive.location} into {table.qualified_name} (catalog {table.catalog_label})", flush=True)
        posts = committed = unchanged = 0
        for day in import_days(hive, table, days, DayLeases(hive.zone, run_id, "iceberg import"), run_id, args.days_per_commit):
            posts += day.posts_in
            committed += day.committed
            unchanged += day.unchanged
            said = "unchanged (already in the table)" if day.unchanged else f"{day.committed:,} committed (snapshot {day.snapshot_id})"
            print(f"{day.day}: {day.posts_in:,} posts in, {said}", flush=True)
    except (CatalogError, LeaseConflict, SchemaChangeRefused, TableCommitError) as exc:
        print(f"tweet-assets iceberg import: {exc}", file=sys.stderr)
        return 1
    print(f"imported {len(days)} day(s): {posts:,} posts in, {committed:,} committed, {unchanged} day(s) unchanged")
    return 0
