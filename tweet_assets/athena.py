"""The Amazon Athena external table over the published Parquet, generated from ``schema.py``.

The DDL uses partition projection (Athena docs, "Partition projection with Amazon Athena";
"Supported types for partition projection": ``date``) so new ``dt=YYYY-MM-DD/`` folders are
queryable at once, with no ``MSCK REPAIR TABLE`` and no Glue crawler.
"""

from __future__ import annotations

import pyarrow as pa

from .schema import COLUMNS, PARTITION_COLUMN

DEFAULT_TABLE = "tweets"
DEFAULT_DATABASE = "default"


def athena_type(typ: pa.DataType) -> str:
    """The Athena (Hive DDL) type for an Arrow type of the published schema.

    Raises:
        TypeError: the Arrow type has no safe Athena equivalent (e.g. unsigned ints, ns timestamps).
    """
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        return "string"
    if pa.types.is_int64(typ):
        return "bigint"
    if pa.types.is_int32(typ):
        return "int"
    if pa.types.is_float64(typ):
        return "double"
    if pa.types.is_boolean(typ):
        return "boolean"
    if pa.types.is_timestamp(typ) and typ.unit == "ms":
        return "timestamp"
    if pa.types.is_list(typ) or pa.types.is_large_list(typ):
        return f"array<{athena_type(typ.value_type)}>"
    if pa.types.is_struct(typ):
        return "struct<" + ",".join(f"{f.name}:{athena_type(f.type)}" for f in typ) + ">"
    raise TypeError(f"Arrow type {typ} has no Athena-safe equivalent in this table")


def _sql_string(text: str) -> str:
    # Athena DDL is parsed by Hive's grammar: a quote inside a string literal is backslash-escaped.
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def create_table_ddl(
    location: str,
    table: str = DEFAULT_TABLE,
    database: str = DEFAULT_DATABASE,
    first_day: str = "2006-03-21",
) -> str:
    """``CREATE EXTERNAL TABLE`` for the published table at ``location``.

    Args:
        location: the table's S3 prefix, e.g. ``s3://my-bucket/x/tweets/`` (a trailing ``/`` is
            added); it holds ``dt=YYYY-MM-DD/part-00000.parquet`` objects.
        table, database: names in the Glue Data Catalog (lowercase).
        first_day: first ``dt`` of the projection range (``YYYY-MM-DD``); the range ends at ``NOW``.

    Returns:
        The DDL text, one statement, no trailing semicolon.
    """
    location = location.rstrip("/") + "/"
    columns = ",\n".join(
        f"  `{c.name}` {athena_type(c.type)} COMMENT {_sql_string(c.description)}" for c in COLUMNS
    )
    properties = {
        "parquet.compression": "ZSTD",
        "projection.enabled": "true",
        f"projection.{PARTITION_COLUMN}.type": "date",
        f"projection.{PARTITION_COLUMN}.format": "yyyy-MM-dd",
        f"projection.{PARTITION_COLUMN}.range": f"{first_day},NOW",
        f"projection.{PARTITION_COLUMN}.interval": "1",
        f"projection.{PARTITION_COLUMN}.interval.unit": "DAYS",
        "storage.location.template": f"{location}{PARTITION_COLUMN}=${{{PARTITION_COLUMN}}}/",
    }
    props = ",\n".join(f"  {_sql_string(k)}={_sql_string(v)}" for k, v in properties.items())
    return (
        f"CREATE EXTERNAL TABLE IF NOT EXISTS `{database}`.`{table}` (\n{columns}\n)\n"
        f"COMMENT 'Posts from the X API v2, one row per post, one partition per UTC day (tweet_assets)'\n"
        f"PARTITIONED BY (`{PARTITION_COLUMN}` string)\n"
        f"STORED AS PARQUET\n"
        f"LOCATION {_sql_string(location)}\n"
        f"TBLPROPERTIES (\n{props}\n)"
    )
