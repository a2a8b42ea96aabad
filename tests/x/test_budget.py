"""Spend follows intent (#38), against the X API double (tests/x_api_double.py), which counts every
request and meters the posts it serves against its post cap (``GET /2/usage/tweets`` answers from it):

- a backfill that would overrun is refused with **zero post requests** (per-run limit, and the cap
  left minus the reserve), in one line naming the numbers, the heaviest days and the setting;
- each run of a backfill split into runs is checked on its own days;
- with no cap reported (enterprise) only the per-run limit applies, said once;
- ``posts_read`` beside ``posts`` in raw_tweets' metadata; the day's counts are asked once per
  page of days, before the run, and reused as ``api_post_count``;
- a cap hit mid-run: the days landed before it keep their pages, the day in progress fails naming
  itself and when the cap resets, and the next run lands it;
- two real runs (two collections, each a Dagster run in its own thread) whose sum exceeds the cap:
  the second is refused naming the first; the interleaving is forced by a request the double holds;
- ``x_api_usage``: its metadata, its check at 80 % / 95 %, its sensor;
- ``tweet-assets plan`` prints the right totals for a 30-day window and reads no post.
"""

from __future__ import annotations

import gzip
import json
import threading
from datetime import datetime, timedelta, timezone

import orjson
import pytest
from dagster import AssetCheckSeverity, AssetKey, DagsterInstance, Definitions, materialize

from tests import x_api_double as xd
from tests.helpers import ALL, is_bookkeeping, resources
from tests.x.test_x_api import SECRET, Sleeps, _corpus, _today
from tweet_assets.sources.cap_ledger import LEDGER_KEY
from tweet_assets.sources.x_api import XApiSource

HOLD_BOUND_S = 120  # a held request or a waiting thread: only stops a broken test hanging


@pytest.fixture
def api(api, monkeypatch):
    """tests/x/conftest.py's strict X API double, with sleeps recorded, not slept."""
    from tweet_assets.sources import x_api

    monkeypatch.setattr(x_api, "_sleep", Sleeps())
    return api


def _source(api, **settings) -> XApiSource:
    return XApiSource(**{"bearer_token": SECRET, "query": "dagster", "base_url": api.url, "connect_timeout_s": 2.0, "read_timeout_s": 10.0, **settings})


def _synthetic(api, day: datetime, count: int, first_id: int) -> None:
    step = 86400 / max(count, 1)
    api.posts += [xd.synthetic_post(first_id + i, "12", day + timedelta(seconds=int(i * step))) for i in range(count)]


def _days(*back: int) -> list[datetime]:
    return [_today() - timedelta(days=n) for n in back]


def _key(day: datetime) -> str:
    return f"{day:%Y-%m-%d}"


def _run(api, lake, source, first: datetime, last: datetime, instance, selection=None):
    return materialize(
        ALL, resources=resources(str(lake), source), instance=instance, raise_on_error=False, selection=selection,
        tags={"dagster/asset_partition_range_start": _key(first), "dagster/asset_partition_range_end": _key(last)},
    )


def _failure(result) -> str:
    """The failed step's error message, without the exception's class name (one line, as the CLI prints it)."""
    error = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE").event_specific_data.error
    while error.cause is not None:
        error = error.cause
    return error.message.strip().split(": ", 1)[1] if error.message.startswith(f"{error.cls_name}: ") or ": " in error.message[:80] else error.message.strip()


def _data_files(lake) -> list[str]:
    return sorted(str(p.relative_to(lake)) for p in lake.rglob("*") if p.is_file() and not is_bookkeeping(str(p.relative_to(lake))))


def _raw_posts(lake, day: datetime) -> int:
    data = (lake / "raw_tweets" / f"dt={_key(day)}" / "part-00000.jsonl.gz").read_bytes()
    return sum(len(json.loads(line).get("data") or []) for line in gzip.decompress(data).splitlines() if line.strip())


def _live_reservations(lake) -> list:
    path = lake / LEDGER_KEY
    return orjson.loads(path.read_bytes())["reservations"] if path.exists() else []


# --- point 2: the guard before the first post request


