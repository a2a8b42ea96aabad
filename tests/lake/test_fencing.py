"""Fencing (#36): every write of a day's object carries its condition (botocore's Stubber against
S3's documented parameters, and a real run's calls recorded), the lake-level interleavings of a
stale writer and the live holder (a held request in the tests' proxy, a paused thread with its
heartbeat stopped, as a stopped process's would be), leases kept alive by their heartbeat and
judged by the storage's clock, and the write check that never races (point 7).
"""

from __future__ import annotations

import io
import os
import threading
import time
from urllib.parse import unquote

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

from tests.lake.strict_s3 import strict_s3  # noqa: F401 - fixture
from tweet_assets import config
from tweet_assets.lake import fencing, leases as leases_module
from tweet_assets.lake.leases import DayLeases, LeaseConflict, LeaseLost, lease_key
from tweet_assets.lake.store import LocalLake, ObjectChanged, PreconditionFailed, Record, S3Lake, open_lake

DAY = "2024-03-05"
KEY = f"raw_tweets/dt={DAY}/part-00000.jsonl.gz"
BOUND_S = 120  # waits are for conditions; this only stops a broken test hanging


def until(condition, what: str, bound: float = BOUND_S, step: float = 0.02) -> None:
    """Wait for ``condition()`` (bounded), e.g. a lease lapsing by the storage's clock."""
    deadline = time.monotonic() + bound
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting for {what} after {bound} s")
        time.sleep(step)


def lapsed(lake, day: str = DAY) -> bool:
    """The day's lease is dead as any taker judges it (the storage's clock)."""
    read = lake.read_record(lease_key(day))
    import orjson

    return read.data is not None and DayLeases(lake, "observer", "x")._dead(orjson.loads(read.data), read)


def stop_heartbeat(lake, run_id: str) -> None:
    """What SIGSTOP does to a run's heartbeat: it stops renewing (its cached lease stays). A renewal
    in flight (held in the proxy) completes later and finds the lease gone."""
    beat = leases_module._beats.get((lake.url, run_id))
    if beat is not None:
        beat.stop.set()


@pytest.fixture(autouse=True)
def _forget_leases():
    yield
    for run in ("run-a", "run-b", "run-c", "observer"):
        leases_module.forget_run(run)
    leases_module._lost.clear()


# --- the request shapes (botocore's Stubber checks each against S3's model) ----------------------


def _stubbed(monkeypatch):
    client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
    monkeypatch.setattr(S3Lake, "UPLOAD_THREADS", 1)  # parts in order, as the stub answers them
    return S3Lake("s3://bucket-x/lake", client), Stubber(client)


