"""The Iceberg catalog by name through pyiceberg's own configuration (point 2): the embedded SQLite
catalog of a local lake created on first use, a named catalog from PYICEBERG_CATALOG__* or
.pyiceberg.yaml, Glue (moto's Glue and S3 on 127.0.0.1) registering the table Athena reads, and the
refusals in one line."""

from __future__ import annotations

import os
import uuid

import boto3
import pytest

from tests.tables.iceberg_helpers import day_rows, read_both, rows
from tweet_assets.lake.store import open_lake
from tweet_assets.tables.catalogs import CATALOG_ENV, EMBEDDED_FILE, CatalogError, open_catalog
from tweet_assets.tables.iceberg import IcebergTable


@pytest.fixture(autouse=True)
def _no_catalog(monkeypatch):
    for key in list(os.environ):
        if key.startswith("PYICEBERG_"):
            monkeypatch.delenv(key)
    monkeypatch.delenv(CATALOG_ENV, raising=False)
    monkeypatch.delenv("TWEET_ASSETS_GLUE_DATABASE", raising=False)
    monkeypatch.setenv("PYICEBERG_HOME", "/nonexistent-pyiceberg-home")
    monkeypatch.setenv("HOME", "/nonexistent-home")


def test_embedded_catalog_is_created_beside_a_local_lake_on_first_use(tmp_path):
    lake = open_lake(str(tmp_path / "lake"))
    assert open_catalog(lake, create=False) is None and not (tmp_path / "lake").exists()  # a reader leaves nothing
    assert IcebergTable.at(lake, "tweets") is None
    table = IcebergTable.open(lake, "tweets", "tweets")
    table.publish({"2024-02-01": day_rows(rows("2024-02-01", [1]))}, "run-1")
    assert (tmp_path / "lake" / EMBEDDED_FILE).is_file()
    assert table.describe()["catalog"] == "embedded" and table.qualified_name == "default.tweets"
    found = IcebergTable.at(lake, "tweets")
    assert found is not None and found.qualified_name == "default.tweets"
    assert IcebergTable.at(lake, "brand/tweets") is None


def test_a_named_catalog_from_the_environment_or_pyiceberg_yaml(tmp_path, monkeypatch):
    lake = open_lake(str(tmp_path / "lake"))
    monkeypatch.setenv("PYICEBERG_CATALOG__SHARED__TYPE", "sql")
    monkeypatch.setenv("PYICEBERG_CATALOG__SHARED__URI", f"sqlite:///{tmp_path}/shared.db")
    monkeypatch.setenv("PYICEBERG_CATALOG__SHARED__WAREHOUSE", f"file://{tmp_path}/warehouse")
    monkeypatch.setenv(CATALOG_ENV, "shared")
    IcebergTable.open(lake, "tweets", "tweets").publish({"2024-02-01": day_rows(rows("2024-02-01", [1]))}, "run-1")
    assert (tmp_path / "shared.db").is_file() and not (tmp_path / "lake" / EMBEDDED_FILE).exists()
    # the same catalog written in .pyiceberg.yaml ($PYICEBERG_HOME) instead (a SqlCatalog keys its tables by catalog name)
    for key in [k for k in os.environ if k.startswith("PYICEBERG_CATALOG__")]:
        monkeypatch.delenv(key)
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / ".pyiceberg.yaml").write_text(f"catalog:\n  shared:\n    type: sql\n    uri: sqlite:///{tmp_path}/shared.db\n")
    monkeypatch.setenv("PYICEBERG_HOME", str(tmp_path / "home"))
    scanned, _ = read_both(IcebergTable.open(lake, "tweets", "tweets").load())
    assert scanned.column("id").to_pylist() == [1]


def test_refusals_say_what_to_set(tmp_path, monkeypatch, s3_lake):
    local = open_lake(str(tmp_path / "lake"))
    monkeypatch.setenv(CATALOG_ENV, "nowhere")
    with pytest.raises(CatalogError, match=r"TWEET_ASSETS_ICEBERG_CATALOG='nowhere': pyiceberg knows no catalog of that name .*PYICEBERG_CATALOG__NOWHERE__TYPE"):
        open_catalog(local)
    s3 = open_lake(s3_lake, lambda: boto3.client("s3"))
    monkeypatch.delenv(CATALOG_ENV)
    with pytest.raises(CatalogError) as refused:
        IcebergTable.open(s3, "tweets", "tweets")
    message = str(refused.value)
    assert "\n" not in message and "embedded SQLite catalog" in message and "every writer" in message and "set TWEET_ASSETS_ICEBERG_CATALOG=<NAME>" in message
    assert IcebergTable.at(s3, "tweets") is None  # a Hive-only S3 deployment: compliance finds no Iceberg table, opens nothing
    monkeypatch.setenv("PYICEBERG_CATALOG__LOCALSQL__URI", f"sqlite:///{tmp_path}/x.db")
    monkeypatch.setenv(CATALOG_ENV, "localsql")
    with pytest.raises(CatalogError, match="a SQLite catalog, uri 'sqlite:///.*cannot serve the s3:// lake"):
        open_catalog(s3)