def test_a_backfill_that_would_overrun_is_refused_with_zero_post_requests(api, tmp_path, instance):
    days = _days(5, 4, 3, 2, 1)  # not 6 days back: from 23:45 UTC on, that day is older than recent search (now - 7 d + 15 min)
    for n, (day, count) in enumerate(zip(days, (120, 80, 300, 50, 90))):
        _synthetic(api, day, count, 10_000 * (n + 1))
    lake = tmp_path / "lake"
    result = _run(api, lake, _source(api, max_posts_per_run=500), days[0], days[-1], instance)
    assert not result.success
    message = _failure(result)
    assert message == (
        f"refused before any post was read: {_key(days[0])}…{_key(days[-1])} is expected to hold 640 posts (counts endpoints), more than "
        f"TWEET_ASSETS_MAX_POSTS_PER_RUN=500; heaviest days {_key(days[2])} (300), {_key(days[0])} (120), {_key(days[4])} (90). "
        "Run fewer days at a time (TWEET_ASSETS_BACKFILL_PARTITIONS_PER_RUN), or raise TWEET_ASSETS_MAX_POSTS_PER_RUN."
    )
    assert api.post_requests() == []  # zero post requests, counted by the double
    assert [s.endpoint for s in api.seen] == ["usage", "counts_recent"]  # one counts call for the five days
    assert _data_files(lake) == [] and _live_reservations(lake) == []

    # the cap: 1,000 a month, 300 used, 10 % reserve: 600 left for a run of 640
    api.seen.clear()
    api.post_cap, api.posts_used = 1000, 300
    result = _run(api, lake, _source(api), days[0], days[-1], instance)
    message = _failure(result)
    reset = _today().date().replace(day=10) if _today().day < 10 else (_today().date().replace(day=1) + timedelta(days=32)).replace(day=10)
    assert message.startswith(f"refused before any post was read: {_key(days[0])}…{_key(days[-1])} is expected to hold 640 posts (counts endpoints), more than the cap leaves: ")
    assert "project cap 1,000, used 300, reserve 100 (TWEET_ASSETS_CAP_RESERVE=10%): 600 left" in message
    assert f"the cap resets on {reset:%Y-%m-%d} (cap_reset_day 10)" in message and "\n" not in message
    assert api.post_requests() == [] and _data_files(lake) == []
    # within the cap it runs, and reads what was counted
    api.post_cap = 10_000
    assert _run(api, lake, _source(api), days[0], days[-1], instance).success
    assert api.posts_used == 300 + 640


def test_each_run_of_a_split_backfill_is_checked_on_its_own_days(api, tmp_path, instance):
    """A backfill as runs of a few days (TWEET_ASSETS_BACKFILL_PARTITIONS_PER_RUN): the first run
    fits the cap and reads; the second, checked against what is left after it, is refused."""
    days = _days(5, 4, 3, 2, 1)  # not 6 days back: from 23:45 UTC on, that day is older than recent search (now - 7 d + 15 min)
    for n, (day, count) in enumerate(zip(days, (120, 80, 300, 250, 90))):
        _synthetic(api, day, count, 10_000 * (n + 1))
    api.post_cap, api.posts_used = 1000, 300  # 600 left after the reserve
    lake = tmp_path / "lake"
    first = _run(api, lake, _source(api), days[0], days[1], instance)
    assert first.success and api.posts_used == 500
    second = _run(api, lake, _source(api), days[2], days[4], instance)
    assert not second.success
    assert "is expected to hold 640 posts" in _failure(second) and "used 500, reserve 100" in _failure(second) and ": 400 left" in _failure(second)
    assert {s.params["start_time"][:10] for s in api.post_requests()} == {_key(days[0]), _key(days[1])}


def test_without_a_cap_only_the_per_run_limit_applies_said_once(api, tmp_path, instance):
    day = _days(2)[0]
    _synthetic(api, day, 150, 1)
    api.post_cap = None  # an enterprise project: usage without project_cap
    lake = tmp_path / "lake"
    result = _run(api, lake, _source(api), day, day, instance)
    assert result.success
    said = [e.user_message for e in instance.all_logs(result.run_id) if "no post cap reported" in (e.user_message or "")]
    assert len(said) == 1 and "only the per-run limit applies (TWEET_ASSETS_MAX_POSTS_PER_RUN=unset)" in said[0]
    refused = _run(api, lake, _source(api, max_posts_per_run=100), day, day, instance)
    assert "more than TWEET_ASSETS_MAX_POSTS_PER_RUN=100" in _failure(refused)


def test_posts_read_beside_posts_and_the_counts_asked_once_per_page_of_days(api, x_api_v2, tmp_path, instance):
    days = _days(3, 2)
    _corpus(api, x_api_v2, days[0], 150)
    _corpus(api, x_api_v2, days[1], 70, offset=150)
    result = _run(api, tmp_path / "lake", _source(api, max_posts_per_run=220), days[0], days[1], instance)
    assert result.success
    raw = {m.partition: m.metadata for m in result.asset_materializations_for_node("raw_tweets")}
    assert {d: (raw[d]["posts"].value, raw[d]["posts_read"].value, raw[d]["api_post_count"].value) for d in raw} == {_key(days[0]): (150, 150, 150), _key(days[1]): (70, 70, 70)}
    assert len(api.requests_to("counts_recent")) == 1  # was one per day after its pages; now one for the run, reused
    assert _live_reservations(tmp_path / "lake") == []  # released at the end of the pages


