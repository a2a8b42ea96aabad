"""Run tweets_daily_job for one partition against an in-process moto S3 and print every AWS call
the pipeline made, as JSON lines ``{"service", "operation", "params", "status"}`` (bodies left out;
``status``: the HTTP status of the answer, 200 unless botocore raised it as an error).

Used by test_iam.py in a subprocess, so the lake settings are read at import time as in production:
    TWEET_ASSETS_LAKE_URL=s3://bucket/prefix python record_aws_calls.py 2024-01-01
"""

from __future__ import annotations

import json
import os
import sys
from urllib.parse import urlparse

import boto3
import botocore.client
import botocore.exceptions
from moto import mock_aws


def main(partition: str) -> None:
    calls: list[dict] = []
    original = botocore.client.BaseClient._make_api_call

    def recording(self, operation_name, api_params):
        params = {k: v for k, v in api_params.items() if isinstance(v, (str, int)) and k != "Body"}
        if isinstance(api_params.get("CopySource"), dict):  # boto3's managed copy passes a dict
            source = api_params["CopySource"]
            params["CopySource"] = f"{source['Bucket']}/{source['Key']}"
        call = {"service": self.meta.service_model.service_name, "operation": operation_name, "params": params, "status": 200}
        calls.append(call)
        try:
            return original(self, operation_name, api_params)
        except botocore.exceptions.ClientError as exc:  # the answer's status: a 404 for a missing key needs s3:ListBucket (iam_eval.requests_for_answer)
            call["status"] = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            raise

    os.environ.setdefault("TWEET_ASSETS_SAMPLE_POSTS", "50")
    url = urlparse(os.environ["TWEET_ASSETS_LAKE_URL"])
    with mock_aws():
        boto3.client("s3", region_name=os.environ["AWS_DEFAULT_REGION"]).create_bucket(
            Bucket=url.netloc, CreateBucketConfiguration={"LocationConstraint": os.environ["AWS_DEFAULT_REGION"]}
        )
        botocore.client.BaseClient._make_api_call = recording
        try:
            from tweet_assets.definitions import defs

            result = defs.get_job_def("tweets_daily_job").execute_in_process(partition_key=partition, raise_on_error=True)
            assert result.success
            # a rerun overwrites the same keys (and reads them back)
            result = defs.get_job_def("tweets_daily_job").execute_in_process(partition_key=partition, raise_on_error=True)
            assert result.success
            # the lake's other calls: a multipart upload (boto3 switches at 8 MiB) and listing a
            # table's prefix (the pipeline never deletes: a rerun overwrites with PutObject)
            from tweet_assets.lake.store import open_lake

            lake = open_lake(os.environ["TWEET_ASSETS_LAKE_URL"], lambda: boto3.client("s3"))
            big = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"big-{os.getpid()}.bin")
            with open(big, "wb") as handle:
                handle.write(os.urandom(9 * 1024 * 1024))
            try:
                lake.put_file("raw_tweets/dt=1999-01-01/part-00000.jsonl.gz", big)
            finally:
                os.remove(big)
            for table in ("raw_tweets", "clean_tweets", "tweets"):
                assert list(lake.list(f"{table}/")), table
            _stream_calls(lake, partition)
        finally:
            botocore.client.BaseClient._make_api_call = original
    for call in calls:
        print(json.dumps(call))


def _stream_calls(lake, partition: str) -> None:
    """The filtered stream's lake calls: the consumer publishes a segment and its health and rules
    records under raw_stream/, then the stream source, the raw_stream observation and the
    consumer-alive check read them back (tweet_assets.stream, sources.stream, stream_days)."""
    import logging
    import tempfile
    from datetime import datetime, timedelta, timezone

    from tweet_assets.settings import lake_from_env
    from tweet_assets.sources.stream import RULES_KEY, StreamSource
    from tweet_assets.stream.consumer import HEALTH_KEY
    from tweet_assets.stream.segments import PREFIX, SegmentWriter
    from tweet_assets.defs.stream.days import _record, newest_segment

    start = datetime.strptime(partition, "%Y-%m-%d").replace(tzinfo=timezone.utc)
    received_ms = int((start + timedelta(hours=1)).timestamp() * 1000)
    message = b'{"data":{"id":"1","text":"x","created_at":"%sT00:30:00.000Z","author_id":"2","edit_history_tweet_ids":["1"]}}' % partition.encode()
    with tempfile.TemporaryDirectory() as spool:
        writer = SegmentWriter(lake, spool, fsync=False, clock=lambda: received_ms / 1000)
        writer.append(partition, message, received_ms)
        assert writer.close(), "no segment published"
    lake.put_bytes(f"{PREFIX}/{HEALTH_KEY}", b'{"last_message_at": null}')
    lake.put_bytes(f"{PREFIX}/{RULES_KEY}", b'{"rules": []}')
    source = StreamSource(location=lake_from_env())
    pages = list(source.pages(start, start + timedelta(days=1), logging.getLogger("record_aws_calls")))
    assert len(pages) == 1, pages
    assert newest_segment(lake, start + timedelta(hours=2)) is not None
    assert _record(lake, f"{PREFIX}/{HEALTH_KEY}")


if __name__ == "__main__":
    main(sys.argv[1])
