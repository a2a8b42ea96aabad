"""The batch compliance endpoints of the X API v2: create a job, upload ids, poll, download.

The flow (docs.x.com, "Batch compliance", quick start: create, upload, poll, download):

1. ``POST /2/compliance/jobs`` ``{"type": "tweets", "name": ...}`` (app-only bearer token; tweepy's
   ``Client.create_compliance_job``) returns the job with a signed ``upload_url`` and ``download_url``;
2. ``PUT upload_url`` with the post ids, one per line, ``Content-Type: text/plain`` (no X
   credential: the URL is signed; it points at cloud storage, not at the API);
3. ``GET /2/compliance/jobs/:id`` (tweepy's ``Client.get_compliance_job``) until ``status`` is
   ``complete`` (``created`` → ``in_progress`` → ``complete``; or ``failed``/``expired``);
4. ``GET download_url``: JSON lines, one per affected id only (:func:`tweet_assets.compliance.ledger.parse_results`).

Every wait is bounded: the signed transfers have a total deadline (``transfer_deadline_s``), the
API calls :mod:`tweet_assets.x.session`'s, polling ends after ``max_wait_s``, and a 429 is waited
out by :mod:`tweet_assets.x.retry`'s policy within the run's ``TWEET_ASSETS_MAX_RATE_LIMIT_WAIT_S``
(never tweepy's ``wait_on_rate_limit``, which sleeps until any ``x-rate-limit-reset`` it is given,
as often as it is given one).

What is kept of the answers and what is removed: :mod:`tweet_assets.compliance.ledger` and
:mod:`tweet_assets.compliance.rewrite`; the whole rule is in :mod:`tweet_assets.compliance`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Optional

from dagster import ConfigurableResource
from pydantic import Field

from tweet_assets import config
from tweet_assets.x import session as http
from tweet_assets.x.problems import describe
from tweet_assets.x.retry import Attempts, RetryPolicy, WaitBudget

#: Job states of ``GET /2/compliance/jobs/:id`` (API reference, ComplianceJobStatus).
DONE, FAILED = "complete", ("failed", "expired")
API_HOST = http.API_HOST


class ComplianceError(RuntimeError):
    """A compliance job could not be run or its result not read; the message says which step and
    what to check, never a credential."""


@dataclass(frozen=True)
class ComplianceJob:
    """One batch compliance job as the API describes it (``data`` of ``POST``/``GET
    /2/compliance/jobs``): ``id``, ``status``, signed ``upload_url``/``download_url`` and their
    expiry times (RFC 3339 strings, UTC)."""

    id: str
    status: str
    upload_url: str
    download_url: str
    upload_expires_at: str = ""
    download_expires_at: str = ""

    @classmethod
    def from_api(cls, body: dict) -> "ComplianceJob":
        """From a response body ``{"data": {...}}``.

        Raises:
            ComplianceError: the body has no job (an ``errors`` answer, say).
        """
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict) or not data.get("id") or not data.get("status"):
            raise ComplianceError(f"the compliance job answer has no job: {str(body)[:300]}")
        return cls(
            id=str(data["id"]),
            status=str(data["status"]),
            upload_url=str(data.get("upload_url", "")),
            download_url=str(data.get("download_url", "")),
            upload_expires_at=str(data.get("upload_expires_at", "")),
            download_expires_at=str(data.get("download_expires_at", "")),
        )


class ComplianceApi(ConfigurableResource):
    """The X API v2 batch compliance endpoints (app-only bearer token, through tweepy) and the
    signed upload/download URLs they return (plain HTTPS, no X credential sent there).

    Env (see ``definitions.compliance_api_from_env``): ``X_BEARER_TOKEN``.
    """

    bearer_token: Optional[str] = Field(default=None, description="App-only bearer token. Env: X_BEARER_TOKEN.")
    base_url: str = Field(default=API_HOST, description="API host (tests point it at a loopback double).")
    poll_interval_s: float = Field(default=30.0, description="Seconds between status polls.")
    max_wait_s: float = Field(default=6 * 3600.0, description="Give up waiting for a job after this many seconds.")
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 120.0
    transfer_deadline_s: float = Field(
        default=600.0, gt=0,
        description="Total seconds of the upload to, or the download from, a job's signed URL (connect, headers and body); "
        "a transfer still going then fails the run. 600 s moves a 500,000-id upload (~10 MB) at 140 kB/s.",
    )
    max_retries: int = Field(default=5, ge=0, description="Retries of a status poll on 5xx, a timeout or a dropped connection (the search source's policy, tweet_assets.x.retry).")
    backoff_s: float = Field(default=2.0, gt=0, description="First backoff of a status poll retry, seconds; doubles per retry (capped at 120 s).")

    def client(self):
        """A tweepy client for the compliance endpoints (app-only).

        Raises:
            ComplianceError: no bearer token configured.
        """
        if not self.bearer_token:
            raise ComplianceError("the batch compliance endpoints need an app-only bearer token: set X_BEARER_TOKEN.")
        return http.api_client(
            bearer_token=self.bearer_token, timeout=(self.connect_timeout_s, self.read_timeout_s),
            base_url=self.base_url, return_type=dict, wait_on_rate_limit=False,  # 429s: _retried waits them out, bounded
        )

    @staticmethod
    def wait_budget() -> WaitBudget:
        """The 429 waits one run may sleep in total, shared by its jobs' calls
        (``TWEET_ASSETS_MAX_RATE_LIMIT_WAIT_S``). Raises ``config.SettingError`` for a wrong value."""
        return WaitBudget(limit_s=config.number("TWEET_ASSETS_MAX_RATE_LIMIT_WAIT_S"))

    def _retried(self, what: str, call: Callable[[], dict], log: logging.Logger | None, sleep: Callable[[float], None],
                 budget: WaitBudget | None, max_retries: int) -> ComplianceJob:
        """``call`` under the search source's policy (:class:`tweet_assets.x.retry.RetryPolicy`),
        ``max_retries`` retries of 5xx and dropped connections, 429s waited out within ``budget``."""
        attempts = Attempts()

        def on_retry(exc: BaseException, why: str, seconds: float) -> None:
            if log is not None:
                log.warning(self._redact(f"{what}: {describe(exc)}; {why}, retrying in {seconds:.1f}s"))

        policy = RetryPolicy(max_retries=max_retries, backoff_s=self.backoff_s, sleep=sleep,
                             budget=budget if budget is not None else self.wait_budget())
        try:
            return self._call(what, policy.decorator(attempts, on_retry=on_retry)(call))
        except ComplianceError as exc:
            if attempts.over_budget is not None:
                raise ComplianceError(f"{exc}; {attempts.over_budget.describe()}.") from None
            raise

    def _call(self, what: str, call: Callable[[], dict]) -> ComplianceJob:
        try:
            return ComplianceJob.from_api(call())
        except http.HTTPException as exc:
            detail = "; ".join(str(m) for m in exc.api_messages) or exc.response.reason
            raise ComplianceError(self._redact(f"{what}: HTTP {exc.response.status_code}: {detail}")) from None
        except http.REQUEST_ERRORS as exc:
            raise ComplianceError(self._redact(f"{what}: {type(exc).__name__}: {exc}")) from None

    def create(self, name: str, log: logging.Logger | None = None, sleep: Callable[[float], None] = time.sleep,
               budget: WaitBudget | None = None) -> ComplianceJob:
        """``POST /2/compliance/jobs`` with ``type=tweets`` (not resumable). A 429 is waited out
        within ``budget`` (default: a fresh :meth:`wait_budget`); nothing else is retried.

        Raises:
            ComplianceError: the API refused (message and status, no credential), or a 429's wait
                would pass ``TWEET_ASSETS_MAX_RATE_LIMIT_WAIT_S`` (named, with the reset time).
        """
        client = self.client()
        # a POST: a 5xx or a dropped connection may have created the job, so only a 429 is retried
        return self._retried("create compliance job", lambda: client.create_compliance_job("tweets", name=name), log, sleep, budget, max_retries=0)

    def status(self, job_id: str, log: logging.Logger | None = None, sleep: Callable[[float], None] = time.sleep,
               budget: WaitBudget | None = None) -> ComplianceJob:
        """``GET /2/compliance/jobs/:id``; 5xx, timeouts and dropped connections are retried with
        the search source's policy (:class:`tweet_assets.x.retry.RetryPolicy`: ``backoff_s``
        doubling, ``max_retries`` times); a 429 waits for ``x-rate-limit-reset`` (at most 15 min
        a wait) while ``budget`` allows (default: a fresh :meth:`wait_budget`).

        Raises:
            ComplianceError: the API refused, kept failing after the retries, or a 429's wait
                would pass ``TWEET_ASSETS_MAX_RATE_LIMIT_WAIT_S`` (named, with the reset time).
        """
        client = self.client()
        return self._retried(f"compliance job {job_id}: GET /2/compliance/jobs/:id", lambda: client.get_compliance_job(job_id), log, sleep, budget, self.max_retries)

    def upload(self, job: ComplianceJob, ids: Iterable[int]) -> int:
        """``PUT`` the ids (decimal, one per line, ``Content-Type: text/plain``) to the job's
        signed ``upload_url`` within ``transfer_deadline_s``; returns the bytes sent.

        Raises:
            ComplianceError: the storage refused the upload, or it did not end within
                ``transfer_deadline_s`` (status or deadline, never the signed URL's query).
        """
        body = b"".join(b"%d\n" % i for i in ids)
        try:
            response = http.signed_put(job.upload_url, body, (self.connect_timeout_s, self.read_timeout_s), self.transfer_deadline_s, TRANSFER_DEADLINE)
        except http.REQUEST_ERRORS as exc:
            raise ComplianceError(_transfer_failed(f"upload for compliance job {job.id}", exc)) from None
        if response.status_code >= 300:
            raise ComplianceError(f"upload for compliance job {job.id} to {_no_query(job.upload_url)}: HTTP {response.status_code} {response.text[:200]}")
        return len(body)

    def wait(self, job: ComplianceJob, log: logging.Logger, sleep=time.sleep, clock=time.monotonic, budget: WaitBudget | None = None) -> ComplianceJob:
        """Poll the job every ``poll_interval_s`` until ``complete``, logging each status change
        and the elapsed time; the polls' 429 waits share ``budget`` (default: a fresh
        :meth:`wait_budget`).

        Raises:
            ComplianceError: the job ``failed``/``expired``, ``max_wait_s`` passed, or a poll
                failed (:meth:`status`).
        """
        budget = budget if budget is not None else self.wait_budget()
        started = clock()
        last = job.status
        while True:
            job = self.status(job.id, log, sleep, budget)
            if job.status != last:
                log.info(f"compliance job {job.id}: {job.status} after {clock() - started:.0f}s")
                last = job.status
            if job.status == DONE:
                return job
            if job.status in FAILED:
                raise ComplianceError(f"compliance job {job.id} ended {job.status}: create a new one (the ids were not checked).")
            if clock() - started > self.max_wait_s:
                raise ComplianceError(f"compliance job {job.id} still {job.status} after {self.max_wait_s:.0f}s: run the compliance job again later.")
            sleep(self.poll_interval_s)

    def download(self, job: ComplianceJob) -> bytes:
        """The job's result (JSON lines) from its signed ``download_url``, within
        ``transfer_deadline_s``.

        Raises:
            ComplianceError: the storage refused, or the download did not end within
                ``transfer_deadline_s`` (status or deadline, never the signed URL's query).
        """
        try:
            response = http.signed_get(job.download_url, (self.connect_timeout_s, self.read_timeout_s), self.transfer_deadline_s, TRANSFER_DEADLINE)
        except http.REQUEST_ERRORS as exc:
            raise ComplianceError(_transfer_failed(f"download for compliance job {job.id}", exc)) from None
        if response.status_code >= 300:
            raise ComplianceError(f"download for compliance job {job.id} from {_no_query(job.download_url)}: HTTP {response.status_code}")
        return response.content

    def check(self, ids: list[int], name: str, log: logging.Logger, sleep=time.sleep, budget: WaitBudget | None = None) -> tuple[ComplianceJob, bytes]:
        """Create a job, upload ``ids``, wait for it and download its result:
        ``(job, result JSON lines)``; the calls' 429 waits share ``budget`` (pass one
        :meth:`wait_budget` for all of a run's jobs; default: a fresh one). Raises
        :class:`ComplianceError` at any failed step."""
        budget = budget if budget is not None else self.wait_budget()
        job = self.create(name, log, sleep, budget)
        log.info(f"compliance job {job.id} created ({job.status}); uploading {len(ids):,} post ids")
        sent = self.upload(job, ids)
        log.info(f"compliance job {job.id}: uploaded {sent:,} bytes; polling every {self.poll_interval_s:g}s")
        job = self.wait(job, log, sleep=sleep, budget=budget)
        return job, self.download(job)

    def _redact(self, text: str) -> str:
        return http.redact(text, (self.bearer_token,))


#: What a signed transfer's DeadlineExceeded names: the setting to raise.
TRANSFER_DEADLINE = "the compliance_api resource's transfer_deadline_s"


def _transfer_failed(what: str, exc: BaseException) -> str:
    """One line for a failed signed transfer: the deadline's message (its URL has no query), or
    the error's type only (requests' messages repeat the signed URL)."""
    if isinstance(exc, http.DeadlineExceeded):
        return f"{what}: {exc}: run the compliance job again, or raise transfer_deadline_s for a slow link"
    return f"{what}: {type(exc).__name__}"


def _no_query(url: str) -> str:
    """A signed URL without its query (the signature)."""
    return url.split("?", 1)[0]
