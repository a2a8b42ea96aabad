"""End to end on real recorded input: replay every twarc2 file in ../shared/x-api-v2 through
raw_tweets → clean_tweets → s3_parquet into moto S3 and a local lake, and read the published table
back as Athena would (hive partitions), comparing with the input pages read independently.
"""

from __future__ import annotations

import gzip
import json

import duckdb
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest
from dagster import AssetKey

from tests.helpers import is_bookkeeping, post_page_files, resources, run
from tests.reference import reference_table
from tweet_assets.schema import COLUMN_NAMES
from tweet_assets.sources import ReplaySource


@pytest.fixture(scope="module")
def recorded(x_api_v2):
    """The files, and ``{day: {id: row}}`` built from them by the independent reference (tests/reference.py)."""
    files = post_page_files(x_api_v2)
    return files, reference_table(files)


def _s3_table(lake_url: str, endpoint: str):
    fs = pafs.S3FileSystem(endpoint_override=endpoint, region="us-east-1", access_key="testing", secret_key="testing")
    dataset = ds.dataset(lake_url[5:] + "/tweets", filesystem=fs, format="parquet", partitioning="hive")
    return fs, dataset.to_table()


def _check_rows(rows: list[dict], expected: dict[str, dict[int, dict]], days: list[str]):
    """Every published value equals the reference's, column by column."""
    by_day: dict[str, dict[int, dict]] = {}
    for row in rows:
        by_day.setdefault(str(row["dt"]), {})[row["id"]] = row
    for day in days:
        want = expected.get(day, {})
        got = by_day.get(day, {})
        assert sorted(got) == sorted(want), f"{day}: published ids differ from the input pages"
        for post_id, reference in want.items():
            row = got[post_id]
            for column in COLUMN_NAMES:
                assert row[column] == reference[column], (day, post_id, column)


def test_replay_single_partitions_into_s3(recorded, s3_lake, aws_env, instance):
    """Days the recorded posts cover, one partition per run, into moto S3: every 8th of the 50+
    days and the last (each run costs ~4 s on 2 cores; test_fidelity checks every day's values)."""
    files, expected = recorded
    res = resources(s3_lake, ReplaySource(path=str(files[0].parent.parent)))
    assert len(expected) > 50
    days = sorted({*sorted(expected)[::8], max(expected)})
    expected = {day: expected[day] for day in days}
    for day in days:
        result = run(res, day, instance=instance)
        assert result.success
    fs, table = _s3_table(s3_lake, aws_env)
    assert table.num_rows == sum(len(v) for v in expected.values())
    _check_rows(table.to_pylist(), expected, days)
    # one object per day, under the hive layout
    keys = [f.path for f in fs.get_file_info(pafs.FileSelector(s3_lake[5:] + "/tweets", recursive=True)) if f.is_file]
    assert len(keys) == len(days) and all(k.endswith("/part-00000.parquet") and "/dt=" in k for k in keys)


def test_replay_single_run_backfill_local_duckdb(recorded, tmp_path, instance):
    """A multi-day range as one run (BackfillPolicy.single_run), read back with DuckDB."""
    files, expected = recorded
    res = resources(str(tmp_path / "lake"), ReplaySource(path=str(files[0].parent.parent)))
    start, end = "2021-05-06", "2021-05-12"  # media_policy_violation_* pages plus empty days around them
    result = run(res, start, end, instance=instance)
    assert result.success
    mats = result.asset_materializations_for_node("s3_parquet")
    assert sorted(m.partition for m in mats) == [f"2021-05-{d:02d}" for d in range(6, 13)]
    days = [f"2021-05-{d:02d}" for d in range(6, 13)]
    con = duckdb.connect()
    rows = con.execute(
        f"SELECT * FROM read_parquet('{tmp_path}/lake/tweets/*/*.parquet', hive_partitioning=true)"
    ).to_arrow_table().to_pylist()
    assert len(rows) == sum(len(expected.get(d, {})) for d in days) > 100
    _check_rows(rows, expected, days)
    # empty days are materialized too, with no object (tweet_assets.lake.empty_days): the table reads 0 rows
    assert sorted(m.partition for m in mats if m.metadata["bytes"].value == 0) == ["2021-05-06", "2021-05-12"]
    assert not (tmp_path / "lake" / "tweets" / "dt=2021-05-06").exists()
    empty = con.execute(f"SELECT count(*) FROM read_parquet('{tmp_path}/lake/tweets/*/*.parquet', hive_partitioning=true) WHERE dt = DATE '2021-05-06'").fetchone()[0]
    assert empty == 0