def test_every_kind_of_data_write_sends_its_condition_and_writer(monkeypatch, tmp_path):
    lake, stub = _stubbed(monkeypatch)
    meta = {"run-id": "run-a", "write-id": "w1"}
    small = tmp_path / "small"
    small.write_bytes(b"x" * 100)
    big = tmp_path / "big"
    big.write_bytes(b"y" * 2500)
    monkeypatch.setattr(S3Lake, "MULTIPART_THRESHOLD", 1000)
    monkeypatch.setattr(S3Lake, "PART_BYTES", 1000)
    k = "lake/" + KEY
    # PutObject: If-None-Match for an absent object, If-Match for a known version
    stub.add_response("put_object", {"ETag": '"e1"'}, {"Bucket": "bucket-x", "Key": k, "Body": b"1", "Metadata": meta, "IfNoneMatch": "*"})
    stub.add_response("put_object", {"ETag": '"e2"'}, {"Bucket": "bucket-x", "Key": k, "Body": ANY, "Metadata": meta, "IfMatch": '"e1"'})
    # a multipart upload: the condition on CompleteMultipartUpload (the others take none)
    stub.add_response("create_multipart_upload", {"UploadId": "u1"}, {"Bucket": "bucket-x", "Key": k, "Metadata": meta})
    for number in (1, 2, 3):
        stub.add_response("upload_part", {"ETag": f'"p{number}"'}, {"Bucket": "bucket-x", "Key": k, "UploadId": "u1", "PartNumber": number, "Body": ANY})
    parts = {"Parts": [{"PartNumber": n, "ETag": f'"p{n}"'} for n in (1, 2, 3)]}
    stub.add_response("complete_multipart_upload", {"ETag": '"e3-3"'}, {"Bucket": "bucket-x", "Key": k, "UploadId": "u1", "MultipartUpload": parts, "IfMatch": '"e2"'})
    # refused: the upload is aborted and the refusal raised as PreconditionFailed
    stub.add_response("create_multipart_upload", {"UploadId": "u2"}, {"Bucket": "bucket-x", "Key": k, "Metadata": meta})
    for number in (1, 2, 3):
        stub.add_response("upload_part", {"ETag": f'"p{number}"'}, {"Bucket": "bucket-x", "Key": k, "UploadId": "u2", "PartNumber": number, "Body": ANY})
    stub.add_client_error("complete_multipart_upload", service_error_code="PreconditionFailed", http_status_code=412, expected_params={"Bucket": "bucket-x", "Key": k, "UploadId": "u2", "MultipartUpload": parts, "IfNoneMatch": "*"})
    stub.add_response("abort_multipart_upload", {}, {"Bucket": "bucket-x", "Key": k, "UploadId": "u2"})
    # the copy: the source version pinned (HeadObject and UploadPartCopy), the target's condition on the completion
    source, target = "lake/clean_tweets/dt=2024-03-05/part-00000.parquet", "lake/tweets/dt=2024-03-05/part-00000.parquet"
    stub.add_response("head_object", {"ContentLength": 30, "ETag": '"c1"'}, {"Bucket": "bucket-x", "Key": source, "IfMatch": '"c1"'})
    stub.add_response("create_multipart_upload", {"UploadId": "u3"}, {"Bucket": "bucket-x", "Key": target, "Metadata": meta})
    stub.add_response(
        "upload_part_copy",
        {"CopyPartResult": {"ETag": '"q1"'}},
        {"Bucket": "bucket-x", "Key": target, "UploadId": "u3", "PartNumber": 1, "CopySource": {"Bucket": "bucket-x", "Key": source}, "CopySourceIfMatch": '"c1"'},
    )
    stub.add_response("complete_multipart_upload", {"ETag": '"t1-1"'}, {"Bucket": "bucket-x", "Key": target, "UploadId": "u3", "MultipartUpload": {"Parts": [{"PartNumber": 1, "ETag": '"q1"'}]}, "IfNoneMatch": "*"})
    # a source replaced meanwhile: ObjectChanged, the upload aborted
    stub.add_response("head_object", {"ContentLength": 30, "ETag": '"c1"'}, {"Bucket": "bucket-x", "Key": source, "IfMatch": '"c1"'})
    stub.add_response("create_multipart_upload", {"UploadId": "u4"}, {"Bucket": "bucket-x", "Key": target, "Metadata": meta})
    stub.add_client_error("upload_part_copy", service_error_code="PreconditionFailed", http_status_code=412)
    stub.add_response("abort_multipart_upload", {}, {"Bucket": "bucket-x", "Key": target, "UploadId": "u4"})
    # reads of a version: GetObject If-Match
    stub.add_response("get_object", {"Body": StreamingBody(io.BytesIO(b"8 bytes!"), 8)}, {"Bucket": "bucket-x", "Key": source, "IfMatch": '"c1"', "Range": "bytes=-8"})
    stub.add_client_error("get_object", service_error_code="PreconditionFailed", http_status_code=412, expected_params={"Bucket": "bucket-x", "Key": source, "IfMatch": '"c0"'})
    with stub:
        assert lake.write_bytes(KEY, b"1", None, meta).etag == '"e1"'
        assert lake.write_file(KEY, str(small), '"e1"', meta).etag == '"e2"'
        assert lake.write_file(KEY, str(big), '"e2"', meta).etag == '"e3-3"'
        with pytest.raises(PreconditionFailed):
            lake.write_file(KEY, str(big), None, meta)
        written = lake.copy_version("clean_tweets/dt=2024-03-05/part-00000.parquet", '"c1"', "tweets/dt=2024-03-05/part-00000.parquet", None, meta)
        assert (written.etag, written.bytes) == ('"t1-1"', 30)
        with pytest.raises(ObjectChanged, match="changed since this run read it"):
            lake.copy_version("clean_tweets/dt=2024-03-05/part-00000.parquet", '"c1"', "tweets/dt=2024-03-05/part-00000.parquet", None, meta)
        assert lake.read_tail_version("clean_tweets/dt=2024-03-05/part-00000.parquet", 8, '"c1"') == b"8 bytes!"
        with pytest.raises(ObjectChanged):
            lake.open_version("clean_tweets/dt=2024-03-05/part-00000.parquet", '"c0"')
        stub.assert_no_pending_responses()


