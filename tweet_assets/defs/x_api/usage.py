"""The X project's post cap in Dagit (#38 point 4): ``x_api_usage``, an observable source asset in
group ``x_api``, observed every 6 hours by ``x_api_usage_sensor`` itself (no run: it records the
observation and the check's evaluation as the sensor's asset events, Dagster docs "External assets":
a sensor that observes), or on demand through ``x_api_usage_job`` (Dagit's "Observe sources").

Each observation reads ``GET /2/usage/tweets`` (the ``x_api`` resource: ``X_BEARER_TOKEN``, app-only;
:mod:`tweet_assets.x.usage`) and records, as numeric metadata Dagit plots across observations:
``project_cap``, ``project_usage``, ``percent_used``, ``days_to_reset`` and ``usage_last_30_days``
(with the 30 days as a table, ``daily_usage``). The check ``post_cap_headroom`` evaluates each
observation: it warns at 80 % of the cap or more and fails (severity ERROR) at 95 % or more; a
project without a cap (enterprise) passes, saying so.

The sensor runs by default when the environment's source is the X API (``TWEET_ASSETS_SOURCE=x_api``
and ``X_BEARER_TOKEN``); otherwise it is stopped (turn it on in Dagit for collections that search X).
Reading usage reads no post: it costs nothing against the cap (50 requests per 15 minutes allowed).
Observing from the sensor takes no run: no slot of the run queue (``max_concurrent_runs``) and no ECS
task every 6 hours. A sensor's evaluation must end within Dagster's sensor timeout (60 s), so the
sensor's request is bounded harder than a run's (:data:`SENSOR_BOUNDS`); a failed observation is the
sensor tick's error in Dagit, naming the cause.
"""

from __future__ import annotations

from datetime import datetime, timezone

from dagster import (
    AssetCheckEvaluation,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetSelection,
    AssetObservation,
    AssetSpec,
    DataVersion,
    DefaultSensorStatus,
    MetadataValue,
    ObserveResult,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    TableColumn,
    TableRecord,
    TableSchema,
    define_asset_job,
    multi_observable_source_asset,
    sensor,
)

from tweet_assets.settings import x_api_configured
from tweet_assets.sources.x_api import XApiSource
from tweet_assets.x.usage import USAGE_DAYS, Usage

GROUP = "x_api"
ASSET = "x_api_usage"
CHECK = "post_cap_headroom"
#: Percent of the cap at which the check warns, and at which it fails.
WARN_PERCENT, FAIL_PERCENT = 80.0, 95.0
SENSOR_INTERVAL_S = 6 * 3600
#: The sensor's request: one retry, no rate-limit wait, 20 s a try (at most ~42 s, inside Dagster's
#: 60 s sensor timeout); the next tick tries again.
SENSOR_BOUNDS = {"max_retries": 1, "max_rate_limit_waits": 0, "deadline_s": 20.0}
DAILY_SCHEMA = TableSchema(columns=[TableColumn("date", "string", description="UTC day"), TableColumn("posts_read", "int", description="posts read that day")])


def usage_metadata(usage: Usage, today) -> dict:
    """The observation's metadata: the numbers Dagit plots (absent ones left out) and the daily table."""
    numbers = {
        "project_cap": usage.project_cap,
        "project_usage": usage.project_usage,
        "percent_used": None if usage.percent_used is None else round(usage.percent_used, 2),
        "days_to_reset": usage.days_to_reset(today),
        "usage_last_30_days": usage.last_days(USAGE_DAYS),
    }
    metadata: dict = {k: (MetadataValue.float(v) if isinstance(v, float) else MetadataValue.int(v)) for k, v in numbers.items() if v is not None}
    metadata["cap_resets"] = MetadataValue.text(usage.resets(today))
    metadata["daily_usage"] = MetadataValue.table([TableRecord({"date": d, "posts_read": n}) for d, n in usage.daily[-USAGE_DAYS:]], schema=DAILY_SCHEMA)
    if usage.project_id:
        metadata["project_id"] = MetadataValue.text(usage.project_id)
    return metadata


