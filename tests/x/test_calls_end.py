"""#36 point 4: every X API call ends. Against the loopback X API double (tests/x_api_double.py):

- case 4: a ``next_token`` cycle (A→B→A) fails the day naming the token, before a fourth request,
  and no day is landed (the old code followed it without end: 1,170 requests in 60 s);
- a day still offering a ``next_token`` after ``TWEET_ASSETS_MAX_PAGES_PER_DAY`` pages fails;
- case 5: an answer that trickles one byte at a time (each byte well inside the read timeout) is
  abandoned at the request's total deadline and retried (the old code waited as long as it
  trickled);
- the rate-limit waits of one run have a ceiling, past which the run fails saying when the limit
  resets;
- ``X_HTTP_TIMEOUT`` is two finite numbers > 0.

Each test is bounded whatever the code does: the cycle is read through ``islice`` (or with a page
cap), trickles end at the double's ``STALL_CAP_S``, sleeps are recorded, not slept.
"""

from __future__ import annotations

import itertools
import logging
import time
from datetime import datetime, timedelta, timezone

import pytest

from tests.helpers import is_bookkeeping
from tests.x.test_x_api import SECRET, Sleeps, _corpus, _fetch, _live, _today
from tweet_assets import config
from tweet_assets.sources.x_api import XApiError, XApiSource

LOG = logging.getLogger("test")


# --- case 4: next_token cycles and the page bound


def test_a_next_token_cycle_fails_naming_the_token_and_the_day(api, x_api_v2):
    """Pages 1→tok-100 (A), A→tok-200 (B), B→tok-100 (A again): the third answer repeats A; the
    day fails there, before a fourth request. The old code kept going (read here through islice:
    30 pages and no error)."""
    day = _today() - timedelta(days=1)
    _corpus(api, x_api_v2, day, 350)
    api.loop_tokens = {"tok-200": "tok-100"}
    source = _live(api, record_counts=False)
    with pytest.raises(XApiError) as info:
        list(itertools.islice(source.pages(day, day + timedelta(days=1), LOG), 30))
    message = str(info.value)
    assert f"{day:%Y-%m-%d} page 3" in message and "next_token 'tok-100' a second time" in message and "first on page 1" in message
    assert "Nothing of" in message and SECRET not in message
    assert [s.params.get("next_token") for s in api.requests_to("search_recent")] == [None, "tok-100", "tok-200"]