def test_rematerialize_leaves_one_object_and_same_rows(recorded, s3_lake, aws_env, instance):
    files, expected = recorded
    res = resources(s3_lake, ReplaySource(path=str(files[0].parent.parent)))
    day = "2021-06-26"  # 500 posts in a 5-page chain
    first = run(res, day, instance=instance)
    _, table1 = _s3_table(s3_lake, aws_env)
    second = run(res, day, instance=instance)
    fs, table2 = _s3_table(s3_lake, aws_env)
    assert first.success and second.success
    assert table1.num_rows == table2.num_rows == len(expected[day]) == 500
    assert table1.equals(table2)
    infos = fs.get_file_info(pafs.FileSelector(s3_lake[5:], recursive=True))
    files_written = sorted(i.path.split("/lake/")[1] for i in infos if i.is_file and not is_bookkeeping(i.path))
    # the day's lease and lineage records (#27), one each, rewritten in place by the second run
    assert sorted(i.path.split("/lake/")[1] for i in infos if i.is_file and is_bookkeeping(i.path)) == [f"clean_tweets/_leases/dt={day}.json", f"clean_tweets/_lineage/dt={day}.json"]
    assert files_written == [
        "_tweet_assets_check/write-check",  # raw_tweets' write check, the same object each run
        f"clean_tweets/dt={day}/part-00000.parquet",
        f"raw_tweets/dt={day}/part-00000.jsonl.gz",
        f"tweets/dt={day}/part-00000.parquet",
    ]


def test_broken_line_is_quarantined_and_counted(x_api_v2, tmp_path, instance):
    """streaming_output_with_error.jsonl: 7 stream messages and 1 truncated line."""
    path = x_api_v2 / "twarc-csv-test-data" / "streaming_output_with_error.jsonl"
    res = resources(str(tmp_path / "lake"), ReplaySource(path=str(path)))
    result = run(res, "2021-04-01", instance=instance)
    assert result.success
    # the raw zone keeps all 8 lines, the broken one byte for byte
    with gzip.open(tmp_path / "lake/raw_tweets/dt=2021-04-01/part-00000.jsonl.gz", "rb") as handle:
        landed = handle.read().splitlines()
    assert len(landed) == 8
    assert landed[-1] == path.read_bytes().splitlines()[-1]
    meta = result.asset_materializations_for_node("clean_tweets")[0].metadata
    assert meta["quarantined"].value == 1
    assert meta["quarantined_by_reason"].value == {"invalid_json": 1}
    assert meta["quarantine_sample"].value[0]["location"].endswith("part-00000.jsonl.gz:8")
    assert meta["dagster/row_count"].value == 7
    rows = duckdb.connect().execute(
        f"SELECT matching_rules FROM read_parquet('{tmp_path}/lake/tweets/*/*.parquet')"
    ).fetchall()
    assert len(rows) == 7
    assert rows[0][0] == [{"id": 1377649934414049282, "tag": None}]


def test_raw_tweets_metadata_counts(x_api_v2, tmp_path, instance):
    path = x_api_v2 / "twarc-network-test-data" / "tweets.jsonl"
    res = resources(str(tmp_path / "lake"), ReplaySource(path=str(path)))
    result = run(res, "2021-06-26", instance=instance)
    meta = result.asset_materializations_for_node("raw_tweets")[0].metadata
    pages = [json.loads(line) for line in path.read_bytes().splitlines()]
    assert meta["pages"].value == 5
    assert meta["posts"].value == 500
    assert meta["api_errors"].value == sum(len(p.get("errors", [])) for p in pages)
    assert meta["earliest_created_at"].value == min(t["created_at"] for p in pages for t in p["data"])
    assert meta["uri"].value.endswith("raw_tweets/dt=2021-06-26/part-00000.jsonl.gz")
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"ids_unique_and_not_null": True, "created_at_in_partition": True, "published_schema_matches": True}
    s3_meta = result.asset_materializations_for_node("s3_parquet")[0].metadata
    assert "CREATE EXTERNAL TABLE" in s3_meta["athena_ddl"].value
    for dialect in ("athena", "redshift", "snowflake"):  # each DDL says which dialect it is
        assert s3_meta[f"{dialect}_ddl"].value.startswith(f"```sql\n-- dialect: {dialect} ("), dialect
    assert result.asset_materializations_for_node("s3_parquet")[0].asset_key == AssetKey("s3_parquet")
