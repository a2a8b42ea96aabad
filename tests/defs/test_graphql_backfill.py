"""A partition backfill through Dagster's GraphQL API, as automation would launch one.

Against a real ``dagster dev`` (webserver + daemon, tests/dagit_server.py), with
``dagster_graphql.DagsterGraphQLClient``: ``launchPartitionBackfill`` with the three assets and
a 3-day range, poll ``partitionBackfillOrError`` until it is final, then read each asset's
materialization events per partition through GraphQL and the Parquet files in the lake.
"""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from tests.dagit_server import ASSETS, SAMPLE_POSTS, check_executions, materializations, start_dagit, wait_for_backfill

pytestmark = pytest.mark.slow

DAYS = ["2024-01-02", "2024-01-03", "2024-01-04"]

LAUNCH = """
mutation ($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
  __typename
  ... on LaunchBackfillSuccess { backfillId }
  ... on PythonError { message stack }
  ... on InvalidSubsetError { message }
  ... on UnauthorizedError { message }
  ... on PartitionSetNotFoundError { message } } }
"""

ASSET_PARTITIONS = """
query ($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) { __typename
  ... on AssetNode { partitionStats { numMaterialized numPartitions numFailed }
    assetPartitionStatuses { __typename ... on TimePartitionStatuses {
      ranges { status startKey endKey } } } } } }
"""


def client_for(server):
    from dagster_graphql import DagsterGraphQLClient

    return DagsterGraphQLClient("127.0.0.1", port_number=server.port, timeout=60)


def launch_backfill(server, days: list[str], title: str = "graphql test") -> str:
    """``launchPartitionBackfill`` for the three assets over ``days``' range; returns the id.

    ``partitionsByAssets`` (asset key + partition range each) is the API's asset-backfill form with
    a range; it excludes ``assetSelection``/``partitionNames`` (the other form, a list of names).
    """
    params = {
        "partitionsByAssets": [{"assetKey": {"path": [name]}, "partitions": {"range": {"start": days[0], "end": days[-1]}}} for name in ASSETS],
        "title": title,
    }
    result = client_for(server)._execute(LAUNCH, {"params": params})["launchPartitionBackfill"]
    assert result["__typename"] == "LaunchBackfillSuccess", result
    return result["backfillId"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = start_dagit(tmp_path_factory.mktemp("dagit-graphql"))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def backfill(server):
    backfill_id = launch_backfill(server, DAYS)
    return wait_for_backfill(server, backfill_id, timeout=180)


def test_backfill_completes_for_exactly_the_range(backfill):
    assert backfill["status"] == "COMPLETED_SUCCESS", backfill
    assert backfill["isAssetBackfill"] is True
    assert backfill["numPartitions"] == len(DAYS)
    assert sorted(backfill["partitionNames"]) == DAYS


def test_each_partition_materialized_with_metadata(server, backfill):
    raw = materializations(server, "raw_tweets", DAYS)
    clean = materializations(server, "clean_tweets", DAYS)
    published = materializations(server, "s3_parquet", DAYS)
    for events in (raw, clean, published):
        assert sorted(events) == DAYS, events
    for day in DAYS:
        assert raw[day]["posts"] == SAMPLE_POSTS and raw[day]["pages"] >= 1 and raw[day]["api_errors"] == 0, raw[day]
        assert clean[day]["dagster/row_count"] == SAMPLE_POSTS and clean[day]["quarantined"] == 0, clean[day]
        assert 0 < clean[day]["authors"] <= SAMPLE_POSTS
        assert published[day]["dagster/row_count"] == published[day]["rows"] == SAMPLE_POSTS, published[day]
        # the events name the files written, and their sizes are what is on disk
        path = server.parquet(day)
        assert published[day]["uri"] == str(path)
        assert published[day]["bytes"] == path.stat().st_size
    # one run for the whole range (BackfillPolicy.single_run)
    run_ids = {events[day]["_run_id"] for events in (raw, clean, published) for day in DAYS}
    assert len(run_ids) == 1, run_ids


def test_partition_status_and_nothing_outside_the_range(server, backfill):
    for name in ASSETS:
        node = server.graphql(ASSET_PARTITIONS, {"key": {"path": [name]}})["assetNodeOrError"]
        assert node["partitionStats"]["numMaterialized"] == len(DAYS), (name, node)
        assert node["partitionStats"]["numFailed"] == 0
        ranges = node["assetPartitionStatuses"]["ranges"]
        assert ranges == [{"status": "MATERIALIZED", "startKey": DAYS[0], "endKey": DAYS[-1]}], (name, ranges)
    written = sorted(p.parent.name for p in (server.lake / "tweets").glob("dt=*/part-00000.parquet"))
    assert written == [f"dt={d}" for d in DAYS]


def test_lake_files_hold_the_days_posts(server, backfill):
    for day in DAYS:
        table = pq.read_table(server.parquet(day))
        assert table.num_rows == SAMPLE_POSTS
        assert table.column("id").null_count == 0 and len(set(table.column("id").to_pylist())) == SAMPLE_POSTS
        assert {c.date().isoformat() for c in table.column("created_at").to_pylist()} == {day}
        assert "dt" not in table.column_names  # Hive partition column lives in the path only


def test_checks_ran_and_passed(server, backfill):
    for asset, check in (("clean_tweets", "ids_unique_and_not_null"), ("clean_tweets", "created_at_in_partition"), ("s3_parquet", "published_schema_matches")):
        executions = check_executions(server, asset, check)
        assert any(e["status"] == "SUCCEEDED" and e["evaluation"]["success"] for e in executions), (check, executions)
        assert not any(e["status"] in ("FAILED", "EXECUTION_FAILED") for e in executions), (check, executions)