# --- point 5: the cap hit mid-run


def test_a_cap_hit_mid_run_keeps_the_days_landed_and_fails_the_day_in_progress(api, tmp_path, instance):
    """Three days planned within the cap; another app of the project reads 850 posts before this
    run's first page. Day 1 (100 posts) lands; day 2 is capped on its second page: it and day 3 fail,
    named, with the reset date; nothing is published. The next run, after the reset, lands them."""
    days = _days(4, 3, 2)
    for n, (day, count) in enumerate(zip(days, (100, 250, 60))):
        _synthetic(api, day, count, 10_000 * (n + 1))
    api.post_cap = 1000
    api.fault("call", "search_recent", body=lambda: setattr(api, "posts_used", 850))
    lake = tmp_path / "lake"
    result = _run(api, lake, _source(api), days[0], days[2], instance)
    assert not result.success
    message = _failure(result)
    assert message.startswith(f"{_key(days[1])}…{_key(days[2])} not landed: the project's monthly post cap ran out while {_key(days[1])} was read (")
    assert "UsageCapExceeded" in message and "the cap resets on " in message and "(cap_reset_day 10)" in message
    assert f"The days before it ({_key(days[0])}…{_key(days[0])}) are landed. Run {_key(days[1])}…{_key(days[2])} again after the reset" in message
    assert _data_files(lake) == [f"raw_tweets/dt={_key(days[0])}/part-00000.jsonl.gz"] and _raw_posts(lake, days[0]) == 100
    landed = [r.asset_materialization for r in instance.fetch_materializations(AssetKey("raw_tweets"), limit=10).records]
    assert [m.partition for m in landed] == [_key(days[0])] and landed[0].metadata["stored_before_step_failed"].value is True
    assert landed[0].metadata["posts_read"].value == 100
    assert _live_reservations(lake) == []
    # the cap resets: the next run of the days not landed lands them whole
    api.post_cap = 10_000
    again = _run(api, lake, _source(api), days[1], days[2], instance)
    assert again.success and (_raw_posts(lake, days[1]), _raw_posts(lake, days[2])) == (250, 60)


# --- point 3: two collections, one cap


@pytest.fixture
def shared_instance(monkeypatch):
    """One SQLite instance for two runs in threads (tests/defs/test_concurrency.py says why the
    logging dictConfig call is skipped when no handler is configured)."""
    from dagster import instance_for_test
    from dagster._core.instance.methods.event_methods import EventMethods

    original = EventMethods.get_yaml_python_handlers
    monkeypatch.setattr(EventMethods, "get_yaml_python_handlers", lambda self: original(self) if self._instance.get_python_log_dagster_handler_config() else [])
    with instance_for_test() as inst:
        yield inst


def _collections(tmp_path, api, monkeypatch) -> Definitions:
    from tweet_assets.components import TweetCollection
    from tweet_assets.components.collection import SearchSettings
    from tweet_assets.lake.io_manager import LakeIOManager
    from tweet_assets.settings import lake_from_env

    monkeypatch.setenv("X_BEARER_TOKEN", SECRET)
    monkeypatch.setenv("X_API_BASE_URL", api.url)
    monkeypatch.setenv("X_HTTP_TIMEOUT", f"2,{HOLD_BOUND_S}")  # brand's held request waits for news's whole run
    monkeypatch.setenv("X_HTTP_DEADLINE_S", str(HOLD_BOUND_S + 30))
    lake = lake_from_env({"TWEET_ASSETS_LAKE_URL": str(tmp_path / "lake")})
    first = f"{_today() - timedelta(days=6):%Y-%m-%d}"
    collections = [TweetCollection(name=name, search=SearchSettings(query=query), start_date=first).build_defs(None) for name, query in (("brand", "dagster"), ("news", "news"))]
    return Definitions.merge(Definitions(resources={"lake": lake, "io_manager": LakeIOManager(location=lake)}), *collections)


