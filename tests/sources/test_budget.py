"""The budget's rules and its ledger, without the API (#38 points 2, 3, 6): the refusal
arithmetic (per-run limit, the cap left minus the reserve and other runs' reservations, no cap
reported, a cap already exceeded), the usage answer in both specs' shapes, and the cap ledger's
conditional read-modify-write (botocore's Stubber checks the S3 parameters; moto and the local lake
check the behaviour, the race forced by an event)."""

from __future__ import annotations

import threading
from datetime import date, datetime, timezone

import boto3
import orjson
import pytest
from botocore.stub import ANY, Stubber

from tweet_assets.lake.store import LocalLake, S3Lake
from tweet_assets.sources.budget import Limits, SpendPlan, refusal, room
from tweet_assets.sources.cap_ledger import LEDGER_KEY, CapLedger, Reservation
from tweet_assets.x.usage import Usage, parse_usage, usage_params

TODAY = date(2026, 11, 20)


def _plan(expected: dict | None, cap=1_000_000, used=0, reset_day=10) -> SpendPlan:
    usage = Usage(project_cap=cap, project_usage=used, cap_reset_day=reset_day) if cap is not None else Usage(project_usage=used)
    days = sorted(expected) if expected else ["2026-11-01", "2026-11-03"]
    return SpendPlan(days[0], days[-1], expected, usage)


# --- the usage answer


def test_usage_reads_both_specs_shapes_and_missing_fields():
    v2167 = {"data": {"cap_reset_day": 10, "project_cap": "5000000000", "project_id": "1369785403853424", "project_usage": "43435",
                      "daily_project_usage": {"project_id": "1369785403853424", "usage": [{"date": "2026-11-02T00:00:00.000Z", "usage": "7"}, {"date": "2026-11-01T00:00:00.000Z", "usage": "5"}]}}}
    usage = parse_usage(v2167)  # X's documented example, numbers as strings (2.167)
    assert (usage.project_cap, usage.project_usage, usage.cap_reset_day, usage.project_id) == (5_000_000_000, 43435, 10, "1369785403853424")
    assert usage.daily == (("2026-11-01", 5), ("2026-11-02", 7)) and usage.last_days(30) == 12
    v2159 = {"data": {"cap_reset_day": 3, "project_cap": 10000, "project_usage": 9990, "daily_project_usage": {"project_id": 1, "usage": [{"date": "2026-11-02T00:00:00.000Z", "usage": 12}]}}}
    assert parse_usage(v2159).left == 10 and parse_usage(v2159).percent_used == pytest.approx(99.9)
    bare = parse_usage({"data": {"project_usage": "12"}})  # no cap (enterprise), no reset day
    assert (bare.project_cap, bare.left, bare.percent_used, bare.reset_date(TODAY)) == (None, None, None, None)
    assert "did not say" in bare.resets(TODAY)
    exceeded = parse_usage({"data": {"project_cap": "1000", "project_usage": "1200"}})
    assert exceeded.left == -200 and exceeded.percent_used == 120.0
    for wrong in ({"data": {"project_cap": "lots"}}, {"data": {"project_usage": True}}, {"errors": [{"title": "x"}]}, []):
        with pytest.raises(ValueError):
            parse_usage(wrong)
    assert usage_params() == {"days": "30", "usage.fields": "cap_reset_day,daily_project_usage,project_cap,project_id,project_usage"}
    with pytest.raises(ValueError):
        usage_params(91)


@pytest.mark.parametrize(
    ("today", "reset_day", "reset"),
    [(date(2026, 11, 20), 10, date(2026, 12, 10)), (date(2026, 11, 5), 10, date(2026, 11, 10)), (date(2026, 11, 10), 10, date(2026, 12, 10)),
     (date(2026, 12, 31), 10, date(2027, 1, 10)), (date(2027, 1, 31), 31, date(2027, 2, 28)),
     # the reset day past a short month's end: on its last day the reset is next month's, not today
     (date(2027, 2, 28), 31, date(2027, 3, 31)), (date(2027, 2, 27), 31, date(2027, 2, 28)), (date(2026, 4, 30), 31, date(2026, 5, 31)),
     (date(2028, 2, 29), 30, date(2028, 3, 30)), (date(2028, 2, 28), 30, date(2028, 2, 29))],
)
def test_cap_reset_day_is_a_day_of_the_month(today, reset_day, reset):
    assert Usage(cap_reset_day=reset_day).reset_date(today) == reset
    assert Usage(cap_reset_day=reset_day).days_to_reset(today) == (reset - today).days


