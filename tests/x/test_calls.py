"""Calls that broke on documented answers (#28 points 6-10, #27 point 13), each against the
documented answer served by `responses` (no network) at the spec's host https://api.x.com."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from urllib.parse import parse_qs, urlparse

import pytest
import requests
import responses

from tests.x.test_x_api import SECRET, Clock
from tweet_assets.compliance.api import ComplianceApi, ComplianceJob
from tweet_assets.partitions import day_window
from tweet_assets.sources.x_api import XApiError, XApiSource
from tweet_assets.stream.rules import Rule, RulesError, load_rules, sync_rules
from tweet_assets.stream.service import rules_client

LOG = logging.getLogger("test")
HOST = "https://api.x.com"


# --- 6. compliance polling retries 5xx and dropped connections like the search source
@responses.activate
def test_compliance_poll_retries_503_and_a_dropped_connection():
    url = f"{HOST}/2/compliance/jobs/1460"
    responses.add(responses.GET, url, status=503, json={"title": "Service Unavailable", "status": 503})
    responses.add(responses.GET, url, body=requests.ConnectionError("connection reset by peer"))
    responses.add(responses.GET, url, json={"data": {"id": "1460", "status": "complete", "download_url": "https://storage.example/r"}})
    api = ComplianceApi(bearer_token=SECRET, poll_interval_s=0)
    sleeps: list[float] = []
    job = api.wait(ComplianceJob("1460", "in_progress", "https://storage.example/u", "https://storage.example/r"), LOG, sleep=sleeps.append)
    assert job.status == "complete" and len(responses.calls) == 3
    assert sleeps == [2.0, 4.0]  # the search source's backoff, doubling


# --- 7. stream rules: every page is read
def _rules_server(rules: list[dict], page_size_cap: int = 1000):
    """GET rules pages by ``pagination_token``; POST records add/delete bodies."""
    posts: list[dict] = []

    def get(request):
        query = parse_qs(urlparse(request.url).query)
        size = min(int(query.get("max_results", ["1000"])[0]), page_size_cap)
        start = int(query.get("pagination_token", ["0"])[0])
        page = rules[start : start + size]
        meta = {"result_count": len(page), "sent": "2026-12-01T00:00:00.000Z"}
        if start + size < len(rules):
            meta["next_token"] = str(start + size)
        return 200, {}, json.dumps({"data": page, "meta": meta})

    def post(request):
        body = json.loads(request.body)
        posts.append({"dry_run": "dry_run=true" in request.url, **body})
        for added in body.get("add", []):
            if any(r["value"] == added["value"] for r in rules):
                return 400, {}, json.dumps({"errors": [{"title": "DuplicateRule", "value": added["value"]}]})
        return 200, {}, json.dumps({"meta": {"summary": {}}})

    responses.add_callback(responses.GET, f"{HOST}/2/tweets/search/stream/rules", callback=get)
    responses.add_callback(responses.POST, f"{HOST}/2/tweets/search/stream/rules", callback=post)
    return posts


@responses.activate
def test_rules_sync_reads_every_page_of_rules():
    """1,002 rules: a configured rule on page 2 is not added again; an owned rule on page 2 that
    is no longer configured is deleted."""
    rules = [{"id": str(i), "value": f"foreign {i}", "tag": f"other:{i}"} for i in range(1000)]
    rules += [{"id": "1000", "value": "cats", "tag": "tweet_assets:cats"}, {"id": "1001", "value": "dogs", "tag": "tweet_assets:dogs"}]
    posts = _rules_server(rules)
    sync_rules(rules_client(SECRET, HOST), [Rule("cats", "tweet_assets:cats")], LOG)
    assert not any("add" in p for p in posts)  # cats is active (page 2): no DuplicateRule
    assert [p["delete"]["ids"] for p in posts] == [["1001"], ["1001"]]  # dry run, then applied
    gets = [c.request.url for c in responses.calls if c.request.method == "GET"]
    assert any("pagination_token=1000" in u for u in gets)


# --- #27 point 13: hashtag rules parse; zero rules never delete without an explicit prune
def test_hashtag_rules_in_line_format_parse():
    rules = load_rules("# the app's rules\n#dagster\t#dagster posts\n#DataEngineering lang:en\n\ncats\n", "tweet_assets:")
    assert [r.value for r in rules] == ["#dagster", "#DataEngineering lang:en", "cats"]
    assert rules[0].tag == "tweet_assets:#dagster posts"


@responses.activate
def test_zero_configured_rules_delete_nothing_without_prune_to_empty():
    rules = [{"id": "7", "value": "#dagster", "tag": "tweet_assets:#dagster"}]
    posts = _rules_server(rules)
    with pytest.raises(RulesError, match="zero rules.*TWEET_ASSETS_STREAM_PRUNE_TO_EMPTY=1"):
        sync_rules(rules_client(SECRET, HOST), [], LOG)
    assert posts == []  # nothing sent, not even a dry run
    sync_rules(rules_client(SECRET, HOST), [], LOG, prune_to_empty=True)
    assert [p["delete"]["ids"] for p in posts] == [["7"], ["7"]]


# --- 8. counts/recent follows meta.next_token
@responses.activate
def test_counts_recent_follows_next_token():
    post = {"id": "1", "text": "x", "created_at": "2021-06-26T10:00:00.000Z"}
    responses.add(responses.GET, f"{HOST}/2/tweets/search/recent", json={"data": [post], "meta": {"result_count": 1}})
    counts = {
        None: {"data": [{"start": "2021-06-26T00:00:00.000Z", "end": "2021-06-26T12:00:00.000Z", "tweet_count": 30}], "meta": {"total_tweet_count": 30, "next_token": "page2"}},
        "page2": {"data": [{"start": "2021-06-26T12:00:00.000Z", "end": "2021-06-27T00:00:00.000Z", "tweet_count": 12}], "meta": {"total_tweet_count": 12}},
    }
    seen = []

    def count(request):
        query = parse_qs(urlparse(request.url).query)
        seen.append(query)
        return 200, {}, json.dumps(counts[query.get("next_token", [None])[0]])

    responses.add_callback(responses.GET, f"{HOST}/2/tweets/counts/recent", callback=count)
    clock = Clock(datetime(2021, 6, 27, 12, tzinfo=timezone.utc))
    source = XApiSource(bearer_token=SECRET, query="x").with_clock(clock.sleep, clock.now)
    list(source.pages(*day_window("2021-06-26"), LOG))
    assert source.day_metadata()["2021-06-26"]["api_post_count"] == 42
    assert [q.get("next_token") for q in seen] == [None, ["page2"]] and not any("pagination_token" in q for q in seen)


# --- 9. user timelines before 2010-11-06 are refused before any request, naming the rule
@responses.activate
def test_timeline_days_before_2010_11_06_are_refused_naming_the_rule():
    clock = Clock(datetime(2021, 6, 27, 12, tzinfo=timezone.utc))
    source = XApiSource(bearer_token=SECRET, mode="timeline", accounts=["Twitter"]).with_clock(clock.sleep, clock.now)
    with pytest.raises(XApiError, match="before 2010-11-06.*on or after 2010-11-06T00:00:00Z") as info:
        list(source.pages(*day_window("2009-06-01"), LOG))
    assert "full-archive search" in str(info.value)
    assert len(responses.calls) == 0


# --- 10. the spec's host by default; X_API_BASE_URL still overrides
@responses.activate
def test_default_host_is_the_specs_and_x_api_base_url_overrides():
    responses.add(responses.GET, f"{HOST}/2/tweets/search/recent", json={"meta": {"result_count": 0}})
    clock = Clock(datetime(2021, 6, 27, 12, tzinfo=timezone.utc))
    source = XApiSource(bearer_token=SECRET, query="x", record_counts=False).with_clock(clock.sleep, clock.now)
    list(source.pages(*day_window("2021-06-26"), LOG))
    assert responses.calls[0].request.url.startswith("https://api.x.com/2/tweets/search/recent?")
    env = {"X_BEARER_TOKEN": SECRET, "X_QUERY": "x", "X_API_BASE_URL": "http://127.0.0.1:9"}
    assert XApiSource.from_env(env).base_url == "http://127.0.0.1:9"
    from tweet_assets.settings import compliance_api_from_env

    assert compliance_api_from_env(env).base_url == "http://127.0.0.1:9"
    assert ComplianceApi(bearer_token=SECRET).base_url == HOST


# --- #28 point 4: a retweet's media (its original's) is asked for
@responses.activate
def test_search_and_stream_ask_for_the_media_of_retweets():
    from tweet_assets.x.fields import stream_params

    responses.add(responses.GET, f"{HOST}/2/tweets/search/recent", json={"meta": {"result_count": 0}})
    clock = Clock(datetime(2021, 6, 27, 12, tzinfo=timezone.utc))
    list(XApiSource(bearer_token=SECRET, query="x", record_counts=False, vocabulary="tweets").with_clock(clock.sleep, clock.now).pages(*day_window("2021-06-26"), LOG))
    expansions = parse_qs(urlparse(responses.calls[0].request.url).query)["expansions"][0].split(",")
    assert "referenced_tweets.id.attachments.media_keys" in expansions
    assert "referenced_tweets.id.attachments.media_keys" in stream_params()["expansions"].split(",")


# --- #28 point 5: the public fields the spec offers are requested, each a column or LEFT_RAW with a reason
NEW_POST_FIELDS = ("article", "card_uri", "community_id", "display_text_range", "media_metadata", "scopes", "suggested_source_links")
NEW_USER_FIELDS = ("affiliation", "most_recent_tweet_id", "parody", "profile_banner_url", "subscription_type", "verified_followers_count")
USER_CONTEXT_ONLY = ("non_public_metrics", "organic_metrics", "promoted_metrics", "confirmed_email", "connection_status", "receives_your_dm", "subscription", "is_identity_verified")


def test_public_fields_are_requested_and_each_is_a_column_or_left_raw():
    from tweet_assets.schema import LEFT_RAW, is_left_raw, mapped_source_paths
    from tweet_assets.x.fields import FIELDS, stream_params

    tweets = FIELDS["tweets"].post_params()
    assert set(NEW_POST_FIELDS) <= set(tweets["tweet.fields"].split(",")) and set(NEW_USER_FIELDS) <= set(tweets["user.fields"].split(","))
    assert {"attachments.media_source_tweet", "entities.note.mentions.username"} <= set(stream_params()["expansions"].split(","))
    assert set(NEW_POST_FIELDS) <= set(FIELDS["posts"].post_params()["post.fields"].split(","))
    mapped = mapped_source_paths()
    for path in [f"tweet.{f}" for f in NEW_POST_FIELDS] + [f"user.{f}" for f in NEW_USER_FIELDS]:
        assert path in mapped or (is_left_raw(path) and LEFT_RAW[path].strip()), path
    for vocabulary in FIELDS.values():  # the owner's user context only: never asked for (docs/x-api.md)
        asked = set(",".join(vocabulary.post_params().values()).split(","))
        assert not asked & set(USER_CONTEXT_ONLY)
