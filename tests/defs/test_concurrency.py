"""Two real runs at once (#27 points 1-5, 14): two threads, each a Dagster run against one
instance (SQLite in a temporary directory) and one lake (local directory, or moto S3); the
interleaving is forced by threading.Event hooks at the point where the other run must start,
never by sleeps. Posts are counted by reading the objects with pyarrow / gzip + json, not with the
project's own counters.
"""

from __future__ import annotations

import gzip
import json
import os
import threading
from types import SimpleNamespace

import boto3
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dagster import AssetKey, AssetRecordsFilter, instance_for_test, materialize

from tests.helpers import resources, run
from tests.lake import fencing_cases
from tests.lake.strict_s3 import strict_s3  # noqa: F401 - a fixture
from tweet_assets.lake import lineage
from tweet_assets.compliance.api import ComplianceApi
from tweet_assets.compliance.ledger import LEDGER_KEY
from tweet_assets.defs.compliance.assets import compliance_ledger
from tweet_assets.lake.io_manager import LakeIOManager
from tweet_assets.lake.store import LakeError, LocalLake, S3Lake
from tweet_assets.sources.sample import SampleSource

DAY = "2024-03-05"
BOUND_S = 600  # a hook waits for the other run's progress; this only stops a broken test hanging


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.slow)])
def lake_url(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "lake")
    return request.getfixturevalue("s3_lake")


@pytest.fixture
def shared_instance(monkeypatch):
    """One SQLite instance for both runs.

    Dagster 1.13 builds each run's log manager with ``logging.config.dictConfig`` (even with no
    ``python_logs`` handlers configured), which takes the logging module's lock and then each
    handler's, while a run that is logging holds its handler's lock and then wants the module's:
    two in-process runs in threads of one process can deadlock (seen: compliance beside a backfill,
    one thread in ``Handler.acquire``, the other in ``logging._acquireLock``). Runs launched by the
    daemon are processes of their own, so a deployment never meets it; here the dictConfig call is
    skipped when there are no handlers to configure (it returns none then anyway)."""
    from dagster._core.instance.methods.event_methods import EventMethods

    original = EventMethods.get_yaml_python_handlers

    def handlers(self):
        return original(self) if self._instance.get_python_log_dagster_handler_config() else []

    monkeypatch.setattr(EventMethods, "get_yaml_python_handlers", handlers)
    with instance_for_test() as inst:
        yield inst


def _bytes(lake_url: str, key: str) -> bytes | None:
    if lake_url.startswith("s3://"):
        bucket, _, prefix = lake_url[5:].partition("/")
        client = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1")
        try:
            return client.get_object(Bucket=bucket, Key=f"{prefix}/{key}")["Body"].read()
        except client.exceptions.NoSuchKey:
            return None
    path = os.path.join(lake_url, key)
    return open(path, "rb").read() if os.path.exists(path) else None


def rows(lake_url: str, table: str, day: str = DAY) -> list[int]:
    """The ids of a day's Parquet object, read with pyarrow."""
    data = _bytes(lake_url, LakeIOManager.key(table, "parquet", day))
    return [] if data is None else pq.read_table(pa.BufferReader(data), columns=["id"]).column("id").to_pylist()


def raw_posts(lake_url: str, day: str = DAY) -> int:
    """Posts in a day's raw pages (gzip + json, each page's ``data``)."""
    data = _bytes(lake_url, LakeIOManager.key("raw_tweets", "jsonl.gz", day))
    return sum(len(json.loads(line).get("data") or []) for line in gzip.decompress(data).splitlines() if line.strip())


def counts(lake_url: str) -> dict:
    return {"raw posts": raw_posts(lake_url), "clean rows": len(rows(lake_url, "clean_tweets")), "published rows": len(rows(lake_url, "tweets"))}


class Runner(threading.Thread):
    """A run in a thread; ``result`` (Dagster's) or ``error`` afterwards."""

    def __init__(self, name: str, target):
        super().__init__(name=name, daemon=True)
        self._target_fn, self.result, self.error = target, None, None

    def run(self):
        try:
            self.result = self._target_fn()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc


def failure_text(result) -> str:
    return "\n".join(e.event_specific_data.error.to_string() for e in result.all_events if e.is_step_failure)


def _pause_after(monkeypatch, table: str, thread: str, reached: threading.Event, go_on) -> None:
    """Thread ``thread`` stops after storing ``table`` (its IO manager's handle_output) until ``go_on()``."""
    original = LakeIOManager.handle_output

    def hooked(self, context, obj):
        original(self, context, obj)
        if threading.current_thread().name == thread and self._table(context.definition_metadata, context.asset_key)[0] == table:
            reached.set()
            go_on()

    monkeypatch.setattr(LakeIOManager, "handle_output", hooked)


def _until(event: threading.Event, thread: threading.Thread) -> None:
    """Wait for ``event`` or the end of ``thread`` (progress), whichever first."""
    while not event.is_set() and thread.is_alive():
        event.wait(0.05)


# --- point 1: two runs of one day
def test_point1_a_second_run_of_a_day_being_written_is_refused_naming_the_first(lake_url, shared_instance, monkeypatch):
    landed, b_done = threading.Event(), threading.Event()
    _pause_after(monkeypatch, "raw_tweets", "run-A", landed, lambda: b_done.wait(BOUND_S))
    a = Runner("run-A", lambda: run(resources(lake_url, SampleSource(posts_per_day=600)), DAY, instance=shared_instance))
    a.start()
    _until(landed, a)
    assert landed.is_set(), a.error
    b = Runner("run-B", lambda: run(resources(lake_url, SampleSource(posts_per_day=50, seed=8)), DAY, instance=shared_instance, raise_on_error=False))
    b.start()
    b.join(BOUND_S)
    b_done.set()
    a.join(BOUND_S)
    assert a.error is None and a.result.success
    assert not b.result.success, "run B overwrote the day run A was writing"
    message = failure_text(b.result)
    assert a.result.run_id in message and "being written by Dagster run" in message
    assert counts(lake_url) == {"raw posts": 600, "clean rows": 600, "published rows": 600}
    # recomputing clean_tweets + s3_parquet from the raw zone publishes the same posts
    res = resources(lake_url, SampleSource(posts_per_day=600))
    assert run(res, DAY, instance=shared_instance, selection=["clean_tweets", "s3_parquet"]).success
    assert counts(lake_url) == {"raw posts": 600, "clean rows": 600, "published rows": 600}


def test_point1_lineage_refuses_to_publish_clean_from_a_replaced_raw_object(tmp_path, shared_instance):
    """raw_tweets re-landed by another run after clean_tweets was computed: s3_parquet alone fails
    naming what changed, instead of publishing a clean table of another raw object."""
    lake_url = str(tmp_path / "lake")
    assert run(resources(lake_url, SampleSource(posts_per_day=120)), DAY, instance=shared_instance).success
    assert run(resources(lake_url, SampleSource(posts_per_day=40, seed=9)), DAY, instance=shared_instance, selection=["raw_tweets"]).success
    result = run(resources(lake_url, SampleSource(posts_per_day=40, seed=9)), DAY, instance=shared_instance, selection=["s3_parquet"], raise_on_error=False)
    assert not result.success
    assert "changed since run" in failure_text(result) and "Materialize clean_tweets" in failure_text(result)
    assert len(rows(lake_url, "tweets")) == 120


# --- point 4: two sources on one day
class StreamNamed(SampleSource):
    """Another source for the same day (named as the stream-day sensor's runs are)."""

    @property
    def source_name(self) -> str:
        return "stream"


