"""Snowflake over the published Parquet, generated from ``schema.py``.

Two ways, both over one external stage (Snowflake docs, "CREATE STORAGE INTEGRATION", "CREATE STAGE"):

- **query in place**: an external table whose columns are typed expressions over ``VALUE`` (the
  Parquet row) and whose ``dt`` is derived from the file path, ``METADATA$FILENAME``
  (``dt=YYYY-MM-DD/part-00000.parquet`` relative to the stage), used for ``PARTITION BY`` (Snowflake
  docs, "CREATE EXTERNAL TABLE": partition columns must be expressions on ``METADATA$FILENAME``);
  ``AUTO_REFRESH`` picks up new days from S3 event notifications;
- **load into a table**: ``CREATE TABLE`` + ``COPY INTO … MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE``
  (Parquet columns matched to table columns by name), and a Snowpipe (``CREATE PIPE … AUTO_INGEST =
  TRUE``) that runs that ``COPY`` for each new object, told by an S3 event notification
  (:func:`s3_event_notification`) sent to the pipe's SQS queue (``SHOW PIPES`` → ``notification_channel``).
  The table has no ``dt``: it is ``created_at``'s UTC day by the partition rule, so the table is
  clustered by ``TO_DATE(created_at)``; ``source_file`` records the object each row came from
  (``INCLUDE_METADATA``). A day published again (a rerun overwrites its object) is a new object
  version and may be loaded again: keep the newest row per ``id`` when that matters.

Types, walked from the Arrow type of each column (Snowflake docs, "Data types"): ``int64`` →
``NUMBER(19,0)`` (every int64 fits), ``int32`` → ``NUMBER(10,0)``, ``float64`` → ``FLOAT`` (a
double), ``bool`` → ``BOOLEAN``, strings → ``VARCHAR``, lists → ``ARRAY`` and structs → ``OBJECT``
(semi-structured, elements as VARIANT). The UTC rule: the files hold INT64 milliseconds adjusted to
UTC; they are read into ``TIMESTAMP_NTZ(3)`` holding the UTC wall-clock time, because NTZ values are
never shifted by the session's ``TIMEZONE`` (``TIMESTAMP_LTZ``/``_TZ`` would be), so every session
sees the same instant as Athena. Show another zone with ``CONVERT_TIMEZONE('UTC', 'Europe/Berlin', created_at)``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import pyarrow as pa

from tweet_assets.schema import COLUMNS, PARTITION_COLUMN, Column
from tweet_assets.warehouses.names import identifier
from tweet_assets.schema import DEFAULT_TABLE
from tweet_assets.warehouses.dialect import Dialect
from tweet_assets.warehouses.types import EngineTypes

DIALECT = "snowflake"
HEADER = "-- dialect: snowflake (storage integration, external stage and external table; COPY INTO and Snowpipe to load a table)"
DEFAULT_INTEGRATION = "tweet_assets_s3"
DEFAULT_STAGE = "tweets_stage"
DEFAULT_EXTERNAL_TABLE = "tweets_external"
DEFAULT_PIPE = "tweets_pipe"
DEFAULT_ROLE_ARN = "arn:aws:iam::ACCOUNT_ID:role/tweet-assets-snowflake"
#: ``dt`` from the object's path relative to the stage: ``dt=2024-01-01/part-00000.parquet``.
DT_FROM_PATH = "TO_DATE(SPLIT_PART(SPLIT_PART(METADATA$FILENAME, 'dt=', 2), '/', 1), 'YYYY-MM-DD')"

#: Snowflake's names; lists and structs are its semi-structured ARRAY and OBJECT (their elements'
#: types are still checked, so a list of an unmapped type is refused too).
SNOWFLAKE = EngineTypes(
    "Snowflake", "VARCHAR", "NUMBER(19,0)", "NUMBER(10,0)", "FLOAT", "BOOLEAN", "TIMESTAMP_NTZ(3)",
    array=lambda element: "ARRAY",
    struct=lambda fields: "OBJECT",
)


def snowflake_type(typ: pa.DataType) -> str:
    """The Snowflake type of an Arrow type of the published schema (see the module docstring).

    Raises:
        TypeError: the Arrow type has no mapping here (unsigned ints, non-ms timestamps, …).
    """
    return SNOWFLAKE.of(typ)


def _literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def create_storage_integration(location: str, integration: str = DEFAULT_INTEGRATION, role_arn: str = DEFAULT_ROLE_ARN) -> str:
    """The storage integration allowing only the published prefix ``location``. After it,
    ``DESC INTEGRATION`` gives ``STORAGE_AWS_IAM_USER_ARN`` and ``STORAGE_AWS_EXTERNAL_ID`` for
    ``role_arn``'s trust policy (Snowflake docs, "Configuring a Snowflake storage integration")."""
    location = location.rstrip("/") + "/"
    return (
        f"CREATE STORAGE INTEGRATION IF NOT EXISTS {integration}\n"
        f"  TYPE = EXTERNAL_STAGE\n"
        f"  STORAGE_PROVIDER = 'S3'\n"
        f"  ENABLED = TRUE\n"
        f"  STORAGE_AWS_ROLE_ARN = {_literal(role_arn)}\n"
        f"  STORAGE_ALLOWED_LOCATIONS = ({_literal(location)})"
    )


