"""The published table in the AWS Glue Data Catalog, registered from ``schema.py``.

:func:`table_input` builds the Glue ``TableInput`` (Glue API, "CreateTable"/"UpdateTable"): an
``EXTERNAL_TABLE`` over the published prefix, Parquet SerDe and input/output formats, the columns
with their Hive types and descriptions (the same types as the Athena DDL: Glue stores Hive types),
``dt`` as the partition key, and the Athena DDL's table properties (ZSTD, partition projection,
``storage.location.template``) as ``Parameters``. :func:`upsert_table` creates the table, updates it
when its definition differs (e.g. a column was added to ``schema.py``), or leaves it alone.

It needs only ``glue:GetDatabase``, ``glue:GetTable``, ``glue:CreateTable`` and ``glue:UpdateTable``
on the catalog, the database and the table (``deploy/iam/glue-catalog-policy.json``); it never
creates the database (no ``glue:CreateDatabase``): a missing database is an error that says so.

:func:`register_partitions` stores each published day as a catalog partition
(``glue:BatchCreatePartition``, the policy's second statement). Athena does not need them (it
projects partitions), but every other engine reading the Glue table does: Redshift Spectrum, EMR,
Glue jobs read only stored partitions (Athena docs, "Partition projection").

:class:`GlueCatalogResource` is the Dagster resource: dagster-aws's
``ResourceWithBoto3Configuration`` (region, profile, endpoint, retries, as its ``SSMResource``)
plus the database and table names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import boto3.session
from botocore.exceptions import ClientError
from dagster_aws.utils import ResourceWithBoto3Configuration, construct_boto_client_retry_config
from pydantic import Field

from tweet_assets.schema import COLUMNS, PARTITION_COLUMN, Column
from tweet_assets.schema import DEFAULT_DATABASE, DEFAULT_TABLE
from tweet_assets.warehouses.athena import athena_type, table_properties
from tweet_assets.warehouses.names import identifier

PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
PARQUET_INPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
TABLE_DESCRIPTION = "Posts from the X API v2, one row per post, one partition per UTC day (tweet_assets)"


class CatalogError(RuntimeError):
    """The Glue call failed; the message names the operation, database, table and the AWS error code."""


@dataclass(frozen=True)
class CatalogResult:
    """What :func:`upsert_table` did.

    Attributes:
        action: ``created``, ``updated`` or ``unchanged``.
        added, removed, retyped: column names added, removed, or whose type changed (vs the catalog).
    """

    action: str
    database: str
    table: str
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    retyped: tuple[str, ...] = ()
    other_changes: tuple[str, ...] = field(default=())


#: Glue's limit on a column comment, in UTF-8 bytes (Glue API, "Column" structure).
COMMENT_MAX_BYTES = 255


def glue_comment(description: str) -> str:
    """``description`` cut to :data:`COMMENT_MAX_BYTES` UTF-8 bytes at a character boundary (the
    full text stays in the Athena DDL, the Parquet schema's module and Dagit)."""
    return description.encode("utf-8")[:COMMENT_MAX_BYTES].decode("utf-8", "ignore")


def glue_columns(columns: Sequence[Column] = COLUMNS) -> list[dict]:
    """``[{"Name", "Type", "Comment"}]``: each column with its Hive type and description (cut to
    Glue's 255 bytes)."""
    return [{"Name": c.name, "Type": athena_type(c.type), "Comment": glue_comment(c.description)} for c in columns]


def table_input(location: str, table: str = DEFAULT_TABLE, first_day: str = "2006-03-21", columns: Sequence[Column] = COLUMNS) -> dict:
    """The Glue ``TableInput`` of the published table at S3 prefix ``location``.

    Raises:
        ValueError: ``table`` is not a plain identifier (:mod:`.names`).
    """
    identifier(table, "table")
    location = location.rstrip("/") + "/"
    return {
        "Name": table,
        "Description": TABLE_DESCRIPTION,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {"EXTERNAL": "TRUE", "classification": "parquet", **table_properties(location, first_day)},
        "PartitionKeys": [{"Name": PARTITION_COLUMN, "Type": "string", "Comment": "UTC day of created_at, YYYY-MM-DD (the Hive folder dt=YYYY-MM-DD/)"}],
        "StorageDescriptor": {
            "Columns": glue_columns(columns),
            "Location": location,
            "InputFormat": PARQUET_INPUT_FORMAT,
            "OutputFormat": PARQUET_OUTPUT_FORMAT,
            "Compressed": False,
            "SerdeInfo": {"SerializationLibrary": PARQUET_SERDE, "Parameters": {"serialization.format": "1"}},
        },
    }


def _differences(current: dict, wanted: dict) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    have = {c["Name"]: c for c in current.get("StorageDescriptor", {}).get("Columns", [])}
    want = {c["Name"]: c for c in wanted["StorageDescriptor"]["Columns"]}
    added = tuple(n for n in want if n not in have)
    removed = tuple(n for n in have if n not in want)
    retyped = tuple(n for n in want if n in have and have[n]["Type"] != want[n]["Type"])
    other = []
    if [c["Name"] for c in have.values()] != [c["Name"] for c in want.values()] and not (added or removed):
        other.append("column order")
    if any(have[n].get("Comment") != want[n].get("Comment") for n in want if n in have):
        other.append("column comments")
    sd_have, sd_want = current.get("StorageDescriptor", {}), wanted["StorageDescriptor"]
    for key in ("Location", "InputFormat", "OutputFormat"):
        if sd_have.get(key) != sd_want[key]:
            other.append(key)
    if sd_have.get("SerdeInfo", {}).get("SerializationLibrary") != PARQUET_SERDE:
        other.append("SerdeInfo")
    if [(k["Name"], k["Type"]) for k in current.get("PartitionKeys", [])] != [(k["Name"], k["Type"]) for k in wanted["PartitionKeys"]]:
        other.append("PartitionKeys")
    params = current.get("Parameters", {})
    other += [f"Parameters.{k}" for k, v in wanted["Parameters"].items() if params.get(k) != v]
    if current.get("TableType") != wanted["TableType"]:
        other.append("TableType")
    return added, removed, retyped, tuple(other)


def _fail(exc: ClientError, operation: str, database: str, table: str) -> CatalogError:
    code = exc.response.get("Error", {}).get("Code", "?")
    message = exc.response.get("Error", {}).get("Message", "")
    return CatalogError(f"glue:{operation} on {database}.{table} failed: {code}: {message}")


def upsert_table(client, database: str, wanted: dict, catalog_id: str | None = None) -> CatalogResult:
    """Create the table ``wanted`` (a :func:`table_input`) in ``database``, update it if its
    columns, partition key, location, formats or parameters differ, else leave it.

    Args:
        client: a boto3 Glue client.
        catalog_id: the catalog's AWS account id (default: the caller's).

    Raises:
        CatalogError: the database does not exist (it is not created: least privilege), or a Glue
            call was refused (the message has the AWS error code, e.g. ``AccessDeniedException``).
        ValueError: ``database`` or the table name is not a plain identifier (:mod:`.names`).
    """
    table = identifier(wanted["Name"], "table")
    identifier(database, "database")
    ids = {"CatalogId": catalog_id} if catalog_id else {}
    try:
        client.get_database(Name=database, **ids)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "EntityNotFoundException":
            raise CatalogError(
                f"Glue database {database!r} does not exist: create it first (aws glue create-database "
                f"--database-input Name={database}, or Athena's CREATE DATABASE); this command only registers the table"
            ) from exc
        raise _fail(exc, "GetDatabase", database, table) from exc
    try:
        current = client.get_table(DatabaseName=database, Name=table, **ids)["Table"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "EntityNotFoundException":
            raise _fail(exc, "GetTable", database, table) from exc
        try:
            client.create_table(DatabaseName=database, TableInput=wanted, **ids)
        except ClientError as exc2:
            raise _fail(exc2, "CreateTable", database, table) from exc2
        return CatalogResult("created", database, table, added=tuple(c["Name"] for c in wanted["StorageDescriptor"]["Columns"]))
    added, removed, retyped, other = _differences(current, wanted)
    if not (added or removed or retyped or other):
        return CatalogResult("unchanged", database, table)
    try:
        client.update_table(DatabaseName=database, TableInput=wanted, **ids)
    except ClientError as exc:
        raise _fail(exc, "UpdateTable", database, table) from exc
    return CatalogResult("updated", database, table, added, removed, retyped, other)


def partition_input(location: str, day: str, columns: Sequence[Column] = COLUMNS) -> dict:
    """The Glue ``PartitionInput`` of UTC day ``day`` (``YYYY-MM-DD``): ``<location>dt=<day>/``,
    the table's columns and Parquet formats."""
    location = location.rstrip("/") + "/"
    return {
        "Values": [day],
        "StorageDescriptor": {
            "Columns": glue_columns(columns),
            "Location": f"{location}{PARTITION_COLUMN}={day}/",
            "InputFormat": PARQUET_INPUT_FORMAT,
            "OutputFormat": PARQUET_OUTPUT_FORMAT,
            "SerdeInfo": {"SerializationLibrary": PARQUET_SERDE, "Parameters": {"serialization.format": "1"}},
        },
    }


#: BatchCreatePartition takes at most 100 partitions a call (Glue API reference).
BATCH_CREATE_PARTITION_MAX = 100


def register_partitions(client, database: str, table: str, location: str, days: Sequence[str], columns: Sequence[Column] = COLUMNS, catalog_id: str | None = None) -> tuple[int, int]:
    """Store the partitions of ``days`` (``YYYY-MM-DD``, UTC) in the Glue table, 100 a call.

    Returns:
        ``(created, already_there)``; a day already registered is left as it is (idempotent).

    Raises:
        CatalogError: a call was refused, or Glue reported an error other than
            ``AlreadyExistsException`` for a day (the message names the day and the error code).
    """
    ids = {"CatalogId": catalog_id} if catalog_id else {}
    created = existing = 0
    for start in range(0, len(days), BATCH_CREATE_PARTITION_MAX):
        chunk = list(days[start : start + BATCH_CREATE_PARTITION_MAX])
        try:
            response = client.batch_create_partition(
                DatabaseName=database, TableName=table, PartitionInputList=[partition_input(location, d, columns) for d in chunk], **ids
            )
        except ClientError as exc:
            raise _fail(exc, "BatchCreatePartition", database, table) from exc
        errors = response.get("Errors", [])
        failed = [e for e in errors if e.get("ErrorDetail", {}).get("ErrorCode") != "AlreadyExistsException"]
        if failed:
            detail = "; ".join(f"{e.get('PartitionValues')}: {e.get('ErrorDetail', {}).get('ErrorCode')}: {e.get('ErrorDetail', {}).get('ErrorMessage')}" for e in failed)
            raise CatalogError(f"glue:BatchCreatePartition on {database}.{table} failed for {len(failed)} day(s): {detail}")
        existing += len(errors)
        created += len(chunk) - len(errors)
    return created, existing


class GlueCatalogResource(ResourceWithBoto3Configuration):
    """The Glue Data Catalog through boto3, configured as dagster-aws's resources are (region,
    profile, endpoint, retries; unset means boto3's default chain: environment, profile, instance role)."""

    database: str = Field(default=DEFAULT_DATABASE, description="Glue database of the published table (must exist).")
    table: str = Field(default=DEFAULT_TABLE, description="Glue table name of the published table.")
    catalog_id: str | None = Field(default=None, description="AWS account id of the catalog (default: the caller's).")

    def get_client(self):
        """A boto3 ``glue`` client (dagster-aws's standard retry config, ``max_attempts``)."""
        session = boto3.session.Session(profile_name=self.profile_name)
        return session.client(
            "glue",
            region_name=self.region_name,
            use_ssl=self.use_ssl,
            verify=self.verify,
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.aws_access_key_id,
            aws_secret_access_key=self.aws_secret_access_key,
            aws_session_token=self.aws_session_token,
            config=construct_boto_client_retry_config(self.max_attempts),
        )

    def upsert_table(self, location: str, first_day: str, columns: Sequence[Column] = COLUMNS) -> CatalogResult:
        """:func:`upsert_table` of the published table at ``location`` (an ``s3://`` prefix).

        Raises:
            CatalogError: ``location`` is not ``s3://…``, or as :func:`upsert_table`.
        """
        if not location.startswith("s3://"):
            raise CatalogError(f"the Glue table needs an s3:// location, got {location!r} (set TWEET_ASSETS_LAKE_URL=s3://bucket/prefix)")
        wanted = table_input(location, self.table, first_day, columns)
        return upsert_table(self.get_client(), self.database, wanted, self.catalog_id)

    def register_partitions(self, location: str, days: Sequence[str], columns: Sequence[Column] = COLUMNS) -> tuple[int, int]:
        """:func:`register_partitions` of ``days`` in this resource's table; ``(created, already_there)``."""
        return register_partitions(self.get_client(), self.database, self.table, location, days, columns, self.catalog_id)