def test_point4_a_second_source_for_a_landed_day_is_refused_naming_both(tmp_path, shared_instance, monkeypatch):
    lake_url = str(tmp_path / "lake")
    first = run(resources(lake_url, SampleSource(posts_per_day=80)), DAY, instance=shared_instance)
    second = run(resources(lake_url, StreamNamed(posts_per_day=30, seed=3)), DAY, instance=shared_instance, raise_on_error=False)
    assert not second.success
    message = failure_text(second)
    assert "'sample'" in message and "'stream'" in message and first.run_id in message and "TWEET_ASSETS_REPLACE_SOURCE" in message
    assert counts(lake_url) == {"raw posts": 80, "clean rows": 80, "published rows": 80}
    assert run(resources(lake_url, SampleSource(posts_per_day=90)), DAY, instance=shared_instance).success  # same source: a rerun
    monkeypatch.setenv("TWEET_ASSETS_REPLACE_SOURCE", "1")
    assert run(resources(lake_url, StreamNamed(posts_per_day=30, seed=3)), DAY, instance=shared_instance).success
    assert counts(lake_url) == {"raw posts": 30, "clean rows": 30, "published rows": 30}


# --- point 5: temporaries
def test_point5_a_live_temporary_is_kept_and_a_dead_one_removed_local(tmp_path, shared_instance):
    lake_url = str(tmp_path / "lake")
    folder = os.path.join(lake_url, "raw_tweets", f"dt={DAY}")
    os.makedirs(folder)
    live, dead = os.path.join(folder, ".tmp-live.part"), os.path.join(folder, ".tmp-dead.part")
    for path in (live, dead):
        open(path, "wb").write(b"half an object")
    os.utime(dead, (os.stat(dead).st_atime - 7200, os.stat(dead).st_mtime - 7200))  # older than the 1 h grace period
    assert run(resources(lake_url, SampleSource(posts_per_day=20)), DAY, instance=shared_instance).success
    assert os.path.exists(live), "another writer's in-flight temporary was removed"
    assert not os.path.exists(dead)


@pytest.mark.slow
def test_point5_a_live_multipart_upload_is_not_aborted_s3(s3_lake, aws_env, shared_instance, monkeypatch):
    """Another writer's multipart upload to the day's raw key, started a moment ago, survives the
    run's sweep of stale uploads (only uploads older than the grace period are aborted; the
    request shapes are checked with botocore's Stubber in tests/lake/test_io_manager.py)."""
    from datetime import datetime, timezone

    from tweet_assets.lake.store import S3Lake

    bucket, _, prefix = s3_lake[5:].partition("/")
    client = boto3.client("s3", endpoint_url=aws_env, region_name="us-east-1")
    key = f"{prefix}/{LakeIOManager.key('raw_tweets', 'jsonl.gz', DAY)}"
    started = datetime.now(timezone.utc)
    upload = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    # moto answers ListMultipartUploads with a fixed Initiated (2010-11-10T20:48:33Z) whatever the
    # upload's age; S3 gives its initiation time: give the lake what S3 would
    listed = S3Lake.incomplete_uploads
    monkeypatch.setattr(S3Lake, "incomplete_uploads", lambda self, p: [dict(u, Initiated=started) if u["UploadId"] == upload else u for u in listed(self, p)])
    assert run(resources(s3_lake, SampleSource(posts_per_day=20)), DAY, instance=shared_instance).success
    assert [u["UploadId"] for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])] == [upload]


# --- points 2 and 3: compliance
class FakeCompliance(ComplianceApi):
    """X's batch compliance answered in process: every submitted id in ``deleted`` comes back as
    deleted (the result row shape of tweet_assets.compliance.ledger.parse_results)."""

    deleted: list[int] = []

    def check(self, ids, name, log, sleep=None, budget=None):
        wanted = set(self.deleted)
        body = b"\n".join(orjson.dumps({"id": str(i), "action": "delete", "reason": "deleted"}) for i in ids if i in wanted)
        return SimpleNamespace(id=f"job-{threading.current_thread().name}"), body


def _compliance(lake_url, instance, deleted):
    res = resources(lake_url, SampleSource())
    return materialize(
        [compliance_ledger],
        resources={"lake": res["lake"], "compliance_api": FakeCompliance(bearer_token="x", deleted=deleted)},
        instance=instance,
        run_config={"ops": {"compliance_ledger": {"config": {"first_day": DAY, "last_day": DAY}}}},
        raise_on_error=False,
    )


