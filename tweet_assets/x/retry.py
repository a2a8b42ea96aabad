"""Retry and rate-limit policy of every X API request, as tenacity decorators (twarc2's rules:
DocNow/twarc ``decorators2.py`` ``rate_limit`` and ``catch_request_exceptions``).

- connection errors, timeouts, a connection dropped mid-body, an undecodable body and 5xx are
  retried with exponential backoff (``backoff_s`` doubling, at most 120 s), ``max_retries`` times;
- a 429 with ``x-rate-limit-remaining`` > 0 is the per-second throttle: sleep ``throttle_wait_s``
  (twarc: 10 s); with nothing remaining: sleep until ``x-rate-limit-reset`` plus a margin (at most
  15 min), ``max_rate_limit_waits`` times;
- a 429 whose problem is ``usage-capped`` is not retried (:func:`.problems.usage_capped`);
- all 429 waits of a run share one :class:`WaitBudget` (``TWEET_ASSETS_MAX_RATE_LIMIT_WAIT_S``):
  a wait that would pass it is not slept; the request gives up and :attr:`Attempts.over_budget`
  says why and when the limit resets;
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
class WaitBudget:
    """The seconds of 429 waits one run may sleep in total (``limit_s``; None: no bound), and
    ``spent_s`` so far; shared by every request of the run."""

    limit_s: float | None = None
    spent_s: float = 0.0

    def allows(self, seconds: float) -> bool:
        return self.limit_s is None or self.spent_s + seconds <= self.limit_s


@dataclass
class OverBudget:
    """A 429 wait that was not slept: it would have taken the run's waits past ``budget.limit_s``.
    ``seconds``: the wait needed; ``reset``: when the limit resets (``x-rate-limit-reset``, UTC),
    or None when the answer did not say."""

    seconds: float
    spent_s: float
    limit_s: float
    reset: datetime | None

    def describe(self) -> str:
        """One phrase: the bound, what was waited, when the limit resets, what to do."""
        when = f"the rate limit resets at {self.reset:%Y-%m-%d %H:%M:%S} UTC (x-rate-limit-reset)" if self.reset else "the answer did not say when the rate limit resets (no x-rate-limit-reset)"
        return (
            f"waiting {self.seconds:.0f} s more would take this run's rate-limit waits past TWEET_ASSETS_MAX_RATE_LIMIT_WAIT_S={self.limit_s:g} s "
            f"({self.spent_s:.0f} s waited so far); {when}: run again after that, or raise TWEET_ASSETS_MAX_RATE_LIMIT_WAIT_S"
        )


@dataclass
class Attempts:
    """What one request cost so far: ``retries`` made, ``wait`` (seconds slept on 429),
    per failed attempt its kind (``rate_limited`` or ``failed``), and ``over_budget`` when it gave
    up because the run's :class:`WaitBudget` was spent."""

    retries: int = 0
    wait: float = 0.0
    kinds: dict = field(default_factory=dict)
    over_budget: OverBudget | None = None
    _next: tuple[float, str] | None = None

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
    budget: WaitBudget = field(default_factory=WaitBudget)

    def decorator(self, attempts: Attempts | None = None, on_retry: Callable[[BaseException, str, float], None] | None = None):
        """A ``tenacity.retry`` decorator applying the policy; ``attempts`` is filled in as it
        goes, ``on_retry(exc, why, seconds)`` is called before each sleep (for a log line). The
        last exception is re-raised when the policy gives up."""
        attempts = attempts if attempts is not None else Attempts()

        def tally(state: RetryCallState) -> None:
            exc = state.outcome.exception()
            attempts.kinds[state.attempt_number] = "rate_limited" if isinstance(exc, TooManyRequests) else "failed"

        # tenacity (9.x) asks wait, then stop, then calls before_sleep only when it goes on
        def wait(state: RetryCallState) -> float:
            tally(state)
            attempts._next = self.wait_for(state.outcome.exception(), attempts.failed)
            return attempts._next[0]

        def stop(state: RetryCallState) -> bool:
            tally(state)
            if attempts.rate_limited > self.max_rate_limit_waits or attempts.failed > self.max_retries:
                return True
            exc = state.outcome.exception()
            seconds = attempts._next[0] if attempts._next else self.wait_for(exc, attempts.failed)[0]
            if isinstance(exc, TooManyRequests) and not self.budget.allows(seconds):
                attempts.over_budget = OverBudget(seconds, self.budget.spent_s, self.budget.limit_s, reset_time(exc))
                return True
            return False

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception()
            seconds, why = attempts._next or self.wait_for(exc, attempts.failed)
            if isinstance(exc, TooManyRequests):
                attempts.wait += seconds
                self.budget.spent_s += seconds
            attempts.retries += 1
            if on_retry is not None:
                on_retry(exc, why, seconds)

        return retry(retry=retry_if_exception(retryable), stop=stop, wait=wait, before_sleep=before_sleep, sleep=self.sleep, reraise=True)

    def wait_for(self, exc: BaseException, failed: int) -> tuple[float, str]:
        """``(seconds, why)`` before retrying after ``exc``, the ``failed``-th non-429 failure."""
        if isinstance(exc, TooManyRequests):
            remaining = exc.response.headers.get("x-rate-limit-remaining", "")
            if remaining.isdigit() and int(remaining) > 0:  # the per-second throttle, not the window
                return self.throttle_wait_s, f"throttled with {remaining} requests left in the window"
            reset = reset_time(exc)
            seconds = (reset.timestamp() - self.now().timestamp() if reset is not None else 60.0) + self.rate_limit_margin_s
            return min(max(seconds, 1.0), MAX_RESET_WAIT_S + self.rate_limit_margin_s), "rate limit window used up, waiting for x-rate-limit-reset"
        return min(self.backoff_s * 2 ** (failed - 1), MAX_BACKOFF_S), "backing off"


def reset_time(exc: BaseException) -> datetime | None:
    """When a 429's rate-limit window resets: its ``x-rate-limit-reset`` header (epoch seconds) in
    UTC, or None when absent or not a time (X API v2 "Rate limits": the header gives "the
    remaining window before the rate limit resets, in UTC epoch seconds"). The one reading of the
    header (:meth:`RetryPolicy.wait_for` waits by it, :class:`OverBudget` names it)."""
    response = getattr(exc, "response", None)
    reset = response.headers.get("x-rate-limit-reset", "") if response is not None else ""
    if not (reset.isascii() and reset.isdigit()):
        return None
    try:
        return datetime.fromtimestamp(int(reset), timezone.utc)
    except (OverflowError, OSError, ValueError):  # past year 9999: not a time
        return None


__all__ = ["Attempts", "OverBudget", "RetryPolicy", "WaitBudget", "reset_time", "retryable", "describe"]
