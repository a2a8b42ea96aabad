"""Faults and reruns: every post published once, a rerun repairs any failure, identical bytes.

All servers are on 127.0.0.1; loops are bounded in count and time.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import boto3
import pyarrow.parquet as pq
import pytest

from tests.helpers import resources, run
from tweet_assets.sources import ReplaySource, SampleSource

REPO = Path(__file__).resolve().parents[1]


def _objects(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_partition_twice_and_overlapping_ranges_give_identical_objects(tmp_path, instance):
    source = SampleSource(posts_per_day=120)
    clean = tmp_path / "clean"
    assert run(resources(str(clean), source), "2024-02-01", "2024-02-06", instance=instance).success
    again = tmp_path / "again"
    res = resources(str(again), source)
    assert run(res, "2024-02-01", "2024-02-03", instance=instance).success
    assert run(res, "2024-02-02", "2024-02-06", instance=instance).success  # overlaps 02 and 03
    assert run(res, "2024-02-04", instance=instance).success  # one day again
    assert _objects(clean) == _objects(again)
    assert len(_objects(clean)) == 18  # 6 days x 3 assets, one object each


def _dead_endpoint() -> str:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"


def test_unreachable_s3_fails_clearly_then_a_rerun_repairs(x_api_v2, aws_env, instance, monkeypatch):
    source = ReplaySource(path=str(x_api_v2 / "twarc-csv-test-data" / "media_policy_violation_off.jsonl"))
    s3 = boto3.client("s3", endpoint_url=aws_env, region_name="us-east-1")
    buckets = [f"rel-{uuid.uuid4().hex[:10]}" for _ in range(2)]
    for bucket in buckets:
        s3.create_bucket(Bucket=bucket)
    clean_res = resources(f"s3://{buckets[0]}/lake", source)
    assert run(clean_res, "2021-05-07", "2021-05-11", instance=instance).success

    dead = _dead_endpoint()
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", dead)
    down = run(resources(f"s3://{buckets[1]}/lake", source, env={"AWS_ENDPOINT_URL": dead}), "2021-05-07", "2021-05-11", instance=instance, raise_on_error=False)
    assert not down.success
    failure = next(e for e in down.all_events if e.event_type_value == "STEP_FAILURE")
    message = str(failure.event_specific_data.error)
    assert "cannot reach the endpoint" in message and dead in message and f"s3://{buckets[1]}/lake/raw_tweets/dt=2021-05-07" in message
    assert s3.list_objects_v2(Bucket=buckets[1]).get("KeyCount", 0) == 0  # nothing half-written

    monkeypatch.setenv("AWS_ENDPOINT_URL", aws_env)
    assert run(resources(f"s3://{buckets[1]}/lake", source), "2021-05-07", "2021-05-11", instance=instance).success

    def dump(bucket):
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
        return {k: s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys}

    assert dump(buckets[0]) == dump(buckets[1])


BACKFILL = """
import os, sys
from dagster import DagsterInstance, materialize
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG as E, ASSET_PARTITION_RANGE_START_TAG as S
from tweet_assets import assets
from tweet_assets.definitions import resources_from_env
with DagsterInstance.get() as instance:
    ok = materialize([assets.raw_tweets, assets.clean_tweets, assets.s3_parquet], resources=resources_from_env(), instance=instance, tags={S: sys.argv[1], E: sys.argv[2]}).success
