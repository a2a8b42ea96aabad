"""Amazon Redshift Spectrum over the published Parquet, generated from ``schema.py``.

Spectrum reads external tables through an *external schema* that points at a Glue Data Catalog
database (Redshift docs, "CREATE EXTERNAL SCHEMA … FROM DATA CATALOG"). Two ways to get the table:

- rely on the Glue table that ``tweet-assets catalog`` registers (:mod:`.glue`): Spectrum reads it
  as it is, Hive types mapped to Redshift's (``string`` → ``VARCHAR(65535)``);
- or create it from Redshift with :func:`create_external_table` (the same columns, Redshift types).

Partitions: Spectrum does **not** read Athena's partition projection (Athena docs, "Partition
projection": engines other than Athena use the partitions stored in the catalog), so each published
day is added once: with :func:`add_partitions` (``ALTER TABLE … ADD IF NOT EXISTS PARTITION``), or in
the Glue table by ``tweet-assets catalog --days`` or the ``glue_partitions`` asset (:mod:`.glue`).

Types, walked from the Arrow type of each column (Redshift docs, "Querying nested data with Amazon
Redshift Spectrum" and "Data types for Redshift Spectrum"): ``int64`` → ``BIGINT``, ``int32`` →
``INTEGER``, ``float64`` → ``DOUBLE PRECISION``, ``bool`` → ``BOOLEAN``, ``timestamp[ms, UTC]`` →
``TIMESTAMP`` (Spectrum has no ``TIMESTAMPTZ`` for external tables; the values are UTC, as written),
strings → ``VARCHAR(65535)`` (Redshift's largest; Redshift's ``VARCHAR`` length is in bytes and a
shorter one would null longer values under Spectrum's default ``surplus_char_handling``), lists →
``ARRAY<…>``, structs → ``STRUCT<name:type, …>`` (nested data as Spectrum reads it from Parquet).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pyarrow as pa

from tweet_assets.schema import COLUMNS, PARTITION_COLUMN, Column
from tweet_assets.warehouses.names import identifier
from tweet_assets.schema import DEFAULT_DATABASE, DEFAULT_TABLE
from tweet_assets.warehouses.dialect import Dialect
from tweet_assets.warehouses.types import EngineTypes

DIALECT = "redshift"
HEADER = "-- dialect: redshift (Amazon Redshift Spectrum: external schema over the Glue Data Catalog)"
DEFAULT_SCHEMA = "tweets_spectrum"
DEFAULT_IAM_ROLE = "arn:aws:iam::ACCOUNT_ID:role/tweet-assets-redshift-spectrum"
#: Redshift's largest VARCHAR, in bytes (Redshift docs, "Character types").
VARCHAR_MAX = 65535

#: Redshift Spectrum's names for Parquet columns; Redshift docs, "CREATE EXTERNAL TABLE" and
#: "Querying nested data with Amazon Redshift Spectrum".
REDSHIFT = EngineTypes(
    "Redshift Spectrum", f"VARCHAR({VARCHAR_MAX})", "BIGINT", "INTEGER", "DOUBLE PRECISION", "BOOLEAN", "TIMESTAMP",
    array=lambda element: f"ARRAY<{element}>",
    struct=lambda fields: "STRUCT<" + ", ".join(f"{name}:{typ}" for name, typ in fields) + ">",
)


def redshift_type(typ: pa.DataType) -> str:
    """The Redshift Spectrum external-table type of an Arrow type of the published schema.

    Raises:
        TypeError: the Arrow type has no Spectrum equivalent here (unsigned ints, non-ms timestamps, …).
    """
    return REDSHIFT.of(typ)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def create_external_schema(schema: str = DEFAULT_SCHEMA, database: str = DEFAULT_DATABASE, iam_role: str = DEFAULT_IAM_ROLE) -> str:
    """``CREATE EXTERNAL SCHEMA … FROM DATA CATALOG`` for Glue database ``database`` (created if
    missing), read with ``iam_role`` (a role associated with the cluster or workgroup)."""
    return (
        f"CREATE EXTERNAL SCHEMA IF NOT EXISTS {schema}\n"
        f"FROM DATA CATALOG DATABASE {_literal(database)}\n"
        f"IAM_ROLE {_literal(iam_role)}\n"
        f"CREATE EXTERNAL DATABASE IF NOT EXISTS"
    )


def create_external_table(location: str, schema: str = DEFAULT_SCHEMA, table: str = DEFAULT_TABLE, columns: Sequence[Column] = COLUMNS) -> str:
    """``CREATE EXTERNAL TABLE`` (Parquet, partitioned by ``dt``) at S3 prefix ``location``.

    Column names are double-quoted (some, e.g. ``text``, are Redshift keywords). No table
    properties: Spectrum reads the compression (ZSTD) from each Parquet file's footer."""
    location = location.rstrip("/") + "/"
    column_list = ",\n".join(f'  "{c.name}" {redshift_type(c.type)}' for c in columns)
    return (
        f"CREATE EXTERNAL TABLE {schema}.{table} (\n{column_list}\n)\n"
        f"PARTITIONED BY ({PARTITION_COLUMN} VARCHAR(10))\n"
        f"STORED AS PARQUET\n"
        f"LOCATION {_literal(location)}"
    )


