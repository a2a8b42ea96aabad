-- dialect: redshift iceberg (Amazon Redshift Spectrum: external schema over the Glue database that holds the Iceberg table)
-- The Iceberg table is registered in the Glue database (by the pipeline's Glue catalog, or created from Athena):
-- Spectrum reads it through this schema, its columns from the Iceberg metadata (timestamps: microseconds, UTC).
CREATE EXTERNAL SCHEMA IF NOT EXISTS tweets_iceberg
FROM DATA CATALOG DATABASE 'default'
IAM_ROLE 'arn:aws:iam::ACCOUNT_ID:role/tweet-assets-redshift-spectrum'
CREATE EXTERNAL DATABASE IF NOT EXISTS;

-- e.g. posts per UTC day of s3://YOUR-BUCKET/tweet_assets/tweets/:
SELECT TRUNC(created_at) AS day, count(*) AS posts FROM tweets_iceberg.tweets GROUP BY 1 ORDER BY 1;
