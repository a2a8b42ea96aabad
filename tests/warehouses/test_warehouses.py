"""Every warehouse dialect is generated from schema.py: each column's type in Athena, Glue,
Redshift Spectrum and Snowflake (walked from its Arrow type, checked against an independent
expected mapping), every statement parsed by sqlglot in its dialect, and a column added to a copy
of the schema reaching every dialect."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pytest
import sqlglot
from sqlglot import exp

from tweet_assets import cli
from tweet_assets.schema import COLUMNS, Column
from tweet_assets.warehouses import DIALECTS, HEADERS, ddl, glue, redshift, schema_version, snowflake

REPO = Path(__file__).resolve().parents[2]
LOCATION = "s3://bucket/lake/tweets/"

# The expected types, written from each engine's documentation, independent of the generators.
_REDSHIFT_LEAF = {pa.int64(): "BIGINT", pa.string(): "VARCHAR(65535)", pa.bool_(): "BOOLEAN", pa.float64(): "DOUBLE PRECISION", pa.timestamp("ms", tz="UTC"): "TIMESTAMP"}
_SNOWFLAKE_LEAF = {pa.int64(): "NUMBER(19,0)", pa.string(): "VARCHAR", pa.bool_(): "BOOLEAN", pa.float64(): "FLOAT", pa.timestamp("ms", tz="UTC"): "TIMESTAMP_NTZ(3)"}


def _expected_redshift(typ: pa.DataType) -> str:
    if pa.types.is_list(typ):
        return f"ARRAY<{_expected_redshift(typ.value_type)}>"
    if pa.types.is_struct(typ):
        return "STRUCT<" + ", ".join(f"{f.name}:{_expected_redshift(f.type)}" for f in typ) + ">"
    return _REDSHIFT_LEAF[typ]


def _expected_snowflake(typ: pa.DataType) -> str:
    if pa.types.is_list(typ):
        return "ARRAY"
    if pa.types.is_struct(typ):
        return "OBJECT"
    return _SNOWFLAKE_LEAF[typ]


def _parsed_type(sql_type: str, dialect: str) -> str:
    """A type as sqlglot reads it in ``dialect``, written back in that dialect (for comparison)."""
    return exp.DataType.build(sql_type, dialect=dialect).sql(dialect)


def _script(dialect: str, **kwargs) -> list[exp.Expression]:
    parsed = sqlglot.parse(ddl(dialect, LOCATION, **kwargs), read=dialect, error_level=sqlglot.ErrorLevel.RAISE)
    # a trailing comment parses as an empty statement
    return [e for e in parsed if e is not None and not isinstance(e, exp.Semicolon)]


def _columns_of(create: exp.Create) -> dict[str, exp.ColumnDef]:
    return {c.name: c for c in create.this.expressions if isinstance(c, exp.ColumnDef)}


def test_redshift_ddl_parses_and_has_redshifts_type_for_every_column():
    statements = _script("redshift", days=["2024-01-01", "2024-01-02"])
    schema_stmt, table, *partitions = statements
    # sqlglot has no grammar for CREATE EXTERNAL SCHEMA: it keeps it as a command; check its text
    assert isinstance(schema_stmt, exp.Command)
    assert re.fullmatch(
        r"CREATE EXTERNAL SCHEMA IF NOT EXISTS tweets_spectrum\s+FROM DATA CATALOG DATABASE 'default'\s+"
        r"IAM_ROLE 'arn:aws:iam::ACCOUNT_ID:role/[\w+=,.@-]+'\s+CREATE EXTERNAL DATABASE IF NOT EXISTS",
        schema_stmt.sql("redshift", comments=False),
    ), schema_stmt.sql("redshift", comments=False)
    assert isinstance(table, exp.Create) and table.args["kind"] == "TABLE"
    assert "EXTERNAL" in table.sql("redshift")
    columns = _columns_of(table)
    assert list(columns) == [c.name for c in COLUMNS]
    for column in COLUMNS:
        assert redshift.redshift_type(column.type) == _expected_redshift(column.type), column.name
        got = columns[column.name].args["kind"].sql("redshift")
        assert got == _parsed_type(_expected_redshift(column.type), "redshift"), column.name
    props = {type(p).__name__: p for p in table.args["properties"].expressions}
    assert props["PartitionedByProperty"].this.expressions[0].sql("redshift") == "dt VARCHAR(10)"
    assert props["FileFormatProperty"].name == "PARQUET" and props["LocationProperty"].this.name == LOCATION
    assert [p.sql("redshift", comments=False) for p in partitions] == [
        f"ALTER TABLE tweets_spectrum.tweets ADD IF NOT EXISTS PARTITION(dt = '{d}') LOCATION '{LOCATION}dt={d}/'"
        for d in ("2024-01-01", "2024-01-02")
    ]


def test_snowflake_ddl_parses_and_has_snowflakes_type_for_every_column():
    statements = _script("snowflake")
    integration, stage, external, table, copy, pipe = statements
    assert integration.args["kind"] == "STORAGE INTEGRATION"
    assert f"STORAGE_ALLOWED_LOCATIONS=('{LOCATION}')" in integration.sql("snowflake")
    assert stage.args["kind"] == "STAGE" and f"URL='{LOCATION}'" in stage.sql("snowflake")
    # the external table: dt from the object's path, partitioned by it; each column a cast of VALUE:"name"
    ext_columns = _columns_of(external)
    assert list(ext_columns) == ["dt", *(c.name for c in COLUMNS)]
    dt = ext_columns["dt"]
    assert dt.args["kind"].sql("snowflake") == "DATE" and "METADATA$FILENAME" in dt.sql("snowflake")
    assert "PARTITION BY (dt)" in external.sql("snowflake") and "LOCATION=@tweets_stage" in external.sql("snowflake")
    assert "AUTO_REFRESH=TRUE" in external.sql("snowflake")
    table_columns = _columns_of(table)
    assert list(table_columns) == [*(c.name for c in COLUMNS), "source_file"]
    for column in COLUMNS:
        expected = _parsed_type(_expected_snowflake(column.type), "snowflake")
        assert snowflake.snowflake_type(column.type) == _expected_snowflake(column.type), column.name
        assert table_columns[column.name].args["kind"].sql("snowflake") == expected, column.name
        definition = ext_columns[column.name]
        assert definition.args["kind"].sql("snowflake") == expected, column.name
        (computed,) = definition.find_all(exp.ComputedColumnConstraint)
        cast = computed.this.unnest()
        assert isinstance(cast, exp.Cast) and cast.to.sql("snowflake") == expected, column.name
        assert cast.this.sql("snowflake") == f"GET_PATH(VALUE, '{column.name}')", column.name
    # COPY INTO … MATCH_BY_COLUMN_NAME, and the pipe runs exactly that COPY (sqlglot keeps CREATE
    # PIPE as a command: its COPY is parsed on its own)
    assert isinstance(copy, exp.Copy)
    assert "MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE" in copy.sql("snowflake")
    assert isinstance(pipe, exp.Command)
    head, _, body = snowflake.create_pipe().partition("\n  AS\n")
    assert head == "CREATE PIPE IF NOT EXISTS tweets_pipe\n  AUTO_INGEST = TRUE"
    assert sqlglot.parse_one(body, read="snowflake") == copy


def test_athena_and_glue_types_cover_every_column():
    table_input = glue.table_input(LOCATION)
    glue_types = {c["Name"]: c["Type"] for c in table_input["StorageDescriptor"]["Columns"]}
    create = sqlglot.parse_one(ddl("athena", LOCATION), read="athena")
    athena_types = {c.name: c.args["kind"].sql("hive") for c in _columns_of(create).values()}
    assert list(glue_types) == list(athena_types) == [c.name for c in COLUMNS]
    for name, typ in glue_types.items():
        # Glue stores Hive types: the Athena DDL's type, as Hive's parser reads it
        assert _parsed_type(typ, "hive") == athena_types[name], name


@pytest.mark.parametrize(
    ("dialect", "module", "mapper", "arrow_type", "broken"),
    [
        ("redshift", redshift, "redshift_type", pa.int64(), "BIGINTT"),
        ("redshift", redshift, "redshift_type", pa.string(), "VARCHAR(65535"),
        ("snowflake", snowflake, "snowflake_type", pa.int64(), "NUMBERR(19,0)"),
        ("snowflake", snowflake, "snowflake_type", pa.timestamp("ms", tz="UTC"), "TIMESTAMP_NTZ(3"),
    ],
)
def test_sqlglot_catches_a_broken_type(monkeypatch, dialect, module, mapper, arrow_type, broken):
    """Control: the parse tests above can fail. A generator that writes a broken type for one Arrow
    type makes sqlglot refuse the script."""
    real = getattr(module, mapper)
    monkeypatch.setattr(module, mapper, lambda typ: broken if typ == arrow_type else real(typ))
    with pytest.raises(sqlglot.errors.ParseError):
        _script(dialect)


def test_a_wrong_mapping_fails_the_type_comparison(monkeypatch):
    """Control: a mapping that still parses but is the wrong type (REAL for a double) is caught."""
    real = redshift.redshift_type
    monkeypatch.setattr(redshift, "redshift_type", lambda typ: "REAL" if typ == pa.float64() else real(typ))
    with pytest.raises(AssertionError):
        test_redshift_ddl_parses_and_has_redshifts_type_for_every_column()


def test_a_type_no_engine_can_read_is_refused():
    for mapper in (redshift.redshift_type, snowflake.snowflake_type, glue.athena_type):
        with pytest.raises(TypeError):
            mapper(pa.uint64())
        with pytest.raises(TypeError):
            mapper(pa.list_(pa.timestamp("ns", tz="UTC")))


def test_a_column_added_to_the_schema_reaches_every_dialect():
    added = Column(
        "column_added_here",
        pa.list_(pa.struct([pa.field("id", pa.int64()), pa.field("reason", pa.string()), pa.field("seen_at", pa.timestamp("ms", tz="UTC"))])),
        "A column added for this test.",
        "tweet.id",
    )
    columns = (*COLUMNS, added)
    for dialect in DIALECTS:
        before = ddl(dialect, LOCATION)
        after = ddl(dialect, LOCATION, columns=columns)
        assert "column_added_here" not in before and "column_added_here" in after, dialect
        parsed = [e for e in sqlglot.parse(after, read=dialect) if isinstance(e, exp.Create) and e.args["kind"] == "TABLE"]
        assert parsed and all("column_added_here" in _columns_of(e) for e in parsed), dialect
    assert "STRUCT<id:BIGINT, reason:VARCHAR(65535), seen_at:TIMESTAMP>" in ddl("redshift", LOCATION, columns=columns)
    assert "column_added_here ARRAY AS (VALUE:\"column_added_here\"::ARRAY)" in ddl("snowflake", LOCATION, columns=columns)
    glue_columns = glue.table_input(LOCATION, columns=columns)["StorageDescriptor"]["Columns"]
    assert glue_columns[-1] == {"Name": "column_added_here", "Type": "array<struct<id:bigint,reason:string,seen_at:timestamp>>", "Comment": "A column added for this test."}
    assert schema_version(columns) != schema_version()


def test_each_script_says_its_dialect():
    for dialect in DIALECTS:
        text = ddl(dialect, LOCATION, header=True)
        assert text.startswith(f"-- dialect: {dialect} ") and text.splitlines()[0] == HEADERS[dialect]


def test_snowflake_dt_expression_reads_the_day_from_the_object_path():
    """The external table's dt expression, run (as DuckDB SQL, via sqlglot) on the paths Snowflake's
    METADATA$FILENAME gives for the stage: dt=YYYY-MM-DD/part-00000.parquet."""
    import duckdb

    for path, day in (("dt=2024-01-01/part-00000.parquet", "2024-01-01"), ("dt=2026-11-29/part-00000.parquet", "2026-11-29")):
        expr = snowflake.DT_FROM_PATH.replace("METADATA$FILENAME", "'" + path + "'")
        duck = sqlglot.transpile(f"SELECT {expr}", read="snowflake", write="duckdb")[0]
        assert str(duckdb.connect().execute(duck).fetchone()[0]) == day


def test_s3_event_notification_covers_copies_under_the_prefix_only():
    config = snowflake.s3_event_notification("arn:aws:sqs:eu-west-1:123456789012:sf-snowpipe", "/lake/tweets")
    (queue,) = config["QueueConfigurations"]
    assert queue["Events"] == ["s3:ObjectCreated:*"]
    assert queue["Filter"]["Key"]["FilterRules"] == [{"Name": "prefix", "Value": "lake/tweets/"}, {"Name": "suffix", "Value": ".parquet"}]


def test_example_queries_parse_and_are_the_ones_in_the_readme():
    readme = (REPO / "README.md").read_text() + (REPO / "docs" / "warehouses.md").read_text()  # moved from the README (#29)
    rs = sqlglot.parse_one(redshift.example_query(), read="redshift")
    joins = list(rs.find_all(exp.Join))
    assert len(joins) == 1 and joins[0].this.sql("redshift") == "t.hashtags AS h"  # Spectrum's unnest in FROM
    sf = sqlglot.parse_one(snowflake.example_query(), read="snowflake")
    assert any(isinstance(t, exp.Lateral) for t in sf.find_all(exp.Lateral))
    for query in (redshift.example_query(), snowflake.example_query()):
        assert query in readme, f"README's Query it section must show:\n{query}"


def test_ddl_command_prints_each_dialect(capsys):
    assert cli.main(["ddl", "--dialect", "redshift", "--location", LOCATION, "--days", "2024-02-28...2024-03-01"]) == 0
    out = capsys.readouterr().out
    assert out == ddl("redshift", LOCATION, days=["2024-02-28", "2024-02-29", "2024-03-01"])
    assert cli.main(["ddl", "--dialect", "snowflake", "--location", LOCATION, "--iam-role", "arn:aws:iam::123456789012:role/sf"]) == 0
    assert "STORAGE_AWS_ROLE_ARN = 'arn:aws:iam::123456789012:role/sf'" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["ddl", "--dialect", "redshift", "--days", "2024-03-02...2024-03-01"])
    with pytest.raises(SystemExit):
        cli.main(["ddl", "--dialect", "bigquery"])


def test_the_glue_asset_and_resource_come_with_the_glue_database_setting():
    from tweet_assets.settings import glue_from_env, resources_from_env

    assert glue_from_env({}) is None and "glue" not in resources_from_env({})
    glue_resource = resources_from_env({"TWEET_ASSETS_GLUE_DATABASE": "tweets_db", "AWS_REGION": "eu-west-1", "AWS_ENDPOINT_URL": "http://127.0.0.1:1"})["glue"]
    assert (glue_resource.database, glue_resource.table, glue_resource.region_name, glue_resource.endpoint_url) == ("tweets_db", "tweets", "eu-west-1", "http://127.0.0.1:1")
    assert glue_from_env({"TWEET_ASSETS_GLUE_DATABASE": "db", "TWEET_ASSETS_GLUE_TABLE": "posts"}).table == "posts"


@pytest.mark.parametrize(
    ("path", "dialect", "kwargs"),
    [
        ("deploy/athena/create_table.sql", "athena", {}),
        ("deploy/redshift/spectrum.sql", "redshift", {"database": "tweets_db"}),
        ("deploy/snowflake/setup.sql", "snowflake", {}),
    ],
)
def test_checked_in_ddl_files_are_the_generated_ones(path, dialect, kwargs):
    """The DDL files in deploy/ cannot drift from schema.py: each is the generator's output."""
    generated = ddl(dialect, "s3://YOUR-BUCKET/tweet_assets/tweets/", first_day="2006-03-21", **kwargs)
    assert (REPO / path).read_text() == generated, f"{path} is stale: regenerate with `make ddl-files`"


def test_glue_comments_fit_glues_255_bytes_at_a_character_boundary():
    long = "Größe → " * 40  # multi-byte characters, 400+ bytes
    comment = glue.glue_comment(long)
    assert len(comment.encode("utf-8")) <= 255 and long.startswith(comment) and len(comment.encode("utf-8")) > 250
    assert glue.glue_comment("Post id.") == "Post id."
    for column in glue.table_input(LOCATION)["StorageDescriptor"]["Columns"]:
        assert len(column["Comment"].encode("utf-8")) <= 255, column["Name"]