def add_partitions(location: str, days: Iterable[str], schema: str = DEFAULT_SCHEMA, table: str = DEFAULT_TABLE) -> list[str]:
    """One ``ALTER TABLE … ADD IF NOT EXISTS PARTITION (dt='YYYY-MM-DD') LOCATION …/dt=YYYY-MM-DD/``
    per day (``YYYY-MM-DD`` strings, UTC days)."""
    location = location.rstrip("/") + "/"
    return [
        f"ALTER TABLE {schema}.{table} ADD IF NOT EXISTS PARTITION ({PARTITION_COLUMN}={_literal(day)})\n"
        f"LOCATION {_literal(f'{location}{PARTITION_COLUMN}={day}/')}"
        for day in days
    ]


def example_query(schema: str = DEFAULT_SCHEMA, table: str = DEFAULT_TABLE) -> str:
    """Top hashtags of one day: Spectrum unnests an array column in ``FROM`` (``t.hashtags AS h``,
    Redshift docs, "Unnesting arrays" in the Spectrum nested-data tutorial)."""
    return (
        f"SELECT h AS hashtag, count(*) AS posts\n"
        f"FROM {schema}.{table} AS t, t.hashtags AS h\n"
        f"WHERE t.{PARTITION_COLUMN} = '2024-01-01'\n"
        f"GROUP BY h ORDER BY posts DESC LIMIT 20"
    )


def statements(
    location: str,
    schema: str = DEFAULT_SCHEMA,
    table: str = DEFAULT_TABLE,
    database: str = DEFAULT_DATABASE,
    iam_role: str = DEFAULT_IAM_ROLE,
    days: Sequence[str] = (),
    columns: Sequence[Column] = COLUMNS,
) -> list[str]:
    """The external schema, the external table and one ``ADD PARTITION`` per day in ``days``.

    Raises:
        ValueError: ``schema``, ``table`` or ``database`` is not a plain identifier (:mod:`.names`).
    """
    identifier(schema, "schema"), identifier(table, "table"), identifier(database, "database")
    return [
        create_external_schema(schema, database, iam_role),
        create_external_table(location, schema, table, columns),
        *add_partitions(location, days, schema, table),
    ]


def ddl(location: str, **kwargs) -> str:
    """The script ``tweet-assets ddl --dialect redshift`` prints: :data:`HEADER`, then
    :func:`statements` (keyword arguments as there), each ending in ``;``."""
    parts = statements(location, **kwargs)
    schema_sql, table_sql, *partitions = parts
    out = [
        HEADER,
        schema_sql + ";",
        "-- Skip the next statement if `tweet-assets catalog` registered this table in the Glue database:\n"
        "-- Spectrum reads that table as it is.\n" + table_sql + ";",
        "-- Spectrum does not read Athena's partition projection: add each published day once, here\n"
        "-- (`tweet-assets ddl --dialect redshift --days START...END` prints these for a range), or in the\n"
        "-- Glue table: `tweet-assets catalog --days START...END` or the glue_partitions asset.",
    ]
    out += [p + ";" for p in partitions]
    return "\n\n".join(out) + "\n"


def script(location: str, *, table: str = DEFAULT_TABLE, database: str = DEFAULT_DATABASE, iam_role: str | None = None, days: Sequence[str] = (), columns: Sequence[Column] = COLUMNS, **_ignored) -> str:
    """:func:`ddl` under the registry's common signature (:class:`~tweet_assets.warehouses.dialect.Dialect`);
    ``iam_role`` None is the placeholder :data:`DEFAULT_IAM_ROLE`; ``first_day``/``header`` do not apply."""
    return ddl(location, table=table, database=database, iam_role=iam_role or DEFAULT_IAM_ROLE, days=days, columns=columns)


ICEBERG_HEADER = "-- dialect: redshift iceberg (Amazon Redshift Spectrum: external schema over the Glue database that holds the Iceberg table)"
DEFAULT_ICEBERG_SCHEMA = "tweets_iceberg"


def iceberg_ddl(location: str, *, table: str = DEFAULT_TABLE, database: str = DEFAULT_DATABASE, iam_role: str | None = None, header: bool = True, **_ignored) -> str:
    """An external schema over the Glue database: Redshift reads the Iceberg tables registered in
    it as they are (Redshift docs, "Using Apache Iceberg tables with Amazon Redshift"): no external
    table to declare and no partitions to add; new snapshots are read as they are committed. Then
    a query (columns of schema.py: timestamps in microseconds, UTC).

    Raises:
        ValueError: ``table`` or ``database`` is not a plain identifier (:mod:`.names`).
    """
    identifier(table, "table"), identifier(database, "database")
    schema_sql = create_external_schema(DEFAULT_ICEBERG_SCHEMA, database, iam_role or DEFAULT_IAM_ROLE)
    text = (
        "-- The Iceberg table is registered in the Glue database (by the pipeline's Glue catalog, or created from Athena):\n"
        "-- Spectrum reads it through this schema, its columns from the Iceberg metadata (timestamps: microseconds, UTC).\n"
        f"{schema_sql};\n\n"
        f"-- e.g. posts per UTC day of {location.rstrip('/')}/:\n"
        f"SELECT TRUNC(created_at) AS day, count(*) AS posts FROM {DEFAULT_ICEBERG_SCHEMA}.{table} GROUP BY 1 ORDER BY 1;\n"
    )
    return f"{ICEBERG_HEADER}\n{text}" if header else text


SPEC = Dialect(DIALECT, HEADER, script, "deploy/redshift/spectrum.sql", {"database": "tweets_db"}, iceberg=iceberg_ddl, iceberg_checked_in="deploy/redshift/iceberg.sql")
