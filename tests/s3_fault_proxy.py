"""A fault-injecting reverse proxy in front of the moto S3 server, on 127.0.0.1 only.

It answers the first ``faults`` requests with an S3 error (503 SlowDown by default) and forwards
every other request to the real server unchanged. Bounded: it serves until stopped.
"""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse


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
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
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
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FaultProxy":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
