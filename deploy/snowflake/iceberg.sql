-- dialect: snowflake iceberg (catalog integration with the Glue Data Catalog, external volume, externally managed Iceberg table)
CREATE CATALOG INTEGRATION IF NOT EXISTS tweet_assets_glue
  CATALOG_SOURCE = GLUE
  CATALOG_NAMESPACE = 'default'
  TABLE_FORMAT = ICEBERG
  GLUE_AWS_ROLE_ARN = 'arn:aws:iam::ACCOUNT_ID:role/tweet-assets-snowflake'
  GLUE_CATALOG_ID = 'ACCOUNT_ID'
  GLUE_REGION = 'REGION'
  ENABLED = TRUE;

CREATE EXTERNAL VOLUME IF NOT EXISTS tweet_assets_volume
  STORAGE_LOCATIONS = ((NAME = 'tweet_assets_s3' STORAGE_PROVIDER = 'S3' STORAGE_BASE_URL = 's3://YOUR-BUCKET/tweet_assets/tweets/' STORAGE_AWS_ROLE_ARN = 'arn:aws:iam::ACCOUNT_ID:role/tweet-assets-snowflake'));

-- Columns from the Iceberg metadata; timestamps are microseconds, UTC.
CREATE ICEBERG TABLE IF NOT EXISTS tweets
  EXTERNAL_VOLUME = 'tweet_assets_volume'
  CATALOG = 'tweet_assets_glue'
  CATALOG_TABLE_NAME = 'tweets'
  AUTO_REFRESH = TRUE;
