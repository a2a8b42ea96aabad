"""The freshness check on ``s3_parquet`` (tweet_assets.defs.pipeline.freshness): a missing day shows up.

Real materializations (sample source, local lake, an ephemeral instance) of some days, then the
check evaluated with the clock frozen before and after the 03:00 UTC deadline.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from dagster import AssetCheckSeverity, AssetSelection, DefaultSensorStatus, materialize
from dagster._core.test_utils import freeze_time

from tests.helpers import ALL, resources, run
from tweet_assets.defs.pipeline.freshness import DEADLINE_CRON, FRESHNESS_CHECKS, FRESHNESS_SENSORS
from tweet_assets.sources import SampleSource

AFTER_DEADLINE = datetime(2024, 1, 5, 4, 0, tzinfo=timezone.utc)  # expects 2024-01-04
BEFORE_DEADLINE = datetime(2024, 1, 5, 2, 0, tzinfo=timezone.utc)  # still expects 2024-01-03


@pytest.fixture
def res(tmp_path):
    return resources(str(tmp_path / "lake"), SampleSource(posts_per_day=5))


def evaluate(res, instance, now: datetime):
    """Run only the freshness check at ``now``; returns its one evaluation."""
    with freeze_time(now):
        result = materialize([*ALL, *FRESHNESS_CHECKS], resources=res, instance=instance, selection=AssetSelection.checks(*FRESHNESS_CHECKS))
    assert result.success
    assert not result.get_asset_materialization_events(), "the check alone must not materialize anything"
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.asset_key.path == ["s3_parquet"] and evaluation.check_name == "freshness_check"
    return evaluation


def test_definitions():
    (checks_def,) = FRESHNESS_CHECKS
    (spec,) = checks_def.check_specs
    assert spec.asset_key.path == ["s3_parquet"]
    assert spec.blocking is False
    assert DEADLINE_CRON == "0 3 * * *"
    (sensor,) = FRESHNESS_SENSORS
    assert sensor.default_status == DefaultSensorStatus.STOPPED
    assert sensor.asset_selection is not None


def test_never_materialized_fails(res, instance):
    evaluation = evaluate(res, instance, AFTER_DEADLINE)
    assert not evaluation.passed
    assert evaluation.severity == AssetCheckSeverity.WARN
    assert "never been observed/materialized" in evaluation.description and "2024-01-04" in evaluation.description


def test_missing_yesterday_fails_then_passes_once_published(res, instance):
    run(res, "2024-01-02", "2024-01-03", instance=instance)
    evaluation = evaluate(res, instance, AFTER_DEADLINE)
    assert not evaluation.passed
    assert "overdue" in evaluation.description and "partition 2024-01-04" in evaluation.description
    assert "dagster/last_updated_timestamp" in evaluation.metadata

    # before the deadline the day before is what is expected, and it is there
    assert evaluate(res, instance, BEFORE_DEADLINE).passed

    run(res, "2024-01-04", instance=instance)
    evaluation = evaluate(res, instance, AFTER_DEADLINE)
    assert evaluation.passed, evaluation.description
    assert "2024-01-04 has been observed/materialized" in evaluation.description


def test_only_s3_parquet_counts(res, instance):
    """Upstream assets materialized for the day do not make the published table fresh."""
    run(res, "2024-01-04", instance=instance, selection=["raw_tweets", "clean_tweets"])
    assert not evaluate(res, instance, AFTER_DEADLINE).passed
