"""The filtered stream in Dagster: the ``raw_stream`` observable source asset, its freshness
check, and the sensor that closes a day once it has ended.

- ``raw_stream`` (an observable source asset: the consumer, not Dagster, writes it) is observed by
  listing the newest ``dt=`` prefixes of ``<lake>/raw_stream/`` and reading the consumer's health
  record (``raw_stream/_consumer/health.json``, stored every minute) and rules record. An
  observation's metadata shows the newest segment and its end time
  (``dagster/last_updated_timestamp``), the consumer's last health record (messages, reconnects,
  stalls, last message time) and the active rules with their ids. Its data version is the newest
  segment's key, so Dagit shows a new version whenever a segment lands.
- ``raw_stream_consumer_alive`` (asset check, ERROR) fails when the consumer has been silent for
  more than ``TWEET_ASSETS_STREAM_MAX_SILENCE_MIN`` minutes (default 15): neither a health record
  nor a segment that recent. A quiet rule set still passes (the health record is stored every
  minute whether or not posts arrive). ``raw_stream_freshness_schedule`` (stopped by default, like
  the daily schedule) observes and checks every 5 minutes.
- All of these are in the code location only when the stream is configured
  (``TWEET_ASSETS_SOURCE=stream`` or ``TWEET_ASSETS_STREAM_RULES``: :func:`stream_configured`).
- ``stream_day_sensor`` (stopped by default; turn it on with ``TWEET_ASSETS_SOURCE=stream``)
  requests ``tweets_daily_job`` for a UTC day once ``day end + grace`` has passed
  (``TWEET_ASSETS_STREAM_GRACE_MIN``, default 15 minutes: one 5-minute segment roll plus the
  delivery delay of posts created just before midnight) and the day has segments. Each day is
  requested once (run key ``stream:<day>``), looking back ``LOOKBACK_DAYS`` days. The closed day's
  objects are written by that run through the lake IO manager, fenced like every day's objects
  (tweet_assets.lake.fencing, docs/concurrency.md): a run paused past its lease never overwrites
  the day of the run that took it over; it fails naming that run, and its run key is spent.
"""

from __future__ import annotations

import os
import warnings
from datetime import datetime, timedelta, timezone

import orjson
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetSelection,
    BetaWarning,
    DataVersion,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    MetadataValue,
    ObserveResult,
    RunRequest,
    ScheduleDefinition,
    SensorEvaluationContext,
    SkipReason,
    asset_check,
    Definitions,
    define_asset_job,
    definitions,
    observable_source_asset,
    sensor,
)

from tweet_assets import config
from tweet_assets.lake.io_manager import LakeResource
from tweet_assets.lake.store import Lake
from tweet_assets.partitions import DAY_FORMAT
from tweet_assets.sources.stream import PREFIX, RULES_KEY

# observable_source_asset is "beta" in Dagster 1.13; it is the documented way to watch data that
# something other than Dagster writes (Dagster docs, "External assets"): not a user's concern.
warnings.filterwarnings("ignore", category=BetaWarning, message=".*observable_source_asset.*")

HEALTH_KEY = "_consumer/health.json"
GRACE_MIN = config.NUMBERS["TWEET_ASSETS_STREAM_GRACE_MIN"].default
MAX_SILENCE_MIN = config.NUMBERS["TWEET_ASSETS_STREAM_MAX_SILENCE_MIN"].default
LOOKBACK_DAYS = 3
SENSOR_INTERVAL_S = 300


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _end_of(key: str) -> datetime:
    """The end time (UTC) in a segment key ``…/<start>-<end>.jsonl.gz``."""
    end = key.rsplit("-", 1)[-1].removesuffix(".jsonl.gz")
    moment = datetime.strptime(end[:15], "%Y%m%dT%H%M%S").replace(tzinfo=timezone.utc)
    return moment + timedelta(milliseconds=int(end[15:18]))


def newest_segment(lake: Lake, now: datetime, days: int = LOOKBACK_DAYS, prefix: str = PREFIX) -> tuple[str, datetime] | None:
    """``(key, end time)`` of the segment that ended last among the ``dt=`` prefixes of the last
    ``days`` UTC days up to ``now``'s (a post's day is at most a little older than its receipt),
    or None."""
    best = None
    for n in range(days):
        day = (now - timedelta(days=n)).strftime(DAY_FORMAT)
        for key in lake.list(f"{prefix}/dt={day}/"):
            if key.endswith(".jsonl.gz"):
                end = _end_of(key)
                if best is None or end > best[1]:
                    best = (key, end)
    return best


def _record(lake: Lake, key: str) -> dict:
    if lake.size(key) is None:
        return {}
    try:
        value = orjson.loads(lake.read_bytes(key))
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _parse_iso(text) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


@observable_source_asset(
    name="raw_stream",
    group_name="tweets",
    description=(
        "The filtered stream as landed by `tweet-assets stream`: gzip JSON-lines segments under "
        "`raw_stream/dt=YYYY-MM-DD/START-END.jsonl.gz` (START and END: the segment's first and last "
        "receipt time, UTC; one message per line, by the post's created_at day). Observed: newest "
        "segment, the consumer's health and active rules. With TWEET_ASSETS_SOURCE=stream, "
        "raw_tweets reads these segments."
    ),
)
def raw_stream(lake: LakeResource) -> ObserveResult:
    """Observe the newest segment and the consumer's health and rules records."""
    store = lake.lake()
    newest = newest_segment(store, _utcnow())
    health = _record(store, f"{PREFIX}/{HEALTH_KEY}")
    rules = _record(store, f"{PREFIX}/{RULES_KEY}").get("rules") or []
    metadata = {
        "newest_segment": store.uri(newest[0]) if newest else "",
        "newest_segment_end": newest[1].isoformat() if newest else "",
        "consumer_health": MetadataValue.json(health),
        "stream_rules": MetadataValue.json(rules),
    }
    if newest:
        metadata["dagster/last_updated_timestamp"] = MetadataValue.timestamp(newest[1])
    return ObserveResult(data_version=DataVersion(newest[0] if newest else "no segment"), metadata=metadata)


