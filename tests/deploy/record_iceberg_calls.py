"""Run the Iceberg deployment's work against moto's S3 and Glue (one server on 127.0.0.1, as
production's endpoints) and print every request the server received, as JSON lines
``{"phase", "service", "operation", "params", "status", "client"}`` (bodies left out).

The requests are recorded at the server (:class:`Recording`, a WSGI middleware in front of moto's
app), not by patching boto3: pyiceberg's FileIO writes and deletes the table's files through
pyarrow's S3 filesystem (the AWS SDK for C++), which no botocore hook sees. Each HTTP request is
named by its S3 or Glue operation (:func:`operation`, following the S3 and Glue API references;
tests/deploy/test_deploy_iam.py checks it against botocore's own serialization of each operation),
with the status moto answered (a 404 for a missing key is S3's answer only to a caller that may
list the bucket) and the client that sent it (``pyarrow`` or ``boto3``, from its User-Agent).

What runs, with the deployment's settings (TWEET_ASSETS_TABLE_FORMAT=iceberg, the Glue catalog of
PYICEBERG_CATALOG__GLUE__TYPE=glue, TWEET_ASSETS_GLUE_DATABASE) read at import time as in production:

- ``publish``: tweets_daily_job for two days, then the first day again (a rerun replaces it);
- ``compliance``: compliance_job against the loopback double of X's batch compliance endpoints
  (tests/compliance_double.py), two published posts reported deleted: row-level deletes in one
  commit, snapshot expiry deleting the files only old snapshots held, the orphan sweep;
- ``maintenance``: iceberg_maintenance_job after another writer appended a second data file to a day
  (compaction, expiry, sweep), then the orphan sweep once more past its grace period, with an orphan
  data file and an orphan metadata file planted under the table.

The deployer's own steps (bucket, Glue database, the double's bucket and the planted files) are
not recorded. Used by test_deploy_iam.py in a subprocess:
    TWEET_ASSETS_LAKE_URL=s3://bucket/prefix TWEET_ASSETS_GLUE_DATABASE=db python record_iceberg_calls.py 2024-01-01
"""

from __future__ import annotations

import base64
import io
import json
import os
import sys
import threading
import time
import xml.etree.ElementTree as ET
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

REPO = Path(__file__).resolve().parents[2]
#: The catalog name the deployment configures (deploy/ec2/user-data.sh, the CloudFormation stack).
CATALOG = "glue"
TOKEN = "AAAAAAAAAAAAAAAAAAAAArecordIcebergCalls0123456789xyz"


def operation(entry: dict) -> dict:
    """``{"service", "operation", "params"}`` of one request moto recorded (``method``, ``url``,
    ``headers``, ``body``). S3 (path-style, as for a custom endpoint): the operation from the method,
    the key's presence, the sub-resource and the copy header (S3 API reference); Glue: the
    ``X-Amz-Target`` of its JSON protocol. ``params`` has ``Bucket``, ``Key``, ``Prefix``,
    ``CopySource`` and, for DeleteObjects, ``Keys``; for Glue the request's top-level names and
    ``TableInput.Name``/``DatabaseInput.Name``. An S3 request this does not know is ``"UNKNOWN <method> <sub-resources>"``,
    which iam_eval refuses to map."""
    headers = {k.lower(): v for k, v in entry["headers"].items()}
    url = urlparse(entry["url"])
    query = parse_qs(url.query, keep_blank_values=True)
    service = _service(headers, query)
    method = entry["method"]
    if service == "glue":
        target = headers.get("x-amz-target", "")
        body = json.loads(_body(entry) or b"{}")
        params = {k: v for k, v in body.items() if isinstance(v, (str, int))}
        for nested in ("TableInput", "DatabaseInput"):
            if isinstance(body.get(nested), dict):
                params[nested] = {"Name": body[nested].get("Name")}
        return {"service": "glue", "operation": target.split(".", 1)[-1], "params": params}
    bucket, _, key = url.path.lstrip("/").partition("/")
    key = unquote(key)
    params = {"Bucket": bucket}
    if key:
        params["Key"] = key
    if "prefix" in query:
        params["Prefix"] = query["prefix"][0]
    sub = sorted(set(query) - {"prefix", "delimiter", "max-keys", "continuation-token", "start-after", "encoding-type", "marker", "fetch-owner",
                               "partNumber", "uploadId", "list-type", "x-id"} - {k for k in query if k.lower().startswith("x-amz-")})
    copy = headers.get("x-amz-copy-source")
    if copy:
        params["CopySource"] = unquote(copy).lstrip("/")
    if not key:
        name = {
            ("GET", ()): "ListObjectsV2" if "list-type" in query else "ListObjects",
            ("GET", ("uploads",)): "ListMultipartUploads",
            ("GET", ("location",)): "GetBucketLocation",
            ("HEAD", ()): "HeadBucket",
            ("POST", ("delete",)): "DeleteObjects",
        }.get((method, tuple(sub)))
        if name == "DeleteObjects":
            params["Keys"] = [k.text for k in ET.fromstring(_body(entry)).iter() if k.tag.endswith("}Key") or k.tag == "Key"]
    else:
        upload = "uploadId" in query
        name = {
            ("GET", (), False): "GetObject",
            ("HEAD", (), False): "HeadObject",
            ("PUT", (), False): "CopyObject" if copy else "PutObject",
            ("PUT", (), True): "UploadPartCopy" if copy else "UploadPart",
            ("POST", ("uploads",), False): "CreateMultipartUpload",
            ("POST", (), True): "CompleteMultipartUpload",
            ("DELETE", (), True): "AbortMultipartUpload",
            ("DELETE", (), False): "DeleteObject",
            ("GET", (), True): "ListParts",
        }.get((method, tuple(sub), upload))
    return {"service": "s3", "operation": name or f"UNKNOWN {method} {','.join(sub)}", "params": params}


