"""The one HTTP path to X: a ``requests`` session with a ``(connect, read)`` timeout and a total
deadline on every request, the API host in one place, tweepy clients built on it, and secrets kept
out of logs.

- Host: X's OpenAPI specs (2.159 and 2.167) name ``https://api.x.com`` as the server; tweepy 4.17
  hard-codes ``https://api.twitter.com`` (``tweepy/client.py``, ``BaseClient.request``) and takes no
  host, so :class:`ApiSession` rewrites that prefix to its ``base_url`` (``X_API_BASE_URL``
  overrides; tests point it at a loopback double).
- Timeouts: twarc's ``(3.05, 31)`` seconds by default (DocNow/twarc ``client2.py``). The read
  timeout bounds each wait for the next bytes, so an answer that trickles (a byte every few
  seconds) would never end: every request whose body is read in the call also has a **total
  deadline** (:data:`DEFAULT_DEADLINE_S`, ``X_HTTP_DEADLINE_S``) covering connect, headers and
  body. When it passes, a watchdog timer shuts the request's socket down (a blocked ``recv``
  returns at once) and the request raises :class:`DeadlineExceeded`, a ``requests.Timeout``
  retried like any timeout (:mod:`.retry`). The socket is recorded as the request uses it, so an
  answer sent with ``Connection: close`` (whose socket http.client moves from the connection to
  the response) is covered too; and an answer whose read ended after the deadline passed is never
  returned (a body without ``Content-Length`` ends at the EOF the watchdog made: it is cut short). Neither requests nor urllib3 has a total timeout
  (urllib3's ``Timeout(total=)`` only shortens the per-read timeout); a connect in progress ends
  at its own connect timeout, so a request overruns its deadline by at most that much. A
  ``stream=True`` request (the filtered stream) has no deadline: its caller reads the body.
- Secrets: tweepy logs each request's headers, the bearer token included, at DEBUG on
  ``tweepy.client``: :func:`redact_tweepy_debug_log` masks it; :func:`redact` masks given secrets
  in any text.
- The signed ``upload_url``/``download_url`` of batch compliance jobs point at cloud storage, not
  at the API: :func:`signed_put`/:func:`signed_get` send them without any X credential, with a
  total deadline of their own (a compliance transfer can be megabytes).

Only this package imports ``requests`` and ``tweepy`` (import-linter contract "only x/ talks HTTP
to X" in ``pyproject.toml``); other packages use the names exported here.
"""

from __future__ import annotations

import functools
import logging
import re
import socket
import threading

import requests
import tweepy
import urllib3
from requests.adapters import HTTPAdapter
from tweepy import StreamRule
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from tweet_assets import __version__

#: The server of X's OpenAPI specs 2.159 and 2.167.
API_HOST = "https://api.x.com"
#: The host tweepy 4.17 writes into every URL; rewritten to the session's ``base_url``.
TWEEPY_HOST = "https://api.twitter.com"
TWARC_TIMEOUT = (3.05, 31.0)  # twarc2 client2.get: requests timeout=(connect, read) seconds
#: Total seconds for one request (connect, headers and body) unless ``X_HTTP_DEADLINE_S`` says
#: otherwise (tweet_assets.config): a 500-post page is ~2 MB, 20 s at 100 KB/s.
DEFAULT_DEADLINE_S = 120.0
#: Dropped mid-body, undecodable body, no answer in time, no connection: retried with backoff.
TRANSIENT_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)
#: A connection that could not be made (or answered in time).
CONNECT_ERRORS = (requests.ConnectionError, requests.Timeout)
#: A streamed body broken while being read.
BROKEN_BODY_ERRORS = (requests.ConnectionError, requests.exceptions.ChunkedEncodingError, urllib3.exceptions.HTTPError)
#: Any failure of a request: tweepy's HTTP errors (``tweepy.HTTPException``: ``.response``,
#: ``.api_messages``) and requests' own.
REQUEST_ERRORS = (tweepy.TweepyException, requests.RequestException)
HTTPException = tweepy.HTTPException
TooManyRequests = tweepy.TooManyRequests
ServerError = tweepy.TwitterServerError
Unauthorized = tweepy.Unauthorized
Forbidden = tweepy.Forbidden
Response = requests.Response
#: tweepy's page follower (``next_token``/``pagination_token``; advances only on success).
Paginator = tweepy.Paginator
HTTPError = requests.HTTPError
__all__ = ["StreamRule"]


class DeadlineExceeded(requests.Timeout):
    """No complete answer within the request's total deadline (connect, headers and body); a
    ``requests.Timeout``, so it is retried like one (:mod:`.retry`)."""


