"""``tweet-assets replay PATH``: replay a twarc2 archive, materializing only the days it holds,
nearby days grouped into one run each (:mod:`tweet_assets.sources.replay_plan`), with a progress bar.
It writes to ``./replay-lake`` unless ``TWEET_ASSETS_LAKE_URL`` is set (docs/replay.md)."""

from __future__ import annotations

import argparse
import os
import sys
import time

from tweet_assets.cli.checks import check_settings, collection_job
from tweet_assets.cli.output import run_warnings
from tweet_assets.cli.runs import code_location, daily_job, ensure_dagster_home, execute
from tweet_assets.partitions import start_date
from tweet_assets.sources.replay_plan import DEFAULT_MAX_GAP_DAYS, DEFAULT_MAX_RUN_DAYS

NAME = "replay"
ENV = ["TWEET_ASSETS_LAKE_URL (default ./replay-lake: apart from the demo's ./lake)", "TWEET_ASSETS_START_DATE (first partition; default 2006-03-21)",
       "DAGSTER_HOME (default ./.dagster_home)", "AWS_REGION, AWS_ENDPOINT_URL, AWS_PROFILE (an s3:// lake)"]
#: The replay's default lake, apart from the demo's ``./lake`` (synthetic and real posts never mix).
REPLAY_LAKE = "replay-lake"


def add_parser(sub, formatter, epilog) -> argparse.ArgumentParser:
    replay = sub.add_parser(NAME, help="replay a twarc2 archive: materialize only the days it holds, nearby days in one run",
                            description="Replay a twarc2 archive into the lake (default ./replay-lake, apart from the demo's ./lake): the days it holds, nearby days grouped into one run each, with a progress bar.",
                            epilog=epilog(ENV), formatter_class=formatter)
    replay.add_argument("path", help="a twarc2 JSON-lines file (plain or gzip) or a directory of them")
    replay.add_argument("--max-gap-days", type=int, default=DEFAULT_MAX_GAP_DAYS, help=f"empty days allowed inside one run (default {DEFAULT_MAX_GAP_DAYS})")
    replay.add_argument("--max-run-days", type=int, default=DEFAULT_MAX_RUN_DAYS, help=f"partitions per run at most (default {DEFAULT_MAX_RUN_DAYS})")
    replay.add_argument("--plan-only", action="store_true", help="print the runs, materialize nothing")
    replay.add_argument("--collection", metavar="NAME", help="act on this collection (default: the environment's, tweets)")
    replay.add_argument("-v", "--verbose", action="store_true", help="also print Dagster's event log (always stored in DAGSTER_HOME; Dagit shows it)")
    return replay


def run(args, parser: argparse.ArgumentParser) -> int:
    """Plan the archive's runs, print the plan, then run them (unless ``--plan-only``) with a rich
    progress bar, one line per run, the runs' warnings once and a summary at the end."""
    import logging

    from tweet_assets.sources.replay_plan import archive_days, describe_plan, plan_runs, replay_archive

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    path = os.path.abspath(os.path.expanduser(args.path))
    if not os.path.exists(path):
        parser.error(f"{args.path}: no such file or directory (a twarc2 JSON-lines file, plain or gzip, or a directory of them)")
    # the code location reads its source from the environment (tweet_assets.settings), before it loads
    os.environ["TWEET_ASSETS_SOURCE"] = "replay"
    os.environ["TWEET_ASSETS_REPLAY_DIR"] = path
    os.environ["TWEET_ASSETS_LAKE_URL"] = os.environ.get("TWEET_ASSETS_LAKE_URL", "").strip() or REPLAY_LAKE
    try:
        check_settings(NAME)
        found = collection_job(args.collection, path) if args.collection else None  # (job, collection)
        days = archive_days(path)
        runs = plan_runs(days, max_gap_days=args.max_gap_days, max_run_days=args.max_run_days, first_day=(found and found[1].start_date) or start_date())
    except (FileNotFoundError, ValueError, LookupError) as exc:
        parser.exit(2, f"tweet-assets replay: {exc}\n")
    print(f"tweet-assets replay: {path}: {describe_plan(days, runs)}; lake {os.environ['TWEET_ASSETS_LAKE_URL']}", flush=True)
    if args.plan_only:
        for planned in runs:
            print(f"{planned}  {planned.partitions:>4} partition(s)  {planned.days_with_posts:>4} with posts  {planned.posts:>8,} posts")
        return 0
    home = ensure_dagster_home()
    from dagster import DagsterInstance
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    job = daily_job(found[0] if found else None)
    started = time.monotonic()
    with DagsterInstance.get() as instance, code_location(instance) as location, Progress(TextColumn("replay"), BarColumn(), MofNCompleteColumn(), TextColumn("runs"), TimeElapsedColumn(), transient=True) as bar:
        task = bar.add_task("runs", total=len(runs))

        def run_one(planned):
            tags = {ASSET_PARTITION_RANGE_START_TAG: planned.start, ASSET_PARTITION_RANGE_END_TAG: planned.end, "tweet_assets/replay": "archive"}
            return execute(job, instance, verbose=args.verbose, tags=tags, raise_on_error=False, location=location)

        def progress(line: str) -> None:
            bar.console.print(line, highlight=False, soft_wrap=True)
            bar.advance(task)

        outcomes = replay_archive(runs, run_one, progress=progress)
        warned = run_warnings(instance, [o.run_id for o in outcomes if o.run_id])
    for line in warned:
        print(f"warning: {line}", file=sys.stderr)
    failed = [o for o in outcomes if not o.success]
    print(f"{len(outcomes) - len(failed)} of {len(runs)} run(s) succeeded in {time.monotonic() - started:.1f}s (lake {os.environ['TWEET_ASSETS_LAKE_URL']}, DAGSTER_HOME {home})")
    print("next: make dagit (Dagit on http://127.0.0.1:3000 shows these runs; the lake is queried as in README.md)")
    return 1 if failed or len(outcomes) < len(runs) else 0
