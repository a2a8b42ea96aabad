"""Every warehouse that reads the published table, one module per dialect, all generated from
``schema.py`` (no column list anywhere else):

==============  =====================================================================================
``athena``      ``CREATE EXTERNAL TABLE`` with partition projection (:mod:`.athena`)
``glue``        the same table registered in the Glue Data Catalog from code (:mod:`.glue`)
``redshift``    Redshift Spectrum: external schema over the Glue database, external table,
                partitions (:mod:`.redshift`)
``snowflake``   storage integration, stage, external table; ``COPY INTO`` and Snowpipe (:mod:`.snowflake`)
==============  =====================================================================================

Each maps types by walking the Arrow type of each column, so a column added to ``schema.py``
reaches every dialect.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from tweet_assets.schema import COLUMNS, DEFAULT_DATABASE, DEFAULT_TABLE, PARTITION_COLUMN, Column
from tweet_assets.warehouses import athena, redshift, snowflake
from tweet_assets.warehouses.names import identifier

#: The dialects ``tweet-assets ddl --dialect`` prints.
DIALECTS: tuple[str, ...] = (athena.DIALECT, redshift.DIALECT, snowflake.DIALECT)
HEADERS: dict[str, str] = {athena.DIALECT: athena.HEADER, redshift.DIALECT: redshift.HEADER, snowflake.DIALECT: snowflake.HEADER}


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
) -> str:
    """The DDL of ``dialect`` (one of :data:`DIALECTS`) for the published table at S3 prefix ``location``.

    ``athena``: one statement and ``;`` (with :data:`athena.HEADER` first when ``header``);
    ``redshift``/``snowflake``: a script that starts with its ``-- dialect:`` line.
    ``iam_role``: Redshift's ``IAM_ROLE`` or Snowflake's ``STORAGE_AWS_ROLE_ARN`` (placeholders if
    None); ``days``: the Redshift partitions to add (``YYYY-MM-DD``).

    Raises:
        ValueError: unknown dialect, or ``table``/``database`` not a plain identifier
            (:func:`tweet_assets.warehouses.names.identifier`; one line, naming the value).
    """
    identifier(table, "table"), identifier(database, "database")
    if dialect == athena.DIALECT:
        text = athena.create_table_ddl(location, table, database, first_day, columns) + ";\n"
        return f"{athena.HEADER}\n{text}" if header else text
    if dialect == redshift.DIALECT:
        return redshift.ddl(location, table=table, database=database, iam_role=iam_role or redshift.DEFAULT_IAM_ROLE, days=days, columns=columns)
    if dialect == snowflake.DIALECT:
        return snowflake.ddl(location, table=table, role_arn=iam_role or snowflake.DEFAULT_ROLE_ARN, columns=columns)
    raise ValueError(f"unknown dialect {dialect!r}: use one of {', '.join(DIALECTS)}")


def schema_version(columns: Sequence[Column] = COLUMNS) -> str:
    """A short hash of the published columns (names, Arrow types, descriptions) and the partition
    column: the Glue table asset's ``code_version``, so Dagster sees the table as changed when the
    schema changes. 16 hex characters."""
    text = "\n".join(f"{c.name}\t{c.type}\t{c.description}" for c in columns) + f"\n{PARTITION_COLUMN}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]
