"""The stream's Dagster side (tweet_assets.defs.stream.days): days closed by the sensor at the grace
boundary, the raw_stream observation and the consumer-alive check, on a local lake and the real
clock."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import orjson
import pytest
from dagster import Definitions, build_sensor_context

from tweet_assets.lake.io_manager import LakeResource
from tweet_assets.lake.store import LocalLake
from tweet_assets.stream.segments import SegmentWriter
from tweet_assets.defs.stream.days import (
    days_to_close,
    raw_stream,
    raw_stream_consumer_alive,
    raw_stream_health_job,
    stream_day_sensor,
)

GRACE = timedelta(minutes=15)


def test_a_day_closes_at_its_end_plus_grace_not_before():
    end = datetime(2026, 11, 29, tzinfo=timezone.utc)  # 2026-11-28 ends here
    assert days_to_close(end + GRACE - timedelta(milliseconds=1), GRACE, lookback=1) == []
    assert days_to_close(end + GRACE, GRACE, lookback=1) == ["2026-11-28"]
    assert days_to_close(end + GRACE, GRACE, lookback=3) == ["2026-11-26", "2026-11-27", "2026-11-28"]
    assert days_to_close(datetime(2027, 1, 1, 0, 15, tzinfo=timezone.utc), GRACE, lookback=1) == ["2026-12-31"]  # across a year
    now = datetime.now(timezone.utc)  # today, real clock: never today, yesterday once past 00:15
    closed = days_to_close(now, GRACE)
    today = now.strftime("%Y-%m-%d")
    yesterday = (now - timedelta(days=1)).strftime("%Y-%m-%d")
    assert today not in closed
    assert (yesterday in closed) == (now >= now.replace(hour=0, minute=15, second=0, microsecond=0))


def _segment(lake, day: str, received: float, line: bytes = b'{"data": {"id": "1"}}') -> str:
    writer = SegmentWriter(lake, str(lake.root) + "-spool", clock=lambda: received)
    writer.append(day, line, int(received * 1000))
    (key,) = writer.close()
    return key


def test_sensor_requests_each_closed_day_with_segments_once(tmp_path, monkeypatch):
    monkeypatch.delenv("TWEET_ASSETS_STREAM_GRACE_MIN", raising=False)
    lake = LocalLake(str(tmp_path / "lake"))
    now = datetime.now(timezone.utc)
    days = [(now - timedelta(days=n)).strftime("%Y-%m-%d") for n in range(6)]  # today … 5 days ago
    for day in (days[0], days[1], days[2], days[5]):  # no segments for days[3], days[4]
        _segment(lake, day, time.time())
    with build_sensor_context(resources={"lake": LakeResource(url=str(tmp_path / "lake"))}) as context:
        result = stream_day_sensor(context)
    requested = [] if not isinstance(result, list) else [(r.partition_key, r.run_key) for r in result]
    closed = set(days_to_close(now, GRACE))
    expected = [(d, f"stream:{d}") for d in (days[2], days[1]) if d in closed]  # days[5] is beyond the lookback
    assert requested == expected
    assert (days[2], f"stream:{days[2]}") in requested  # two days ago is always closed


@pytest.fixture
def health_defs(tmp_path):
    lake = LakeResource(url=str(tmp_path / "lake"))
    return Definitions(assets=[raw_stream], asset_checks=[raw_stream_consumer_alive], jobs=[raw_stream_health_job], resources={"lake": lake}), LocalLake(str(tmp_path / "lake"))


def _observe(defs, instance):
    result = defs.resolve_job_def("raw_stream_health_job").execute_in_process(instance=instance, raise_on_error=False)
    (observation,) = [e.event_specific_data.asset_observation for e in result.all_events if e.event_type_value == "ASSET_OBSERVATION"]
    (evaluation,) = result.get_asset_check_evaluations()
    return observation, evaluation


def test_observation_shows_the_newest_segment_and_the_check_passes_while_the_consumer_speaks(health_defs, instance):
    defs, lake = health_defs
    now = time.time()
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    _segment(lake, today, now - 600)
    newest = _segment(lake, today, now - 60)
    lake.put_bytes("raw_stream/_consumer/rules.json", orjson.dumps({"rules": [{"id": "17", "value": "cats", "tag": "tweet_assets:cats"}]}))
    observation, evaluation = _observe(defs, instance)
    assert observation.metadata["newest_segment"].value == lake.uri(newest)
    assert abs(observation.metadata["dagster/last_updated_timestamp"].value - (now - 60)) < 1
    assert observation.metadata["stream_rules"].value == [{"id": "17", "value": "cats", "tag": "tweet_assets:cats"}]
    assert evaluation.passed


def test_check_fails_when_the_consumer_has_been_silent_too_long(health_defs, instance, monkeypatch):
    defs, lake = health_defs
    monkeypatch.setenv("TWEET_ASSETS_STREAM_MAX_SILENCE_MIN", "15")
    now = time.time()
    day = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    _segment(lake, day, now - 16 * 60)  # a segment 16 min old, no health record since
    observation, evaluation = _observe(defs, instance)
    assert not evaluation.passed and evaluation.severity.value == "ERROR"
    assert "is `tweet-assets stream` running" in evaluation.description
    # a quiet stream whose consumer still reports every minute passes
    lake.put_bytes("raw_stream/_consumer/health.json", orjson.dumps({"at": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")}))
    assert _observe(defs, instance)[1].passed
    # nothing at all: fails, says never
    monkeypatch.setenv("TWEET_ASSETS_STREAM_MAX_SILENCE_MIN", "15")
    lake.put_bytes("raw_stream/_consumer/health.json", orjson.dumps({"at": (datetime.now(timezone.utc) - timedelta(minutes=15, seconds=5)).isoformat()}))
    assert not _observe(defs, instance)[1].passed
