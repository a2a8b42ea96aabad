"""Faults and reruns: every post published once, a rerun repairs any failure, identical bytes.

All servers are on 127.0.0.1; loops are bounded in count and time.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.helpers import is_bookkeeping, resources, run
from tweet_assets.sources import ReplaySource, SampleSource

REPO = Path(__file__).resolve().parents[2]


def _objects(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and not is_bookkeeping(str(p.relative_to(root)))}


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
    # it fails at the write check, before the first request to the source, naming where
    assert "cannot reach the endpoint" in message and dead in message and f"s3://{buckets[1]}/lake/_tweet_assets_check/" in message
    logs = [str(r.user_message) for r in instance.all_logs(down.run_id)]
    assert logs and not [m for m in logs if m.startswith("fetching ")]  # raw_tweets never asked the source
    assert s3.list_objects_v2(Bucket=buckets[1]).get("KeyCount", 0) == 0

    monkeypatch.setenv("AWS_ENDPOINT_URL", aws_env)
    assert run(resources(f"s3://{buckets[1]}/lake", source), "2021-05-07", "2021-05-11", instance=instance).success

    def dump(bucket):
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"] if not is_bookkeeping(o["Key"])]
        return {k: s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys}

    assert dump(buckets[0]) == dump(buckets[1])


BACKFILL = """
import os, shutil, sys, time
from dagster import DagsterInstance, materialize
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG as E, ASSET_PARTITION_RANGE_START_TAG as S
from tweet_assets.defs.pipeline import assets
from tweet_assets.settings import resources_from_env

if os.environ.get("SLOW_DISK"):  # a slow disk: each MiB copied takes 40 ms, so a write can be caught midway
    def copyfileobj(src, dst, length=0):
        while True:
            block = src.read(1 << 20)
            if not block:
                return
            dst.write(block)
            dst.flush()
            time.sleep(0.04)
    shutil.copyfileobj = copyfileobj

with DagsterInstance.get() as instance:
    ok = materialize([assets.raw_tweets, assets.clean_tweets, assets.s3_parquet], resources=resources_from_env(), instance=instance, tags={S: sys.argv[1], E: sys.argv[2]}).success
sys.exit(0 if ok else 1)
"""


MARK_DEAD_RUNS_FAILED = """
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter
with DagsterInstance.get() as instance:
    dead = instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.STARTED]))
    for run in dead:
        instance.report_run_failed(run, "run worker killed (SIGKILL)")
    print(len(dead))