def _ledger_ids(lake_url) -> set[int]:
    return set(pq.read_table(pa.BufferReader(_bytes(lake_url, LEDGER_KEY))).column("id").to_pylist())


def test_point3_two_compliance_runs_keep_every_id(lake_url, shared_instance, monkeypatch):
    assert run(resources(lake_url, SampleSource(posts_per_day=200)), DAY, instance=shared_instance).success
    published = rows(lake_url, "tweets")
    first, second = published[:3], published[3:6]
    ready, other_done = threading.Event(), threading.Event()

    def hold(original):
        def held(self, key, *args, **kwargs):
            if key == LEDGER_KEY and threading.current_thread().name == "compliance-1" and not ready.is_set():
                ready.set()  # compliance-1 has read the ledger and is about to store it
                other_done.wait(BOUND_S)
            return original(self, key, *args, **kwargs)

        return held

    for cls in (LocalLake, S3Lake):
        for name in ("put_file", "put_file_if_match"):
            if hasattr(cls, name):
                monkeypatch.setattr(cls, name, hold(getattr(cls, name)))
    one = Runner("compliance-1", lambda: _compliance(lake_url, shared_instance, first))
    one.start()
    _until(ready, one)
    two = Runner("compliance-2", lambda: _compliance(lake_url, shared_instance, second))
    two.start()
    two.join(BOUND_S)
    other_done.set()
    one.join(BOUND_S)
    assert one.result.success and two.result.success
    assert _ledger_ids(lake_url) == set(first + second)
    assert not set(first + second) & set(rows(lake_url, "tweets"))
    # re-landing the day republishes none of the six
    assert run(resources(lake_url, SampleSource(posts_per_day=200)), DAY, instance=shared_instance).success
    assert not set(first + second) & set(rows(lake_url, "tweets")) and len(rows(lake_url, "tweets")) == 194


class TwoSeeds(SampleSource):
    """The backfill's pages: the 300 posts published before plus 100 new ones."""

    def day_pages(self, day):
        yield from SampleSource(posts_per_day=300).day_pages(day)
        yield from SampleSource(posts_per_day=100, seed=8).day_pages(day)


def test_point2_compliance_beside_a_backfill_loses_nothing_and_publishes_no_deleted_post(lake_url, shared_instance, monkeypatch):
    """The backfill stops after clean_tweets; the compliance run goes until it is about to store the
    day's published table it has read (the code before leases) or until it waits for the day's lease;
    then the backfill publishes, and the compliance run goes on."""
    assert run(resources(lake_url, SampleSource(posts_per_day=300)), DAY, instance=shared_instance).success
    deleted = rows(lake_url, "tweets")[:5]
    cleaned, compliance_stopped = threading.Event(), threading.Event()
    threads: dict = {}
    try:
        from tweet_assets.lake import leases

        def waiting(seconds):
            compliance_stopped.set()
            threading.Event().wait(min(seconds, 0.05))

        monkeypatch.setattr(leases, "_sleep", waiting)
    except ImportError:  # the code before leases: nothing waits
        pass

    def hold(original):
        def held(self, key, *args, **kwargs):
            if key.startswith("tweets/dt=") and threading.current_thread().name == "compliance":
                compliance_stopped.set()  # it has read the published table and is about to store it
                threads["backfill"].join(BOUND_S)
            return original(self, key, *args, **kwargs)

        return held

    for cls in (LocalLake, S3Lake):
        for name in ("put_file", "put_file_if_match"):
            if hasattr(cls, name):
                monkeypatch.setattr(cls, name, hold(getattr(cls, name)))
    _pause_after(monkeypatch, "clean_tweets", "backfill", cleaned, lambda: _until(compliance_stopped, threads["compliance"]))
    threads["backfill"] = backfill = Runner("backfill", lambda: run(resources(lake_url, TwoSeeds(posts_per_day=400)), DAY, instance=shared_instance))
    threads["compliance"] = compliance = Runner("compliance", lambda: _compliance(lake_url, shared_instance, deleted))
    backfill.start()
    _until(cleaned, backfill)
    compliance.start()
    backfill.join(BOUND_S)
    compliance.join(BOUND_S)
    assert backfill.error is None and backfill.result.success and compliance.result.success
    assert counts(lake_url) == {"raw posts": 395, "clean rows": 395, "published rows": 395}
    for table in ("tweets", "clean_tweets"):
        assert not set(deleted) & set(rows(lake_url, table)), table