sys.exit(0 if ok else 1)
"""


@pytest.mark.slow
def test_sigkill_mid_backfill_then_relaunch_publishes_each_post_once(tmp_path):
    env = {**os.environ, "TWEET_ASSETS_SOURCE": "sample", "TWEET_ASSETS_SAMPLE_POSTS": "3000", "DAGSTER_HOME": str(tmp_path / "home")}
    os.makedirs(env["DAGSTER_HOME"])
    days = ("2024-05-01", "2024-05-20")

    killed_lake = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", BACKFILL, *days], env={**env, "TWEET_ASSETS_LAKE_URL": str(killed_lake)}, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not list((killed_lake / "clean_tweets").glob("dt=*/*.parquet"))[:5][4:]:
        time.sleep(0.2)
        assert proc.poll() is None, "the backfill finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)  # mid-backfill: raw landed, clean_tweets half written
    proc.wait(timeout=30)
    assert len(list((killed_lake / "tweets").glob("dt=*/*.parquet"))) < 20
    # a write cut short leaves at most a hidden temporary file, never a partial object at a published key
    stray = [p.name for p in killed_lake.rglob("*") if p.is_file() and not p.name.startswith("part-00000.")]
    assert all(name.startswith(".tmp-") and name.endswith(".part") for name in stray), stray
    for published in killed_lake.rglob("part-00000.parquet"):
        pq.ParquetFile(published)  # every visible object is whole: its footer reads

    relaunch = subprocess.run([sys.executable, "-c", BACKFILL, *days], env={**env, "TWEET_ASSETS_LAKE_URL": str(killed_lake)}, capture_output=True, timeout=300)
    assert relaunch.returncode == 0, relaunch.stderr[-2000:]
    clean_lake = tmp_path / "clean"
    clean = subprocess.run([sys.executable, "-c", BACKFILL, *days], env={**env, "TWEET_ASSETS_LAKE_URL": str(clean_lake)}, capture_output=True, timeout=300)
    assert clean.returncode == 0, clean.stderr[-2000:]
    published = {k: v for k, v in _objects(killed_lake).items() if not Path(k).name.startswith(".tmp-")}
    assert published == _objects(clean_lake)  # same rows, same bytes, per partition

    import duckdb

    ids = duckdb.connect().execute(f"SELECT count(*), count(DISTINCT id) FROM read_parquet('{killed_lake}/tweets/*/*.parquet')").fetchone()
    assert ids == (20 * 3000, 20 * 3000)


def test_s3_slowdown_and_500_bursts_are_retried_and_objects_match_a_clean_run(x_api_v2, aws_env, instance, monkeypatch):
    """503 SlowDown then 500s from S3: the client's retries (S3Resource max_attempts) ride them
    out; a fault that outlasts them fails the step naming the endpoint; the rerun repairs it."""
    from tests.s3_fault_proxy import FaultProxy

    source = ReplaySource(path=str(x_api_v2 / "twarc-network-test-data" / "tweets.jsonl"))
    s3 = boto3.client("s3", endpoint_url=aws_env, region_name="us-east-1")
    clean, flaky = (f"rel-{uuid.uuid4().hex[:10]}" for _ in range(2))
    for bucket in (clean, flaky):
        s3.create_bucket(Bucket=bucket)
    assert run(resources(f"s3://{clean}/lake", source), "2021-06-26", instance=instance).success

    with FaultProxy(aws_env, faults=3, status=503, code="SlowDown") as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        assert run(resources(f"s3://{flaky}/lake", source, env={"AWS_ENDPOINT_URL": proxy.url}), "2021-06-26", instance=instance).success
        assert proxy.injected == 3 and proxy.forwarded > 5

    with FaultProxy(aws_env, faults=1000, status=500, code="InternalError") as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        failed = run(resources(f"s3://{flaky}/lake", source, env={"AWS_ENDPOINT_URL": proxy.url}), "2021-06-27", instance=instance, raise_on_error=False)
        assert not failed.success
        failure = next(e for e in failed.all_events if e.event_type_value == "STEP_FAILURE")
        assert proxy.url in str(failure.event_specific_data.error) and "InternalError" in str(failure.event_specific_data.error)
        assert proxy.forwarded == 0 and 1 < proxy.injected < 50  # retried a bounded number of times

    def dump(bucket, day):
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"] if f"dt={day}" in o["Key"]]
        return {k: s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys}

    assert dump(flaky, "2021-06-27") == {}  # nothing half-written for the failed day
    assert dump(clean, "2021-06-26") == dump(flaky, "2021-06-26") and len(dump(clean, "2021-06-26")) == 3