def test_the_reset_is_always_after_today_on_its_day_or_its_months_last():
    """Every day of 2026-2028 and every cap_reset_day 1-31: the reset is on or after tomorrow,
    within a month, on the reset day or (in a shorter month) that month's last day, and no reset
    day of the months between is skipped."""
    import calendar
    from datetime import timedelta

    day = date(2026, 1, 1)
    while day < date(2029, 1, 1):
        for reset_day in range(1, 32):
            reset = Usage(cap_reset_day=reset_day).reset_date(day)
            assert day < reset <= day + timedelta(days=31), (day, reset_day, reset)
            assert reset.day == min(reset_day, calendar.monthrange(reset.year, reset.month)[1]), (day, reset_day, reset)
            between = day + timedelta(days=1)
            while between < reset:  # no earlier reset day after today
                assert between.day != min(reset_day, calendar.monthrange(between.year, between.month)[1]), (day, reset_day, reset)
                between += timedelta(days=1)
        day += timedelta(days=1)


# --- the refusal


def test_a_run_over_the_per_run_limit_is_refused_naming_the_heaviest_days_and_the_setting():
    plan = _plan({"2026-11-01": 300, "2026-11-02": 9_800, "2026-11-03": 7_100, "2026-11-04": 0, "2026-11-05": 4_900})
    message = refusal(plan, Limits(20_000, "max_posts_per_run of collection brand"), today=TODAY)
    assert message.startswith("refused before any post was read: 2026-11-01…2026-11-05 is expected to hold 22,100 posts")
    assert "more than max_posts_per_run of collection brand=20,000" in message
    assert "heaviest days 2026-11-02 (9,800), 2026-11-03 (7,100), 2026-11-05 (4,900)" in message
    assert "TWEET_ASSETS_BACKFILL_PARTITIONS_PER_RUN" in message and "\n" not in message
    assert refusal(plan, Limits(22_100), today=TODAY) is None  # exactly the limit: allowed


def test_the_cap_left_minus_the_reserve_and_other_runs_decides():
    plan = _plan({"2026-11-01": 400, "2026-11-02": 500})
    assert refusal(plan, Limits(reserve_percent=10), today=TODAY, others=()) is None  # 1,000,000 - 0 - 100,000
    tight = _plan({"2026-11-01": 400, "2026-11-02": 500}, cap=10_000, used=8_100)  # 1,900 left - 1,000 reserve = 900
    assert refusal(tight, Limits(reserve_percent=10), today=TODAY) is None
    other = Reservation("run-B", "news", 300, "2026-11-05", "2026-11-05")
    message = refusal(tight, Limits(reserve_percent=10), (other,), today=TODAY)
    assert "project cap 10,000, used 8,100, reserve 1,000 (TWEET_ASSETS_CAP_RESERVE=10%)" in message
    assert "300 reserved by run run-B (collection news, 2026-11-05: 300 posts): 600 left" in message
    assert "the cap resets on 2026-12-10 (cap_reset_day 10)" in message and "for those runs to end" in message
    assert room(tight.usage, 10, (other,)).left == 600
    assert refusal(tight, Limits(reserve_percent=0), (other,), today=TODAY) is None  # 1,600 left without the reserve


def test_no_cap_reported_only_the_per_run_limit_applies():
    plan = _plan({"2026-11-01": 5_000_000}, cap=None)
    assert room(plan.usage, 10) is None
    assert refusal(plan, Limits(), today=TODAY) is None
    assert "TWEET_ASSETS_MAX_POSTS_PER_RUN=1,000,000" in refusal(plan, Limits(1_000_000), today=TODAY)


def test_a_cap_already_exceeded_refuses_every_run_that_reads_posts():
    exceeded = _plan({"2026-11-01": 1}, cap=1000, used=1200)
    assert "0 left" in refusal(exceeded, Limits(), today=TODAY)
    assert refusal(_plan({"2026-11-01": 0}, cap=1000, used=1200), Limits(), today=TODAY) is None  # reads nothing
    unknown = _plan(None, cap=1000, used=1200)  # timelines: no counts endpoint
    assert "reads an unknown number of posts (no counts endpoint)" in refusal(unknown, Limits(10), today=TODAY)
    assert refusal(_plan(None, cap=1000, used=10), Limits(10), today=TODAY) is None  # room left: unknown size goes on


