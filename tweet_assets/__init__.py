"""tweet_assets: X (Twitter) API v2 posts landed in an S3 data lake as daily, Athena-ready Parquet.

The data path, top to bottom:

``sources`` (API pages) → ``assets.raw_tweets`` (landing zone, gzip JSON lines) →
``flatten`` (pages → typed columns, per ``schema``) → ``assets.clean_tweets`` →
``assets.s3_parquet`` (the published Hive-partitioned table, read by Athena through ``athena``).
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    """``tweet_assets.TweetCollection`` (the component ``dg`` lists, ``[tool.dg.project]
    registry_modules``), imported on first use so the engine packages never load Dagster's definitions."""
    if name == "TweetCollection":
        from tweet_assets.components import TweetCollection

        return TweetCollection
    raise AttributeError(f"module 'tweet_assets' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), "TweetCollection"])
