"""Replaying a sparse multi-year archive (#17): only the archive's days are materialized, nearby
days in one run; a day materialized without posts stores no object, reads back as 0 rows and
passes the checks; a missing object that was never recorded empty is still an error.

The archive is the real twarc-csv ``withheld.jsonl`` (../shared/x-api-v2): posts on 23 days of
2010, 2014, 2020 and 2021. Expectations come from the json module (tests.helpers.expected_posts)
and from DuckDB reading the lake, not from the code under test.
"""

from __future__ import annotations

import duckdb
import pytest
from dagster import AssetKey, DagsterEventType, Definitions, EventRecordsFilter, load_asset_checks_from_modules

from tests.helpers import expected_posts, is_bookkeeping, resources, run
from tweet_assets.defs.pipeline import assets
from tweet_assets.defs.pipeline import checks
from tweet_assets.lake.empty_days import empty_parquet
from tweet_assets.defs.pipeline.freshness import FRESHNESS_CHECKS
from tweet_assets.sources.replay_plan import archive_days, execute_range, plan_runs, replay_archive
from tweet_assets.defs.pipeline.jobs import tweets_daily_job
from tweet_assets.sources import ReplaySource, SampleSource

WITHHELD = "twarc-csv-test-data/withheld.jsonl"
TABLES = ("raw_tweets", "clean_tweets", "tweets")


def _objects(lake, table: str) -> set[str]:
    """Days (``dt=``) that have an object under ``<lake>/<table>``."""
    return {p.parent.name[3:] for p in (lake / table).glob("dt=*/part-*") if p.is_file()}


def _materialized(instance, asset: str) -> set[str]:
    return set(instance.get_materialized_partitions(AssetKey(asset)))


def _check_evaluations(instance) -> dict[tuple[str, str, str], tuple[bool, dict]]:
    """``{(check name, run id, partition): (passed, metadata)}`` of every asset check evaluation in
    ``instance`` (one per partition of the run: tweet_assets.defs.pipeline.partition_checks)."""
    found = {}
    for record in instance.get_event_records(EventRecordsFilter(DagsterEventType.ASSET_CHECK_EVALUATION)):
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        found[(evaluation.check_name, record.run_id, evaluation.partition)] = (evaluation.passed, {k: getattr(v, "value", v) for k, v in evaluation.metadata.items()})
    return found


def test_plan_groups_nearby_days_and_leaves_the_rest_out():
    days = {"2010-09-27": 1, "2010-10-10": 2, "2010-10-30": 3, "2014-09-02": 1, "2014-09-03": 0}
    runs = plan_runs(days, max_gap_days=14)
    assert [(r.start, r.end, r.days_with_posts, r.posts) for r in runs] == [
        ("2010-09-27", "2010-10-10", 2, 3),  # 12 empty days between: one run
        ("2010-10-30", "2010-10-30", 1, 3),  # 19 empty days before it: a run of its own
        ("2014-09-02", "2014-09-02", 1, 1),  # a day without posts is not a reason to run
    ]
    assert runs[0].partitions == 14
    # the boundary: 12 empty days between 2010-09-27 and 2010-10-10 join at max_gap_days=12, not at 11
    assert str(plan_runs(days, max_gap_days=12)[0]) == "2010-09-27…2010-10-10"
    assert str(plan_runs(days, max_gap_days=11)[0]) == "2010-09-27…2010-09-27"
    assert [str(r) for r in plan_runs(days, max_gap_days=0)] == ["2010-09-27…2010-09-27", "2010-10-10…2010-10-10", "2010-10-30…2010-10-30", "2014-09-02…2014-09-02"]
    assert len(plan_runs(days, max_gap_days=1000, max_run_days=20)) == 3  # a run never exceeds 20 partitions
    with pytest.raises(ValueError, match="before the first partition"):
        plan_runs(days, first_day="2012-01-01")


