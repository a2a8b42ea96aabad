"""The total request deadline (#36 point 4) also covers an answer sent with ``Connection: close``.

http.client hands such a connection's socket to the response inside ``getresponse()`` (the
connection's ``sock`` is None from then on), so a watchdog that looked the socket up on the
connection when the deadline passed found none, and the body read was bounded only by the read
timeout between bytes. Seen before the fix (deadline 0.5 s, a byte every 0.05 s for 4 s): with a
``Content-Length`` the request failed only after the whole trickle; without one it returned a
normal ``200``. And a body without a length cut short by the watchdog read as its end (EOF), so it
was returned as a success.

This file's own server (raw sockets on 127.0.0.1) answers ``HTTP/1.1 200`` with
``Connection: close``, with or without ``Content-Length``, then trickles the body a byte at a
time, each byte well inside the read timeout. Between bytes it looks for the client's hang-up (EOF
on its side of the socket) and records how the trickle ended. Everything is bounded: the trickle
ends after ``TRICKLE_S`` whatever the client does, and teardown ends it at once.
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time

import orjson
import pytest

from tests.x.test_x_api import SECRET, Sleeps
from tweet_assets.sources.x_api import XApiError, XApiSource
from tweet_assets.x.session import ApiSession, DeadlineExceeded

LOG = logging.getLogger("test")
DEADLINE_S = 0.5
#: How long the server trickles at most (the old code waited all of it).
TRICKLE_S = 4.0
EVERY_S = 0.05
#: The request ends this soon after its deadline (a shut-down socket wakes the read at once; the
#: margin is for a loaded machine, well below the trickle's 4 s).
MARGIN_S = 1.0
USAGE = orjson.dumps({"data": {"project_cap": "1000", "project_usage": "12", "cap_reset_day": 10}})


class ClosingServer:
    """Answers each connection by the next of ``scripts`` (then ``answer`` for the rest):
    ``("trickle", with_length)`` sends a 200 with ``Connection: close`` and trickles ``USAGE``;
    ``("answer", body)`` sends the whole body at once. ``ended`` lists how each trickle ended:
    ``("hung up", bytes sent)`` when the client closed its side, ``("done", bytes sent)`` otherwise."""

    def __init__(self, scripts: list[tuple]):
        self.scripts = list(scripts)
        self.ended: list[tuple[str, int]] = []
        self.trickled = threading.Event()
        self.stop = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, name="closing-server", daemon=True)

    def __enter__(self) -> "ClosingServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.listener.close()
        self.thread.join(TRICKLE_S + 5)

    def _serve(self) -> None:
        self.listener.settimeout(0.1)
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                request += chunk
            kind, arg = self.scripts.pop(0) if self.scripts else ("answer", USAGE)
            if kind == "answer":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n" + f"Content-Length: {len(arg)}\r\n\r\n".encode() + arg)
                return
            length = f"Content-Length: {len(USAGE)}\r\n" if arg else ""
            conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n{length}\r\n".encode())
            sent, ends = 0, time.monotonic() + TRICKLE_S
            try:
                while sent < len(USAGE) and time.monotonic() < ends and not self.stop.is_set():
                    if select.select([conn], [], [], 0)[0] and conn.recv(1) == b"":  # the client closed its side
                        self.ended.append(("hung up", sent))
                        return
                    conn.sendall(USAGE[sent : sent + 1])
                    sent += 1
                    self.stop.wait(EVERY_S)
            except OSError:
                self.ended.append(("hung up", sent))
                return
            finally:
                self.trickled.set()
            self.ended.append(("done", sent))


def _trickle_outlasts_the_deadline():
    # the whole body takes len(USAGE) * EVERY_S or TRICKLE_S: either way far past the deadline plus its margin
    assert min(len(USAGE) * EVERY_S, TRICKLE_S) > DEADLINE_S + MARGIN_S + 1


@pytest.mark.parametrize("with_length", [True, False], ids=["content-length", "no-length"])
def test_a_connection_close_answer_ends_at_the_deadline(with_length):
    """The request fails with DeadlineExceeded at its deadline (not after the trickle), the server
    sees the client hang up before it sent the whole body, and a body without a length cut short by
    the watchdog is never returned as a 200."""
    _trickle_outlasts_the_deadline()
    with ClosingServer([("trickle", with_length)]) as server:
        session = ApiSession(timeout=(2.0, 10.0), base_url=server.url, deadline_s=DEADLINE_S)
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded, match=r"total deadline of 0.5 s"):
            response = session.get(f"{server.url}/2/usage/tweets")
            pytest.fail(f"a {response.status_code} with {len(response.content)} of {len(USAGE)} bytes was returned as a success")
        elapsed = time.monotonic() - started
        assert server.trickled.wait(TRICKLE_S + 5)
        assert elapsed < DEADLINE_S + MARGIN_S, f"the request ended {elapsed:.2f} s after it started (deadline {DEADLINE_S} s)"
        until = time.monotonic() + TRICKLE_S + 5
        while not server.ended and time.monotonic() < until:
            server.stop.wait(0.01)
        (how, sent), = server.ended
        assert how == "hung up" and sent < len(USAGE)


@pytest.mark.parametrize("with_length", [True, False], ids=["content-length", "no-length"])
def test_a_connection_close_trickle_is_retried_by_the_usual_policy(with_length):
    """Through the source (GET /2/usage/tweets, as the guard and the x_api_usage sensor read it):
    the trickling answer is abandoned at the deadline, the usual backoff (2 s, recorded, not slept)
    is taken, and the retry's whole answer is the usage read."""
    with ClosingServer([("trickle", with_length)]) as server:
        sleeps = Sleeps()
        source = XApiSource(bearer_token=SECRET, base_url=server.url, connect_timeout_s=2.0, read_timeout_s=10.0, deadline_s=DEADLINE_S).with_clock(sleeps)
        records: list[logging.LogRecord] = []
        handler = logging.Handler()
        handler.emit = records.append
        LOG.addHandler(handler)
        started = time.monotonic()
        try:
            usage = source.usage(LOG)
        finally:
            LOG.removeHandler(handler)
        assert time.monotonic() - started < DEADLINE_S + MARGIN_S + 1
        assert (usage.project_cap, usage.project_usage) == (1000, 12)
        assert sleeps == [2.0]
        warning = next(r.getMessage() for r in records if r.levelno == logging.WARNING)
        assert "GET /2/usage/tweets project usage" in warning and "total deadline of 0.5 s" in warning and "retrying in 2.0s" in warning


def test_a_connection_close_trickle_that_never_ends_fails_naming_the_deadline():
    with ClosingServer([("trickle", False), ("trickle", False)]) as server:
        source = XApiSource(bearer_token=SECRET, base_url=server.url, connect_timeout_s=2.0, read_timeout_s=10.0, deadline_s=DEADLINE_S, max_retries=1).with_clock(Sleeps())
        started = time.monotonic()
        with pytest.raises(XApiError, match=r"gave up after 2 failure\(s\).*total deadline of 0.5 s"):
            source.usage(LOG)
        assert time.monotonic() - started < 2 * (DEADLINE_S + MARGIN_S)