def test_two_collections_cannot_overrun_the_shared_cap_together(api, tmp_path, monkeypatch, shared_instance):
    """brand and news each expect 500 posts; the cap leaves 900 (1,000, 10 % reserve). brand's run
    reserves its 500 and its first post request is held by the double; news's run, meanwhile, is
    refused naming brand's run, with zero post requests; released, brand's run lands its day."""
    day_a, day_b = _days(3, 2)
    _synthetic(api, day_a, 500, 1)
    _synthetic(api, day_b, 500, 100_000)
    api.post_cap = 1000
    defs = _collections(tmp_path, api, monkeypatch)
    arrived, release = api.hold("search_recent")
    outcome: dict = {}

    def brand():
        try:
            outcome["brand"] = defs.resolve_job_def("brand_daily_job").execute_in_process(instance=shared_instance, partition_key=_key(day_a), raise_on_error=False)
        except BaseException as exc:  # noqa: BLE001 - reported below
            outcome["brand"] = exc

    thread = threading.Thread(target=brand, name="run-brand", daemon=True)
    thread.start()
    try:
        assert arrived.wait(HOLD_BOUND_S), "brand's run never made its first post request"
        (reservation,) = _live_reservations(tmp_path / "lake")
        assert (reservation["collection"], reservation["posts"]) == ("brand", 500)
        news = defs.resolve_job_def("news_daily_job").execute_in_process(instance=shared_instance, partition_key=_key(day_b), raise_on_error=False)
    finally:
        release.set()
        thread.join(HOLD_BOUND_S)
    assert not news.success
    message = _failure(news)
    assert f"reserved by run {reservation['run_id']} (collection brand, {_key(day_a)}: 500 posts): 400 left" in message
    assert message.startswith(f"refused before any post was read: {_key(day_b)} is expected to hold 500 posts")
    assert [s.params["query"] for s in api.post_requests()] == ["dagster"] * len(api.post_requests())  # news read no post
    assert not isinstance(outcome["brand"], BaseException) and outcome["brand"].success and outcome["brand"].run_id == reservation["run_id"]
    assert api.posts_used == 500 and _live_reservations(tmp_path / "lake") == []


def test_a_run_deciding_after_another_released_counts_what_that_run_read(api, tmp_path, monkeypatch, shared_instance):
    """news's run reads the usage (0 used) and is held at its counts request. Meanwhile brand's run
    reserves its 500, reads them and releases its reservation. Released, news decides: the ledger
    holds no reservation and its usage reading said 0 used, yet brand's 500 reads must count: the
    usage is read again inside the reserve step (after the ledger was read): 500 used, 400 left
    after the reserve: refused. The old guard decided on its first reading and read 500 more
    (1,000 posts against a cap leaving 900)."""
    day_a, day_b = _days(3, 2)
    _synthetic(api, day_a, 500, 1)
    _synthetic(api, day_b, 500, 100_000)
    api.post_cap = 1000
    defs = _collections(tmp_path, api, monkeypatch)
    arrived, release = api.hold("counts_recent")
    outcome: dict = {}

    def news():
        try:
            outcome["news"] = defs.resolve_job_def("news_daily_job").execute_in_process(instance=shared_instance, partition_key=_key(day_b), raise_on_error=False)
        except BaseException as exc:  # noqa: BLE001 - reported below
            outcome["news"] = exc

    thread = threading.Thread(target=news, name="run-news", daemon=True)
    thread.start()
    try:
        assert arrived.wait(HOLD_BOUND_S), "news's run never asked for its counts"
        assert [s.endpoint for s in api.seen] == ["usage", "counts_recent"] and api.posts_used == 0  # news read the usage: 0 used
        brand = defs.resolve_job_def("brand_daily_job").execute_in_process(instance=shared_instance, partition_key=_key(day_a), raise_on_error=False)
        assert brand.success and api.posts_used == 500 and _live_reservations(tmp_path / "lake") == []  # brand read its 500 and released
    finally:
        release.set()
        thread.join(HOLD_BOUND_S)
    assert not isinstance(outcome["news"], BaseException) and not outcome["news"].success
    message = _failure(outcome["news"])
    assert message.startswith(f"refused before any post was read: {_key(day_b)} is expected to hold 500 posts") and "used 500, reserve 100" in message and ": 400 left" in message
    assert api.posts_used == 500 and [s.params["query"] for s in api.post_requests()] == ["dagster"] * len(api.post_requests())


# --- point 4: x_api_usage


def _observe(api, instance):
    from tweet_assets.defs.x_api import usage

    defs = Definitions(assets=[usage.x_api_usage], jobs=[usage.x_api_usage_job], resources={"x_api": _source(api)})
    result = defs.resolve_job_def("x_api_usage_job").execute_in_process(instance=instance, raise_on_error=False)
    observations = [e.event_specific_data.asset_observation for e in result.all_events if e.event_type_value == "ASSET_OBSERVATION"]
    return result, observations


