"""The lake IO manager and storage: layout, atomic overwrite, and errors that say where and why."""

from __future__ import annotations

import os

import boto3
import polars as pl
import pytest

from tweet_assets.settings import ConfigurationError, lake_from_env, source_from_env
from tweet_assets.lake.store import LakeError, LocalLake, open_lake
from tweet_assets.sources import SampleSource

from tests.helpers import is_bookkeeping, resources, run


def test_local_lake_overwrites_atomically(tmp_path):
    lake = LocalLake(str(tmp_path))
    lake.put_bytes("t/dt=2024-01-01/part-00000.parquet", b"one")
    lake.put_bytes("t/dt=2024-01-01/part-00000.parquet", b"two")
    assert lake.read_bytes("t/dt=2024-01-01/part-00000.parquet") == b"two"
    assert list(lake.list("t")) == ["t/dt=2024-01-01/part-00000.parquet"]  # no temp files left


def test_s3_lake_roundtrip_and_listing(s3_lake, aws_env):
    lake = lake_from_env({"TWEET_ASSETS_LAKE_URL": s3_lake, "AWS_ENDPOINT_URL": aws_env, "AWS_REGION": "us-east-1"}).lake()
    lake.put_bytes("a/dt=2024-01-01/part-00000.parquet", b"x" * 10)
    assert lake.size("a/dt=2024-01-01/part-00000.parquet") == 10
    assert lake.size("a/dt=2024-01-02/part-00000.parquet") is None
    assert list(lake.list("a")) == ["a/dt=2024-01-01/part-00000.parquet"]
    assert lake.uri("a/x") == f"{s3_lake}/a/x"


def test_missing_bucket_error_names_bucket_key_endpoint(aws_env):
    lake = lake_from_env({"TWEET_ASSETS_LAKE_URL": "s3://no-such-bucket-here/p", "AWS_ENDPOINT_URL": aws_env}).lake()
    with pytest.raises(LakeError) as info:
        lake.put_bytes("tweets/dt=2024-01-01/part-00000.parquet", b"x")
    message = str(info.value)
    assert "s3://no-such-bucket-here/p/tweets/dt=2024-01-01/part-00000.parquet" in message
    assert aws_env in message and "NoSuchBucket" in message and "TWEET_ASSETS_LAKE_URL" in message


def test_unreachable_endpoint_error(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIACANARYKEYID00000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "canary-secret-value-0123456789")
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    endpoint = f"http://127.0.0.1:{port}"
    from botocore.config import Config

    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", config=Config(retries={"max_attempts": 1}, connect_timeout=1))
    lake = open_lake("s3://bucket/p", lambda: client, endpoint)
    with pytest.raises(LakeError) as info:
        lake.put_bytes("k", b"x")
    assert "cannot reach the endpoint" in str(info.value) and endpoint in str(info.value)
    assert "canary-secret-value" not in str(info.value) and "AKIACANARY" not in str(info.value)


def test_missing_upstream_object_says_what_to_do(tmp_path):
    lake = LocalLake(str(tmp_path))
    with pytest.raises(LakeError, match="materialize the upstream asset"):
        lake.open("raw_tweets/dt=2024-01-01/part-00000.jsonl.gz")


def test_configuration_errors_name_the_variable():
    with pytest.raises(ConfigurationError, match="TWEET_ASSETS_SOURCE='nope'"):
        source_from_env({"TWEET_ASSETS_SOURCE": "nope"})
    with pytest.raises(ConfigurationError, match="TWEET_ASSETS_REPLAY_DIR"):
        source_from_env({"TWEET_ASSETS_SOURCE": "replay"})
    with pytest.raises(ConfigurationError, match="TWEET_ASSETS_SAMPLE_POSTS"):
        source_from_env({"TWEET_ASSETS_SAMPLE_POSTS": "lots"})
    for odd in ("\u00b2", "\u0663", "-5", "1e3", "nan", "inf"):  # "²".isdigit() and "٣".isdigit() are True
        with pytest.raises(ConfigurationError, match="TWEET_ASSETS_SAMPLE_POSTS"):
            source_from_env({"TWEET_ASSETS_SAMPLE_POSTS": odd})
    assert source_from_env({"TWEET_ASSETS_SAMPLE_POSTS": " 30 "}).posts_per_day == 30
    # empty is unset, as for every numeric setting (tweet_assets/config.py): the default
    assert source_from_env({"TWEET_ASSETS_SAMPLE_POSTS": ""}).posts_per_day == 200
    with pytest.raises(LakeError, match="s3://bucket/prefix"):
        open_lake("gs://bucket/x")


def test_parquet_written_by_io_manager_has_athena_types(tmp_path):
    import pyarrow.parquet as pq

    from tweet_assets.lake.io_manager import write_parquet
    from tweet_assets.schema import PUBLISHED_SCHEMA

    table = PUBLISHED_SCHEMA.empty_table()
    write_parquet(table, str(tmp_path / "x.parquet"))
    meta = pq.ParquetFile(tmp_path / "x.parquet")
    created = meta.schema.column(meta.schema.names.index("created_at"))
    assert created.physical_type == "INT64"
    assert "timeUnit=milliseconds" in str(created.logical_type) and "isAdjustedToUTC=true" in str(created.logical_type)
    assert pl.read_parquet(tmp_path / "x.parquet").schema["created_at"] == pl.Datetime("ms", "UTC")


