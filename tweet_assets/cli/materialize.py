"""``tweet-assets materialize --partition DAY``: run ``tweets_daily_job`` for one day, optionally for
some of its assets only (``--select``), with the job's checks of them and never the freshness check:
what the Airflow DAG's tasks run (deploy/airflow/tweet_assets_dag.py)."""

from __future__ import annotations

import argparse
import sys
import time

from tweet_assets.cli import demo
from tweet_assets.cli.checks import check_days, collection_job
from tweet_assets.cli.output import run_failures
from tweet_assets.cli.runs import ensure_dagster_home, own_job, materialize_day

NAME = "materialize"


def add_parser(sub, formatter, epilog) -> argparse.ArgumentParser:
    materialize = sub.add_parser(NAME, help="run tweets_daily_job for one day: some or all of its assets, with the job's checks",
                                 description="Run tweets_daily_job for one partition (UTC day) in process, recorded in DAGSTER_HOME: the assets of --select (default all) with the job's checks of them, never the freshness check (`dagster asset materialize` would add it). What the Airflow DAG's tasks run.",
                                 epilog=epilog(demo.ENV), formatter_class=formatter)
    materialize.add_argument("--partition", required=True, help="the day, YYYY-MM-DD (UTC)")
    materialize.add_argument("--select", help="comma-separated assets of the job (default all: raw_tweets,clean_tweets,s3_parquet)")
    materialize.add_argument("--collection", metavar="NAME", help="run this collection's job (default: the environment's, tweets)")
    materialize.add_argument("-v", "--verbose", action="store_true", help="also print Dagster's event log (always stored in DAGSTER_HOME; Dagit shows it)")
    return materialize


def run(args, command: argparse.ArgumentParser) -> int:
    check_days(command, NAME, ("--partition", args.partition), ("--partition", args.partition), args.collection)
    home = ensure_dagster_home()
    select = [name.strip() for name in args.select.split(",") if name.strip()] if args.select else None
    started = time.monotonic()
    try:
        job = own_job(collection_job(args.collection)[0]) if args.collection else None
        result = materialize_day(args.partition, select, verbose=args.verbose, job=job)
    except LookupError as exc:
        command.error(str(exc))
    checks = sorted(e.check_name for e in result.get_asset_check_evaluations())
    failed_checks = sorted(e.check_name for e in result.get_asset_check_evaluations() if not e.passed)
    what = f"{', '.join(select) if select else 'every asset'} of {result.job_def.name} for {args.partition}"
    if not result.success:
        for line in run_failures(result):
            print(f"failed: {line}", file=sys.stderr)
        print(f"run {result.run_id} ({what}) failed; its log is in the Dagster instance at {home} (Dagit → Runs)", file=sys.stderr)
        return 1
    print(f"run {result.run_id} ({what}) succeeded in {time.monotonic() - started:.1f}s; checks: {', '.join(checks) or 'none'}"
          + (f"; failed (WARN): {', '.join(failed_checks)}" if failed_checks else ""))
    return 0
