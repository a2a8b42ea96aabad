"""The live source against recorded HTTP: tweepy's own cassettes (vcrpy), and twarc's recorded
5-page chain served by `responses`, with rate limits, server errors and a bad credential.
No network: every request is answered from the recordings.
"""

from __future__ import annotations

import gzip
import json
import logging
import time
from datetime import datetime, timezone
from urllib.parse import parse_qs, urlparse

import orjson
import pytest
import responses
import yaml

from tests.helpers import is_bookkeeping
from tweet_assets.partitions import day_window
from tweet_assets.sources.x_api import XApiError, XApiSource

LOG = logging.getLogger("test")
SECRET = "AAAAcanary-bearer-token-do-not-print-0123456789"


class Clock:
    """Injected clock: `now` is fixed (plus slept time); sleeps are recorded, not waited."""

    def __init__(self, now: datetime):
        self.t = now
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        return self.t

    def sleep(self, seconds: float) -> None:
        from datetime import timedelta

        self.sleeps.append(seconds)
        self.t = self.t + timedelta(seconds=seconds)


def _cassette_body(path, index=0) -> dict:
    interaction = yaml.safe_load(path.read_text())["interactions"][index]
    body = interaction["response"]["body"]["string"]
    if isinstance(body, str):
        body = body.encode()
    try:
        body = gzip.decompress(body)
    except OSError:
        pass
    return json.loads(body)


@pytest.mark.parametrize(
    "cassette, settings, day",
    [
        ("test_client_search_recent_tweets.yaml", {"mode": "search", "query": "Tweepy"}, "2022-10-07"),
        ("test_client_search_all_tweets.yaml", {"mode": "search", "query": "Tweepy", "full_archive": True}, "2021-01-01"),
        ("test_client_get_users_tweets.yaml", {"mode": "timeline", "accounts": ["Twitter"]}, "2022-10-07"),
    ],
)
def test_tweepy_cassettes_replay_through_the_real_client(x_api_v2, tmp_path, cassette, settings, day):
    vcr = pytest.importorskip("vcr")
    path = x_api_v2 / "tweepy-cassettes" / cassette
    played = path
    if settings["mode"] == "timeline":  # the username is resolved first: GET /2/users/by (tweepy's own recording)
        lookup = yaml.safe_load((x_api_v2 / "tweepy-cassettes" / "test_client_get_users.yaml").read_text())
        timeline = yaml.safe_load(path.read_text())
        timeline["interactions"] = lookup["interactions"] + timeline["interactions"]
        played = tmp_path / cassette
        played.write_text(yaml.safe_dump(timeline))
    recorder = vcr.VCR(decode_compressed_response=True, record_mode="none", match_on=["method", "path"])
    clock = Clock(datetime(2022, 10, 8, 12, tzinfo=timezone.utc))
    source = XApiSource(bearer_token=SECRET, max_pages_per_day=1, record_counts=False, **settings).with_clock(clock.sleep, clock.now)
    with recorder.use_cassette(str(played)):
        pages = list(source.pages(*day_window(day), LOG))
    assert len(pages) == 1
    got = orjson.loads(pages[0].body)
    want = _cassette_body(path)
    assert got["data"] == want["data"] and got["meta"] == want["meta"]  # untouched
    assert pages[0].posts == len(want["data"]) and pages[0].requests == 1


CHAIN_URL = "https://api.x.com/2/tweets/search/recent"  # the spec's server (tweepy's api.twitter.com is rewritten)


def _landed(page) -> dict:
    """A landed page without its ``__twarc`` provenance record."""
    body = orjson.loads(page.body)
    body.pop("__twarc")
    return body


def _chain(x_api_v2):
    lines = (x_api_v2 / "twarc-network-test-data" / "tweets.jsonl").read_bytes().splitlines()
    pages = [orjson.loads(line) for line in lines]
    for page in pages:
        page.pop("__twarc", None)
    # twarc stopped after 5 pages (its --limit); the recording's last page still has a next_token.
    # Served as the end of the results, as the API does on the last page.
    pages[-1]["meta"].pop("next_token")
    return pages


def _serve_chain(pages, faults=None):
    """A `responses` callback serving the recorded chain by next_token; `faults` is a list of
    (status, headers) answered before the pages, one per request."""
    faults = list(faults or [])
    by_token = {None: pages[0]}
    for previous, page in zip(pages, pages[1:]):
        by_token[previous["meta"]["next_token"]] = page
    seen = []

    def callback(request):
        if faults:
            status, headers = faults.pop(0)
            if status == "reset":
                from requests.exceptions import ConnectionError as Reset

                raise Reset("connection reset by peer")
            return status, headers, json.dumps({"title": "fault", "detail": "injected", "status": status})
        query = parse_qs(urlparse(request.url).query)
        token = query.get("next_token", [None])[0]
        seen.append(token)
        assert request.headers["Authorization"] == f"Bearer {SECRET}"
        return 200, {"x-rate-limit-remaining": "449"}, orjson.dumps(by_token[token])

    return callback, seen


USAGE_URL = "https://api.x.com/2/usage/tweets"
COUNTS_URL = "https://api.x.com/2/tweets/counts/recent"


def _serve_budget(day: str, posts: int, usage: dict | None = None) -> None:
    """What the budget guard asks before a run (#38): the day's count and the project's usage."""
    bucket = {"start": f"{day}T00:00:00.000Z", "end": f"{day}T23:59:59.000Z", "tweet_count": posts}
    responses.add(responses.GET, COUNTS_URL, json={"data": [bucket], "meta": {"total_tweet_count": posts}})
    responses.add(responses.GET, USAGE_URL, json={"data": usage or {"project_cap": "1000000", "project_usage": "1200", "cap_reset_day": 10}})