def test_parquet_encodings_and_sort_order_read_back_by_another_engine(x_api_v2, tmp_path):
    """Sorted ids and timestamps are delta-encoded, the rest dictionary-encoded, the order is in the
    footer; DuckDB (a reader independent of Arrow's) reads back the same values."""
    import duckdb
    import pyarrow.parquet as pq

    from tests.helpers import post_page_files
    from tweet_assets.transform.flatten import flatten_day
    from tweet_assets.lake.parquet import SORTED_BY, is_sorted_by, write_parquet
    from tweet_assets.schema import PUBLISHED_SCHEMA

    lines = ((f"{p.name}:{n}", line) for p in post_page_files(x_api_v2) for n, line in enumerate(p.read_bytes().splitlines(), 1) if line.strip())
    day = flatten_day(lines)
    path = tmp_path / "day.parquet"
    rows = write_parquet((chunk.to_arrow() for chunk in day.chunks(rows=1_000)), str(path), PUBLISHED_SCHEMA, SORTED_BY)
    meta = pq.read_metadata(path)
    assert rows == meta.num_rows == day.height > 2_000 and meta.num_row_groups == -(-rows // 1_000)
    assert is_sorted_by(meta)
    group = meta.row_group(0)
    encodings = {group.column(i).path_in_schema: group.column(i).encodings for i in range(group.num_columns)}
    for leaf in ("id", "created_at", "conversation_id", "edit_history_tweet_ids.list.element"):
        assert "DELTA_BINARY_PACKED" in encodings[leaf], leaf
    # dictionary-encoded: flat columns and the elements of lists (the writer needs leaf paths for those)
    for leaf in ("lang", "author_username", "hashtags.list.element", "media_keys.list.element"):
        assert "RLE_DICTIONARY" in encodings[leaf], leaf
    columns = "id, created_at, conversation_id, lang, edit_history_tweet_ids, hashtags"
    expected = day.frame.select([c.strip() for c in columns.split(",")]).rows()
    got = duckdb.sql(f"SELECT {columns} FROM read_parquet('{path}')").fetchall()
    assert [(r[0], r[2], r[3], r[4], r[5]) for r in got] == [(r[0], r[2], r[3], r[4], r[5]) for r in expected]
    assert [r[1].timestamp() for r in got] == [r[1].timestamp() for r in expected]
    assert any(len(r[4] or ()) > 1 for r in got) and any(r[5] for r in got)  # edited posts and hashtags are in the data


def test_bad_start_date_fails_at_load_saying_what_to_set():
    import os
    import subprocess
    import sys

    env = {**os.environ, "TWEET_ASSETS_START_DATE": "2024-13-45"}
    out = subprocess.run([sys.executable, "-c", "import tweet_assets.definitions"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "TWEET_ASSETS_START_DATE='2024-13-45' is not a date" in out.stderr and "YYYY-MM-DD" in out.stderr


def test_spools_keep_few_files_open_and_resume_as_gzip_members(tmp_path):
    import gzip

    from tweet_assets.lake.values import SpoolSet

    days = [f"2024-01-{d:02d}" for d in range(1, 11)]
    spools = SpoolSet(str(tmp_path), days, max_open=3, background=False)  # is_open checked per write
    for round_ in range(3):  # pages of the ten days interleaved, as a replay of mixed archives gives them
        for day in days[:8]:
            spools.write(day, f'{{"day": "{day}", "round": {round_}}}'.encode())
            assert sum(s.is_open for s in spools.spools.values()) <= 3
    results = {day: spools.spools[day].close() for day in days}
    for day in days[:8]:
        with gzip.open(results[day].path, "rb") as handle:
            assert handle.read().splitlines() == [f'{{"day": "{day}", "round": {r}}}'.encode() for r in range(3)]
    with gzip.open(results["2024-01-10"].path, "rb") as handle:
        assert handle.read() == b""  # a day with no pages is an empty stream, still an object


def test_background_spooling_keeps_page_order_and_reports_worker_errors(tmp_path):
    import gzip

    from tweet_assets.lake.values import SpoolSet

    days = [f"2024-02-{d:02d}" for d in range(1, 6)]
    pages = [(days[n % 5], f'{{"n": {n}, "pad": "{"x" * (n % 997)}"}}'.encode()) for n in range(3_000)]
    with SpoolSet(str(tmp_path), days, max_open=2, max_pending=8) as spools:
        for day, body in pages:
            spools.write(day, body)
        results = spools.close()
    for day in days:
        with gzip.open(results[day].path, "rb") as handle:
            assert handle.read().splitlines() == [body for d, body in pages if d == day]
        assert results[day].pages == 600

    # the worker's error comes back from the next write or from close, whichever comes first
    with pytest.raises(FileNotFoundError, match="no-such-dir"), SpoolSet(str(tmp_path / "no-such-dir"), days) as broken:
        for _ in range(100):
            broken.write(days[0], b"{}")
        broken.close()


# --- debris: spool directories, local temporaries, incomplete multipart uploads (issue 22, point 4)


class _Pages(SampleSource):
    """The sample source, failing after ``fail_after`` pages when set; records that it was read."""

    fail_after: int = -1
    marker: str = ""

    def pages(self, start, end, log):
        if self.marker:
            open(self.marker, "a").close()
        for n, page in enumerate(super().pages(start, end, log)):
            if n == self.fail_after:
                raise RuntimeError("source failed mid-stream (injected)")
            yield page


def _spools(root) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name.startswith("tweet_assets-spool-"))


@pytest.fixture
def spool_root(tmp_path, monkeypatch):
    """A private TMPDIR, so the test sees only its own spool directories."""
    import tempfile

    root = tmp_path / "tmpdir"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


def test_spool_directories_are_gone_after_success_and_after_each_kind_of_failure(tmp_path, spool_root, instance):
    lake = tmp_path / "lake"
    ok = run(resources(str(lake), _Pages(posts_per_day=300)), "2024-03-01", "2024-03-03", instance=instance)
    assert ok.success and _spools(spool_root) == []
    # the source fails after some days' pages were spooled (raw_tweets raises)
    failed = run(resources(str(lake), _Pages(posts_per_day=300, fail_after=4)), "2024-03-04", "2024-03-06", instance=instance, raise_on_error=False)
    assert not failed.success and _spools(spool_root) == []
    # storing fails (the IO manager raises in handle_output): raw_tweets' table folder is a file
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / "raw_tweets").write_bytes(b"not a folder")
    failed = run(resources(str(blocked), _Pages(posts_per_day=300)), "2024-03-04", "2024-03-05", instance=instance, raise_on_error=False)
    assert not failed.success and _spools(spool_root) == []
    assert [p for p in spool_root.rglob("*") if p.is_file()] == []


def test_a_dead_process_spool_directory_is_swept_and_a_live_one_is_kept(spool_root):
    import subprocess
    import sys

    from tweet_assets.lake.spools import open_spool_dir, remove_spool_dir, sweep_stale

    make = (
        "import os, sys, tempfile; tempfile.tempdir = sys.argv[1]\n"
        "from tweet_assets.lake.spools import open_spool_dir\n"
        "path = open_spool_dir('raw_tweets', 'run')\n"
        "open(os.path.join(path, 'raw-2024-01-01.jsonl.gz'), 'wb').write(b'x' * 1000)\n"
        "print(path, flush=True)\n"
        "sys.stdin.readline() if sys.argv[2] == 'live' else os._exit(9)\n"  # dies without cleaning up
    )
    live = subprocess.Popen([sys.executable, "-c", make, str(spool_root), "live"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        live_path = live.stdout.readline().strip()
        dead = subprocess.run([sys.executable, "-c", make, str(spool_root), "dead"], capture_output=True, text=True, timeout=60)
        assert dead.returncode == 9 and len(_spools(spool_root)) == 2
        mine = open_spool_dir("clean_tweets", "run-2")  # sweeps first
        assert sorted(_spools(spool_root)) == sorted([os.path.basename(live_path), os.path.basename(mine)])
    finally:
        live.communicate("done\n", timeout=60)
    remove_spool_dir(mine)
    assert _spools(spool_root) == [os.path.basename(live_path)]  # its owner has exited since: stale now
    assert sweep_stale(str(spool_root)) == [live_path] and _spools(spool_root) == []


def test_a_rerun_removes_the_temporaries_a_killed_write_left_at_its_own_partitions(tmp_path, instance):
    lake = tmp_path / "lake"
    left = {}
    for table, day in (("raw_tweets", "2024-04-01"), ("clean_tweets", "2024-04-01"), ("tweets", "2024-04-02"), ("raw_tweets", "2024-04-05")):
        folder = lake / table / f"dt={day}"
        folder.mkdir(parents=True)
        left[(table, day)] = folder / ".tmp-k1ll3d.part"
        left[(table, day)].write_bytes(b"PAR1 half an object")
        os.utime(left[(table, day)], (1_700_000_000, 1_700_000_000))  # written before this run
    result = run(resources(str(lake), SampleSource(posts_per_day=50)), "2024-04-01", "2024-04-02", instance=instance)
    assert result.success
    said = [e.user_message for e in instance.all_logs(result.run_id) if e.user_message.startswith("removed ")]
    assert sorted(said) == sorted(
        f"removed 1 temporary object(s) left at {lake / table} by an earlier, interrupted run" for table in ("raw_tweets", "clean_tweets", "tweets")
    )
    assert {k: p.exists() for k, p in left.items()} == {
        ("raw_tweets", "2024-04-01"): False,
        ("clean_tweets", "2024-04-01"): False,
        ("tweets", "2024-04-02"): False,
        ("raw_tweets", "2024-04-05"): True,  # another partition's: not this run's to remove
    }
    assert sorted(p.name for p in lake.rglob(".tmp-*")) == [".tmp-k1ll3d.part"]


def test_a_failed_local_write_leaves_no_temporary(tmp_path):
    lake = LocalLake(str(tmp_path))

    def half(out):
        out.write(b"half")
        raise OSError("disk full (injected)")

    with pytest.raises(LakeError, match="disk full"):
        lake._atomic("t/dt=2024-01-01/part-00000.parquet", half)
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == []


def test_a_rerun_aborts_the_incomplete_multipart_uploads_left_at_its_own_keys(s3_lake, aws_env, instance):
    s3 = boto3.client("s3", endpoint_url=aws_env, region_name="us-east-1")
    bucket = s3_lake[5:].split("/")[0]
    mine = s3.create_multipart_upload(Bucket=bucket, Key="lake/raw_tweets/dt=2024-04-01/part-00000.jsonl.gz")["UploadId"]
    other = s3.create_multipart_upload(Bucket=bucket, Key="lake/raw_tweets/dt=2024-04-09/part-00000.jsonl.gz")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="lake/raw_tweets/dt=2024-04-01/part-00000.jsonl.gz", UploadId=mine, PartNumber=1, Body=b"x" * 1024)
    import time

    time.sleep(1.1)  # S3 'Initiated' has second resolution: the run starts after the uploads
    assert run(resources(s3_lake, SampleSource(posts_per_day=50)), "2024-04-01", instance=instance).success
    left = {(u["Key"], u["UploadId"]) for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])}
    assert left == {("lake/raw_tweets/dt=2024-04-09/part-00000.jsonl.gz", other)}


