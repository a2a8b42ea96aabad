"""The options ``ddl`` and ``catalog`` share: where the published table is and what it is called,
checked before anything is printed or called (one line, exit status 2)."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime

from tweet_assets.partitions import DAY_FORMAT, START_DATE_ENV, projection_start_date
from tweet_assets.schema import DEFAULT_DATABASE, DEFAULT_TABLE

DEFAULT_LOCATION = "s3://YOUR-BUCKET/tweet_assets/tweets/"


def add_table_options(command: argparse.ArgumentParser) -> None:
    """``--location``, ``--table``, ``--database``, ``--first-day``."""
    command.add_argument("--location", default=DEFAULT_LOCATION, help="the table's S3 prefix, s3://BUCKET/…/tweets/ (default a placeholder)")
    command.add_argument("--table", default=DEFAULT_TABLE, help=f"the table's name (default {DEFAULT_TABLE})")
    command.add_argument("--database", default=DEFAULT_DATABASE, help=f"the Glue database (Redshift: the external schema's; default {DEFAULT_DATABASE})")
    command.add_argument("--first-day", default=None, help="first dt of the partition projection range, YYYY-MM-DD (default TWEET_ASSETS_START_DATE or 2006-03-21)")


def check_table_options(args, command: argparse.ArgumentParser, name: str) -> int | None:
    """Refuse a location that is not ``s3://BUCKET/...``, a first day that is not ``YYYY-MM-DD``
    (``args.first_day`` defaults to the projection's start), and names that are not plain identifiers
    (they go into SQL: tweet_assets/warehouses/names.py). Returns an exit status to stop with, or None."""
    if not args.location.startswith("s3://") or not args.location[5:].split("/", 1)[0]:
        command.error(f"--location {args.location!r} is not an S3 URL: use s3://BUCKET/prefix/tweets/")
    try:
        args.first_day = args.first_day or projection_start_date()
        datetime.strptime(args.first_day, DAY_FORMAT)
    except ValueError as exc:
        command.error(str(exc) if START_DATE_ENV in str(exc) else f"--first-day {args.first_day!r} is not a YYYY-MM-DD day")
    from tweet_assets.warehouses.names import identifier

    try:
        identifier(args.table, "table"), identifier(args.database, "database")
    except ValueError as exc:
        print(f"tweet-assets {name}: {exc}", file=sys.stderr)
        return 2
    return None
