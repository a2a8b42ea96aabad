"""The live X API v2 source, through tweepy: search or user timelines for a run's window.

It talks to X through :mod:`tweet_assets.x` only (field lists, session, retry policy, problems,
provenance). Requests go to the spec's host ``https://api.x.com`` (``X_API_BASE_URL`` overrides)
in the vocabulary of ``X_API_VOCABULARY`` (``tweets``: spec 2.159; ``posts``: spec 2.167;
``auto``: tweets, switching once to posts when a 400 names a tweets-only parameter; see
``docs/x-api.md``). ``GET /2/users/:id/tweets`` days before 2010-11-06 are refused (the spec's rule).

Endpoints and the limits this module follows (docs.x.com, X API v2 reference pages):

- ``GET /2/tweets/search/recent``: ``start_time`` no older than 7 days, ``query`` up to 512
  characters, ``max_results`` 10-100. App-only or user context.
- ``GET /2/tweets/search/all`` (full archive; Pro/Enterprise access): **app-only** (OAuth 2.0
  bearer token), ``query`` up to 1,024 characters, ``max_results`` 10-500 but at most 100 when
  ``context_annotations`` is among the ``tweet.fields`` (the API answers 400 otherwise; twarc keeps
  ``search_all`` at 100 for this reason, DocNow/twarc#504), at most 1 request per second.
  ``context_annotations=False`` (``X_CONTEXT_ANNOTATIONS=0``) drops that field for 500-post pages.
- ``GET /2/tweets/counts/recent`` and ``/counts/all``: the API's own count of posts matching the
  query, **app-only**; called once per search day with ``granularity=day`` and the same window, and
  recorded as ``api_post_count`` in the day's ``raw_tweets`` metadata (the check
  ``raw_posts_match_api_count`` compares it with the posts landed).
- ``GET /2/users/:id/tweets`` (user timeline): ``max_results`` 5-100; it reaches back only to a
  user's **3,200 most recent posts**. Each account's timeline is fetched once for the whole run
  window (pages split by ``created_at`` day), not once per day. When a window reaches past the
  3,200 (the account has more posts and a probe just before the window finds none), the affected
  days carry ``timeline_3200_limit`` in their metadata and a warning is logged.
- ``GET /2/users/by`` / ``GET /2/users``: usernames or ids resolved in batches of at most 100.

For a partition the window is ``start_time`` = day 00:00Z (inclusive) and ``end_time`` = next day
00:00Z (exclusive), the API's own rule; ``end_time`` is kept 30 s in the past (the API wants at least
10 s). Every tweet field and expansion the flattener reads is requested.

**Pages and provenance.** Each response page is yielded as the body received (``data``,
``includes``, ``meta``, ``errors``) with one key appended, twarc2's own retrieval record::

    "__twarc": {"url": "<full request URL with its query string; credentials are never in it>",
                "version": "tweet_assets <package version>",
                "retrieved_at": "2026-11-29T21:30:00.123Z"}   # ISO 8601 UTC, milliseconds

so the landing zone is a twarc2 archive (``twarc2``/``twarc-csv`` and ``replay`` read it) and the
flattener can publish where and when each row was fetched. A timeline page whose posts span days is
split into one page per day (``sources.day_split``: each piece with the ``includes`` its posts
expand to and each ``errors`` entry once), each with the ``__twarc`` key.

**Faults** follow twarc2 (DocNow/twarc ``client2.py``, ``decorators2.py``):

- every request has a ``(connect, read)`` timeout, twarc's ``(3.05, 31)`` seconds by default
  (``X_HTTP_TIMEOUT=connect,read``), and a total deadline covering connect, headers and body
  (``X_HTTP_DEADLINE_S``, 120 s), so an answer that trickles is abandoned; a timeout or a passed
  deadline is retried like a connection error;
- connection errors, timeouts, a connection dropped mid-body (``ChunkedEncodingError``), a body that
  does not decode (``ContentDecodingError``) and 5xx are retried with exponential backoff
  (``backoff_s`` doubling, at most 120 s; ``max_retries`` times), then the step fails;
- 429 with ``x-rate-limit-remaining`` > 0 is the per-second throttle: sleep ``throttle_wait_s``
  (twarc: 10 s) and retry; 429 with nothing remaining: sleep until ``x-rate-limit-reset`` plus a
  margin (at most 15 min); a 429 whose problem ``type`` is ``.../problems/usage-capped`` (the
  project's monthly post cap is used up) fails at once with :class:`UsageCapExceeded`;
- all rate-limit waits of a run together (the budget guard's usage and counts requests and the pages')
  stay within ``TWEET_ASSETS_MAX_RATE_LIMIT_WAIT_S`` (1 h):
  a wait that would pass it fails the run, saying when the limit resets;
- pagination ends: a ``next_token`` the API already gave for the same query and window fails the
  day, naming the token (the pages would loop: A→B→A); so does a day (or an account's timeline)
  still offering a ``next_token`` after ``TWEET_ASSETS_MAX_PAGES_PER_DAY`` pages (10,000). The
  step fails, so no half-fetched day is landed;
- a failure names the endpoint, the day and page reached, the HTTP status and the API's problem
  ``title``, ``detail`` and ``type`` (and ``errors[].message``), never a credential.

A retry repeats the same request (tweepy's ``Paginator`` only advances its token on success), so no
page is lost or fetched twice. Sleep and clock are injectable so tests do not wait.

**Spend** (:mod:`tweet_assets.sources.budget`, #38): :meth:`XApiSource.spend_plan` counts a search
run's posts per day before any is read (``GET /2/tweets/counts/recent`` and ``/counts/all``,
``granularity=day``, one request per page of days, ``tweet_count`` or 2.167's ``post_count``) and
reads the project's cap (``GET /2/usage/tweets``, :mod:`tweet_assets.x.usage`); timelines say they
cannot count. Each day's ``posts_read`` (:meth:`day_metadata`) is what the cap was charged for as
this source saw it: every post in the ``data`` of every answer received for that day (a timeline's
3,200 probe counts for the window's first day). A ``usage-capped`` refusal names the search day in
progress (``UsageCapExceeded.day``).

Secrets: credentials come from the environment through ``dagster.EnvVar`` (Dagit shows the variable
name, never the value); no message, log line (tweepy's own debug lines included), landed URL or
metadata value contains them.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator, Literal, Optional

import orjson
from dagster import EnvVar
from pydantic import Field, PrivateAttr

from tweet_assets import config
from tweet_assets.partitions import DAY_FORMAT, days_in_window
from tweet_assets.sources.base import PostSource, SourcePage, created_at_range, day_of
from tweet_assets.sources.day_split import split_by_day
from tweet_assets.x import session as http
from tweet_assets.x.fields import FIELDS, POSTS, TWEETS, Vocabulary
from tweet_assets.x.problems import AccessDenied, UsageCapExceeded, XApiError, describe, problem, usage_capped
from tweet_assets.x.provenance import append_twarc, twarc_record
from tweet_assets.x.retry import THROTTLE_WAIT_S, Attempts, RetryPolicy, WaitBudget, retryable
from tweet_assets.x.session import API_HOST, TRANSIENT_ERRORS, TWARC_TIMEOUT
from tweet_assets.x.usage import ENDPOINT as USAGE_ENDPOINT
from tweet_assets.x.usage import ROUTE as USAGE_ROUTE
from tweet_assets.x.usage import Usage, parse_usage, usage_params
from tweet_assets.x.vocabulary import refuses_vocabulary, to_tweet_names

RECENT_SEARCH_DAYS = 7
#: A day is fetched by recent search only if its 00:00Z is this much newer than now − 7 days, so
#: the request (made a little later) still passes the API's 7-day rule.
RECENT_SEARCH_MARGIN = timedelta(minutes=15)
#: ``end_time`` is kept this far in the past (the API rejects an end_time less than 10 s old).
END_TIME_LAG = timedelta(seconds=30)
QUERY_LIMITS = {"search_recent_tweets": 512, "search_all_tweets": 1024}
#: Largest ``max_results`` per endpoint (API reference); search/all is 100 with context_annotations.
PAGE_SIZES = {"search_recent_tweets": 100, "search_all_tweets": 500, "get_users_tweets": 100}
CONTEXT_ANNOTATIONS_PAGE_SIZE = 100  # search/all with context_annotations (DocNow/twarc#504)
USERS_LOOKUP_BATCH = 100  # GET /2/users/by?usernames= and GET /2/users?ids=: 1-100 each
TIMELINE_LIMIT = 3200  # GET /2/users/:id/tweets reaches the most recent 3,200 posts only
#: ``GET /2/users/:id/tweets``: ``start_time``/``end_time`` "must be on or after 2010-11-06T00:00:00Z"
#: (X's OpenAPI specs 2.159 and 2.167, parameter descriptions).
TIMELINE_EARLIEST = datetime(2010, 11, 6, tzinfo=timezone.utc)
ENDPOINTS = {
    "search_recent_tweets": "GET /2/tweets/search/recent",
    "search_all_tweets": "GET /2/tweets/search/all",
    "get_users_tweets": "GET /2/users/:id/tweets",
    "get_recent_tweets_count": "GET /2/tweets/counts/recent",
    "get_all_tweets_count": "GET /2/tweets/counts/all",
    "get_users_by": "GET /2/users/by",
    "get_users": "GET /2/users",
}
#: Endpoints that accept only an OAuth 2.0 app-only bearer token (API reference, "Authentication").
APP_ONLY = {"search_all_tweets", "get_recent_tweets_count", "get_all_tweets_count"}
#: Paced to one request per second (full-archive search and counts).
FULL_ARCHIVE = {"search_all_tweets", "get_all_tweets_count"}
#: The endpoints that read posts (metered against the post cap; ``max_pages_per_day`` caps them).
POST_ENDPOINTS = {"search_recent_tweets", "search_all_tweets", "get_users_tweets"}
__all__ = ["XApiSource", "XApiError", "UsageCapExceeded"]


class XApiSource(PostSource):
    """Posts from the X API v2 with tweepy: ``mode`` ``search`` (a query) or ``timeline`` (accounts).

    Credentials: app-only ``bearer_token`` (env ``X_BEARER_TOKEN``), or OAuth 1.0a user context
    (``X_CONSUMER_KEY``, ``X_CONSUMER_SECRET``, ``X_ACCESS_TOKEN``, ``X_ACCESS_TOKEN_SECRET``).
    Full-archive search and the counts endpoints need the bearer token.
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
    context_annotations: bool = Field(
        default=True,
        description=(
            "Request context_annotations. Full-archive search then pages 100 posts (the API's cap with that field); "
            "False gives 500-post pages without context_annotations. Env: X_CONTEXT_ANNOTATIONS=0."
        ),
    )
    record_counts: bool = Field(
        default=True,
        description="Search mode: record the API's own count of matching posts per day (GET /2/tweets/counts/*, app-only). Env: X_RECORD_COUNTS=0 to skip.",
    )
    max_pages_per_day: Optional[int] = Field(default=None, ge=1, description="Stop after this many pages per day (search) or per account and run (timelines): a cost cap; the day lands short.")
    page_bound: int = Field(
        default=config.NUMBERS["TWEET_ASSETS_MAX_PAGES_PER_DAY"].default, ge=1,
        description="A day (search) or an account's timeline still offering a next_token after this many pages fails the run (pagination that never ends). Env: TWEET_ASSETS_MAX_PAGES_PER_DAY.",
    )
    max_retries: int = Field(default=5, ge=0, description="Retries of a request on 5xx, a timeout or a connection error.")
    backoff_s: float = Field(default=2.0, gt=0, description="First backoff in seconds; doubles per retry (capped at 120 s).")
    max_posts_per_run: Optional[int] = Field(
        default=None, ge=1,
        description="A run expected (counts endpoints) to read more posts is refused before its first post request. Env: TWEET_ASSETS_MAX_POSTS_PER_RUN; a collection's max_posts_per_run.",
    )
    max_posts_setting: str = Field(default="TWEET_ASSETS_MAX_POSTS_PER_RUN", description="Where max_posts_per_run was set (named when a run is refused).")
    cap_reserve_percent: float = Field(
        default=config.NUMBERS["TWEET_ASSETS_CAP_RESERVE"].default, ge=0, le=100,
        description="Percent of the monthly post cap no run may use (a run that would is refused). Env: TWEET_ASSETS_CAP_RESERVE.",
    )
    max_rate_limit_waits: int = Field(default=20, ge=0, description="429 responses waited out per request before failing.")
    max_rate_limit_wait_s: float = Field(
        default=config.NUMBERS["TWEET_ASSETS_MAX_RATE_LIMIT_WAIT_S"].default, ge=0,
        description="Seconds of rate-limit waits one run may sleep in total; past it the run fails, saying when the limit resets. Env: TWEET_ASSETS_MAX_RATE_LIMIT_WAIT_S.",
    )
    rate_limit_margin_s: float = Field(default=2.0, ge=0, description="Seconds added to x-rate-limit-reset before retrying.")
    throttle_wait_s: float = Field(default=THROTTLE_WAIT_S, ge=0, description="Sleep after a 429 with x-rate-limit-remaining > 0 (the per-second throttle), seconds.")
    connect_timeout_s: float = Field(default=TWARC_TIMEOUT[0], gt=0, description="HTTP connect timeout, seconds (twarc: 3.05). Env: X_HTTP_TIMEOUT=connect,read.")
    read_timeout_s: float = Field(default=TWARC_TIMEOUT[1], gt=0, description="HTTP read timeout, seconds (twarc: 31): longest wait for the next bytes.")
    deadline_s: float = Field(
        default=config.NUMBERS["X_HTTP_DEADLINE_S"].default, gt=0,
        description="Total seconds of one request (connect, headers and body): a trickling answer is abandoned and retried. Env: X_HTTP_DEADLINE_S.",
    )
    vocabulary: Literal["tweets", "posts", "auto"] = Field(
        default="auto",
        description=(
            "Request names: tweets (X's spec 2.159: tweet.fields, referenced_tweets.id), posts (spec 2.167: post.fields, "
            "referenced_posts), or auto: tweets first, switching once to posts (logged, kept for the run) when a 400 names "
            "a tweets-only parameter or value. Env: X_API_VOCABULARY."
        ),
    )
    base_url: str = Field(default=API_HOST, description="API host: the spec's https://api.x.com. Env: X_API_BASE_URL (tests point it at a loopback double).")

    _clock: tuple | None = PrivateAttr(default=None)
    _day_metadata: dict = PrivateAttr(default_factory=dict)
    _last_archive_request: list = PrivateAttr(default_factory=lambda: [0.0])
    _speaking: list = PrivateAttr(default_factory=lambda: [None, False])  # [vocabulary in use, switched already]
    _waits: WaitBudget | None = PrivateAttr(default=None)  # this run's rate-limit waits (:meth:`_run_waits`)
    _planned: dict = PrivateAttr(default_factory=dict)  # day -> (posts, counts endpoint) counted by spend_plan, used once

    @classmethod
    def from_env(cls, env, lake=None) -> "XApiSource":
        """Settings from the environment; secrets as ``EnvVar`` so Dagit never shows their values.

        Raises:
            ValueError: no credential variable is set, the mode's setting (query/accounts) is
                missing, or ``X_HTTP_TIMEOUT`` is not ``connect,read`` seconds (both finite, > 0);
                ``config.SettingError`` for a wrong numeric setting (``X_HTTP_DEADLINE_S``, ...).
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
        off = ("0", "false", "no")
        return cls(
            mode=mode,
            query=env.get("X_QUERY", "").strip(),
            accounts=accounts,
            full_archive=env.get("X_FULL_ARCHIVE", "") in ("1", "true", "yes"),
            context_annotations=env.get("X_CONTEXT_ANNOTATIONS", "1").strip().lower() not in off,
            record_counts=env.get("X_RECORD_COUNTS", "1").strip().lower() not in off,
            **cls._settings_from_env(env),
            **secrets,
        )

    @classmethod
    def for_usage(cls, env) -> "XApiSource":
        """The source as the project's app, for :meth:`usage` only (``x_api_usage``): the bearer
        token as ``EnvVar`` (None when ``X_BEARER_TOKEN`` is unset: :meth:`usage` then reads
        nothing), host and timeouts from the environment as :meth:`from_env`.

        Raises:
            ValueError: a setting is wrong (``X_HTTP_TIMEOUT``, ...).
        """
        token = EnvVar("X_BEARER_TOKEN") if env.get("X_BEARER_TOKEN") else None
        return cls(bearer_token=token, **cls._settings_from_env(env))

    @staticmethod
    def _settings_from_env(env) -> dict[str, Any]:
        """The HTTP, pagination and spend settings of the environment (not the query or accounts)."""
        settings: dict[str, Any] = {
            "deadline_s": config.number("X_HTTP_DEADLINE_S", env),
            "page_bound": config.number("TWEET_ASSETS_MAX_PAGES_PER_DAY", env),
            "max_rate_limit_wait_s": config.number("TWEET_ASSETS_MAX_RATE_LIMIT_WAIT_S", env),
            "max_posts_per_run": config.number("TWEET_ASSETS_MAX_POSTS_PER_RUN", env),
            "cap_reserve_percent": config.number("TWEET_ASSETS_CAP_RESERVE", env),
        }
        timeout = env.get("X_HTTP_TIMEOUT", "").strip()
        if timeout:
            connect, read = config.http_timeout(timeout)
            settings.update(connect_timeout_s=connect, read_timeout_s=read)
        vocabulary = env.get("X_API_VOCABULARY", "").strip().lower()
        if vocabulary:
            if vocabulary not in ("tweets", "posts", "auto"):
                raise ValueError(f"X_API_VOCABULARY={vocabulary!r}: set it to tweets (spec 2.159), posts (spec 2.167) or auto (the default).")
            settings["vocabulary"] = vocabulary
        if env.get("X_API_BASE_URL", "").strip():
            settings["base_url"] = env["X_API_BASE_URL"].strip()
        return settings

    @property
    def source_name(self) -> str:
        return "x_api"

    def describe(self) -> str:
        if self.mode == "search":
            return f"X API v2 search {self.query!r}" + (" (full archive when older than 7 days)" if self.full_archive else "")
        return f"X API v2 timelines of {', '.join(self.accounts)}"

    def with_clock(self, sleep: Callable[[float], None], now: Callable[[], datetime] | None = None) -> "XApiSource":
        """Inject ``sleep`` and (optionally) ``now`` on this instance (unit tests); returns self.
        Dagster copies resources per run, so tests through Dagster patch the module's ``_sleep`` and
        ``_utcnow``.
        """
        self._clock = (sleep, now or _utcnow)
        return self

    def _sleep(self, seconds: float) -> None:
        (self._clock[0] if self._clock else _sleep)(seconds)

    def _now(self) -> datetime:
        return (self._clock[1] if self._clock else _utcnow)()

    def day_metadata(self) -> dict[str, dict[str, Any]]:
        """Per day of the last :meth:`pages` call: ``api_post_count`` (and the endpoint it came
        from) in search mode, or why it is missing (``api_post_count_skipped``/``_error``);
        ``timeline_3200_limit`` (accounts whose posts of that day are out of the timeline
        endpoint's reach; ``timeline_3200_limit_unchecked`` when the probe failed) in timeline mode."""
        return {day: dict(values) for day, values in self._day_metadata.items()}

    def _note(self, day: str, key: str, value: Any, append: bool = False) -> None:
        values = self._day_metadata.setdefault(day, {})
        if append:
            values.setdefault(key, []).append(value)
        else:
            values[key] = value

    def _read(self, day: str, posts: int) -> None:
        """Count ``posts`` read from X (charged against the cap) for ``day``'s ``posts_read``."""
        values = self._day_metadata.setdefault(day, {})
        values["posts_read"] = values.get("posts_read", 0) + posts

    # --- spend (tweet_assets.sources.budget)
    def spend_limits(self):
        """This source's :class:`~tweet_assets.sources.budget.Limits`."""
        from tweet_assets.sources.budget import Limits

        return Limits(self.max_posts_per_run, self.max_posts_setting, self.cap_reserve_percent)

    def spend_plan(self, start: datetime, end: datetime, log: logging.Logger):
        """The run's :class:`~tweet_assets.sources.budget.SpendPlan`: per day the posts the counts
        endpoints expect (search; timelines cannot count), and the project's usage. Reads no post.

        A usage or counts request that failed (after retries, or past the run's rate-limit ceiling)
        is in the plan (``usage_error``, ``counts_error``: the refusal decides); a 403 (the access
        level has no such endpoint) or a missing bearer token only makes the cap or the count
        unknown (``unknown``).

        Raises:
            XApiError: a day the access cannot serve (as :meth:`pages` would), before any request.
            UsageCapExceeded: the counts endpoint answered ``usage-capped``.
        """
        from tweet_assets.sources.budget import SpendPlan

        days = days_in_window(start, end)
        if self.mode == "search":
            for day in days:
                self._search_method(day)  # what the access cannot serve is refused before any request
        unknown: list[str] = []
        usage = usage_error = None
        try:
            usage = self.usage(log)
        except AccessDenied as exc:
            unknown.append(f"{USAGE_ENDPOINT} is not open to this access level ({_one_line(exc)}): the post cap is unknown, only the per-run limit applies")
        except XApiError as exc:
            usage_error = _one_line(exc)
        if usage is None and usage_error is None and not self.bearer_token:
            unknown.append(f"{USAGE_ENDPOINT} was not read (app-only: set X_BEARER_TOKEN): the post cap is unknown")
        if self.mode == "timeline":
            unknown.append(
                f"user timelines have no counts endpoint: the posts a run of {len(self.accounts)} account(s) reads cannot be known before it "
                f"(at most {TIMELINE_LIMIT:,} per account, the endpoint's reach)"
            )
            return SpendPlan(days[0], days[-1], None, usage, tuple(unknown), usage_error=usage_error)
        if not self.bearer_token:
            unknown.append("the counts endpoints are app-only (set X_BEARER_TOKEN): the run's posts cannot be counted before it")
            return SpendPlan(days[0], days[-1], None, usage, tuple(unknown), usage_error=usage_error)
        try:
            expected, endpoints = self.expected_posts(days, log)
        except UsageCapExceeded:
            raise
        except AccessDenied as exc:  # an access level without the counts endpoints
            unknown.append(
                f"the counts endpoints are not open to this access level ({_one_line(exc)}): the run's posts cannot be counted before it"
                + (f", so {self.max_posts_setting} cannot be checked" if self.max_posts_per_run is not None else "")
            )
            return SpendPlan(days[0], days[-1], None, usage, tuple(unknown), usage_error=usage_error)
        except XApiError as exc:  # failed after retries, or past the run's rate-limit ceiling
            return SpendPlan(days[0], days[-1], None, usage, tuple(unknown), usage_error=usage_error, counts_error=_one_line(exc))
        return SpendPlan(days[0], days[-1], expected, usage, tuple(unknown), endpoints, usage_error=usage_error)

    def usage(self, log: logging.Logger) -> Usage | None:
        """The project's :class:`~tweet_assets.x.usage.Usage` (``GET /2/usage/tweets``, app-only),
        or None without a bearer token.

        Raises:
            XApiError: the request failed (after retries) or the answer is not a usage object.
        """
        if not self.bearer_token:
            return None
        client = self.client()
        response = self._call(lambda: client.request("GET", USAGE_ROUTE, params=usage_params()), USAGE_ENDPOINT, "project usage", log=log)
        try:
            return parse_usage(orjson.loads(response.content))
        except (orjson.JSONDecodeError, ValueError) as exc:
            raise XApiError(f"{USAGE_ENDPOINT}: {exc}") from None

    def expected_posts(self, days: list[str], log: logging.Logger) -> tuple[dict[str, int], tuple[str, ...]]:
        """``({day: posts the counts endpoints count for the query}, endpoints asked)`` for the
        search days ``days``: one ``granularity=day`` request per page of days per endpoint (recent
        days ``GET /2/tweets/counts/recent``, older ones ``/counts/all``), each day's window as
        :meth:`pages` asks it (a day not yet begun counts 0).

        Raises:
            XApiError: a day the access cannot serve, or the requests failed (after retries).
        """
        client = self.client()
        expected = {day: 0 for day in days}
        plan = [(day, self._search_method(day)) for day in days]
        asked = []
        for search_method in ("search_all_tweets", "search_recent_tweets"):
            group = [day for day, method in plan if method == search_method]
            start = datetime.strptime(group[0], DAY_FORMAT).replace(tzinfo=timezone.utc) if group else None
            if start is None:
                continue
            end_time = min(datetime.strptime(group[-1], DAY_FORMAT).replace(tzinfo=timezone.utc) + timedelta(days=1), self._now() - END_TIME_LAG)
            if end_time <= start:
                continue
            method_name = "get_all_tweets_count" if search_method == "search_all_tweets" else "get_recent_tweets_count"
            asked.append(ENDPOINTS[method_name])
            where = group[0] if len(group) == 1 else f"{group[0]}…{group[-1]}"
            window = {"start_time": _rfc3339(start), "end_time": _rfc3339(end_time)}
            for response, _, _ in self._paginate(client, method_name, where, log, None, query=self.query, granularity="day", **window):
                _, buckets, _ = _parse(response.content)
                to_tweet_names({"data": buckets})  # 2.167 buckets count post_count
                for bucket in buckets:
                    day = day_of(bucket.get("start")) if isinstance(bucket, dict) else None
                    if day in expected:
                        expected[day] += int(bucket.get("tweet_count") or 0)
            self._planned.update({day: (expected[day], ENDPOINTS[method_name]) for day in group})
        return expected, tuple(asked)

    # --- the client
    def client(self):
        """A ``tweepy.Client`` (:func:`tweet_assets.x.session.api_client`) returning raw
        ``requests.Response`` objects (bodies kept as received), whose session applies the
        ``(connect, read)`` timeout to every request and sends it to ``base_url``.

        Raises:
            XApiError: no credential configured (names the variables, never values).
        """
        user_context = all((self.consumer_key, self.consumer_secret, self.access_token, self.access_token_secret))
        if not self.bearer_token and not user_context:
            raise XApiError("no X API credential: set X_BEARER_TOKEN (app-only), or X_CONSUMER_KEY, X_CONSUMER_SECRET, X_ACCESS_TOKEN and X_ACCESS_TOKEN_SECRET (user context).")
        return http.api_client(
            bearer_token=self.bearer_token,
            consumer_key=self.consumer_key,
            consumer_secret=self.consumer_secret,
            access_token=self.access_token,
            access_token_secret=self.access_token_secret,
            timeout=(self.connect_timeout_s, self.read_timeout_s),
            base_url=self.base_url,
            deadline_s=self.deadline_s,
        )

    def speaking(self) -> Vocabulary:
        """The vocabulary requests are sent in now: the setting, or for ``auto`` ``tweets`` until
        a refusal switched this run to ``posts``."""
        if self._speaking[0] is None:
            self._speaking[0] = TWEETS if self.vocabulary == "auto" else self.vocabulary
        return FIELDS[self._speaking[0]]

    def _switch_vocabulary(self, exc: BaseException, endpoint: str, where: str, log: logging.Logger | None) -> bool:
        """With ``vocabulary=auto``, once per run: a 400 whose problem names a parameter or value
        only the vocabulary sent uses switches to the other one (logged); True when it did."""
        response = getattr(exc, "response", None)
        if self.vocabulary != "auto" or self._speaking[1] or getattr(response, "status_code", None) != 400:
            return False
        sent = self.speaking().name
        if not refuses_vocabulary(problem(response), sent):
            return False
        other = POSTS if sent == TWEETS else TWEETS
        self._speaking[:] = [other, True]
        if log is not None:
            log.warning(self._redact(
                f"{endpoint} {where}: {describe(exc)}: the API does not speak the {sent} vocabulary; switching to {other} "
                f"(X API spec {'2.167' if other == POSTS else '2.159'}) for the rest of this run. Set X_API_VOCABULARY={other} to skip this request."
            ))
        return True

    @property
    def _user_auth(self) -> dict:
        return {} if self.bearer_token else {"user_auth": True}

    # --- pages
    def pages(self, start: datetime, end: datetime, log: logging.Logger) -> Iterator[SourcePage]:
        """Yield the window's pages (see the module docstring); :meth:`day_metadata` holds what was
        learnt about each day once the pages are consumed.

        Raises:
            XApiError: a setting is missing or the access cannot serve a day (before any request),
                or the API refused / kept failing (after retries).
            UsageCapExceeded: the project's monthly post cap is used up.
        """
        self._day_metadata = {}
        client = self.client()
        if self.mode == "search" and not self.query.strip():
            raise XApiError("mode search needs a query: set X_QUERY (or the source's query).")
        if self.mode == "timeline" and not self.accounts:
            raise XApiError("mode timeline needs accounts: set X_ACCOUNTS to usernames or ids.")
        if self.mode == "timeline":
            yield from self._timelines(client, start, end, log)
            return
        # every day's endpoint is decided (and refused) before the first request
        plan = [(day, self._search_method(day)) for day in days_in_window(start, end)]
        for day, method_name in plan:
            day_start = datetime.strptime(day, DAY_FORMAT).replace(tzinfo=timezone.utc)
            day_end = day_start + timedelta(days=1)
            end_time = min(day_end, self._now() - END_TIME_LAG)
            if end_time <= day_start:
                log.info(f"{day}: the window has not started yet; nothing to fetch")
                continue
            window = {"start_time": _rfc3339(day_start), "end_time": _rfc3339(end_time)}
            try:
                for response, page_no, stats in self._paginate(client, method_name, day, log, lambda: self._post_params(method_name), query=self.query, **window):
                    parsed, data, errors = _parse(response.content)
                    if parsed is None:
                        log.warning(f"{ENDPOINTS[method_name]} {day} page {page_no}: the body is not a JSON object; landing it as received")
                    earliest, latest = created_at_range(data)
                    self._read(day, len(data))
                    yield SourcePage(
                        day, self._with_provenance(response, parsed), f"{ENDPOINTS[method_name]} {day} page {page_no}",
                        posts=len(data), api_errors=len(errors), earliest=earliest, latest=latest,
                        requests=1 + stats["retries"], retries=stats["retries"], rate_limit_wait_s=stats["wait"],
                    )
                if self.record_counts:
                    self._count_day(client, day, method_name, window, log)
            except UsageCapExceeded as exc:
                exc.day = day  # the day in progress: not landed (tweet_assets.sources.budget)
                raise

    def _post_params(self, method_name: str) -> dict:
        """Fields, expansions and ``max_results`` for a posts endpoint."""
        size = PAGE_SIZES[method_name]
        if method_name == "search_all_tweets" and self.context_annotations:
            size = CONTEXT_ANNOTATIONS_PAGE_SIZE
        return dict(max_results=size, **self.speaking().post_params(self.context_annotations), **self._user_auth)

    def _search_method(self, day: str) -> str:
        """``search_recent_tweets`` or ``search_all_tweets`` for ``day``; refuses what the access
        or the credentials cannot serve, before any request."""
        day_start = datetime.strptime(day, DAY_FORMAT).replace(tzinfo=timezone.utc)
        recent = day_start >= self._now() - timedelta(days=RECENT_SEARCH_DAYS) + RECENT_SEARCH_MARGIN
        method = "search_recent_tweets" if recent else "search_all_tweets"
        if not recent and not self.full_archive:
            raise XApiError(
                f"partition {day} is older than the 7 days recent search covers (GET /2/tweets/search/recent). "
                "Full-archive search (GET /2/tweets/search/all) needs Pro or Enterprise access: if your project has it, "
                "set X_FULL_ARCHIVE=1 (the source's full_archive); otherwise backfill only the last 7 days."
            )
        if method in APP_ONLY and not self.bearer_token:
            raise XApiError(
                f"partition {day} needs full-archive search (GET /2/tweets/search/all), which accepts only app-only "
                "authentication (OAuth 2.0 bearer token): set X_BEARER_TOKEN. The user-context credentials "
                "(X_CONSUMER_KEY/X_CONSUMER_SECRET/X_ACCESS_TOKEN/X_ACCESS_TOKEN_SECRET) are refused there."
            )
        limit = QUERY_LIMITS[method]
        if len(self.query) > limit:
            raise XApiError(f"the query is {len(self.query)} characters; {ENDPOINTS[method]} accepts at most {limit}.")
        return method

    def _count_day(self, client, day: str, search_method: str, window: dict, log: logging.Logger) -> None:
        """Record the API's own count of posts matching the query in the day's window
        (``granularity=day``, the search's ``start_time``/``end_time``) as ``api_post_count``."""
        method_name = "get_all_tweets_count" if search_method == "search_all_tweets" else "get_recent_tweets_count"
        endpoint = ENDPOINTS[method_name]
        if not self.bearer_token:
            self._note(day, "api_post_count_skipped", f"{endpoint} is app-only: set X_BEARER_TOKEN to record the API's count")
            return
        if day in self._planned:  # counted before the run by the budget guard (spend_plan): not asked again
            total, endpoint = self._planned.pop(day)
            self._note(day, "api_post_count", total)
            self._note(day, "api_post_count_endpoint", endpoint)
            return
        total = 0
        try:
            for response, _, _ in self._paginate(client, method_name, day, log, None, query=self.query, granularity="day", **window):
                parsed, buckets, _ = _parse(response.content)
                to_tweet_names({"data": buckets})  # 2.167 buckets count post_count
                total += sum(int(b.get("tweet_count") or 0) for b in buckets if isinstance(b, dict))
        except UsageCapExceeded:
            raise
        except XApiError as exc:
            log.warning(f"{day}: the API's post count is not recorded: {exc}")
            self._note(day, "api_post_count_error", str(exc)[:500])
            return
        self._note(day, "api_post_count", total)
        self._note(day, "api_post_count_endpoint", endpoint)
        log.info(f"{day}: {endpoint} counts {total:,} matching posts")

    # --- timelines
    def _timelines(self, client, start: datetime, end: datetime, log: logging.Logger) -> Iterator[SourcePage]:
        """Each account's timeline once for the whole window, pages split by day.

        Raises:
            XApiError: the window starts before 2010-11-06 (:data:`TIMELINE_EARLIEST`), before any request.
        """
        days = days_in_window(start, end)
        if start < TIMELINE_EARLIEST:
            early = [d for d in days if d < TIMELINE_EARLIEST.strftime(DAY_FORMAT)]
            raise XApiError(
                f"partition {early[0]}{'…' + early[-1] if len(early) > 1 else ''} is before 2010-11-06: GET /2/users/:id/tweets accepts "
                "start_time/end_time only on or after 2010-11-06T00:00:00Z (X API v2 spec). Backfill from 2010-11-06 on, or fetch "
                "older posts with full-archive search (X_QUERY='from:<username>', X_FULL_ARCHIVE=1)."
            )
        end_time = min(end, self._now() - END_TIME_LAG)
        if end_time <= start:
            log.info(f"{days[0]}…{days[-1]}: the window has not started yet; nothing to fetch")
            return
        window = {"start_time": _rfc3339(start), "end_time": _rfc3339(end_time)}
        for user in self._resolve_accounts(client, log):
            label = f"@{user['username']} ({user['id']})"
            endpoint = f"{ENDPOINTS['get_users_tweets']} {label}"
            oldest: str | None = None
            pages = 0
            last_day = days[-1]  # timelines run newest first
            for response, page_no, stats in self._paginate(client, "get_users_tweets", label, log, lambda: self._post_params("get_users_tweets"), id=user["id"], **window):
                pages = page_no
                parsed, data, errors = _parse(response.content)
                parts = _by_day(parsed, data, response.content) if parsed is not None else []
                cost = {"requests": 1 + stats["retries"], "retries": stats["retries"], "rate_limit_wait_s": stats["wait"]}
                if not parts:
                    if parsed is None or data or errors:  # nothing to date it by: land it beside its neighbour
                        self._read(last_day, len(data))
                        log.warning(f"{endpoint} page {page_no}: no post with a created_at; landing it with {last_day}")
                        yield SourcePage(last_day, self._with_provenance(response, parsed), f"{endpoint} page {page_no}", posts=len(data), api_errors=len(errors), **cost)
                    continue
                for day, body, posts, n_errors in parts:
                    if day not in days:
                        raise XApiError(f"{endpoint} page {page_no}: the API returned posts of {day}, outside the requested window {window}")
                    earliest, latest = created_at_range(posts)
                    oldest = min(filter(None, (oldest, earliest)), default=None)
                    self._read(day, len(posts))
                    yield SourcePage(
                        day, append_twarc(body, self._provenance(response)), f"{endpoint} page {page_no} ({day})",
                        posts=len(posts), api_errors=n_errors, earliest=earliest, latest=latest, **cost,
                    )
                    cost = {}
                    last_day = day
            if self.max_pages_per_day and pages >= self.max_pages_per_day:
                log.info(f"{label}: stopped at the page cap ({self.max_pages_per_day}); the 3,200-post limit was not checked")
            else:
                self._check_timeline_limit(client, user, label, start, days, oldest, log)

    def _check_timeline_limit(self, client, user: dict, label: str, start: datetime, days: list[str], oldest: str | None, log) -> None:
        """Flag the days out of reach of ``GET /2/users/:id/tweets`` (the 3,200 most recent posts).

        twarc2 warns when an account has more than 3,200 posts. Here that is confirmed with one
        probe (``end_time`` = the window's start, ``max_results=5``): if no post older than the
        window is returned although the account has more than 3,200 and existed before the window,
        the reach ends inside the window, at the oldest post fetched (or after the window).
        """
        tweet_count = int(((user.get("public_metrics") or {}).get("tweet_count")) or 0)
        created = user.get("created_at") or ""
        if tweet_count <= TIMELINE_LIMIT or (created and created >= _rfc3339(start)):
            return
        try:
            response = self._call(
                lambda: client.get_users_tweets(user["id"], end_time=_rfc3339(start), max_results=5, **{self.speaking().fields_param: "created_at"}, **self._user_auth),
                ENDPOINTS["get_users_tweets"], f"{label} probe before {days[0]}", log=log,
            )
        except UsageCapExceeded:
            raise
        except XApiError as exc:  # the window's pages are landed; say the limit could not be checked
            log.warning(f"{label}: the 3,200-post limit could not be checked: {exc}")
            for day in days:
                self._note(day, "timeline_3200_limit_unchecked", label, append=True)
            return
        _, older, _ = _parse(response.content)
        self._read(days[0], len(older))  # charged against the cap, landed nowhere
        if older:
            return
        reach = oldest[:10] if oldest else None
        affected = [d for d in days if reach is None or d <= reach]
        for day in affected:
            self._note(day, "timeline_3200_limit", label, append=True)
        log.warning(
            f"{label} has {tweet_count:,} posts; GET /2/users/:id/tweets returns only the 3,200 most recent, which reach back to "
            f"{oldest or 'after this window'}: posts of {affected[0]}…{affected[-1]} before that cannot be had from this "
            f"endpoint (full-archive search 'from:{user['username']}' can fetch them). Recorded as timeline_3200_limit."
        )

    def _resolve_accounts(self, client, log: logging.Logger) -> list[dict]:
        """The accounts as user objects (``id``, ``username``, ``created_at``, ``public_metrics``),
        in the configured order; usernames and ids looked up in batches of at most 100.

        Raises:
            XApiError: an account was not found (suspended, renamed, misspelled).
        """
        ids = [a for a in self.accounts if a.isdigit()]
        names = [a for a in self.accounts if not a.isdigit()]
        found: dict[str, dict] = {}
        lookups = [("usernames", "get_users_by", names[i : i + USERS_LOOKUP_BATCH]) for i in range(0, len(names), USERS_LOOKUP_BATCH)]
        lookups += [("ids", "get_users", ids[i : i + USERS_LOOKUP_BATCH]) for i in range(0, len(ids), USERS_LOOKUP_BATCH)]
        for number, (kind, endpoint_name, batch) in enumerate(lookups, start=1):
            response = self._call(
                lambda: client.get_users(**{kind: batch}, **self.speaking().user_params(), **self._user_auth),
                ENDPOINTS[endpoint_name], f"batch {number} ({len(batch)} accounts)", log=log,
            )
            for user in (_parse(response.content)[1]):
                to_tweet_names({"data": [user]})  # 2.167: public_metrics.post_count
                found[user["username"].lower()] = found[user["id"]] = user
        missing = [a for a in self.accounts if a.lower() not in found]
        if missing:
            raise XApiError(f"GET /2/users/by, GET /2/users: no account for {missing} (suspended, renamed or misspelled?)")
        if lookups:
            log.info(f"resolved {len(self.accounts)} account(s) in {len(lookups)} request(s), once for this run")
        return [found[a.lower()] for a in self.accounts]

    # --- requests
    def _paginate(self, client, method_name: str, where: str, log: logging.Logger, params_of: Callable[[], dict] | None, **params) -> Iterator[tuple[http.Response, int, dict]]:
        """``(response, page number, stats)`` for each page of ``method_name`` (a tweepy.Client
        method), following ``next_token``/``pagination_token``; full-archive endpoints paced to
        1 request/second. ``stats``: ``retries`` and ``wait`` (seconds slept on 429).

        ``params_of()`` gives the vocabulary's parameters (fields, expansions); when the
        vocabulary switches (:meth:`_switch_vocabulary`) the pages go on from the same token in
        the new names.

        Raises:
            XApiError: the API gave a ``next_token`` it had already given for this query and
                window (the pages would loop), or a next page is offered after :attr:`page_bound`
                pages; both before the next request, naming the token and ``where`` (the day).
        """
        endpoint = ENDPOINTS[method_name]
        cursor: dict = {"token": None}  # the meta.next_token of the page fetched last
        limit = (self.max_pages_per_day if method_name in POST_ENDPOINTS else None) or float("inf")
        if method_name == "get_recent_tweets_count":  # tweepy's Paginator would send pagination_token: follow meta.next_token as next_token
            state: dict = {"done": False}

            def fetch():
                if state["done"]:
                    return None
                response = client.get_recent_tweets_count(**params, **({"next_token": cursor["token"]} if cursor["token"] else {}))
                parsed, _, _ = _parse(response.content)
                meta = parsed.get("meta") if parsed else None
                cursor["token"] = meta.get("next_token") if isinstance(meta, dict) else None
                state["done"] = not cursor["token"]
                return response
        else:
            pager: dict = {"iterator": None, "speaking": None, "pages": 0}

            def fetch():
                speaking = self.speaking().name
                if pager["iterator"] is None or pager["speaking"] != speaking:
                    token = pager["iterator"].next_token if pager["iterator"] is not None else None
                    pager["iterator"] = http.Paginator(
                        getattr(client, method_name), **params, **(params_of() if params_of else {}), pagination_token=token, limit=limit - pager["pages"]
                    ).__iter__()
                    pager["speaking"] = speaking
                response = next(pager["iterator"], None)
                pager["pages"] += response is not None
                cursor["token"] = pager["iterator"].next_token
                return response
        given: dict[str, int] = {}  # next_token -> the page that gave it first
        page_no = 0
        while True:
            page_no += 1
            if method_name in FULL_ARCHIVE:  # 1 request/second
                wait = 1.0 - (time.monotonic() - self._last_archive_request[0])
                if wait > 0:
                    self._sleep(wait)
            stats = {"retries": 0, "wait": 0.0}
            response = self._call(fetch, endpoint, f"{where} page {page_no}", stats, log)
            if method_name in FULL_ARCHIVE:
                self._last_archive_request[0] = time.monotonic()
            if response is None:  # the paginator is done (no next_token, or the page cap)
                return
            if method_name in ("search_recent_tweets", "search_all_tweets", "get_users_tweets"):
                log.info(
                    f"{endpoint} {where} page {page_no}: rate limit remaining {response.headers.get('x-rate-limit-remaining', '?')}"
                    + (f", after {stats['retries']} retr{'y' if stats['retries'] == 1 else 'ies'}" if stats["retries"] else "")
                )
            token = cursor["token"]
            if token is not None and token in given:
                raise XApiError(self._redact(
                    f"{endpoint} {where} page {page_no}: the API gave next_token {token!r} a second time for the same query and window "
                    f"(first on page {given[token]}): its pages loop and would never end. Nothing of {where} is landed; run it again later "
                    "(a repeat that persists is the API's fault: report it with this token)."
                ))
            if token is not None and page_no >= self.page_bound and page_no < limit:
                raise XApiError(self._redact(
                    f"{endpoint} {where}: {page_no:,} pages fetched and the API still offers next_token {token!r}: past TWEET_ASSETS_MAX_PAGES_PER_DAY="
                    f"{self.page_bound:,}. Nothing of {where} is landed; if the day is really that large, raise TWEET_ASSETS_MAX_PAGES_PER_DAY."
                ))
            if token is not None:
                given[token] = page_no
            yield response, page_no, stats

    def _call(self, fn, endpoint: str, where: str, stats: dict | None = None, log: logging.Logger | None = None):
        """Run one request with twarc2's retry rules; raise :class:`XApiError` when it gives up.

        ``where`` says what was being fetched (day or account, page) for messages.
        """
        stats = stats if stats is not None else {"retries": 0, "wait": 0.0}
        attempts = Attempts()

        def on_retry(exc: BaseException, why: str, seconds: float) -> None:
            stats["retries"], stats["wait"] = attempts.retries, attempts.wait
            if log is not None:
                log.warning(self._redact(f"{endpoint} {where}: {describe(exc)}; {why}, retrying in {seconds:.1f}s"))

        try:
            return self._policy().decorator(attempts, on_retry)(fn)()
        except http.Unauthorized as exc:
            var = "X_BEARER_TOKEN" if self.bearer_token else "X_CONSUMER_KEY/X_CONSUMER_SECRET/X_ACCESS_TOKEN/X_ACCESS_TOKEN_SECRET"
            raise XApiError(self._redact(f"{endpoint} {where}: {describe(exc)}: the X API rejected the credential in {var}; check it is current (regenerate it in the developer portal).")) from None
        except http.Forbidden as exc:
            raise AccessDenied(self._redact(f"{endpoint} {where}: {describe(exc)}: your access level or authentication does not allow this endpoint.")) from None
        except http.TooManyRequests as exc:
            if usage_capped(exc):
                raise UsageCapExceeded(self._redact(
                    f"{endpoint} {where}: {describe(exc)}: the project's usage cap (monthly post cap) is used up; "
                    "the API serves no more posts until it resets (see the developer portal's usage page) or the access is upgraded. Not retried."
                )) from None
            if attempts.over_budget is not None:
                raise XApiError(self._redact(f"{endpoint} {where}: {describe(exc)}; {attempts.over_budget.describe()}.")) from None
            raise XApiError(self._redact(f"{endpoint} {where}: gave up after {self.max_rate_limit_waits} rate-limit wait(s); last: {describe(exc)}")) from None
        except (*http.REQUEST_ERRORS, *TRANSIENT_ERRORS) as exc:
            if isinstance(exc, http.HTTPException) and self._switch_vocabulary(exc, endpoint, where, log):
                return self._call(fn, endpoint, where, stats, log)  # fn reads the new vocabulary
            if isinstance(exc, http.HTTPException) and not retryable(exc):  # 400, 404, other 4xx: not retried
                raise XApiError(self._redact(f"{endpoint} {where}: {describe(exc)}")) from None
            raise XApiError(self._redact(f"{endpoint} {where}: gave up after {attempts.failed} failure(s) and {attempts.rate_limited} rate-limit wait(s); last: {describe(exc)}")) from None

    def _policy(self) -> RetryPolicy:
        """This source's :class:`~tweet_assets.x.retry.RetryPolicy`, on its injected clock."""
        return RetryPolicy(
            max_retries=self.max_retries, backoff_s=self.backoff_s, max_rate_limit_waits=self.max_rate_limit_waits,
            rate_limit_margin_s=self.rate_limit_margin_s, throttle_wait_s=self.throttle_wait_s, sleep=self._sleep, now=self._now,
            budget=self._run_waits(),
        )

    def _run_waits(self) -> WaitBudget:
        """The run's one :class:`~tweet_assets.x.retry.WaitBudget` (``max_rate_limit_wait_s``),
        made at its first request and shared by all that follow: the guard's (:meth:`usage`,
        :meth:`expected_posts`) and the pages'. Dagster builds a fresh resource for each run, so an
        instance is one run."""
        if self._waits is None:
            self._waits = WaitBudget(self.max_rate_limit_wait_s)
        return self._waits

    # --- provenance and secrets
    def _provenance(self, response) -> dict:
        """twarc2's ``__twarc`` record for a response: request URL, our version, retrieval time."""
        return twarc_record(self._redact(response.url), self._now())

    def _with_provenance(self, response, parsed) -> bytes:
        body = response.content
        return append_twarc(body, self._provenance(response)) if isinstance(parsed, dict) else body

    def _redact(self, text: str) -> str:
        return http.redact(text, (self.bearer_token, self.consumer_key, self.consumer_secret, self.access_token, self.access_token_secret))


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


def _one_line(exc: BaseException) -> str:
    """An error's message on one line (for a refusal or a log line)."""
    return " ".join(str(exc).split())


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(body: bytes) -> tuple[dict | None, list, list]:
    """``(page, data, errors)`` of a body; ``(None, [], [])`` when it is not a JSON object."""
    try:
        page = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, [], []
    if not isinstance(page, dict):
        return None, [], []
    data, errors = page.get("data"), page.get("errors")
    return page, data if isinstance(data, list) else [], errors if isinstance(errors, list) else []


def _by_day(page: dict, posts: list, body: bytes) -> list[tuple[str, bytes, list, int]]:
    """``[(day, page bytes, posts, API errors)]``: the body as received when its posts share a day,
    else one piece per day with its own includes and errors (:mod:`.day_split`); ``[]`` when no
    post has a readable ``created_at``."""
    days = [day_of(p.get("created_at")) if isinstance(p, dict) else None for p in posts]
    if not any(days):
        return []
    pieces = split_by_day(page, posts, days)
    if len(pieces) == 1:
        errors = page.get("errors")
        return [(pieces[0].day, body, posts, len(errors) if isinstance(errors, list) else 0)]
    return [(piece.day, piece.body(page, False), piece.posts, len(piece.errors)) for piece in pieces]