def headroom(usage: Usage, today) -> AssetCheckResult:
    """``post_cap_headroom``: passed below 80 %; WARN from 80 %, ERROR from 95 % of the cap."""
    percent = usage.percent_used
    if percent is None:
        return AssetCheckResult(check_name=CHECK, asset_key=ASSET, passed=True, metadata={"note": "no post cap reported (an enterprise project?)"})
    severity = AssetCheckSeverity.ERROR if percent >= FAIL_PERCENT else AssetCheckSeverity.WARN
    return AssetCheckResult(
        check_name=CHECK, asset_key=ASSET, passed=percent < WARN_PERCENT, severity=severity,
        description=f"{percent:.1f}% of the monthly post cap used ({usage.project_usage:,} of {usage.project_cap:,}); {usage.resets(today)}",
        metadata={"percent_used": MetadataValue.float(round(percent, 2)), "warn_at_percent": WARN_PERCENT, "fail_at_percent": FAIL_PERCENT},
    )


@multi_observable_source_asset(
    name=ASSET,
    specs=[AssetSpec(ASSET, group_name=GROUP, kinds={"x"}, description=(
        "The X project's monthly post cap and the posts read against it (GET /2/usage/tweets): project_cap, project_usage, "
        "percent_used, days_to_reset, usage_last_30_days, plotted per observation (every 6 hours, x_api_usage_sensor)."))],
    check_specs=[AssetCheckSpec(CHECK, asset=ASSET, description=f"Warns at {WARN_PERCENT:g}% of the monthly post cap or more, fails at {FAIL_PERCENT:g}% or more.")],
    required_resource_keys={"x_api"},
)
def x_api_usage(context):
    """Observe the project's usage; fails (one line) when no bearer token is set or the request fails."""
    usage = context.resources.x_api.usage(context.log)
    if usage is None:
        raise RuntimeError("x_api_usage reads GET /2/usage/tweets, which is app-only: set X_BEARER_TOKEN.")
    today = datetime.now(timezone.utc).date()
    yield ObserveResult(
        asset_key=ASSET, metadata=usage_metadata(usage, today), check_results=[headroom(usage, today)],
        data_version=DataVersion(f"{usage.project_usage}/{usage.project_cap}"),
    )


x_api_usage_job = define_asset_job("x_api_usage_job", selection=AssetSelection.assets(ASSET), description="Observe x_api_usage (the X project's post cap and usage) and evaluate post_cap_headroom.")


def observation_events(usage: Usage, today) -> list:
    """What one observation records: the ``AssetObservation`` of ``x_api_usage`` (the plotted
    numbers) and the ``AssetCheckEvaluation`` of ``post_cap_headroom``."""
    check = headroom(usage, today)
    return [
        AssetObservation(asset_key=ASSET, metadata=usage_metadata(usage, today)),
        AssetCheckEvaluation(asset_key=check.asset_key, check_name=CHECK, passed=check.passed, severity=check.severity,
                             description=check.description, metadata=check.metadata),
    ]


@sensor(
    minimum_interval_seconds=SENSOR_INTERVAL_S,
    default_status=DefaultSensorStatus.RUNNING if x_api_configured() else DefaultSensorStatus.STOPPED,
    description="Observes x_api_usage every 6 hours and evaluates post_cap_headroom, in the sensor itself (no run); running by default when TWEET_ASSETS_SOURCE=x_api with X_BEARER_TOKEN, otherwise stopped.",
)
def x_api_usage_sensor(context: SensorEvaluationContext, x_api: XApiSource):
    """One observation per tick (ticks are 6 hours apart), recorded as the tick's asset events."""
    usage = x_api.model_copy(update=SENSOR_BOUNDS).usage(context.log)
    if usage is None:
        return SkipReason("x_api_usage reads GET /2/usage/tweets, which is app-only: set X_BEARER_TOKEN.")
    return SensorResult(asset_events=observation_events(usage, datetime.now(timezone.utc).date()))
