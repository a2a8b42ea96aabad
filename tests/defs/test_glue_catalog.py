"""The Glue Data Catalog table, against moto's Glue on 127.0.0.1: created, updated after a column
is added, read back equal to the schema; the `tweet-assets catalog` command and the `glue_table`
asset; and the S3 event notification Snowpipe needs, delivered by moto's S3 to SQS for a published
day's server-side copy."""

from __future__ import annotations

import json
import uuid
from datetime import date, timedelta
from urllib.parse import unquote_plus

import boto3
import pyarrow as pa
import pytest

from tweet_assets import cli
from tweet_assets.schema import COLUMNS, PARTITION_COLUMN, Column
from tweet_assets.warehouses import glue, snowflake
from tweet_assets.warehouses.athena import athena_type, table_properties
from tweet_assets.warehouses.glue import CatalogError, GlueCatalogResource

pytestmark = pytest.mark.slow  # the shared moto server


def _resource(endpoint: str, database: str, table: str = "tweets") -> GlueCatalogResource:
    return GlueCatalogResource(database=database, table=table, region_name="us-east-1", endpoint_url=endpoint)


@pytest.fixture
def database(aws_env):
    name = f"tweets_{uuid.uuid4().hex[:8]}"
    boto3.client("glue", endpoint_url=aws_env, region_name="us-east-1").create_database(DatabaseInput={"Name": name})
    return name


def _read_back(endpoint: str, database: str, table: str = "tweets") -> dict:
    return boto3.client("glue", endpoint_url=endpoint, region_name="us-east-1").get_table(DatabaseName=database, Name=table)["Table"]


def _columns(table: dict) -> list[tuple[str, str]]:
    return [(c["Name"], c["Type"]) for c in table["StorageDescriptor"]["Columns"]]


def test_create_then_update_after_a_column_is_added_then_read_back(aws_env, database):
    location = "s3://lake-bucket/lake/tweets/"
    resource = _resource(aws_env, database)
    created = resource.upsert_table(location, first_day="2006-03-21")
    assert created.action == "created"
    table = _read_back(aws_env, database)
    assert _columns(table) == [(c.name, athena_type(c.type)) for c in COLUMNS]
    assert [c["Comment"] for c in table["StorageDescriptor"]["Columns"]] == [glue.glue_comment(c.description) for c in COLUMNS]
    assert table["PartitionKeys"][0]["Name"] == PARTITION_COLUMN and table["PartitionKeys"][0]["Type"] == "string"
    assert table["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"] == glue.PARQUET_SERDE
    assert table["StorageDescriptor"]["InputFormat"] == glue.PARQUET_INPUT_FORMAT
    assert table["StorageDescriptor"]["Location"] == location and table["TableType"] == "EXTERNAL_TABLE"
    for key, value in table_properties(location, "2006-03-21").items():
        assert table["Parameters"][key] == value, key

    assert resource.upsert_table(location, first_day="2006-03-21").action == "unchanged"

    added = Column("column_added_here", pa.timestamp("ms", tz="UTC"), "A column added for this test, UTC.", "tweet.id")
    wider = (*COLUMNS, added)
    updated = resource.upsert_table(location, first_day="2006-03-21", columns=wider)
    assert (updated.action, updated.added, updated.removed, updated.retyped) == ("updated", ("column_added_here",), (), ())
    assert _columns(_read_back(aws_env, database)) == [(c.name, athena_type(c.type)) for c in wider]

    # a changed projection range (another start date) is an update too
    moved = resource.upsert_table(location, first_day="2020-01-01", columns=wider)
    assert moved.action == "updated" and moved.other_changes == ("Parameters.projection.dt.range",)
    assert _read_back(aws_env, database)["Parameters"]["projection.dt.range"] == "2020-01-01,NOW"


def test_a_missing_database_is_an_error_that_says_so(aws_env):
    with pytest.raises(CatalogError, match="does not exist: create it first"):
        _resource(aws_env, "no_such_db").upsert_table("s3://b/lake/tweets/", first_day="2006-03-21")
    with pytest.raises(CatalogError, match="s3:// location"):
        _resource(aws_env, "no_such_db").upsert_table("lake/tweets/", first_day="2006-03-21")


