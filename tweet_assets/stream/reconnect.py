"""When to reconnect to the filtered stream, as X documents it.

Source: X API v2 docs, "Filtered stream → Handling disconnections" / "Recovery and redundancy"
(docs.x.com, the same schedule as the v1.1 "Connecting to a streaming endpoint" guide, which
tweepy's ``BaseStream._connect`` also follows):

- **network errors** (TCP/TLS failure, connection dropped mid-message, a stall): back off
  *linearly*, 250 ms more each attempt, up to 16 s;
- **HTTP errors** for which reconnecting is appropriate (5xx; 409 and the connection-limit 429,
  see below): back off *exponentially*, starting at 5 s and doubling, up to 320 s;
- **HTTP 429** (rate limited): back off exponentially starting at 1 minute and doubling. X names no
  ceiling; this module stops doubling at 15 minutes, the length of X's rate-limit windows;
- **stall**: X sends a keep-alive newline every 20 s; no byte (data or keep-alive) for
  :data:`STALL_TIMEOUT_S` (90 s, the figure X and tweepy use) means the connection is dead:
  reconnect as after a network error.

A wait is counted from the first failure of a run of failures; the counters reset once a connection
has delivered something (a message or a keep-alive), not merely on ``200 OK``, so a server that
accepts and drops at once is still backed off.

Other 4xx (400 bad parameters, 401 bad token, 403 access tier without the filtered stream) are not
retried: reconnecting cannot fix them (:class:`FatalStreamError`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tweet_assets import config

NETWORK_STEP_S = 0.25
NETWORK_MAX_S = 16.0
HTTP_FIRST_S = 5.0
HTTP_MAX_S = 320.0
RATE_LIMIT_FIRST_S = 60.0
RATE_LIMIT_MAX_S = 900.0
STALL_TIMEOUT_S = config.NUMBERS["TWEET_ASSETS_STREAM_STALL_S"].default

NETWORK = "network"
HTTP = "http"
RATE_LIMIT = "rate_limit"
KINDS = (NETWORK, HTTP, RATE_LIMIT)


class FatalStreamError(RuntimeError):
    """The API refused the connection for a reason reconnecting cannot fix (400, 401, 403, ...);
    the message names the status and the API's problem title/detail, never the token."""


def classify_status(status: int) -> str | None:
    """The backoff kind of an HTTP answer other than 200: :data:`RATE_LIMIT` for 429,
    :data:`HTTP` for 5xx and 409 (X: another connection is open), None when not retryable."""
    if status == 429:
        return RATE_LIMIT
    if status >= 500 or status == 409 or status == 420:
        return HTTP
    return None


@dataclass
class Backoff:
    """The reconnection schedule: ``wait(kind)`` gives the next sleep in seconds and counts the
    attempt; ``reset()`` after a connection delivered data.

    >>> b = Backoff(); [b.wait("http") for _ in range(8)]
    [5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 320.0]
    """

    attempts: dict = field(default_factory=lambda: dict.fromkeys(KINDS, 0))

    def wait(self, kind: str) -> float:
        """Seconds to sleep before the next attempt after a failure of ``kind`` (see module doc).

        Raises:
            ValueError: unknown kind.
        """
        if kind not in self.attempts:
            raise ValueError(f"unknown backoff kind {kind!r}: one of {KINDS}")
        self.attempts[kind] += 1
        n = self.attempts[kind]
        if kind == NETWORK:
            return min(NETWORK_STEP_S * n, NETWORK_MAX_S)
        if kind == HTTP:
            return min(HTTP_FIRST_S * 2 ** (n - 1), HTTP_MAX_S)
        return min(RATE_LIMIT_FIRST_S * 2 ** (n - 1), RATE_LIMIT_MAX_S)

    def reset(self) -> None:
        """Start every schedule again from its first wait (a connection delivered data)."""
        self.attempts = dict.fromkeys(KINDS, 0)