@pytest.mark.slow
def test_a_real_run_sends_every_data_write_with_its_condition_and_no_copyobject(s3_lake, aws_env, instance, monkeypatch):
    """Every call of two runs of one day on moto, recorded at botocore's API call: each write of a
    day's object (PutObject, CompleteMultipartUpload) carries If-None-Match (first run) or If-Match
    (the rerun), its upload names the run (x-amz-meta-run-id), copies are UploadPartCopy pinned to
    their source, and CopyObject is never used."""
    import botocore.client

    from tests.helpers import resources, run
    from tweet_assets.sources import SampleSource

    calls = []
    real = botocore.client.BaseClient._make_api_call

    def record(self, operation, params):
        calls.append((operation, dict(params)))
        return real(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", record)
    monkeypatch.setattr(S3Lake, "MULTIPART_THRESHOLD", 64 << 10)  # the raw day (~200 KB) as a multipart upload
    results = [run(resources(s3_lake, SampleSource(posts_per_day=300)), DAY, instance=instance) for _ in range(2)]
    data = ("raw_tweets/dt=", "clean_tweets/dt=", "tweets/dt=")
    writes = [(op, p) for op, p in calls if op in ("PutObject", "CompleteMultipartUpload", "CopyObject") and any(t in p["Key"] for t in data)]
    assert len(writes) == 6 and {op for op, _ in writes} <= {"PutObject", "CompleteMultipartUpload"}, [op for op, _ in writes]
    conditions = [("IfNoneMatch" if "IfNoneMatch" in p else "IfMatch" if "IfMatch" in p else None) for _, p in writes]
    half = len(writes) // 2
    assert conditions[:half] == ["IfNoneMatch"] * half and conditions[half:] == ["IfMatch"] * half, conditions
    creates = [p for op, p in calls if op == "CreateMultipartUpload"]
    named = [p.get("Metadata", {}).get("run-id") for _, p in writes if "Metadata" in p] + [p["Metadata"]["run-id"] for p in creates]
    assert set(named) == {r.run_id for r in results}
    copies = [p for op, p in calls if op == "UploadPartCopy"]
    assert len(copies) == 2 and all(p["CopySourceIfMatch"] for p in copies)
    assert not [op for op, _ in calls if op == "CopyObject"]


# --- the local lake: compare and replace under the lock -----------------------------------------


def test_local_writes_compare_and_replace_under_the_lock_and_name_their_writer(tmp_path):
    from tweet_assets.lake.prefixes import sub_lake

    lake = sub_lake(LocalLake(str(tmp_path)), "lake")  # a collection's folder: the parent's locks
    first = lake.write_bytes(KEY, b"one", None, {"run-id": "run-a", "write-id": "w1"})
    with pytest.raises(PreconditionFailed, match="exists"):
        lake.write_bytes(KEY, b"two", None, {"run-id": "run-b"})
    with pytest.raises(PreconditionFailed, match="not"):
        lake.write_bytes(KEY, b"two", '"0123"', {"run-id": "run-b"})
    head = lake.head(KEY)
    assert (head.etag, head.size, head.run_id, head.write_id) == (first.etag, 3, "run-a", "w1")
    second = lake.write_bytes(KEY, b"two", first.etag, {"run-id": "run-b", "write-id": "w2"})
    assert lake.read_bytes(KEY) == b"two" and lake.head(KEY).run_id == "run-b" and second.etag == lake.etag(KEY)
    assert [p for p in (tmp_path / "lake" / "raw_tweets" / f"dt={DAY}").iterdir()] == [tmp_path / "lake" / KEY]  # no temporary left by the refusals
    # the parent's view of the same file takes the same lock and sees the same writer
    parent = LocalLake(str(tmp_path))
    assert lake.lock_root == parent.lock_root == str(tmp_path) and parent.head("lake/" + KEY).run_id == "run-b"
    with pytest.raises(PreconditionFailed):
        parent.write_bytes("lake/" + KEY, b"three", first.etag, {})
    with pytest.raises(ObjectChanged):
        lake.open_version(KEY, first.etag)
    assert lake.read_tail_version(KEY, 2, second.etag) == b"wo"


# --- leases: heartbeat, renewal point, storage clock, lost leases ----------------------------------


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.slow)])
def lake(request, tmp_path):
    if request.param == "local":
        return LocalLake(str(tmp_path / "lake"))
    url = request.getfixturevalue("s3_lake")
    return open_lake(url, lambda: boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1"))


def _counting_renewals(lake, monkeypatch) -> list:
    renewals = []
    real = type(lake).put_record

    def put_record(self, key, data, etag):
        if etag is not None and key == lease_key(DAY):
            renewals.append(time.monotonic())
        return real(self, key, data, etag)

    monkeypatch.setattr(type(lake), "put_record", put_record)
    return renewals


def test_the_heartbeat_keeps_a_lease_alive_past_its_ttl_and_a_lapsed_run_never_gets_it_back(lake, monkeypatch):
    renewals = _counting_renewals(lake, monkeypatch)
    a = DayLeases(lake, "run-a", "raw_tweets", ttl_s=2.0, heartbeat_s=0.3)
    taken = time.monotonic()
    a.acquire([DAY])
    until(lambda: renewals and renewals[-1] - taken > a.ttl_s + 1.5, "the heartbeat to renew past the TTL")
    with pytest.raises(LeaseConflict, match="being written by Dagster run run-a"):
        DayLeases(lake, "run-b", "raw_tweets").acquire([DAY])  # alive: the run waits, its heartbeat renews
    stop_heartbeat(lake, "run-a")  # the run is stopped: nothing renews its lease any more
    until(lambda: lapsed(lake), "run-a's lease to lapse by the storage's clock")
    b = DayLeases(lake, "run-b", "raw_tweets")
    assert b.acquire([DAY])[DAY].took_over_from == "run-a"
    b.release([DAY])  # run-b finished: the lease is released, not just expired
    with pytest.raises(LeaseLost, match=r"run run-a lost its lease of 2024-03-05 to run run-b, which has finished with it"):
        a.check(DAY)  # past its renewal point: renewed, and the renewal finds another run's lease
    leases_module._lost.clear()
    a.forget()  # a new step of run-a, in a new process: no memory of the lease
    with pytest.raises(LeaseLost, match="to run run-b"):
        DayLeases(lake, "run-a", "clean_tweets").acquire([DAY])
    DayLeases(lake, "run-c", "raw_tweets").acquire([DAY])  # a third run may take the released day


def test_a_cached_lease_is_trusted_only_up_to_its_renewal_point(tmp_path, monkeypatch):
    lake = LocalLake(str(tmp_path))
    now = [1000.0]
    a = DayLeases(lake, "run-a", "raw_tweets", ttl_s=60, heartbeat_s=10, clock=lambda: now[0])
    renewals = _counting_renewals(lake, monkeypatch)
    a.acquire([DAY])
    stop_heartbeat(lake, "run-a")
    now[0] += 9.9
    a.check(DAY)
    assert renewals == []  # inside its renewal point: the cache
    now[0] += 0.2
    a.check(DAY)
    assert len(renewals) == 1  # past it: renewed before being trusted


def test_expiry_is_judged_by_the_storages_clock_not_the_hosts(tmp_path, monkeypatch):
    lake = LocalLake(str(tmp_path))
    DayLeases(lake, "run-a", "raw_tweets", ttl_s=60).acquire([DAY])
    stop_heartbeat(lake, "run-a")
    real = time.time
    monkeypatch.setattr(leases_module.time, "time", lambda: real() + 86_400)  # this host's clock a day ahead
    with pytest.raises(LeaseConflict):
        DayLeases(lake, "run-b", "raw_tweets").acquire([DAY])  # the storage says 60 s have not passed
    monkeypatch.setattr(leases_module.time, "time", real)
    path = tmp_path / lease_key(DAY)
    os.utime(path, (os.stat(path).st_atime, os.stat(path).st_mtime - 61))  # stored 61 s ago by the storage's clock
    assert DayLeases(lake, "run-b", "raw_tweets").acquire([DAY])[DAY].took_over_from == "run-a"
    # S3: Date minus Last-Modified, plus a second for their resolution, against the holder's ttl_s
    s3 = S3Lake("s3://b/lake", client=None)
    judge = DayLeases(s3, "run-c", "x", ttl_s=1)
    record = {"run_id": "run-a", "ttl_s": 60, "expires_at": real() + 3600}
    assert not judge._dead(record, Record(b"{}", '"e"', 1_000_000.0, 1_000_060.0))
    assert judge._dead(record, Record(b"{}", '"e"', 1_000_000.0, 1_000_061.0))
    assert judge._dead({"run_id": "run-a", "ttl_s": 60, "expires_at": 0, "released": True}, Record(b"{}", '"e"', 1_000_000.0, 1_000_000.0))


def test_the_heartbeat_stops_with_the_step_and_a_lost_lease_is_seen_without_a_request(tmp_path):
    lake = LocalLake(str(tmp_path))
    a = DayLeases(lake, "run-a", "raw_tweets", ttl_s=1.5, heartbeat_s=0.2)
    a.acquire([DAY])
    beat = leases_module._beats[(lake.url, "run-a")]
    assert beat.is_alive()
    leases_module.forget_run("run-a")  # the IO manager's teardown at the end of the step
    beat.join(BOUND_S)
    assert not beat.is_alive()
    a.acquire([DAY])  # a later step of the run goes on with its own lease
    stop_heartbeat(lake, "run-a")
    until(lambda: lapsed(lake), "the lease to lapse")
    DayLeases(lake, "run-b", "raw_tweets").acquire([DAY])
    with pytest.raises(LeaseLost):
        a.check(DAY, force=True)
    assert isinstance(leases_module.lost_lease(lake.url, "run-a"), LeaseLost)  # what raw_tweets' fetch loop asks per page


# --- point 6: the lease settings -------------------------------------------------------------------


@pytest.mark.parametrize(
    "env, message",
    [
        ({"TWEET_ASSETS_LEASE_TTL_S": "0"}, "TWEET_ASSETS_LEASE_TTL_S='0': set it to a number of seconds > 0"),
        ({"TWEET_ASSETS_LEASE_TTL_S": "nan"}, "TWEET_ASSETS_LEASE_TTL_S='nan'"),
        ({"TWEET_ASSETS_LEASE_TTL_S": "30", "TWEET_ASSETS_LEASE_HEARTBEAT_S": "11"}, "TWEET_ASSETS_LEASE_HEARTBEAT_S=11 is not well inside TWEET_ASSETS_LEASE_TTL_S=30"),
        ({"TWEET_ASSETS_LEASE_HEARTBEAT_S": "0"}, "TWEET_ASSETS_LEASE_HEARTBEAT_S='0': set it to a number of seconds > 0"),
    ],
)
def test_point6_lease_settings_outside_their_rules_are_refused_in_one_line(env, message):
    with pytest.raises(config.SettingError) as refused:
        config.check(env)
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_point6_short_ttls_stay_usable_and_the_heartbeat_defaults_inside_them():
    config.check({"TWEET_ASSETS_LEASE_TTL_S": "3", "TWEET_ASSETS_LEASE_HEARTBEAT_S": "1"})
    assert config.heartbeat_s({"TWEET_ASSETS_LEASE_TTL_S": "3"}) == 0.5
    assert config.heartbeat_s({}) == 3600  # 6 h TTL: renewed hourly


def test_point6_a_run_with_a_zero_ttl_writes_nothing(tmp_path, instance, monkeypatch):
    """TTL 0 was accepted and let two runs write one day at once; now a run refuses it before
    writing anything (the code location refuses it at load too: tests/test_config.py)."""
    from tests.helpers import resources, run
    from tweet_assets.sources import SampleSource

    monkeypatch.setenv("TWEET_ASSETS_LEASE_TTL_S", "0")
    lake_url = str(tmp_path / "lake")
    result = run(resources(lake_url, SampleSource(posts_per_day=20)), DAY, instance=instance, raise_on_error=False)
    assert not result.success
    failure = "\n".join(str(e.event_specific_data.error) for e in result.all_events if e.is_step_failure)
    assert "TWEET_ASSETS_LEASE_TTL_S='0'" in failure
    assert not [p for p in (tmp_path / "lake").rglob("part-00000.*")]


# --- point 7: the write check ----------------------------------------------------------------------


def test_point7_concurrent_write_checks_never_remove_each_other(tmp_path):
    """Four threads of two 'runs' checking one local lake 400 times each (the old shared
    write-check key failed ~5-15% of the time: FileNotFoundError, or a LakeError telling the user to
    check the directory is writable)."""
    root = str(tmp_path / "lake")
    failures = []

    def check(run_id):
        lake = LocalLake(root)
        for _ in range(400):
            try:
                lake.check_writable(run_id)
            except Exception as exc:  # noqa: BLE001 - counted
                failures.append(repr(exc))

    threads = [threading.Thread(target=check, args=(f"run-{i % 2}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(BOUND_S)
    assert failures == []
    assert os.listdir(root) == []  # nothing of the checks is left


# --- the lake-level interleavings of a stale writer and the live holder ----------------------------


class Held:
    """Run ``fn`` in a thread that blocks (before storing anything) until released."""

    def __init__(self, fn):
        self.result = self.error = None
        self.fn = fn
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        try:
            self.result = self.fn()
        except BaseException as exc:  # noqa: BLE001 - the test looks at it
            self.error = exc

    def start(self):
        self.thread.start()
        return self

    def join(self):
        self.thread.join(BOUND_S)
        assert not self.thread.is_alive()


@pytest.fixture(params=["local", "s3"])
def two_writers(request, tmp_path, monkeypatch):
    """``(lake of run A, lake of run B, hold, release)``: run A's next write is held before it is
    stored (S3: the request held in the tests' proxy with every later one, as for a cut-off client;
    local: the writing thread stopped before its compare-and-replace), until ``release()``."""
    if request.param == "local":
        root = str(tmp_path / "lake")
        a, b = LocalLake(root), LocalLake(root)
        gate, arrived = threading.Event(), threading.Event()
        real = LocalLake._replace_if

        def held(self, key, *args, **kwargs):
            if self is a and key == KEY and not gate.is_set():
                arrived.set()
                gate.wait(BOUND_S)
            return real(self, key, *args, **kwargs)

        monkeypatch.setattr(LocalLake, "_replace_if", held)
        yield a, b, arrived, gate.set
        return
    from tests.s3_fault_proxy import FaultProxy

    request.getfixturevalue("strict_s3")
    url = request.getfixturevalue("s3_lake")
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    with FaultProxy(endpoint) as proxy:
        proxy.hold(lambda method, path, headers: method in ("PUT", "POST") and "/raw_tweets/dt=" in unquote(path))
        a = open_lake(url, lambda: boto3.client("s3", endpoint_url=proxy.url, region_name="us-east-1"))
        b = open_lake(url, lambda: boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1"))
        yield a, b, proxy.held, proxy.release


class Log:
    def __init__(self):
        self.warnings, self.infos = [], []

    def warning(self, text):
        self.warnings.append(text)

    def info(self, text):
        self.infos.append(text)


def _write(lake, leases, data: bytes, log=None):
    return fencing.store(lake, leases, DAY, KEY, lambda expect, meta: lake.write_bytes(KEY, data, expect, meta), log)


def _lapse_a(a, b):
    stop_heartbeat(a, "run-a")  # a stopped process renews nothing (on S3 its renewals would be held too)
    until(lambda: lapsed(b), "run-a's lease to lapse by the storage's clock")


def test_case1_a_stale_write_landing_before_the_new_holder_writes_is_replaced_by_it(two_writers):
    """Run A's write is held past its lease; run B takes the day over and reads the (absent) object;
    A's write lands (its condition still holds); A then learns its lease is gone and fails; B's own
    conditional write fails, B finds A's stale object, replaces it and says so naming A."""
    a_lake, b_lake, held, release = two_writers
    a = DayLeases(a_lake, "run-a", "raw_tweets", ttl_s=2.0, heartbeat_s=0.3)
    a.acquire([DAY])
    writer = Held(lambda: _write(a_lake, a, b"A's 50 posts")).start()
    until(held.is_set, "run A's write to be held")
    _lapse_a(a_lake, b_lake)
    b = DayLeases(b_lake, "run-b", "raw_tweets")
    lease = b.acquire([DAY])[DAY]
    log = Log()
    assert fencing.expected_version(b_lake, lease, KEY, log) is None  # B read the day before A's write landed
    release()
    writer.join()
    assert isinstance(writer.error, LeaseLost) and f"landed after its lease of {DAY} lapsed: a stale write, which run run-b replaces" in str(writer.error)
    assert b_lake.head(KEY).run_id == "run-a"  # A's stale write is there now
    written = _write(b_lake, b, b"B's 80 posts", log)
    assert b_lake.read_bytes(KEY) == b"B's 80 posts" and b_lake.head(KEY).run_id == "run-b" and written.etag == b_lake.etag(KEY)
    assert len(log.warnings) == 1 and "holds a stale write by run run-a" in log.warnings[0] and "Run run-b replaces it" in log.warnings[0]


def test_case1_a_stale_write_landing_after_the_new_holder_wrote_is_refused(two_writers):
    a_lake, b_lake, held, release = two_writers
    a = DayLeases(a_lake, "run-a", "raw_tweets", ttl_s=2.0, heartbeat_s=0.3)
    a.acquire([DAY])
    writer = Held(lambda: _write(a_lake, a, b"A's 50 posts")).start()
    until(held.is_set, "run A's write to be held")
    _lapse_a(a_lake, b_lake)
    b = DayLeases(b_lake, "run-b", "raw_tweets")
    b.acquire([DAY])
    _write(b_lake, b, b"B's 80 posts")
    release()
    writer.join()
    assert isinstance(writer.error, LeaseLost)
    assert str(writer.error).startswith(f"{DAY} was written by run run-b after this run's lease lapsed; nothing of this run was kept for {DAY}")
    assert b_lake.read_bytes(KEY) == b"B's 80 posts" and b_lake.head(KEY).run_id == "run-b"


def test_case2_a_stale_write_after_the_holder_finished_and_released_is_refused(two_writers):
    a_lake, b_lake, held, release = two_writers
    a = DayLeases(a_lake, "run-a", "raw_tweets", ttl_s=2.0, heartbeat_s=0.3)
    a.acquire([DAY])
    writer = Held(lambda: _write(a_lake, a, b"A's 50 posts")).start()
    until(held.is_set, "run A's write to be held")
    _lapse_a(a_lake, b_lake)
    b = DayLeases(b_lake, "run-b", "raw_tweets")
    b.acquire([DAY])
    _write(b_lake, b, b"B's 80 posts")
    b.release([DAY])
    release()
    writer.join()
    assert isinstance(writer.error, LeaseLost) and "run run-b took the day over and has finished with it" in str(writer.error)
    assert b_lake.read_bytes(KEY) == b"B's 80 posts"


# --- review (notes/review_lake.md) 4: lineage writes fenced by the lease ---------------------------


def test_review4_a_run_that_lost_its_lease_after_its_write_records_no_lineage(tmp_path, instance, monkeypatch):
    """A real raw_tweets materialization (local lake) whose day is taken over by run-b right after
    its fenced write returned (run-a paused there, its cached lease still inside its renewal point):
    run-a must not overwrite run-b's lineage entry; it fails naming run-b."""
    from dagster import materialize

    from tests.helpers import resources
    from tweet_assets.defs.pipeline import assets
    from tweet_assets.lake import lineage
    from tweet_assets.sources import SampleSource

    root = str(tmp_path / "lake")
    real_store = fencing.store

    def store(lake, leases, day, key, write, log=None):
        written = real_store(lake, leases, day, key, write, log)
        if key.startswith("raw_tweets/"):  # run-a pauses here; its lease lapses and run-b takes the day
            b = DayLeases(lake, "run-b", "raw_tweets", run_finished=lambda run: run == leases.run_id)
            b.acquire([day])
            mine = real_store(lake, b, day, key, lambda expect, meta: lake.write_bytes(key, b"B's pages", expect, meta))
            lineage.record(lake, day, "raw_tweets", {"key": key, "etag": mine.etag, "run_id": "run-b", "source": "sample"})
        return written

    monkeypatch.setattr(fencing, "store", store)
    result = materialize([assets.raw_tweets], resources=resources(root, SampleSource(posts_per_day=20)), instance=instance, partition_key=DAY, raise_on_error=False)
    lake = LocalLake(root)
    assert lineage.read_lineage(lake, DAY)["raw_tweets"]["run_id"] == "run-b"
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error
    while failure.cause is not None:  # Dagster's handle-output error wraps the IO manager's
        failure = failure.cause
    assert failure.cls_name == "LeaseLost" and "to run run-b" in failure.message
