"""The Amazon Athena external table over the published Parquet, generated from ``schema.py``.

The DDL uses partition projection (Athena docs, "Partition projection with Amazon Athena";
"Supported types for partition projection": ``date``) so new ``dt=YYYY-MM-DD/`` folders are
queryable at once, with no ``MSCK REPAIR TABLE`` and no Glue crawler. The same table properties
are what :mod:`tweet_assets.warehouses.glue` registers in the Glue Data Catalog.

Only Athena reads partition projection (Athena docs, "Partition projection": other engines reading
the same Glue table, Redshift Spectrum among them, use the partitions stored in the catalog).
"""

from __future__ import annotations

import pyarrow as pa

from collections.abc import Sequence

from tweet_assets.schema import COLUMNS, DEFAULT_DATABASE, DEFAULT_TABLE, PARTITION_COLUMN, REQUIRED, Column
from tweet_assets.warehouses.dialect import Dialect
from tweet_assets.warehouses.names import identifier
from tweet_assets.warehouses.types import EngineTypes

DIALECT = "athena"
#: The first line of the DDL a materialization attaches, naming the engine it is written for.
HEADER = "-- dialect: athena (Amazon Athena engine v3, Hive DDL; the table is also the Glue Data Catalog's)"

#: Athena's (Hive DDL) names; Athena docs, "Data types in Amazon Athena".
ATHENA = EngineTypes(
    "Athena", "string", "bigint", "int", "double", "boolean", "timestamp",
    array=lambda element: f"array<{element}>",
    struct=lambda fields: "struct<" + ",".join(f"{name}:{typ}" for name, typ in fields) + ">",
)


def athena_type(typ: pa.DataType) -> str:
    """The Athena (Hive DDL) type for an Arrow type of the published schema.

    Raises:
        TypeError: the Arrow type has no safe Athena equivalent (e.g. unsigned ints, ns timestamps).
    """
    return ATHENA.of(typ)


def _sql_string(text: str) -> str:
    # Athena DDL is parsed by Hive's grammar: a quote inside a string literal is backslash-escaped.
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def table_properties(location: str, first_day: str) -> dict[str, str]:
    """The table properties (Glue ``Parameters``) of the published table: ZSTD Parquet and partition
    projection on ``dt`` (type ``date``, ``yyyy-MM-dd``, ``first_day`` to ``NOW``, 1 day), with the
    storage location template ``<location>dt=${dt}/``.

    Source: Athena docs, "Partition projection" → "Supported types for partition projection" (date)
    and "Specifying custom S3 storage locations" (``storage.location.template``).
    """
    location = location.rstrip("/") + "/"
    return {
        "parquet.compression": "ZSTD",
        "projection.enabled": "true",
        f"projection.{PARTITION_COLUMN}.type": "date",
        f"projection.{PARTITION_COLUMN}.format": "yyyy-MM-dd",
        f"projection.{PARTITION_COLUMN}.range": f"{first_day},NOW",
        f"projection.{PARTITION_COLUMN}.interval": "1",
        f"projection.{PARTITION_COLUMN}.interval.unit": "DAYS",
        "storage.location.template": f"{location}{PARTITION_COLUMN}=${{{PARTITION_COLUMN}}}/",
    }


def create_table_ddl(
    location: str,
    table: str = DEFAULT_TABLE,
    database: str = DEFAULT_DATABASE,
    first_day: str = "2006-03-21",
    columns: Sequence[Column] = COLUMNS,
) -> str:
    """``CREATE EXTERNAL TABLE`` for the published table at ``location``.

    Args:
        location: the table's S3 prefix, e.g. ``s3://my-bucket/x/tweets/`` (a trailing ``/`` is
            added); it holds ``dt=YYYY-MM-DD/part-00000.parquet`` objects.
        table, database: names in the Glue Data Catalog (lowercase).
        first_day: first ``dt`` of the projection range (``YYYY-MM-DD``); the range ends at ``NOW``.
        columns: the published columns (default: ``schema.COLUMNS``; tests pass a changed copy).

    Returns:
        The DDL text, one statement, no trailing semicolon.

    Raises:
        ValueError: ``table`` or ``database`` is not a plain identifier (:mod:`.names`).
    """
    identifier(table, "table"), identifier(database, "database")
    location = location.rstrip("/") + "/"
    column_list = ",\n".join(
        f"  `{c.name}` {athena_type(c.type)} COMMENT {_sql_string(c.description)}" for c in columns
    )
    properties = table_properties(location, first_day)
    props = ",\n".join(f"  {_sql_string(k)}={_sql_string(v)}" for k, v in properties.items())
    return (
        f"CREATE EXTERNAL TABLE IF NOT EXISTS `{database}`.`{table}` (\n{column_list}\n)\n"
        f"COMMENT 'Posts from the X API v2, one row per post, one partition per UTC day (tweet_assets)'\n"
        f"PARTITIONED BY (`{PARTITION_COLUMN}` string)\n"
        f"STORED AS PARQUET\n"
        f"LOCATION {_sql_string(location)}\n"
        f"TBLPROPERTIES (\n{props}\n)"
    )


#: Characters Dagit's Markdown renderer would read as markup or an HTML entity: each is
#: backslash-escaped (CommonMark: any ASCII punctuation may be), so a description reads as written.
MARKDOWN_SPECIAL = "\\`*_[]<>&#|~"
#: A column type longer than this shows in Dagit's column table in short form (its full type in the description).
SHORT_TYPE_CHARS = 40