def test_a_cycle_lands_no_day(api, x_api_v2, tmp_path, instance, monkeypatch):
    """Two days in one run, the second's pages loop: the run fails naming the token and the day,
    and nothing is landed (no raw object of either day). The source's page cap (20) keeps the old
    code bounded: it landed 20 pages of repeats and succeeded."""
    from dagster import materialize

    from tests.helpers import ALL, resources
    from tweet_assets.sources import x_api

    whole, looping = _today() - timedelta(days=3), _today() - timedelta(days=2)
    _corpus(api, x_api_v2, whole, 150)
    _corpus(api, x_api_v2, looping, 350, offset=150)
    api.loop_tokens = {"tok-200": "tok-100"}
    monkeypatch.setattr(x_api, "_sleep", Sleeps())
    source = XApiSource(bearer_token=SECRET, query="dagster", base_url=api.url, record_counts=False, max_pages_per_day=20)
    days = (f"{whole:%Y-%m-%d}", f"{looping:%Y-%m-%d}")
    result = materialize(
        ALL, resources=resources(str(tmp_path / "lake"), source), instance=instance, raise_on_error=False,
        tags={"dagster/asset_partition_range_start": days[0], "dagster/asset_partition_range_end": days[1]},
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert f"{days[1]} page 3" in str(failure.event_specific_data.error) and "'tok-100' a second time" in str(failure.event_specific_data.error)
    lake = tmp_path / "lake"
    landed = [p for p in lake.rglob("*") if p.is_file() and not is_bookkeeping(str(p.relative_to(lake)))]
    assert landed == []
    assert len(api.requests_to("search_recent")) == 2 + 3  # the whole day's 2 pages, the loop's 3


def test_a_day_past_the_page_bound_fails_naming_the_setting(api, x_api_v2):
    day = _today() - timedelta(days=1)
    _corpus(api, x_api_v2, day, 350)
    with pytest.raises(XApiError, match=r"page 2|2 pages fetched") as info:
        _fetch(_live(api, record_counts=False, page_bound=2), day)
    assert "TWEET_ASSETS_MAX_PAGES_PER_DAY=2" in str(info.value) and "'tok-200'" in str(info.value)
    assert len(api.requests_to("search_recent")) == 2
    assert [p.posts for p in _fetch(_live(api, record_counts=False, page_bound=4), day)] == [100, 100, 100, 50]  # 4 pages, the last without a token
    assert [p.posts for p in _fetch(_live(api, record_counts=False, page_bound=2, max_pages_per_day=2), day)] == [100, 100]  # the cost cap stops first
    assert XApiSource(bearer_token=SECRET, query="q").page_bound == config.number("TWEET_ASSETS_MAX_PAGES_PER_DAY", {}) == 10_000
    assert XApiSource.from_env({"X_BEARER_TOKEN": SECRET, "X_QUERY": "q", "TWEET_ASSETS_MAX_PAGES_PER_DAY": "50"}).page_bound == 50


# --- case 5: a trickling answer


@pytest.mark.parametrize("part", ["body", "headers"])
def test_a_trickling_answer_is_abandoned_at_the_deadline_and_retried(api, x_api_v2, part):
    """A byte every 0.05 s (the read timeout, 2 s, never fires) of the body or of the headers: the
    request is abandoned at its 0.5 s total deadline, the double sees the client hang up, and the
    retry lands the page. The old code read the trickle until the double ended it (5 s) and the
    double recorded no hang-up."""
    day = _today() - timedelta(days=1)
    _corpus(api, x_api_v2, day, 30)
    api.fault("trickle", "search_recent", body=part)
    sleeps = Sleeps()
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    LOG.addHandler(handler)
    try:
        pages = _fetch(_live(api, sleeps, connect_timeout_s=2.0, read_timeout_s=2.0, deadline_s=0.5, record_counts=False), day)
    finally:
        LOG.removeHandler(handler)
    assert api.trickle_ended.wait(10)  # the double's own record of how the trickle ended
    assert api.trickles == [api.trickles[0]] and api.trickles[0].startswith("client hung up after") and api.trickles[0].endswith(f"of the {part}")
    assert sum(p.posts for p in pages) == 30 and pages[0].retries == 1 and sleeps == [2.0]
    warning = next(r.getMessage() for r in records if r.levelno == logging.WARNING)
    assert "total deadline of 0.5 s" in warning and "X_HTTP_DEADLINE_S" in warning and "retrying in 2.0s" in warning


@pytest.mark.slow
def test_an_answer_that_always_trickles_fails_after_the_retries(api, x_api_v2):
    day = _today() - timedelta(days=1)
    _corpus(api, x_api_v2, day, 30)
    api.fault("trickle", "search_recent", body="body")
    api.fault("trickle", "search_recent", body="body")
    started = time.monotonic()
    with pytest.raises(XApiError, match=r"gave up after 2 failure\(s\).*DeadlineExceeded.*total deadline of 0.3 s") as info:
        _fetch(_live(api, deadline_s=0.3, max_retries=1, record_counts=False), day)
    assert f"{day:%Y-%m-%d} page 1" in str(info.value)
    assert time.monotonic() - started < 9  # not the two 5 s trickles (a loose bound: the point is the hang-ups)
    assert XApiSource(bearer_token=SECRET).deadline_s == 120.0
    assert XApiSource.from_env({"X_BEARER_TOKEN": SECRET, "X_QUERY": "q", "X_HTTP_DEADLINE_S": "45"}).deadline_s == 45


# --- the run's rate-limit waits


def test_rate_limit_waits_stop_at_the_runs_ceiling_naming_the_reset(api, x_api_v2):
    """Two 429s with the window used up, on two requests of one run: the first wait (the reset,
    ~900 s away, plus the margin) fits TWEET_ASSETS_MAX_RATE_LIMIT_WAIT_S=1000, the second would
    take the run's waits to ~1,800 s: the run fails saying when the limit resets. (Sleeps are
    recorded, not slept; the old code slept both, and any number of 20-wait requests.)"""
    day = _today() - timedelta(days=1)
    _corpus(api, x_api_v2, day, 150)
    reset = int(datetime.now(timezone.utc).timestamp()) + 900
    used_up = {"x-rate-limit-remaining": "0", "x-rate-limit-reset": str(reset)}
    too_many = {"title": "Too Many Requests", "detail": "Too Many Requests", "type": "about:blank", "status": 429}
    api.fault("http", "search_recent", status=429, headers=used_up, body=too_many)
    sleeps = Sleeps()
    source = _live(api, sleeps, record_counts=False, max_rate_limit_wait_s=1000)
    pages = source.pages(day, day + timedelta(days=1), LOG)
    first = next(pages)
    assert first.rate_limit_wait_s == pytest.approx(902, abs=5) and sleeps == [pytest.approx(902, abs=5)]
    api.fault("http", "search_recent", status=429, headers=used_up, body=too_many)
    with pytest.raises(XApiError) as info:
        next(pages)
    message = str(info.value)
    when = datetime.fromtimestamp(reset, timezone.utc)
    assert f"{day:%Y-%m-%d} page 2" in message and "TWEET_ASSETS_MAX_RATE_LIMIT_WAIT_S=1000" in message
    assert f"resets at {when:%Y-%m-%d %H:%M:%S} UTC" in message and "HTTP 429" in message
    assert len(sleeps) == 1  # the second wait was not slept
    assert XApiSource(bearer_token=SECRET).max_rate_limit_wait_s == 3600
    assert XApiSource.from_env({"X_BEARER_TOKEN": SECRET, "X_QUERY": "q", "TWEET_ASSETS_MAX_RATE_LIMIT_WAIT_S": "0"}).max_rate_limit_wait_s == 0


# --- X_HTTP_TIMEOUT


@pytest.mark.parametrize("text", ["nan,31", "3,inf", "0,31", "3,-1", "3", "3,31,5", "a,b", "3;31", "-0,1"])
def test_x_http_timeout_is_two_finite_positive_numbers(text):
    with pytest.raises(config.SettingError, match=r"^X_HTTP_TIMEOUT=.*two numbers > 0") as info:
        config.check({"X_HTTP_TIMEOUT": text})
    assert "\n" not in str(info.value)
    with pytest.raises(config.SettingError):
        XApiSource.from_env({"X_BEARER_TOKEN": SECRET, "X_QUERY": "q", "X_HTTP_TIMEOUT": text})
    config.check({"X_HTTP_TIMEOUT": "3.05,31"})
    source = XApiSource.from_env({"X_BEARER_TOKEN": SECRET, "X_QUERY": "q", "X_HTTP_TIMEOUT": " 1.5 , 20 "})
    assert (source.connect_timeout_s, source.read_timeout_s) == (1.5, 20)


def test_the_deadline_leaves_room_after_connecting():
    with pytest.raises(config.SettingError, match=r"X_HTTP_DEADLINE_S=5 is not more than X_HTTP_TIMEOUT's connect timeout \(10 s\)"):
        config.check({"X_HTTP_TIMEOUT": "10,31", "X_HTTP_DEADLINE_S": "5"})
    config.check({"X_HTTP_TIMEOUT": "3.05,31", "X_HTTP_DEADLINE_S": "5"})