@responses.activate
def test_paginator_follows_every_next_token(x_api_v2):
    pages = _chain(x_api_v2)
    callback, seen = _serve_chain(pages)
    responses.add_callback(responses.GET, CHAIN_URL, callback=callback)
    clock = Clock(datetime(2021, 6, 27, 12, tzinfo=timezone.utc))
    source = XApiSource(bearer_token=SECRET, query="blacklivesmatter", record_counts=False).with_clock(clock.sleep, clock.now)
    got = list(source.pages(*day_window("2021-06-26"), LOG))
    assert len(got) == 5 and seen == [None] + [p["meta"]["next_token"] for p in pages[:4]]
    assert sum(p.posts for p in got) == 500
    assert [_landed(p) for p in got] == pages  # includes (users 857, tweets 291, media 106, places 3) intact
    query = parse_qs(urlparse(responses.calls[0].request.url).query)
    assert query["start_time"] == ["2021-06-26T00:00:00Z"] and query["end_time"] == ["2021-06-27T00:00:00Z"]
    assert query["max_results"] == ["100"] and "note_tweet" in query["tweet.fields"][0]
    assert "referenced_tweets.id.author_id" in query["expansions"][0]


@responses.activate
def test_429_waits_until_reset_and_loses_no_page(x_api_v2):
    pages = _chain(x_api_v2)
    clock = Clock(datetime(2021, 6, 27, 12, tzinfo=timezone.utc))
    reset = int(clock.now().timestamp()) + 37
    callback, seen = _serve_chain(pages, faults=[(429, {"x-rate-limit-reset": str(reset), "x-rate-limit-remaining": "0"}), ("reset", {}), (503, {})])
    responses.add_callback(responses.GET, CHAIN_URL, callback=callback)
    source = XApiSource(bearer_token=SECRET, query="blacklivesmatter", rate_limit_margin_s=2, record_counts=False).with_clock(clock.sleep, clock.now)
    got = list(source.pages(*day_window("2021-06-26"), LOG))
    assert [_landed(p) for p in got] == pages and len(seen) == 5
    assert clock.sleeps[0] == pytest.approx(39.0)  # until x-rate-limit-reset, plus the margin
    assert clock.sleeps[1:] == [2.0, 4.0]  # connection reset, then 503: growing backoff
    assert got[0].retries == 3 and got[0].requests == 4 and got[0].rate_limit_wait_s == pytest.approx(39.0)


@responses.activate
def test_repeated_503_backs_off_then_fails_clearly(x_api_v2):
    pages = _chain(x_api_v2)
    callback, _ = _serve_chain(pages)
    responses.add_callback(responses.GET, CHAIN_URL, callback=callback)
    clock = Clock(datetime(2021, 6, 27, 12, tzinfo=timezone.utc))
    source = XApiSource(bearer_token=SECRET, query="blacklivesmatter", max_retries=3, record_counts=False).with_clock(clock.sleep, clock.now)
    iterator = source.pages(*day_window("2021-06-26"), LOG)
    next(iterator)  # page 1 fine
    responses.replace(responses.GET, CHAIN_URL, status=503, json={"title": "Service Unavailable"})
    with pytest.raises(XApiError) as info:
        next(iterator)
    message = str(info.value)
    assert "GET /2/tweets/search/recent 2021-06-26 page 2" in message and "HTTP 503" in message
    assert "gave up after 4 failure(s)" in message
    assert clock.sleeps == [2.0, 4.0, 8.0]
    assert SECRET not in message


@responses.activate
def test_401_is_a_credential_error_naming_the_variable_not_the_value():
    responses.add(responses.GET, CHAIN_URL, status=401, json={"title": "Unauthorized", "detail": "Unauthorized", "type": "about:blank", "status": 401})
    clock = Clock(datetime(2021, 6, 27, 12, tzinfo=timezone.utc))
    source = XApiSource(bearer_token=SECRET, query="x").with_clock(clock.sleep, clock.now)
    with pytest.raises(XApiError) as info:
        list(source.pages(*day_window("2021-06-26"), LOG))
    assert "401" in str(info.value) and "X_BEARER_TOKEN" in str(info.value) and SECRET not in str(info.value)
    assert len(responses.calls) == 1  # not retried


def test_old_partition_without_full_archive_says_why():
    clock = Clock(datetime(2024, 6, 1, tzinfo=timezone.utc))
    source = XApiSource(bearer_token=SECRET, query="x").with_clock(clock.sleep, clock.now)
    with pytest.raises(XApiError, match="older than the 7 days.*X_FULL_ARCHIVE=1"):
        list(source.pages(*day_window("2024-05-01"), LOG))
    long_query = XApiSource(bearer_token=SECRET, query="a" * 513).with_clock(clock.sleep, clock.now)
    with pytest.raises(XApiError, match="513 characters.*at most 512"):
        list(long_query.pages(*day_window("2024-05-30"), LOG))


def test_missing_credentials_name_the_variables():
    with pytest.raises(XApiError, match="X_BEARER_TOKEN"):
        XApiSource(query="x").client()
    with pytest.raises(ValueError, match="X_BEARER_TOKEN"):
        XApiSource.from_env({"X_QUERY": "x"})
    with pytest.raises(ValueError, match="X_QUERY"):
        XApiSource.from_env({"X_BEARER_TOKEN": SECRET})