def test_a_missing_bucket_fails_before_the_source_is_read(aws_env, tmp_path, instance):
    marker = tmp_path / "source-was-read"
    lake = "s3://no-such-bucket-precheck/lake"
    failed = run(resources(lake, _Pages(posts_per_day=50, marker=str(marker))), "2024-04-01", instance=instance, raise_on_error=False)
    assert not failed.success
    failure = next(e for e in failed.all_events if e.event_type_value == "STEP_FAILURE")
    message = str(failure.event_specific_data.error)
    assert "NoSuchBucket" in message and "s3://no-such-bucket-precheck/lake/_tweet_assets_check/" in message and aws_env in message
    assert not marker.exists()  # no request to the source (with x_api: no quota spent)


def test_the_write_check_overwrites_one_key_on_s3_and_leaves_nothing_locally(s3_lake, aws_env, tmp_path):
    lake = lake_from_env({"TWEET_ASSETS_LAKE_URL": s3_lake, "AWS_ENDPOINT_URL": aws_env, "AWS_REGION": "us-east-1"}).lake()
    assert lake.check_writable() == "_tweet_assets_check/write-check"
    first = lake.read_bytes("_tweet_assets_check/write-check")
    lake.check_writable()
    assert list(lake.list("")) == ["_tweet_assets_check/write-check"] and lake.read_bytes("_tweet_assets_check/write-check") == first
    local = LocalLake(str(tmp_path / "new-lake"))
    local.check_writable()
    assert (tmp_path / "new-lake").is_dir() and list((tmp_path / "new-lake").rglob("*")) == []


@pytest.mark.parametrize(
    "status, code, call, hint",
    [
        (403, "AccessDenied", "put", "access denied: check the IAM policy (deploy/iam/policy.json) covers this bucket and prefix"),
        (403, "InvalidAccessKeyId", "put", "the AWS access key is not valid: check the credentials in the environment or instance profile"),
        (403, "SignatureDoesNotMatch", "put", "the AWS secret key does not match: check the credentials"),
        (404, "NoSuchKey", "get", "no object there: materialize the upstream asset for this partition first"),
        (403, "403", "head", "access denied, or no object there (S3 answers 403 for a missing key to a role without s3:ListBucket on the bucket; deploy/iam/policy.json grants it for that): check the IAM policy, and that the upstream partition was materialized"),
        (400, "SomethingNew", "put", "see the error code"),
    ],
)
def test_each_s3_error_code_gets_its_hint_and_status(aws_env, monkeypatch, status, code, call, hint):
    """What S3 answers (through a proxy that returns the error) becomes one line: where, the code,
    the HTTP status and what to check (tweet_assets.lake.store.S3Lake._fail)."""
    from tests.s3_fault_proxy import FaultProxy

    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with FaultProxy(aws_env, faults=10, status=status, code=code) as proxy:
        lake = open_lake("s3://hint-bucket/p", lambda: boto3.client("s3", endpoint_url=proxy.url, region_name="us-east-1"), proxy.url)
        with pytest.raises(LakeError) as info:
            {"put": lambda: lake.put_bytes("k", b"x"), "get": lambda: lake.open("k"), "head": lambda: lake.size("k")}[call]()
    action = {"put": "put", "get": "get", "head": "head"}[call]
    assert str(info.value) == f"{action} s3://hint-bucket/p/k (endpoint {proxy.url}) failed: {code} (HTTP {status}); {hint}."


def test_s3_listing_is_limited_to_the_prefix_and_keys_are_relative_at_the_bucket_root(aws_env):
    s3 = boto3.client("s3", endpoint_url=aws_env, region_name="us-east-1")
    s3.create_bucket(Bucket="list-root")
    for key in ("a/dt=1/part-00000.parquet", "b/dt=1/part-00000.parquet", "p/a/x"):
        s3.put_object(Bucket="list-root", Key=key, Body=b"x")
    root = open_lake("s3://list-root", lambda: s3, aws_env)
    assert list(root.list("a")) == ["a/dt=1/part-00000.parquet"]
    assert list(open_lake("s3://list-root/p", lambda: s3, aws_env).list("a")) == ["a/x"]
    assert list(root.list("nothing-here")) == []


