"""Contract tests from X's own OpenAPI specs (#28 point 3): every request the search/timeline
source, the filtered-stream consumer (and its rules sync) and the batch compliance client send is
checked against the spec of its vocabulary (``tweets`` → 2.159, ``posts`` → 2.167; the stream keeps
the tweet names in both) by :mod:`tests.x.spec_contract`. The project's double
(``tests/x_api_double.py``) keeps the rules neither spec states; two of them are checked here too
(search/all ``max_results`` ≤ 100 with ``context_annotations``; ``end_time`` ≥ 10 s old)."""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from tests.x.spec_contract import VERSIONS, spec, spec_path
from tests.x.test_x_api import SECRET, Clock
from tweet_assets.partitions import day_window
from tweet_assets.sources.x_api import XApiSource

LOG = logging.getLogger("test")
ANY = re.compile(r"https://api\.x\.com/.*")
NOW = datetime(2021, 6, 28, 12, tzinfo=timezone.utc)

pytestmark = pytest.mark.skipif(
    not all(spec_path(v).exists() for v in VERSIONS.values()),
    reason="X's OpenAPI specs are not in ../shared/x-api-v2/openapi/ (openapi-2.159.json, openapi-2.167.json): the contract cannot be checked",
)


def _answer(request):
    """A documented answer per path, enough for the source to go on to its next request."""
    path = urlsplit(request.url).path
    user = {"id": "12", "username": "Twitter", "created_at": "2007-02-20T14:35:54.000Z", "public_metrics": {"tweet_count": 15000}}
    if path in ("/2/users/by", "/2/users"):
        ids = parse_qs(urlsplit(request.url).query).get("ids", [""])[0]
        return 200, {}, json.dumps({"data": [{**user, "id": ids or "12", "username": "Twitter" if not ids else "jack"}]})
    if path == "/2/usage/tweets":  # X's documented example answer (numbers as strings)
        return 200, {}, json.dumps({"data": {"cap_reset_day": 10, "project_cap": "5000000000", "project_id": "1369785403853424", "project_usage": "43435"}})
    if "/counts/" in path:
        return 200, {}, json.dumps({"data": [{"start": "2021-06-26T00:00:00.000Z", "end": "2021-06-27T00:00:00.000Z", "tweet_count": 1}], "meta": {"total_tweet_count": 1}})
    if path.startswith("/2/compliance/jobs"):
        job = {"id": "1460", "status": "complete", "upload_url": "https://storage.example/u?sig=1", "download_url": "https://storage.example/d?sig=1"}
        return 200, {}, json.dumps({"data": job})
    if path == "/2/tweets/search/stream/rules":
        if request.method == "GET":
            return 200, {}, json.dumps({"data": [{"id": "1", "value": "dogs", "tag": "tweet_assets:dogs"}], "meta": {"result_count": 1}})
        return 200, {}, json.dumps({"meta": {"summary": {}}})
    if path == "/2/tweets/search/stream":
        return 200, {}, ""
    query = parse_qs(urlsplit(request.url).query)
    day = query.get("start_time", ["2021-06-26"])[0][:10]
    return 200, {}, json.dumps({"data": [{"id": "1", "text": "t", "created_at": f"{day}T10:00:00.000Z"}], "meta": {"result_count": 1}})


def _serve():
    for method in (responses.GET, responses.POST, responses.DELETE):
        responses.add_callback(method, ANY, callback=_answer)


def _violations(version: str) -> list[str]:
    found = []
    for call in responses.calls:
        request = call.request
        body = request.body if request.method == "POST" else None
        found += spec(version).violations(request.method, request.url, dict(request.headers), body.encode() if isinstance(body, str) else body)
    return found


def _source_requests(vocabulary: str, **auth) -> None:
    clock = Clock(NOW)
    settings = dict(vocabulary=vocabulary, max_pages_per_day=1)
    search = XApiSource(query="#dagster lang:en", full_archive=True, **auth, **settings).with_clock(clock.sleep, clock.now)
    list(search.pages(*day_window("2021-06-26"), LOG))  # recent search + counts/recent
    list(search.pages(*day_window("2021-06-01"), LOG))  # full archive + counts/all
    no_ca = XApiSource(query="dagster", full_archive=True, context_annotations=False, record_counts=False, **auth, **settings).with_clock(clock.sleep, clock.now)
    list(no_ca.pages(*day_window("2021-06-01"), LOG))  # search/all with 500-post pages
    timeline = XApiSource(mode="timeline", accounts=["Twitter", "12"], **{**settings, "max_pages_per_day": None}, **auth).with_clock(clock.sleep, clock.now)
    list(timeline.pages(*day_window("2021-06-26"), LOG))  # users/by, users, users/:id/tweets, the 3,200 probe