@pytest.mark.parametrize(("used", "passed", "severity"), [(500_000, True, None), (800_000, False, AssetCheckSeverity.WARN), (950_000, False, AssetCheckSeverity.ERROR)])
def test_x_api_usage_records_the_cap_and_checks_its_headroom(api, used, passed, severity):
    api.posts_used = used
    with DagsterInstance.ephemeral() as instance:
        result, (observation,) = _observe(api, instance)
    assert result.success
    values = {k: v.value for k, v in observation.metadata.items()}
    today = datetime.now(timezone.utc).date()
    reset = today.replace(day=10) if today.day < 10 else (today.replace(day=1) + timedelta(days=32)).replace(day=10)
    assert {k: values[k] for k in ("project_cap", "project_usage", "percent_used", "days_to_reset", "usage_last_30_days")} == {
        "project_cap": 1_000_000, "project_usage": used, "percent_used": used / 10_000, "days_to_reset": (reset - today).days, "usage_last_30_days": used}
    assert len(values["daily_usage"].records) == 30
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.check_name == "post_cap_headroom" and evaluation.passed is passed
    if severity:
        assert evaluation.severity == severity
    (request,) = api.requests_to("usage")
    assert request.params == {"days": "30", "usage.fields": "cap_reset_day,daily_project_usage,project_cap,project_id,project_usage"}


def test_x_api_usage_in_2159_shapes_without_a_cap_and_its_sensor(api, monkeypatch):
    from dagster import build_sensor_context

    from tweet_assets.defs.x_api import usage
    from tweet_assets.settings import x_api_configured

    api.usage_as_integers, api.post_cap, api.posts_used = True, None, 12
    with DagsterInstance.ephemeral() as instance:
        result, (observation,) = _observe(api, instance)
    assert result.success and "project_cap" not in observation.metadata and observation.metadata["project_usage"].value == 12
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.passed and "no post cap" in evaluation.metadata["note"].value
    api.usage_data = {"project_usage": "nine"}  # not a number: the observation fails, naming the field
    with DagsterInstance.ephemeral() as instance:
        failed, _ = _observe(api, instance)
    assert not failed.success and "project_usage is 'nine'" in _failure(failed)
    assert usage.x_api_usage_sensor.minimum_interval_seconds == 6 * 3600
    # the sensor observes by itself (no run: no slot of the run queue, no ECS task every 6 hours)
    assert not usage.x_api_usage_sensor.targets
    api.usage_as_integers, api.post_cap, api.posts_used, api.usage_data = False, 1000, 900, None
    with DagsterInstance.ephemeral() as instance:
        ticked = usage.x_api_usage_sensor(build_sensor_context(instance=instance, resources={"x_api": _source(api)}))
    observed, checked = ticked.asset_events
    assert not ticked.run_requests and observed.metadata["percent_used"].value == 90.0 and observed.metadata["project_cap"].value == 1000
    assert checked.check_name == "post_cap_headroom" and not checked.passed and checked.severity.value == "WARN"
    assert "90.0% of the monthly post cap used" in checked.description
    with DagsterInstance.ephemeral() as instance:
        skipped = usage.x_api_usage_sensor(build_sensor_context(instance=instance, resources={"x_api": _source(api, bearer_token=None)}))
    assert "set X_BEARER_TOKEN" in skipped.skip_message
    assert x_api_configured({"TWEET_ASSETS_SOURCE": "x_api", "X_BEARER_TOKEN": "t"}) and not x_api_configured({"TWEET_ASSETS_SOURCE": "sample", "X_BEARER_TOKEN": "t"})
    assert not x_api_configured({"TWEET_ASSETS_SOURCE": "x_api"})


# --- point 1: tweet-assets plan


def _plan_cli(api, monkeypatch, tmp_path, *args, **env) -> tuple[int, str, str]:
    import contextlib
    import io

    from tweet_assets.cli.main import main

    for key, value in {"TWEET_ASSETS_SOURCE": "x_api", "X_BEARER_TOKEN": SECRET, "X_QUERY": "dagster", "X_FULL_ARCHIVE": "1", "X_API_BASE_URL": api.url,
                       "TWEET_ASSETS_LAKE_URL": str(tmp_path / "lake"), "TWEET_ASSETS_START_DATE": "2026-01-01", **env}.items():
        monkeypatch.setenv(key, value)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["plan", *args])
    return status, out.getvalue(), err.getvalue()


