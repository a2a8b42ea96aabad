"""What each warehouse needs for the Iceberg table (point 6), from schema.py through the warehouses
registry, every statement parsed by sqlglot in its dialect; `tweet-assets ddl --format iceberg`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlglot
from sqlglot import exp

from tweet_assets.schema import COLUMNS, Column
from tweet_assets.warehouses import DIALECTS, REGISTRY, ddl
from tweet_assets.warehouses.athena import athena_type

REPO = Path(__file__).resolve().parents[2]
LOCATION = "s3://bucket/lake/tweets/"


def _parsed(dialect: str, **kwargs) -> list[exp.Expression]:
    parsed = sqlglot.parse(ddl(dialect, LOCATION, table_format="iceberg", **kwargs), read=dialect, error_level=sqlglot.ErrorLevel.RAISE)
    return [e for e in parsed if e is not None and not isinstance(e, exp.Semicolon)]


def test_athena_creates_an_iceberg_table_partitioned_by_day_with_every_column():
    [create] = _parsed("athena", database="tweets_db", table="posts")
    assert isinstance(create, exp.Create) and create.args["kind"] == "TABLE"
    columns = {c.name: c for c in create.this.expressions if isinstance(c, exp.ColumnDef)}
    assert list(columns) == [c.name for c in COLUMNS]
    for column in COLUMNS:
        assert columns[column.name].args["kind"].sql("hive") == exp.DataType.build(athena_type(column.type), dialect="hive").sql("hive"), column.name
    properties = {p.name.lower(): p.text("value") for p in create.args["properties"].expressions if isinstance(p, exp.Property)}
    assert properties["table_type"] == "ICEBERG" and properties["write_compression"] == "zstd"
    text = create.sql("athena")
    assert "PARTITIONED BY (DAY(`created_at`))" in text and f"LOCATION '{LOCATION}'" in text and (create.this.this.db, create.this.this.name) == ("tweets_db", "posts")
    assert "Timestamps are microseconds, UTC" in ddl("athena", LOCATION, table_format="iceberg")


def test_snowflake_reads_it_through_a_glue_catalog_integration():
    integration, volume, table = _parsed("snowflake", iam_role="arn:aws:iam::123456789012:role/sf", database="tweets_db")
    assert isinstance(integration, exp.Command) and "CATALOG_SOURCE = GLUE" in integration.sql("snowflake") and "CATALOG_NAMESPACE = 'tweets_db'" in integration.sql("snowflake")
    assert isinstance(volume, exp.Command) and f"STORAGE_BASE_URL = '{LOCATION}'" in volume.sql("snowflake")
    assert isinstance(table, exp.Create) and any(isinstance(p, exp.IcebergProperty) for p in table.args["properties"].expressions)
    properties = {p.name.upper(): p.text("value") for p in table.args["properties"].expressions if isinstance(p, exp.Property)}
    assert properties["CATALOG"] == "tweet_assets_glue" and properties["EXTERNAL_VOLUME"] == "tweet_assets_volume" and properties["CATALOG_TABLE_NAME"] == "tweets"


def test_redshift_needs_an_external_schema_over_the_glue_database():
    schema, query = _parsed("redshift", database="tweets_db", iam_role="arn:aws:iam::123456789012:role/rs")
    assert isinstance(schema, exp.Command) and "FROM DATA CATALOG DATABASE 'tweets_db'" in schema.sql("redshift") and "IAM_ROLE 'arn:aws:iam::123456789012:role/rs'" in schema.sql("redshift")
    assert isinstance(query, exp.Select) and query.find(exp.Table).sql("redshift") == "tweets_iceberg.tweets"


def test_a_column_added_to_schema_py_reaches_the_athena_iceberg_ddl():
    import pyarrow as pa

    extra = (*COLUMNS, Column("community_id", pa.int64(), "The X Community of the post."))
    [create] = sqlglot.parse(ddl("athena", LOCATION, table_format="iceberg", columns=extra), read="athena")[:1]
    assert [c.name for c in create.this.expressions if isinstance(c, exp.ColumnDef)][-1] == "community_id"


@pytest.mark.parametrize("dialect", DIALECTS)
def test_checked_in_iceberg_ddl_is_the_generated_one(dialect):
    path = REGISTRY[dialect].iceberg_checked_in
    assert (REPO / path).read_text() == ddl(dialect, "s3://YOUR-BUCKET/tweet_assets/tweets/", table_format="iceberg"), f"{path} is stale: make ddl-files"


def test_ddl_command_with_format_iceberg():
    out = subprocess.run([sys.executable, "-m", "tweet_assets.cli", "ddl", "--format", "iceberg", "--dialect", "athena", "--location", "s3://b/p/tweets"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("-- dialect: athena iceberg") and "'table_type'='ICEBERG'" in out.stdout and "projection" not in out.stdout
    refused = subprocess.run([sys.executable, "-m", "tweet_assets.cli", "ddl", "--format", "iceberg", "--dialect", "redshift", "--days", "2024-01-01...2024-01-02"], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "an Iceberg table has none to add" in refused.stderr
