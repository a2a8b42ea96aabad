"""Each partition of a range run gets its own check result, as Dagit reads them (issue #29, points 1-2).

Dagster 1.13 plans a partitioned check once per partition of the run; these tests read back what
Dagit reads (``get_asset_check_partition_info``: the latest execution status per partition, and
whether it targets the partition's latest materialization) after one run of several days.
"""

from __future__ import annotations

import pytest
from dagster import AssetCheckKey, AssetCheckResult, AssetKey, DailyPartitionsDefinition, asset, asset_check, materialize
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from tests.helpers import ALL, resources, run
from tweet_assets.defs.pipeline import checks
from tweet_assets.defs.pipeline.partition_checks import per_partition
from tweet_assets.sources import SampleSource

DAYS = ["2024-02-01", "2024-02-02", "2024-02-03"]
CHECKS = [(AssetKey("clean_tweets"), "ids_unique_and_not_null"), (AssetKey("clean_tweets"), "created_at_in_partition"), (AssetKey("s3_parquet"), "published_schema_matches")]


def test_a_range_run_records_every_partitions_check_as_passed_for_its_latest_materialization(tmp_path, instance):
    result = run(resources(str(tmp_path / "lake"), SampleSource(posts_per_day=20)), DAYS[0], DAYS[-1], instance=instance)
    assert result.success
    keys = [AssetCheckKey(asset, name) for asset, name in CHECKS]
    infos = instance.event_log_storage.get_asset_check_partition_info(keys)
    by_check = {}
    for info in infos:
        by_check.setdefault(info.check_key.name, {})[info.partition_key] = info
    for _, name in CHECKS:
        assert sorted(by_check[name]) == DAYS, (name, by_check[name])  # no partition-less row beside the days
        for day, info in by_check[name].items():
            assert info.latest_execution_status == AssetCheckExecutionRecordStatus.SUCCEEDED, (name, day, info)
            assert info.is_current, (name, day, info)  # targets the day's latest materialization: "Passed", not stale
    evaluations = {(e.check_name, e.partition): e for e in result.get_asset_check_evaluations()}
    assert evaluations[("ids_unique_and_not_null", DAYS[1])].metadata["rows"].value == 20


daily = DailyPartitionsDefinition(start_date="2024-01-01")


@asset(partitions_def=daily)
def upstream(context) -> None:
    return None


@asset(partitions_def=daily, deps=[upstream])
def downstream() -> None:
    return None


@asset_check(asset=upstream, blocking=True, partitions_def=daily)
def second_day_bad(context):
    yield from per_partition(context, {day: AssetCheckResult(passed=day != DAYS[1], metadata={"day": day}) for day in context.partition_keys})


def test_a_failed_blocking_day_fails_only_that_day_and_stops_downstream(instance):
    result = materialize(
        [upstream, downstream, second_day_bad], instance=instance, raise_on_error=False,
        tags={"dagster/asset_partition_range_start": DAYS[0], "dagster/asset_partition_range_end": DAYS[-1]},
    )
    assert not result.success
    infos = {i.partition_key: i.latest_execution_status for i in instance.event_log_storage.get_asset_check_partition_info([second_day_bad.check_key])}
    assert infos == {DAYS[0]: AssetCheckExecutionRecordStatus.SUCCEEDED, DAYS[1]: AssetCheckExecutionRecordStatus.FAILED, DAYS[2]: AssetCheckExecutionRecordStatus.SUCCEEDED}
    assert not instance.fetch_materializations(AssetKey("downstream"), limit=10).records


def test_results_outside_the_run_are_refused(instance):
    @asset_check(asset=upstream, partitions_def=daily, name="stray")
    def stray(context):
        yield from per_partition(context, {"2030-01-01": AssetCheckResult(passed=True)})

    result = materialize([upstream, stray], instance=instance, partition_key=DAYS[0], raise_on_error=False)
    assert not result.success
    assert "outside the run's partitions" in str(result.all_events)


@pytest.mark.parametrize(("source", "attached"), [("sample", False), ("replay", False), ("stream", False), ("x_api", True)])
def test_the_api_count_check_is_attached_only_where_the_source_records_the_count(monkeypatch, source, attached):
    monkeypatch.setenv("TWEET_ASSETS_SOURCE", source)
    names = {c.check_key.name for c in checks.checks().asset_checks}
    assert ("raw_posts_match_api_count" in names) is attached
    assert {"ids_unique_and_not_null", "created_at_in_partition", "published_schema_matches"} <= names