def test_plan_prints_the_totals_of_a_30_day_window_and_reads_no_post(api, monkeypatch, tmp_path):
    days = _days(*range(31, 1, -1))  # 30 days, 2 to 31 days ago: full archive then recent search
    want = {}
    for n, day in enumerate(days):
        want[_key(day)] = (n * 37) % 101
        _synthetic(api, day, want[_key(day)], 1_000 * (n + 1))
    api.post_cap, api.posts_used = 50_000, 12_345
    api.counts_vocabulary = "posts"  # spec 2.167's post_count
    status, out, err = _plan_cli(api, monkeypatch, tmp_path, "--from", _key(days[0]), "--to", _key(days[-1]))
    assert status == 0, err
    lines = out.splitlines()
    table = {line.split()[0]: int(line.split()[1].replace(",", "")) for line in lines[1:31]}
    assert table == want and lines[31].split()[1] == f"{sum(want.values()):,}"
    total = sum(want.values())
    assert lines[-1].startswith(f"plan {_key(days[0])}…{_key(days[-1])}: {total:,} posts expected; cap 50,000, used 12,345 (24.69%), reserved by running runs 0, reserve 5,000 (10%); the run would leave {50_000 - 12_345 - 5_000 - total:,}; the cap resets on ")
    assert lines[-1].endswith("a run of these days would be allowed")
    assert api.post_requests() == []  # it reads no post
    assert [s.endpoint for s in api.seen if s.endpoint.startswith("counts")] == ["counts_all", "counts_recent"]  # 24 full-archive days on one page, 6 recent

    status, out, _ = _plan_cli(api, monkeypatch, tmp_path, "--from", _key(days[0]), "--to", _key(days[-1]), "--json", TWEET_ASSETS_MAX_POSTS_PER_RUN="100")
    report = json.loads(out)
    assert status == 0 and report["total"] == total and {d["day"]: d["expected_posts"] for d in report["days"]} == want
    assert (report["project_cap"], report["project_usage"], report["reserve"], report["left_after_run"]) == (50_000, 12_345, 5_000, 50_000 - 12_345 - 5_000 - total)
    assert report["cap_reset_day"] == 10 and report["refused"].startswith("refused before any post was read") and "TWEET_ASSETS_MAX_POSTS_PER_RUN=100" in report["refused"]
    assert api.post_requests() == []


def test_plan_of_timelines_says_what_it_cannot_know_and_a_cap_hit_when_it_resets(api, monkeypatch, tmp_path):
    day = _key(_days(2)[0])
    api.post_cap, api.posts_used = 1000, 1000  # used up
    status, out, _ = _plan_cli(api, monkeypatch, tmp_path, "--from", day, "--to", day, X_QUERY="", X_ACCOUNTS="nasa,esa")
    assert status == 0
    assert "note: user timelines have no counts endpoint: the posts a run of 2 account(s) reads cannot be known before it (at most 3,200 per account" in out
    summary = out.splitlines()[-1]
    assert summary.startswith(f"plan {day}: unknown posts expected; cap 1,000, used 1,000 (100%)") and "the cap resets on " in summary
    assert "a run would be refused: refused before any post was read" in summary and "reads an unknown number of posts" in summary
    assert api.post_requests() == [] and [s.endpoint for s in api.seen] == ["usage"]


# --- the guard's own requests: bounded rate-limit waits, and what a failed count or usage read means


def _used_up(seconds: int) -> dict:
    """A 429's headers: the window used up, resetting ``seconds`` from now."""
    return {"x-rate-limit-remaining": "0", "x-rate-limit-reset": str(int(datetime.now(timezone.utc).timestamp()) + seconds)}


def _sleeps() -> list:
    from tweet_assets.sources import x_api

    return x_api._sleep  # the fixture's recorder (monkeypatched): what the run would have slept


def test_the_guard_and_the_pages_share_one_rate_limit_ceiling(api, tmp_path, instance):
    """TWEET_ASSETS_MAX_RATE_LIMIT_WAIT_S=1000: the usage request (the guard's) waits ~502 s for its
    window's reset, then a page request would wait ~502 s more: past the run's ceiling, the run fails
    naming it. The old code bounded only the pages' waits, from a fresh budget: it slept both
    (~1,004 s; a guard's request alone could wait 20 × 15 min) and succeeded."""
    day = _days(2)[0]
    _synthetic(api, day, 150, 1)
    api.fault("http", "usage", status=429, headers=_used_up(500), body=xd.TOO_MANY)
    api.fault("http", "search_recent", status=429, headers=_used_up(500), body=xd.TOO_MANY)
    result = _run(api, tmp_path / "lake", _source(api, max_rate_limit_wait_s=1000), day, day, instance)
    assert not result.success
    message = _failure(result)
    assert f"GET /2/tweets/search/recent {_key(day)} page 1" in message and "TWEET_ASSETS_MAX_RATE_LIMIT_WAIT_S=1000" in message
    assert "s waited so far" in message and "resets at" in message
    assert sum(_sleeps()) <= 1000 and len(_sleeps()) == 1
    assert _data_files(tmp_path / "lake") == []


