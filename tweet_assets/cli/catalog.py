"""``tweet-assets catalog``: create or update the published table in the AWS Glue Data Catalog
(partition projection on ``dt``), optionally storing days as Glue partitions."""

from __future__ import annotations

import argparse
import json
import os
import sys

from tweet_assets.cli.checks import day_range
from tweet_assets.cli.table_options import add_table_options, check_table_options

NAME = "catalog"
ENV = ["TWEET_ASSETS_START_DATE (default of --first-day)", "AWS_REGION / AWS_DEFAULT_REGION, AWS_ENDPOINT_URL_GLUE / AWS_ENDPOINT_URL, AWS_PROFILE"]


def add_parser(sub, formatter, epilog) -> argparse.ArgumentParser:
    catalog = sub.add_parser(NAME, help="create or update the table in the AWS Glue Data Catalog",
                             description="Create or update the table in the AWS Glue Data Catalog (partition projection on dt), optionally storing partitions.",
                             epilog=epilog(ENV), formatter_class=formatter)
    add_table_options(catalog)
    catalog.add_argument("--days", help="also store these days as Glue partitions (for Redshift Spectrum, EMR), START...END")
    catalog.add_argument("--dry-run", action="store_true", help="print the Glue TableInput as JSON, call nothing")
    return catalog


def run(args, command: argparse.ArgumentParser) -> int:
    """Upsert the Glue table (AWS settings from the standard variables), then store ``--days`` as its
    partitions; print what was done."""
    stop = check_table_options(args, command, NAME)
    if stop is not None:
        return stop
    from tweet_assets.tables import FORMAT_ENV, table_format

    try:
        iceberg = table_format() == "iceberg"
    except ValueError as exc:
        command.exit(2, f"tweet-assets {NAME}: {exc}\n")
    if iceberg:  # a Hive table of the same name would shadow the Iceberg one in Glue (and Athena)
        command.exit(2, f"tweet-assets {NAME}: {FORMAT_ENV}=iceberg: the Iceberg table is registered in Glue by its own commits "
                        "(TWEET_ASSETS_ICEBERG_CATALOG), so this command, which registers the Hive table, would put a second table "
                        f"of that name beside it. Unset {FORMAT_ENV} to register a Hive table.\n")
    days = day_range(command, args.days) if args.days else []
    from tweet_assets.warehouses.glue import CatalogError, GlueCatalogResource, table_input

    if args.dry_run:
        print(json.dumps({"DatabaseName": args.database, "TableInput": table_input(args.location, args.table, args.first_day)}, indent=2))
        return 0
    glue = GlueCatalogResource(
        database=args.database,
        table=args.table,
        region_name=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None,
        endpoint_url=os.environ.get("AWS_ENDPOINT_URL_GLUE") or os.environ.get("AWS_ENDPOINT_URL") or None,
    )
    try:
        result = glue.upsert_table(args.location, first_day=args.first_day)
        created, existing = glue.register_partitions(args.location, days) if days else (0, 0)
    except CatalogError as exc:
        print(f"tweet-assets catalog: {exc}", file=sys.stderr)
        return 1
    detail = ", ".join(f"{k} {list(v)}" for k, v in (("added", result.added), ("removed", result.removed), ("retyped", result.retyped), ("also changed", result.other_changes)) if v and result.action == "updated")
    print(f"Glue table {result.database}.{result.table}: {result.action}" + (f" ({detail})" if detail else ""))
    if days:
        print(f"partitions: {created} created, {existing} already there")
    return 0