def test_any_other_s3_failure_still_names_where_and_what(aws_env):
    """An error that is neither an S3 error answer nor a connection failure (here a dropped
    connection mid-answer, as botocore raises it) keeps its class and message after where it happened."""
    from botocore.exceptions import ConnectionClosedError

    class Dropping:
        def put_object(self, **kwargs):
            raise ConnectionClosedError(endpoint_url="http://127.0.0.1:9/")

    lake = open_lake("s3://b/p", lambda: Dropping(), "http://127.0.0.1:9")
    with pytest.raises(LakeError) as info:
        lake.put_bytes("k", b"x")
    assert str(info.value) == "put s3://b/p/k (endpoint http://127.0.0.1:9) failed: ConnectionClosedError: Connection was closed before we received a valid response from endpoint URL: \"http://127.0.0.1:9/\"."


# --- the IO manager's contract, value kind by value kind (found by mutation testing, #22) ----------


def _value_assets(spool_dir, days, logs):
    """A small partitioned graph over LakeIOManager: each value kind the IO manager takes, and
    consumers that get what it gives back. Expectations are read back with pyarrow and gzip."""
    import gzip

    import pyarrow as pa
    from dagster import AssetIn, BackfillPolicy, DailyPartitionsDefinition, asset

    from tweet_assets.lake.values import PageSpool, StoredPages, StoredTable, spool_table

    daily = DailyPartitionsDefinition(start_date="2024-01-01")
    common = dict(partitions_def=daily, backfill_policy=BackfillPolicy.single_run())

    def table(day, n):
        return pa.table({"id": pa.array([f"{day}-{i}" for i in range(n)]), "n": pa.array(range(n), pa.int64())})

    @asset(metadata={"lake/table": "land/pages", "lake/format": "jsonl.gz"}, **common)
    def pages(context):
        out = {}
        for day in context.partition_keys:
            spool = PageSpool(str(spool_dir), day)
            for n in range(3):
                spool.write(f'{{"day": "{day}", "n": {n}}}'.encode())
            out[day] = spool.close()
        return out

    @asset(**common)
    def frame(context):
        import polars as pl

        return {day: pl.from_arrow(table(day, 5)) for day in context.partition_keys}

    @asset(metadata={"lake/table": "arrow_table"}, **common)
    def arrow(context):
        return {day: table(day, 4) for day in context.partition_keys}

    @asset(**common)
    def spooled(context):
        schema = pa.schema([("id", pa.string()), ("n", pa.int32())])  # the given schema wins over the chunks'
        return {day: spool_table([table(day, 6)], str(spool_dir), f"t-{day}", schema, sorted_by=[("id", "ascending")]) for day in context.partition_keys}

    @asset(ins={"arrow": AssetIn()}, **common)
    def copied(context, arrow):
        assert all(isinstance(v, StoredTable) for v in arrow.values())
        return arrow  # published as it is: a copy of the stored object

    @asset(ins={"pages": AssetIn(), "spooled": AssetIn()}, **common)
    def reader(context, pages, spooled):
        for day in context.partition_keys:
            assert isinstance(pages[day], StoredPages) and pages[day].size() > 0
            logs.append(("lines", day, list(pages[day].lines())))
            logs.append(("read", day, spooled[day].read(columns=["n"]).column_names, spooled[day].frame().height, spooled[day].frame(["id"]).columns))
            logs.append(("batches", day, [b.num_rows for b in spooled[day].batches(rows=4)]))
            logs.append(("footer", day, spooled[day].metadata().num_rows))
        return {day: spooled[day].frame() for day in context.partition_keys}

    return [pages, frame, arrow, spooled, copied, reader], gzip


def test_each_value_kind_is_stored_as_one_object_per_day_and_read_back(tmp_path, instance):
    import gzip

    import pyarrow.parquet as pq
    from dagster import materialize
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    from tweet_assets.lake.io_manager import LakeIOManager, LakeResource

    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    days = ["2024-01-02", "2024-01-03"]
    logs = []
    defs, _ = _value_assets(spool_dir, days, logs)
    lake = tmp_path / "lake"
    result = materialize(
        defs,
        resources={"io_manager": LakeIOManager(location=LakeResource(url=str(lake)))},
        instance=instance,
        tags={ASSET_PARTITION_RANGE_START_TAG: days[0], ASSET_PARTITION_RANGE_END_TAG: days[-1]},
    )
    assert result.success
    found = sorted(str(p.relative_to(lake)) for p in lake.rglob("*") if p.is_file() and not is_bookkeeping(str(p.relative_to(lake))))
    tables = {"land/pages": "jsonl.gz", "frame": "parquet", "arrow_table": "parquet", "spooled": "parquet", "copied": "parquet", "reader": "parquet"}
    assert found == sorted(f"{t}/dt={d}/part-00000.{fmt}" for t, fmt in tables.items() for d in days)
    assert list(spool_dir.iterdir()) == []  # spooled files are removed once stored
    from tweet_assets.lake.values import spool_table
    import pyarrow as pa

    assert spool_table([pa.table({"a": [1]})], str(spool_dir), "x").path == str(spool_dir / "x.parquet")  # in the spool directory
    for day in days:
        with gzip.open(lake / "land/pages" / f"dt={day}" / "part-00000.jsonl.gz") as handle:
            assert handle.read() == b"".join(f'{{"day": "{day}", "n": {n}}}\n'.encode() for n in range(3))
        assert pq.read_table(lake / "frame" / f"dt={day}" / "part-00000.parquet").num_rows == 5
        arrow = (lake / "arrow_table" / f"dt={day}" / "part-00000.parquet").read_bytes()
        assert (lake / "copied" / f"dt={day}" / "part-00000.parquet").read_bytes() == arrow
        spooled = pq.ParquetFile(lake / "spooled" / f"dt={day}" / "part-00000.parquet")
        assert str(spooled.schema_arrow.field("n").type) == "int32" and spooled.metadata.num_rows == 6
        sorting = spooled.metadata.row_group(0).sorting_columns
        assert [(spooled.schema_arrow.names[c.column_index], c.descending) for c in sorting] == [("id", False)]
    # what the consumer got
    for day in days:
        lines = [entry[2] for entry in logs if entry[:2] == ("lines", day)][0]
        uri = str(lake / "land/pages" / f"dt={day}" / "part-00000.jsonl.gz")
        assert lines == [(f"{uri}:{n + 1}", f'{{"day": "{day}", "n": {n}}}'.encode()) for n in range(3)]
        assert ("read", day, ["n"], 6, ["id"]) in logs and ("batches", day, [4, 2]) in logs and ("footer", day, 6) in logs
    # each day's materialization records where its object is and its size
    from dagster import AssetKey

    for key, table in (("pages", "land/pages"), ("spooled", "spooled"), ("copied", "copied")):
        records = instance.fetch_materializations(AssetKey(key), limit=10).records
        meta = {r.asset_materialization.partition: r.asset_materialization.metadata for r in records}
        assert sorted(meta) == days
        for day in days:
            path = lake / table / f"dt={day}" / f"part-00000.{tables[table]}"
            assert meta[day]["uri"].value == str(path) and meta[day]["bytes"].value == path.stat().st_size