@pytest.mark.parametrize("vocabulary", ["tweets", "posts"])
@responses.activate
def test_every_source_request_conforms_to_its_vocabularys_spec(vocabulary):
    _serve()
    _source_requests(vocabulary, bearer_token=SECRET)
    paths = {urlsplit(c.request.url).path for c in responses.calls}
    assert {"/2/tweets/search/recent", "/2/tweets/search/all", "/2/tweets/counts/recent", "/2/tweets/counts/all", "/2/users/by", "/2/users", "/2/users/12/tweets"} <= paths
    assert _violations(VERSIONS[vocabulary]) == []
    for call in responses.calls:  # the double's own rules, which neither spec states
        query = parse_qs(urlsplit(call.request.url).query)
        if call.request.url.startswith("https://api.x.com/2/tweets/search/all") and "context_annotations" in ",".join(query.get("tweet.fields", query.get("post.fields", [""]))):
            assert int(query["max_results"][0]) <= 100
        if "end_time" in query:
            assert datetime.fromisoformat(query["end_time"][0].replace("Z", "+00:00")) <= NOW - timedelta(seconds=10)


@responses.activate
def test_user_context_requests_conform_where_the_spec_allows_user_context():
    _serve()
    clock = Clock(NOW)
    auth = dict(consumer_key="ck-canary", consumer_secret="cs-canary", access_token="at-canary", access_token_secret="as-canary")
    list(XApiSource(mode="timeline", accounts=["Twitter"], vocabulary="posts", **auth).with_clock(clock.sleep, clock.now).pages(*day_window("2021-06-26"), LOG))
    list(XApiSource(query="dagster", vocabulary="posts", **auth).with_clock(clock.sleep, clock.now).pages(*day_window("2021-06-26"), LOG))
    assert all(c.request.headers["Authorization"].startswith("OAuth ") for c in responses.calls)
    assert _violations("2.167") == []


@responses.activate
def test_the_other_vocabulary_is_rejected_by_each_spec():
    """The check bites: tweets-named requests break 2.167, posts-named ones break 2.159."""
    _serve()
    _source_requests("tweets", bearer_token=SECRET)
    against_167 = _violations("2.167")
    assert any("unknown query parameter 'tweet.fields'" in v for v in against_167)
    responses.calls.reset()
    _source_requests("posts", bearer_token=SECRET)
    assert any("unknown query parameter 'post.fields'" in v for v in _violations("2.159"))
    bad = spec("2.159").violations("GET", "https://api.x.com/2/tweets/search/recent?query=x&max_results=101&expansions=referenced_posts", {"Authorization": "Bearer t"})
    assert any("101 outside" in v for v in bad) and any("referenced_posts" in v for v in bad)
    assert spec("2.159").violations("GET", "https://api.x.com/2/tweets/search/all?query=x", {"Authorization": "OAuth oauth_consumer_key=x"})  # app-only


@pytest.mark.parametrize("version", ["2.159", "2.167"])
@responses.activate
def test_stream_and_rules_requests_conform_to_both_specs(version, tmp_path):
    from tweet_assets.lake.store import LocalLake
    from tweet_assets.stream.consumer import StreamConsumer
    from tweet_assets.stream.rules import Rule, sync_rules
    from tweet_assets.stream.segments import SegmentWriter
    from tweet_assets.stream.service import rules_client

    _serve()
    sync_rules(rules_client(SECRET), [Rule("#dagster", "tweet_assets:#dagster")], LOG)  # GET, dry runs, delete + add
    writer = SegmentWriter(LocalLake(str(tmp_path / "lake")), str(tmp_path / "spool"))
    StreamConsumer(SECRET, writer, max_connections=1, sleep=lambda s: None).run()
    methods = {(c.request.method, urlsplit(c.request.url).path) for c in responses.calls}
    assert {("GET", "/2/tweets/search/stream"), ("GET", "/2/tweets/search/stream/rules"), ("POST", "/2/tweets/search/stream/rules")} <= methods
    assert _violations(version) == []