def test_sparse_archive_replay_materializes_its_days_only_and_publishes_its_posts(x_api_v2, tmp_path, instance):
    archive = x_api_v2 / WITHHELD
    lake = tmp_path / "lake"
    days = archive_days(str(archive))
    with_posts = {d for d, n in days.items() if n}
    runs = plan_runs(days, max_gap_days=14)
    assert len(with_posts) == 23 and len(runs) == 5  # 2010, 2014, April-May 2020 (one run), 2021 twice
    defs = Definitions(
        assets=[assets.raw_tweets, assets.clean_tweets, assets.s3_parquet],
        asset_checks=[*load_asset_checks_from_modules([checks]), *FRESHNESS_CHECKS],
        jobs=[tweets_daily_job],
        resources=resources(str(lake), ReplaySource(path=str(archive))),
    )
    lines = []
    outcomes = replay_archive(runs, execute_range(defs.resolve_job_def("tweets_daily_job"), instance), progress=lines.append)
    assert [o.success for o in outcomes] == [True] * 5
    assert len(lines) == 5 and lines[-1].startswith("[5/5] 2021-06-14…2021-06-14") and f"{sum(days.values())} of {sum(days.values())} posts" in lines[-1]

    in_runs = {d for r in runs for d in _days(r.start, r.end)}
    assert len(in_runs) == 23 + 3  # 2020-04-19, 04-23 and 04-26 lie inside the April-May run
    for asset in ("raw_tweets", "clean_tweets", "s3_parquet"):
        assert _materialized(instance, asset) == in_runs  # the 4,000-odd days between runs stay unknown
    for table in TABLES:
        assert _objects(lake, table) == with_posts  # no object for a day without posts

    # the published table, read back by DuckDB as Athena reads it (hive partitions)
    expected = expected_posts([archive])
    con = duckdb.connect()
    got = con.execute(f"SELECT CAST(dt AS VARCHAR), CAST(id AS VARCHAR) FROM read_parquet('{lake}/tweets/*/*.parquet', hive_partitioning=true)").fetchall()
    assert sorted(got) == sorted((day, post_id) for day, posts in expected.items() for post_id in posts)

    # the empty days inside a run: 0 rows in their metadata, nothing stored, every check passed
    empty = sorted(in_runs - with_posts)
    for day in empty:
        for asset in ("clean_tweets", "s3_parquet"):
            meta = _latest_metadata(instance, asset, day)
            assert meta["dagster/row_count"] == 0 and meta["bytes"] == 0
        assert _latest_metadata(instance, "raw_tweets", day)["pages"] == 0
        assert con.execute(f"SELECT count(*) FROM read_parquet('{lake}/tweets/*/*.parquet', hive_partitioning=true) WHERE dt = DATE '{day}'").fetchall() == [(0,)]
    evaluations = _check_evaluations(instance)
    april = next(o.run_id for o in outcomes if o.range.start == "2020-04-14")
    for name in ("ids_unique_and_not_null", "created_at_in_partition", "published_schema_matches"):
        for o in outcomes:  # every partition of every run evaluated, and passed
            days = [d for (n, run, d) in evaluations if n == name and run == o.run_id]
            assert len(days) == o.range.partitions and len(set(days)) == len(days), (name, o.range, days)
            assert all(evaluations[(name, o.run_id, d)][0] for d in days), name
        assert len([d for (n, run, d) in evaluations if n == name and run == april]) == 22, name
    assert sum(evaluations[k][1]["empty_day"] for k in evaluations if k[0] == "published_schema_matches" and k[1] == april) == 3


