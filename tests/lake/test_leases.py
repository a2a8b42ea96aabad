"""Conditional writes and day leases (#27): S3's documented PutObject parameters checked with
botocore's Stubber (moto 5.2.5 honours If-None-Match / If-Match on PutObject, but a double must not
be the only judge), the local lake's emulation, leases taken, refused, taken over; control
characters in lake URLs (point 16); ENOSPC in the spool (point 15).
"""

from __future__ import annotations

import os

import boto3
import pytest
from botocore.stub import Stubber

from tweet_assets.lake.leases import DayLeases, LeaseConflict, lease_key
from tweet_assets.lake.store import LakeError, LocalLake, PreconditionFailed, S3Lake, open_lake


def _stubbed_lake():
    client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
    return S3Lake("s3://bucket-x/lake", client), Stubber(client)


def test_s3_conditional_puts_send_the_documented_parameters():
    lake, stub = _stubbed_lake()
    stub.add_response("put_object", {"ETag": '"e1"'}, {"Bucket": "bucket-x", "Key": "lake/k", "Body": b"1", "IfNoneMatch": "*"})
    stub.add_response("put_object", {"ETag": '"e2"'}, {"Bucket": "bucket-x", "Key": "lake/k", "Body": b"2", "IfMatch": '"e1"'})
    stub.add_client_error("put_object", service_error_code="PreconditionFailed", http_status_code=412)
    stub.add_client_error("put_object", service_error_code="ConditionalRequestConflict", http_status_code=409)
    with stub:
        assert lake.put_if_absent("k", b"1") == '"e1"'
        assert lake.put_if_match("k", b"2", '"e1"') == '"e2"'
        with pytest.raises(PreconditionFailed, match="exists"):
            lake.put_if_absent("k", b"3")
        with pytest.raises(PreconditionFailed, match="ConditionalRequestConflict"):
            lake.put_if_match("k", b"4", '"e2"')
        stub.assert_no_pending_responses()


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.slow)])
def lake(request, tmp_path):
    if request.param == "local":
        return LocalLake(str(tmp_path / "lake"))
    import boto3 as b3

    url = request.getfixturevalue("s3_lake")
    return open_lake(url, lambda: b3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1"))


def test_conditional_writes_refuse_a_stale_etag(lake):
    first = lake.put_if_absent("x/k.json", b"one")
    with pytest.raises(PreconditionFailed):
        lake.put_if_absent("x/k.json", b"two")
    second = lake.put_if_match("x/k.json", b"two", first)
    with pytest.raises(PreconditionFailed):
        lake.put_if_match("x/k.json", b"three", first)
    assert lake.read_with_etag("x/k.json") == (b"two", second) and lake.etag("x/k.json") == second
    assert list(lake.list("x/")) == ["x/k.json"]  # no lock file listed as an object


def test_a_held_lease_refuses_another_run_naming_it_and_a_dead_one_is_taken_over(lake):
    finished: set[str] = set()
    a = DayLeases(lake, "run-a", "raw_tweets", run_finished=lambda r: r in finished)
    b = DayLeases(lake, "run-b", "raw_tweets", run_finished=lambda r: r in finished)
    a.acquire(["2024-01-02", "2024-01-03"])
    with pytest.raises(LeaseConflict, match="being written by Dagster run run-a") as refused:
        b.acquire(["2024-01-01", "2024-01-03"])  # a range: all or nothing
    assert refused.value.holder["run_id"] == "run-a"
    data, _ = lake.read_with_etag(lease_key("2024-01-01"))
    assert b'"released":true' in data  # the day b took in that call was given back
    finished.add("run-a")  # the instance says run-a ended: its leases are dead
    taken = b.acquire(["2024-01-03"])
    assert taken["2024-01-03"].took_over_at is not None
    expired = DayLeases(lake, "run-c", "x", ttl_s=-1)
    expired.acquire(["2024-02-01"])
    expired.forget()
    assert DayLeases(lake, "run-d", "x").acquire(["2024-02-01"])["2024-02-01"].took_over_at is not None
    b.release(["2024-01-03"])
    DayLeases(lake, "run-e", "x").acquire(["2024-01-03"])


@pytest.mark.parametrize("url", ["s3://b/pre\nfix", "s3://bucket-x/a\tb", "/tmp/lake\r", "s3://bucket-x/x\x7f"])
def test_point16_control_characters_in_lake_urls_are_refused(url):
    with pytest.raises(LakeError, match="control character"):
        open_lake(url, lambda: boto3.client("s3", region_name="us-east-1"))


def test_point15_enospc_in_the_spool_names_the_directory_and_tmpdir(tmp_path):
    """A real ENOSPC: the spool file is /dev/full."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    import pyarrow as pa

    from tweet_assets.lake.values import PageSpool, spool_table

    spool = PageSpool(str(tmp_path), "2024-01-01")
    os.symlink("/dev/full", spool.path)
    with pytest.raises(OSError) as raised:
        spool.write(b'{"data": []}' * 10000)
        spool.close()
    assert str(tmp_path) in str(raised.value) and "TMPDIR" in str(raised.value)
    os.symlink("/dev/full", tmp_path / "day.parquet")
    with pytest.raises(OSError) as raised:
        spool_table([pa.table({"id": list(range(100_000))})], str(tmp_path), "day")
    assert str(tmp_path) in str(raised.value) and "TMPDIR" in str(raised.value)


# --- review of the fencing work (notes/review_lake.md) ---------------------------------------------


@pytest.fixture
def _forget_leases():
    from tweet_assets.lake import leases as leases_module

    yield
    for run in ("run-a", "run-b", "run-c"):
        leases_module.forget_run(run)
    leases_module._lost.clear()


def test_review1_a_waiting_taker_polls_until_its_wait_ends_and_says_so(tmp_path, monkeypatch, _forget_leases):
    """A taker waiting for a live holder (the compliance job, ``wait_s`` = TWEET_ASSETS_LEASE_WAIT_S)
    polls until its wait ends, not for 50 polls (~25 s): each poll of a live holder is no lost race.
    The wait runs on an injected clock that each poll's sleep advances."""
    from tweet_assets.lake import leases as leases_module

    lake = LocalLake(str(tmp_path))
    DayLeases(lake, "run-a", "raw_tweets").acquire(["2024-01-02"])  # live: its heartbeat renews it
    now = [0.0]
    polls = []

    def sleep(seconds):
        polls.append(seconds)
        now[0] += seconds

    monkeypatch.setattr(leases_module, "_sleep", sleep)
    b = DayLeases(lake, "run-b", "compliance_job rewrite", clock=lambda: now[0])
    with pytest.raises(LeaseConflict) as refused:
        b.acquire_one("2024-01-02", wait_s=3600)
    assert now[0] == pytest.approx(3600) and len(polls) == 7200  # every 0.5 s for the hour
    assert "this run waited 3600 s for run run-a to finish (TWEET_ASSETS_LEASE_WAIT_S)" in str(refused.value) and "or raise TWEET_ASSETS_LEASE_WAIT_S" in str(refused.value)
    assert "being written by Dagster run run-a" in str(refused.value)


def test_review1_a_waiting_taker_takes_the_day_once_the_holder_releases_it(tmp_path, monkeypatch, _forget_leases):
    from tweet_assets.lake import leases as leases_module

    lake = LocalLake(str(tmp_path))
    a = DayLeases(lake, "run-a", "raw_tweets")
    a.acquire(["2024-01-02"])
    now = [0.0]

    def sleep(seconds):
        now[0] += seconds
        if now[0] >= 1800:  # half an hour on: run-a finishes with the day
            a.release(["2024-01-02"])

    monkeypatch.setattr(leases_module, "_sleep", sleep)
    b = DayLeases(lake, "run-b", "compliance_job rewrite", clock=lambda: now[0])
    assert b.acquire_one("2024-01-02", wait_s=3600).run_id == "run-b" and now[0] == pytest.approx(1800)


def test_review1_only_lost_races_count_against_the_race_bound(tmp_path, monkeypatch, _forget_leases):
    """50 conditional writes lost in a row (another writer each time) still end the take."""
    lake = LocalLake(str(tmp_path))
    monkeypatch.setattr(LocalLake, "put_record", lambda self, key, data, etag: (_ for _ in ()).throw(PreconditionFailed("lost")))
    with pytest.raises(LakeError, match="50 conditional writes in a row lost to other writers"):
        DayLeases(lake, "run-b", "x").acquire_one("2024-01-02", wait_s=3600)


def _released(lake, day="2024-01-02") -> bool:
    import orjson

    data, _ = lake.read_with_etag(lease_key(day))
    return bool(orjson.loads(data)["released"])


def test_review3_a_renewal_in_flight_during_a_release_never_brings_the_lease_back(tmp_path, _forget_leases):
    """The heartbeat picked the lease to renew; the run's last step releases it before the renewal
    is stored: the renewal must not store the lease again (released: false), which would block
    every other run until it expired. The interleaving: the renewal runs after the release."""
    from tweet_assets.lake import leases as leases_module

    lake = LocalLake(str(tmp_path))
    a = DayLeases(lake, "run-a", "raw_tweets")
    a.acquire(["2024-01-02"])
    lease = leases_module._held[(lake.url, "run-a", "2024-01-02")]  # what the heartbeat holds in hand
    a.release(["2024-01-02"])
    a._renew(lease)  # the heartbeat's renewal, after the release
    assert _released(lake)
    assert DayLeases(lake, "run-b", "raw_tweets").acquire(["2024-01-02"])["2024-01-02"].run_id == "run-b"


def test_review3_a_release_by_another_process_of_the_run_is_not_undone_by_a_renewal(tmp_path, _forget_leases):
    """Another process of run-a (its s3_parquet step) released the day; this process's renewal
    finds its ETag gone and the record run-a's own, released: it leaves it released and forgets the
    lease here (a later check of the day takes it as any take would)."""
    from tweet_assets.lake import leases as leases_module

    lake = LocalLake(str(tmp_path))
    a = DayLeases(lake, "run-a", "raw_tweets")
    a.acquire(["2024-01-02"])
    lease = leases_module._held[(lake.url, "run-a", "2024-01-02")]
    other_process = DayLeases(lake, "run-a", "tweets")
    lake.put_record(lease_key("2024-01-02"), other_process._body(None, released=True), lease.etag)
    a._renew(lease)
    assert _released(lake) and (lake.url, "run-a", "2024-01-02") not in leases_module._held
    assert DayLeases(lake, "run-b", "raw_tweets").acquire(["2024-01-02"])["2024-01-02"].run_id == "run-b"


def test_review_heartbeat_storage_errors_are_logged_once_per_problem(tmp_path, monkeypatch, caplog, _forget_leases):
    """The heartbeat's renewal errors were counted in a field nobody read: now a warning names the
    lease and the error once per problem, and an info line says when renewals get through again.
    The heartbeat's renewal is called directly (no thread, no wait)."""
    import logging

    from tweet_assets.lake import leases as leases_module

    lake = LocalLake(str(tmp_path))
    a = DayLeases(lake, "run-a", "raw_tweets", ttl_s=3 * 3600, heartbeat_s=3600)  # the real heartbeat thread never fires during the test
    a.acquire(["2024-01-02"])
    lease = leases_module._held[(lake.url, "run-a", "2024-01-02")]
    beat = leases_module._Heartbeat(a)
    real = LocalLake.put_record
    errors = iter([LakeError("connection refused")] * 3 + [LakeError("throttled")] + [None])

    def put_record(self, key, data, etag):
        error = next(errors)
        if error is not None:
            raise error
        return real(self, key, data, etag)

    monkeypatch.setattr(LocalLake, "put_record", put_record)
    with caplog.at_level(logging.INFO, logger="tweet_assets.lake.leases"):
        assert [beat.renew(lease) for _ in range(5)] == [False, False, False, False, True]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and "connection refused" in warnings[0] and "throttled" in warnings[1]
    assert "could not renew" in warnings[0] and lease_key("2024-01-02") in warnings[0] and "TWEET_ASSETS_LEASE_TTL_S" in warnings[0]
    assert any("renews again" in r.getMessage() for r in caplog.records if r.levelno == logging.INFO)


def test_review_forget_run_forgets_the_leases_it_found_lost_and_a_later_step_finds_them_again(tmp_path, _forget_leases):
    from tweet_assets.lake import leases as leases_module
    from tweet_assets.lake.leases import LeaseLost

    lake = LocalLake(str(tmp_path))
    finished = set()
    a = DayLeases(lake, "run-a", "raw_tweets")
    a.acquire(["2024-01-02"])
    finished.add("run-a")  # the instance says run-a is over (it is not: it was paused)
    DayLeases(lake, "run-b", "raw_tweets", run_finished=lambda r: r in finished).acquire(["2024-01-02"])
    with pytest.raises(LeaseLost):
        a.check("2024-01-02", force=True)
    assert leases_module.lost_lease(lake.url, "run-a") is not None
    leases_module.forget_run("run-a")  # the step's end: no memory kept in a long-lived process
    assert leases_module.lost_lease(lake.url, "run-a") is None
    with pytest.raises(LeaseLost, match="to run run-b"):
        DayLeases(lake, "run-a", "clean_tweets").acquire(["2024-01-02"])  # the record still says so


def test_review3_a_check_waiting_for_a_renewal_that_finds_the_lease_lost_raises_lease_lost(tmp_path, _forget_leases):
    """The step thread's check finds the lease past its renewal point while the heartbeat's renewal
    holds the lease's lock; that renewal finds the day taken over (recorded lost, forgotten): the
    check must raise LeaseLost once it gets the lock, not return the lease as if renewed (seen in
    test_concurrency case 1b: the stale write was then recorded in lineage). The interleaving is
    forced by holding the lock and a lock that says when the check waits on it."""
    import threading

    import orjson

    from tweet_assets.lake import leases as leases_module
    from tweet_assets.lake.leases import LeaseLost

    class SignallingLock:
        def __init__(self):
            self.inner, self.waiting = threading.Lock(), threading.Event()

        def __enter__(self):
            self.waiting.set()
            self.inner.acquire()
            return self

        def __exit__(self, *exc):
            self.inner.release()

    lake = LocalLake(str(tmp_path))
    a = DayLeases(lake, "run-a", "raw_tweets")
    a.acquire(["2024-01-02"])
    lease = leases_module._held[(lake.url, "run-a", "2024-01-02")]
    lease.lock = SignallingLock()
    lease.lock.inner.acquire()  # the heartbeat's renewal is in flight
    outcome = []
    step = threading.Thread(target=lambda: outcome.append(_outcome(lambda: a.check("2024-01-02", force=True))))
    step.start()
    assert lease.lock.waiting.wait(60)  # the step's check waits for the renewal
    DayLeases(lake, "run-b", "raw_tweets", run_finished=lambda r: r == "run-a").acquire(["2024-01-02"])
    record, read = a._read("2024-01-02")
    a._lost_error("2024-01-02", record, read)  # what the heartbeat's failed renewal records
    lease.lock.inner.release()
    step.join(60)
    assert isinstance(outcome[0], LeaseLost) and "to run run-b" in str(outcome[0])
    assert orjson.loads(lake.read_with_etag(lease_key("2024-01-02"))[0])["run_id"] == "run-b"


def _outcome(call):
    try:
        return call()
    except Exception as exc:  # noqa: BLE001 - the test looks at it
        return exc


def test_review11_a_wait_for_several_days_has_one_deadline(tmp_path, monkeypatch, _forget_leases):
    """run-a holds two days and releases the first after 30 min: the taker's wait for both ends
    at its one hour (before: 30 min for the first day, then a whole hour more for the second)."""
    from tweet_assets.lake import leases as leases_module

    lake = LocalLake(str(tmp_path))
    a = DayLeases(lake, "run-a", "raw_tweets")
    a.acquire(["2024-01-02", "2024-01-03"])
    now = [0.0]

    def sleep(seconds):
        now[0] += seconds
        if now[0] >= 1800 and a.holder("2024-01-02") == "run-a":
            a.release(["2024-01-02"])

    monkeypatch.setattr(leases_module, "_sleep", sleep)
    b = DayLeases(lake, "run-b", "compliance_job rewrite", clock=lambda: now[0])
    with pytest.raises(LeaseConflict, match="2024-01-03"):
        b.acquire(["2024-01-02", "2024-01-03"], wait_s=3600)
    assert now[0] == pytest.approx(3600)
    assert b.holder("2024-01-02") is None  # the day it took is released again