@pytest.mark.parametrize("version", ["2.159", "2.167"])
@responses.activate
def test_compliance_requests_conform_to_both_specs(version):
    from tweet_assets.compliance.api import ComplianceApi

    _serve()
    api = ComplianceApi(bearer_token=SECRET, poll_interval_s=0)
    job = api.create("tweet_assets 2021-06-26")
    api.wait(job, LOG, sleep=lambda s: None)
    assert [c.request.method for c in responses.calls] == ["POST", "GET"]
    assert _violations(version) == []


@pytest.mark.parametrize("version", ["2.159", "2.167"])
@responses.activate
def test_budget_requests_conform_to_both_specs(version):
    """#38 point 6: the guard's and ``tweet-assets plan``'s requests (usage, and counts over a
    window of full-archive and recent days) against each spec; the check bites on a wrong value."""
    _serve()
    clock = Clock(NOW)
    source = XApiSource(query="#dagster lang:en", full_archive=True, bearer_token=SECRET, vocabulary=VOCABULARY_OF[version]).with_clock(clock.sleep, clock.now)
    plan = source.spend_plan(datetime(2021, 5, 20, tzinfo=timezone.utc), datetime(2021, 6, 28, tzinfo=timezone.utc), LOG)
    assert plan.usage.project_cap == 5_000_000_000 and plan.usage.cap_reset_day == 10
    assert {urlsplit(c.request.url).path for c in responses.calls} == {"/2/usage/tweets", "/2/tweets/counts/all", "/2/tweets/counts/recent"}
    assert _violations(version) == []
    usage = [c.request.url for c in responses.calls if "/usage/" in c.request.url][0]
    bearer = {"Authorization": f"Bearer {SECRET}"}
    assert spec(version).violations("GET", usage, bearer) == []
    assert any("91 outside" in v for v in spec(version).violations("GET", usage.replace("days=30", "days=91"), bearer))
    assert any("'monthly_cap' is not one of the spec's enum" in v for v in spec(version).violations("GET", usage.replace("project_id", "monthly_cap"), bearer))
    assert spec(version).violations("GET", usage, {"Authorization": 'OAuth oauth_consumer_key="k"'})  # app-only


VOCABULARY_OF = {v: k for k, v in VERSIONS.items()}


@pytest.mark.parametrize("version", ["2.159", "2.167"])
def test_the_doubles_usage_and_counts_answers_are_shaped_like_the_spec(x_api_double, version):
    """The X API double answers usage and counts as the spec's response schemas say: 2.167 with
    numbers as strings and post_count, 2.159 with integers and tweet_count; with missing fields
    and a cap already exceeded too."""
    import requests as http

    api = x_api_double
    api.reset()
    try:
        now = datetime.now(timezone.utc)
        api.usage_as_integers = version == "2.159"
        api.counts_vocabulary = VOCABULARY_OF[version]
        api.posts += [{"id": str(i), "text": "t", "created_at": (now - timedelta(days=2, hours=i)).strftime("%Y-%m-%dT%H:%M:%S.000Z")} for i in range(5)]
        bearer = {"Authorization": f"Bearer {SECRET}"}
        answers = []
        for cap, used in ((1_000_000, 12), (1000, 1200), (None, 7)):  # within, exceeded, no cap (enterprise)
            api.post_cap, api.posts_used = cap, used
            answers.append(http.get(f"{api.url}/2/usage/tweets", params={"days": "30", "usage.fields": "cap_reset_day,daily_project_usage,project_cap,project_id,project_usage"}, headers=bearer, timeout=10).json())
        answers.append(http.get(f"{api.url}/2/usage/tweets", params={"usage.fields": "project_usage"}, headers=bearer, timeout=10).json())  # fields left out
        for body in answers:
            assert spec(version).response_violations("GET", "/2/usage/tweets", 200, body) == [], body
        assert "project_cap" not in answers[2]["data"] and set(answers[3]["data"]) == {"project_usage"}
        window = {"query": "x", "granularity": "day", "start_time": (now - timedelta(days=5)).strftime("%Y-%m-%dT00:00:00Z"), "end_time": (now - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")}
        counts = http.get(f"{api.url}/2/tweets/counts/recent", params=window, headers=bearer, timeout=10).json()
        assert spec(version).response_violations("GET", "/2/tweets/counts/recent", 200, counts) == [], counts
        assert sum(b.get("tweet_count", b.get("post_count", 0)) for b in counts["data"]) == 5
        wrong = {"data": {"project_cap": 1000 if version == "2.167" else "1000"}}  # the other spec's shape: the check bites
        assert spec(version).response_violations("GET", "/2/usage/tweets", 200, wrong)
        assert api.violations == []
    finally:
        api.reset()
