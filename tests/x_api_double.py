"""A loopback double of the X API v2 endpoints the live source calls, strict about requests.

It serves a corpus of posts (``posts``, ``users``) on 127.0.0.1 the way the API does (newest
first, ``next_token``/``pagination_token`` pages, ``includes.users``, counts buckets in the
recorded shape of ``counts.jsonl`` and tweepy's cassettes) and **rejects what the API documents it
rejects**, with the API's 400/403 problem JSON, recording each rejection in ``violations`` so a
test fails on a wrong request even when the source swallows the error:

- unknown query parameters; unknown ``tweet.fields``/``expansions``/``user.fields``/... values;
- ``max_results`` outside the endpoint's bounds: search/recent 10-100, search/all 10-500 and at most
  100 with ``context_annotations`` (DocNow/twarc#504), users/:id/tweets 5-100;
- ``usernames`` (users/by) and ``ids`` (users): 1-100 per request;
- app-only endpoints (search/all, counts/recent, counts/all) called with OAuth 1.0a user context
  (403 ``unsupported-authentication``, as the API answers);
- ``start_time``/``end_time``: RFC 3339 second precision; ``start_time`` before ``end_time``;
  ``end_time`` at least 10 s before the request (the real clock: the API's "now"); recent search
  and recent counts only with ``start_time`` within the last 7 days of the real date;
- a pagination token the double did not issue, or the wrong token parameter for the endpoint.

Faults are queued per request (``fault(...)``): a canned status/headers/body (429s), ``stall``
(accept, read the request, answer nothing for a bounded time), ``drop`` (headers and half the body,
then close: ``ChunkedEncodingError``), ``bad_gzip`` (``Content-Encoding: gzip`` on bytes that are
not gzip: ``ContentDecodingError``), ``trickle`` (one byte every ``TRICKLE_EVERY_S`` of the
headers or of the body, until the client hangs up or ``seconds`` pass; how each ended is in
``trickles``). ``short_by_one_page`` ends search pagination one page early (a silently short day);
``loop_tokens`` makes pages point back: ``{"tok-200": "tok-100"}`` answers the page asked with
``tok-200`` with ``next_token: tok-100`` (A→B→A). Everything is bounded: stalls and trickles end at
``STALL_CAP_S`` (or their ``seconds``) or on ``reset()``.

The post cap (#38): ``GET /2/usage/tweets`` answers from ``post_cap`` (None: no cap, an enterprise
project), ``posts_used`` (every post served in a search or timeline page adds to it) and
``cap_reset_day``, in spec 2.167's shapes (numbers as strings; ``usage_as_integers`` for 2.159's);
``usage_data`` replaces the whole answer (missing fields). A post request once ``posts_used`` has
reached ``post_cap`` is answered ``429 usage-capped``, as X does. ``counts_vocabulary = "posts"``
answers counts in 2.167's names (``post_count``, ``total_post_count``); counts/all pages 31 daily
buckets. ``hold(endpoint)`` holds the next request to ``endpoint`` until the test releases it
(``(arrived, release)`` events; at most ``HOLD_CAP_S``), then answers it; ``fault("call", endpoint,
body=fn)`` calls ``fn()`` when the next request to ``endpoint`` arrives, then answers it.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

STALL_CAP_S = 5.0
HOLD_CAP_S = 120.0
#: Daily buckets per page of GET /2/tweets/counts/all (X's documented page: 31 days).
COUNTS_ALL_PAGE = 31
TRICKLE_EVERY_S = 0.05
FIRST_POST = datetime(2006, 3, 21, tzinfo=timezone.utc)

# Field and expansion names from the API reference's parameter lists (docs.x.com, X API v2).
TWEET_FIELDS = {
    "article", "attachments", "author_id", "card_uri", "community_id", "context_annotations", "conversation_id",
    "created_at", "display_text_range", "edit_controls", "edit_history_tweet_ids", "entities", "geo", "id",
    "in_reply_to_user_id", "lang", "media_metadata", "non_public_metrics", "note_tweet", "organic_metrics",
    "possibly_sensitive", "promoted_metrics", "public_metrics", "referenced_tweets", "reply_settings",
    "scopes", "source", "suggested_source_links", "text", "withheld",
}
EXPANSIONS = {
    "article.cover_media", "article.media_entities", "attachments.media_keys", "attachments.media_source_tweet",
    "attachments.poll_ids", "author_id", "edit_history_tweet_ids", "entities.mentions.username", "geo.place_id",
    "in_reply_to_user_id", "entities.note.mentions.username", "referenced_tweets.id", "referenced_tweets.id.attachments.media_keys",
    "referenced_tweets.id.author_id",
}
USER_FIELDS = {
    "affiliation", "confirmed_email", "connection_status", "created_at", "description", "entities", "id", "is_identity_verified",
    "location", "most_recent_tweet_id", "name", "parody", "pinned_tweet_id", "profile_banner_url", "profile_image_url",
    "protected", "public_metrics", "receives_your_dm", "subscription", "subscription_type", "url", "username",
    "verified", "verified_followers_count", "verified_type", "withheld",
}
MEDIA_FIELDS = {
    "alt_text", "duration_ms", "height", "media_key", "non_public_metrics", "organic_metrics", "preview_image_url",
    "promoted_metrics", "public_metrics", "type", "url", "variants", "width",
}
PLACE_FIELDS = {"contained_within", "country", "country_code", "full_name", "geo", "id", "name", "place_type"}
POLL_FIELDS = {"duration_minutes", "end_datetime", "id", "options", "voting_status"}
FIELD_SETS = {
    "tweet.fields": TWEET_FIELDS, "expansions": EXPANSIONS, "user.fields": USER_FIELDS,
    "media.fields": MEDIA_FIELDS, "place.fields": PLACE_FIELDS, "poll.fields": POLL_FIELDS,
}
POST_PARAMS = {"start_time", "end_time", "since_id", "until_id", "max_results", *FIELD_SETS}
SEARCH_PARAMS = POST_PARAMS | {"query", "next_token", "pagination_token", "sort_order"}

#: path pattern → rules (API reference of each endpoint).
ENDPOINTS = {
    "search_recent": dict(path=r"/2/tweets/search/recent", params=SEARCH_PARAMS, max_results=(10, 100), recent=True, query_max=512, token="next_token"),
    "search_all": dict(path=r"/2/tweets/search/all", params=SEARCH_PARAMS, max_results=(10, 500), app_only=True, query_max=1024, token="next_token"),
    "counts_recent": dict(path=r"/2/tweets/counts/recent", params={"query", "start_time", "end_time", "since_id", "until_id", "granularity"}, app_only=True, recent=True, query_max=512),
    "counts_all": dict(path=r"/2/tweets/counts/all", params={"query", "start_time", "end_time", "since_id", "until_id", "granularity", "next_token", "pagination_token"}, app_only=True, query_max=1024, token="next_token"),
    "timeline": dict(path=r"/2/users/(?P<id>\d+)/tweets", params=POST_PARAMS | {"pagination_token", "exclude"}, max_results=(5, 100), token="pagination_token"),
    "users_by": dict(path=r"/2/users/by", params={"usernames", "expansions", "tweet.fields", "user.fields"}, listed=("usernames", r"[A-Za-z0-9_]{1,15}")),
    "users": dict(path=r"/2/users", params={"ids", "expansions", "tweet.fields", "user.fields"}, listed=("ids", r"\d{1,19}")),
    "usage": dict(path=r"/2/usage/tweets", params={"days", "usage.fields"}, app_only=True),
}
#: The endpoints that read posts (metered against the post cap).
POST_ENDPOINTS = ("search_recent", "search_all", "timeline")
USAGE_FIELDS = {"cap_reset_day", "daily_client_app_usage", "daily_project_usage", "project_cap", "project_id", "project_usage"}

INVALID = {"title": "Invalid Request", "detail": "One or more parameters to your request was invalid.", "type": "https://api.twitter.com/2/problems/invalid-request"}
UNSUPPORTED_AUTH = {
    "title": "Unsupported Authentication",
    "detail": "Authenticating with OAuth 1.0a User Context is forbidden for this endpoint.  Supported authentication types are [OAuth 2.0 Application-Only].",
    "type": "https://api.twitter.com/2/problems/unsupported-authentication",
    "status": 403,
}
#: The body X sends when the monthly post cap is used up (xdevplatform/xdk#25), with remaining > 0.
USAGE_CAPPED = {
    "account_id": 1234567890,
    "product_name": "standard-basic",
    "title": "UsageCapExceeded",
    "period": "Monthly",
    "scope": "Product",
    "detail": "Usage cap exceeded: Monthly product cap",
    "type": "https://api.twitter.com/2/problems/usage-capped",
}
TOO_MANY = {"title": "Too Many Requests", "detail": "Too Many Requests", "type": "about:blank", "status": 429}


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def parse_time(value: str) -> datetime | None:
    for fmt in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%fZ"):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=timezone.utc)
        except ValueError:
            pass
    return None


@dataclass
class Seen:
    """One request the double received."""

    endpoint: str
    path: str
    params: dict[str, str]
    auth: str  # "app" | "user" | "none"
    url: str


@dataclass
class XApiDouble:
    """The server; ``reset()`` between tests. ``url`` is its base URL for ``XApiSource.base_url``."""

    posts: list[dict] = field(default_factory=list)
    users: dict[str, dict] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    canned: dict[str, tuple[int, dict, bytes]] = field(default_factory=dict)
    short_by_one_page: bool = False
    timeline_reach: int = 3200
    loop_tokens: dict[str, str] = field(default_factory=dict)
    trickles: list[str] = field(default_factory=list)
    trickle_ended: threading.Event = field(default_factory=threading.Event)
    post_cap: int | None = 1_000_000
    posts_used: int = 0
    cap_reset_day: int | None = 10
    usage_data: dict | None = None
    usage_as_integers: bool = False
    counts_vocabulary: str = "tweets"
    _faults: list = field(default_factory=list)
    _release: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> "XApiDouble":
        double = self

        class Handler(_Handler):
            api = double

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="x-api-double", daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        return self

    def __exit__(self, *exc) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()

    def reset(self) -> None:
        self._release.set()  # end any stall still running
        with self._lock:
            self.posts, self.users, self.seen, self.violations, self._faults = [], {}, [], [], []
            self.canned, self.short_by_one_page, self.timeline_reach = {}, False, 3200
            self.loop_tokens, self.trickles, self.trickle_ended = {}, [], threading.Event()
            self.post_cap, self.posts_used, self.cap_reset_day, self.usage_data, self.usage_as_integers = 1_000_000, 0, 10, None, False
            self.counts_vocabulary = "tweets"
        self._release = threading.Event()

    def fault(self, kind, endpoint: str | None = None, status: int = 0, headers: dict | None = None, body: dict | bytes | None = None, seconds: float = STALL_CAP_S) -> None:
        """Queue one fault for the next request (to ``endpoint``, e.g. ``search_recent``, if given):
        ``"http"`` (status, headers, body), ``"stall"``, ``"drop"``, ``"bad_gzip"``, or
        ``"trickle"`` (``body`` ``"headers"`` or ``"body"``: which part trickles; for at most
        ``seconds``)."""
        self._faults.append((endpoint, kind, status, headers or {}, body, min(seconds, STALL_CAP_S)))

    def requests_to(self, endpoint: str) -> list[Seen]:
        return [s for s in self.seen if s.endpoint == endpoint]

    def post_requests(self) -> list[Seen]:
        """The requests that read posts (search and timelines): what the post cap meters."""
        return [s for s in self.seen if s.endpoint in POST_ENDPOINTS]

    def hold(self, endpoint: str) -> tuple[threading.Event, threading.Event]:
        """Hold the next request to ``endpoint``: ``arrived`` is set when it comes, and it is
        answered once ``release`` is set (or after ``HOLD_CAP_S``)."""
        arrived, release = threading.Event(), threading.Event()
        self._faults.append((endpoint, "hold", 0, {}, (arrived, release), HOLD_CAP_S))
        return arrived, release

    # --- answers
    def answer(self, handler: "_Handler") -> None:
        parsed = urlparse(handler.path)
        raw = parse_qs(parsed.query, keep_blank_values=True)
        params = {k: v[-1] for k, v in raw.items()}
        auth_header = handler.headers.get("Authorization", "")
        auth = "app" if auth_header.startswith("Bearer ") else "user" if auth_header.startswith("OAuth ") else "none"
        name, match = _route(parsed.path)
        with self._lock:
            self.seen.append(Seen(name or "?", parsed.path, params, auth, handler.path))
            fault = next((f for f in self._faults if f[0] in (None, name)), None)
            if fault:
                self._faults.remove(fault)
        if fault and fault[1] == "hold":  # held until released, then answered as usual
            arrived, release = fault[4]
            arrived.set()
            release.wait(fault[5])
        elif fault and fault[1] == "call":  # something happens elsewhere first (another app reads posts), then the answer
            fault[4]()
        elif fault:
            return self._fault(handler, *fault[1:])
        if name is None:
            return handler.send(404, {"title": "Not Found Error", "detail": f"no route {parsed.path}", "type": "about:blank", "status": 404})
        if name in self.canned:
            status, headers, body = self.canned[name]
            return handler.send(status, body, headers)
        problems = self.validate(name, raw, auth)
        if problems == ["app-only"]:
            self.violations.append(f"{name}: user-context authentication on an app-only endpoint")
            return handler.send(403, UNSUPPORTED_AUTH)
        if problems:
            self.violations.extend(f"{name}: {p}" for p in problems)
            return handler.send(400, {"errors": [{"parameters": {}, "message": p} for p in problems], **INVALID})
        if name in ("users_by", "users"):
            return handler.send(200, self._users(name, params))
        if name.startswith("counts"):
            return handler.send(200, self._counts(name, params))
        if name == "usage":
            return handler.send(200, self._usage(params))
        with self._lock:
            capped = self.post_cap is not None and self.posts_used >= self.post_cap
        if capped:
            return handler.send(429, USAGE_CAPPED, {"x-rate-limit-remaining": "299"})
        page = self._posts(name, params, match)
        with self._lock:
            self.posts_used += len(page.get("data") or [])
        return handler.send(200, page)

    def validate(self, name: str, raw: dict[str, list[str]], auth: str) -> list[str]:
        """What the API would reject in this request (empty when it is valid)."""
        rules = ENDPOINTS[name]
        if rules.get("app_only") and auth != "app":
            return ["app-only"]
        problems = []
        if auth == "none":
            problems.append("no Authorization header")
        for key, values in raw.items():
            if key not in rules["params"]:
                problems.append(f"The query parameter [{key}] is not one of {sorted(rules['params'])}")
            if len(values) > 1:
                problems.append(f"[{key}] given {len(values)} times")
        params = {k: v[-1] for k, v in raw.items()}
        for key, allowed in FIELD_SETS.items():
            for value in filter(None, params.get(key, "").split(",")):
                if value not in allowed:
                    problems.append(f"The `{key}` query parameter value [{value}] is not one of {sorted(allowed)}")
        if "query" in rules["params"] and name != "timeline":
            query = params.get("query", "")
            if not 1 <= len(query) <= rules["query_max"]:
                problems.append(f"query length {len(query)} not in 1..{rules['query_max']}")
        if "max_results" in params and "max_results" in rules:
            lo, hi = rules["max_results"]
            value = int(params["max_results"]) if params["max_results"].isdigit() else -1
            if name == "search_all" and "context_annotations" in params.get("tweet.fields", ""):
                hi = 100  # DocNow/twarc#504: the API caps max_results at 100 with context_annotations
            if not lo <= value <= hi:
                problems.append(f"The `max_results` query parameter value [{params['max_results']}] is not between {lo} and {hi}")
        if "listed" in rules:
            key, pattern = rules["listed"]
            items = params.get(key, "").split(",") if params.get(key) else []
            if not 1 <= len(items) <= 100:
                problems.append(f"[{key}] must hold 1 to 100 values, got {len(items)}")
            problems += [f"[{key}] value {v!r} is not valid" for v in items if not re.fullmatch(pattern, v)]
        if name.startswith("counts") and params.get("granularity", "hour") not in ("minute", "hour", "day"):
            problems.append(f"granularity {params.get('granularity')!r} is not minute, hour or day")
        if name == "usage":
            days = params.get("days", "7")
            if not (days.isdigit() and 1 <= int(days) <= 90):
                problems.append(f"The `days` query parameter value [{days}] is not between 1 and 90")
            for value in params.get("usage.fields", "").split(",") if "usage.fields" in params else []:
                if value not in USAGE_FIELDS:
                    problems.append(f"The `usage.fields` query parameter value [{value}] is not one of {sorted(USAGE_FIELDS)}")
        problems += self._time_rules(name, rules, params)
        token_key = rules.get("token")
        for key in ("next_token", "pagination_token"):
            if key in params and (key != token_key and not (name == "counts_all" and key == "next_token")):
                problems.append(f"{key} is not this endpoint's pagination parameter ({token_key})")
            elif key in params and not params[key].startswith("tok-"):
                problems.append(f"{key} {params[key]!r} was not issued by the API")
        return problems

    def _time_rules(self, name: str, rules: dict, params: dict) -> list[str]:
        now = datetime.now(timezone.utc)  # the API's clock is the real one
        problems = []
        times = {}
        for key in ("start_time", "end_time"):
            if key in params:
                times[key] = parse_time(params[key])
                if times[key] is None:
                    problems.append(f"Invalid '{key}':'{params[key]}'. '{key}' must be a valid RFC 3339 timestamp")
        start, end = times.get("start_time"), times.get("end_time")
        if end and end > now - timedelta(seconds=10):
            problems.append(f"Invalid 'end_time':'{params['end_time']}'. 'end_time' must be a minimum of 10 seconds prior to the request time.")
        if start and end and start >= end:
            problems.append(f"Invalid 'start_time':'{params['start_time']}'. 'start_time' must be before 'end_time'")
        if start and rules.get("recent") and start < now - timedelta(days=7):
            problems.append(f"Invalid 'start_time':'{params['start_time']}'. 'start_time' must be on or after {rfc3339(now - timedelta(days=7))}")
        if start and start < FIRST_POST:
            problems.append(f"Invalid 'start_time':'{params['start_time']}'. 'start_time' must be on or after 2006-03-21T00:00Z")
        return problems

    def _window(self, params: dict) -> tuple[datetime, datetime]:
        now = datetime.now(timezone.utc)
        end = parse_time(params["end_time"]) if "end_time" in params else now - timedelta(seconds=30)
        start = parse_time(params["start_time"]) if "start_time" in params else end - timedelta(days=7)
        return start, end

    def _posts(self, name: str, params: dict, match) -> dict:
        start, end = self._window(params)
        posts = sorted(self.posts, key=lambda p: (p["created_at"], int(p["id"])), reverse=True)
        if name == "timeline":
            posts = [p for p in posts if p.get("author_id") == match.group("id")][: self.timeline_reach]
        posts = [p for p in posts if start <= parse_time(p["created_at"]) < end]
        size = int(params.get("max_results", 10))
        token = params.get("next_token") or params.get("pagination_token")
        offset = int(token.split("-")[1]) if token else 0
        chunk = posts[offset : offset + size]
        if not chunk:
            return {"meta": {"result_count": 0}}
        meta = {"newest_id": chunk[0]["id"], "oldest_id": chunk[-1]["id"], "result_count": len(chunk)}
        more = offset + size < len(posts)
        if more and self.short_by_one_page and name.startswith("search") and offset + 2 * size >= len(posts):
            more = False  # the chain silently ends one page early
        if more:
            meta["next_token"] = f"tok-{offset + size}"
        if token in self.loop_tokens:
            meta["next_token"] = self.loop_tokens[token]
        authors = {p.get("author_id") for p in chunk}
        users = [u for uid, u in self.users.items() if uid in authors]
        return {"data": chunk, "includes": {"users": users}, "meta": meta}

    def _usage(self, params: dict) -> dict:
        """The usage answer (spec 2.167's strings, or 2.159's integers), or ``usage_data``."""
        if self.usage_data is not None:
            return {"data": self.usage_data}
        number = (lambda n: n) if self.usage_as_integers else str
        today = datetime.now(timezone.utc).date()
        days = int(params.get("days", "7"))
        daily = [{"date": f"{today - timedelta(days=n):%Y-%m-%d}T00:00:00.000Z", "usage": number(0)} for n in range(days - 1, 0, -1)]
        daily.append({"date": f"{today:%Y-%m-%d}T00:00:00.000Z", "usage": number(self.posts_used)})
        # 2.159's daily_project_usage.project_id is an int32; 2.167's a string
        data: dict = {"project_id": "1369785403853424", "project_usage": number(self.posts_used), "daily_project_usage": {"project_id": 1234 if self.usage_as_integers else "1369785403853424", "usage": daily}}
        if self.post_cap is not None:
            data["project_cap"] = number(self.post_cap)
        if self.cap_reset_day is not None:
            data["cap_reset_day"] = self.cap_reset_day
        fields = params.get("usage.fields")
        return {"data": {k: v for k, v in data.items() if fields is None or k in fields.split(",")}}

    def _counts(self, name: str, params: dict) -> dict:
        start, end = self._window(params)
        step = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}[params.get("granularity", "hour")]
        buckets = []
        lo = start
        while lo < end:
            # buckets end on whole units (the recorded shape: the first starts at start_time)
            hi = min(end, datetime.fromtimestamp((lo.timestamp() // step.total_seconds() + 1) * step.total_seconds(), timezone.utc))
            n = sum(1 for p in self.posts if lo <= parse_time(p["created_at"]) < hi)
            buckets.append({"end": rfc3339(hi), "start": rfc3339(lo), "tweet_count": n})
            lo = hi
        meta: dict = {}
        if name == "counts_all":  # 31 daily buckets a page
            token = params.get("next_token") or params.get("pagination_token")
            offset = int(token.split("-")[1]) if token else 0
            if offset + COUNTS_ALL_PAGE < len(buckets):
                meta["next_token"] = f"tok-{offset + COUNTS_ALL_PAGE}"
            buckets = buckets[offset : offset + COUNTS_ALL_PAGE]
        meta["total_tweet_count"] = sum(b["tweet_count"] for b in buckets)
        if self.counts_vocabulary == "posts":  # spec 2.167's names
            buckets = [{"end": b["end"], "start": b["start"], "post_count": b["tweet_count"]} for b in buckets]
            meta["total_post_count"] = meta.pop("total_tweet_count")
        return {"data": buckets, "meta": meta}

    def _users(self, name: str, params: dict) -> dict:
        key = "usernames" if name == "users_by" else "ids"
        wanted = params[key].split(",")
        by = {(u["username"].lower() if key == "usernames" else u["id"]): u for u in self.users.values()}
        data = [by[w.lower() if key == "usernames" else w] for w in wanted if (w.lower() if key == "usernames" else w) in by]
        missing = [w for w in wanted if (w.lower() if key == "usernames" else w) not in by]
        body: dict = {"data": data} if data else {}
        if missing:
            body["errors"] = [
                {"value": w, "detail": f"Could not find user with {key}: [{w}].", "title": "Not Found Error", "resource_type": "user", "parameter": key,
                 "resource_id": w, "type": "https://api.twitter.com/2/problems/resource-not-found"}
                for w in missing
            ]
        return body

    def _fault(self, handler: "_Handler", kind: str, status: int, headers: dict, body, seconds: float) -> None:
        if kind == "http":
            return handler.send(status, body if body is not None else {}, headers)
        if kind == "stall":  # accepted and read; no answer until the cap (or reset), then close
            self._release.wait(seconds)
            handler.close_connection = True
            return None
        payload = json.dumps({"data": [{"id": "1", "text": "x" * 2000}], "meta": {"result_count": 1}}).encode()
        if kind == "trickle":  # a byte at a time: each arrives well within any read timeout
            head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
            handler.close_connection = True
            if body == "body":
                handler.wfile.write(head)
                handler.wfile.flush()
            data, sent = (payload if body == "body" else head + payload), 0
            ends = time.monotonic() + seconds
            try:
                while sent < len(data) and time.monotonic() < ends and not self._release.is_set():
                    handler.wfile.write(data[sent : sent + 1])
                    handler.wfile.flush()
                    sent += 1
                    self._release.wait(TRICKLE_EVERY_S)
            except OSError:  # the client hung up
                self.trickles.append(f"client hung up after {sent} byte(s) of the {body}")
            else:
                self.trickles.append(f"trickle of the {body} ended by the double after {sent} byte(s)")
            self.trickle_ended.set()
            return None
        if kind == "drop":  # promise the whole body, send half, hang up
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload[: len(payload) // 2])
            handler.wfile.flush()
            handler.close_connection = True
            return None
        if kind == "bad_gzip":
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Encoding", "gzip")
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
            return None
        raise ValueError(kind)


def _route(path: str):
    for name, rules in ENDPOINTS.items():
        match = re.fullmatch(rules["path"], path)
        if match:
            return name, match
    return None, None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    api: XApiDouble

    def setup(self) -> None:
        super().setup()
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no 40 ms Nagle/delayed-ACK stalls

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.api.answer(self)

    def send(self, status: int, body, headers: dict | None = None) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        headers = {"x-rate-limit-limit": "450", "x-rate-limit-remaining": "449", "x-rate-limit-reset": str(int(time.time()) + 900), **(headers or {})}
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:  # quiet
        pass


def synthetic_post(post_id: int, author_id: str, created_at: datetime, text: str = "") -> dict:
    """A minimal post with the fields the source requests most often."""
    return {
        "id": str(post_id),
        "text": text or f"post {post_id}",
        "created_at": rfc3339(created_at),
        "author_id": author_id,
        "edit_history_tweet_ids": [str(post_id)],
        "lang": "en",
        "public_metrics": {"retweet_count": 0, "reply_count": 0, "like_count": 0, "quote_count": 0},
    }


def synthetic_user(user_id: str, username: str, tweet_count: int, created_at: str = "2010-01-01T00:00:00.000Z") -> dict:
    return {
        "id": user_id,
        "username": username,
        "name": username.title(),
        "created_at": created_at,
        "public_metrics": {"followers_count": 10, "following_count": 5, "tweet_count": tweet_count, "listed_count": 0},
    }


def recorded_posts(pages: list[dict], day: datetime, count: int, offset: int = 0) -> tuple[list[dict], dict[str, dict]]:
    """``count`` recorded posts (from twarc's recorded pages) re-dated evenly across ``day`` (UTC),
    with the recorded authors; returns ``(posts, users by id)``."""
    posts = [dict(p) for page in pages for p in page["data"]][offset : offset + count]
    users = {u["id"]: u for page in pages for u in page.get("includes", {}).get("users", [])}
    step = 86400 / max(count, 1)
    for i, post in enumerate(posts):
        post["created_at"] = rfc3339(day + timedelta(seconds=int(i * step)))
    return posts, {uid: u for uid, u in users.items() if uid in {p.get("author_id") for p in posts}}