def _store_unpartitioned(io_manager, lake, key: str, fmt: str, value) -> int:
    """What the IO manager does with an unpartitioned output: its payload stored unconditionally; the bytes stored."""
    from tweet_assets.lake.store import ANY

    payload = io_manager._payload("", key, fmt, value)
    try:
        return payload(lake, key, ANY, None).bytes
    finally:
        payload.cleanup()


def test_what_the_io_manager_refuses_and_what_it_logs(tmp_path, instance):
    import gzip

    import pyarrow as pa
    from dagster import AssetIn, BackfillPolicy, DailyPartitionsDefinition, asset, materialize
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    from tweet_assets.lake.io_manager import LOG_EACH_UP_TO, LakeIOManager, LakeResource
    from tweet_assets.lake.values import SpooledPages, StoredTable
    from tweet_assets.lake.store import LakeError

    daily = DailyPartitionsDefinition(start_date="2024-01-01")
    io_manager = LakeIOManager(location=LakeResource(url=str(tmp_path / "lake")))
    lake = io_manager.lake()

    def go(assets, start, end=None):
        tags = {ASSET_PARTITION_RANGE_START_TAG: start, ASSET_PARTITION_RANGE_END_TAG: end or start}
        result = materialize(assets, resources={"io_manager": io_manager}, instance=instance, tags=tags, raise_on_error=False)
        messages = [e.user_message for e in instance.all_logs(result.run_id) if e.user_message]
        failures = []
        for event in result.all_events:
            error = event.event_specific_data.error if event.event_type_value == "STEP_FAILURE" else None
            while error is not None:  # the IO manager's own error is the cause of Dagster's
                failures.append(error.message)
                error = error.cause
        failures = ["\n".join(failures)] if failures else []
        return result, messages, failures

    @asset(partitions_def=daily, backfill_policy=BackfillPolicy.single_run(), metadata={"lake/format": "csv"})
    def odd_format(context):
        return {day: pa.table({"a": [1]}) for day in context.partition_keys}

    @asset(partitions_def=daily, backfill_policy=BackfillPolicy.single_run())
    def one_value(context):
        return pa.table({"a": [1]})  # fine for a run of one day, refused for several

    @asset(partitions_def=daily, backfill_policy=BackfillPolicy.single_run())
    def wrong_days(context):
        return {"2023-12-31": pa.table({"a": [1]})}

    @asset(partitions_def=daily, backfill_policy=BackfillPolicy.single_run())
    def many(context):
        return {day: pa.table({"a": [1, 2]}) for day in context.partition_keys}

    @asset
    def unpartitioned():
        return pa.table({"a": [1, 2, 3]})

    @asset(ins={"unpartitioned": AssetIn()})
    def downstream(unpartitioned):
        assert isinstance(unpartitioned, StoredTable)
        return unpartitioned.read()

    _, _, failures = go([odd_format], "2024-01-02")
    assert failures and "asset odd_format: lake/format 'csv' is not one of ['jsonl.gz', 'parquet']" in failures[0]
    ok, messages, _ = go([one_value], "2024-01-02")
    assert ok.success and lake.size("one_value/dt=2024-01-02/part-00000.parquet") > 0
    assert f"wrote {lake.uri('one_value/dt=2024-01-02/part-00000.parquet')} (" in "\n".join(messages)
    _, _, failures = go([one_value], "2024-01-02", "2024-01-03")
    assert failures and "one_value: a run of 2 partitions must return {partition_key: value}" in failures[0]
    _, _, failures = go([wrong_days], "2024-01-02")
    assert failures and "wrong_days returned partitions ['2023-12-31']… but the run targets ['2024-01-02']…" in failures[0]

    # up to LOG_EACH_UP_TO objects: one line each; more: a summary, and no line per object
    size = None
    ok, messages, _ = go([many], "2024-01-01", f"2024-01-{LOG_EACH_UP_TO:02d}")
    per_object = [m for m in messages if m.startswith(f"wrote {lake.uri('many/dt=')}")]
    assert ok.success and len(per_object) == LOG_EACH_UP_TO and not any(m.startswith("wrote 7 objects") for m in messages)
    size = lake.size("many/dt=2024-01-01/part-00000.parquet")
    assert f"wrote {lake.uri('many/dt=2024-01-01/part-00000.parquet')} ({size:,} bytes, " in per_object[0]
    assert all(0 <= float(m.rsplit(", ", 1)[1].rstrip("s)")) < 60 for m in per_object)  # seconds this write took
    n = LOG_EACH_UP_TO + 2
    ok, messages, _ = go([many], "2024-01-01", f"2024-01-{n:02d}")
    assert ok.success and not [m for m in messages if m.startswith(f"wrote {lake.uri('many/dt=')}")]
    assert not [m for m in messages if m.startswith("stored ")]  # a run shorter than PROGRESS_EVERY_S: no progress lines
    summary = [m for m in messages if m.startswith(f"wrote {n} objects ")]
    assert len(summary) == 1 and f"({n * size:,} bytes) under {lake.uri('many')} in " in summary[0]
    assert 0 <= float(summary[0].rsplit(" in ", 1)[1].rstrip("s")) < 60
    import tweet_assets.lake.io_manager as io_manager_module

    io_manager_module.PROGRESS_EVERY_S, every = 0.0, io_manager_module.PROGRESS_EVERY_S  # progress on every object
    try:
        ok, messages, _ = go([many], "2024-01-01", f"2024-01-{n:02d}")
    finally:
        io_manager_module.PROGRESS_EVERY_S = every
    progress = [m for m in messages if m.startswith("stored ")]
    assert progress == [f"stored {d} of {n} objects ({d * size:,} bytes) under {lake.uri('many')}" for d in range(1, n + 1)]

    # an empty day stored again over a day that had pages: an empty gzip stream, still a raw object
    @asset(partitions_def=daily, backfill_policy=BackfillPolicy.single_run(), key_prefix=["land"], metadata={"lake/format": "jsonl.gz"})
    def raw(context):
        from tweet_assets.lake.values import PageSpool

        out = {}
        for day in context.partition_keys:
            spool = PageSpool(str(tmp_path), day)
            if context.run.tags.get("pages") == "yes":
                spool.write(b'{"data": []}')
            out[day] = spool.close()
        return out

    for pages in ("yes", "no"):
        result = materialize([raw], resources={"io_manager": io_manager}, instance=instance, partition_key="2024-01-02", tags={"pages": pages})
        assert result.success
    with gzip.open(tmp_path / "lake" / "land" / "raw" / "dt=2024-01-02" / "part-00000.jsonl.gz") as handle:  # the asset key's path is the folder
        assert handle.read() == b""

    # an unpartitioned asset: one object, no dt folder, its uri and size on the output
    result = materialize([unpartitioned, downstream], resources={"io_manager": io_manager}, instance=instance)
    meta = result.asset_materializations_for_node("unpartitioned")[0].metadata
    assert meta["uri"].value == lake.uri("unpartitioned/part-00000.parquet") and meta["bytes"].value == lake.size("unpartitioned/part-00000.parquet")
    assert result.output_for_node("downstream").num_rows == 3

    # values a format cannot be written from
    with pytest.raises(TypeError, match="k: jsonl.gz objects are written from SpooledPages, got Table"):
        _store_unpartitioned(io_manager, lake, "k", "jsonl.gz", pa.table({"a": [1]}))
    with pytest.raises(TypeError, match="k: Parquet objects are written from SpooledTable, StoredTable .copied., polars DataFrames or Arrow tables, got dict"):
        _store_unpartitioned(io_manager, lake, "k", "parquet", {"a": [1]})
    spool = tmp_path / "p.jsonl.gz"
    spool.write_bytes(gzip.compress(b'{"a": 1}\n\n\r\n{"b": 2}\r\n{"c": 3} \nnot JSON, landed as received: X\n'))
    assert _store_unpartitioned(io_manager, lake, "raw/x.jsonl.gz", "jsonl.gz", SpooledPages(str(spool), 2)) == lake.size("raw/x.jsonl.gz") and not spool.exists()

    # reading: empty lines are not pages; a raw day never stored says what to do; a damaged Parquet object too
    pages = io_manager._read(lake, "raw/x.jsonl.gz", "jsonl.gz")
    assert list(pages.lines()) == [(f"{lake.uri('raw/x.jsonl.gz')}:1", b'{"a": 1}'), (f"{lake.uri('raw/x.jsonl.gz')}:4", b'{"b": 2}'), (f"{lake.uri('raw/x.jsonl.gz')}:5", b'{"c": 3} '), (f"{lake.uri('raw/x.jsonl.gz')}:6", b"not JSON, landed as received: X")]
    with pytest.raises(LakeError, match=r"no object at .*raw/y.jsonl.gz: materialize raw_tweets for this partition first"):
        io_manager._read(lake, "raw/y.jsonl.gz", "jsonl.gz")
    lake.put_bytes("t/part-00000.parquet", b"this is not parquet")
    with pytest.raises(LakeError, match=r"t/part-00000.parquet: .*; rematerialize this partition"):
        io_manager._read(lake, "t/part-00000.parquet", "parquet").metadata()
    empty = pa.table({"a": pa.array([], pa.int64())})
    _store_unpartitioned(io_manager, lake, "e/part-00000.parquet", "parquet", empty)
    chunks = list(io_manager._read(lake, "e/part-00000.parquet", "parquet").batches())
    assert [c.num_rows for c in chunks] == [0] and chunks[0].schema == empty.schema


