"""Freshness of the published table: a missing day of ``s3_parquet`` shows up as a failed check.

``build_time_partition_freshness_checks`` is partition-aware: once the deadline cron has ticked,
it expects the partition of the day that ended before that tick to have been materialized, and
fails naming that partition otherwise ("We expected partition 2026-11-22 to have arrived"). The
daily schedule runs yesterday at 00:15 UTC; the deadline, 03:00 UTC, leaves room for a slow API.
(The newer ``FreshnessPolicy`` objects judge only the time of the last materialization, of any
partition, so a backfill of old days would hide a missing yesterday; and they would have to be set
on the asset itself.)

``FRESHNESS_SENSORS`` runs the check every 15 minutes when turned on (stopped by default, like
``tweets_daily_schedule``); the check can also be executed from the asset's Checks tab.
"""

from __future__ import annotations

import warnings

from dagster import (
    AssetCheckSeverity,
    DefaultSensorStatus,
    SupersessionWarning,
    build_sensor_for_freshness_checks,
    build_time_partition_freshness_checks,
)

from tweet_assets.defs.pipeline import assets as pipeline  # the module: dg loads s3_parquet from its own file

#: 03:00 UTC every day: by then yesterday's partition must be published.
DEADLINE_CRON = "0 3 * * *"
SENSOR_INTERVAL_S = 15 * 60

# Dagster 1.13 marks the check factories "superseded" by FreshnessPolicy; see the docstring for why
# the partition-aware check is the one that tells a missing day.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", SupersessionWarning)
    FRESHNESS_CHECKS = list(
        build_time_partition_freshness_checks(
            assets=[pipeline.s3_parquet],
            deadline_cron=DEADLINE_CRON,
            timezone="UTC",
            severity=AssetCheckSeverity.WARN,
        )
    )
    FRESHNESS_SENSORS = [
        build_sensor_for_freshness_checks(
            freshness_checks=FRESHNESS_CHECKS,
            minimum_interval_seconds=SENSOR_INTERVAL_S,
            name="s3_parquet_freshness_sensor",
            default_status=DefaultSensorStatus.STOPPED,
        )
    ]
