"""The batch compliance endpoints of the X API v2: create a job, upload ids, poll, download.

The flow (docs.x.com, "Batch compliance", quick start: create, upload, poll, download):

1. ``POST /2/compliance/jobs`` ``{"type": "tweets", "name": ...}`` (app-only bearer token; tweepy's
   ``Client.create_compliance_job``) returns the job with a signed ``upload_url`` and ``download_url``;
2. ``PUT upload_url`` with the post ids, one per line, ``Content-Type: text/plain`` (no X
   credential: the URL is signed; it points at cloud storage, not at the API);
3. ``GET /2/compliance/jobs/:id`` (tweepy's ``Client.get_compliance_job``) until ``status`` is
   ``complete`` (``created`` → ``in_progress`` → ``complete``; or ``failed``/``expired``);
4. ``GET download_url``: JSON lines, one per affected id only (:func:`tweet_assets.compliance.ledger.parse_results`).

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

from tweet_assets.x import session as http
from tweet_assets.x.problems import describe
from tweet_assets.x.retry import RetryPolicy

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
            base_url=self.base_url, return_type=dict, wait_on_rate_limit=True,
        )

    def _call(self, what: str, call: Callable[[], dict]) -> ComplianceJob:
        try:
            return ComplianceJob.from_api(call())
        except http.HTTPException as exc:
            detail = "; ".join(str(m) for m in exc.api_messages) or exc.response.reason
            raise ComplianceError(self._redact(f"{what}: HTTP {exc.response.status_code}: {detail}")) from None
        except http.REQUEST_ERRORS as exc:
            raise ComplianceError(self._redact(f"{what}: {type(exc).__name__}: {exc}")) from None

    def create(self, name: str) -> ComplianceJob:
        """``POST /2/compliance/jobs`` with ``type=tweets`` (not resumable).

        Raises:
            ComplianceError: the API refused (message and status, no credential).
        """
        client = self.client()
        return self._call("create compliance job", lambda: client.create_compliance_job("tweets", name=name))

    def status(self, job_id: str, log: logging.Logger | None = None, sleep: Callable[[float], None] = time.sleep) -> ComplianceJob:
        """``GET /2/compliance/jobs/:id``; 5xx, timeouts and dropped connections are retried with
        the search source's policy (:class:`tweet_assets.x.retry.RetryPolicy`: ``backoff_s``
        doubling, ``max_retries`` times); a 429 waits for ``x-rate-limit-reset`` (tweepy's
        ``wait_on_rate_limit``).

        Raises:
            ComplianceError: the API refused, or kept failing after the retries.
        """
        client = self.client()

        def on_retry(exc: BaseException, why: str, seconds: float) -> None:
            if log is not None:
                log.warning(self._redact(f"compliance job {job_id}: GET /2/compliance/jobs/:id: {describe(exc)}; {why}, retrying in {seconds:.1f}s"))

        policy = RetryPolicy(max_retries=self.max_retries, backoff_s=self.backoff_s, sleep=sleep)
        poll = policy.decorator(on_retry=on_retry)(lambda: client.get_compliance_job(job_id))
        return self._call(f"compliance job {job_id}", poll)

    def upload(self, job: ComplianceJob, ids: Iterable[int]) -> int:
        """``PUT`` the ids (decimal, one per line, ``Content-Type: text/plain``) to the job's
        signed ``upload_url``; returns the bytes sent.

        Raises:
            ComplianceError: the storage refused the upload (status, never the signed URL's query).
        """
        body = b"".join(b"%d\n" % i for i in ids)
        try:
            response = http.signed_put(job.upload_url, body, (self.connect_timeout_s, self.read_timeout_s))
        except http.REQUEST_ERRORS as exc:
            raise ComplianceError(f"upload for compliance job {job.id}: {type(exc).__name__}") from None
        if response.status_code >= 300:
            raise ComplianceError(f"upload for compliance job {job.id} to {_no_query(job.upload_url)}: HTTP {response.status_code} {response.text[:200]}")
        return len(body)

    def wait(self, job: ComplianceJob, log: logging.Logger, sleep=time.sleep, clock=time.monotonic) -> ComplianceJob:
        """Poll the job every ``poll_interval_s`` until ``complete``, logging each status change
        and the elapsed time.

        Raises:
            ComplianceError: the job ``failed``/``expired``, or ``max_wait_s`` passed.
        """
        started = clock()
        last = job.status
        while True:
            job = self.status(job.id, log, sleep)
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
        """The job's result (JSON lines) from its signed ``download_url``.

        Raises:
            ComplianceError: the storage refused (status, never the signed URL's query).
        """
        try:
            response = http.signed_get(job.download_url, (self.connect_timeout_s, self.read_timeout_s))
        except http.REQUEST_ERRORS as exc:
            raise ComplianceError(f"download for compliance job {job.id}: {type(exc).__name__}") from None
        if response.status_code >= 300:
            raise ComplianceError(f"download for compliance job {job.id} from {_no_query(job.download_url)}: HTTP {response.status_code}")
        return response.content

    def check(self, ids: list[int], name: str, log: logging.Logger, sleep=time.sleep) -> tuple[ComplianceJob, bytes]:
        """Create a job, upload ``ids``, wait for it and download its result:
        ``(job, result JSON lines)``. Raises :class:`ComplianceError` at any failed step."""
        job = self.create(name)
        log.info(f"compliance job {job.id} created ({job.status}); uploading {len(ids):,} post ids")
        sent = self.upload(job, ids)
        log.info(f"compliance job {job.id}: uploaded {sent:,} bytes; polling every {self.poll_interval_s:g}s")
        job = self.wait(job, log, sleep=sleep)
        return job, self.download(job)

    def _redact(self, text: str) -> str:
        return http.redact(text, (self.bearer_token,))


def _no_query(url: str) -> str:
    """A signed URL without its query (the signature)."""
    return url.split("?", 1)[0]