# --- the ledger


def _stubbed_lake():
    client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
    return S3Lake("s3://bucket-x/lake", client), Stubber(client)


def test_s3_ledger_writes_are_conditional_as_s3_documents():
    """Reserve on an absent ledger: PutObject If-None-Match: *; release: If-Match the ETag read."""
    import io

    from botocore.response import StreamingBody

    lake, stub = _stubbed_lake()
    key = f"lake/{LEDGER_KEY}"
    stub.add_client_error("get_object", service_error_code="NoSuchKey", http_status_code=404, expected_params={"Bucket": "bucket-x", "Key": key})
    stub.add_response("put_object", {"ETag": '"e1"'}, {"Bucket": "bucket-x", "Key": key, "Body": ANY, "IfNoneMatch": "*"})
    body = orjson.dumps({"reservations": [{"run_id": "r1", "collection": "brand", "posts": 5, "first": "2026-11-01", "last": "2026-11-01", "reserved_at": 1.0, "expires_at": 4e9}]})
    stub.add_response("get_object", {"Body": StreamingBody(io.BytesIO(body), len(body)), "ETag": '"e1"', "ContentLength": len(body), "LastModified": datetime.now(timezone.utc)}, {"Bucket": "bucket-x", "Key": key})
    stub.add_response("put_object", {"ETag": '"e2"'}, {"Bucket": "bucket-x", "Key": key, "Body": ANY, "IfMatch": '"e1"'})
    with stub:
        ledger = CapLedger(lake, ttl_s=3600)
        mine, problem = ledger.reserve(Reservation("r1", "brand", 5, "2026-11-01", "2026-11-01"), lambda others: None)
        assert problem is None and mine.posts == 5
        ledger.release("r1")
        stub.assert_no_pending_responses()


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.slow)])
def lake(request, tmp_path):
    if request.param == "local":
        return LocalLake(str(tmp_path / "lake"))
    import os

    url = request.getfixturevalue("s3_lake")
    return S3Lake(url, boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1"))


def test_reservations_are_reserved_renewed_and_released(lake):
    mono = [1000.0]
    finished = set()
    ledger = CapLedger(lake, run_finished=lambda run_id: run_id in finished, ttl_s=100, monotonic=lambda: mono[0])
    a, _ = ledger.reserve(Reservation("A", "brand", 500, "2026-11-01", "2026-11-02"), lambda others: None)
    seen = []
    b, problem = ledger.reserve(Reservation("B", "news", 300, "2026-11-03", "2026-11-03"), lambda others: seen.append(others) or None)
    assert problem is None and [r.run_id for r in seen[0]] == ["A"] and a.expires_at == a.reserved_at + 100
    assert {r.run_id for r in ledger.live()} == {"A", "B"}
    mono[0] = 1040.0
    assert ledger.renew(a) == a  # not yet half its life (this process's monotonic clock): no request
    mono[0] = 1060.0
    renewed = ledger.renew(a)
    assert renewed.expires_at >= a.expires_at and renewed.reserved_at == a.reserved_at
    _age(lake, "B", 200)  # B expired by the storage's clock; A renewed
    assert [r.run_id for r in ledger.live()] == ["A"]
    finished.add("A")  # A's run is over for Dagster: its reservation is dead too
    assert ledger.live() == []
    c, problem = ledger.reserve(Reservation("C", "brand", 10, "2026-11-04", "2026-11-04"), lambda others: "no" if others else None)
    assert problem is None
    assert [r["run_id"] for r in orjson.loads(lake.read_bytes(LEDGER_KEY))["reservations"]] == ["C"]  # the dead ones dropped
    ledger.release("C")
    assert orjson.loads(lake.read_bytes(LEDGER_KEY))["reservations"] == []


def test_two_runs_deciding_at_once_the_second_sees_the_first(lake):
    """Run B reads the ledger (empty) and decides; before it writes, run A writes its reservation:
    B's conditional write loses, B reads again, sees A and is refused. The interleaving is forced
    with events in B's read (no sleeps)."""
    a_ledger, b_ledger = CapLedger(lake, ttl_s=3600), CapLedger(lake, ttl_s=3600)
    b_read, a_wrote = threading.Event(), threading.Event()
    reads = []
    original = b_ledger._read

    def b_reads():
        found = original()
        reads.append([r.run_id for r in found[0]])
        if len(reads) == 1:
            b_read.set()
            assert a_wrote.wait(60)
        return found

    b_ledger._read = b_reads
    outcome = {}

    def b_run():
        outcome["b"] = b_ledger.reserve(Reservation("B", "news", 600, "2026-11-03", "2026-11-03"), lambda others: f"refused: {others[0].describe()}" if others else None)

    thread = threading.Thread(target=b_run)
    thread.start()
    assert b_read.wait(60)
    a, problem = a_ledger.reserve(Reservation("A", "brand", 600, "2026-11-01", "2026-11-01"), lambda others: "refused" if others else None)
    assert problem is None
    a_wrote.set()
    thread.join(60)
    assert reads == [[], ["A"]]  # B's first decision was on an empty ledger; its write lost; it read again
    assert outcome["b"] == (None, "refused: run A (collection brand, 2026-11-01: 600 posts)")
    assert [r.run_id for r in a_ledger.live()] == ["A"]


# --- the ledger judges expiry by the storage's clock


def test_a_host_clock_far_ahead_does_not_drop_another_runs_live_reservation(tmp_path, monkeypatch):
    """Run A reserves for an hour; run B's host clock is 7 hours ahead. B must still see A's
    reservation (the storage's clock, a local lake's file-system clock, says A's hour has not
    passed) and be refused. The old ledger judged expiry by the host's time.time(): B dropped A's
    reservation and both read past the cap. A reservation past its expiry by the storage's clock is
    dropped whatever the host says."""
    import time

    from tweet_assets.sources import cap_ledger

    lake = LocalLake(str(tmp_path / "lake"))
    a, _ = CapLedger(lake, ttl_s=3600).reserve(Reservation("A", "brand", 600, "2026-11-01", "2026-11-01"), lambda others: None)
    real = time.time
    monkeypatch.setattr(cap_ledger.time, "time", lambda: real() + 7 * 3600)  # this host's clock 7 h ahead
    b_ledger = CapLedger(lake, ttl_s=3600)
    assert [r.run_id for r in b_ledger.live()] == ["A"]
    b, problem = b_ledger.reserve(Reservation("B", "news", 600, "2026-11-02", "2026-11-02"), lambda others: f"refused: {others[0].describe()}" if others else None)
    assert (b, problem) == (None, "refused: run A (collection brand, 2026-11-01: 600 posts)")
    # by the storage's clock A's reservation expired (its expires_at an hour behind the storage's now)
    monkeypatch.setattr(cap_ledger.time, "time", lambda: real() - 7 * 3600)  # and a host clock behind does not keep it alive
    _age(lake, "A", 2 * 3600)
    assert b_ledger.live() == []
    b, problem = b_ledger.reserve(Reservation("B", "news", 600, "2026-11-02", "2026-11-02"), lambda others: "refused" if others else None)
    assert problem is None and [r["run_id"] for r in orjson.loads(lake.read_bytes(LEDGER_KEY))["reservations"]] == ["B"]


def _age(lake, run_id: str, seconds: float) -> None:
    """Make ``run_id``'s reservation ``seconds`` older in the ledger (as if stored that long ago)."""
    data, etag = lake.read_with_etag(LEDGER_KEY)
    body = orjson.loads(data)
    for entry in body["reservations"]:
        if entry["run_id"] == run_id:
            entry["reserved_at"] -= seconds
            entry["expires_at"] -= seconds
    lake.put_if_match(LEDGER_KEY, orjson.dumps(body), etag)


def test_s3_ledger_judges_expiry_by_the_answers_date():
    """On S3 the storage's clock is the answer's Date header (RFC 9110): a reservation expiring
    100 s after it is live whatever this host's clock says (the host here is 25 years later), also
    at its expiry (the header has a one-second resolution), and dead a second later."""
    import io
    from email.utils import formatdate

    from botocore.response import StreamingBody

    lake, stub = _stubbed_lake()
    key = f"lake/{LEDGER_KEY}"
    stored_at = 1_000_000_000.0  # 2001: this host's clock is 25 years past it
    body = orjson.dumps({"reservations": [{"run_id": "A", "collection": "brand", "posts": 5, "first": "2026-11-01", "last": "2026-11-01", "reserved_at": stored_at, "expires_at": stored_at + 100}]})
    for date in (stored_at + 99, stored_at + 100, stored_at + 101):
        answer = {"Body": StreamingBody(io.BytesIO(body), len(body)), "ETag": '"e1"', "ContentLength": len(body), "LastModified": datetime.fromtimestamp(stored_at, timezone.utc),
                  "ResponseMetadata": {"HTTPHeaders": {"date": formatdate(date, usegmt=True)}}}
        stub.add_response("get_object", answer, {"Bucket": "bucket-x", "Key": key})
    with stub:
        ledger = CapLedger(lake, ttl_s=3600)
        assert [r.run_id for r in ledger.live()] == ["A"]
        assert [r.run_id for r in ledger.live()] == ["A"]  # at expiry: within the Date header's resolution
        assert ledger.live() == []


# --- a released reservation: its reads must be in the usage the next decision reads


class _Source:
    """A source whose plan expects ``posts`` on one day and whose usage endpoint answers what
    ``project["used"]`` says when asked (``asked`` counts the readings)."""

    def __init__(self, posts: int, project: dict):
        self.posts, self.project, self.asked = posts, project, 0

    def usage(self, log) -> Usage:
        self.asked += 1
        return Usage(project_cap=1000, project_usage=self.project["used"], cap_reset_day=10)

    def spend_plan(self, start, end, log) -> SpendPlan:
        return SpendPlan("2026-11-20", "2026-11-20", {"2026-11-20": self.posts}, self.usage(log))

    def spend_limits(self) -> Limits:
        return Limits(reserve_percent=10)


def test_a_decision_after_another_runs_release_reads_the_usage_again(tmp_path):
    """Run A reserves 500 of a cap leaving 900. Run B plans (its usage reading: 0 used); right after
    that reading, A reads its 500 posts and releases its reservation; then B reads the ledger (no
    reservation) and decides. B must count A's reads: the usage is read again after the ledger read
    (500 used: 400 left for B's 500: refused). The old guard decided on the plan's reading: no
    reservation and 0 used: allowed, 1,000 posts against a cap leaving 900."""
    import logging

    from tweet_assets.sources.budget import BudgetRefused, guard_run

    log = logging.getLogger("test")
    project = {"used": 0}
    lake = LocalLake(str(tmp_path / "lake"))
    a = guard_run(_Source(500, project), lake, run_id="A", collection="brand", start=None, end=None, log=log, today=TODAY)
    assert [r["run_id"] for r in orjson.loads(lake.read_bytes(LEDGER_KEY))["reservations"]] == ["A"]

    class B(_Source):
        def spend_plan(self, start, end, log):
            plan = super().spend_plan(start, end, log)
            project["used"] += 500  # A reads its posts...
            a.release()  # ...and releases, after B's plan read the usage and before B reads the ledger
            return plan

    b_source = B(500, project)
    with pytest.raises(BudgetRefused) as info:
        guard_run(b_source, lake, run_id="B", collection="news", start=None, end=None, log=log, today=TODAY)
    message = str(info.value)
    assert "project cap 1,000, used 500, reserve 100 (TWEET_ASSETS_CAP_RESERVE=10%): 400 left" in message and "reserved by" not in message
    assert b_source.asked == 2  # the plan's reading, and the one after the ledger read
    assert orjson.loads(lake.read_bytes(LEDGER_KEY))["reservations"] == []


def test_a_failed_release_never_hides_the_fetchs_own_error():
    from tweet_assets.lake.store import LakeError
    from tweet_assets.sources.budget import RunBudget

    class Down:
        def release(self, run_id):
            raise LakeError("the ledger cannot be written")

    reservation = Reservation("A", "brand", 5, "2026-11-01", "2026-11-01")
    with pytest.raises(RuntimeError, match="lease lost"):
        with RunBudget(None, Down(), reservation):
            raise RuntimeError("lease lost")
    with pytest.raises(LakeError, match="cannot be written"):
        with RunBudget(None, Down(), reservation):
            pass
