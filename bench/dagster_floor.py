"""Dagster's own cost of a set of runs, the project's code left out: the pipeline's shape with bodies
that return at once.

Usage: python bench/dagster_floor.py START…END [START…END ...]

Each argument is one run over the inclusive partition range ``START…END`` (``YYYY-MM-DD``), executed
in turn with ``execute_in_process`` against a SQLite ``DAGSTER_HOME`` (a fresh temporary one), as
``tweet-assets replay`` runs its plan. The job mirrors ``tweets_daily_job``: three daily-partitioned
assets ``raw_tweets → clean_tweets → s3_parquet`` with a single-run backfill policy, an IO manager
that stores nothing, and four partitioned asset checks (two blocking on ``clean_tweets``, two on
``s3_parquet``, as tweet_assets/defs/pipeline/checks.py), each recording one evaluation per
partition through the project's ``per_partition`` (Dagster calls only: the latest
materialization's lookup and the evaluation event).
Console logging at ERROR, as the CLI's quiet default. Prints ``runs=<n> partitions=<n>
seconds=<wall>`` on stdout.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

from dagster import (
    AssetCheckResult,
    AssetIn,
    BackfillPolicy,
    DagsterInstance,
    DailyPartitionsDefinition,
    Definitions,
    IOManager,
    PartitionKeyRange,
    asset,
    asset_check,
    define_asset_job,
)
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from tweet_assets.defs.pipeline.partition_checks import per_partition

PARTITIONS = DailyPartitionsDefinition(start_date="2006-03-21")
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


class StoresNothing(IOManager):
    def handle_output(self, context, obj) -> None:
        pass

    def load_input(self, context):
        return {key: None for key in context.asset_partition_keys}


def _asset(name: str, upstream: list[str]):
    @asset(name=name, partitions_def=PARTITIONS, backfill_policy=BackfillPolicy.single_run(), ins={u: AssetIn(u) for u in upstream})
    def body(context, **_):
        return {key: None for key in context.partition_keys}

    return body


def _check(target, name: str, blocking: bool):
    @asset_check(asset=target, name=name, blocking=blocking, partitions_def=PARTITIONS)
    def body(context):
        # one evaluation per day, as the project's checks record them (Dagster's own calls only)
        yield from per_partition(context, {day: AssetCheckResult(passed=True) for day in context.partition_keys})

    return body


def job():
    raw, clean, published = _asset("raw_tweets", []), _asset("clean_tweets", ["raw_tweets"]), _asset("s3_parquet", ["clean_tweets"])
    checks = [_check(clean, "ids", True), _check(clean, "days", True), _check(published, "schema", False), _check(published, "rows", False)]
    defs = Definitions(assets=[raw, clean, published], asset_checks=checks, jobs=[define_asset_job("tweets_daily_job", selection=[raw, clean, published])], resources={"io_manager": StoresNothing()})
    return defs.resolve_job_def("tweets_daily_job")


def main(ranges: list[str]) -> int:
    home = tempfile.mkdtemp(prefix="dagster-floor-")
    with open(os.path.join(home, "dagster.yaml"), "w") as handle:
        handle.write("telemetry:\n  enabled: false\n")
    os.environ["DAGSTER_HOME"] = home
    runs = [tuple(r.split("…")) for r in ranges]
    the_job = job()
    started = time.monotonic()
    partitions = 0
    with DagsterInstance.get() as instance:
        for start, end in runs:
            result = the_job.execute_in_process(
                instance=instance, run_config=QUIET, tags={ASSET_PARTITION_RANGE_START_TAG: start, ASSET_PARTITION_RANGE_END_TAG: end}, raise_on_error=False
            )
            if not result.success:
                sys.exit(f"the no-op run {start}…{end} failed")
            partitions += len(PARTITIONS.get_partition_keys_in_range(PartitionKeyRange(start, end)))
    print(f"runs={len(runs)} partitions={partitions} seconds={time.monotonic() - started:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