class Recording:
    """A WSGI middleware in front of moto's app: while ``on``, each request's method, raw URL,
    headers, body (Glue's and DeleteObjects', put back for moto) and the status moto answered,
    in ``entries`` (appended as each request is answered; threads serialized by a lock)."""

    def __init__(self, app):
        self.app = app
        self.on = False
        self.entries: list[dict] = []
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        if not self.on:
            return self.app(environ, start_response)
        # the body only of Glue's JSON requests and S3's DeleteObjects (the others' bodies are file
        # data, often aws-chunked: their stream is left to moto as it came)
        body = b""
        if "HTTP_X_AMZ_TARGET" in environ or environ.get("QUERY_STRING", "").split("&")[0] == "delete":
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            environ["wsgi.input"] = io.BytesIO(body)
        headers = {key[5:].replace("_", "-").title(): value for key, value in environ.items() if key.startswith("HTTP_")}
        answered = {}

        def recording_start(status, response_headers, exc_info=None):
            answered["status"] = int(status.split()[0])
            return start_response(status, response_headers, exc_info)

        result = self.app(environ, recording_start)
        uri = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ["PATH_INFO"]
        entry = {"method": environ["REQUEST_METHOD"], "url": uri, "headers": headers, "body": base64.b64encode(body).decode(), "body_encoded": True, "status": answered.get("status")}
        with self.lock:
            self.entries.append(entry)
        return result