class _Deadline:
    """One request's total deadline: a timer that, when it fires, shuts down every socket the
    request used, so a ``recv`` blocked on a trickling answer returns at once.

    The sockets are recorded as the request uses them (connect, send, before reading the answer),
    not looked up on the connection when the timer fires: for an answer with ``Connection: close``
    http.client hands the socket to the response inside ``getresponse()`` and sets the
    connection's ``sock`` to None, so the connection no longer knows it."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.expired = False
        self._done = False
        self._sockets: list = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> "_Deadline":
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self.finish()

    def watch(self, sock) -> None:
        """Shut ``sock`` down when the deadline passes (at once if it has passed)."""
        if sock is None:
            return
        with self._lock:
            if not any(s is sock for s in self._sockets):
                self._sockets.append(sock)
            expired = self.expired
        if expired:
            _shut(sock)

    def finish(self) -> bool:
        """Stop the watchdog; True when the deadline passed while the request ran (its sockets
        shut: a body without a length may have been cut short, so the answer must not be used)."""
        self._timer.cancel()
        with self._lock:
            self._done = True
            return self.expired

    def _expire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)


def _shut(sock) -> None:
    if isinstance(sock, socket.socket):
        try:  # the plain socket's shutdown(2), also under TLS: wakes a recv blocked in another thread
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass


_running = threading.local()  # .deadline: the _Deadline of the request this thread is sending


class _Watched:
    """A urllib3 connection that puts its socket under the running request's deadline, if any."""

    def _watch(self) -> None:
        deadline = getattr(_running, "deadline", None)
        if deadline is not None:
            deadline.watch(getattr(self, "sock", None))

    def connect(self):
        super().connect()
        self._watch()  # a deadline passed while connecting shuts the new socket now

    def request(self, *args, **kwargs):
        self._watch()  # a pooled connection, reused
        return super().request(*args, **kwargs)

    def getresponse(self, *args, **kwargs):
        self._watch()  # the socket the answer is read from (the connection forgets it for Connection: close)
        return super().getresponse(*args, **kwargs)


@functools.lru_cache(maxsize=None)
def _watched(connection_class: type) -> type:
    """``connection_class`` under the running request's deadline (made when a pool is created, so
    a class patched in by a test recorder, e.g. vcrpy's, is the one watched)."""
    return type(f"Watched{connection_class.__name__}", (_Watched, connection_class), {})


class _HTTPPool(HTTPConnectionPool):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.ConnectionCls = _watched(HTTPConnectionPool.ConnectionCls)


class _HTTPSPool(HTTPSConnectionPool):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.ConnectionCls = _watched(HTTPSConnectionPool.ConnectionCls)


_WATCHED_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class _DeadlineAdapter(HTTPAdapter):
    """requests' adapter whose connections (direct or through a proxy) are :class:`_Watched`."""

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _WATCHED_POOLS

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = _WATCHED_POOLS
        return manager


class ApiSession(requests.Session):
    """``requests.Session`` with a default ``(connect, read)`` timeout (seconds) and a total
    ``deadline_s`` (seconds; None: none) on every request (tweepy passes neither), and
    ``base_url`` in place of tweepy's ``https://api.twitter.com``.

    Raises (from :meth:`request`): :class:`DeadlineExceeded` when a request (not ``stream=True``)
    has no complete answer within ``deadline_s``; otherwise what ``requests`` raises."""

    def __init__(self, timeout: tuple[float, float] = TWARC_TIMEOUT, base_url: str = API_HOST, deadline_s: float | None = DEFAULT_DEADLINE_S,
                 deadline_setting: str = "X_HTTP_DEADLINE_S"):
        super().__init__()
        self.timeout = timeout
        self.base_url = base_url.rstrip("/")
        self.deadline_s = deadline_s
        self.deadline_setting = deadline_setting  # named in DeadlineExceeded: what to raise
        for prefix in ("https://", "http://"):
            self.mount(prefix, _DeadlineAdapter())

    def request(self, method, url, *args, **kwargs):
        kwargs.setdefault("timeout", self.timeout)
        if url.startswith(TWEEPY_HOST) and self.base_url != TWEEPY_HOST:
            url = self.base_url + url[len(TWEEPY_HOST):]
        if self.deadline_s is None or kwargs.get("stream"):
            return super().request(method, url, *args, **kwargs)
        deadline = _Deadline(self.deadline_s)
        with deadline:
            _running.deadline = deadline
            try:
                response = super().request(method, url, *args, **kwargs)
            except requests.RequestException as exc:
                if deadline.finish():
                    raise self._exceeded(method, url, exc.request, exc.response) from exc
                raise
            finally:
                _running.deadline = None
            if deadline.finish():  # the body was read to an EOF the watchdog made: cut short, not an answer
                response.close()
                raise self._exceeded(method, url, response.request, None)
            return response

    def _exceeded(self, method: str, url: str, request, response) -> DeadlineExceeded:
        return DeadlineExceeded(
            f"{method} {url.split('?')[0]}: no complete answer within the total deadline of {self.deadline_s:g} s "
            f"(connect, headers and body; {self.deadline_setting})", request=request, response=response,
        )


