"""The job and its daily schedule (yesterday's partition, stopped by default as Dagster does)."""

from __future__ import annotations

from dagster import AssetSelection, build_schedule_from_partitioned_job, define_asset_job

from tweet_assets.defs.pipeline import freshness  # the module: dg loads the checks from their own file

tweets_daily_job = define_asset_job(
    "tweets_daily_job",
    # the freshness check watches "yesterday" on its own sensor, not inside each partition's run
    selection=AssetSelection.assets("raw_tweets", "clean_tweets", "s3_parquet") - AssetSelection.checks(*freshness.FRESHNESS_CHECKS),
    description="raw_tweets → clean_tweets → s3_parquet for the selected day(s).",
)

#: Runs shortly after midnight UTC for the day that just ended (the last complete partition).
tweets_daily_schedule = build_schedule_from_partitioned_job(
    tweets_daily_job, name="tweets_daily_schedule", minute_of_hour=15, hour_of_day=0
)