# --- the Lake interface, the same contract on a local directory and on S3 (#22 mutation testing) ----


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_both_lakes_keep_the_same_contract(kind, tmp_path, request):
    if kind == "local":
        lake = open_lake("file://" + str(tmp_path / "lake"))
        assert lake.uri("a/b") == str(tmp_path / "lake" / "a" / "b") and lake.url == str(tmp_path / "lake")
    else:
        url = request.getfixturevalue("s3_lake")
        endpoint = request.getfixturevalue("aws_env")
        lake = open_lake(url, lambda: boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1"))
        assert lake.uri("a/b") == f"{url}/a/b" and lake.endpoint == endpoint
    assert lake.put_bytes("t/dt=2024-01-01/part-00000.parquet", b"0123456789") == 10
    source = tmp_path / "src.bin"
    source.write_bytes(b"abcdefghij" * 3)
    assert lake.put_file("t/dt=2024-01-02/part-00000.parquet", str(source)) == 30
    assert lake.read_tail("t/dt=2024-01-02/part-00000.parquet", 4) == b"ghij"
    assert lake.read_tail("t/dt=2024-01-01/part-00000.parquet", 100) == b"0123456789"  # shorter than asked: all of it
    assert lake.copy("t/dt=2024-01-02/part-00000.parquet", "u/dt=2024-01-02/part-00000.parquet") == 30
    assert lake.read_bytes("u/dt=2024-01-02/part-00000.parquet") == b"abcdefghij" * 3
    assert list(lake.list("t/")) == ["t/dt=2024-01-01/part-00000.parquet", "t/dt=2024-01-02/part-00000.parquet"]
    assert list(lake.list("t/dt=2024-01-02")) == ["t/dt=2024-01-02/part-00000.parquet"]
    for read in (lambda: lake.open("t/dt=2024-01-03/part-00000.parquet"), lambda: lake.read_tail("t/dt=2024-01-03/part-00000.parquet", 4)):
        with pytest.raises(LakeError, match="t/dt=2024-01-03/part-00000.parquet"):
            read()
    with pytest.raises(LakeError, match=r"t/dt=2024-01-03/part-00000.parquet.*materialize the upstream|NoSuchKey"):
        lake.copy("t/dt=2024-01-03/part-00000.parquet", "u/x")
    assert lake.size("u/x") is None and lake.remove_stale_temporaries([], before=0) == 0


def test_a_local_rerun_removes_only_old_temporaries_of_its_own_folders(tmp_path):
    lake = LocalLake(str(tmp_path))
    folder = tmp_path / "t" / "dt=2024-01-01"
    folder.mkdir(parents=True)
    names = {".tmp-old.part": 1_700_000_000, ".tmp-older.part": 1_600_000_000, ".tmp-at-the-start.part": 1_750_000_000, ".tmp-new.part": 1_800_000_000}
    names.update({"part-00000.parquet": 1, "x.part": 1, ".tmp-y": 1})  # not our temporaries, however old
    for name, mtime in names.items():
        (folder / name).write_bytes(b"x")
        os.utime(folder / name, (mtime, mtime))
    assert list(lake.list("t")) == ["t/dt=2024-01-01/part-00000.parquet", "t/dt=2024-01-01/x.part"]  # .tmp-* are not objects
    assert lake.remove_stale_temporaries(["t/dt=2024-01-01/part-00000.parquet", "t/dt=2024-01-09/part-00000.parquet"], before=1_750_000_000) == 2
    assert sorted(p.name for p in folder.iterdir()) == [".tmp-at-the-start.part", ".tmp-new.part", ".tmp-y", "part-00000.parquet", "x.part"]
    lake.check_writable()
    assert not (tmp_path / "_tweet_assets_check").exists()  # a local lake keeps nothing of the check


def test_lake_urls_that_are_refused():
    from tweet_assets.lake.store import S3Lake

    for url in ("s3://", "s3:///prefix", "gs://bucket/x"):
        with pytest.raises(LakeError, match="s3://bucket"):
            S3Lake(url, client=None) if url.startswith("s3") else open_lake(url)
    with pytest.raises(LakeError, match="needs an S3 client"):
        open_lake("s3://bucket/p")
    assert S3Lake("s3://bucket/", client=object()).endpoint == "AWS default" and S3Lake("s3://bucket/", client=object()).uri("k") == "s3://bucket/k"
    odd = S3Lake("s3://bucket/XlakeX/", client=object())  # the prefix and URL lose only their slashes
    assert (odd.url, odd.bucket, odd.prefix, odd.uri("k")) == ("s3://bucket/XlakeX", "bucket", "XlakeX", "s3://bucket/XlakeX/k")


def test_a_local_write_goes_through_a_temporary_beside_its_target(tmp_path, monkeypatch):
    """What remove_stale_temporaries looks for is what a write leaves when killed: ``.tmp-*.part``
    in the target's own folder (so the rename is atomic, on one file system)."""
    import shutil

    seen = []
    real = shutil.copyfileobj

    def spy(src, out, *args):
        seen.append(sorted(os.listdir(tmp_path / "t" / "dt=2024-01-01")))
        return real(src, out, *args)

    monkeypatch.setattr(shutil, "copyfileobj", spy)
    source = tmp_path / "src"
    source.write_bytes(b"x" * 10)
    LocalLake(str(tmp_path)).put_file("t/dt=2024-01-01/part-00000.parquet", str(source))
    assert len(seen) == 1 and len(seen[0]) == 1 and seen[0][0].startswith(".tmp-") and seen[0][0].endswith(".part")
    assert os.listdir(tmp_path / "t" / "dt=2024-01-01") == ["part-00000.parquet"]


def _stubbed(url="s3://b/lake"):
    """An S3Lake on a botocore Stubber: each request checked against the parameters S3 requires."""
    from botocore.stub import Stubber

    from tweet_assets.lake.store import S3Lake

    client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    return S3Lake(url, client), Stubber(client)


def test_s3_reruns_abort_only_their_own_old_uploads_with_the_key_s3_needs():
    from datetime import datetime, timezone

    at = lambda second: datetime.fromtimestamp(1_750_000_000 + second, timezone.utc)  # noqa: E731
    for url, base in (("s3://b/lake", "lake/"), ("s3://b", "")):
        lake, stub = _stubbed(url)
        keys = ["land/raw/dt=2024-04-01/part-00000.jsonl.gz", "land/raw/dt=2024-04-02/part-00000.jsonl.gz"]
        uploads = [
            {"Key": base + keys[0], "UploadId": "mine-old", "Initiated": at(-10)},
            {"Key": base + keys[1], "UploadId": "mine-older", "Initiated": at(-99)},
            {"Key": base + "land/raw/dt=2024-04-03/part-00000.jsonl.gz", "UploadId": "other-day", "Initiated": at(-10)},
            {"Key": base + keys[0], "UploadId": "mine-new", "Initiated": at(5)},  # a write running now
            {"Key": base + keys[1], "UploadId": "mine-now", "Initiated": at(0)},  # started as the run did: not "before"
        ]
        stub.add_response("list_multipart_uploads", {"Bucket": "b", "Uploads": uploads}, {"Bucket": "b", "Prefix": base + "land/raw"})
        for key, upload in ((keys[0], "mine-old"), (keys[1], "mine-older")):
            stub.add_response("abort_multipart_upload", {}, {"Bucket": "b", "Key": base + key, "UploadId": upload})
        stub.add_response("list_multipart_uploads", {"Bucket": "b"}, {"Bucket": "b", "Prefix": base + "nothing"})  # none: no "Uploads"
        with stub:
            assert lake.remove_stale_temporaries(keys, before=1_750_000_000) == 2
            assert lake.incomplete_uploads("nothing") == []
            stub.assert_no_pending_responses()
        assert lake.remove_stale_temporaries([], before=0) == 0  # no keys: no listing at all (the stub would fail)


@pytest.mark.parametrize("code", ["404", "NoSuchKey", "NotFound"])
def test_every_s3_spelling_of_no_such_object_is_no_object(code):
    """HeadObject answers 404 with no body (botocore: code "404"); S3-compatible stores say NoSuchKey or NotFound."""
    lake, stub = _stubbed()
    stub.add_client_error("head_object", service_error_code=code, http_status_code=404, expected_params={"Bucket": "b", "Key": "lake/k"})
    stub.add_client_error("head_object", service_error_code="AccessDenied", http_status_code=403)
    stub.add_client_error("get_object", service_error_code=code, http_status_code=404)
    with stub:
        assert lake.size("k") is None
        with pytest.raises(LakeError, match="AccessDenied"):
            lake.size("k")
        with pytest.raises(LakeError) as info:
            lake.open("k")
    assert str(info.value).startswith(f"get s3://b/lake/k (endpoint {lake.endpoint}) failed: {code} (HTTP 404); ")
    if code != "NotFound":
        assert str(info.value).endswith("no object there: materialize the upstream asset for this partition first.")


def _spool_threads() -> list:
    import threading

    return [t for t in threading.enumerate() if t.name.startswith("raw-spool") and t.is_alive()]


def test_spooled_pages_are_deterministic_gzip_counted_in_uncompressed_bytes(tmp_path):
    """raw_tweets' ``uncompressed_bytes`` metadata is ``bytes_in``; mtime 0 and no file name in
    the gzip header (RFC 1952, 2.3) make the same pages the same object on every rerun."""
    import gzip

    from tweet_assets.lake.values import PageSpool

    pages = [b'{"data": [{"id": "1"}]}', b'{"data": []}', b"x" * 70_000]
    made = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        spool = PageSpool(str(tmp_path / name), "2024-01-02")
        for n, body in enumerate(pages):
            spool.write(body)
            if n == 0:
                spool.suspend()  # resumed as a second gzip member
        assert spool.bytes_in == sum(len(b) + 1 for b in pages) and spool.pages == 3
        made.append(spool.close())
        assert made[-1].pages == 3 and made[-1].path == str(tmp_path / name / "raw-2024-01-02.jsonl.gz")
    first, second = (open(m.path, "rb").read() for m in made)
    assert first == second and gzip.decompress(first) == b"".join(b + b"\n" for b in pages)
    header = first[:10]
    assert header[:3] == b"\x1f\x8b\x08" and header[3] & 0x08 == 0 and header[4:8] == bytes(4)  # no FNAME, MTIME 0
    (tmp_path / "c").mkdir()
    empty = PageSpool(str(tmp_path / "c"), "2024-01-03").close()
    raw = open(empty.path, "rb").read()
    assert empty.pages == 0 and gzip.decompress(raw) == b"" and raw[3] & 0x08 == 0 and raw[4:8] == bytes(4)


def test_background_spooling_uses_one_worker_thread_bounded_and_stopped(tmp_path, monkeypatch):
    """SpoolSet's docstring: pages are written on one worker thread, at most ``max_pending`` wait
    in memory, and the thread is gone after close() and after a failure inside ``with``."""
    import time

    from tweet_assets.lake.values import SpoolSet

    days = ["2024-01-02", "2024-01-03"]
    real = SpoolSet._write
    monkeypatch.setattr(SpoolSet, "_write", lambda self, day, body: (time.sleep(0.002), real(self, day, body)))
    spools = SpoolSet(str(tmp_path), days, max_pending=3)
    most = 0
    for n in range(40):
        spools.write(days[n % 2], b"{}")
        most = max(most, len(spools._pending))
        assert len(_spool_threads()) == 1
    done = spools.close()
    assert most <= 3 and {d: s.pages for d, s in done.items()} == {days[0]: 20, days[1]: 20} and _spool_threads() == []

    with pytest.raises(RuntimeError, match="failed mid-run"), SpoolSet(str(tmp_path / "f"), days) as failing:
        (tmp_path / "f").mkdir()
        for _ in range(10):
            failing.write(days[0], b"{}")
        raise RuntimeError("failed mid-run")
    assert _spool_threads() == [] and not any(s.is_open for s in failing.spools.values())

    plain = SpoolSet(str(tmp_path / "p"), days, background=False)
    (tmp_path / "p").mkdir()
    plain.write(days[1], b"{}")
    assert _spool_threads() == [] and plain.close()[days[1]].pages == 1


# --- review (notes/review_lake.md) 5: an input is read at the version its lineage check saw -------


def _pipeline_day(tmp_path, instance, day="2024-03-05"):
    root = str(tmp_path / "lake")
    assert run(resources(root, SampleSource(posts_per_day=30)), day, instance=instance).success
    return root, LocalLake(root)


def test_review5_an_input_replaced_right_after_its_lineage_check_is_never_published(tmp_path, instance, monkeypatch):
    """s3_parquet checks the clean object's lineage (a HEAD), then a stale writer replaces it: the
    step must read (copy) the version it checked, so it fails rather than publish the replacement.
    Before, it HEADed the object again and pinned the read to whatever was there then."""
    from tweet_assets.defs.pipeline import assets
    from tweet_assets.lake.values import StoredTable

    day = "2024-03-05"
    root, lake = _pipeline_day(tmp_path, instance, day)
    key = f"clean_tweets/dt={day}/part-00000.parquet"
    clean = StoredTable(lake, key, "").read()
    import pyarrow.parquet as pq

    pq.write_table(clean.slice(0, 3), str(tmp_path / "stale.parquet"))
    stale = (tmp_path / "stale.parquet").read_bytes()
    real = LocalLake.etag
    replaced = []

    def etag(self, k):
        seen = real(self, k)
        if k == key and not replaced:  # the lineage check's HEAD; the stale write lands right after
            replaced.append(True)
            LocalLake(root).put_bytes(key, stale)
        return seen

    monkeypatch.setattr(LocalLake, "etag", etag)
    result = run(resources(root, SampleSource(posts_per_day=30)), day, instance=instance, selection=[assets.s3_parquet], raise_on_error=False)
    assert replaced and not result.success
    published = pq.read_table(tmp_path / "lake" / "tweets" / f"dt={day}" / "part-00000.parquet")
    assert published.num_rows == 30  # still the first run's: the 3-row replacement was not published
    failure = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error
    assert "changed since this run read it" in str(failure.to_string())


def test_review5_each_input_object_is_headed_once_per_step(tmp_path, instance, monkeypatch):
    """clean_tweets reading a raw day: one HEAD of the raw object (the lineage check's), reused by
    the read; before, three (the check, the version to pin, the missing-day test, the pages' size)."""
    from tweet_assets.defs.pipeline import assets
    from tweet_assets.lake.io_manager import LakeIOManager

    day = "2024-03-05"
    root, lake = _pipeline_day(tmp_path, instance, day)
    raw = f"raw_tweets/dt={day}/part-00000.jsonl.gz"
    heads = []
    loading = []
    for name in ("etag", "size", "head"):
        real = getattr(LocalLake, name)

        def counted(self, k, _real=real, _name=name):
            if k == raw and loading:
                heads.append(_name)
            return _real(self, k)

        monkeypatch.setattr(LocalLake, name, counted)
    real_load = LakeIOManager.load_input

    def load_input(self, context):
        if context.asset_key.path[-1] != "raw_tweets":  # (the checks of clean_tweets HEAD it as clean's upstream: their own step)
            return real_load(self, context)
        loading.append(True)
        try:
            return real_load(self, context)
        finally:
            loading.pop()

    monkeypatch.setattr(LakeIOManager, "load_input", load_input)
    assert run(resources(root, SampleSource(posts_per_day=30)), day, instance=instance, selection=[assets.clean_tweets]).success
    assert len(heads) == 1, heads


def test_review6_a_failed_multipart_upload_sends_no_queued_part_and_is_aborted_after_the_last(tmp_path, monkeypatch):
    """Part 1 of 20 fails: the parts still queued are not sent (leaving the pool waited for every
    one of them before the abort), and the abort comes after the last part sent."""
    from tweet_assets.lake.store import S3Lake

    calls = []

    class Client:
        def create_multipart_upload(self, **kwargs):
            calls.append(("create", None))
            return {"UploadId": "u1"}

        def upload_part(self, **kwargs):
            calls.append(("part", kwargs["PartNumber"]))
            if kwargs["PartNumber"] == 1:
                raise ConnectionError("connection reset")
            return {"ETag": f'"p{kwargs["PartNumber"]}"'}

        def abort_multipart_upload(self, **kwargs):
            calls.append(("abort", kwargs["UploadId"]))

    monkeypatch.setattr(S3Lake, "MULTIPART_THRESHOLD", 10)
    monkeypatch.setattr(S3Lake, "PART_BYTES", 10)
    monkeypatch.setattr(S3Lake, "UPLOAD_THREADS", 1)
    path = tmp_path / "big"
    path.write_bytes(b"x" * 200)
    with pytest.raises(LakeError, match="connection reset"):
        S3Lake("s3://bucket-x/lake", Client()).write_file("k", str(path), None, {})
    assert calls == [("create", None), ("part", 1), ("abort", "u1")]
