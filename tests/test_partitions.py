"""The first partition day follows what the configured source can reach (issue #29, point 5)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date

import pytest

from tweet_assets.partitions import DEFAULT_START_DATE, default_start_date, projection_start_date, start_date

TODAY = date(2026, 12, 1)


@pytest.mark.parametrize(
    ("env", "first"),
    [
        ({}, "2026-11-01"),  # sample (the default source): the last 30 days
        ({"TWEET_ASSETS_SOURCE": "sample"}, "2026-11-01"),
        ({"TWEET_ASSETS_SOURCE": "x_api", "X_QUERY": "dagster"}, "2026-11-24"),  # recent search: 7 days
        ({"TWEET_ASSETS_SOURCE": "x_api", "X_QUERY": "dagster", "X_FULL_ARCHIVE": "1"}, DEFAULT_START_DATE),
        ({"TWEET_ASSETS_SOURCE": "x_api", "X_ACCOUNTS": "XDevelopers"}, DEFAULT_START_DATE),  # timelines reach back years
        ({"TWEET_ASSETS_SOURCE": "stream"}, "2026-11-24"),
        ({"TWEET_ASSETS_SOURCE": "replay", "TWEET_ASSETS_REPLAY_DIR": "/x"}, DEFAULT_START_DATE),
    ],
)
def test_the_default_start_date_is_what_the_source_can_reach(env, first):
    assert default_start_date(env, today=TODAY) == first


def test_the_variable_overrides_and_a_bad_value_names_it():
    assert start_date({"TWEET_ASSETS_SOURCE": "sample", "TWEET_ASSETS_START_DATE": "2024-01-01"}) == "2024-01-01"
    assert projection_start_date({"TWEET_ASSETS_SOURCE": "sample"}) == DEFAULT_START_DATE  # DDL ranges never move
    with pytest.raises(ValueError, match=r"TWEET_ASSETS_START_DATE='2024-13-01' is not a date"):
        start_date({"TWEET_ASSETS_START_DATE": "2024-13-01"})
    with pytest.raises(ValueError, match="in the future"):
        start_date({"TWEET_ASSETS_START_DATE": "2999-01-01"})


def test_the_code_location_partitions_start_where_the_source_reaches():
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWEET_ASSETS_")}
    code = "from tweet_assets.definitions import defs; print(defs.resolve_assets_def('raw_tweets').partitions_def.get_first_partition_key())"
    for extra, expected in (({}, default_start_date({})), ({"TWEET_ASSETS_START_DATE": "2024-01-01"}, "2024-01-01")):
        out = subprocess.run([sys.executable, "-c", code], env={**env, **extra}, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        assert out.stdout.split()[-1] == expected