def markdown_text(text: str) -> str:
    """``text`` with :data:`MARKDOWN_SPECIAL` backslash-escaped: Dagit renders column descriptions as
    Markdown, where ``&amp;`` reads as ``&`` and ``__twarc.url`` as bold. The descriptions in
    schema.py stay plain (they also feed the DDL's COMMENTs)."""
    return "".join("\\" + ch if ch in MARKDOWN_SPECIAL else ch for ch in text)


def _top_level_fields(inner: str) -> list[str]:
    """The field names of a ``struct<…>``'s inside (``a:int,b:struct<c:int>`` → ``['a', 'b']``)."""
    names, depth, start = [], 0, 0
    for i, ch in enumerate(inner + ","):
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        elif ch == "," and depth == 0:
            names.append(inner[start:i].split(":", 1)[0])
            start = i + 1
    return names


def short_type(full: str, limit: int = SHORT_TYPE_CHARS) -> str:
    """``full`` (an Athena type) as Dagit's column table shows it: itself when short, else its
    outer form with the struct's field names only, cut at ``limit`` characters
    (``array<struct<media_key, type, url, …>>``)."""
    if len(full) <= limit:
        return full
    prefix = ""
    rest = full
    while rest.startswith("array<") and rest.endswith(">"):
        prefix, rest = prefix + "array<", rest[len("array<"):-1]
    if not (rest.startswith("struct<") and rest.endswith(">")):
        return full[: limit - 1] + "…"
    shown = ""
    for name in _top_level_fields(rest[len("struct<"):-1]):
        if len(prefix) + len("struct<") + len(shown) + len(name) + 2 > limit:
            shown += ", …" if shown else "…"
            break
        shown += (", " if shown else "") + name
    return f"{prefix}struct<{shown}>" + ">" * prefix.count("<")


def dagster_table_schema():
    """The columns as a ``dagster.TableSchema`` for Dagit: name, Athena-style type (:func:`short_type`
    when long), description (:func:`markdown_text`, then the full type in a code span when the type
    column shows it short)."""
    from dagster import TableColumn, TableColumnConstraints, TableSchema

    columns = []
    for c in COLUMNS:
        full = athena_type(c.type)
        shown = short_type(full)
        description = markdown_text(c.description)
        if shown != full:  # the full type, spaced after commas so the table can wrap it
            description += f"\n\nType: `{full.replace(',', ', ')}`"
        columns.append(TableColumn(name=c.name, type=shown, description=description,
                                   constraints=TableColumnConstraints(nullable=c.name not in REQUIRED, unique=c.name == "id")))
    return TableSchema(columns=columns)


def ddl(location: str, *, table: str = DEFAULT_TABLE, database: str = DEFAULT_DATABASE, first_day: str = "2006-03-21", columns: Sequence[Column] = COLUMNS, header: bool = False, **_ignored) -> str:
    """The one statement ``tweet-assets ddl`` prints, ending in ``;`` (with :data:`HEADER` first
    when ``header``); Redshift's and Snowflake's options (``iam_role``, ``days``) do not apply."""
    text = create_table_ddl(location, table, database, first_day, columns) + ";\n"
    return f"{HEADER}\n{text}" if header else text


#: The first line of the Iceberg DDL.
ICEBERG_HEADER = "-- dialect: athena iceberg (Amazon Athena engine v3: an Apache Iceberg v2 table in the Glue Data Catalog)"


def iceberg_ddl(location: str, *, table: str = DEFAULT_TABLE, database: str = DEFAULT_DATABASE, columns: Sequence[Column] = COLUMNS, header: bool = True, **_ignored) -> str:
    """``CREATE TABLE … PARTITIONED BY (day(created_at)) LOCATION … TBLPROPERTIES ('table_type'='ICEBERG')``:
    the Iceberg table created from Athena (Athena docs, "Create Iceberg tables"), for a user who
    creates it there before the pipeline commits into it. Same columns and comments as the Hive
    table; Athena's Iceberg DDL takes only ``timestamp`` (without time zone, microseconds): the values
    are UTC, and the pipeline writes UTC into such a table (tweet_assets.tables.iceberg_schema).
    Partitioned like the table the pipeline creates; no ``dt`` column (Iceberg's partitions come from
    its manifests: partition projection does not apply). No table ``COMMENT`` clause: Athena's
    documented Iceberg syntax (``CREATE TABLE … (col data_type [COMMENT col_comment], …)
    [PARTITIONED BY …] LOCATION … TBLPROPERTIES (…)``) has none, unlike its Hive ``CREATE EXTERNAL
    TABLE``; the table's description is a ``--`` line above the statement. Ends in ``;``.

    Raises:
        ValueError: ``table`` or ``database`` is not a plain identifier (:mod:`.names`).
    """
    identifier(table, "table"), identifier(database, "database")
    location = location.rstrip("/") + "/"
    column_list = ",\n".join(f"  `{c.name}` {athena_type(c.type)} COMMENT {_sql_string(c.description)}" for c in columns)
    text = (
        "-- Posts from the X API v2, one row per post, partitioned by the UTC day of created_at (tweet_assets).\n"
        "-- Timestamps are microseconds, UTC (Athena's Iceberg DDL has timestamp without time zone only; the values are UTC).\n"
        f"CREATE TABLE `{database}`.`{table}` (\n{column_list}\n)\n"
        f"PARTITIONED BY (day(`created_at`))\n"
        f"LOCATION {_sql_string(location)}\n"
        f"TBLPROPERTIES (\n  'table_type'='ICEBERG',\n  'format'='parquet',\n  'write_compression'='zstd'\n);\n"
    )
    return f"{ICEBERG_HEADER}\n{text}" if header else text


SPEC = Dialect(DIALECT, HEADER, ddl, "deploy/athena/create_table.sql", iceberg=iceberg_ddl, iceberg_checked_in="deploy/athena/create_iceberg_table.sql")
