"""TWEET_ASSETS_BACKFILL_PARTITIONS_PER_RUN (tweet_assets/partitions.py): unset keeps Dagster's
single-run backfill; N turns the three assets' backfill into runs of N partitions
(``BackfillPolicy.multi_run(N)``), and Dagster's own backfill planning then splits a year into
ceil(365 / N) runs of consecutive days."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from dagster import BackfillPolicy
from dagster._core.definitions.backfill_policy import BackfillPolicyType

from tweet_assets.partitions import BACKFILL_PARTITIONS_PER_RUN_ENV, backfill_policy_from_env


@pytest.mark.parametrize("env", [{}, {BACKFILL_PARTITIONS_PER_RUN_ENV: ""}, {BACKFILL_PARTITIONS_PER_RUN_ENV: "  "}])
def test_unset_is_single_run(env):
    policy = backfill_policy_from_env(env)
    assert policy == BackfillPolicy.single_run()
    assert policy.policy_type == BackfillPolicyType.SINGLE_RUN and policy.max_partitions_per_run is None


@pytest.mark.parametrize("value", ["1", "7", "30", "365"])
def test_n_is_multi_run_of_n(value):
    policy = backfill_policy_from_env({BACKFILL_PARTITIONS_PER_RUN_ENV: value})
    assert policy.policy_type == BackfillPolicyType.MULTI_RUN
    assert policy.max_partitions_per_run == int(value)


@pytest.mark.parametrize("value", ["0", "-3", "2.5", "ten", "1e3"])
def test_bad_values_fail_naming_the_variable(value):
    with pytest.raises(ValueError, match=BACKFILL_PARTITIONS_PER_RUN_ENV):
        backfill_policy_from_env({BACKFILL_PARTITIONS_PER_RUN_ENV: value})


PROBE = """
import json
from dagster import AssetKey
from tweet_assets.definitions import defs
graph = defs.resolve_asset_graph()
out = {}
for name in ("raw_tweets", "clean_tweets", "s3_parquet"):
    policy = graph.get(AssetKey(name)).backfill_policy
    out[name] = [policy.policy_type.value, policy.max_partitions_per_run]
print(json.dumps(out))
"""


def assets_policies(**env) -> dict:
    import os

    clean = {k: v for k, v in os.environ.items() if not k.startswith("TWEET_ASSETS_")}
    proc = subprocess.run([sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_the_code_location_reads_the_setting_for_all_three_assets():
    assert assets_policies() == {a: ["SINGLE_RUN", None] for a in ("raw_tweets", "clean_tweets", "s3_parquet")}
    assert assets_policies(**{BACKFILL_PARTITIONS_PER_RUN_ENV: "30"}) == {a: ["MULTI_RUN", 30] for a in ("raw_tweets", "clean_tweets", "s3_parquet")}


def test_a_year_becomes_ceil_365_over_n_runs_of_consecutive_days(instance):
    """The split the backfill daemon applies (``build_run_requests_with_backfill_policies``, which
    ``dagster._core.execution.asset_backfill`` calls) over 2023's 365 days."""
    from dagster import AssetKey, DailyPartitionsDefinition, Definitions, asset
    from dagster._core.definitions.automation_tick_evaluation_context import build_run_requests_with_backfill_policies
    from dagster._core.definitions.events import AssetKeyPartitionKey

    partitions = DailyPartitionsDefinition(start_date="2023-01-01", end_date="2024-01-01", timezone="UTC")

    def split(env) -> list[tuple[str, str]]:
        @asset(partitions_def=partitions, backfill_policy=backfill_policy_from_env(env))
        def day_asset():
            return None

        graph = Definitions(assets=[day_asset]).resolve_asset_graph()
        keys = partitions.get_partition_keys()
        assert len(keys) == 365
        wanted = [AssetKeyPartitionKey(AssetKey("day_asset"), k) for k in keys]
        requests = build_run_requests_with_backfill_policies(wanted, graph, instance)
        return sorted((r.partition_key_range.start, r.partition_key_range.end) for r in requests)

    ranges = split({BACKFILL_PARTITIONS_PER_RUN_ENV: "30"})
    assert len(ranges) == 13  # ceil(365 / 30)
    assert ranges[0] == ("2023-01-01", "2023-01-30") and ranges[-1] == ("2023-12-27", "2023-12-31")
    assert split({}) == [("2023-01-01", "2023-12-31")]  # the default: one run