def serve(ip: str = "127.0.0.1"):
    """moto's app behind :class:`Recording` on ``ip``, a free port, in a thread (as moto's
    ThreadedMotoServer serves it): ``(endpoint, recording, server)``."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    recording = Recording(DomainDispatcherApplication(create_backend_app))
    server = make_server(ip, 0, recording, threaded=True, request_handler=MotoRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    return f"http://{host}:{port}", recording, server


def client(entry: dict) -> str:
    """``pyarrow`` (pyiceberg's FileIO: the AWS SDK for C++), ``boto3`` or ``other``, from the User-Agent."""
    agent = {k.lower(): v for k, v in entry["headers"].items()}.get("user-agent", "")
    return "pyarrow" if "aws-sdk-cpp" in agent.lower() else "boto3" if "botocore" in agent.lower() else "other"


def _service(headers: dict, query: dict) -> str:
    """The service a SigV4 request was signed for (its credential scope: ``key/date/region/service/aws4_request``)."""
    credential = headers.get("authorization", "").partition("Credential=")[2].split(",")[0] or (query.get("X-Amz-Credential") or [""])[0]
    parts = credential.split("/")
    return parts[3] if len(parts) >= 5 else "s3"


def _body(entry: dict) -> bytes:
    body = entry.get("body") or ""
    return base64.b64decode(body) if entry.get("body_encoded") else body.encode()


def main(first_day: str) -> None:
    os.environ.setdefault("TWEET_ASSETS_SAMPLE_POSTS", "50")
    import boto3

    endpoint, recording, server = serve()
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    region = os.environ["AWS_DEFAULT_REGION"]
    os.environ.setdefault("AWS_REGION", region)
    lake_url = urlparse(os.environ["TWEET_ASSETS_LAKE_URL"])
    database = os.environ["TWEET_ASSETS_GLUE_DATABASE"]
    phases: list[tuple[str, int]] = []

    def record(on: bool) -> None:
        recording.on = on

    def phase(name: str) -> None:
        phases.append((name, len(recording.entries)))

    try:
        # the deployer's steps (deploy/README.md, "Iceberg"; the CloudFormation stack): bucket and Glue database
        boto3.client("s3").create_bucket(Bucket=lake_url.netloc, CreateBucketConfiguration={"LocationConstraint": region})
        boto3.client("glue").create_database(DatabaseInput={"Name": database})

        sys.path.insert(0, str(REPO))
        from dagster import DagsterInstance, materialize

        from tweet_assets.definitions import defs
        from tweet_assets.defs.compliance.assets import compliance_ledger, no_published_id_in_ledger
        from tweet_assets.lake.store import open_lake
        from tweet_assets.settings import resources_from_env
        from tweet_assets.tables.iceberg import IcebergTable, table_location

        second_day = (date.fromisoformat(first_day) + timedelta(days=1)).isoformat()
        with DagsterInstance.ephemeral() as instance:
            record(True)
            phase("publish")
            for day in (first_day, second_day, first_day):
                result = defs.get_job_def("tweets_daily_job").execute_in_process(partition_key=day, instance=instance, raise_on_error=True)
                assert result.success, day

            record(False)
            lake = open_lake(os.environ["TWEET_ASSETS_LAKE_URL"], lambda: boto3.client("s3"))
            table = IcebergTable.open(lake, "tweets", "tweets")
            published = table.read_day(first_day, ["id", "created_at"])
            assert published.num_rows >= 2, published.num_rows
            gone = published.slice(0, 2).to_pylist()
            from tests.compliance_double import ComplianceDouble

            with ComplianceDouble(endpoint, TOKEN, in_progress_polls=1) as double:
                double.affected = {
                    str(row["id"]): {"action": "delete", "reason": "deleted", "created_at": row["created_at"].strftime("%Y-%m-%dT%H:%M:%S.000Z")}
                    for row in gone
                }
                from tweet_assets.compliance.api import ComplianceApi

                res = {**resources_from_env(), "compliance_api": ComplianceApi(bearer_token=TOKEN, base_url=double.url, poll_interval_s=0.02)}
                record(True)
                phase("compliance")
                result = materialize(
                    [compliance_ledger, no_published_id_in_ledger], resources=res, instance=instance,
                    run_config={"ops": {"compliance_ledger": {"config": {"first_day": first_day, "last_day": second_day, "ids_per_job": 1000}}}},
                )
                assert result.success
                record(False)
                skip_bucket = double.bucket
            assert not {r["id"] for r in table.read_day(first_day, ["id"]).to_pylist()} & {r["id"] for r in gone}

            # another writer (Athena, an import) adds a second data file to a day: something to compact
            loaded = table.load()
            loaded.append(loaded.scan(row_filter=f"id == {published.column('id')[2].as_py()}").to_arrow())
            record(True)
            phase("maintenance")
            result = defs.get_job_def("iceberg_maintenance_job").execute_in_process(instance=instance, raise_on_error=True)
            assert result.success
            record(False)
            # a killed writer's leftovers under data/ and metadata/, swept once past the grace period
            location = table_location(lake, "tweets")
            io = table.load().io
            for path in (f"{location}/data/created_at_day={first_day}/orphan-of-a-killed-writer.parquet", f"{location}/metadata/orphan-of-a-killed-writer.metadata.json"):
                with io.new_output(path).create(overwrite=True) as out:
                    out.write(b"leftover")
            from tweet_assets.tables.maintenance import remove_orphan_files

            record(True)
            phase("orphans")
            swept = remove_orphan_files(table.load(), now=time.time() + 7 * 24 * 3600)
            assert swept.deleted == 2, swept
            record(False)
        entries = list(recording.entries)
    finally:
        server.shutdown()
    bounds = [*phases[1:], ("end", len(entries))]
    for (name, start), (_, end) in zip(phases, bounds):
        for entry in entries[start:end]:
            call = operation(entry)
            if call["params"].get("Bucket") == skip_bucket:  # X's storage behind the signed URLs: not ours
                continue
            print(json.dumps({"phase": name, **call, "status": entry["status"], "client": client(entry)}))


if __name__ == "__main__":
    main(sys.argv[1])