def test_a_day_that_loses_its_posts_is_overwritten_with_an_empty_file(tmp_path, instance):
    lake = tmp_path / "lake"
    day = "2024-02-29"
    run(resources(str(lake), SampleSource(posts_per_day=20)), day, instance=instance)
    published = lake / "tweets" / f"dt={day}" / "part-00000.parquet"
    assert duckdb.sql(f"SELECT count(*) FROM read_parquet('{published}')").fetchall() == [(20,)]
    run(resources(str(lake), SampleSource(posts_per_day=0)), day, instance=instance)
    # no delete (the IAM policy grants none): the smallest valid file, which readers read as 0 rows
    assert published.read_bytes() == empty_parquet()
    assert len(empty_parquet()) < 16_000
    assert duckdb.sql(f"SELECT count(*) FROM read_parquet('{published}')").fetchall() == [(0,)]
    assert (lake / "raw_tweets" / f"dt={day}" / "part-00000.jsonl.gz").stat().st_size == 20
    assert _latest_metadata(instance, "s3_parquet", day)["dagster/row_count"] == 0


def test_a_missing_object_never_recorded_empty_is_still_an_error(tmp_path, instance):
    lake = tmp_path / "lake"
    day = "2024-03-01"
    run(resources(str(lake), SampleSource(posts_per_day=0)), day, instance=instance)
    # s3_parquet alone for a day whose clean_tweets was never materialized: an error, not 0 rows
    result = run(resources(str(lake), SampleSource(posts_per_day=0)), "2024-03-02", instance=instance, selection=[assets.s3_parquet], raise_on_error=False)
    assert not result.success
    assert "no object at" in str(result.all_events)


def _days(start: str, end: str) -> list[str]:
    from datetime import date, timedelta

    first, last = date.fromisoformat(start), date.fromisoformat(end)
    return [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]


def _latest_metadata(instance, asset: str, day: str) -> dict:
    from dagster import AssetRecordsFilter

    records = instance.fetch_materializations(AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[day]), limit=1).records
    return {k: getattr(v, "value", v) for k, v in records[0].asset_materialization.metadata.items()}




def test_replay_archive_sensor_requests_the_planned_ranges_once(x_api_v2, tmp_path, instance):
    from dagster import build_sensor_context
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    from tweet_assets.defs.replay.sensor import replay_archive_sensor

    archive = x_api_v2 / WITHHELD
    with build_sensor_context(instance=instance, resources={"source": ReplaySource(path=str(archive))}) as context:
        result = replay_archive_sensor(context)
    requested = [(r.tags[ASSET_PARTITION_RANGE_START_TAG], r.tags[ASSET_PARTITION_RANGE_END_TAG]) for r in result.run_requests]
    assert requested == [(r.start, r.end) for r in plan_runs(archive_days(str(archive)))]
    assert requested[2] == ("2020-04-14", "2020-05-05") and len(requested) == 5
    assert len({r.run_key for r in result.run_requests}) == 5
    with build_sensor_context(instance=instance, resources={"source": SampleSource()}) as context:
        assert "TWEET_ASSETS_SOURCE=replay" in replay_archive_sensor(context).skip_message


def test_read_back_of_a_lake_of_empty_days_says_so(tmp_path, instance):
    from tweet_assets.cli import NO_ROWS, read_back

    lake = tmp_path / "lake"
    assert run(resources(str(lake), SampleSource(posts_per_day=0)), "2024-03-03", instance=instance).success
    assert not (lake / "tweets").exists()
    assert read_back(str(lake)) == NO_ROWS


def test_an_empty_day_on_s3_stores_nothing_and_passes_the_checks(s3_lake, aws_env, instance):
    import boto3

    result = run(resources(s3_lake, SampleSource(posts_per_day=0)), "2024-03-04", instance=instance)
    assert result.success
    assert all(e.passed for e in result.get_asset_check_evaluations())
    bucket, prefix = s3_lake[5:].split("/", 1)
    listed = boto3.client("s3", endpoint_url=aws_env).list_objects_v2(Bucket=bucket, Prefix=prefix + "/").get("Contents", [])
    assert [o["Key"] for o in listed if "dt=" in o["Key"] and not is_bookkeeping(o["Key"])] == []  # no PUT for the empty day (the write check's own key and the day's lease and lineage aside)
    assert _latest_metadata(instance, "s3_parquet", "2024-03-04")["bytes"] == 0
