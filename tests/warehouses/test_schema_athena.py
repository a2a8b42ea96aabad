"""The column contract: every recorded API field accounted for, and a table Athena reads."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlglot

from tests.helpers import post_page_files, resources, run
from tweet_assets.transform import pages
from tweet_assets.warehouses.athena import create_table_ddl
from tweet_assets.schema import COLUMNS, LEFT_RAW, PUBLISHED_SCHEMA, is_left_raw, mapped_source_paths
from tweet_assets.sources import ReplaySource

REPO = Path(__file__).resolve().parents[2]
OBJECTS = {"users": "user", "tweets": "tweet", "media": "media", "places": "place", "polls": "poll"}


def _walk(value, path, out):
    if isinstance(value, dict):
        for key, child in value.items():
            _walk(child, f"{path}.{key}", out)
    elif isinstance(value, list):
        for child in value:
            _walk(child, path, out)
    else:
        out.add(path)


def recorded_paths(root: Path) -> set[str]:
    paths: set[str] = set()
    for path in post_page_files(root):
        for line in path.read_bytes().splitlines():
            try:
                page = json.loads(line)
            except ValueError:
                continue
            data = page.get("data")
            for post in [data] if isinstance(data, dict) else data or []:
                _walk(post, "tweet", paths)
            for name, objects in (page.get("includes") or {}).items():
                for obj in objects:
                    _walk(obj, OBJECTS[name], paths)
            for key in ("meta", "errors", "matching_rules", "__twarc"):
                if key in page:
                    _walk(page[key], f"page.{key}", paths)
    return paths


def test_every_recorded_key_path_is_a_column_or_left_raw_with_a_reason(x_api_v2):
    paths = recorded_paths(x_api_v2)
    assert len(paths) > 130
    mapped = mapped_source_paths()
    unaccounted = sorted(p for p in paths if p not in mapped and not is_left_raw(p))
    assert unaccounted == [], f"map these to a column or list them in schema.LEFT_RAW with the reason: {unaccounted}"
    assert all(reason.strip() for reason in LEFT_RAW.values())


def _arrow_paths(typ: pa.DataType, prefix: str, out: set[str]):
    if pa.types.is_struct(typ):
        for f in typ:
            _arrow_paths(f.type, f"{prefix}.{f.name}", out)
        out.add(prefix)
    elif pa.types.is_list(typ):
        _arrow_paths(typ.value_type, prefix, out)
    else:
        out.add(prefix)


def test_every_column_source_is_decoded():
    """A column built from a key the page decoder does not read would always be null."""
    decoded: set[str] = set()
    for name, typ in (("tweet", pages.TWEET), ("user", pages.USER), ("media", pages.MEDIA), ("place", pages.PLACE), ("poll", pages.POLL)):
        _arrow_paths(typ, name, decoded)
    for key in ("matching_rules", "errors", "__twarc"):
        _arrow_paths(pages.PAGE_TYPE.field(key).type, f"page.{key}", decoded)
    missing = sorted(s for s in mapped_source_paths() if s not in decoded)
    assert missing == []


def test_column_names_are_lowercase_snake_case():
    for column in COLUMNS:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", column.name), column.name
        assert column.description and column.sources


_ATHENA = {pa.int64(): "BIGINT", pa.string(): "STRING", pa.bool_(): "BOOLEAN", pa.float64(): "DOUBLE", pa.timestamp("ms", tz="UTC"): "TIMESTAMP"}


def _expected_hive_type(typ: pa.DataType) -> str:
    if pa.types.is_list(typ):
        return f"ARRAY<{_expected_hive_type(typ.value_type)}>"
    if pa.types.is_struct(typ):
        return "STRUCT<" + ", ".join(f"{f.name}: {_expected_hive_type(f.type)}" for f in typ) + ">"
    return _ATHENA[typ]


def test_ddl_parses_as_athena_sql_and_matches_the_parquet_schema():
    ddl = create_table_ddl("s3://bucket/prefix/tweets/")
    create = sqlglot.parse_one(ddl, read="athena")
    assert isinstance(create, sqlglot.exp.Create)
    columns = {c.name: c.args["kind"].sql("hive") for c in create.this.expressions}
    assert list(columns) == PUBLISHED_SCHEMA.names
    for field in PUBLISHED_SCHEMA:
        assert columns[field.name] == _expected_hive_type(field.type), field.name
    props = create.args["properties"].sql("hive")
    for needed in ("PARTITIONED BY (`dt` STRING)", "STORED AS PARQUET", "LOCATION 's3://bucket/prefix/tweets/'",
                   "'projection.enabled'='true'", "'projection.dt.type'='date'", "'projection.dt.format'='yyyy-MM-dd'",
                   "'projection.dt.range'=", "'storage.location.template'='s3://bucket/prefix/tweets/dt=${dt}/'"):
        assert needed in props, needed


def test_checked_in_ddl_is_the_generated_one():
    checked_in = (REPO / "deploy" / "athena" / "create_table.sql").read_text()
    assert checked_in.strip() == create_table_ddl("s3://YOUR-BUCKET/tweet_assets/tweets/") + ";", "regenerate: make ddl-files (every warehouse's checked-in DDL)"


def _leaf_types(typ: pa.DataType):
    if pa.types.is_list(typ):
        yield from _leaf_types(typ.value_type)
    elif pa.types.is_struct(typ):
        for f in typ:
            yield from _leaf_types(f.type)
    else:
        yield typ


@pytest.fixture(scope="module")
def published_lake(x_api_v2, tmp_path_factory):
    lake = tmp_path_factory.mktemp("lake")
    from dagster import DagsterInstance

    with DagsterInstance.ephemeral() as instance:
        res = resources(str(lake), ReplaySource(path=str(x_api_v2)))
        for start, end in (("2021-09-22", "2021-09-22"), ("2021-06-26", "2021-06-26"), ("2022-09-25", "2022-09-25"), ("2021-03-23", "2021-03-23"), ("2021-05-07", "2021-05-11")):
            assert run(res, start, end, instance=instance).success
    return lake


def test_every_written_file_follows_the_athena_rules(published_lake):
    import duckdb

    files = sorted((published_lake / "tweets").glob("dt=*/part-00000.parquet"))
    assert len(files) == 9
    for path in files:
        meta = pq.ParquetFile(path)
        schema = meta.schema_arrow
        assert schema.equals(PUBLISHED_SCHEMA, check_metadata=False), path
        assert "dt" not in schema.names
        for field in schema:
            for leaf in _leaf_types(field.type):
                assert not pa.types.is_unsigned_integer(leaf)
                assert not (pa.types.is_timestamp(leaf) and (leaf.unit != "ms" or leaf.tz != "UTC"))
        for rg in range(meta.metadata.num_row_groups):
            group = meta.metadata.row_group(rg)
            for c in range(group.num_columns):
                assert group.column(c).compression == "ZSTD"
        created = pq.read_table(path, columns=["created_at"])["created_at"].to_pylist()
        assert created == sorted(created)
    con = duckdb.connect()
    by_day = con.execute(f"SELECT dt, count(*) FROM read_parquet('{published_lake}/tweets/*/*.parquet', hive_partitioning=true) GROUP BY dt ORDER BY dt").fetchall()
    assert [str(d) for d, _ in by_day] == ["2021-03-23", "2021-05-07", "2021-05-08", "2021-05-09", "2021-05-10", "2021-05-11", "2021-06-26", "2021-09-22", "2022-09-25"]
    import pyarrow.dataset as ds

    table = ds.dataset(published_lake / "tweets", format="parquet", partitioning="hive").to_table()
    assert table.num_rows == sum(n for _, n in by_day)


def test_published_size_is_small_against_raw(published_lake):
    raw = sum(p.stat().st_size for p in (published_lake / "raw_tweets").rglob("*.jsonl.gz"))
    pub = sum(p.stat().st_size for p in (published_lake / "tweets").rglob("*.parquet"))
    assert pub < raw, (pub, raw)
