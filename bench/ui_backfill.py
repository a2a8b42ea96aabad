"""A backfill launched through Dagit (GraphQL, as the UI's "Launch backfill" does) against the
CLI's in-process run of the same days: prints both times and their ratio (issue #29, point 3).

Usage:
    python bench/ui_backfill.py                  # 5 days x 200 posts (the sample source)
    python bench/ui_backfill.py --days 5 --posts 200 --first 2024-01-02

What it does, in one invocation, each side with its own temporary DAGSTER_HOME and lake:
1. starts ``dg dev`` (webserver + daemon, what ``make dagit`` runs; tests/dagit_server.py),
   launches ``launchPartitionBackfill`` for the three assets over the days' range (one run:
   ``BackfillPolicy.single_run()``), waits for the backfill to finish, and reads the run's start
   and end time from Dagster's run records (GraphQL ``runsOrError`` by the backfill's tag);
2. runs ``python -m tweet_assets.cli demo --start FIRST --end LAST`` (the CLI: ``execute_in_process``)
   for the same days and posts, timing the process and reading the run's time from its summary line.

Figures: the UI run's duration (the run record's end - start, what Dagit's run page shows), the
backfill's wall time from launch to COMPLETED (adds the daemon's backfill tick and run queue), the
CLI's run and process times, and ``ui run / cli run``. Target: <= 1.5. Print ``uptime`` beside them:
the machine is shared.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests import dagit_server  # noqa: E402
from tests.defs.test_graphql_backfill import launch_backfill  # noqa: E402

RUNS = """
query ($tags: [ExecutionTag!]) { runsOrError(filter: {tags: $tags}) { __typename
  ... on Runs { results { runId status startTime endTime } } } }
"""


def ui_backfill(root: Path, days: list[str], posts: int) -> dict:
    dagit_server.SAMPLE_POSTS = posts  # read by DagitServer.start for TWEET_ASSETS_SAMPLE_POSTS
    server = dagit_server.start_dagit(root)
    try:
        launched = time.monotonic()
        backfill_id = launch_backfill(server, days, title="bench/ui_backfill.py")
        state = dagit_server.wait_for_backfill(server, backfill_id, timeout=900)
        wall = time.monotonic() - launched
        runs = server.graphql(RUNS, {"tags": [{"key": "dagster/backfill", "value": backfill_id}]})["runsOrError"]["results"]
        if state["status"] != "COMPLETED_SUCCESS" or not runs or any(r["status"] != "SUCCESS" for r in runs):
            raise SystemExit(f"the backfill did not succeed: {state} {runs}\n{server.log_tail()}")
        run_s = sum(r["endTime"] - r["startTime"] for r in runs)
        return {"runs": len(runs), "run_s": run_s, "wall_s": wall}
    finally:
        server.stop()


def cli_run(root: Path, days: list[str], posts: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWEET_ASSETS_", "DAGSTER_"))}
    env.update(
        DAGSTER_HOME=str(root / "home"), TWEET_ASSETS_LAKE_URL=str(root / "lake"), TWEET_ASSETS_SOURCE="sample",
        TWEET_ASSETS_SAMPLE_POSTS=str(posts), TWEET_ASSETS_START_DATE=dagit_server.START_DATE, PYTHONPATH=str(REPO),
    )
    (root / "home").mkdir(parents=True, exist_ok=True)
    (root / "home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "tweet_assets.cli", "demo", "--start", days[0], "--end", days[-1]], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    process = time.monotonic() - started
    if out.returncode != 0:
        raise SystemExit(f"the CLI run failed ({out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    found = re.search(r"succeeded in ([0-9.]+)s", out.stdout)
    return {"run_s": float(found.group(1)) if found else process, "process_s": process}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=5, help="days in the backfill (default 5)")
    parser.add_argument("--posts", type=int, default=200, help="sample posts per day (default 200)")
    parser.add_argument("--first", default="2024-01-02", help="first day, YYYY-MM-DD (default 2024-01-02)")
    args = parser.parse_args(argv)
    first = date.fromisoformat(args.first)
    days = [(first + timedelta(days=n)).isoformat() for n in range(args.days)]
    load_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="ui-backfill-") as tmp:
        ui = ui_backfill(Path(tmp) / "ui", days, args.posts)
        cli = cli_run(Path(tmp) / "cli", days, args.posts)
    load_after = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"{args.days} days x {args.posts} posts ({days[0]}...{days[-1]}), sample source")
    print(f"UI/GraphQL backfill: {ui['runs']} run(s), run {ui['run_s']:.1f}s (launch to COMPLETED {ui['wall_s']:.1f}s)")
    print(f"CLI (tweet-assets demo): run {cli['run_s']:.1f}s (process {cli['process_s']:.1f}s)")
    print(f"ratio UI run / CLI run: {ui['run_s'] / cli['run_s']:.2f} (target <= 1.5); launch-to-done / CLI process: {ui['wall_s'] / cli['process_s']:.2f}")
    print(f"load before: {load_before}\nload after:  {load_after}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