@responses.activate
def test_end_to_end_live_source_into_moto(x_api_v2, s3_lake, aws_env, instance, monkeypatch):
    """raw_tweets → clean_tweets → s3_parquet for one day from recorded HTTP into moto S3."""
    import pyarrow.dataset as ds
    import pyarrow.fs as pafs

    from tests.helpers import resources, run
    from tweet_assets.sources import x_api

    responses.add_passthru(aws_env)  # the moto server is real HTTP on loopback
    pages = _chain(x_api_v2)
    callback, seen = _serve_chain(pages, faults=[(429, {"x-rate-limit-reset": "0"})])
    responses.add_callback(responses.GET, CHAIN_URL, callback=callback)
    _serve_budget("2021-06-26", 500)
    clock = Clock(datetime(2021, 6, 27, 12, tzinfo=timezone.utc))
    monkeypatch.setattr(x_api, "_utcnow", clock.now)  # Dagster copies resources: patch the module
    monkeypatch.setattr(x_api, "_sleep", clock.sleep)
    source = XApiSource(bearer_token=SECRET, query="blacklivesmatter", record_counts=False)
    result = run(resources(s3_lake, source), "2021-06-26", instance=instance)
    assert result.success and len(seen) == 5 and clock.sleeps
    raw_meta = result.asset_materializations_for_node("raw_tweets")[0].metadata
    assert raw_meta["posts"].value == 500 and raw_meta["api_requests"].value == 6 and raw_meta["api_retries"].value == 1
    assert raw_meta["posts_read"].value == 500  # what the cap was charged for
    fs = pafs.S3FileSystem(endpoint_override=aws_env, region="us-east-1", access_key="testing", secret_key="testing")
    table = ds.dataset(s3_lake[5:] + "/tweets", filesystem=fs, format="parquet", partitioning="hive").to_table()
    assert table.num_rows == 500
    assert set(table["id"].to_pylist()) == {int(t["id"]) for p in pages for t in p["data"]}
    for event in result.all_events:  # the secret never reaches the event log
        assert SECRET not in str(event)


