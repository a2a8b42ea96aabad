"""tweet_assets/defs/retention/runs.py against a real Dagster instance (ephemeral, SQLite in memory):
runs that finished more than N days before ``now`` and materialized nothing are deleted with their
events; runs that materialized (the record of which partitions are done) and recent runs are kept.
Boundary: a run that ended exactly N days before ``now`` is kept; one second later it is deleted."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from dagster import DagsterInstance, DagsterRunStatus, asset, materialize

from tweet_assets.defs.retention.runs import (
    DEFAULT_RETENTION_DAYS,
    RETENTION_DAYS_ENV,
    delete_expired_runs,
    expired_run_ids,
    retention_days,
    run_retention_job,
)


@asset
def kept_asset():
    return 1


@asset
def failing_asset():
    raise RuntimeError("boom")


@pytest.fixture
def runs(instance: DagsterInstance):
    ok = materialize([kept_asset], instance=instance).run_id
    failed = materialize([failing_asset], instance=instance, raise_on_error=False).run_id
    records = {r.dagster_run.run_id: r for r in instance.get_run_records()}
    assert records[failed].dagster_run.status == DagsterRunStatus.FAILURE
    return {"ok": ok, "failed": failed, "failed_end": datetime.fromtimestamp(records[failed].end_time, timezone.utc)}


def test_a_failed_run_without_materializations_goes_after_n_days_exactly(instance, runs):
    boundary = runs["failed_end"] + timedelta(days=30)
    assert expired_run_ids(instance, 30, now=boundary) == []  # exactly 30 days: kept
    assert expired_run_ids(instance, 30, now=boundary + timedelta(seconds=1)) == [runs["failed"]]
    assert delete_expired_runs(instance, 30, now=boundary + timedelta(days=1)) == [runs["failed"]]
    assert instance.get_run_by_id(runs["failed"]) is None
    assert instance.all_logs(runs["failed"]) == []
    # the run that materialized stays, with its materialization (the partition is still done)
    assert instance.get_run_by_id(runs["ok"]) is not None
    assert instance.get_latest_materialization_event(kept_asset.key) is not None


def test_nothing_is_deleted_today(instance, runs):
    """At today's date (the real clock) both runs just ended: nothing is due."""
    assert expired_run_ids(instance, DEFAULT_RETENTION_DAYS) == []
    assert delete_expired_runs(instance, 1) == []
    assert len(instance.get_run_records()) == 2


def test_the_job_runs_in_dagster_and_deletes_nothing_recent(instance, runs, monkeypatch):
    monkeypatch.setenv(RETENTION_DAYS_ENV, "1")
    result = run_retention_job.execute_in_process(instance=instance)
    assert result.success
    assert {runs["ok"], runs["failed"]} <= {r.dagster_run.run_id for r in instance.get_run_records()}


@pytest.mark.parametrize("value,expected", [(None, DEFAULT_RETENTION_DAYS), ("", DEFAULT_RETENTION_DAYS), ("7", 7), ("365", 365)])
def test_retention_days_setting(value, expected):
    assert retention_days({} if value is None else {RETENTION_DAYS_ENV: value}) == expected


@pytest.mark.parametrize("value", ["0", "-1", "1.5", "ninety"])
def test_a_bad_retention_setting_fails_naming_the_variable(value):
    with pytest.raises(ValueError, match=RETENTION_DAYS_ENV):
        retention_days({RETENTION_DAYS_ENV: value})