UNAVAILABLE = {"title": "Service Unavailable", "detail": "Service Unavailable", "type": "about:blank", "status": 503}
FORBIDDEN = {"title": "Client Forbidden", "detail": "This request must be made using an approved developer account that is enrolled in the requested endpoint.",
             "type": "https://api.twitter.com/2/problems/client-forbidden", "reason": "client-not-enrolled"}


@pytest.mark.parametrize("endpoint", ["usage", "counts_recent"])
def test_a_guard_request_past_the_rate_limit_ceiling_refuses_the_run_naming_it(api, tmp_path, instance, endpoint):
    """The usage or counts request is answered 429 with the reset ~900 s away; the run may wait
    600 s: the guard fails, naming TWEET_ASSETS_MAX_RATE_LIMIT_WAIT_S and the reset, before any post
    request and without sleeping. The old code waited ~902 s (no ceiling on the guard's requests)."""
    day = _days(2)[0]
    _synthetic(api, day, 150, 1)
    api.fault("http", endpoint, status=429, headers=_used_up(900), body=xd.TOO_MANY)
    result = _run(api, tmp_path / "lake", _source(api, max_rate_limit_wait_s=600), day, day, instance)
    assert not result.success
    message = _failure(result)
    assert message.startswith("refused before any post was read: ") and "\n" not in message
    assert "TWEET_ASSETS_MAX_RATE_LIMIT_WAIT_S=600" in message and "the rate limit resets at" in message
    assert api.post_requests() == [] and _sleeps() == []


def test_counts_failing_after_retries_refuse_a_run_with_a_per_run_limit(api, tmp_path, instance):
    """The counts request answers 503 twice (max_retries=1): the run's posts cannot be counted, so
    TWEET_ASSETS_MAX_POSTS_PER_RUN cannot be checked: refused in one line, zero post requests. The
    old code logged a warning, reserved 0 posts and read the whole day."""
    day = _days(2)[0]
    _synthetic(api, day, 150, 1)
    for _ in range(2):
        api.fault("http", "counts_recent", status=503, body=UNAVAILABLE)
    lake = tmp_path / "lake"
    result = _run(api, lake, _source(api, max_posts_per_run=100, max_retries=1), day, day, instance)
    assert not result.success
    message = _failure(result)
    assert message.startswith(f"refused before any post was read: {_key(day)} could not be counted (GET /2/tweets/counts/recent {_key(day)} page 1: gave up after 2 failure(s)")
    assert "HTTP 503" in message and "so TWEET_ASSETS_MAX_POSTS_PER_RUN=100 and the cap left cannot be checked" in message
    assert "Run again when the X API answers" in message and "\n" not in message
    assert api.post_requests() == [] and len(api.requests_to("counts_recent")) == 2
    assert _data_files(lake) == [] and _live_reservations(lake) == []


def test_counts_failing_refuse_a_run_under_a_cap_and_a_failed_usage_read_too(api, tmp_path, instance):
    day = _days(2)[0]
    _synthetic(api, day, 150, 1)
    for _ in range(2):
        api.fault("http", "counts_recent", status=503, body=UNAVAILABLE)
    result = _run(api, tmp_path / "lake", _source(api, max_retries=1), day, day, instance)  # no per-run limit; the cap applies
    assert "could not be counted" in _failure(result) and "so the cap left cannot be checked" in _failure(result)
    assert api.post_requests() == []
    for _ in range(2):
        api.fault("http", "usage", status=503, body=UNAVAILABLE)
    result = _run(api, tmp_path / "lake", _source(api, max_retries=1), day, day, instance)
    message = _failure(result)
    assert message.startswith(f"refused before any post was read: {_key(day)}: the project's post cap could not be read (GET /2/usage/tweets project usage: gave up after 2 failure(s)")
    assert "so the cap left cannot be checked" in message and "\n" not in message
    assert api.post_requests() == []


