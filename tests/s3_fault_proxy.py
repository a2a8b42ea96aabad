"""A fault-injecting reverse proxy in front of the moto S3 server, on 127.0.0.1 only.

It answers the first ``faults`` requests with an S3 error (503 SlowDown by default) and forwards
every other request to the real server unchanged. With :meth:`FaultProxy.hold`, it holds the first
request that matches and every request after it (a client cut off from S3, but whose requests are
delivered later), until :meth:`FaultProxy.release`: then they are forwarded one at a time, in the
order they arrived. Bounded: it serves until stopped, and a held request waits at most ``HOLD_BOUND_S``.
"""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

#: A held request is forwarded after this long whatever happens (only stops a broken test hanging).
HOLD_BOUND_S = 600


class FaultProxy:
    """``faults`` error answers first; with ``cut_after_bytes``, an outage once that many bytes of
    request bodies have been forwarded: every later request gets its connection dropped without
    an answer (what a client sees when the endpoint or the network goes away mid-upload)."""

    def __init__(self, upstream: str, faults: int = 0, status: int = 503, code: str = "SlowDown", cut_after_bytes: int | None = None):
        self.upstream = urlparse(upstream)
        self.remaining = faults
        self.status, self.code = status, code
        self.injected = 0
        self.forwarded = 0
        self.cut_after_bytes = cut_after_bytes
        self.body_bytes = 0
        self.dropped: list[str] = []  # "METHOD path?query" of the requests cut off
        self.lock = threading.Lock()
        self._hold_when = None  # (method, path, headers) -> bool
        self.held = threading.Event()  # the first matching request arrived and is held
        self.first_done = threading.Event()  # ... and, released, got its answer
        self.first_status: int | None = None
        self.held_requests: list[str] = []
        self._released = threading.Event()
        self._turn = threading.Condition()
        self._next_ticket = 0
        self._serving = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                ticket = proxy._take_ticket(self.command, self.path, self.headers)
                try:
                    self._answer(body, ticket)
                finally:
                    if ticket is not None:
                        proxy._done(ticket)

            def _answer(self, body: bytes, ticket):
                with proxy.lock:
                    cut = proxy.cut_after_bytes is not None and proxy.body_bytes >= proxy.cut_after_bytes
                    if cut:
                        proxy.dropped.append(f"{self.command} {self.path}")
                    else:
                        proxy.body_bytes += len(body)
                if cut:  # the outage: no answer, the connection is closed
                    self.close_connection = True
                    return
                with proxy.lock:
                    fault = proxy.remaining > 0
                    if fault:
                        proxy.remaining -= 1
                        proxy.injected += 1
                    else:
                        proxy.forwarded += 1
                if fault:
                    payload = f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{proxy.code}</Code><Message>injected</Message></Error>".encode()
                    self.send_response(proxy.status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                conn = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                headers["Host"] = f"{proxy.upstream.hostname}:{proxy.upstream.port}"
                conn.request(self.command, self.path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                if ticket == 0:
                    proxy.first_status = response.status
                self.send_response_only(response.status)  # the server's own Date (the storage's clock) passes through
                for key, value in response.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                # a HEAD answer has no body but the object's length (RFC 9110, 9.3.2)
                self.send_header("Content-Length", response.getheader("Content-Length", "0") if self.command == "HEAD" else str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # --- holding
    def hold(self, when) -> None:
        """Hold the first request for which ``when(method, path, headers)`` is true, and every
        request after it, until :meth:`release`."""
        self._hold_when = when

    def _take_ticket(self, method: str, path: str, headers) -> int | None:
        with self._turn:
            if self._released.is_set() and self._serving == self._next_ticket:
                return None  # nothing held any more: straight through
            if not self.held.is_set():
                if self._hold_when is None or not self._hold_when(method, path, headers):
                    return None
                self.held.set()
            ticket = self._next_ticket
            self._next_ticket += 1
            self.held_requests.append(f"{method} {path}")
            self._turn.wait_for(lambda: self._released.is_set() and self._serving == ticket, timeout=HOLD_BOUND_S)
            return ticket

    def _done(self, ticket: int) -> None:
        with self._turn:
            if ticket == 0:
                self.first_done.set()
            self._serving = ticket + 1
            self._turn.notify_all()

    def release(self) -> None:
        """Forward the held requests, one at a time in their order of arrival."""
        with self._turn:
            self._released.set()
            self._turn.notify_all()

    def __enter__(self) -> "FaultProxy":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()