def create_stage(location: str, stage: str = DEFAULT_STAGE, integration: str = DEFAULT_INTEGRATION) -> str:
    """The external stage over the published prefix, Parquet files."""
    location = location.rstrip("/") + "/"
    return (
        f"CREATE STAGE IF NOT EXISTS {stage}\n"
        f"  URL = {_literal(location)}\n"
        f"  STORAGE_INTEGRATION = {integration}\n"
        f"  FILE_FORMAT = (TYPE = PARQUET)"
    )


def create_external_table(external_table: str = DEFAULT_EXTERNAL_TABLE, stage: str = DEFAULT_STAGE, columns: Sequence[Column] = COLUMNS) -> str:
    """The external table: ``dt`` from ``METADATA$FILENAME`` (``PARTITION BY (dt)``), then every
    column as ``VALUE:"<name>"::<type>``; ``AUTO_REFRESH`` on S3 event notifications."""
    column_list = [f"  {PARTITION_COLUMN} DATE AS ({DT_FROM_PATH})"]
    column_list += [f'  {c.name} {snowflake_type(c.type)} AS (VALUE:"{c.name}"::{snowflake_type(c.type)})' for c in columns]
    return (
        f"CREATE EXTERNAL TABLE IF NOT EXISTS {external_table} (\n" + ",\n".join(column_list) + "\n)\n"
        f"  PARTITION BY ({PARTITION_COLUMN})\n"
        f"  LOCATION = @{stage}\n"
        f"  AUTO_REFRESH = TRUE\n"
        f"  FILE_FORMAT = (TYPE = PARQUET)"
    )


def create_table(table: str = DEFAULT_TABLE, columns: Sequence[Column] = COLUMNS) -> str:
    """The table ``COPY INTO`` loads: every column with its Snowflake type and description, plus
    ``source_file`` (the object a row came from), clustered by ``created_at``'s UTC day."""
    column_list = [
        f"  {c.name} {snowflake_type(c.type)}{' NOT NULL' if c.name in ('id', 'created_at') else ''} COMMENT {_literal(c.description)}"
        for c in columns
    ]
    column_list.append("  source_file VARCHAR COMMENT 'The object the row was loaded from: dt=YYYY-MM-DD/part-00000.parquet (METADATA$FILENAME).'")
    return (
        f"CREATE TABLE IF NOT EXISTS {table} (\n" + ",\n".join(column_list) + "\n)\n"
        f"  CLUSTER BY (TO_DATE(created_at))"
    )


def copy_into(table: str = DEFAULT_TABLE, stage: str = DEFAULT_STAGE) -> str:
    """``COPY INTO`` the table from the stage, Parquet columns matched to table columns by name."""
    return (
        f"COPY INTO {table}\n"
        f"  FROM @{stage}\n"
        f"  FILE_FORMAT = (TYPE = PARQUET)\n"
        f"  MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE\n"
        f"  INCLUDE_METADATA = (source_file = METADATA$FILENAME)"
    )


