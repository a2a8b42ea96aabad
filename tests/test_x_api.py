"""The live source against recorded HTTP: tweepy's own cassettes (vcrpy), and twarc's recorded
5-page chain served by `responses`, with rate limits, server errors and a bad credential.
No network: every request is answered from the recordings.
"""

from __future__ import annotations

import gzip
import json
import logging
from datetime import datetime, timezone
from urllib.parse import parse_qs, urlparse

import orjson
import pytest
import responses
import yaml

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
        ("test_client_get_users_tweets.yaml", {"mode": "timeline", "accounts": ["783214"]}, "2022-10-07"),
    ],
)
def test_tweepy_cassettes_replay_through_the_real_client(x_api_v2, cassette, settings, day):
    vcr = pytest.importorskip("vcr")
    path = x_api_v2 / "tweepy-cassettes" / cassette
    recorder = vcr.VCR(decode_compressed_response=True, record_mode="none", match_on=["method", "path"])
    clock = Clock(datetime(2022, 10, 8, 12, tzinfo=timezone.utc))
    source = XApiSource(bearer_token=SECRET, max_pages_per_day=1, **settings).with_clock(clock.sleep, clock.now)
    with recorder.use_cassette(str(path)):
        pages = list(source.pages(*day_window(day), LOG))
    assert len(pages) == 1
    got = orjson.loads(pages[0].body)
    want = _cassette_body(path)
    assert got["data"] == want["data"] and got["meta"] == want["meta"]  # untouched
    assert pages[0].posts == len(want["data"]) and pages[0].requests == 1


CHAIN_URL = "https://api.twitter.com/2/tweets/search/recent"


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


@responses.activate
def test_paginator_follows_every_next_token(x_api_v2):
    pages = _chain(x_api_v2)
    callback, seen = _serve_chain(pages)
    responses.add_callback(responses.GET, CHAIN_URL, callback=callback)
    clock = Clock(datetime(2021, 6, 27, 12, tzinfo=timezone.utc))
    source = XApiSource(bearer_token=SECRET, query="blacklivesmatter").with_clock(clock.sleep, clock.now)
    got = list(source.pages(*day_window("2021-06-26"), LOG))
    assert len(got) == 5 and seen == [None] + [p["meta"]["next_token"] for p in pages[:4]]
    assert sum(p.posts for p in got) == 500
    assert [orjson.loads(p.body) for p in got] == pages  # includes (users 857, tweets 291, media 106, places 3) intact
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
    source = XApiSource(bearer_token=SECRET, query="blacklivesmatter", rate_limit_margin_s=2).with_clock(clock.sleep, clock.now)
    got = list(source.pages(*day_window("2021-06-26"), LOG))
    assert [orjson.loads(p.body) for p in got] == pages and len(seen) == 5
    assert clock.sleeps[0] == pytest.approx(39.0)  # until x-rate-limit-reset, plus the margin
    assert clock.sleeps[1:] == [2.0, 4.0]  # connection reset, then 503: growing backoff
    assert got[0].retries == 3 and got[0].requests == 4 and got[0].rate_limit_wait_s == pytest.approx(39.0)


@responses.activate
def test_repeated_503_backs_off_then_fails_clearly(x_api_v2):
    pages = _chain(x_api_v2)
    callback, _ = _serve_chain(pages)
    responses.add_callback(responses.GET, CHAIN_URL, callback=callback)
    clock = Clock(datetime(2021, 6, 27, 12, tzinfo=timezone.utc))
    source = XApiSource(bearer_token=SECRET, query="blacklivesmatter", max_retries=3).with_clock(clock.sleep, clock.now)
    iterator = source.pages(*day_window("2021-06-26"), LOG)
    next(iterator)  # page 1 fine
    responses.replace(responses.GET, CHAIN_URL, status=503, json={"title": "Service Unavailable"})
    with pytest.raises(XApiError) as info:
        next(iterator)
    message = str(info.value)
    assert "GET /2/tweets/search/recent page 2" in message and "HTTP 503" in message
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
    clock = Clock(datetime(2021, 6, 27, 12, tzinfo=timezone.utc))
    monkeypatch.setattr(x_api, "_utcnow", clock.now)  # Dagster copies resources: patch the module
    monkeypatch.setattr(x_api, "_sleep", clock.sleep)
    source = XApiSource(bearer_token=SECRET, query="blacklivesmatter")
    result = run(resources(s3_lake, source), "2021-06-26", instance=instance)
    assert result.success and len(seen) == 5 and clock.sleeps
    raw_meta = result.asset_materializations_for_node("raw_tweets")[0].metadata
    assert raw_meta["posts"].value == 500 and raw_meta["api_requests"].value == 6 and raw_meta["api_retries"].value == 1
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
    clock = Clock(datetime(2021, 6, 27, 12, tzinfo=timezone.utc))
    monkeypatch.setattr(x_api, "_utcnow", clock.now)
    monkeypatch.setattr(x_api, "_sleep", clock.sleep)
    result = run(resources(str(tmp_path / "lake"), XApiSource(bearer_token=SECRET, query="blacklivesmatter", max_retries=2)), "2021-06-26", instance=instance, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = str(failure.event_specific_data.error)
    assert "GET /2/tweets/search/recent page 2" in message and "HTTP 503" in message and "gave up after 3 failure(s)" in message
    assert calls["n"] == 4 and clock.sleeps == [2.0, 4.0]
    written = [p for p in (tmp_path / "lake").rglob("*") if p.is_file()]
    assert written == []  # nothing partial landed or published