@asset_check(asset=raw_stream, name="raw_stream_consumer_alive", blocking=False)
def raw_stream_consumer_alive(lake: LakeResource) -> AssetCheckResult:
    """Fails (ERROR) when neither a health record nor a segment is newer than the allowed silence."""
    store = lake.lake()
    now = _utcnow()
    limit = timedelta(minutes=config.number("TWEET_ASSETS_STREAM_MAX_SILENCE_MIN"))
    newest = newest_segment(store, now)
    health = _record(store, f"{PREFIX}/{HEALTH_KEY}")
    signs = [t for t in (newest[1] if newest else None, _parse_iso(health.get("at"))) if t is not None]
    last = max(signs) if signs else None
    silent = (now - last) if last else None
    passed = silent is not None and silent <= limit
    return AssetCheckResult(
        passed=passed,
        severity=AssetCheckSeverity.ERROR,
        description=(
            f"last sign of the consumer {last.isoformat() if last else 'never'}; allowed silence {limit}"
            + ("" if passed else ": is `tweet-assets stream` running? check its log (systemd: journalctl -u tweet-assets-stream)")
        ),
        metadata={
            "last_sign_of_life": last.isoformat() if last else "",
            "silent_for_s": round(silent.total_seconds(), 1) if silent else -1,
            "max_silence_s": limit.total_seconds(),
            "newest_segment_end": newest[1].isoformat() if newest else "",
            "health_at": str(health.get("at") or ""),
        },
    )


raw_stream_health_job = define_asset_job(
    "raw_stream_health_job",
    selection=AssetSelection.assets(raw_stream.key) | AssetSelection.checks(raw_stream_consumer_alive),
    description="Observe raw_stream and check the consumer is alive.",
)

raw_stream_freshness_schedule = ScheduleDefinition(
    name="raw_stream_freshness_schedule",
    job=raw_stream_health_job,
    cron_schedule="*/5 * * * *",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.STOPPED,
)


def days_to_close(now: datetime, grace: timedelta, lookback: int = LOOKBACK_DAYS) -> list[str]:
    """UTC days (``YYYY-MM-DD``, oldest first) among the ``lookback`` days before ``now``'s whose
    end (next 00:00Z) plus ``grace`` is at or before ``now``."""
    today = now.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    out = []
    for n in range(lookback + 1, 0, -1):
        start = today - timedelta(days=n - 1)
        if start + timedelta(days=1) + grace <= now:
            out.append(start.strftime(DAY_FORMAT))
    return out


@sensor(
    name="stream_day_sensor",
    job_name="tweets_daily_job",
    minimum_interval_seconds=SENSOR_INTERVAL_S,
    default_status=DefaultSensorStatus.STOPPED,
    description="Materialize a UTC day from the filtered stream's segments once it ended plus a grace period (TWEET_ASSETS_STREAM_GRACE_MIN).",
)
def stream_day_sensor(context: SensorEvaluationContext, lake: LakeResource):
    """One run request per closed day that has segments; run key ``stream:<day>`` (once each)."""
    store = lake.lake()
    grace = timedelta(minutes=config.number("TWEET_ASSETS_STREAM_GRACE_MIN"))
    requests = []
    for day in days_to_close(_utcnow(), grace):
        keys = [k for k in store.list(f"{PREFIX}/dt={day}/") if k.endswith(".jsonl.gz")]
        if keys:
            requests.append(RunRequest(run_key=f"stream:{day}", partition_key=day, tags={"stream/segments": str(len(keys))}))
    if not requests:
        return SkipReason(f"no ended day with stream segments (grace {grace})")
    return requests


def stream_configured(env: dict | None = None) -> bool:
    """True when the filtered stream is in use: ``TWEET_ASSETS_SOURCE=stream`` (raw_tweets reads
    the segments) or ``TWEET_ASSETS_STREAM_RULES`` set (the consumer's rules, read by
    ``tweet-assets stream``)."""
    env = os.environ if env is None else env
    return env.get("TWEET_ASSETS_SOURCE", "").strip().lower() == "stream" or bool(env.get("TWEET_ASSETS_STREAM_RULES", "").strip())


STREAM_ASSETS = [raw_stream]
STREAM_CHECKS = [raw_stream_consumer_alive]
STREAM_JOBS = [raw_stream_health_job]
STREAM_SCHEDULES = [raw_stream_freshness_schedule]
STREAM_SENSORS = [stream_day_sensor]


@definitions
def stream() -> Definitions:
    """The stream's objects (``raw_stream``, its check, job, schedule and ``stream_day_sensor``) when
    the stream is configured (:func:`stream_configured`), else none: an asset that is never
    observed, with no edge to the pipeline, only confuses the graph of a sample or replay setup."""
    if not stream_configured():
        return Definitions()
    return Definitions(assets=STREAM_ASSETS, asset_checks=STREAM_CHECKS, jobs=STREAM_JOBS, schedules=STREAM_SCHEDULES, sensors=STREAM_SENSORS)
