"""``tweet-assets ddl``: print the DDL for a table location: Athena's ``CREATE EXTERNAL TABLE``
(default), or with ``--dialect redshift`` / ``--dialect snowflake`` the Redshift Spectrum or
Snowflake setup, from the same schema the pipeline writes (tweet_assets/warehouses/); with
``--format iceberg`` what each needs for the Iceberg table instead."""

from __future__ import annotations

import argparse

from tweet_assets.cli.checks import day_range
from tweet_assets.cli.table_options import DEFAULT_LOCATION, add_table_options, check_table_options
from tweet_assets.schema import DEFAULT_TABLE
from tweet_assets.tables import DEFAULT_FORMAT, FORMATS
from tweet_assets.warehouses import DIALECTS
from tweet_assets.warehouses import ddl as warehouse_ddl

NAME = "ddl"
ENV = ["TWEET_ASSETS_START_DATE (default of --first-day; else 2006-03-21)"]


def add_parser(sub, formatter, epilog) -> argparse.ArgumentParser:
    ddl = sub.add_parser(NAME, help="print the DDL of a warehouse (Athena by default, Redshift Spectrum, Snowflake)",
                         description="Print the CREATE statements for the published table at --location (SQL only on stdout: `tweet-assets ddl > table.sql`).",
                         epilog=epilog(ENV), formatter_class=formatter)
    add_table_options(ddl)
    ddl.add_argument("--dialect", choices=DIALECTS, default="athena", help="the warehouse (default athena)")
    ddl.add_argument("--format", dest="table_format", choices=FORMATS, default=DEFAULT_FORMAT,
                     help="the table format: hive (the dt= files, partition projection) or iceberg (the Iceberg table in the Glue catalog); default hive")
    ddl.add_argument("--iam-role", help="redshift: the IAM_ROLE ARN; snowflake: the STORAGE_AWS_ROLE_ARN (placeholders if unset)")
    ddl.add_argument("--days", help="redshift: add the partitions of these days, START...END (YYYY-MM-DD, inclusive)")
    ddl.add_argument("--collection", metavar="NAME", help="act on this collection (default: the environment's, tweets)")
    return ddl


def collection_defaults(args) -> None:
    """``ddl --collection NAME``: the collection's table name, lake folder and first day where not given."""
    from tweet_assets.components.lookup import find_collection

    collection = find_collection(args.collection)
    if args.location == DEFAULT_LOCATION:
        args.location = DEFAULT_LOCATION.replace("/tweets/", f"/{collection.name}/tweets/")
    if args.table == DEFAULT_TABLE:
        args.table = collection.table or collection.name
    if args.first_day is None and collection.start_date:
        args.first_day = collection.start_date


def run(args, command: argparse.ArgumentParser) -> int:
    if args.collection:
        try:
            collection_defaults(args)
        except LookupError as exc:
            command.error(str(exc))
    stop = check_table_options(args, command, NAME)
    if stop is not None:
        return stop
    days = day_range(command, args.days) if args.days else ()
    if args.table_format == "iceberg" and days:
        command.error("--days adds Hive partitions: an Iceberg table has none to add (--format iceberg)")
    print(warehouse_ddl(args.dialect, args.location, table=args.table, database=args.database, first_day=args.first_day, iam_role=args.iam_role, days=days, table_format=args.table_format), end="")
    return 0