@pytest.fixture
def glue(aws_env, monkeypatch, s3_lake):
    """A Glue catalog named ``prod`` on moto (its Glue beside its S3, 127.0.0.1) and a fresh database."""
    database = f"db_{uuid.uuid4().hex[:8]}"
    boto3.client("glue").create_database(DatabaseInput={"Name": database})
    monkeypatch.setenv("PYICEBERG_CATALOG__PROD__TYPE", "glue")
    monkeypatch.setenv(CATALOG_ENV, "prod")
    monkeypatch.setenv("TWEET_ASSETS_GLUE_DATABASE", database)
    return open_lake(s3_lake, lambda: boto3.client("s3")), database


def test_glue_registers_an_iceberg_table_athena_reads(glue):
    lake, database = glue
    table = IcebergTable.open(lake, "tweets", "tweets")
    commit = table.publish({"2024-02-01": day_rows(rows("2024-02-01", [1, 2])), "2024-02-02": day_rows(rows("2024-02-02", [3]))}, "run-1")
    registered = boto3.client("glue").get_table(DatabaseName=database, Name="tweets")["Table"]
    # Athena reads a Glue table with table_type ICEBERG and its metadata_location (Athena docs, "Query Apache Iceberg tables")
    assert registered["Parameters"]["table_type"].upper() == "ICEBERG"
    assert registered["Parameters"]["metadata_location"] == table.load().metadata_location
    assert registered["StorageDescriptor"]["Location"] == table.location == lake.uri("tweets")
    scanned, frame = read_both(table.load())
    assert scanned.column("id").to_pylist() == frame.get_column("id").to_list() == [1, 2, 3]
    assert table.load().current_snapshot().snapshot_id == commit.snapshot_id
    assert IcebergTable.at(lake, "tweets").qualified_name == f"{database}.tweets"


def test_a_hive_table_of_the_same_name_in_glue_is_named_not_overwritten(glue):
    """The glue_table asset's Hive table under the name the Iceberg table would take: refused in one line."""
    from tweet_assets.tables.iceberg import TableCommitError
    from tweet_assets.warehouses.glue import GlueCatalogResource

    lake, database = glue
    GlueCatalogResource(database=database, table="tweets", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1").upsert_table(lake.uri("tweets") + "/", first_day="2024-01-01")
    with pytest.raises(TableCommitError, match=f"{database}.tweets in catalog prod exists but is not an Iceberg table .*TWEET_ASSETS_GLUE_TABLE"):
        IcebergTable.open(lake, "tweets", "tweets").publish({"2024-02-01": day_rows(rows("2024-02-01", [1]))}, "run-1")
    assert IcebergTable.at(lake, "tweets", ["tweets"]) is None  # the compliance job's lookup passes it by


def test_the_registry_opens_each_format():
    from tweet_assets.tables.hive import HiveTable
    from tweet_assets.tables.registry import REGISTRY, open_table

    lake = open_lake("/tmp/not-created-by-this-test")
    assert set(REGISTRY) == {"hive", "iceberg"}
    assert isinstance(open_table("hive", lake, "brand/tweets"), HiveTable) and open_table("hive", lake, "brand/tweets").location.endswith("/brand/tweets")
    assert isinstance(open_table("iceberg", lake, create=False), IcebergTable)
    with pytest.raises(ValueError, match="table format='delta': use one of hive, iceberg"):
        open_table("delta", lake)


def test_review9_a_catalog_that_cannot_list_its_tables_is_an_error_not_no_table(tmp_path, monkeypatch):
    """IcebergTable.at (how compliance_job and the checks find a collection's table) answered None,
    'no Iceberg table', for any listing error: the compliance job then skipped the table in silence.
    Only a missing namespace is no table; any other error is raised in one line naming the catalog."""
    from pyiceberg.catalog.sql import SqlCatalog
    from pyiceberg.exceptions import NoSuchNamespaceError

    from tests.tables.iceberg_helpers import day_rows, rows
    from tweet_assets.lake.store import open_lake
    from tweet_assets.tables.catalogs import CatalogError
    from tweet_assets.tables.iceberg import IcebergTable

    monkeypatch.delenv("TWEET_ASSETS_ICEBERG_CATALOG", raising=False)
    monkeypatch.delenv("TWEET_ASSETS_GLUE_DATABASE", raising=False)
    lake = open_lake(str(tmp_path / "lake"))
    IcebergTable.open(lake, "tweets", "tweets").publish({"2024-01-01": day_rows(rows("2024-01-01", [1]))}, "run-1")
    assert IcebergTable.at(lake, "tweets", ["tweets"]).qualified_name == "default.tweets"
    assert IcebergTable.at(lake, "tweets", ["tweets"], database="elsewhere") is None  # no such namespace: no table

    def unreachable(self, namespace):
        raise OSError("database is locked")

    monkeypatch.setattr(SqlCatalog, "list_tables", unreachable)
    with pytest.raises(CatalogError, match=r"cannot list the tables of default in Iceberg catalog embedded \(OSError: database is locked\)") as failed:
        IcebergTable.at(lake, "tweets", ["tweets"])
    assert "\n" not in str(failed.value)

    def missing(self, namespace):
        raise NoSuchNamespaceError(f"Namespace does not exist: {namespace}")

    monkeypatch.setattr(SqlCatalog, "list_tables", missing)
    assert IcebergTable.at(lake, "tweets", ["tweets"]).qualified_name == "default.tweets"  # no listing: the names are tried
