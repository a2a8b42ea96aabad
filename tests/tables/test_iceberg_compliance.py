"""Compliance on an Iceberg table (point 4): compliance_job removes the ledger's posts with row-level
deletes in one commit, expires the old snapshots and deletes the files only they held; the proof
reads every Parquet file under the table location with pyarrow. Real recorded posts, the compliance
double with its signed URLs on moto's S3, the lake local with the embedded catalog."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
from dagster import AssetKey, AssetRecordsFilter, AssetSelection, materialize

from tests.compliance_double import ComplianceDouble
from tests.helpers import resources
from tests.tables.iceberg_helpers import ALL, run
from tweet_assets.compliance.api import ComplianceApi
from tweet_assets.compliance.ledger import read_ledger
from tweet_assets.defs.compliance.assets import compliance_ledger, no_published_id_in_ledger, published_ids_not_in_ledger
from tweet_assets.lake.io_manager import LakeIOManager
from tweet_assets.lake.values import StoredTable
from tweet_assets.sources import ReplaySource
from tweet_assets.tables.iceberg import IcebergTable
from tweet_assets.tables.maintenance import parquet_ids

DAY = "2021-06-26"  # twarc-network-test-data/tweets.jsonl: 500 posts in 5 pages
TOKEN = "AAAAAAAAAAAAAAAAAAAAAcomplianceTestBearer0123456789xyz"


@pytest.fixture
def published(x_api_v2, tmp_path, monkeypatch, instance):
    monkeypatch.delenv("TWEET_ASSETS_ICEBERG_CATALOG", raising=False)
    monkeypatch.delenv("TWEET_ASSETS_GLUE_DATABASE", raising=False)
    path = x_api_v2 / "twarc-network-test-data" / "tweets.jsonl"
    res = resources(str(tmp_path / "lake"), ReplaySource(path=str(path)))
    assert run(res, DAY, instance=instance).success
    lake = res["lake"].lake()
    pages = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    raw = path.read_bytes()
    alone = [p for page in pages for p in page["data"] if raw.count(f'"{p["id"]}"'.encode()) == 1]
    # a post that others retweet: its retweets go with it (X removes them)
    retweeted = [r["id"] for page in pages for p in page["data"] for r in p.get("referenced_tweets", []) if r["type"] == "retweeted"]
    return res, lake, alone[:2], retweeted[0], x_api_v2


def _comply(res, instance, affected: dict, aws_env):
    with ComplianceDouble(aws_env, TOKEN, in_progress_polls=1) as double:
        double.affected = affected
        api = ComplianceApi(bearer_token=TOKEN, base_url=double.url, poll_interval_s=0.02)
        return materialize(
            [compliance_ledger, no_published_id_in_ledger],
            resources={"lake": res["lake"], "compliance_api": api},
            instance=instance,
            run_config={"ops": {"compliance_ledger": {"config": {"first_day": DAY, "last_day": DAY, "ids_per_job": 1000}}}},
        )


def test_compliance_deletes_rows_in_one_commit_and_the_files_that_held_them(published, instance, aws_env):
    res, lake, gone, retweeted, x_api_v2 = published
    table = IcebergTable.open(lake, "tweets", "tweets")
    before = table.load()
    rows = before.scan(selected_fields=("id", "retweeted_id")).to_arrow()
    retweets = set(rows.filter(pa.compute.equal(rows.column("retweeted_id"), int(retweeted))).column("id").to_pylist())
    assert rows.num_rows == 500 and retweets
    templates = [json.loads(line) for line in (x_api_v2 / "twarc-csv-test-data" / "tweets_compliance.jsonl").read_text().splitlines() if line.strip()]
    affected = {p["id"]: dict(t, created_at=p["created_at"]) for p, t in zip(gone, templates)}
    affected[retweeted] = dict(templates[0], created_at=f"{DAY}T00:00:00.000Z")
    result = _comply(res, instance, affected, aws_env)
    assert result.success
    removed = {int(p["id"]) for p in gone} | {int(retweeted)} | retweets
    after = table.load()
    ids = set(after.scan(selected_fields=("id",)).to_arrow().column("id").to_pylist())
    assert not removed & ids and len(ids) == 500 - len(removed & set(rows.column("id").to_pylist()))
    # one commit for the removal, the old snapshots expired (retention 0 h): only the current one left
    assert len(after.snapshots()) == 1 and after.current_snapshot().summary["tweet-assets.operation"] == "compliance delete"
    # the proof: every Parquet file under the table location, read with pyarrow, holds none of them
    stored = parquet_ids(after)
    assert stored.num_rows == len(ids) and not removed & set(stored.column("id").to_pylist()) and not removed & set(stored.column("retweeted_id").drop_null().to_pylist())
    # the clean and raw zones as today
    clean = StoredTable(lake, LakeIOManager.key("clean_tweets", "parquet", DAY), "").read(["id"]).column("id").to_pylist()
    assert not removed & set(clean)
    # the ledger's metadata counts ids removed, data files rewritten and files deleted
    [ledger_mat] = [m for m in result.asset_materializations_for_node("compliance_ledger") if m.asset_key == AssetKey("compliance_ledger")]
    meta = {k: v.value for k, v in ledger_mat.metadata.items()}
    assert meta["iceberg_ids_removed"] == len(removed & set(rows.column("id").to_pylist())) and meta["iceberg_data_files_rewritten"] == 1
    assert meta["iceberg_files_deleted"] >= 2 and meta["iceberg_snapshots_expired"] == 1  # the publish's data file, manifest list, manifests
    [check] = result.get_asset_check_evaluations()
    assert check.passed and check.metadata["iceberg_parquet_files_read"].value == 1
    # the day's materialization names the snapshot and the posts removed by reason
    [record] = instance.fetch_materializations(AssetRecordsFilter(asset_key=AssetKey("s3_parquet"), asset_partitions=[DAY]), limit=1).records
    day_meta = record.asset_materialization.metadata
    assert day_meta["iceberg/snapshot_id"].value == str(after.current_snapshot().snapshot_id) and day_meta["compliance_removed"].value == len(removed & set(rows.column("id").to_pylist()))
    assert set(read_ledger(lake).column("id").to_pylist()) == {int(i) for i in affected}
    # the daily check on the Iceberg asset agrees
    daily = materialize(ALL, resources=res, instance=instance, partition_key=DAY, selection=[ALL[2], published_ids_not_in_ledger])  # published again from clean_tweets
    assert {e.check_name: e.passed for e in daily.get_asset_check_evaluations()}["published_ids_not_in_ledger"]


def test_with_snapshots_kept_the_check_finds_the_posts_in_storage(published, instance, aws_env, monkeypatch):
    """The check reads what storage holds, not what a query sees: with a retention of 24 h the old
    snapshot still holds the removed posts' data file, and the check fails naming it."""
    res, lake, gone, _, x_api_v2 = published
    monkeypatch.setenv("TWEET_ASSETS_ICEBERG_SNAPSHOT_RETENTION", "24")
    templates = [json.loads(line) for line in (x_api_v2 / "twarc-csv-test-data" / "tweets_compliance.jsonl").read_text().splitlines() if line.strip()]
    result = _comply(res, instance, {p["id"]: dict(t, created_at=p["created_at"]) for p, t in zip(gone, templates)}, aws_env)
    assert result.success
    table = IcebergTable.open(lake, "tweets", "tweets").load()
    assert not {int(p["id"]) for p in gone} & set(table.scan(selected_fields=("id",)).to_arrow().column("id").to_pylist())  # a query sees none
    [check] = result.get_asset_check_evaluations()
    assert not check.passed
    found = check.metadata["published_ledger_ids_by_day"].value
    assert list(found.values()) == [2] and list(found)[0].endswith(".parquet") and "/data/created_at_day=2021-06-26/" in list(found)[0]
    # the maintenance's expiry with the default retention then removes it
    from tweet_assets.tables.maintenance import expire_snapshots

    table, expiry = expire_snapshots(table, 0)
    assert expiry.files_deleted["data"] == 1
    assert not {int(p["id"]) for p in gone} & set(parquet_ids(table).column("id").to_pylist())
