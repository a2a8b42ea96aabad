"""``tweet-assets plan --from DAY --to DAY``: what a run of those days would read from X, before
reading any post (#38 point 1): each day's expected posts (the counts endpoints), the total, the
project's post cap and usage (``GET /2/usage/tweets``), what other running runs reserved, the reserve,
what the run would leave and when the cap resets, as a short table and one summary line; ``--json``
gives the same for scripts. Timelines say what they cannot know. Reads no post
(:mod:`tweet_assets.sources.budget`)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import datetime, timedelta, timezone

from tweet_assets.cli.checks import check_days, collection_job
from tweet_assets.partitions import DAY_FORMAT

NAME = "plan"
ENV = ["TWEET_ASSETS_SOURCE=x_api, X_BEARER_TOKEN, X_QUERY or X_ACCOUNTS, X_FULL_ARCHIVE (the search planned)",
       "TWEET_ASSETS_MAX_POSTS_PER_RUN, TWEET_ASSETS_CAP_RESERVE (the limits a run is checked against)",
       "TWEET_ASSETS_LAKE_URL (the cap ledger: what running runs reserved)", "X_API_BASE_URL, X_HTTP_TIMEOUT, X_HTTP_DEADLINE_S"]


def add_parser(sub, formatter, epilog) -> argparse.ArgumentParser:
    plan = sub.add_parser(NAME, help="what a run of some days would read from X, against the post cap (reads no post)",
                          description="Count the posts a run of --from…--to would read (GET /2/tweets/counts/*), read the project's post cap and usage (GET /2/usage/tweets) "
                                      "and the reservations of running runs, and print each day's expected posts, the total, the cap, the usage, what the run would leave and "
                                      "when the cap resets; and whether a run would be refused (TWEET_ASSETS_MAX_POSTS_PER_RUN, TWEET_ASSETS_CAP_RESERVE). Reads no post.",
                          epilog=epilog(ENV), formatter_class=formatter)
    plan.add_argument("--from", dest="first", required=True, metavar="DAY", help="the first day, YYYY-MM-DD (UTC)")
    plan.add_argument("--to", dest="last", required=True, metavar="DAY", help="the last day, YYYY-MM-DD (UTC), inclusive")
    plan.add_argument("--collection", metavar="NAME", help="plan this collection's source (default: the environment's)")
    plan.add_argument("--json", action="store_true", help="print the plan as one JSON object")
    return plan


def run(args, command: argparse.ArgumentParser) -> int:
    from tweet_assets.settings import lake_from_env, source_from_env
    from tweet_assets.sources.cap_ledger import CapLedger
    from tweet_assets.lake.store import LakeError
    from tweet_assets.sources.budget import plan_report
    from tweet_assets.x.problems import XApiError

    check_days(command, NAME, ("--from", args.first), ("--to", args.last), args.collection)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("tweet_assets.plan")
    try:
        if args.collection:
            from tweet_assets.components.sources import source_resource

            source = source_resource(collection_job(args.collection)[1])
        else:
            source = source_from_env()
    except (LookupError, ValueError) as exc:
        command.exit(2, f"tweet-assets plan: {exc}\n")
    source = source.process_config_and_initialize()  # the credentials' EnvVars read, as Dagster does for a run
    start = datetime.strptime(args.first, DAY_FORMAT).replace(tzinfo=timezone.utc)
    end = datetime.strptime(args.last, DAY_FORMAT).replace(tzinfo=timezone.utc) + timedelta(days=1)
    try:
        plan = source.spend_plan(start, end, log)
    except XApiError as exc:
        print(f"tweet-assets plan: {exc}", file=sys.stderr)
        return 1
    if plan is None:
        print(f"tweet-assets plan: the {source.source_name} source reads no metered API: a run reads nothing from X's post cap")
        return 0
    try:
        others = CapLedger(lake_from_env().lake()).live()
    except LakeError as exc:
        log.warning(f"the cap ledger could not be read ({exc}); other runs' reservations are not counted")
        others = []
    report = plan_report(plan, source.spend_limits(), others)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for line in text(report):
        print(line)
    return 0


def _n(value) -> str:
    return "unknown" if value is None else f"{value:,}"


def text(report: dict) -> list[str]:
    """The plan as lines: a table of the days (expected posts), then one summary line."""
    lines = []
    if report["days"]:
        width = max(len(_n(d["expected_posts"])) for d in report["days"] + [{"expected_posts": report["total"]}])
        width = max(width, len("expected posts"))
        lines.append(f"{'day':<10}  {'expected posts':>{width}}")
        lines += [f"{d['day']:<10}  {_n(d['expected_posts']):>{width}}" for d in report["days"]]
        lines.append(f"{'total':<10}  {_n(report['total']):>{width}}")
    for phrase in report["unknown"]:
        lines.append(f"note: {phrase}")
    days = report["first"] if report["first"] == report["last"] else f"{report['first']}…{report['last']}"
    cap = "no post cap reported" if report["project_cap"] is None else (
        f"cap {_n(report['project_cap'])}, used {_n(report['project_usage'])}"
        + (f" ({report['percent_used']:g}%)" if report["percent_used"] is not None else "")
        + f", reserved by running runs {sum(r['posts'] for r in report['reserved_by_running_runs']):,}, reserve {_n(report['reserve'])} ({report['reserve_percent']:g}%)"
    )
    leaves = f"; the run would leave {_n(report['left_after_run'])}" if report["left_after_run"] is not None else ""
    resets = f"; the cap resets on {report['cap_resets_on']} (cap_reset_day {report['cap_reset_day']})" if report["cap_resets_on"] else ""
    verdict = f"; a run would be refused: {report['refused']}" if report["refused"] else "; a run of these days would be allowed"
    lines.append(f"plan {days}: {_n(report['total'])} posts expected; {cap}{leaves}{resets}{verdict}")
    return lines