# --- point 14: a multi-day write that fails part-way
def test_point14_days_overwritten_before_a_failure_get_their_materialization(tmp_path, shared_instance, monkeypatch):
    lake_url = str(tmp_path / "lake")
    days = ["2024-03-05", "2024-03-06", "2024-03-07"]
    assert run(resources(lake_url, SampleSource(posts_per_day=100)), days[0], days[-1], instance=shared_instance).success
    def full(original):
        def write(self, *args, **kwargs):
            key = args[2] if original.__name__ == "copy_version" else args[0]  # (source, etag, key, ...) or (key, ...)
            if key.startswith(f"tweets/dt={days[2]}/"):
                raise LakeError(f"cannot write {self.uri(key)}: [Errno 28] No space left on device")
            return original(self, *args, **kwargs)

        return write

    for name in ("write_file", "copy_version"):
        monkeypatch.setattr(LocalLake, name, full(getattr(LocalLake, name)))
    result = run(resources(lake_url, SampleSource(posts_per_day=50)), days[0], days[-1], instance=shared_instance, raise_on_error=False)
    assert not result.success
    for day in days:
        in_lake = len(rows(lake_url, "tweets", day))
        record = shared_instance.fetch_materializations(AssetRecordsFilter(asset_key=AssetKey("s3_parquet"), asset_partitions=[day]), limit=1).records[0]
        assert record.asset_materialization.metadata["dagster/row_count"].value == in_lake, day
    assert [len(rows(lake_url, "tweets", d)) for d in days] == [50, 50, 100]


# --- #36: a stalled run never overwrites a newer day (fencing) -----------------------------------
# Two runs of one day, each a process of its own (tests/lake/fencing_run.py, fencing_cases.py): run
# A (50 posts, a 2 s lease TTL) is paused past its lease by SIGSTOP at a chosen point, or by its S3
# requests held in the tests' proxy; run B (80 posts, 79+ of them not A's) takes the day over; A
# resumes at the chosen moment. Counted by reading the objects. The same cases on the code before
# fencing left A's 50 posts in every zone after B reported success (cases 1, 2) and a record of 50
# rows for an object of 80 (case 8): `python -m tests.lake.fencing_run measure [--s3] --code <old tree>`;
# FENCING_RUNS_CODE=<old tree> runs these tests' processes on that code (they fail there).

