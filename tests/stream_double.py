"""A loopback double of the X API v2 filtered stream (127.0.0.1 only), scripted per connection.

``GET /2/tweets/search/stream`` takes the next plan of :attr:`StreamDouble.plans`:

- ``("status", code, problem)``: answer ``code`` with the problem JSON (``503``, ``429``, ``409``);
- ``("stream", steps)``: ``200`` with ``Transfer-Encoding: chunked`` (as X answers), then each step:
  ``("msg", bytes)`` one message and ``\\r\\n``; ``("keepalive",)`` a bare ``\\r\\n``;
  ``("partial", bytes)`` the first half of a message (a chunk of its own: X's chunks do not follow
  messages), then the socket is closed;
  ``("stall", seconds)`` nothing for that long, then the socket is closed; ``("end",)`` a clean end.

No plans left: ``503``. ``/2/tweets/search/stream/rules`` keeps a rule list like the API
(``GET``; ``POST`` add/delete with ``dry_run``; a value containing ``INVALID`` is refused) and
records every request in :attr:`rule_requests`.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


class StreamDouble:
    def __init__(self):
        self.plans: list = []
        self.requests: list[dict] = []
        self.rules: list[dict] = []
        self.rule_requests: list[dict] = []
        self.rules_refusal: tuple | None = None  # (status, problem) for GET rules
        self.sent: list[bytes] = []  # messages written whole (not partial)
        self._next_id = 1000
        self._lock = threading.Lock()
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _json(self, code, body):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                url = urlparse(self.path)
                if url.path == "/2/tweets/search/stream/rules":
                    double.rule_requests.append({"method": "GET"})
                    if double.rules_refusal:
                        return self._json(*double.rules_refusal)
                    return self._json(200, {"data": list(double.rules), "meta": {"result_count": len(double.rules)}} if double.rules else {"meta": {"result_count": 0}})
                if url.path != "/2/tweets/search/stream":
                    return self._json(404, {"title": "Not Found"})
                with double._lock:
                    double.requests.append({"params": parse_qs(url.query), "auth": self.headers.get("Authorization", "")})
                    plan = double.plans.pop(0) if double.plans else ("status", 503, {"title": "Service Unavailable"})
                if plan[0] == "status":
                    return self._json(plan[1], plan[2])
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for step in plan[1]:
                    kind = step[0]
                    if kind == "msg":
                        self._chunk(step[1] + b"\r\n")
                        double.sent.append(step[1])
                    elif kind == "keepalive":
                        self._chunk(b"\r\n")
                    elif kind == "partial":
                        self._chunk(step[1][: len(step[1]) // 2])  # half a message, then no more
                        return self._drop()
                    elif kind == "stall":
                        time.sleep(step[1])
                        return self._drop()
                    elif kind == "end":
                        self.wfile.write(b"0\r\n\r\n")
                        self.wfile.flush()
                        self.close_connection = True
                        return

            def _chunk(self, data: bytes):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()

            def _drop(self):
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

            def do_POST(self):
                url = urlparse(self.path)
                if url.path != "/2/tweets/search/stream/rules":
                    return self._json(404, {"title": "Not Found"})
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                dry = parse_qs(url.query).get("dry_run") == ["true"]
                double.rule_requests.append({"method": "POST", "dry_run": dry, "body": body})
                if "add" in body:
                    bad = [r for r in body["add"] if "INVALID" in r["value"]]
                    if bad:
                        return self._json(200, {"errors": [{"value": r["value"], "title": "UnprocessableEntity", "details": ["invalid rule"]} for r in bad], "meta": {"summary": {"created": 0, "invalid": len(bad)}}})
                    created = []
                    for r in body["add"]:
                        double._next_id += 1
                        created.append({"id": str(double._next_id), "value": r["value"], **({"tag": r["tag"]} if "tag" in r else {})})
                    if not dry:
                        double.rules.extend(created)
                    return self._json(201, {"data": created, "meta": {"summary": {"created": len(created), "valid": len(created)}}})
                ids = set(body.get("delete", {}).get("ids", []))
                if not dry:
                    double.rules = [r for r in double.rules if r["id"] not in ids]
                return self._json(200, {"meta": {"summary": {"deleted": len(ids)}}})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def reset(self):
        self.plans, self.requests, self.rules, self.rule_requests, self.sent = [], [], [], [], []
        self.rules_refusal = None

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
