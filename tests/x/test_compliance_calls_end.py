"""Every wait of the batch compliance calls is bounded ("Every wait is bounded" in the brief; #36
point 4's rules, applied to the compliance job):

- the signed upload and download (cloud storage, not X) end at ``transfer_deadline_s``, also when
  the storage trickles its answer; the error names the setting and never the URL's signature
  (before: requests' read timeout only, restarted by every byte);
- a 429 on ``POST``/``GET /2/compliance/jobs`` is waited out by the search source's policy within
  the run's ``TWEET_ASSETS_MAX_RATE_LIMIT_WAIT_S``, shared by every call of the run, and the error
  names the setting and the reset time (before: tweepy's ``wait_on_rate_limit`` slept until any
  ``x-rate-limit-reset`` it was given, as often as it was given one).

The answers are served by ``responses`` at the spec's host (no network) or by
``tests/x/test_deadline_close.py``'s trickling server on 127.0.0.1; sleeps are recorded, never
slept (tweepy's own ``time.sleep`` raises, so the old code fails at once instead of sleeping).
"""

from __future__ import annotations

import logging
import time

import pytest
import responses

from tests.x.test_deadline_close import DEADLINE_S, MARGIN_S, ClosingServer
from tests.x.test_x_api import SECRET
from tweet_assets.compliance.api import ComplianceApi, ComplianceError, ComplianceJob

LOG = logging.getLogger("test")
HOST = "https://api.x.com"
SIGNATURE = "X-Amz-Signature=0123456789abcdef"


@pytest.fixture(autouse=True)
def _tweepy_never_sleeps(monkeypatch):
    import tweepy.client

    def refuse(seconds):
        raise AssertionError(f"tweepy slept {seconds:.0f} s on its own (wait_on_rate_limit)")

    monkeypatch.setattr(tweepy.client.time, "sleep", refuse)


@pytest.mark.parametrize("with_length", [True, False], ids=["content-length", "no-length"])
@pytest.mark.parametrize("step", ["upload", "download"])
def test_a_trickling_signed_transfer_ends_at_its_deadline(step, with_length):
    with ClosingServer([("trickle", with_length)]) as server:
        url = f"{server.url}/compliance/job-1?{SIGNATURE}"
        job = ComplianceJob("1", "created", url, url)
        api = ComplianceApi(bearer_token=SECRET, transfer_deadline_s=DEADLINE_S, read_timeout_s=10.0)
        started = time.monotonic()
        with pytest.raises(ComplianceError) as info:
            api.upload(job, [1, 2, 3]) if step == "upload" else api.download(job)
        elapsed = time.monotonic() - started
    message = str(info.value)
    assert elapsed < DEADLINE_S + MARGIN_S, f"the {step} ended {elapsed:.2f} s after it started (deadline {DEADLINE_S} s)"
    assert f"{step} for compliance job 1" in message and "total deadline of 0.5 s" in message
    assert "transfer_deadline_s" in message and f"{server.url}/compliance/job-1" in message
    assert SIGNATURE not in message and SECRET not in message


def _rate_limited(url: str, method: str, reset_in_s: float) -> None:
    headers = {"x-rate-limit-limit": "150", "x-rate-limit-remaining": "0", "x-rate-limit-reset": str(int(time.time() + reset_in_s))}
    responses.add(method, url, status=429, json={"title": "Too Many Requests", "detail": "Too Many Requests", "type": "about:blank", "status": 429}, headers=headers)


def _job(status: str) -> dict:
    return {"data": {"id": "1460", "status": status, "upload_url": "https://storage.example/u", "download_url": "https://storage.example/r"}}


@responses.activate
def test_a_429_past_the_runs_ceiling_fails_naming_the_setting_and_the_reset(monkeypatch):
    """A window resetting in 3 h: the policy waits 15 min at a time while the run's 3,600 s allow,
    then fails naming the setting and the reset (tweepy would have slept the 3 h)."""
    monkeypatch.delenv("TWEET_ASSETS_MAX_RATE_LIMIT_WAIT_S", raising=False)  # the default: 3,600 s
    _rate_limited(f"{HOST}/2/compliance/jobs/1460", "GET", reset_in_s=3 * 3600)
    sleeps: list[float] = []
    with pytest.raises(ComplianceError) as info:
        ComplianceApi(bearer_token=SECRET, poll_interval_s=0).status("1460", LOG, sleep=sleeps.append)
    message = str(info.value)
    assert "compliance job 1460" in message and "HTTP 429" in message
    assert "TWEET_ASSETS_MAX_RATE_LIMIT_WAIT_S=3600 s" in message and "the rate limit resets at" in message
    # each wait at most 15 min (+2 s margin), as the search source's: three fit in 3,600 s, a fourth would not
    assert sleeps == [902.0] * 3 and len(responses.calls) == 4 and SECRET not in message


@responses.activate
def test_a_429_is_waited_out_until_its_reset_then_the_call_goes_on():
    url = f"{HOST}/2/compliance/jobs"
    _rate_limited(url, "POST", reset_in_s=30)
    responses.add(responses.POST, url, json=_job("created"))
    sleeps: list[float] = []
    job = ComplianceApi(bearer_token=SECRET).create("tweet_assets 2021-06-26", LOG, sleep=sleeps.append)
    assert job.id == "1460" and len(responses.calls) == 2
    (slept,) = sleeps
    assert 28 <= slept <= 33  # until x-rate-limit-reset, plus the policy's 2 s margin


@responses.activate
def test_creating_a_job_is_not_retried_after_a_5xx():
    """A POST that failed with a 5xx may have created the job: it is not sent again."""
    responses.add(responses.POST, f"{HOST}/2/compliance/jobs", status=503, json={"title": "Service Unavailable", "status": 503})
    with pytest.raises(ComplianceError, match="create compliance job: HTTP 503"):
        ComplianceApi(bearer_token=SECRET).create("tweet_assets 2021-06-26", LOG, sleep=lambda s: pytest.fail("slept"))
    assert len(responses.calls) == 1


@responses.activate
def test_the_polls_of_a_run_share_one_ceiling(monkeypatch):
    """Two 429s of ~62 s each: the first is waited out, the second would pass a 100 s ceiling
    (the run's, not the call's) and fails the wait naming it."""
    monkeypatch.setenv("TWEET_ASSETS_MAX_RATE_LIMIT_WAIT_S", "100")
    url = f"{HOST}/2/compliance/jobs/1460"
    _rate_limited(url, "GET", reset_in_s=60)
    responses.add(responses.GET, url, json=_job("in_progress"))
    _rate_limited(url, "GET", reset_in_s=60)
    responses.add(responses.GET, url, json=_job("complete"))
    sleeps: list[float] = []
    with pytest.raises(ComplianceError, match=r"TWEET_ASSETS_MAX_RATE_LIMIT_WAIT_S=100 s \(6\d s waited so far\)"):
        ComplianceApi(bearer_token=SECRET, poll_interval_s=0).wait(ComplianceJob("1460", "created", "u", "r"), LOG, sleep=sleeps.append)
    assert len(responses.calls) == 3 and len([s for s in sleeps if s > 0]) == 1
