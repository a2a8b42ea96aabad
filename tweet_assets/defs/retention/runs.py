"""Run retention: Dagster OSS keeps every run and its event log for ever (``dagster.yaml`` has tick
retention, not run retention), so the run storage grows with every failed attempt and retry.

Rule: a run that finished (success, failure, cancel) more than ``TWEET_ASSETS_RUN_RETENTION_DAYS``
days ago (default 90; UTC timestamps from the run storage) **and materialized nothing** is deleted
with its event log (``DagsterInstance.delete_run``). Runs that materialized an asset are kept:
their events are the record of which partitions are done, and deleting a run deletes its
materializations (dagster ``SqlEventLogStorage.delete_events``). Compute logs are not touched here;
an S3 lifecycle rule on their prefix expires them (deploy/README.md).

The job ``run_retention_job`` runs daily at 03:30 UTC (``run_retention_schedule``, running by
default); every deleted run id is logged and counted in the run's metadata.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

from dagster import (
    DagsterEventType,
    DagsterInstance,
    DefaultScheduleStatus,
    RunsFilter,
    ScheduleDefinition,
    job,
    op,
)
from dagster._core.storage.dagster_run import FINISHED_STATUSES

from tweet_assets import config

RETENTION_DAYS_ENV = "TWEET_ASSETS_RUN_RETENTION_DAYS"
DEFAULT_RETENTION_DAYS = config.NUMBERS[RETENTION_DAYS_ENV].default


def retention_days(env: dict | None = None) -> int:
    """Days a finished run without materializations is kept (``TWEET_ASSETS_RUN_RETENTION_DAYS``).

    Raises:
        ValueError: the variable is set but is not a whole number >= 1.
    """
    env = os.environ if env is None else env
    return config.number(RETENTION_DAYS_ENV, env)


def expired_run_ids(instance: DagsterInstance, days: int, now: datetime | None = None) -> list[str]:
    """Ids of the runs that finished before ``now - days`` (strictly; ``now`` aware, default the
    current UTC time) and have no ``ASSET_MATERIALIZATION`` event, oldest first."""
    now = now or datetime.now(timezone.utc)
    cutoff = now - timedelta(days=days)
    expired = []
    records = instance.get_run_records(filters=RunsFilter(statuses=list(FINISHED_STATUSES), updated_before=cutoff), ascending=True)
    for record in records:
        if record.end_time is None or record.end_time >= cutoff.timestamp():
            continue
        materialized = instance.get_records_for_run(record.dagster_run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION, limit=1).records
        if not materialized:
            expired.append(record.dagster_run.run_id)
    return expired


def delete_expired_runs(instance: DagsterInstance, days: int, now: datetime | None = None, log=None) -> list[str]:
    """Delete the runs :func:`expired_run_ids` returns (run and event log); returns their ids."""
    run_ids = expired_run_ids(instance, days, now)
    for run_id in run_ids:
        instance.delete_run(run_id)
        if log is not None:
            log.info(f"deleted run {run_id} (finished more than {days} days ago, materialized nothing)")
    return run_ids


@op(out={}, description="Delete runs that finished more than TWEET_ASSETS_RUN_RETENTION_DAYS days ago and materialized nothing.")
def delete_expired_runs_op(context):
    days = retention_days()
    deleted = delete_expired_runs(context.instance, days, log=context.log)
    context.log.info(f"run retention: deleted {len(deleted)} run(s) that finished more than {days} days ago and materialized nothing")


@job(description="Run retention (tweet_assets/defs/retention/runs.py): delete old runs that materialized nothing.")
def run_retention_job():
    delete_expired_runs_op()


run_retention_schedule = ScheduleDefinition(
    job=run_retention_job, cron_schedule="30 3 * * *", execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
)
