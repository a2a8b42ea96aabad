"""The two vocabularies of the X API v2 contract (#28 points 1-2): spec 2.159's tweet names and
spec 2.167's post names, in requests (X_API_VOCABULARY, auto's one switch) and in answers (read
into the same columns; landed as received)."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from urllib.parse import parse_qs, urlparse

import orjson
import pyarrow.compute as pc
import pytest
import responses
from polars.testing import assert_frame_equal

from tests.helpers import post_page_files
from tests.x.test_x_api import SECRET, Clock, _chain
from tweet_assets.partitions import day_window
from tweet_assets.sources.x_api import XApiError, XApiSource
from tweet_assets.transform.flatten import flatten_day
from tweet_assets.transform.pages import decode_pages

LOG = logging.getLogger("test")
SEARCH = "https://api.x.com/2/tweets/search/recent"
COUNTS = "https://api.x.com/2/tweets/counts/recent"
USAGE = "https://api.x.com/2/usage/tweets"


# --- answers: post names (2.167) → the same rows as tweet names (2.159)
def _rename(obj: dict, old: str, new: str) -> None:
    if isinstance(obj, dict) and old in obj:
        obj[new] = obj.pop(old)


def _post(item: dict) -> None:
    for old, new in (("referenced_tweets", "referenced_posts"), ("note_tweet", "note_post"), ("edit_history_tweet_ids", "edit_history_post_ids")):
        _rename(item, old, new)
    _rename(item.get("public_metrics"), "retweet_count", "repost_count")


def _user(item: dict) -> None:
    for old, new in (("pinned_tweet_id", "pinned_post_id"), ("most_recent_tweet_id", "most_recent_post_id")):
        _rename(item, old, new)
    _rename(item.get("public_metrics"), "tweet_count", "post_count")


def in_post_names(page: dict) -> dict:
    """A 2.159 page renamed per spec 2.167 (schemas Post, User, Expansions, GetPostsCounts*)."""
    data = page.get("data")
    for item in data if isinstance(data, list) else [data] if isinstance(data, dict) else []:
        _post(item)
    includes = page.get("includes") or {}
    _rename(includes, "tweets", "posts")
    for item in includes.get("posts") or []:
        _post(item)
    for item in includes.get("users") or []:
        _user(item)
    return page


def _lines(paths, rename):
    for path in paths:
        for number, line in enumerate(path.read_bytes().splitlines(), start=1):
            if line.strip():
                try:
                    page = orjson.loads(line)
                except orjson.JSONDecodeError:
                    yield f"{path.name}:{number}", line
                    continue
                yield f"{path.name}:{number}", orjson.dumps(rename(page)) if isinstance(page, dict) and rename else line


def test_post_named_pages_publish_the_same_rows_column_for_column(x_api_v2):
    files = post_page_files(x_api_v2)
    renamed = [line for _, line in _lines(files, in_post_names)]
    assert sum(b'"referenced_posts"' in line for line in renamed) > 10 and not any(b'"referenced_tweets"' in line for line in renamed)
    tweets = flatten_day(_lines(files, None))
    posts = flatten_day(_lines(files, in_post_names))
    assert tweets.height > 2_000
    for column in ("replied_to_id", "retweeted_id", "quoted_id", "retweet_count", "author_tweet_count", "has_note_tweet", "edit_history_tweet_ids", "author_pinned_tweet_id"):
        assert tweets.frame.get_column(column).null_count() < tweets.height, column  # the data is there to lose
    assert tweets.frame.get_column("is_retweet").sum() > 0
    assert_frame_equal(posts.frame, tweets.frame)
    assert posts.stats == tweets.stats and len(posts.quarantined) == len(tweets.quarantined)


def test_post_named_pages_decode_in_bulk_to_the_same_table(x_api_v2):
    """The bulk decoder reads both vocabularies in one pass (pages.DECODE_SCHEMA) and folds the
    post names into the tweet names: the same Arrow table as the tweet-named pages, on the fast path."""
    lines = _lines(post_page_files(x_api_v2), None)
    good = [(location, line) for location, line in lines if _parses(line) and decode_pages([line], [location]).fast_path]  # no coercion needed
    tweets = decode_pages([line for _, line in good], [location for location, _ in good])
    posts = decode_pages([orjson.dumps(in_post_names(orjson.loads(line))) for _, line in good], [location for location, _ in good])
    assert tweets.fast_path and posts.fast_path and tweets.table.num_rows == len(good) > 20
    assert posts.table.equals(tweets.table)
    posts_data = pc.list_flatten(tweets.table.column("data")).combine_chunks()
    for path in ("referenced_tweets", "edit_history_tweet_ids"):  # the data is there to lose (note_post: the next test)
        assert posts_data.field(path).null_count < len(posts_data), path


def test_a_page_with_both_names_keeps_the_tweet_ones_and_joins_both_includes_lists():
    """Where a page carries a key in both vocabularies the tweet name's value stays (as
    vocabulary.to_tweet_names renames only an absent key); ``includes.tweets`` and ``includes.posts``
    of one page are joined, in that order. Both in bulk and one page at a time."""
    page = {
        "data": [
            {"id": "1", "text": "a", "referenced_tweets": [{"type": "quoted", "id": "2"}], "referenced_posts": [{"type": "quoted", "id": "9"}]},
            {"id": "3", "text": "b", "referenced_posts": [{"type": "replied_to", "id": "2"}], "public_metrics": {"repost_count": 4}},
        ],
        "includes": {"tweets": [{"id": "2", "text": "c"}], "posts": [{"id": "5", "text": "d"}], "users": [{"id": "7", "pinned_post_id": "1", "public_metrics": {"post_count": 8}}]},
    }
    plain = {"data": [{"id": "6", "text": "e", "note_post": {"text": "long"}}]}
    expected = [
        {"id": "1", "referenced_tweets": [{"type": "quoted", "id": "2"}]},
        {"id": "3", "referenced_tweets": [{"type": "replied_to", "id": "2"}]},
    ]
    lines = [orjson.dumps(page), orjson.dumps(plain)]
    for batch in (decode_pages(lines, ["a:1", "a:2"]), decode_pages(lines + [b"{"], ["a:1", "a:2", "a:3"])):
        rows = batch.table.to_pylist()
        assert [{"id": p["id"], "referenced_tweets": p["referenced_tweets"]} for p in rows[0]["data"]] == expected
        assert rows[0]["data"][1]["public_metrics"]["retweet_count"] == 4
        assert [t["id"] for t in rows[0]["includes"]["tweets"]] == ["2", "5"]
        assert rows[0]["includes"]["users"][0]["pinned_tweet_id"] == "1" and rows[0]["includes"]["users"][0]["public_metrics"]["tweet_count"] == 8
        assert rows[1]["data"][0]["note_tweet"]["text"] == "long"
    assert decode_pages(lines, ["a:1", "a:2"]).fast_path


def _parses(line: bytes) -> bool:
    try:
        return line[:1] == b"{" and isinstance(orjson.loads(line), dict)
    except orjson.JSONDecodeError:
        return False


# --- requests: X_API_VOCABULARY and auto's single switch
def _posts_only_server(pages, refusals: list):
    """Search that speaks 2.167 only: tweet.fields (or a tweet-only expansion) → 400 naming it."""
    by_token = {None: pages[0]}
    for previous, page in zip(pages, pages[1:]):
        by_token[previous["meta"]["next_token"]] = page

    def callback(request):
        query = parse_qs(urlparse(request.url).query)
        if "tweet.fields" in query:
            refusals.append(request.url)
            return 400, {}, json.dumps({
                "errors": [{"parameters": {"tweet.fields": query["tweet.fields"]}, "message": "The query parameter [tweet.fields] is not one of [query,start_time,end_time,post.fields,expansions]"}],
                "title": "Invalid Request", "detail": "One or more parameters to your request was invalid.", "type": "https://api.twitter.com/2/problems/invalid-request",
            })
        assert "referenced_posts" in query["expansions"][0] and "note_post" in query["post.fields"][0]
        return 200, {}, orjson.dumps(in_post_names(json.loads(json.dumps(by_token[query.get("next_token", [None])[0]]))))

    return callback


@responses.activate
def test_auto_switches_once_to_posts_on_a_400_naming_tweet_fields_and_remembers_it(x_api_v2, caplog):
    pages = _chain(x_api_v2)
    refusals: list = []
    responses.add_callback(responses.GET, SEARCH, callback=_posts_only_server(pages, refusals))
    responses.add(responses.GET, COUNTS, json={"data": [{"start": "2021-06-26T00:00:00.000Z", "end": "2021-06-27T00:00:00.000Z", "post_count": 500}], "meta": {"total_post_count": 500}})
    clock = Clock(datetime(2021, 6, 28, 12, tzinfo=timezone.utc))
    source = XApiSource(bearer_token=SECRET, query="blacklivesmatter").with_clock(clock.sleep, clock.now)
    with caplog.at_level(logging.WARNING):
        got = list(source.pages(*day_window("2021-06-26"), LOG))
        got += list(source.pages(*day_window("2021-06-27"), LOG))  # the same run: posts from the start
    assert len(refusals) == 1 and source.speaking().name == "posts"
    assert sum(p.posts for p in got) == 1000
    assert b'"referenced_posts"' in got[0].body  # landed as received
    assert source.day_metadata()["2021-06-27"]["api_post_count"] == 500  # 2.167 counts' post_count
    switched = [r.message for r in caplog.records if "switching to posts" in r.message]
    assert len(switched) == 1 and "X_API_VOCABULARY=posts" in switched[0] and SECRET not in switched[0]


@responses.activate
def test_a_forced_vocabulary_never_switches(x_api_v2):
    pages = _chain(x_api_v2)
    refusals: list = []
    responses.add_callback(responses.GET, SEARCH, callback=_posts_only_server(pages, refusals))
    clock = Clock(datetime(2021, 6, 27, 12, tzinfo=timezone.utc))
    forced = XApiSource(bearer_token=SECRET, query="blacklivesmatter", vocabulary="tweets", record_counts=False).with_clock(clock.sleep, clock.now)
    with pytest.raises(XApiError, match="HTTP 400.*tweet.fields"):
        list(forced.pages(*day_window("2021-06-26"), LOG))
    assert XApiSource.from_env({"X_BEARER_TOKEN": SECRET, "X_QUERY": "x", "X_API_VOCABULARY": "posts"}).vocabulary == "posts"
    posts = XApiSource(bearer_token=SECRET, query="blacklivesmatter", vocabulary="posts", record_counts=False).with_clock(clock.sleep, clock.now)
    assert sum(p.posts for p in posts.pages(*day_window("2021-06-26"), LOG)) == 500 and len(refusals) == 1
    with pytest.raises(ValueError, match="X_API_VOCABULARY='post'"):
        XApiSource.from_env({"X_BEARER_TOKEN": SECRET, "X_QUERY": "x", "X_API_VOCABULARY": "post"})


@responses.activate
def test_an_unrelated_400_does_not_switch():
    responses.add(responses.GET, SEARCH, status=400, json={"title": "Invalid Request", "detail": "The `query` parameter is invalid: unbalanced parentheses", "errors": [{"parameters": {"query": ["(a"]}, "message": "invalid query"}]})
    clock = Clock(datetime(2021, 6, 27, 12, tzinfo=timezone.utc))
    source = XApiSource(bearer_token=SECRET, query="(a", record_counts=False).with_clock(clock.sleep, clock.now)
    with pytest.raises(XApiError, match="HTTP 400"):
        list(source.pages(*day_window("2021-06-26"), LOG))
    assert len(responses.calls) == 1 and source.speaking().name == "tweets"


def _enforcing(mock, version: str, pages):
    """A search + counts server enforcing one spec's vocabulary, answering in its names (and the
    usage endpoint the budget guard reads, in that spec's shapes)."""
    own, foreign = ("post.fields", "tweet.fields") if version == "2.167" else ("tweet.fields", "post.fields")
    by_token = {None: pages[0]}
    for previous, page in zip(pages, pages[1:]):
        by_token[previous["meta"]["next_token"]] = page

    def search(request):
        query = parse_qs(urlparse(request.url).query)
        if foreign in query:
            return 400, {}, json.dumps({"errors": [{"parameters": {foreign: query[foreign]}, "message": f"The query parameter [{foreign}] is not one of [query,{own}]"}], "title": "Invalid Request", "type": "https://api.twitter.com/2/problems/invalid-request"})
        page = json.loads(json.dumps(by_token[query.get("next_token", [None])[0]]))
        return 200, {}, orjson.dumps(in_post_names(page) if version == "2.167" else page)

    bucket = {"start": "2021-06-26T00:00:00.000Z", "end": "2021-06-27T00:00:00.000Z"}
    counts = {"data": [{**bucket, "post_count": 500}], "meta": {"total_post_count": 500}} if version == "2.167" else {"data": [{**bucket, "tweet_count": 500}], "meta": {"total_tweet_count": 500}}
    mock.add_callback(responses.GET, SEARCH, callback=search)
    mock.add(responses.GET, COUNTS, json=counts)
    usage = {"project_cap": "1000000", "project_usage": "0"} if version == "2.167" else {"project_cap": 1000000, "project_usage": 0}
    mock.add(responses.GET, USAGE, json={"data": {**usage, "cap_reset_day": 10}})


