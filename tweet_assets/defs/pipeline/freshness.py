"""Freshness of the published table: a missing day of ``s3_parquet`` shows up as a failed check.

``build_time_partition_freshness_checks`` is partition-aware: once the deadline cron has ticked,
it expects the partition of the day that ended before that tick to have been materialized, and
fails naming that partition otherwise ("We expected partition 2026-11-22 to have arrived"). The
daily schedule runs yesterday at 00:15 UTC; the deadline, 03:00 UTC, leaves room for a slow API.
(The newer ``FreshnessPolicy`` objects judge only the time of the last materialization, of any
partition, so a backfill of old days would hide a missing yesterday; and they would have to be set
on the asset itself.)

``FRESHNESS_SENSORS`` runs the check every 15 minutes when turned on (stopped by default, like
``tweets_daily_schedule``); ``tweet-assets demo`` evaluates it once at its end (so the graph reads
every check evaluated after the demo, daemon or not), Dagit's asset backfills run it with the
assets (the implicit asset job runs every check of them), and it can be executed from the asset's
Checks tab. Dagster's factory describes every such check as "Evaluates freshness for targeted
asset."; :func:`describe` gives it ours: what it expects by when, and which partition.
"""

from __future__ import annotations

import warnings

from dagster import (
    AssetCheckSeverity,
    AssetChecksDefinition,
    DefaultSensorStatus,
    SupersessionWarning,
    build_sensor_for_freshness_checks,
    build_time_partition_freshness_checks,
)

from tweet_assets.defs.pipeline import assets as pipeline  # the module: dg loads s3_parquet from its own file

#: 03:00 UTC every day: by then yesterday's partition must be published.
DEADLINE_CRON = "0 3 * * *"
SENSOR_INTERVAL_S = 15 * 60
#: What Dagit shows on the check (its Checks tab and the asset graph's check list).
DESCRIPTION = (
    "Warns when the published table is late: from 03:00 UTC each day, the partition of the day that "
    "ended before (yesterday, UTC) must have been materialized; before 03:00, the day before yesterday. "
    "A failure names the missing partition (\"We expected partition YYYY-MM-DD to have arrived\"). Evaluated by "
    "s3_parquet_freshness_sensor every 15 minutes when it is turned on, at the end of tweet-assets demo, "
    "and by Dagit's asset backfills; never inside tweets_daily_job's runs."
)


def describe(checks_def: AssetChecksDefinition, description: str) -> AssetChecksDefinition:
    """``checks_def`` with ``description`` on each of its checks (the same op, keys and subsetting):
    ``build_time_partition_freshness_checks`` takes no description."""
    specs = {name: spec._replace(description=description) for name, spec in checks_def.node_check_specs_by_output_name.items()}
    return AssetChecksDefinition.create(keys_by_input_name=checks_def.node_keys_by_input_name, node_def=checks_def.node_def,
                                        check_specs_by_output_name=specs, can_subset=True)


# Dagster 1.13 marks the check factories "superseded" by FreshnessPolicy; see the docstring for why
# the partition-aware check is the one that tells a missing day.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", SupersessionWarning)
    FRESHNESS_CHECKS = [
        describe(checks_def, DESCRIPTION)
        for checks_def in build_time_partition_freshness_checks(
            assets=[pipeline.s3_parquet],
            deadline_cron=DEADLINE_CRON,
            timezone="UTC",
            severity=AssetCheckSeverity.WARN,
        )
    ]
    FRESHNESS_SENSORS = [
        build_sensor_for_freshness_checks(
            freshness_checks=FRESHNESS_CHECKS,
            minimum_interval_seconds=SENSOR_INTERVAL_S,
            name="s3_parquet_freshness_sensor",
            default_status=DefaultSensorStatus.STOPPED,
        )
    ]
