"""Retry and rate-limit policy of every X API request, as tenacity decorators (twarc2's rules:
DocNow/twarc ``decorators2.py`` ``rate_limit`` and ``catch_request_exceptions``).

- connection errors, timeouts, a connection dropped mid-body, an undecodable body and 5xx are
  retried with exponential backoff (``backoff_s`` doubling, at most 120 s), ``max_retries`` times;
- a 429 with ``x-rate-limit-remaining`` > 0 is the per-second throttle: sleep ``throttle_wait_s``
  (twarc: 10 s); with nothing remaining: sleep until ``x-rate-limit-reset`` plus a margin (at most
  15 min), ``max_rate_limit_waits`` times;
- a 429 whose problem is ``usage-capped`` is not retried (:func:`.problems.usage_capped`);
- everything else (400, 401, 403, 404, ...) is not retried.

Sleep and clock are injected, so tests never wait. A retry repeats the same request (tweepy's
``Paginator`` only advances its token on success), so no page is lost or fetched twice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

from tenacity import RetryCallState, retry, retry_if_exception

from tweet_assets.x.problems import describe, usage_capped
from tweet_assets.x.session import TRANSIENT_ERRORS, ServerError, TooManyRequests

THROTTLE_WAIT_S = 10.0  # twarc2 decorators2.rate_limit: 429 with remaining > 0 → sleep 10 s
MAX_BACKOFF_S = 120.0
MAX_RESET_WAIT_S = 15 * 60.0


@dataclass
class Attempts:
    """What one request cost so far: ``retries`` made, ``wait`` (seconds slept on 429),
    and per failed attempt its kind (``rate_limited`` or ``failed``)."""

    retries: int = 0
    wait: float = 0.0
    kinds: dict = field(default_factory=dict)

    @property
    def failed(self) -> int:
        return sum(1 for v in self.kinds.values() if v == "failed")

    @property
    def rate_limited(self) -> int:
        return sum(1 for v in self.kinds.values() if v == "rate_limited")


def retryable(exc: BaseException) -> bool:
    """5xx, a transient network error, or a 429 that is not the usage cap."""
    if isinstance(exc, TooManyRequests):
        return not usage_capped(exc)
    return isinstance(exc, (ServerError, *TRANSIENT_ERRORS))


@dataclass
class RetryPolicy:
    """The numbers of the policy (module docstring) and the injected ``sleep``/``now``."""

    max_retries: int = 5
    backoff_s: float = 2.0
    max_rate_limit_waits: int = 20
    rate_limit_margin_s: float = 2.0
    throttle_wait_s: float = THROTTLE_WAIT_S
    sleep: Callable[[float], None] = time.sleep
    now: Callable[[], datetime] = lambda: datetime.now(timezone.utc)

    def decorator(self, attempts: Attempts | None = None, on_retry: Callable[[BaseException, str, float], None] | None = None):
        """A ``tenacity.retry`` decorator applying the policy; ``attempts`` is filled in as it
        goes, ``on_retry(exc, why, seconds)`` is called before each sleep (for a log line). The
        last exception is re-raised when the policy gives up."""
        attempts = attempts if attempts is not None else Attempts()

        def tally(state: RetryCallState) -> None:
            exc = state.outcome.exception()
            attempts.kinds[state.attempt_number] = "rate_limited" if isinstance(exc, TooManyRequests) else "failed"

        def stop(state: RetryCallState) -> bool:
            tally(state)
            return attempts.rate_limited > self.max_rate_limit_waits or attempts.failed > self.max_retries

        def wait(state: RetryCallState) -> float:
            tally(state)
            exc = state.outcome.exception()
            seconds, why = self.wait_for(exc, attempts.failed)
            if isinstance(exc, TooManyRequests):
                attempts.wait += seconds
            attempts.retries += 1
            if on_retry is not None:
                on_retry(exc, why, seconds)
            return seconds

        return retry(retry=retry_if_exception(retryable), stop=stop, wait=wait, sleep=self.sleep, reraise=True)

    def wait_for(self, exc: BaseException, failed: int) -> tuple[float, str]:
        """``(seconds, why)`` before retrying after ``exc``, the ``failed``-th non-429 failure."""
        if isinstance(exc, TooManyRequests):
            remaining = exc.response.headers.get("x-rate-limit-remaining", "")
            if remaining.isdigit() and int(remaining) > 0:  # the per-second throttle, not the window
                return self.throttle_wait_s, f"throttled with {remaining} requests left in the window"
            reset = exc.response.headers.get("x-rate-limit-reset", "")
            seconds = (int(reset) - self.now().timestamp() if reset.isdigit() else 60.0) + self.rate_limit_margin_s
            return min(max(seconds, 1.0), MAX_RESET_WAIT_S + self.rate_limit_margin_s), "rate limit window used up, waiting for x-rate-limit-reset"
        return min(self.backoff_s * 2 ** (failed - 1), MAX_BACKOFF_S), "backing off"


__all__ = ["Attempts", "RetryPolicy", "retryable", "describe"]