def test_a_403_from_counts_or_usage_is_said_once_and_the_run_goes_on(api, tmp_path, instance):
    """An access level without the counts endpoints (403): said once in the log; the per-run limit
    cannot apply, the cap still does (it has room), and the run lands its day. Likewise a 403 from
    the usage endpoint: the cap is unknown, the per-run limit applies."""
    day = _days(2)[0]
    _synthetic(api, day, 150, 1)
    api.fault("http", "counts_recent", status=403, body=FORBIDDEN)
    result = _run(api, tmp_path / "lake", _source(api, max_posts_per_run=100), day, day, instance)
    assert result.success
    said = [e.user_message for e in instance.all_logs(result.run_id) if "not open to this access level" in (e.user_message or "")]
    assert len(said) == 1 and "HTTP 403" in said[0] and "TWEET_ASSETS_MAX_POSTS_PER_RUN cannot be checked" in said[0]
    api.fault("http", "usage", status=403, body=FORBIDDEN)
    refused = _run(api, tmp_path / "lake2", _source(api, max_posts_per_run=100), day, day, instance)
    assert "more than TWEET_ASSETS_MAX_POSTS_PER_RUN=100" in _failure(refused)
    said = [e.user_message for e in instance.all_logs(refused.run_id) if "not open to this access level" in (e.user_message or "")]
    assert len(said) == 1 and "GET /2/usage/tweets" in said[0]


def test_without_a_cap_and_a_limit_a_count_that_failed_refuses_nothing(api, tmp_path, instance):
    day = _days(2)[0]
    _synthetic(api, day, 150, 1)
    api.post_cap = None  # enterprise: nothing to check the count against
    for _ in range(2):
        api.fault("http", "counts_recent", status=503, body=UNAVAILABLE)
    result = _run(api, tmp_path / "lake", _source(api, max_retries=1), day, day, instance)
    assert result.success
    said = [e.user_message for e in instance.all_logs(result.run_id) if "could not be counted" in (e.user_message or "")]
    assert len(said) == 1


# --- the reservation ends with the run's fetch, however it ends


def test_no_reservation_is_left_when_the_days_cannot_be_held(api, tmp_path, instance):
    """Another live run holds the day's lease: the run fails with LeaseConflict, and leaves no
    reservation in the cap ledger (it is planned only once the days are held). The old code
    reserved first, and the reservation stayed (no page loop ever ran to release it)."""
    from tweet_assets.lake.leases import DayLeases, forget_run
    from tweet_assets.lake.store import LocalLake

    day = _days(2)[0]
    _synthetic(api, day, 150, 1)
    lake = tmp_path / "lake"
    DayLeases(LocalLake(str(lake)), "other-run", "raw_tweets").acquire([_key(day)])
    try:
        result = _run(api, lake, _source(api), day, day, instance)
    finally:
        forget_run("other-run")
    assert not result.success and "other-run" in _failure(result)
    assert _live_reservations(lake) == [] and api.post_requests() == []


class _StrayPage(XApiSource):
    """The X source yielding, after the day's pages, one page of a day outside the run's window."""

    def pages(self, start, end, log):
        from tweet_assets.sources.base import SourcePage

        yield from super().pages(start, end, log)
        yield SourcePage("1999-01-01", b"{}", "a stray page", posts=0)


def test_the_reservation_is_released_when_the_fetch_loop_fails(api, tmp_path, instance, monkeypatch):
    """The loop over the pages raises (a page outside the run's window; the day's lease found lost):
    the run's reservation is released as the step fails, not whenever the suspended page generator
    is collected. The test keeps a reference to that generator (as a kept traceback would): the
    old code released only in the generator's ``finally``, so the reservation stayed."""
    from tweet_assets.defs.pipeline import assets
    from tweet_assets.lake.leases import LeaseLost
    from tweet_assets.sources.budget import RunBudget

    kept: list = []
    original = RunBudget.pages

    def keeping(self, pages):
        generator = original(self, pages)
        kept.append(generator)
        return generator

    monkeypatch.setattr(RunBudget, "pages", keeping)
    day = _days(2)[0]
    _synthetic(api, day, 150, 1)
    lake = tmp_path / "lake"
    stray = _StrayPage(**_source(api).model_dump(exclude_unset=True))
    result = _run(api, lake, stray, day, day, instance)
    assert "outside the run's" in _failure(result)
    assert _live_reservations(lake) == []

    lost = LeaseLost(f"the lease of {_key(day)} was lost to run other-run", _key(day), {"run_id": "other-run"})
    monkeypatch.setattr(assets, "lost_lease", lambda url, run_id: lost)  # what the heartbeat reports when another run took the day
    result = _run(api, tmp_path / "lake2", _source(api), day, day, instance)
    assert "was lost to run other-run" in _failure(result)
    assert _live_reservations(tmp_path / "lake2") == []
    assert len(kept) == 2
    kept.clear()
