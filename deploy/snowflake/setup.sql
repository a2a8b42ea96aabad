-- dialect: snowflake (storage integration, external stage and external table; COPY INTO and Snowpipe to load a table)

-- Timestamps are TIMESTAMP_NTZ(3) holding UTC (the files' INT64 ms adjusted to UTC): NTZ is
-- never shifted by the session TIMEZONE. dt is the UTC day of created_at.

CREATE STORAGE INTEGRATION IF NOT EXISTS tweet_assets_s3
  TYPE = EXTERNAL_STAGE
  STORAGE_PROVIDER = 'S3'
  ENABLED = TRUE
  STORAGE_AWS_ROLE_ARN = 'arn:aws:iam::ACCOUNT_ID:role/tweet-assets-snowflake'
  STORAGE_ALLOWED_LOCATIONS = ('s3://YOUR-BUCKET/tweet_assets/tweets/');

-- DESC INTEGRATION gives STORAGE_AWS_IAM_USER_ARN and STORAGE_AWS_EXTERNAL_ID for the role's trust policy.

CREATE STAGE IF NOT EXISTS tweets_stage
  URL = 's3://YOUR-BUCKET/tweet_assets/tweets/'
  STORAGE_INTEGRATION = tweet_assets_s3
  FILE_FORMAT = (TYPE = PARQUET);

-- Query in place: dt from the object's path, new days through AUTO_REFRESH.

CREATE EXTERNAL TABLE IF NOT EXISTS tweets_external (
  dt DATE AS (TO_DATE(SPLIT_PART(SPLIT_PART(METADATA$FILENAME, 'dt=', 2), '/', 1), 'YYYY-MM-DD')),
  id NUMBER(19,0) AS (VALUE:"id"::NUMBER(19,0)),
  created_at TIMESTAMP_NTZ(3) AS (VALUE:"created_at"::TIMESTAMP_NTZ(3)),
  conversation_id NUMBER(19,0) AS (VALUE:"conversation_id"::NUMBER(19,0)),
  author_id NUMBER(19,0) AS (VALUE:"author_id"::NUMBER(19,0)),
  text VARCHAR AS (VALUE:"text"::VARCHAR),
  lang VARCHAR AS (VALUE:"lang"::VARCHAR),
  source VARCHAR AS (VALUE:"source"::VARCHAR),
  reply_settings VARCHAR AS (VALUE:"reply_settings"::VARCHAR),
  possibly_sensitive BOOLEAN AS (VALUE:"possibly_sensitive"::BOOLEAN),
  has_note_tweet BOOLEAN AS (VALUE:"has_note_tweet"::BOOLEAN),
  is_retweet BOOLEAN AS (VALUE:"is_retweet"::BOOLEAN),
  retweeted_id NUMBER(19,0) AS (VALUE:"retweeted_id"::NUMBER(19,0)),
  retweeted_user_id NUMBER(19,0) AS (VALUE:"retweeted_user_id"::NUMBER(19,0)),
  retweeted_username VARCHAR AS (VALUE:"retweeted_username"::VARCHAR),
  quoted_id NUMBER(19,0) AS (VALUE:"quoted_id"::NUMBER(19,0)),
  quoted_user_id NUMBER(19,0) AS (VALUE:"quoted_user_id"::NUMBER(19,0)),
  quoted_username VARCHAR AS (VALUE:"quoted_username"::VARCHAR),
  replied_to_id NUMBER(19,0) AS (VALUE:"replied_to_id"::NUMBER(19,0)),
  in_reply_to_user_id NUMBER(19,0) AS (VALUE:"in_reply_to_user_id"::NUMBER(19,0)),
  in_reply_to_username VARCHAR AS (VALUE:"in_reply_to_username"::VARCHAR),
  unavailable_referenced_tweets ARRAY AS (VALUE:"unavailable_referenced_tweets"::ARRAY),
  retweet_count NUMBER(19,0) AS (VALUE:"retweet_count"::NUMBER(19,0)),
  reply_count NUMBER(19,0) AS (VALUE:"reply_count"::NUMBER(19,0)),
  like_count NUMBER(19,0) AS (VALUE:"like_count"::NUMBER(19,0)),
  quote_count NUMBER(19,0) AS (VALUE:"quote_count"::NUMBER(19,0)),
  impression_count NUMBER(19,0) AS (VALUE:"impression_count"::NUMBER(19,0)),
  bookmark_count NUMBER(19,0) AS (VALUE:"bookmark_count"::NUMBER(19,0)),
  hashtags ARRAY AS (VALUE:"hashtags"::ARRAY),
  cashtags ARRAY AS (VALUE:"cashtags"::ARRAY),
  mentions ARRAY AS (VALUE:"mentions"::ARRAY),
  mention_user_ids ARRAY AS (VALUE:"mention_user_ids"::ARRAY),
  urls ARRAY AS (VALUE:"urls"::ARRAY),
  url_entities ARRAY AS (VALUE:"url_entities"::ARRAY),
  annotations ARRAY AS (VALUE:"annotations"::ARRAY),
  context_annotations ARRAY AS (VALUE:"context_annotations"::ARRAY),
  media_keys ARRAY AS (VALUE:"media_keys"::ARRAY),
  media ARRAY AS (VALUE:"media"::ARRAY),
  poll_id NUMBER(19,0) AS (VALUE:"poll_id"::NUMBER(19,0)),
  poll_options ARRAY AS (VALUE:"poll_options"::ARRAY),
  poll_duration_minutes NUMBER(19,0) AS (VALUE:"poll_duration_minutes"::NUMBER(19,0)),
  poll_end_datetime TIMESTAMP_NTZ(3) AS (VALUE:"poll_end_datetime"::TIMESTAMP_NTZ(3)),
  poll_voting_status VARCHAR AS (VALUE:"poll_voting_status"::VARCHAR),
  place_id VARCHAR AS (VALUE:"place_id"::VARCHAR),
  place_full_name VARCHAR AS (VALUE:"place_full_name"::VARCHAR),
  place_name VARCHAR AS (VALUE:"place_name"::VARCHAR),
  place_type VARCHAR AS (VALUE:"place_type"::VARCHAR),
  place_country VARCHAR AS (VALUE:"place_country"::VARCHAR),
  place_country_code VARCHAR AS (VALUE:"place_country_code"::VARCHAR),
  place_bbox ARRAY AS (VALUE:"place_bbox"::ARRAY),
  longitude FLOAT AS (VALUE:"longitude"::FLOAT),
  latitude FLOAT AS (VALUE:"latitude"::FLOAT),
  edit_history_tweet_ids ARRAY AS (VALUE:"edit_history_tweet_ids"::ARRAY),
  edits_remaining NUMBER(19,0) AS (VALUE:"edits_remaining"::NUMBER(19,0)),
  is_edit_eligible BOOLEAN AS (VALUE:"is_edit_eligible"::BOOLEAN),
  editable_until TIMESTAMP_NTZ(3) AS (VALUE:"editable_until"::TIMESTAMP_NTZ(3)),
  withheld_copyright BOOLEAN AS (VALUE:"withheld_copyright"::BOOLEAN),
  withheld_country_codes ARRAY AS (VALUE:"withheld_country_codes"::ARRAY),
  withheld_scope VARCHAR AS (VALUE:"withheld_scope"::VARCHAR),
  author_username VARCHAR AS (VALUE:"author_username"::VARCHAR),
  author_name VARCHAR AS (VALUE:"author_name"::VARCHAR),
  author_created_at TIMESTAMP_NTZ(3) AS (VALUE:"author_created_at"::TIMESTAMP_NTZ(3)),
  author_description VARCHAR AS (VALUE:"author_description"::VARCHAR),
  author_location VARCHAR AS (VALUE:"author_location"::VARCHAR),
  author_url VARCHAR AS (VALUE:"author_url"::VARCHAR),
  author_expanded_url VARCHAR AS (VALUE:"author_expanded_url"::VARCHAR),
  author_profile_image_url VARCHAR AS (VALUE:"author_profile_image_url"::VARCHAR),
  author_pinned_tweet_id NUMBER(19,0) AS (VALUE:"author_pinned_tweet_id"::NUMBER(19,0)),
  author_protected BOOLEAN AS (VALUE:"author_protected"::BOOLEAN),
  author_verified BOOLEAN AS (VALUE:"author_verified"::BOOLEAN),
  author_verified_type VARCHAR AS (VALUE:"author_verified_type"::VARCHAR),
  author_followers_count NUMBER(19,0) AS (VALUE:"author_followers_count"::NUMBER(19,0)),
  author_following_count NUMBER(19,0) AS (VALUE:"author_following_count"::NUMBER(19,0)),
  author_listed_count NUMBER(19,0) AS (VALUE:"author_listed_count"::NUMBER(19,0)),
  author_tweet_count NUMBER(19,0) AS (VALUE:"author_tweet_count"::NUMBER(19,0)),
  author_description_hashtags ARRAY AS (VALUE:"author_description_hashtags"::ARRAY),
  author_description_cashtags ARRAY AS (VALUE:"author_description_cashtags"::ARRAY),
  author_description_mentions ARRAY AS (VALUE:"author_description_mentions"::ARRAY),
  author_description_urls ARRAY AS (VALUE:"author_description_urls"::ARRAY),
  author_withheld_country_codes ARRAY AS (VALUE:"author_withheld_country_codes"::ARRAY),
  author_withheld_scope VARCHAR AS (VALUE:"author_withheld_scope"::VARCHAR),
  matching_rules ARRAY AS (VALUE:"matching_rules"::ARRAY),
  retrieved_at TIMESTAMP_NTZ(3) AS (VALUE:"retrieved_at"::TIMESTAMP_NTZ(3)),
  request_url VARCHAR AS (VALUE:"request_url"::VARCHAR)
)
  PARTITION BY (dt)
  LOCATION = @tweets_stage
  AUTO_REFRESH = TRUE
  FILE_FORMAT = (TYPE = PARQUET);

-- Or load into a table: once with COPY INTO, then continuously with Snowpipe.

CREATE TABLE IF NOT EXISTS tweets (
  id NUMBER(19,0) NOT NULL COMMENT 'Post id.',
  created_at TIMESTAMP_NTZ(3) NOT NULL COMMENT 'When the post was created, UTC, millisecond precision. The table\'s dt partition is its UTC day.',
  conversation_id NUMBER(19,0) COMMENT 'Id of the post that started the conversation.',
  author_id NUMBER(19,0) COMMENT 'Id of the posting account.',
  text VARCHAR COMMENT 'Full text with &amp; &lt; &gt; unescaped: note_tweet.text for long posts (over 280 characters). For a retweet, the retweeted post\'s (the API truncates a retweet\'s own).',
  lang VARCHAR COMMENT 'BCP 47 language detected by X (\'und\' when undetermined).',
  source VARCHAR COMMENT 'Client used to post (only for posts before late 2022).',
  reply_settings VARCHAR COMMENT 'Who may reply: everyone, mentionedUsers, following, subscribers, verified.',
  possibly_sensitive BOOLEAN COMMENT 'X\'s possibly-sensitive flag for links or media.',
  has_note_tweet BOOLEAN COMMENT 'True when the post is a long post whose full text came from note_tweet.',
  is_retweet BOOLEAN COMMENT 'True when the post is a retweet (referenced_tweets has type retweeted).',
  retweeted_id NUMBER(19,0) COMMENT 'Id of the retweeted post.',
  retweeted_user_id NUMBER(19,0) COMMENT 'Author id of the retweeted post (from includes.tweets).',
  retweeted_username VARCHAR COMMENT 'Author username of the retweeted post (from includes.users).',
  quoted_id NUMBER(19,0) COMMENT 'Id of the quoted post.',
  quoted_user_id NUMBER(19,0) COMMENT 'Author id of the quoted post (from includes.tweets).',
  quoted_username VARCHAR COMMENT 'Author username of the quoted post (from includes.users).',
  replied_to_id NUMBER(19,0) COMMENT 'Id of the post this one replies to.',
  in_reply_to_user_id NUMBER(19,0) COMMENT 'Id of the account replied to.',
  in_reply_to_username VARCHAR COMMENT 'Username of the account replied to (from includes.users).',
  unavailable_referenced_tweets ARRAY COMMENT 'Referenced posts the API reported unavailable: the post\'s referenced_tweets whose id is the resource_id of an entry of the page\'s errors with resource_type tweet. Each: id, reference type (replied_to, quoted, retweeted), the error\'s title (\'Not Found Error\': deleted; \'Authorization Error\': protected) and detail. Null when none was reported.',
  retweet_count NUMBER(19,0) COMMENT 'Count as of retrieval, from public_metrics. For a retweet, the retweeted post\'s (the API truncates a retweet\'s own).',
  reply_count NUMBER(19,0) COMMENT 'Count as of retrieval, from public_metrics. For a retweet, the retweeted post\'s (the API truncates a retweet\'s own).',
  like_count NUMBER(19,0) COMMENT 'Count as of retrieval, from public_metrics. For a retweet, the retweeted post\'s (the API truncates a retweet\'s own).',
  quote_count NUMBER(19,0) COMMENT 'Count as of retrieval, from public_metrics. For a retweet, the retweeted post\'s (the API truncates a retweet\'s own).',
  impression_count NUMBER(19,0) COMMENT 'Count as of retrieval, from public_metrics. Null (not 0) when the API did not send it (posts before Dec 2022). For a retweet, the retweeted post\'s (the API truncates a retweet\'s own).',
  bookmark_count NUMBER(19,0) COMMENT 'Count as of retrieval, from public_metrics. Null (not 0) when the API did not send it. For a retweet, the retweeted post\'s (the API truncates a retweet\'s own).',
  hashtags ARRAY COMMENT 'Hashtags without \'#\', in order of appearance. Taken from note_tweet.entities for long posts. For a retweet, the retweeted post\'s (the API truncates a retweet\'s own).',
  cashtags ARRAY COMMENT 'Cashtags without \'$\'. Taken from note_tweet.entities for long posts. For a retweet, the retweeted post\'s (the API truncates a retweet\'s own).',
  mentions ARRAY COMMENT 'Mentioned usernames without \'@\'. Taken from note_tweet.entities for long posts. For a retweet, the retweeted post\'s (the API truncates a retweet\'s own).',
  mention_user_ids ARRAY COMMENT 'Ids of the mentioned accounts, aligned with mentions (null where the API gave none).',
  urls ARRAY COMMENT 'Expanded URLs in the text (display URL\'s target; for media, the post\'s media link). Taken from note_tweet.entities for long posts. For a retweet, the retweeted post\'s (the API truncates a retweet\'s own).',
  url_entities ARRAY COMMENT 'Each URL entity: t.co url, expanded, display and unwound URL, page title and description, HTTP status, media_key for media links.',
  annotations ARRAY COMMENT 'Named entities X detected in the text: type (Person, Place, ...), text, probability 0-1.',
  context_annotations ARRAY COMMENT 'X\'s topic annotations: domain and entity ids, names, descriptions. For a retweet, the retweeted post\'s (the API truncates a retweet\'s own).',
  media_keys ARRAY COMMENT 'attachments.media_keys. For a retweet, the retweeted post\'s (the API truncates a retweet\'s own).',
  media ARRAY COMMENT 'Attached media joined from includes.media: type (photo, video, animated_gif), URL or preview URL, width and height (pixels), duration (ms), alt text, view count, video variants (bit rate in bits/s).',
  poll_id NUMBER(19,0) COMMENT 'Attached poll id (attachments.poll_ids; a post has at most one poll).',
  poll_options ARRAY COMMENT 'Poll options: position (1-based), label, votes.',
  poll_duration_minutes NUMBER(19,0) COMMENT 'Poll duration, minutes.',
  poll_end_datetime TIMESTAMP_NTZ(3) COMMENT 'When the poll closes or closed, UTC.',
  poll_voting_status VARCHAR COMMENT 'open or closed.',
  place_id VARCHAR COMMENT 'Tagged place id (geo.place_id; a hex string, not a number).',
  place_full_name VARCHAR COMMENT 'Tagged place\'s full name, e.g. \'Manhattan, NY\'.',
  place_name VARCHAR COMMENT 'Tagged place\'s short name.',
  place_type VARCHAR COMMENT 'city, admin, country, poi, neighborhood.',
  place_country VARCHAR COMMENT 'Tagged place\'s country name.',
  place_country_code VARCHAR COMMENT 'ISO 3166-1 alpha-2 country code of the tagged place.',
  place_bbox ARRAY COMMENT 'Place bounding box [west, south, east, north], degrees (GeoJSON bbox).',
  longitude FLOAT COMMENT 'Exact point longitude, degrees (geo.coordinates, GeoJSON order [lon, lat]).',
  latitude FLOAT COMMENT 'Exact point latitude, degrees.',
  edit_history_tweet_ids ARRAY COMMENT 'Ids of every version of the post, oldest first; the last is the newest version.',
  edits_remaining NUMBER(19,0) COMMENT 'edit_controls.edits_remaining.',
  is_edit_eligible BOOLEAN COMMENT 'edit_controls.is_edit_eligible.',
  editable_until TIMESTAMP_NTZ(3) COMMENT 'edit_controls.editable_until, UTC.',
  withheld_copyright BOOLEAN COMMENT 'Withheld for a copyright (DMCA) complaint.',
  withheld_country_codes ARRAY COMMENT 'Countries where the post is withheld (ISO alpha-2, or XX/XY).',
  withheld_scope VARCHAR COMMENT 'tweet or user: what the withholding applies to.',
  author_username VARCHAR COMMENT 'Author\'s @username (from includes.users).',
  author_name VARCHAR COMMENT 'Author\'s display name.',
  author_created_at TIMESTAMP_NTZ(3) COMMENT 'When the author\'s account was created, UTC.',
  author_description VARCHAR COMMENT 'Author\'s profile bio.',
  author_location VARCHAR COMMENT 'Author\'s free-text profile location.',
  author_url VARCHAR COMMENT 'Author\'s profile URL as given (often t.co).',
  author_expanded_url VARCHAR COMMENT 'Author\'s profile URL expanded (entities.url.urls).',
  author_profile_image_url VARCHAR COMMENT 'Author\'s profile image URL.',
  author_pinned_tweet_id NUMBER(19,0) COMMENT 'Id of the author\'s pinned post.',
  author_protected BOOLEAN COMMENT 'Author\'s posts are protected.',
  author_verified BOOLEAN COMMENT 'Author\'s verified flag (legacy verification before 2023).',
  author_verified_type VARCHAR COMMENT 'blue, business, government or none.',
  author_followers_count NUMBER(19,0) COMMENT 'Author\'s followers, as of retrieval.',
  author_following_count NUMBER(19,0) COMMENT 'Accounts the author follows, as of retrieval.',
  author_listed_count NUMBER(19,0) COMMENT 'Lists the author is on, as of retrieval.',
  author_tweet_count NUMBER(19,0) COMMENT 'Author\'s posts, as of retrieval.',
  author_description_hashtags ARRAY COMMENT 'Hashtags in the author\'s bio.',
  author_description_cashtags ARRAY COMMENT 'Cashtags in the author\'s bio.',
  author_description_mentions ARRAY COMMENT 'Usernames mentioned in the author\'s bio.',
  author_description_urls ARRAY COMMENT 'Expanded URLs in the author\'s bio.',
  author_withheld_country_codes ARRAY COMMENT 'Countries where the author\'s account is withheld.',
  author_withheld_scope VARCHAR COMMENT 'Scope of the author\'s withholding.',
  matching_rules ARRAY COMMENT 'Filtered-stream rules the post matched: rule id and tag (null outside the stream).',
  retrieved_at TIMESTAMP_NTZ(3) COMMENT 'When the page holding this copy of the post was retrieved from the API, UTC, ms (twarc2\'s __twarc.retrieved_at; the live source records its own). Counts (metrics, followers) are as of this time: of several copies in the day, the newest copy\'s. Null when not recorded.',
  request_url VARCHAR COMMENT 'The API request that returned that copy (__twarc.url: endpoint and query parameters; no credentials).',
  source_file VARCHAR COMMENT 'The object the row was loaded from: dt=YYYY-MM-DD/part-00000.parquet (METADATA$FILENAME).'
)
  CLUSTER BY (TO_DATE(created_at));

COPY INTO tweets
  FROM @tweets_stage
  FILE_FORMAT = (TYPE = PARQUET)
  MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE
  INCLUDE_METADATA = (source_file = METADATA$FILENAME);

CREATE PIPE IF NOT EXISTS tweets_pipe
  AUTO_INGEST = TRUE
  AS
COPY INTO tweets
  FROM @tweets_stage
  FILE_FORMAT = (TYPE = PARQUET)
  MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE
  INCLUDE_METADATA = (source_file = METADATA$FILENAME);

-- Then send the bucket's events to the pipe's queue (SHOW PIPES -> notification_channel):
-- aws s3api put-bucket-notification-configuration --bucket YOUR-BUCKET --notification-configuration '{"QueueConfigurations": [{"Id": "tweet-assets-snowflake", "QueueArn": "<notification_channel from SHOW PIPES>", "Events": ["s3:ObjectCreated:*"], "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "tweet_assets/tweets/"}, {"Name": "suffix", "Value": ".parquet"}]}}}]}'