def create_pipe(pipe: str = DEFAULT_PIPE, table: str = DEFAULT_TABLE, stage: str = DEFAULT_STAGE) -> str:
    """Snowpipe with ``AUTO_INGEST = TRUE`` running :func:`copy_into` for each new object."""
    return f"CREATE PIPE IF NOT EXISTS {pipe}\n  AUTO_INGEST = TRUE\n  AS\n{copy_into(table, stage)}"


def s3_event_notification(queue_arn: str, prefix: str) -> dict:
    """The S3 bucket notification (``PutBucketNotificationConfiguration``) that tells Snowpipe and
    the external table's ``AUTO_REFRESH`` about new objects under ``prefix`` (the key prefix of the
    published table, e.g. ``tweet_assets/tweets/``).

    ``s3:ObjectCreated:*`` rather than ``:Put``: ``s3_parquet`` publishes a day by a server-side
    copy, which S3 reports as ``s3:ObjectCreated:Copy`` (S3 docs, "Event notification types").
    ``queue_arn`` is the ``notification_channel`` of ``SHOW PIPES`` / ``SHOW EXTERNAL TABLES``
    (one SQS queue per Snowflake account and region)."""
    prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
    rules = [{"Name": "suffix", "Value": ".parquet"}]
    if prefix:
        rules.insert(0, {"Name": "prefix", "Value": prefix})
    return {
        "QueueConfigurations": [
            {
                "Id": "tweet-assets-snowflake",
                "QueueArn": queue_arn,
                "Events": ["s3:ObjectCreated:*"],
                "Filter": {"Key": {"FilterRules": rules}},
            }
        ]
    }


def example_query(external_table: str = DEFAULT_EXTERNAL_TABLE) -> str:
    """Top hashtags of one day from the external table (``LATERAL FLATTEN`` over the ARRAY)."""
    return (
        f"SELECT h.value::VARCHAR AS hashtag, count(*) AS posts\n"
        f"FROM {external_table} AS t, LATERAL FLATTEN(input => t.hashtags) AS h\n"
        f"WHERE t.{PARTITION_COLUMN} = '2024-01-01'\n"
        f"GROUP BY 1 ORDER BY posts DESC LIMIT 20"
    )


def statements(
    location: str,
    table: str = DEFAULT_TABLE,
    integration: str = DEFAULT_INTEGRATION,
    stage: str = DEFAULT_STAGE,
    external_table: str = DEFAULT_EXTERNAL_TABLE,
    pipe: str = DEFAULT_PIPE,
    role_arn: str = DEFAULT_ROLE_ARN,
    columns: Sequence[Column] = COLUMNS,
) -> list[str]:
    """Integration, stage, external table, then the load alternative: table, ``COPY INTO``, pipe.

    Raises:
        ValueError: a name is not a plain identifier (:mod:`.names`).
    """
    for what, name in (("table", table), ("storage integration", integration), ("stage", stage), ("external table", external_table), ("pipe", pipe)):
        identifier(name, what)
    return [
        create_storage_integration(location, integration, role_arn),
        create_stage(location, stage, integration),
        create_external_table(external_table, stage, columns),
        create_table(table, columns),
        copy_into(table, stage),
        create_pipe(pipe, table, stage),
    ]


def ddl(location: str, **kwargs) -> str:
    """The script ``tweet-assets ddl --dialect snowflake`` prints: :data:`HEADER`, the
    statements with what each is for, and the S3 notification the pipe and the external table need."""
    integration, stage, external, table, copy, pipe = statements(location, **kwargs)
    bucket, _, key_prefix = location.removeprefix("s3://").partition("/")
    notification = json.dumps(s3_event_notification("<notification_channel from SHOW PIPES>", key_prefix))
    return "\n\n".join(
        [
            HEADER,
            "-- Timestamps are TIMESTAMP_NTZ(3) holding UTC (the files' INT64 ms adjusted to UTC): NTZ is\n"
            "-- never shifted by the session TIMEZONE. dt is the UTC day of created_at.",
            integration + ";",
            "-- DESC INTEGRATION gives STORAGE_AWS_IAM_USER_ARN and STORAGE_AWS_EXTERNAL_ID for the role's trust policy.",
            stage + ";",
            "-- Query in place: dt from the object's path, new days through AUTO_REFRESH.",
            external + ";",
            "-- Or load into a table: once with COPY INTO, then continuously with Snowpipe.",
            table + ";",
            copy + ";",
            pipe + ";",
            "-- Then send the bucket's events to the pipe's queue (SHOW PIPES -> notification_channel):\n"
            f"-- aws s3api put-bucket-notification-configuration --bucket {bucket} --notification-configuration '{notification}'",
        ]
    ) + "\n"


