"""Every warehouse that reads the published table, one module per dialect, all generated from
``schema.py`` (no column list anywhere else):

==============  =====================================================================================
``athena``      ``CREATE EXTERNAL TABLE`` with partition projection (:mod:`.athena`)
``glue``        the same table registered in the Glue Data Catalog from code (:mod:`.glue`)
``redshift``    Redshift Spectrum: external schema over the Glue database, external table,
                partitions (:mod:`.redshift`)
``snowflake``   storage integration, stage, external table; ``COPY INTO`` and Snowpipe (:mod:`.snowflake`)
==============  =====================================================================================

Each also says what it needs for the Iceberg table (``ddl(..., table_format="iceberg")``,
``tweet-assets ddl --format iceberg``). Each maps types by walking the Arrow type of each column, so a column added to ``schema.py``
reaches every dialect.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from tweet_assets.schema import COLUMNS, DEFAULT_DATABASE, DEFAULT_TABLE, PARTITION_COLUMN, Column
from tweet_assets.warehouses import athena, redshift, snowflake
from tweet_assets.warehouses.dialect import Dialect
from tweet_assets.warehouses.names import identifier

#: The table location the checked-in DDL files are written for (a placeholder bucket).
CHECKED_IN_LOCATION = "s3://YOUR-BUCKET/tweet_assets/tweets/"

#: The registry: every dialect ``tweet-assets ddl --dialect`` prints, by name (a new warehouse is a
#: module exporting a :class:`~tweet_assets.warehouses.dialect.Dialect` as ``SPEC``, added here).
REGISTRY: dict[str, Dialect] = {spec.name: spec for spec in (athena.SPEC, redshift.SPEC, snowflake.SPEC)}
DIALECTS: tuple[str, ...] = tuple(REGISTRY)
HEADERS: dict[str, str] = {name: spec.header for name, spec in REGISTRY.items()}


def ddl(
    dialect: str,
    location: str,
    *,
    table: str = DEFAULT_TABLE,
    database: str = DEFAULT_DATABASE,
    first_day: str = "2006-03-21",
    iam_role: str | None = None,
    days: Sequence[str] = (),
    columns: Sequence[Column] = COLUMNS,
    header: bool = False,
    table_format: str = "hive",
) -> str:
    """The DDL of ``dialect`` (one of :data:`DIALECTS`) for the published table at S3 prefix ``location``.

    ``athena``: one statement and ``;`` (with its header line first when ``header``);
    ``redshift``/``snowflake``: a script that starts with its ``-- dialect:`` line.
    ``iam_role``: Redshift's ``IAM_ROLE`` or Snowflake's ``STORAGE_AWS_ROLE_ARN`` (placeholders if
    None); ``days``: the Redshift partitions to add (``YYYY-MM-DD``). ``table_format="iceberg"``:
    what each warehouse needs for the Iceberg table instead (Athena's ``CREATE TABLE … 'table_type'='ICEBERG'``,
    Snowflake's ``CREATE ICEBERG TABLE`` over a Glue catalog integration, Redshift's external schema),
    always with its ``-- dialect:`` line.

    Raises:
        ValueError: unknown dialect, or ``table``/``database`` not a plain identifier
            (:func:`tweet_assets.warehouses.names.identifier`; one line, naming the value).
    """
    identifier(table, "table"), identifier(database, "database")
    spec = REGISTRY.get(dialect)
    if spec is None:
        raise ValueError(f"unknown dialect {dialect!r}: use one of {', '.join(DIALECTS)}")
    if table_format == "iceberg":
        return spec.iceberg(location, table=table, database=database, iam_role=iam_role, columns=columns, header=True)
    if table_format != "hive":
        raise ValueError(f"unknown table format {table_format!r}: use hive or iceberg")
    return spec.ddl(location, table=table, database=database, first_day=first_day, iam_role=iam_role, days=days, columns=columns, header=header)


def write_checked_in(root: str, location: str = CHECKED_IN_LOCATION) -> list[str]:
    """Regenerate every dialect's checked-in DDL file under ``root`` (the repository), as ``make
    ddl-files`` does; returns the paths written."""
    import os

    written = []
    for spec in REGISTRY.values():
        path = os.path.join(root, spec.checked_in)
        with open(path, "w", encoding="utf-8") as out:
            out.write(ddl(spec.name, location, **spec.checked_in_args))
        written.append(path)
        if spec.iceberg_checked_in:
            path = os.path.join(root, spec.iceberg_checked_in)
            with open(path, "w", encoding="utf-8") as out:
                out.write(ddl(spec.name, location, table_format="iceberg"))
            written.append(path)
    return written


def schema_version(columns: Sequence[Column] = COLUMNS) -> str:
    """A short hash of the published columns (names, Arrow types, descriptions) and the partition
    column: the Glue table asset's ``code_version``, so Dagster sees the table as changed when the
    schema changes. 16 hex characters."""
    text = "\n".join(f"{c.name}\t{c.type}\t{c.description}" for c in columns) + f"\n{PARTITION_COLUMN}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]