@responses.activate
def test_exhausted_retries_fail_the_run_and_publish_nothing(x_api_v2, tmp_path, instance, monkeypatch):
    from tests.helpers import resources, run
    from tweet_assets.sources import x_api

    pages = _chain(x_api_v2)
    callback, seen = _serve_chain(pages)
    calls = {"n": 0}

    def flaky(request):
        calls["n"] += 1
        if calls["n"] == 1:
            return callback(request)
        return 503, {}, json.dumps({"title": "Service Unavailable"})

    responses.add_callback(responses.GET, CHAIN_URL, callback=flaky)
    _serve_budget("2021-06-26", 500)
    clock = Clock(datetime(2021, 6, 27, 12, tzinfo=timezone.utc))
    monkeypatch.setattr(x_api, "_utcnow", clock.now)
    monkeypatch.setattr(x_api, "_sleep", clock.sleep)
    result = run(resources(str(tmp_path / "lake"), XApiSource(bearer_token=SECRET, query="blacklivesmatter", max_retries=2, record_counts=False)), "2021-06-26", instance=instance, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = str(failure.event_specific_data.error)
    assert "GET /2/tweets/search/recent 2021-06-26 page 2" in message and "HTTP 503" in message and "gave up after 3 failure(s)" in message
    assert calls["n"] == 4 and clock.sleeps == [2.0, 4.0]
    lake = tmp_path / "lake"
    written = [p for p in lake.rglob("*") if p.is_file() and not is_bookkeeping(str(p.relative_to(lake)))]
    assert written == []  # nothing partial landed or published (the day's lease, held by the failed run, aside)


# --- against the loopback double (tests/x_api_double.py): the API's request rules, real clock ---

from datetime import timedelta  # noqa: E402

import requests  # noqa: E402

from tests import x_api_double as xd  # noqa: E402
from tweet_assets.sources.x_api import UsageCapExceeded  # noqa: E402

USER_CONTEXT = {"consumer_key": "ck-canary-0001", "consumer_secret": "cs-canary-0002", "access_token": "at-canary-0003", "access_token_secret": "as-canary-0004"}


class Sleeps(list):
    """Injected sleep: recorded, not waited; `now` stays the real clock (the double's)."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def _today() -> datetime:
    return datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)


def _live(api, sleeps=None, **settings) -> XApiSource:
    settings = {"bearer_token": SECRET, "query": "dagster", "base_url": api.url, "connect_timeout_s": 2.0, "read_timeout_s": 2.0, **settings}
    if settings.get("bearer_token") is None:
        settings.pop("bearer_token")
    return XApiSource(**settings).with_clock(sleeps if sleeps is not None else Sleeps())


def _corpus(api, x_api_v2, day: datetime, count: int, offset: int = 0) -> list[dict]:
    posts, users = xd.recorded_posts(_chain(x_api_v2), day, count, offset)
    api.posts += posts
    api.users.update(users)
    return posts


def _fetch(source, day: datetime) -> list:
    return list(source.pages(day, day + timedelta(days=1), LOG))


def _learnt(source) -> dict:
    """The source's day metadata without ``posts_read`` (asserted on its own)."""
    return {day: {k: v for k, v in values.items() if k != "posts_read"} for day, values in source.day_metadata().items() if set(values) - {"posts_read"}}


def test_the_double_rejects_what_the_api_rejects(api):
    """The validator has teeth: each documented rule refuses a request that breaks it."""
    now = datetime.now(timezone.utc)
    ok = {"query": "x", "start_time": (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ"), "end_time": (now - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")}
    bearer = {"Authorization": "Bearer t"}
    oauth = {"Authorization": 'OAuth oauth_consumer_key="k"'}
    cases = [
        ("/2/tweets/search/recent", {**ok, "max_results": "500"}, bearer, 400, "max_results"),
        ("/2/tweets/search/recent", {**ok, "max_results": "9"}, bearer, 400, "max_results"),
        ("/2/tweets/search/all", {**ok, "max_results": "500", "tweet.fields": "context_annotations,id"}, bearer, 400, "between 10 and 100"),
        ("/2/tweets/search/all", {**ok, "max_results": "10"}, oauth, 403, "user-context"),
        ("/2/tweets/counts/recent", {**ok, "granularity": "day"}, oauth, 403, "user-context"),
        ("/2/tweets/search/recent", {**ok, "start_time": (now - timedelta(days=7, minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")}, bearer, 400, "start_time"),
        ("/2/tweets/search/recent", {**ok, "end_time": (now - timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ")}, bearer, 400, "10 seconds"),
        ("/2/tweets/search/all", {**ok, "start_time": "2006-03-20T00:00:00Z"}, bearer, 400, "2006-03-21"),
        ("/2/tweets/search/recent", {**ok, "tweet.fields": "id,nonsense"}, bearer, 400, "nonsense"),
        ("/2/tweets/search/recent", {**ok, "pagination_token": "tok-10"}, bearer, 400, "pagination parameter"),
        ("/2/tweets/search/recent", {**ok, "colour": "red"}, bearer, 400, "colour"),
        ("/2/users/1/tweets", {"max_results": "4"}, bearer, 400, "max_results"),
        ("/2/users/by", {"usernames": ",".join(f"u{i}" for i in range(101))}, bearer, 400, "1 to 100"),
        ("/2/users", {"ids": ""}, bearer, 400, "1 to 100"),
    ]
    for path, params, headers, status, why in cases:
        response = requests.get(api.url + path, params=params, headers=headers, timeout=5)
        assert response.status_code == status, (path, params)
        assert why in api.violations[-1], (why, api.violations[-1])
    valid = requests.get(api.url + "/2/tweets/search/recent", params={**ok, "max_results": "100"}, headers=bearer, timeout=5)
    assert valid.status_code == 200 and len(api.violations) == len(cases)
    api.violations.clear()


def test_the_double_answers_in_the_recorded_shapes(api, x_api_v2):
    """The double's counts and users answers have the keys of the real recorded responses."""
    recorded_counts = orjson.loads((x_api_v2 / "twarc-csv-test-data" / "counts.jsonl").read_bytes().splitlines()[0])
    day = _today() - timedelta(days=1)
    _corpus(api, x_api_v2, day, 30)
    window = {"query": "x", "start_time": day.strftime("%Y-%m-%dT%H:%M:%SZ"), "end_time": (day + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")}
    counts = requests.get(api.url + "/2/tweets/counts/recent", params={**window, "granularity": "day"}, headers={"Authorization": "Bearer t"}, timeout=5).json()
    assert set(counts) == set(recorded_counts) - {"__twarc"} and set(counts["meta"]) == set(recorded_counts["meta"])
    assert set(counts["data"][0]) == set(recorded_counts["data"][0]) and counts["meta"]["total_tweet_count"] == 30
    page = requests.get(api.url + "/2/tweets/search/recent", params={**window, "max_results": "10"}, headers={"Authorization": "Bearer t"}, timeout=5).json()
    recorded_page = _chain(x_api_v2)[0]
    assert set(page) <= set(recorded_page) and set(page["meta"]) == set(recorded_page["meta"])


def test_full_archive_with_context_annotations_asks_for_100(api, x_api_v2):
    """#15.1: search/all caps max_results at 100 with context_annotations (DocNow/twarc#504)."""
    day = _today() - timedelta(days=30)
    _corpus(api, x_api_v2, day, 250)
    pages = _fetch(_live(api, full_archive=True, record_counts=False), day)
    sent = api.requests_to("search_all")
    assert [s.params["max_results"] for s in sent] == ["100", "100", "100"]
    assert "context_annotations" in sent[0].params["tweet.fields"]
    assert [p.posts for p in pages] == [100, 100, 50]


def test_full_archive_without_context_annotations_asks_for_500(api, x_api_v2):
    day = _today() - timedelta(days=30)
    _corpus(api, x_api_v2, day, 250)
    pages = _fetch(_live(api, full_archive=True, context_annotations=False, record_counts=False), day)
    (sent,) = api.requests_to("search_all")
    assert sent.params["max_results"] == "500" and "context_annotations" not in sent.params["tweet.fields"]
    assert [p.posts for p in pages] == [250]
    assert XApiSource.from_env({"X_BEARER_TOKEN": SECRET, "X_QUERY": "q", "X_CONTEXT_ANNOTATIONS": "0"}).context_annotations is False


def test_recent_search_boundaries_at_todays_date(api, x_api_v2):
    """The oldest day recent search can serve (real clock) goes to search/recent and the API
    accepts its start_time; the day before goes to search/all (or fails before any request without
    full-archive access); today's partial day ends at least 10 s before now."""
    now = datetime.now(timezone.utc)
    oldest_recent = (now - timedelta(days=7) + timedelta(minutes=15)).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    if oldest_recent - timedelta(days=1) >= now - timedelta(days=7) + timedelta(minutes=15):
        oldest_recent -= timedelta(days=1)
    for day in (oldest_recent, oldest_recent - timedelta(days=1), _today()):
        _corpus(api, x_api_v2, day, 20, offset=len(api.posts))
    sleeps = Sleeps()
    assert sum(p.posts for p in _fetch(_live(api, sleeps, record_counts=False), oldest_recent)) == 20
    assert [s.endpoint for s in api.seen] == ["search_recent"]
    with pytest.raises(XApiError, match="older than the 7 days"):
        _fetch(_live(api, record_counts=False), oldest_recent - timedelta(days=1))
    assert len(api.seen) == 1  # refused before any request
    _fetch(_live(api, full_archive=True, record_counts=False), oldest_recent - timedelta(days=1))
    assert [s.endpoint for s in api.seen] == ["search_recent", "search_all"]
    today = _fetch(_live(api, record_counts=False), _today())
    end_time = xd.parse_time(api.seen[-1].params["end_time"])
    assert datetime.now(timezone.utc) - end_time >= timedelta(seconds=10) and sum(p.posts for p in today) <= 20


@pytest.mark.slow
def test_a_stalled_server_times_out_and_is_retried(api, x_api_v2):
    """#15.2: a server that accepts and never answers costs one read timeout, then a retry."""
    day = _today() - timedelta(days=1)
    _corpus(api, x_api_v2, day, 30)
    api.fault("stall", "search_recent", seconds=4)
    sleeps = Sleeps()
    started = time.monotonic()
    pages = _fetch(_live(api, sleeps, read_timeout_s=0.5, connect_timeout_s=0.5, record_counts=False), day)
    assert time.monotonic() - started < 3.5  # one 0.5 s timeout, not the 4 s stall
    assert sum(p.posts for p in pages) == 30 and pages[0].retries == 1 and sleeps == [2.0]
    api.fault("stall", "search_recent", seconds=4)
    api.fault("stall", "search_recent", seconds=4)
    with pytest.raises(XApiError, match=r"gave up after 2 failure\(s\).*ReadTimeout") as info:
        _fetch(_live(api, read_timeout_s=0.3, connect_timeout_s=0.3, max_retries=1, record_counts=False), day)
    assert f"{day:%Y-%m-%d} page 1" in str(info.value)
    assert XApiSource.from_env({"X_BEARER_TOKEN": SECRET, "X_QUERY": "q", "X_HTTP_TIMEOUT": "1.5,20"}).read_timeout_s == 20
    assert (XApiSource(bearer_token=SECRET).connect_timeout_s, XApiSource(bearer_token=SECRET).read_timeout_s) == (3.05, 31.0)  # twarc's


@pytest.mark.slow
def test_a_connection_dropped_mid_body_is_retried(api, x_api_v2):
    """#15.3: ChunkedEncodingError (half a body, then hang-up) and ContentDecodingError (a gzip
    body that is not gzip) are retried with the same backoff; no page lost or doubled."""
    day = _today() - timedelta(days=1)
    posts = _corpus(api, x_api_v2, day, 150)
    api.fault("drop", "search_recent")
    api.fault("bad_gzip", "search_recent")
    sleeps = Sleeps()
    pages = _fetch(_live(api, sleeps, record_counts=False), day)
    assert sorted(t["id"] for p in pages for t in orjson.loads(p.body)["data"]) == sorted(p["id"] for p in posts)
    assert pages[0].retries == 2 and sleeps == [2.0, 4.0]


def test_an_error_names_the_apis_problem(api, x_api_v2):
    """#15.4: title, detail and type of the problem JSON, with endpoint, day, page and status."""
    day = _today() - timedelta(days=1)
    _corpus(api, x_api_v2, day, 150)
    forbidden = {
        "client_id": "29424981",
        "detail": "When authenticating requests to the Twitter API v2 endpoints, you must use keys and tokens from a Twitter developer App that is attached to a Project.",
        "registration_url": "https://developer.twitter.com/en/docs/projects/overview",
        "title": "Client Forbidden",
        "required_enrollment": "Appropriate Level of API Access",
        "reason": "client-not-enrolled",
        "type": "https://api.twitter.com/2/problems/client-forbidden",
    }
    source = _live(api, record_counts=False, max_retries=1)
    iterator = source.pages(day, day + timedelta(days=1), LOG)
    next(iterator)
    api.fault("http", "search_recent", status=403, body=forbidden)
    with pytest.raises(XApiError) as info:
        next(iterator)
    message = str(info.value)
    for part in (f"GET /2/tweets/search/recent {day:%Y-%m-%d} page 2", "HTTP 403", "Client Forbidden", forbidden["detail"], forbidden["type"]):
        assert part in message, part
    api.fault("http", "search_recent", status=503, body={"title": "Service Unavailable", "detail": "Service Unavailable", "type": "about:blank"})
    api.fault("http", "search_recent", status=503, body={"title": "Service Unavailable", "detail": "Overloaded, try later", "type": "about:blank"})
    with pytest.raises(XApiError, match=r"page 1: gave up after 2 failure\(s\).*HTTP 503.*Service Unavailable: Overloaded, try later \(type about:blank\)") as info:
        _fetch(_live(api, record_counts=False, max_retries=1), day)
    assert SECRET not in message and SECRET not in str(info.value)


def test_429_with_requests_left_is_the_per_second_throttle(api, x_api_v2):
    """#15.5: remaining > 0 → a short sleep (twarc: 10 s), not until the window resets."""
    day = _today() - timedelta(days=1)
    _corpus(api, x_api_v2, day, 30)
    reset = str(int(time.time()) + 900)
    api.fault("http", "search_recent", status=429, headers={"x-rate-limit-remaining": "17", "x-rate-limit-reset": reset}, body=xd.TOO_MANY)
    sleeps = Sleeps()
    pages = _fetch(_live(api, sleeps, record_counts=False), day)
    assert sleeps == [10.0] and pages[0].rate_limit_wait_s == 10.0 and sum(p.posts for p in pages) == 30
    api.fault("http", "search_recent", status=429, headers={"x-rate-limit-remaining": "0", "x-rate-limit-reset": reset}, body=xd.TOO_MANY)
    sleeps = Sleeps()
    _fetch(_live(api, sleeps, record_counts=False), day)
    assert 890 < sleeps[0] <= 15 * 60 + 2  # the window is used up: until x-rate-limit-reset


def test_a_usage_cap_429_fails_at_once_saying_so(api, x_api_v2):
    """#15.5: the monthly post cap is used up (X's usage-capped problem, remaining still > 0)."""
    day = _today() - timedelta(days=1)
    _corpus(api, x_api_v2, day, 30)
    api.fault("http", "search_recent", status=429, headers={"x-rate-limit-remaining": "39999"}, body=xd.USAGE_CAPPED)
    sleeps = Sleeps()
    with pytest.raises(UsageCapExceeded, match="UsageCapExceeded: Usage cap exceeded: Monthly product cap.*usage cap \\(monthly post cap\\) is used up") as info:
        _fetch(_live(api, sleeps), day)
    assert len(api.seen) == 1 and sleeps == [] and SECRET not in str(info.value)


def test_full_archive_with_user_context_only_fails_before_any_request(api, x_api_v2):
    """#15.6: search/all is app-only: say X_BEARER_TOKEN is needed, send nothing."""
    old_day = _today() - timedelta(days=30)
    yesterday = _today() - timedelta(days=1)
    source = _live(api, bearer_token=None, full_archive=True, **USER_CONTEXT)
    with pytest.raises(XApiError, match="app-only.*X_BEARER_TOKEN") as info:
        list(source.pages(old_day, yesterday + timedelta(days=1), LOG))  # the old day is first; the recent ones too are not fetched
    assert api.seen == [] and "canary" not in str(info.value)
    _corpus(api, x_api_v2, yesterday, 30)
    pages = _fetch(source, yesterday)  # recent search accepts user context; the app-only counts are skipped, not called
    assert sum(p.posts for p in pages) == 30 and [s.auth for s in api.seen] == ["user"]
    assert "X_BEARER_TOKEN" in source.day_metadata()[f"{yesterday:%Y-%m-%d}"]["api_post_count_skipped"]


def _accounts(api, count: int, tweet_count: int = 100) -> list[dict]:
    users = [xd.synthetic_user(str(1000 + i), f"acct{i}", tweet_count) for i in range(count)]
    api.users.update({u["id"]: u for u in users})
    return users


def test_usernames_are_resolved_in_batches_of_100(api):
    """#15.7: GET /2/users/by takes 1-100 usernames."""
    users = _accounts(api, 150)
    day = _today() - timedelta(days=1)
    source = _live(api, mode="timeline", accounts=[u["username"] for u in users[:140]] + [u["id"] for u in users[140:]])
    assert _fetch(source, day) == []
    lookups = [s for s in api.seen if s.endpoint in ("users_by", "users")]
    assert [len(s.params.get("usernames", s.params.get("ids", "")).split(",")) for s in lookups] == [100, 40, 10]
    assert len(api.requests_to("timeline")) == 150


def test_each_timeline_is_fetched_once_per_run_window(api):
    """#15.7: a 3-day run asks each account's timeline once (not once per day); the pages are
    split by day with their includes, every post landed once, each part with __twarc."""
    a, b = _accounts(api, 2)
    first = _today() - timedelta(days=3)
    for i in range(150):  # a: 150 posts over 3 days (two pages), b: 6
        api.posts.append(xd.synthetic_post(10_000 + i, a["id"], first + timedelta(minutes=i * 28)))
    for i in range(6):
        api.posts.append(xd.synthetic_post(20_000 + i, b["id"], first + timedelta(hours=i * 12)))
    source = _live(api, mode="timeline", accounts=[a["username"], b["username"]])
    pages = list(source.pages(first, _today(), LOG))
    calls = api.requests_to("timeline")
    assert [c.path for c in calls] == [f"/2/users/{a['id']}/tweets"] * 2 + [f"/2/users/{b['id']}/tweets"]
    assert calls[0].params["start_time"] == f"{first:%Y-%m-%dT%H:%M:%SZ}" and calls[0].params["max_results"] == "100"
    landed: dict[str, list[str]] = {}
    for page in pages:
        body = orjson.loads(page.body)
        assert {t["created_at"][:10] for t in body["data"]} == {page.day} and body["includes"]["users"]
        assert body["__twarc"]["url"].startswith(api.url + "/2/users/")
        landed.setdefault(page.day, []).extend(t["id"] for t in body["data"])
    want: dict[str, list[str]] = {}
    for post in api.posts:
        want.setdefault(post["created_at"][:10], []).append(post["id"])
    assert {d: sorted(v) for d, v in landed.items()} == {d: sorted(v) for d, v in want.items()}
    assert sum(p.requests for p in pages) == 3  # the cost of a split page is counted once
    assert _learnt(source) == {}  # fewer than 3,200 posts: no limit, no probe
    assert {d: m["posts_read"] for d, m in source.day_metadata().items()} == {d: len(v) for d, v in landed.items()}  # what the cap was charged for


def test_the_3200_post_timeline_limit_is_detected_and_recorded(api, caplog):
    """#15.7: an account with more posts than the timeline endpoint reaches: the days (partly)
    out of reach carry timeline_3200_limit, with a warning; an account whose reach covers the
    window is not flagged. (The double's reach is 30 posts for a test-sized corpus.)"""
    big, covered = _accounts(api, 2, tweet_count=5000)
    api.timeline_reach = 30
    first = _today() - timedelta(days=3)
    days = [f"{first + timedelta(days=i):%Y-%m-%d}" for i in range(3)]
    for i in range(60):  # 20 a day: the 30 most recent reach back into the middle day
        api.posts.append(xd.synthetic_post(30_000 + i, big["id"], first + timedelta(hours=1, minutes=i * 72)))
    for i in range(12):  # every 6 h from the day before the window: 4 before it, 8 in it, all in reach
        api.posts.append(xd.synthetic_post(40_000 + i, covered["id"], first - timedelta(days=1) + timedelta(hours=6 * i + 1)))
    source = _live(api, mode="timeline", accounts=[big["username"], covered["username"]])
    with caplog.at_level(logging.WARNING, logger="test"):
        pages = list(source.pages(first, _today(), LOG))
    label = f"@{big['username']} ({big['id']})"
    assert _learnt(source) == {days[0]: {"timeline_3200_limit": [label]}, days[1]: {"timeline_3200_limit": [label]}}
    # charged: the 38 landed, and the 4 posts before the window the covered account's probe read (on the first day)
    assert sum(m["posts_read"] for m in source.day_metadata().values()) == 30 + 8 + 4
    assert "3,200 most recent" in caplog.text and label in caplog.text
    assert sum(p.posts for p in pages) == 30 + 8
    probes = [s for s in api.requests_to("timeline") if "start_time" not in s.params]
    assert len(probes) == 2 and probes[0].params["end_time"] == f"{first:%Y-%m-%dT%H:%M:%SZ}"
    # a probe that fails does not fail the landed window: the days say the limit was not checked
    source = _live(api, mode="timeline", accounts=[big["username"]], max_retries=0)
    original = source._check_timeline_limit

    def failing_probe(*args, **kwargs):  # the probe is the account's last request: fail it
        api.fault("http", "timeline", status=503, body={"title": "Service Unavailable", "type": "about:blank"})
        return original(*args, **kwargs)

    object.__setattr__(source, "_check_timeline_limit", failing_probe)
    assert sum(p.posts for p in source.pages(first, _today(), LOG)) == 30
    assert set(_learnt(source)) == set(days) and all(v == {"timeline_3200_limit_unchecked": [label]} for v in _learnt(source).values())


def test_pages_carry_twarc_provenance(api, x_api_v2):
    """#18: each page has twarc2's __twarc record: the request URL with its query string and no
    credential, our version, and the retrieval time (ISO 8601 UTC, ms); the rest as received."""
    import re

    from tweet_assets import __version__

    day = _today() - timedelta(days=1)
    posts = _corpus(api, x_api_v2, day, 150)
    before = datetime.now(timezone.utc)
    pages = _fetch(_live(api, record_counts=False), day)
    after = datetime.now(timezone.utc)
    for page, seen in zip(pages, api.requests_to("search_recent")):
        body = orjson.loads(page.body)
        assert list(body) == ["data", "includes", "meta", "__twarc"]
        twarc = body["__twarc"]
        assert twarc["url"] == api.url + seen.url and "start_time=" in twarc["url"] and SECRET not in page.body.decode()
        assert twarc["version"] == f"tweet_assets {__version__}"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", twarc["retrieved_at"])
        stamp = datetime.strptime(twarc["retrieved_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
        assert before - timedelta(milliseconds=1) <= stamp <= after
    assert [t["id"] for p in pages for t in orjson.loads(p.body)["data"]] == [p["id"] for p in sorted(posts, key=lambda p: p["created_at"], reverse=True)]
    assert "next_token=tok-100" in orjson.loads(pages[1].body)["__twarc"]["url"]


def test_tweepy_debug_log_never_shows_the_bearer_token(api, x_api_v2, caplog):
    day = _today() - timedelta(days=1)
    _corpus(api, x_api_v2, day, 10)
    with caplog.at_level(logging.DEBUG, logger="tweepy.client"):
        _fetch(_live(api, record_counts=False), day)
    assert "Authorization" in caplog.text and "Bearer ***" in caplog.text and SECRET not in caplog.text


# --- completeness (#21, part 2): the API's own count per day, and the check on raw_tweets ---


def test_each_search_day_records_the_apis_own_count(api, x_api_v2):
    """counts/recent for a recent day, counts/all for a full-archive day: the same query and
    window as the search, granularity=day, app-only; the count lands in the day's metadata."""
    recent = _today() - timedelta(days=1)
    old = _today() - timedelta(days=30)
    _corpus(api, x_api_v2, recent, 120)
    _corpus(api, x_api_v2, old, 70, offset=120)
    for day, endpoint, n in ((recent, "counts_recent", 120), (old, "counts_all", 70)):
        source = _live(api, full_archive=True)
        _fetch(source, day)
        search = [s for s in api.seen if s.endpoint.startswith("search")][-1]
        (count,) = api.requests_to(endpoint)
        assert count.auth == "app" and count.params["granularity"] == "day"
        assert {k: count.params[k] for k in ("query", "start_time", "end_time")} == {k: search.params[k] for k in ("query", "start_time", "end_time")}
        assert source.day_metadata() == {f"{day:%Y-%m-%d}": {"api_post_count": n, "api_post_count_endpoint": f"GET /2/tweets/{endpoint.replace('_', '/')}", "posts_read": n}}


def test_the_count_is_read_from_the_recorded_response_shape(api, x_api_v2):
    """The counts body recorded by tweepy (hourly buckets, meta.total_tweet_count) is summed."""
    recording = yaml.safe_load((x_api_v2 / "tweepy-cassettes" / "test_client_get_recent_tweets_count.yaml").read_text())
    body = _cassette_body(x_api_v2 / "tweepy-cassettes" / "test_client_get_recent_tweets_count.yaml")
    assert recording["interactions"][0]["request"]["uri"].startswith("https://api.twitter.com/2/tweets/counts/recent")
    api.canned["counts_recent"] = (200, {}, orjson.dumps(body))
    day = _today() - timedelta(days=1)
    source = _live(api)
    _fetch(source, day)
    assert source.day_metadata()[f"{day:%Y-%m-%d}"]["api_post_count"] == sum(b["tweet_count"] for b in body["data"]) == body["meta"]["total_tweet_count"]


def test_a_failed_count_is_recorded_not_fatal(api, x_api_v2):
    day = _today() - timedelta(days=1)
    _corpus(api, x_api_v2, day, 30)
    api.fault("http", "counts_recent", status=503, body={"title": "Service Unavailable", "detail": "later", "type": "about:blank"})
    api.fault("http", "counts_recent", status=503, body={"title": "Service Unavailable", "detail": "later", "type": "about:blank"})
    source = _live(api, max_retries=1)
    assert sum(p.posts for p in _fetch(source, day)) == 30
    (meta,) = source.day_metadata().values()
    assert "api_post_count" not in meta and "HTTP 503" in meta["api_post_count_error"] and SECRET not in meta["api_post_count_error"]


def test_count_tolerance_boundaries():
    from tweet_assets.defs.pipeline.checks import count_mismatches

    days = {
        "2026-11-01": {"posts": 98, "api_post_count": 100},  # 2 off: within max(2, 1)
        "2026-11-02": {"posts": 97, "api_post_count": 100},  # 3 off: out
        "2026-11-03": {"posts": 990, "api_post_count": 1000},  # 1%: within
        "2026-11-04": {"posts": 1011, "api_post_count": 1000},  # over 1%: out (more than counted also warns)
        "2026-11-05": {"posts": 10},  # no count: not compared
    }
    off, without = count_mismatches(days)
    assert off == {"2026-11-02": {"landed": 97, "api_count": 100, "difference": -3}, "2026-11-04": {"landed": 1011, "api_count": 1000, "difference": 11}}
    assert without == ["2026-11-05"]


@pytest.mark.slow
def test_a_day_short_by_one_page_is_caught_by_the_completeness_check(api, x_api_v2, tmp_path, instance, monkeypatch):
    """Two days through Dagster: one whole (80 posts, one page), one whose pagination silently ends
    a page early (200 of 250): raw_posts_match_api_count warns about that day only."""
    from dagster import AssetCheckSeverity, materialize

    from tests.helpers import ALL, resources
    from tweet_assets.defs.pipeline import checks
    from tweet_assets.sources import x_api

    whole, short = _today() - timedelta(days=2), _today() - timedelta(days=1)
    _corpus(api, x_api_v2, whole, 80)
    _corpus(api, x_api_v2, short, 250, offset=80)
    api.short_by_one_page = True
    monkeypatch.setattr(x_api, "_sleep", Sleeps())
    source = XApiSource(bearer_token=SECRET, query="dagster", base_url=api.url)
    days = (f"{whole:%Y-%m-%d}", f"{short:%Y-%m-%d}")
    result = materialize(
        [*ALL, checks.raw_posts_match_api_count], resources=resources(str(tmp_path / "lake"), source), instance=instance,
        tags={"dagster/asset_partition_range_start": days[0], "dagster/asset_partition_range_end": days[1]},
    )
    assert result.success  # a warning, not a failure: the day is still published
    raw = {m.partition: m.metadata for m in result.asset_materializations_for_node("raw_tweets")}
    assert [(raw[d]["posts"].value, raw[d]["api_post_count"].value) for d in days] == [(80, 80), (200, 250)]
    # one evaluation per day (Dagit shows each partition's result): the whole day passes, the short one warns
    evaluations = {e.partition: e for e in result.get_asset_check_evaluations() if e.check_name == "raw_posts_match_api_count"}
    assert sorted(evaluations) == list(days)
    assert evaluations[days[0]].passed and evaluations[days[0]].metadata["api_post_count"].value == 80
    short_day = evaluations[days[1]]
    assert not short_day.passed and short_day.severity == AssetCheckSeverity.WARN
    assert (short_day.metadata["posts_landed"].value, short_day.metadata["api_post_count"].value, short_day.metadata["difference"].value) == (200, 250, -50)
    assert all(SECRET not in str(event) for event in result.all_events)
    import pyarrow.dataset as ds  # the live pages' __twarc reaches every published row (#18)

    table = ds.dataset(str(tmp_path / "lake" / "tweets"), format="parquet", partitioning="hive").to_table(columns=["request_url", "retrieved_at"])
    assert table.num_rows == 280 and table["retrieved_at"].null_count == 0
    assert all(url.startswith(api.url + "/2/tweets/search/recent?") and "start_time=" in url for url in table["request_url"].to_pylist())