"""


def _whole(path: Path, size: int | None = None) -> bool:
    """An object a reader may see: a Parquet file whose footer reads, or a gzip stream that ends
    properly (its trailer checked); anything cut short is not whole. Only the first ``size``
    bytes are judged (what was there when it was listed: a reader chasing a growing file would
    otherwise read the rest as it arrives)."""
    import gzip
    import zlib

    try:
        with open(path, "rb") as handle:
            data = handle.read() if size is None else handle.read(size)
    except FileNotFoundError:  # replaced or removed meanwhile: nothing torn seen
        return True
    if not data:  # every object this lake writes has bytes (an empty day is an empty gzip stream)
        return False
    try:
        if path.suffix == ".parquet":
            pq.read_metadata(pa.BufferReader(data))
        elif path.name.endswith(".gz"):
            gzip.decompress(data)
        return True
    except (OSError, EOFError, zlib.error, ValueError):
        return False


class LakeWatcher:
    """Lists the local lake every few ms from a thread, as a concurrent reader would, and checks
    every visible object (not a .tmp-*.part) that is new or changed; records any that is not
    whole (``torn``) and whether a write in progress (a temporary) was seen."""

    def __init__(self, root: Path):
        self.root = root
        self.torn: list[str] = []
        self.errors: list[str] = []
        self.writing = threading.Event()
        self.seen: dict[Path, tuple] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        while not self.stop.is_set():
            try:
                self._look()
            except Exception as exc:  # noqa: BLE001 - a watcher that died would see nothing: say so
                self.errors.append(repr(exc))
            time.sleep(0.003)

    def _files(self) -> list[Path]:
        found = []
        for folder, _, names in os.walk(self.root):  # folders that vanish meanwhile are skipped
            found.extend(Path(folder) / name for name in names)
        return found

    def _look(self):
        for path in self._files():
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            if is_bookkeeping(str(path.relative_to(self.root))):
                continue  # leases, lineage and lock files are the lake's bookkeeping, not published objects
            if path.name.startswith(".tmp-"):
                if stat.st_size >= 1 << 20:  # a large write under way (not the write check's few bytes)
                    self.writing.set()
                continue
            if self.seen.get(path) != (stat.st_size, stat.st_mtime_ns):
                self.seen[path] = (stat.st_size, stat.st_mtime_ns)
                if not _whole(path, stat.st_size):
                    self.torn.append(f"{path.relative_to(self.root)} ({stat.st_size} bytes)")
                    self.writing.set()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=30)


@pytest.mark.slow
def test_sigkill_during_a_large_write_leaves_no_torn_object_and_the_rerun_no_debris(tmp_path):
    """SIGKILL while an object is being written (the lake on a slow disk, a watcher listing it):
    no reader ever sees a partial object at a published key; after the kill only hidden
    temporaries and the dead process's spool directory remain, and the rerun removes both and
    publishes every post once."""
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    env = {**os.environ, "TWEET_ASSETS_SOURCE": "sample", "TWEET_ASSETS_SAMPLE_POSTS": "10000", "DAGSTER_HOME": str(tmp_path / "home"), "TMPDIR": str(tmpdir)}
    os.makedirs(env["DAGSTER_HOME"])
    days = ("2024-05-01", "2024-05-02")
    lake = tmp_path / "lake"
    env["TWEET_ASSETS_LAKE_URL"] = str(lake)

    with LakeWatcher(lake) as watcher:
        proc = subprocess.Popen([sys.executable, "-c", BACKFILL, *days], env={**env, "SLOW_DISK": "1"}, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 180
        while not watcher.writing.wait(0.01) and proc.poll() is None and time.monotonic() < deadline:
            pass
        caught = watcher.writing.is_set()
        os.killpg(proc.pid, signal.SIGKILL)  # mid-write: a raw day (~3.3 MB) takes ~160 ms to copy
        proc.wait(timeout=30)
        time.sleep(0.05)
    assert watcher.errors == []
    assert caught, "no write in progress was seen before the run ended"
    assert watcher.torn == [], f"a reader saw partial objects at published keys: {watcher.torn}"
    stray = sorted(p.name for p in lake.rglob("*") if p.is_file() and not p.name.startswith("part-00000.") and not is_bookkeeping(str(p.relative_to(lake))))
    assert stray and all(n.startswith(".tmp-") and n.endswith(".part") for n in stray), stray  # killed mid-write
    assert all(_whole(p) for p in lake.rglob("part-00000.*"))
    assert [p.name for p in tmpdir.iterdir() if p.name.startswith("tweet_assets-spool-")]  # what a kill leaves

    # the killed run still reads STARTED and holds its days' leases; what Dagster's run monitoring (or
    # Terminate in Dagit) does for a dead run worker, mark it failed, lets the rerun take them over
    marked = subprocess.run([sys.executable, "-c", MARK_DEAD_RUNS_FAILED], env=env, capture_output=True, text=True, timeout=120)
    assert marked.returncode == 0 and marked.stdout.split() == ["1"], marked.stderr[-2000:]
    relaunch = subprocess.run([sys.executable, "-c", BACKFILL, *days], env=env, capture_output=True, timeout=300)
    assert relaunch.returncode == 0, relaunch.stderr[-2000:]
    assert [p.name for p in lake.rglob(".tmp-*")] == []  # the rerun removed its partitions' temporaries
    assert [p.name for p in tmpdir.iterdir() if p.name.startswith("tweet_assets-spool-")] == []  # and the dead run's spools
    assert sorted(str(p.relative_to(lake)) for p in lake.rglob("*") if p.is_file() and not is_bookkeeping(str(p.relative_to(lake)))) == sorted(
        f"{table}/dt={day}/part-00000.{fmt}" for table, fmt in (("raw_tweets", "jsonl.gz"), ("clean_tweets", "parquet"), ("tweets", "parquet")) for day in days
    )

    import duckdb

    ids = duckdb.connect().execute(f"SELECT count(*), count(DISTINCT id) FROM read_parquet('{lake}/tweets/*/*.parquet')").fetchone()
    assert ids == (2 * 10000, 2 * 10000)


@pytest.mark.slow
def test_s3_cut_mid_upload_leaves_no_object_and_the_rerun_aborts_the_upload(aws_env, instance, monkeypatch):
    """The endpoint goes away after 8 MiB of a ~10 MiB raw object have been sent (a multipart
    upload under way): the step fails naming the key and endpoint, nothing is visible at the key,
    the incomplete upload is left (the abort could not get through either), and the rerun with
    the endpoint back aborts it and publishes the day."""
    from tests.s3_fault_proxy import FaultProxy

    s3 = boto3.client("s3", endpoint_url=aws_env, region_name="us-east-1")
    bucket = f"rel-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    source = SampleSource(posts_per_day=32000)  # ~10.5 MB of gzip pages: above boto3's 8 MiB multipart threshold
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with FaultProxy(aws_env, cut_after_bytes=8 << 20) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        failed = run(resources(f"s3://{bucket}/lake", source, env={"AWS_ENDPOINT_URL": proxy.url}), "2024-06-01", instance=instance, raise_on_error=False)
    assert not failed.success
    assert proxy.dropped and proxy.body_bytes >= 8 << 20  # the cut came mid-upload, not before it
    failure = next(e for e in failed.all_events if e.event_type_value == "STEP_FAILURE")
    message = str(failure.event_specific_data.error)
    assert f"s3://{bucket}/lake/raw_tweets/dt=2024-06-01/part-00000.jsonl.gz" in message and proxy.url in message
    visible = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []) if not is_bookkeeping(o["Key"])]
    assert visible == ["lake/_tweet_assets_check/write-check"]  # the write check passed; no table object, not even half
    uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [u["Key"] for u in uploads] == ["lake/raw_tweets/dt=2024-06-01/part-00000.jsonl.gz"]

    time.sleep(1.1)  # S3's Initiated has second resolution
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws_env)
    assert run(resources(f"s3://{bucket}/lake", source), "2024-06-01", instance=instance).success
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"] if not is_bookkeeping(o["Key"]))
    assert keys == ["lake/_tweet_assets_check/write-check"] + [f"lake/{t}/dt=2024-06-01/part-00000.{f}" for t, f in (("clean_tweets", "parquet"), ("raw_tweets", "jsonl.gz"), ("tweets", "parquet"))]
    published = s3.get_object(Bucket=bucket, Key="lake/tweets/dt=2024-06-01/part-00000.parquet")["Body"].read()
    assert pq.read_metadata(pa.BufferReader(published)).num_rows == 32000


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
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"] if f"dt={day}" in o["Key"] and not is_bookkeeping(o["Key"])]
        return {k: s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys}

    assert dump(flaky, "2021-06-27") == {}  # nothing half-written for the failed day
    assert dump(clean, "2021-06-26") == dump(flaky, "2021-06-26") and len(dump(clean, "2021-06-26")) == 3