@pytest.fixture(params=["local", "s3"])
def place(request, tmp_path):
    """Where a case runs: a local lake, or moto S3 as strict as S3 on conditions (tests/lake/strict_s3.py)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    if request.param == "local":
        return fencing_cases.Place(str(tmp_path / "lake"), None, str(home))
    request.getfixturevalue("strict_s3")
    url = request.getfixturevalue("s3_lake")
    return fencing_cases.Place(url, os.environ["AWS_ENDPOINT_URL"], str(home))


def _b_holds_the_day(out: dict, place) -> None:
    b = out["B"]["run_id"]
    assert out["B"]["success"], out["B"]["failure"]
    assert not out["A"]["success"], "the stalled run A succeeded"
    assert {z: (out[z], out[f"{z}_is"]) for z in ("raw", "clean", "published")} == {z: (80, "B") for z in ("raw", "clean", "published")}
    assert out["b_posts_lost"] == 0 and out["record_rows"] == 80
    raw = lineage.read_lineage(place.open(), fencing_cases.DAY)["raw_tweets"]
    assert raw["run_id"] == b and raw["etag"] == place.open().etag(raw["key"])  # lineage names the writer of the object there


@pytest.mark.slow
@pytest.mark.parametrize("name", ["1", "1b", "2", "2-fetch"])
def test_cases_1_2_a_stalled_run_never_overwrites_the_day_of_the_run_that_took_it_over(place, name):
    """1: A's held raw write is sent after B stored its raw object; 1b: after B took the day over but
    before B's own write (A's write lands: its condition still holds; B then replaces it); 2: after B
    finished and released the day; 2-fetch: A was stopped during its fetch until B finished."""
    out = fencing_cases.case(place, name)
    _b_holds_the_day(out, place)
    a, b, day = out["A"]["run_id"], out["B"]["run_id"], fencing_cases.DAY
    failure = out["A"]["failure"]
    if name in ("1", "2"):
        assert f"LeaseLost: {day} was written by run {b} after this run's lease lapsed; nothing of this run was kept for {day}" in failure, failure
    elif name == "1b":
        assert f"run {a}'s write of {place.open().uri(f'raw_tweets/dt={day}/part-00000.jsonl.gz')} landed after its lease of {day} lapsed: a stale write, which run {b} replaces" in failure, failure
        assert any(f"holds a stale write by run {a}" in w and f"Run {b} replaces it" in w for w in out["B"]["warnings"]), out["B"]["warnings"]
    else:
        assert f"LeaseLost: run {a} lost its lease of {day} to run {b}, which has finished with it" in failure, failure


@pytest.mark.slow
@pytest.mark.parametrize("held", ["create", "complete"])
def test_case3_a_stalled_multipart_upload_never_lands_over_the_new_holders_day(strict_s3, s3_lake, aws_env, tmp_path, held):
    """A's raw object is a multipart upload (threshold lowered to 1 KiB); A's requests are held from
    its CreateMultipartUpload (the upload then starts after B's takeover, so B's sweep of stale
    uploads cannot see it) or from its CompleteMultipartUpload (B's sweep aborts it). Either way B's
    day stands, A fails naming B, and no upload is left incomplete."""
    from urllib.parse import unquote

    from tests.s3_fault_proxy import FaultProxy

    home = tmp_path / "dagster_home"
    home.mkdir()
    place = fencing_cases.Place(s3_lake, aws_env, str(home))
    fencing_cases.A_ENV["FENCING_TEST_MULTIPART_BYTES"] = "1024"
    try:
        with FaultProxy(aws_env) as proxy:
            query = "?uploads" if held == "create" else "?uploadId="
            proxy.hold(lambda method, path, headers: method == "POST" and query in path and "/raw_tweets/dt=" in unquote(path))
            out = fencing_cases.case(place, "2", proxy=proxy)
    finally:
        fencing_cases.A_ENV.pop("FENCING_TEST_MULTIPART_BYTES")
    _b_holds_the_day(out, place)
    assert out["B"]["run_id"] in out["A"]["failure"] and "lease" in out["A"]["failure"], out["A"]["failure"]
    bucket = s3_lake[5:].split("/")[0]
    assert boto3.client("s3", endpoint_url=aws_env, region_name="us-east-1").list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


@pytest.mark.slow
@pytest.mark.parametrize("name", ["8", "8b"])
def test_case8_a_stalled_copy_never_records_rows_of_another_object(place, name):
    """A stopped at s3_parquet's copy after reading its clean object's footer (50 rows) until B
    finished the day (80; 8b: B lands and cleans it but publishes nothing): A's copy is pinned to the
    clean version it read, so it fails instead of publishing B's clean object under a record of 50
    rows; the latest record, if any, says what the object holds."""
    out = fencing_cases.case(place, name)
    assert "changed since this run read it" in out["A"]["failure"] and "refused" in out["A"]["failure"], out["A"]["failure"]
    if name == "8":
        _b_holds_the_day(out, place)
    else:  # nothing published at all: no object, no record of one
        assert out["B"]["success"] and (out["raw"], out["clean"], out["published"], out["record_rows"]) == (80, 80, 0, None)