def api_client(
    *,
    bearer_token: str | None = None,
    consumer_key: str | None = None,
    consumer_secret: str | None = None,
    access_token: str | None = None,
    access_token_secret: str | None = None,
    timeout: tuple[float, float] = TWARC_TIMEOUT,
    base_url: str = API_HOST,
    return_type=requests.Response,
    wait_on_rate_limit: bool = False,
    deadline_s: float | None = DEFAULT_DEADLINE_S,
) -> tweepy.Client:
    """A ``tweepy.Client`` on an :class:`ApiSession` (``return_type`` ``requests.Response``: the
    body kept as received; or ``dict``; ``deadline_s`` the total seconds per request), its user
    agent naming this package, tweepy's debug log redacted."""
    client = tweepy.Client(
        bearer_token=bearer_token,
        consumer_key=consumer_key,
        consumer_secret=consumer_secret,
        access_token=access_token,
        access_token_secret=access_token_secret,
        return_type=return_type,
        wait_on_rate_limit=wait_on_rate_limit,
    )
    client.session = ApiSession(timeout, base_url, deadline_s)
    client.user_agent = f"{client.user_agent} tweet_assets/{__version__}"
    redact_tweepy_debug_log()
    return client


def rules_client(token: str, base_url: str = API_HOST, timeout: tuple[float, float] = TWARC_TIMEOUT) -> tweepy.StreamingClient:
    """A ``tweepy.StreamingClient`` for the filtered-stream rules endpoints (``return_type=dict``)
    on an :class:`ApiSession`."""
    client = tweepy.StreamingClient(token, return_type=dict)
    client.session = ApiSession(timeout, base_url)
    redact_tweepy_debug_log()
    return client


def stream_session(timeout: tuple[float, float], base_url: str = API_HOST) -> ApiSession:
    """The session of the filtered-stream connection, its user agent naming this package; no total
    deadline (the connection lives for hours; the consumer's stall timeout watches it)."""
    session = ApiSession(timeout, base_url, deadline_s=None)
    session.headers["User-Agent"] = f"tweet_assets/{__version__}"
    return session


def _signed_session(timeout: tuple[float, float], deadline_s: float, deadline_setting: str) -> ApiSession:
    # base_url TWEEPY_HOST: no URL is rewritten (a signed URL points at cloud storage, never at X)
    return ApiSession(timeout, TWEEPY_HOST, deadline_s, deadline_setting)


def signed_put(url: str, body: bytes, timeout: tuple[float, float], deadline_s: float, deadline_setting: str,
               content_type: str = "text/plain") -> requests.Response:
    """``PUT body`` to a signed cloud-storage URL (a compliance job's ``upload_url``), no X
    credential, within ``deadline_s`` seconds in total (connect, headers and body), as every
    request of this module.

    Raises ``requests.RequestException`` (one of :data:`REQUEST_ERRORS`): :class:`DeadlineExceeded`
    naming ``deadline_setting`` (and the URL without its query, which holds the signature) when the
    deadline passed."""
    with _signed_session(timeout, deadline_s, deadline_setting) as session:
        return session.put(url, data=body, headers={"Content-Type": content_type})


def signed_get(url: str, timeout: tuple[float, float], deadline_s: float, deadline_setting: str) -> requests.Response:
    """``GET`` a signed cloud-storage URL (a compliance job's ``download_url``), no X credential,
    within ``deadline_s`` seconds in total. Raises as :func:`signed_put`."""
    with _signed_session(timeout, deadline_s, deadline_setting) as session:
        return session.get(url)


def is_timeout(exc: BaseException | None) -> bool:
    """True when ``exc`` (or an exception it wraps) is a read timeout."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (urllib3.exceptions.ReadTimeoutError, requests.Timeout, TimeoutError)):
            return True
        if exc.args and isinstance(exc.args[0], BaseException):
            exc = exc.args[0]
        else:
            exc = exc.__cause__ or exc.__context__
    return False


def redact(text: str, secrets) -> str:
    """``text`` with each secret of ``secrets`` (strings of 4+ characters; others ignored)
    replaced by ``***``."""
    for secret in secrets:
        if isinstance(secret, str) and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


_BEARER = re.compile(r"(Bearer\s+)[^\s'\"]+")


class RedactBearer(logging.Filter):
    """tweepy logs request headers, bearer token included, at DEBUG: mask it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "Bearer" in message:
            record.msg, record.args = _BEARER.sub(r"\1***", message), ()
        return True


class QuietDottedParameters(logging.Filter):
    """tweepy warns "Unexpected parameter: post.fields" for every query parameter its own
    endpoint lists do not name; a dotted name is passed under its API name on purpose (2.167's
    ``post.fields``), so that warning is dropped. Others (a misspelt keyword) still show."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith("Unexpected parameter: ") and "." in message[len("Unexpected parameter: "):])


def redact_tweepy_debug_log() -> None:
    """Install :class:`RedactBearer` and :class:`QuietDottedParameters` on the ``tweepy.client``
    logger (once)."""
    logger = logging.getLogger("tweepy.client")
    if not any(isinstance(f, RedactBearer) for f in logger.filters):
        logger.addFilter(RedactBearer())
    if not any(isinstance(f, QuietDottedParameters) for f in logger.filters):
        logger.addFilter(QuietDottedParameters())