def test_catalog_command(aws_env, database, capsys):
    args = ["catalog", "--location", "s3://lake-bucket/x/tweets/", "--database", database, "--table", "posts"]
    assert cli.main(args) == 0
    assert capsys.readouterr().out.strip() == f"Glue table {database}.posts: created"
    assert cli.main(args) == 0
    assert capsys.readouterr().out.strip() == f"Glue table {database}.posts: unchanged"
    assert _columns(_read_back(aws_env, database, "posts")) == [(c.name, athena_type(c.type)) for c in COLUMNS]
    assert cli.main([*args[:4], "no_such_db"]) == 1
    assert "no_such_db" in capsys.readouterr().err
    assert cli.main([*args, "--dry-run"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["TableInput"] == glue.table_input("s3://lake-bucket/x/tweets/", "posts")


def test_glue_table_asset_upserts_the_lakes_table(aws_env, database, s3_lake, instance):
    from dagster import materialize
    from dagster_aws.s3 import S3Resource

    from tweet_assets.defs.catalog.glue import glue_table
    from tweet_assets.lake.io_manager import LakeResource
    from tweet_assets.warehouses import schema_version

    lake = LakeResource(url=s3_lake, s3=S3Resource(region_name="us-east-1", endpoint_url=aws_env))
    result = materialize([glue_table], resources={"lake": lake, "glue": _resource(aws_env, database)}, instance=instance)
    assert result.success
    (mat,) = result.asset_materializations_for_node("glue_table")
    assert mat.metadata["action"].value == "created"
    assert _read_back(aws_env, database)["StorageDescriptor"]["Location"] == f"{s3_lake}/tweets/"
    assert glue_table.code_versions_by_key[glue_table.key] == schema_version()


def test_s3_notification_reaches_the_queue_for_a_published_copy_only(aws_env):
    """Snowpipe's AUTO_INGEST and the external table's AUTO_REFRESH hear of a new day through this
    notification: s3_parquet publishes by a server-side copy (ObjectCreated:Copy), which a Put-only
    configuration would miss. Other tables under the lake are not sent."""
    s3 = boto3.client("s3", endpoint_url=aws_env, region_name="us-east-1")
    sqs = boto3.client("sqs", endpoint_url=aws_env, region_name="us-east-1")
    bucket = f"notify-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    queue_url = sqs.create_queue(QueueName=f"sf-snowpipe-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=snowflake.s3_event_notification(queue_arn, "lake/tweets/"))

    from tweet_assets.lake.store import open_lake

    lake = open_lake(f"s3://{bucket}/lake", lambda: s3)
    lake_key = "clean_tweets/dt=2024-01-01/part-00000.parquet"
    s3.put_object(Bucket=bucket, Key=f"lake/{lake_key}", Body=b"PAR1")
    lake.copy(lake_key, "tweets/dt=2024-01-01/part-00000.parquet")  # as s3_parquet publishes
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    records = [r for m in messages for r in json.loads(m["Body"]).get("Records", [])]
    # keys in S3 event records are URL-encoded (S3 docs, "Event message structure")
    assert [(r["eventName"], unquote_plus(r["s3"]["object"]["key"])) for r in records] == [("ObjectCreated:Copy", "lake/tweets/dt=2024-01-01/part-00000.parquet")]


def test_days_are_stored_as_partitions_once(aws_env, database, capsys):
    location = "s3://lake-bucket/lake/tweets/"
    args = ["catalog", "--location", location, "--database", database, "--days", "2024-02-28...2024-03-01"]
    assert cli.main(args) == 0
    assert capsys.readouterr().out.splitlines() == [f"Glue table {database}.tweets: created", "partitions: 3 created, 0 already there"]
    assert cli.main([*args[:-1], "2024-03-01...2024-03-02"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "partitions: 1 created, 1 already there"
    client = boto3.client("glue", endpoint_url=aws_env, region_name="us-east-1")
    partitions = client.get_partitions(DatabaseName=database, TableName="tweets")["Partitions"]
    assert sorted((p["Values"][0], p["StorageDescriptor"]["Location"]) for p in partitions) == [
        (d, f"{location}dt={d}/") for d in ("2024-02-28", "2024-02-29", "2024-03-01", "2024-03-02")
    ]
    assert all([c["Name"] for c in p["StorageDescriptor"]["Columns"]] == [c.name for c in COLUMNS] for p in partitions)
    # more than one BatchCreatePartition call (100 a call)
    days = [(date(2023, 1, 1) + timedelta(days=n)).isoformat() for n in range(101)]
    assert _resource(aws_env, database).register_partitions(location, days) == (101, 0)
    # a table that does not exist is an error, not a silent nothing
    with pytest.raises(CatalogError, match="BatchCreatePartition"):
        _resource(aws_env, database, table="missing").register_partitions(location, ["2024-01-01"])


def test_glue_partitions_asset_registers_the_runs_days(aws_env, database, s3_lake, instance):
    from dagster import materialize
    from dagster_aws.s3 import S3Resource

    from tweet_assets.defs.catalog.glue import glue_partitions, glue_table
    from tweet_assets.lake.io_manager import LakeResource

    resources = {"lake": LakeResource(url=s3_lake, s3=S3Resource(region_name="us-east-1", endpoint_url=aws_env)), "glue": _resource(aws_env, database)}
    assert materialize([glue_table], resources=resources, instance=instance).success
    result = materialize([glue_partitions], resources=resources, instance=instance, partition_key="2024-01-02")
    (mat,) = result.asset_materializations_for_node("glue_partitions")
    assert mat.metadata["partitions_created"].value == 1
    client = boto3.client("glue", endpoint_url=aws_env, region_name="us-east-1")
    (partition,) = client.get_partitions(DatabaseName=database, TableName="tweets")["Partitions"]
    assert partition["StorageDescriptor"]["Location"] == f"{s3_lake}/tweets/dt=2024-01-02/"


def test_glue_table_is_requested_when_missing_and_again_when_the_schema_changes(aws_env, database, s3_lake, instance):
    """The automation condition: one request while the table was never registered, none once it is,
    one after the code version (the schema's hash) changes."""
    from dagster import Definitions, evaluate_automation_conditions, materialize
    from dagster_aws.s3 import S3Resource

    from tweet_assets.defs.catalog.glue import glue_table
    from tweet_assets.lake.io_manager import LakeResource

    resources = {"lake": LakeResource(url=s3_lake, s3=S3Resource(region_name="us-east-1", endpoint_url=aws_env)), "glue": _resource(aws_env, database)}
    first = evaluate_automation_conditions(defs=Definitions(assets=[glue_table], resources=resources), instance=instance)
    assert first.total_requested == 1
    assert materialize([glue_table], resources=resources, instance=instance).success
    settled = evaluate_automation_conditions(defs=Definitions(assets=[glue_table], resources=resources), instance=instance, cursor=first.cursor)
    assert settled.total_requested == 0
    changed = glue_table.map_asset_specs(lambda spec: spec.replace_attributes(code_version="schema-with-a-new-column"))
    after = evaluate_automation_conditions(defs=Definitions(assets=[changed], resources=resources), instance=instance, cursor=settled.cursor)
    assert after.total_requested == 1


def test_catalog_refuses_an_iceberg_deployment_in_one_line(monkeypatch, capsys):
    """On an Iceberg deployment the table is in Glue through its commits: registering the Hive
    table of the same name beside it is refused before any call, naming the setting."""
    monkeypatch.setenv("TWEET_ASSETS_TABLE_FORMAT", "iceberg")
    with pytest.raises(SystemExit) as refused:
        cli.main(["catalog", "--location", "s3://b/p/tweets/", "--dry-run"])
    err = capsys.readouterr().err
    assert refused.value.code == 2 and len(err.strip().splitlines()) == 1
    assert "TWEET_ASSETS_TABLE_FORMAT=iceberg" in err and "Unset TWEET_ASSETS_TABLE_FORMAT" in err