def test_a_dagster_run_against_either_spec_publishes_the_same_rows(x_api_v2, tmp_path, instance, monkeypatch):
    """raw_tweets → clean_tweets → s3_parquet with the default (auto) against a server enforcing
    2.159 and one enforcing 2.167: the same published rows, the API's count read in both."""
    import pyarrow.dataset as ds

    from tests.helpers import resources, run
    from tweet_assets.sources import x_api

    tables, counts = {}, {}
    for version in ("2.159", "2.167"):
        with responses.RequestsMock() as mock:
            _enforcing(mock, version, _chain(x_api_v2))
            clock = Clock(datetime(2021, 6, 27, 12, tzinfo=timezone.utc))
            monkeypatch.setattr(x_api, "_utcnow", clock.now)
            monkeypatch.setattr(x_api, "_sleep", clock.sleep)
            lake = tmp_path / version
            result = run(resources(str(lake), XApiSource(bearer_token=SECRET, query="blacklivesmatter")), "2021-06-26", instance=instance)
            assert result.success
            counts[version] = result.asset_materializations_for_node("raw_tweets")[0].metadata["api_post_count"].value
            tables[version] = ds.dataset(str(lake / "tweets"), format="parquet", partitioning="hive").to_table().sort_by("id")
    assert counts == {"2.159": 500, "2.167": 500}
    assert tables["2.167"].num_rows == 500 and tables["2.167"].drop(["request_url"]).equals(tables["2.159"].drop(["request_url"]))
