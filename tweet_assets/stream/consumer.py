"""The filtered-stream connection: ``GET /2/tweets/search/stream``, read line by line, landed.

**Why not tweepy's ``StreamingClient``** (tweepy 4.17, ``BaseStream._connect``): it follows the
same documented waits, but (1) it sleeps with the module's own ``time.sleep`` and reads the clock
itself, so the schedule cannot be driven by an injected clock without patching tweepy's privates;
(2) on a clean close it hands the unterminated rest of the buffer to ``on_data`` as if it were a
message (``requests.iter_lines`` yields its pending part), so a message cut by a disconnect would
be landed half; (3) a ``200 OK`` resets the backoff before any byte arrives, so a server that
accepts and drops at once is reconnected to at the shortest wait; (4) the response of a refused
connection (409 / 429 ``TooManyConnections``: another connection is open) is only logged, not
given to the caller, so it cannot be told apart and said clearly. So this module is a small
``requests`` loop with :class:`~tweet_assets.stream.reconnect.Backoff`; tweepy still does the rules
(:mod:`.rules`).

Each line of the response is one message (``data``, ``includes``, ``matching_rules``, ``errors``)
or an empty keep-alive line (every 20 s). A message is landed unchanged with twarc2's
``"__twarc": {"url", "version", "retrieved_at"}`` appended as its last key (the same provenance the
search source lands, :mod:`tweet_assets.x.provenance`); a line that is not a JSON object is
landed as received (``clean_tweets`` quarantines it). Bytes after the last newline when the
connection breaks are a message cut short: not landed, counted as ``partial_dropped`` (X does not
resend it; :mod:`.segments` says what the durability promise covers).

The request asks for the same ``tweet.fields``, ``expansions``, ``user.fields``, ``media.fields``,
``place.fields``, ``poll.fields`` as the search source (:func:`tweet_assets.x.fields.stream_params`: the filtered stream keeps the
tweet names in both spec vocabularies).
Progress and health are logged every ``health_every_s`` (60 s): messages and messages/s, keep-alives,
reconnects, the last message's time, segments published; the same record is stored in the lake
as ``raw_stream/_consumer/health.json`` for the Dagster side.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timezone
from typing import Callable

import orjson

from tweet_assets.sources.base import day_of
from tweet_assets.x import session as http
from tweet_assets.x.fields import stream_params
from tweet_assets.x.problems import describe, describe_response, problem
from tweet_assets.x.provenance import append_twarc, twarc_record
from tweet_assets.x.session import API_HOST
from tweet_assets.stream.reconnect import HTTP, NETWORK, STALL_TIMEOUT_S, Backoff, FatalStreamError, classify_status
from tweet_assets.stream.segments import SegmentWriter

STREAM_PATH = "/2/tweets/search/stream"
CONNECT_TIMEOUT_S = 3.05  # twarc's connect timeout
HEALTH_EVERY_S = 60.0
HEALTH_KEY = "_consumer/health.json"
log = logging.getLogger("tweet_assets.stream")


def _iso_ms(epoch_s: float) -> str:
    moment = datetime.fromtimestamp(epoch_s, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _day_of(message: dict, received_s: float) -> str:
    """UTC day of the post's ``created_at``; else (an ``errors``-only message) of receipt."""
    data = message.get("data")
    day = day_of(data.get("created_at")) if isinstance(data, dict) else None
    return day or datetime.fromtimestamp(received_s, timezone.utc).strftime("%Y-%m-%d")


