-- dialect: redshift (Amazon Redshift Spectrum: external schema over the Glue Data Catalog)

CREATE EXTERNAL SCHEMA IF NOT EXISTS tweets_spectrum
FROM DATA CATALOG DATABASE 'tweets_db'
IAM_ROLE 'arn:aws:iam::ACCOUNT_ID:role/tweet-assets-redshift-spectrum'
CREATE EXTERNAL DATABASE IF NOT EXISTS;

-- Skip the next statement if `tweet-assets catalog` registered this table in the Glue database:
-- Spectrum reads that table as it is.
CREATE EXTERNAL TABLE tweets_spectrum.tweets (
  "id" BIGINT,
  "created_at" TIMESTAMP,
  "conversation_id" BIGINT,
  "author_id" BIGINT,
  "text" VARCHAR(65535),
  "lang" VARCHAR(65535),
  "source" VARCHAR(65535),
  "reply_settings" VARCHAR(65535),
  "possibly_sensitive" BOOLEAN,
  "has_note_tweet" BOOLEAN,
  "is_retweet" BOOLEAN,
  "retweeted_id" BIGINT,
  "retweeted_user_id" BIGINT,
  "retweeted_username" VARCHAR(65535),
  "quoted_id" BIGINT,
  "quoted_user_id" BIGINT,
  "quoted_username" VARCHAR(65535),
  "replied_to_id" BIGINT,
  "in_reply_to_user_id" BIGINT,
  "in_reply_to_username" VARCHAR(65535),
  "retweet_count" BIGINT,
  "reply_count" BIGINT,
  "like_count" BIGINT,
  "quote_count" BIGINT,
  "impression_count" BIGINT,
  "bookmark_count" BIGINT,
  "hashtags" ARRAY<VARCHAR(65535)>,
  "cashtags" ARRAY<VARCHAR(65535)>,
  "mentions" ARRAY<VARCHAR(65535)>,
  "mention_user_ids" ARRAY<BIGINT>,
  "urls" ARRAY<VARCHAR(65535)>,
  "url_entities" ARRAY<STRUCT<url:VARCHAR(65535), expanded_url:VARCHAR(65535), display_url:VARCHAR(65535), unwound_url:VARCHAR(65535), title:VARCHAR(65535), description:VARCHAR(65535), status:BIGINT, media_key:VARCHAR(65535)>>,
  "annotations" ARRAY<STRUCT<type:VARCHAR(65535), normalized_text:VARCHAR(65535), probability:DOUBLE PRECISION>>,
  "context_annotations" ARRAY<STRUCT<domain_id:VARCHAR(65535), domain_name:VARCHAR(65535), domain_description:VARCHAR(65535), entity_id:VARCHAR(65535), entity_name:VARCHAR(65535), entity_description:VARCHAR(65535)>>,
  "media_keys" ARRAY<VARCHAR(65535)>,
  "media" ARRAY<STRUCT<media_key:VARCHAR(65535), type:VARCHAR(65535), url:VARCHAR(65535), preview_image_url:VARCHAR(65535), width:BIGINT, height:BIGINT, duration_ms:BIGINT, alt_text:VARCHAR(65535), view_count:BIGINT, variants:ARRAY<STRUCT<bit_rate:BIGINT, content_type:VARCHAR(65535), url:VARCHAR(65535)>>>>,
  "poll_id" BIGINT,
  "poll_options" ARRAY<STRUCT<position:BIGINT, label:VARCHAR(65535), votes:BIGINT>>,
  "poll_duration_minutes" BIGINT,
  "poll_end_datetime" TIMESTAMP,
  "poll_voting_status" VARCHAR(65535),
  "place_id" VARCHAR(65535),
  "place_full_name" VARCHAR(65535),
  "place_name" VARCHAR(65535),
  "place_type" VARCHAR(65535),
  "place_country" VARCHAR(65535),
  "place_country_code" VARCHAR(65535),
  "place_bbox" ARRAY<DOUBLE PRECISION>,
  "longitude" DOUBLE PRECISION,
  "latitude" DOUBLE PRECISION,
  "edit_history_tweet_ids" ARRAY<BIGINT>,
  "edits_remaining" BIGINT,
  "is_edit_eligible" BOOLEAN,
  "editable_until" TIMESTAMP,
  "withheld_copyright" BOOLEAN,
  "withheld_country_codes" ARRAY<VARCHAR(65535)>,
  "withheld_scope" VARCHAR(65535),
  "author_username" VARCHAR(65535),
  "author_name" VARCHAR(65535),
  "author_created_at" TIMESTAMP,
  "author_description" VARCHAR(65535),
  "author_location" VARCHAR(65535),
  "author_url" VARCHAR(65535),
  "author_expanded_url" VARCHAR(65535),
  "author_profile_image_url" VARCHAR(65535),
  "author_pinned_tweet_id" BIGINT,
  "author_protected" BOOLEAN,
  "author_verified" BOOLEAN,
  "author_verified_type" VARCHAR(65535),
  "author_followers_count" BIGINT,
  "author_following_count" BIGINT,
  "author_listed_count" BIGINT,
  "author_tweet_count" BIGINT,
  "author_description_hashtags" ARRAY<VARCHAR(65535)>,
  "author_description_cashtags" ARRAY<VARCHAR(65535)>,
  "author_description_mentions" ARRAY<VARCHAR(65535)>,
  "author_description_urls" ARRAY<VARCHAR(65535)>,
  "author_withheld_country_codes" ARRAY<VARCHAR(65535)>,
  "author_withheld_scope" VARCHAR(65535),
  "matching_rules" ARRAY<STRUCT<id:BIGINT, tag:VARCHAR(65535)>>
)
PARTITIONED BY (dt VARCHAR(10))
STORED AS PARQUET
LOCATION 's3://YOUR-BUCKET/tweet_assets/tweets/';

-- Spectrum does not read Athena's partition projection: add each published day once, here
-- (`tweet-assets ddl --dialect redshift --days START...END` prints these for a range), or in the
-- Glue table: `tweet-assets catalog --days START...END` or the glue_partitions asset.
