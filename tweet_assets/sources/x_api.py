"""The live X API v2 source, through tweepy: search or user timelines for a day's window.

Endpoints (docs.x.com, X API v2):

- ``GET /2/tweets/search/recent``: the last 7 days, ``query`` up to 512 characters, 100 per page.
- ``GET /2/tweets/search/all`` (full archive; Pro/Enterprise access): ``query`` up to 1,024
  characters, 500 per page, at most 1 request per second.
- ``GET /2/users/:id/tweets`` (user timeline): 100 per page (the most recent 3,200 posts).

For a partition the window is ``start_time`` = day 00:00Z (inclusive) and ``end_time`` = next day
00:00Z (exclusive), the API's own rule. Every tweet field and expansion the flattener reads is
requested, with the matching user, media, place and poll fields. Each response page is yielded
as the bytes received (``data``, ``includes``, ``meta``, ``errors``), so the landing zone holds
what ``replay`` reads.

Rate limits and faults follow twarc2's behaviour (DocNow/twarc, ``twarc/decorators2.py``): on 429
sleep until ``x-rate-limit-reset`` plus a margin, then go on; full-archive search is paced to one
request per second; 5xx and connection errors are retried with growing (exponential) backoff, a
bounded number of times, then the step fails with the endpoint, status and page reached. A retry
repeats the same request (tweepy's ``Paginator`` only advances its token on success), so no page
is lost or fetched twice. Sleep and clock are injectable so tests do not wait.

Secrets: credentials come from the environment through ``dagster.EnvVar`` (Dagit shows the variable
name, never the value); no message, log line or metadata value contains them.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta, timezone
from typing import Callable, Iterator, Literal, Optional

import orjson
import requests
import tweepy
from dagster import EnvVar
from pydantic import Field, PrivateAttr
from tenacity import RetryCallState, Retrying, retry_if_exception

from ..partitions import DAY_FORMAT, days_in_window
from .base import PostSource, SourcePage, created_at_range

TWEET_FIELDS = (
    "attachments,author_id,context_annotations,conversation_id,created_at,edit_controls,"
    "edit_history_tweet_ids,entities,geo,id,in_reply_to_user_id,lang,note_tweet,possibly_sensitive,"
    "public_metrics,referenced_tweets,reply_settings,source,text,withheld"
).split(",")
EXPANSIONS = (
    "author_id,referenced_tweets.id,referenced_tweets.id.author_id,in_reply_to_user_id,"
    "entities.mentions.username,attachments.media_keys,attachments.poll_ids,geo.place_id,edit_history_tweet_ids"
).split(",")
USER_FIELDS = (
    "created_at,description,entities,id,location,name,pinned_tweet_id,profile_image_url,protected,"
    "public_metrics,url,username,verified,verified_type,withheld"
).split(",")
MEDIA_FIELDS = "alt_text,duration_ms,height,media_key,preview_image_url,public_metrics,type,url,variants,width".split(",")
PLACE_FIELDS = "contained_within,country,country_code,full_name,geo,id,name,place_type".split(",")
POLL_FIELDS = "duration_minutes,end_datetime,id,options,voting_status".split(",")

RECENT_SEARCH_DAYS = 7
QUERY_LIMITS = {"search_recent_tweets": 512, "search_all_tweets": 1024}
PAGE_SIZES = {"search_recent_tweets": 100, "search_all_tweets": 500, "get_users_tweets": 100}
ENDPOINTS = {
    "search_recent_tweets": "GET /2/tweets/search/recent",
    "search_all_tweets": "GET /2/tweets/search/all",
    "get_users_tweets": "GET /2/users/:id/tweets",
}


class XApiError(RuntimeError):
    """The X API refused or kept failing; the message says which endpoint, status and page."""


class XApiSource(PostSource):
    """Posts from the X API v2 with tweepy: ``mode`` ``search`` (a query) or ``timeline`` (accounts).

    Credentials: app-only ``bearer_token`` (env ``X_BEARER_TOKEN``), or OAuth 1.0a user context
    (``X_CONSUMER_KEY``, ``X_CONSUMER_SECRET``, ``X_ACCESS_TOKEN``, ``X_ACCESS_TOKEN_SECRET``).
    """

    bearer_token: Optional[str] = Field(default=None, description="App-only bearer token. Env: X_BEARER_TOKEN.")
    consumer_key: Optional[str] = Field(default=None, description="OAuth 1.0a consumer key. Env: X_CONSUMER_KEY.")
    consumer_secret: Optional[str] = Field(default=None, description="Env: X_CONSUMER_SECRET.")
    access_token: Optional[str] = Field(default=None, description="Env: X_ACCESS_TOKEN.")
    access_token_secret: Optional[str] = Field(default=None, description="Env: X_ACCESS_TOKEN_SECRET.")
    mode: Literal["search", "timeline"] = Field(default="search", description="search (a query) or timeline (accounts).")
    query: str = Field(default="", description="Search query (mode search). Env: X_QUERY.")
    accounts: list[str] = Field(default_factory=list, description="Usernames or numeric ids (mode timeline). Env: X_ACCOUNTS, comma-separated.")
    full_archive: bool = Field(
        default=False,
        description="Your access includes full-archive search (Pro/Enterprise): days older than 7 days use /2/tweets/search/all. Env: X_FULL_ARCHIVE=1.",
    )
    max_pages_per_day: Optional[int] = Field(default=None, ge=1, description="Stop after this many pages per day (cap on cost).")
    max_retries: int = Field(default=5, ge=0, description="Retries of a request on 5xx or a connection error.")
    backoff_s: float = Field(default=2.0, gt=0, description="First backoff in seconds; doubles per retry (capped at 120 s).")
    max_rate_limit_waits: int = Field(default=20, ge=0, description="429 responses waited out per request before failing.")
    rate_limit_margin_s: float = Field(default=2.0, ge=0, description="Seconds added to x-rate-limit-reset before retrying.")
    base_url: str = Field(default="https://api.twitter.com", description="API host (tests point it at a recorder).")

    _clock: tuple | None = PrivateAttr(default=None)

    @classmethod
    def from_env(cls, env) -> "XApiSource":
        """Settings from the environment; secrets as ``EnvVar`` so Dagit never shows their values.

        Raises:
            ValueError: no credential variable is set, or the mode's setting (query/accounts) is missing.
        """
        secrets = {}
        for field, var in (("bearer_token", "X_BEARER_TOKEN"), ("consumer_key", "X_CONSUMER_KEY"), ("consumer_secret", "X_CONSUMER_SECRET"), ("access_token", "X_ACCESS_TOKEN"), ("access_token_secret", "X_ACCESS_TOKEN_SECRET")):
            if env.get(var):
                secrets[field] = EnvVar(var)
        if not secrets:
            raise ValueError("TWEET_ASSETS_SOURCE=x_api needs X_BEARER_TOKEN (or the four X_CONSUMER_*/X_ACCESS_* variables) set in the environment.")
        accounts = [a.strip().lstrip("@") for a in env.get("X_ACCOUNTS", "").split(",") if a.strip()]
        mode = "timeline" if accounts and not env.get("X_QUERY") else "search"
        if mode == "search" and not env.get("X_QUERY", "").strip():
            raise ValueError("TWEET_ASSETS_SOURCE=x_api needs X_QUERY (a search query) or X_ACCOUNTS (usernames for timelines).")
        return cls(mode=mode, query=env.get("X_QUERY", "").strip(), accounts=accounts, full_archive=env.get("X_FULL_ARCHIVE", "") in ("1", "true", "yes"), **secrets)

    @property
    def source_name(self) -> str:
        return "x_api"

    def describe(self) -> str:
        if self.mode == "search":
            return f"X API v2 search {self.query!r}" + (" (full archive when older than 7 days)" if self.full_archive else "")
        return f"X API v2 timelines of {', '.join(self.accounts)}"

    def with_clock(self, sleep: Callable[[float], None], now: Callable[[], datetime]) -> "XApiSource":
        """Inject ``sleep`` and ``now`` on this instance (unit tests); returns self. Dagster copies
        resources per run, so tests through Dagster patch the module's ``_sleep`` and ``_utcnow``.
        """
        self._clock = (sleep, now)
        return self

    def _sleep(self, seconds: float) -> None:
        (self._clock[0] if self._clock else _sleep)(seconds)

    def _now(self) -> datetime:
        return (self._clock[1] if self._clock else _utcnow)()

    # --- the client
    def client(self) -> tweepy.Client:
        """A ``tweepy.Client`` returning raw ``requests.Response`` objects (bodies kept as received).

        Raises:
            XApiError: no credential configured (names the variables, never values).
        """
        user_context = all((self.consumer_key, self.consumer_secret, self.access_token, self.access_token_secret))
        if not self.bearer_token and not user_context:
            raise XApiError("no X API credential: set X_BEARER_TOKEN (app-only), or X_CONSUMER_KEY, X_CONSUMER_SECRET, X_ACCESS_TOKEN and X_ACCESS_TOKEN_SECRET (user context).")
        client = tweepy.Client(
            bearer_token=self.bearer_token,
            consumer_key=self.consumer_key,
            consumer_secret=self.consumer_secret,
            access_token=self.access_token,
            access_token_secret=self.access_token_secret,
            return_type=requests.Response,
            wait_on_rate_limit=False,
        )
        client.user_agent = f"{client.user_agent} tweet_assets"
        if self.base_url != "https://api.twitter.com":
            _rebase(client, self.base_url)
        return client

    # --- pages
    def pages(self, start: datetime, end: datetime, log: logging.Logger) -> Iterator[SourcePage]:
        client = self.client()
        if self.mode == "search" and not self.query.strip():
            raise XApiError("mode search needs a query: set X_QUERY (or the source's query).")
        if self.mode == "timeline" and not self.accounts:
            raise XApiError("mode timeline needs accounts: set X_ACCOUNTS to usernames or ids.")
        user_ids = self._resolve_accounts(client, log) if self.mode == "timeline" else []
        for day in days_in_window(start, end):
            day_start = datetime.strptime(day, DAY_FORMAT).replace(tzinfo=timezone.utc)
            day_end = day_start + timedelta(days=1)
            if self.mode == "search":
                method_name = self._search_method(day, day_start)
                yield from self._day(client, method_name, day, day_start, day_end, log, query=self.query)
            else:
                for user_id in user_ids:
                    yield from self._day(client, "get_users_tweets", day, day_start, day_end, log, id=user_id)

    def _search_method(self, day: str, day_start: datetime) -> str:
        recent = day_start >= self._now() - timedelta(days=RECENT_SEARCH_DAYS)
        method = "search_recent_tweets" if recent else "search_all_tweets"
        if not recent and not self.full_archive:
            raise XApiError(
                f"partition {day} is older than the 7 days recent search covers (GET /2/tweets/search/recent). "
                "Full-archive search (GET /2/tweets/search/all) needs Pro or Enterprise access: if your project has it, "
                "set X_FULL_ARCHIVE=1 (the source's full_archive); otherwise backfill only the last 7 days."
            )
        limit = QUERY_LIMITS[method]
        if len(self.query) > limit:
            raise XApiError(f"the query is {len(self.query)} characters; {ENDPOINTS[method]} accepts at most {limit}.")
        return method

    def _resolve_accounts(self, client: tweepy.Client, log: logging.Logger) -> list[str]:
        ids = [a for a in self.accounts if a.isdigit()]
        names = [a for a in self.accounts if not a.isdigit()]
        if names:
            response = self._call(lambda: client.get_users(usernames=names, user_auth=not self.bearer_token), "GET /2/users/by", 0)
            found = {u["username"].lower(): u["id"] for u in response.json().get("data", [])}
            missing = [n for n in names if n.lower() not in found]
            if missing:
                raise XApiError(f"GET /2/users/by: no account for {missing} (suspended, renamed or misspelled?)")
            ids += [found[n.lower()] for n in names]
            log.info(f"resolved {len(names)} username(s) to ids once for this run")
        return ids

    def _day(self, client, method_name: str, day: str, start: datetime, end: datetime, log: logging.Logger, **params) -> Iterator[SourcePage]:
        method = getattr(client, method_name)
        endpoint = ENDPOINTS[method_name]
        end_time = min(end, self._now() - timedelta(seconds=30))  # end_time must be >10 s in the past
        if end_time <= start:
            log.info(f"{day}: the window has not started yet; nothing to fetch")
            return
        paginator = tweepy.Paginator(
            method,
            **params,
            start_time=start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            end_time=end_time.strftime("%Y-%m-%dT%H:%M:%SZ"),
            max_results=PAGE_SIZES[method_name],
            tweet_fields=TWEET_FIELDS,
            expansions=EXPANSIONS,
            user_fields=USER_FIELDS,
            media_fields=MEDIA_FIELDS,
            place_fields=PLACE_FIELDS,
            poll_fields=POLL_FIELDS,
            **({"user_auth": True} if not self.bearer_token else {}),
            limit=self.max_pages_per_day or float("inf"),
        ).__iter__()
        posts_so_far = 0
        page_no = 0
        last_request = [0.0]
        while True:
            page_no += 1
            if method_name == "search_all_tweets":  # 1 request/second
                wait = 1.0 - (time.monotonic() - last_request[0])
                if wait > 0:
                    self._sleep(wait)
            stats = {"retries": 0, "wait": 0.0}
            response = self._call(lambda: next(paginator, None), endpoint, page_no, stats, log)
            if response is None:  # the paginator is done (no next_token, or the page cap)
                break
            last_request[0] = time.monotonic()
            body = response.content
            try:
                parsed = orjson.loads(body)
                data = parsed.get("data") or []
                errors = parsed.get("errors") or []
            except (orjson.JSONDecodeError, AttributeError):
                data, errors = [], []
                log.warning(f"{endpoint} {day} page {page_no}: the body is not a JSON object; landing it as received")
            posts_so_far += len(data)
            earliest, latest = created_at_range(data)
            log.info(
                f"{endpoint} {day} page {page_no}: {len(data)} posts ({posts_so_far} so far), "
                f"rate limit remaining {response.headers.get('x-rate-limit-remaining', '?')}"
            )
            yield SourcePage(
                day, body, f"{endpoint} {day} page {page_no}", posts=len(data), api_errors=len(errors),
                earliest=earliest, latest=latest, requests=1 + stats["retries"], retries=stats["retries"],
                rate_limit_wait_s=stats["wait"],
            )

    def _call(self, fn, endpoint: str, page_no: int, stats: dict | None = None, log: logging.Logger | None = None):
        """Run one request with twarc2's retry rules; raise :class:`XApiError` when it gives up."""
        stats = stats if stats is not None else {"retries": 0, "wait": 0.0}
        kinds: dict[int, str] = {}  # attempt number → "rate_limited" | "failed"

        def tally(state: RetryCallState) -> dict[str, int]:
            exc = state.outcome.exception()
            kinds[state.attempt_number] = "rate_limited" if isinstance(exc, tweepy.TooManyRequests) else "failed"
            return {k: sum(1 for v in kinds.values() if v == k) for k in ("rate_limited", "failed")}

        def retryable(exc: BaseException) -> bool:
            return isinstance(exc, (tweepy.TooManyRequests, tweepy.TwitterServerError, requests.ConnectionError, requests.Timeout))

        def stop(state: RetryCallState) -> bool:
            counts = tally(state)
            return counts["rate_limited"] > self.max_rate_limit_waits or counts["failed"] > self.max_retries

        def wait(state: RetryCallState) -> float:
            counts = tally(state)
            exc = state.outcome.exception()
            if isinstance(exc, tweepy.TooManyRequests):
                reset = exc.response.headers.get("x-rate-limit-reset")
                now = self._now().timestamp()
                seconds = (int(reset) - now if reset and reset.isdigit() else 60.0) + self.rate_limit_margin_s
                seconds = min(max(seconds, 1.0), 15 * 60 + self.rate_limit_margin_s)
                stats["wait"] += seconds
            else:
                seconds = min(self.backoff_s * 2 ** (counts["failed"] - 1), 120.0)
            stats["retries"] += 1
            if log is not None:
                log.warning(f"{endpoint} page {page_no}: {_describe(exc)}; retrying in {seconds:.1f}s")
            return seconds

        try:
            for attempt in Retrying(retry=retry_if_exception(retryable), stop=stop, wait=wait, sleep=self._sleep, reraise=True):  # noqa: E501
                with attempt:
                    return fn()
        except tweepy.Unauthorized:
            var = "X_BEARER_TOKEN" if self.bearer_token else "X_CONSUMER_KEY/X_CONSUMER_SECRET/X_ACCESS_TOKEN/X_ACCESS_TOKEN_SECRET"
            raise XApiError(f"{endpoint} page {page_no}: 401 Unauthorized: the X API rejected the credential in {var}; check it is current (regenerate it in the developer portal).") from None
        except tweepy.Forbidden as exc:
            raise XApiError(f"{endpoint} page {page_no}: 403 Forbidden: your access level does not include this endpoint ({_api_message(exc)}).") from None
        except (tweepy.TweepyException, requests.ConnectionError, requests.Timeout) as exc:
            failed = sum(1 for v in kinds.values() if v == "failed")
            waits = sum(1 for v in kinds.values() if v == "rate_limited")
            raise XApiError(f"{endpoint} page {page_no}: gave up after {failed} failure(s) and {waits} rate-limit wait(s); last: {_describe(exc)}") from None


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


def _api_message(exc) -> str:
    return "; ".join(str(m) for m in getattr(exc, "api_messages", [])[:3]) or "no message"


def _describe(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if status is not None:
        return f"HTTP {status} {getattr(response, 'reason', '')}".strip()
    return type(exc).__name__


def _rebase(client: tweepy.Client, base_url: str) -> None:
    """Point a tweepy Client at another host (a recorder or proxy) by rewriting request URLs."""
    original = client.session.request

    def request(method, url, *args, **kwargs):
        return original(method, url.replace("https://api.twitter.com", base_url.rstrip("/"), 1), *args, **kwargs)

    client.session.request = request