class StreamConsumer:
    """Connects, lands messages through ``writer``, reconnects on the documented schedule.

    Args:
        bearer_token: the app's OAuth 2.0 bearer token (app-only; never logged).
        writer: a :class:`~tweet_assets.stream.segments.SegmentWriter`.
        base_url: the API host (tests: a loopback server).
        stall_timeout_s: seconds without a byte (data or keep-alive) that count as a stall (90).
        clock: seconds since the epoch; sleep: waits that many seconds and returns early when
            stopping (default: :meth:`stop`-aware ``Event.wait``). Tests inject both.
        max_connections: stop after this many connection attempts (tests); None: run until stopped.
    """

    def __init__(
        self,
        bearer_token: str,
        writer: SegmentWriter,
        *,
        base_url: str = API_HOST,
        stall_timeout_s: float = STALL_TIMEOUT_S,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        health_every_s: float = HEALTH_EVERY_S,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] | None = None,
        max_connections: int | None = None,
        read_size: int = 1 << 16,
    ):
        if not bearer_token:
            raise FatalStreamError("the filtered stream needs an app-only bearer token: set X_BEARER_TOKEN")
        self._token = bearer_token
        self.writer = writer
        self.base_url = base_url.rstrip("/")
        self.stall_timeout_s = stall_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.health_every_s = health_every_s
        self.clock = clock
        self._stop = threading.Event()
        self.sleep = sleep or self._stop.wait
        self.max_connections = max_connections
        self.read_size = read_size
        self.backoff = Backoff()
        self.waits: list[tuple[str, float]] = []  # (kind, seconds) of every wait, in order
        self.counts = {"messages": 0, "keep_alives": 0, "connections": 0, "reconnects": 0, "partial_dropped": 0, "not_json": 0, "stalls": 0}
        self.last_message_at: float | None = None
        self._health_at = clock()
        self._health_messages = 0
        self.session = http.stream_session((connect_timeout_s, stall_timeout_s), base_url)

    @property
    def url(self) -> str:
        """The stream URL as landed in ``__twarc.url`` (the real API host, no credentials)."""
        return API_HOST + STREAM_PATH

    def stop(self) -> None:
        """Ask :meth:`run` to return after the current line (from another thread or a signal)."""
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def run(self) -> None:
        """Connect and land messages until :meth:`stop` (or ``max_connections``), then publish
        the open spools.

        Raises:
            FatalStreamError: 400/401/403 and other answers reconnecting cannot fix.
            OSError, tweet_assets.lake.store.LakeError: the spool or the lake failed (nothing counted as
                received is lost: the spools stay for the next start).
        """
        try:
            while not self.stopped:
                if self.max_connections is not None and self.counts["connections"] >= self.max_connections:
                    break
                kind = self._connect_once()
                if kind is None or self.stopped:
                    continue
                wait = self.backoff.wait(kind)
                self.waits.append((kind, wait))
                self.counts["reconnects"] += 1
                log.info("reconnecting in %.2f s (%s backoff, attempt %d)", wait, kind, self.backoff.attempts[kind])
                self.writer.roll_due()
                self.sleep(wait)
        finally:
            self.writer.close()
            self._health(force=True)

    def _connect_once(self) -> str | None:
        """One connection; returns the backoff kind of its failure, or None when stopping."""
        self.counts["connections"] += 1
        try:
            response = self.session.get(
                self.base_url + STREAM_PATH,
                params=stream_params(),
                headers={"Authorization": f"Bearer {self._token}"},
                stream=True,
                timeout=(self.connect_timeout_s, self.stall_timeout_s),
            )
        except http.CONNECT_ERRORS as exc:
            log.warning("cannot connect to %s: %s", self.url, describe(exc))
            return NETWORK
        with response:
            if response.status_code != 200:
                return self._refused(response)
            log.info("connected to %s", self.url)
            buffer = b""
            try:
                for chunk in response.iter_content(chunk_size=None):
                    if not chunk:
                        continue
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        self._line(line.rstrip(b"\r"))
                    self._health()
                    if self.stopped:
                        return None
                reason = "the server closed the stream"
            except http.BROKEN_BODY_ERRORS as exc:
                if http.is_timeout(exc):
                    self.counts["stalls"] += 1
                    reason = f"stall: nothing received for {self.stall_timeout_s:g} s (not even a keep-alive)"
                else:
                    reason = f"connection broken: {type(exc).__name__}"
            if buffer.strip():
                self.counts["partial_dropped"] += 1
                reason += f"; a message cut short ({len(buffer)} bytes) was not landed"
            log.warning("%s", reason)
            return NETWORK

    def _refused(self, response) -> str:
        status = response.status_code
        text = describe_response(response)
        kind = classify_status(status)
        found = problem(response)
        if status == 409 or (status == 429 and ("connection" in str(found.get("type", "")).lower() or "TooManyConnections" in str(found.get("title", "")))):
            log.error(
                "%s: another connection to this app's filtered stream is already open (one at a time on this access tier): "
                "stop the other consumer (another host, container or service task); retrying on the %s schedule",
                text,
                kind,
            )
            return kind or HTTP
        if kind is None:
            raise FatalStreamError(f"GET {STREAM_PATH} refused: {text}. Check X_BEARER_TOKEN and that your access tier includes the filtered stream (Pro or higher; check your developer portal).")
        log.warning("GET %s: %s", STREAM_PATH, text)
        return kind

    def _line(self, line: bytes) -> None:
        now = self.clock()
        if not line.strip():
            self.counts["keep_alives"] += 1
            self.backoff.reset()
            self.writer.roll_due()
            return
        try:
            message = orjson.loads(line)
        except orjson.JSONDecodeError:
            message = None
        if isinstance(message, dict):
            body = append_twarc(line, twarc_record(self.url, datetime.fromtimestamp(now, timezone.utc)))
            day = _day_of(message, now)
        else:
            self.counts["not_json"] += 1
            log.warning("landed a stream line that is not a JSON object as received (%d bytes)", len(line))
            body, day = line, datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m-%d")
        self.writer.append(day, body, int(now * 1000))
        self.counts["messages"] += 1
        self.last_message_at = now
        self.backoff.reset()

    def health(self) -> dict:
        """The consumer's state: counts, ``last_message_at`` (ISO UTC or None), ``segments_published``,
        ``segments_waiting`` (sealed, refused by the lake so far), ``newest_segment_end`` (ISO UTC or
        None), ``at`` (now)."""
        now = self.clock()
        newest = self.writer.newest_end_ms
        return {
            "at": _iso_ms(now),
            **self.counts,
            "last_message_at": _iso_ms(self.last_message_at) if self.last_message_at else None,
            "segments_published": len(self.writer.published),
            "segments_waiting": len(self.writer.unpublished),
            "newest_segment_end": _iso_ms(newest / 1000) if newest else None,
        }

    def _health(self, force: bool = False) -> None:
        now = self.clock()
        elapsed = now - self._health_at
        if not force and elapsed < self.health_every_s:
            return
        record = self.health()
        rate = (self.counts["messages"] - self._health_messages) / elapsed if elapsed > 0 else 0.0
        record["messages_per_s"] = round(rate, 3)
        self._health_at, self._health_messages = now, self.counts["messages"]
        log.info(
            "stream health: %d messages (%.2f/s), %d keep-alives, %d reconnects, %d stalls, last message %s, %d segments published",
            record["messages"], rate, record["keep_alives"], record["reconnects"], record["stalls"], record["last_message_at"], record["segments_published"],
        )
        try:
            self.writer.lake.put_bytes(f"{self.writer.prefix}/{HEALTH_KEY}", orjson.dumps(record))
        except Exception as exc:  # health is advisory: the stream goes on
            log.warning("could not store the health record: %s", exc)