def script(location: str, *, table: str = DEFAULT_TABLE, iam_role: str | None = None, columns: Sequence[Column] = COLUMNS, **_ignored) -> str:
    """:func:`ddl` under the registry's common signature (:class:`~tweet_assets.warehouses.dialect.Dialect`);
    ``iam_role`` is the storage integration's ``STORAGE_AWS_ROLE_ARN`` (None: :data:`DEFAULT_ROLE_ARN`)."""
    return ddl(location, table=table, role_arn=iam_role or DEFAULT_ROLE_ARN, columns=columns)


ICEBERG_HEADER = "-- dialect: snowflake iceberg (catalog integration with the Glue Data Catalog, external volume, externally managed Iceberg table)"
DEFAULT_CATALOG_INTEGRATION = "tweet_assets_glue"
DEFAULT_EXTERNAL_VOLUME = "tweet_assets_volume"


def iceberg_ddl(location: str, *, table: str = DEFAULT_TABLE, database: str = "default", iam_role: str | None = None, header: bool = True, **_ignored) -> str:
    """The Iceberg table as Snowflake reads it from the Glue Data Catalog (Snowflake docs, "Configure
    a catalog integration for AWS Glue", "CREATE EXTERNAL VOLUME", "CREATE ICEBERG TABLE (AWS Glue
    as the catalog)"): a catalog integration over the Glue database, an external volume over the
    table's location, and ``CREATE ICEBERG TABLE … CATALOG = '<the integration>'``, whose columns
    come from the Iceberg metadata (timestamps: microseconds, UTC, read as ``TIMESTAMP_LTZ(6)``)
    and which ``AUTO_REFRESH`` keeps at the latest snapshot. ``iam_role`` is the role the
    integration and the volume assume (placeholder when None).

    Raises:
        ValueError: ``table`` or ``database`` is not a plain identifier (:mod:`.names`).
    """
    identifier(table, "table"), identifier(database, "database")
    role = iam_role or DEFAULT_ROLE_ARN
    location = location.rstrip("/") + "/"
    text = (
        f"CREATE CATALOG INTEGRATION IF NOT EXISTS {DEFAULT_CATALOG_INTEGRATION}\n"
        f"  CATALOG_SOURCE = GLUE\n"
        f"  CATALOG_NAMESPACE = {_literal(database)}\n"
        f"  TABLE_FORMAT = ICEBERG\n"
        f"  GLUE_AWS_ROLE_ARN = {_literal(role)}\n"
        f"  GLUE_CATALOG_ID = 'ACCOUNT_ID'\n"
        f"  GLUE_REGION = 'REGION'\n"
        f"  ENABLED = TRUE;\n\n"
        f"CREATE EXTERNAL VOLUME IF NOT EXISTS {DEFAULT_EXTERNAL_VOLUME}\n"
        f"  STORAGE_LOCATIONS = ((NAME = 'tweet_assets_s3' STORAGE_PROVIDER = 'S3' STORAGE_BASE_URL = {_literal(location)} STORAGE_AWS_ROLE_ARN = {_literal(role)}));\n\n"
        "-- Columns from the Iceberg metadata; timestamps are microseconds, UTC.\n"
        f"CREATE ICEBERG TABLE IF NOT EXISTS {table}\n"
        f"  EXTERNAL_VOLUME = {_literal(DEFAULT_EXTERNAL_VOLUME)}\n"
        f"  CATALOG = {_literal(DEFAULT_CATALOG_INTEGRATION)}\n"
        f"  CATALOG_TABLE_NAME = {_literal(table)}\n"
        f"  AUTO_REFRESH = TRUE;\n"
    )
    return f"{ICEBERG_HEADER}\n{text}" if header else text


SPEC = Dialect(DIALECT, HEADER, script, "deploy/snowflake/setup.sql", iceberg=iceberg_ddl, iceberg_checked_in="deploy/snowflake/iceberg.sql")
