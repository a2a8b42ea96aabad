"""tweet_assets: X (Twitter) API v2 posts landed in an S3 data lake as daily, Athena-ready Parquet.

The data path, top to bottom:

``sources`` (API pages) → ``assets.raw_tweets`` (landing zone, gzip JSON lines) →
``flatten`` (pages → typed columns, per ``schema``) → ``assets.clean_tweets`` →
``assets.s3_parquet`` (the published Hive-partitioned table, read by Athena through ``athena``).
"""

__version__ = "0.1.0"
