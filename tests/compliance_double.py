"""A loopback double of the X API v2 batch compliance endpoints, strict about requests, with the
signed upload and download URLs on moto's S3 (presigned by boto3, as the API's point at cloud
storage).

- ``POST /2/compliance/jobs``: app-only bearer token only (anything else: 401/403 as the API);
  JSON body ``type`` in ``tweets``/``users``, optional ``name`` and ``resumable``, nothing else
  (400 otherwise). Answers ``{"data": {id, type, name, resumable, upload_url, upload_expires_at,
  download_url, download_expires_at, status: "created", created_at}}``.
- ``GET /2/compliance/jobs/:id``: ``created`` until the upload exists; then ``in_progress`` for
  ``in_progress_polls`` polls; then ``complete``, with the result written to the download key: one
  JSON line per uploaded id listed in ``affected`` (rows in the recorded shape), none for others.
  The upload must be ``text/plain``, decimal ids one per line (else the job ``failed``).

Every rejection is appended to ``violations``; every request's path, method and Authorization
header kind to ``seen``.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ComplianceDouble:
    def __init__(self, s3_endpoint: str, bearer_token: str, bucket: str | None = None, in_progress_polls: int = 2):
        import boto3

        self.s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
        self.bucket = bucket or f"compliance-{uuid.uuid4().hex[:10]}"
        self.s3.create_bucket(Bucket=self.bucket)
        self.token = bearer_token
        self.in_progress_polls = in_progress_polls
        self.outcome = "complete"  # or "failed" / "expired": how every job ends
        self.affected: dict[str, dict] = {}
        self.jobs: dict[str, dict] = {}
        self.polls: dict[str, int] = {}
        self.uploads: dict[str, bytes] = {}
        self.violations: list[str] = []
        self.seen: list[tuple[str, str, str]] = []
        self.lock = threading.Lock()

    def __enter__(self) -> "ComplianceDouble":
        double = self

        class Handler(_Handler):
            pass

        Handler.double = double
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- endpoints
    def create(self, auth: str, body: bytes) -> tuple[int, dict]:
        if not auth.startswith("Bearer "):
            return self._reject(403, "create without an app-only bearer token", {"title": "Unsupported Authentication", "status": 403})
        if auth != f"Bearer {self.token}":
            return self._reject(401, "create with a wrong bearer token", {"title": "Unauthorized", "status": 401})
        try:
            payload = json.loads(body)
        except ValueError:
            return self._reject(400, "create body is not JSON", {"title": "Invalid Request"})
        if not isinstance(payload, dict) or payload.get("type") not in ("tweets", "users") or set(payload) - {"type", "name", "resumable"}:
            return self._reject(400, f"create body {payload!r}", {"title": "Invalid Request"})
        job_id = str(1_400_000_000_000_000_000 + len(self.jobs))
        now = datetime.now(timezone.utc)
        up, down = f"uploads/{job_id}.txt", f"results/{job_id}.json"
        job = {
            "id": job_id,
            "type": payload["type"],
            "name": payload.get("name", ""),
            "resumable": bool(payload.get("resumable", False)),
            "upload_url": self.s3.generate_presigned_url("put_object", Params={"Bucket": self.bucket, "Key": up, "ContentType": "text/plain"}, ExpiresIn=900),
            "upload_expires_at": _rfc3339(now + timedelta(minutes=15)),
            "download_url": self.s3.generate_presigned_url("get_object", Params={"Bucket": self.bucket, "Key": down}, ExpiresIn=604800),
            "download_expires_at": _rfc3339(now + timedelta(days=7)),
            "status": "created",
            "created_at": _rfc3339(now),
        }
        with self.lock:
            self.jobs[job_id] = job
            self.polls[job_id] = 0
        return 200, {"data": {k: v for k, v in job.items() if k != "_keys"}}

    def status(self, auth: str, job_id: str) -> tuple[int, dict]:
        if auth != f"Bearer {self.token}":
            return self._reject(401 if auth.startswith("Bearer ") else 403, "status without the app-only bearer token", {"title": "Unauthorized"})
        job = self.jobs.get(job_id)
        if job is None:
            return self._reject(400, f"status of unknown job {job_id}", {"errors": [{"message": "job not found"}]})
        with self.lock:
            if job["status"] == "created" and self._upload(job_id) is not None:
                job["status"] = "in_progress"
            elif job["status"] == "in_progress":
                self.polls[job_id] += 1
                if self.polls[job_id] >= self.in_progress_polls:
                    if self.outcome == "complete":
                        self._finish(job)
                    else:
                        job["status"] = self.outcome
        return 200, {"data": dict(job)}

    def _upload(self, job_id: str) -> bytes | None:
        try:
            obj = self.s3.get_object(Bucket=self.bucket, Key=f"uploads/{job_id}.txt")
        except self.s3.exceptions.NoSuchKey:
            return None
        body = obj["Body"].read()
        if not obj.get("ContentType", "").startswith("text/plain"):
            self.violations.append(f"upload {job_id} Content-Type {obj.get('ContentType')!r}")
        self.uploads[job_id] = body
        return body

    def _finish(self, job: dict) -> None:
        body = self.uploads[job["id"]]
        lines = body.decode().splitlines()
        if not lines or not all(re.fullmatch(r"\d{1,19}", line) for line in lines):
            self.violations.append(f"upload {job['id']} is not decimal ids one per line")
            job["status"] = "failed"
            return
        rows = [dict(self.affected[i], id=i) for i in lines if i in self.affected]
        result = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows).encode()
        self.s3.put_object(Bucket=self.bucket, Key=f"results/{job['id']}.json", Body=result)
        job["status"] = "complete"

    def _reject(self, status: int, why: str, body: dict) -> tuple[int, dict]:
        self.violations.append(why)
        return status, body


class _Handler(BaseHTTPRequestHandler):
    double: ComplianceDouble
    protocol_version = "HTTP/1.1"

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _seen(self) -> str:
        auth = self.headers.get("Authorization", "")
        self.double.seen.append((self.command, self.path, auth.split(" ", 1)[0]))
        return auth

    def do_POST(self) -> None:  # noqa: N802
        auth = self._seen()
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.split("?")[0] != "/2/compliance/jobs":
            self._answer(*self.double._reject(404, f"POST {self.path}", {"title": "Not Found"}))
            return
        self._answer(*self.double.create(auth, body))

    def do_GET(self) -> None:  # noqa: N802
        auth = self._seen()
        match = re.fullmatch(r"/2/compliance/jobs/(\d+)", self.path.split("?")[0])
        if not match or "?" in self.path:
            self._answer(*self.double._reject(404, f"GET {self.path}", {"title": "Not Found"}))
            return
        self._answer(*self.double.status(auth, match.group(1)))

    def log_message(self, *args) -> None:
        pass


def _rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")
