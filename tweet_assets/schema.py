"""The published columns of a post, and the API fields deliberately left in the raw zone.

This module is the one list of columns. The Parquet schema the writer enforces
(:data:`PUBLISHED_SCHEMA`), the Athena DDL (``athena.py``), the column metadata Dagit shows
(:func:`tweet_assets.warehouses.athena.dagster_table_schema`), the README's column list and the tests all read it; none keeps a copy.

Each :class:`Column` names the API v2 key paths it is built from, written as
``<object>.<key>.<key>`` with list levels dropped, where ``<object>`` is ``tweet`` (a Post in
``data`` or ``includes.tweets``), ``user``, ``media``, ``place``, ``poll`` (the ``includes`` objects),
or ``page`` (the response's own keys: ``meta``, ``errors``, ``matching_rules``, and ``__twarc``,
the retrieval record twarc2 adds to each page it archives and the live source adds the same way).
Every key path seen in a page maps to a column or to :data:`LEFT_RAW` with the reason; a test walks
the recorded API data and fails on a path that is neither.

Types follow what Amazon Athena (engine v3) reads from Parquet without surprises: ``int64`` for ids
and counts (BIGINT; Athena has no unsigned types), timestamps as INT64 milliseconds adjusted to UTC
(``timestamp[ms, tz=UTC]``), UTF-8 strings, booleans, ``list<string>`` / ``list<struct<…>>`` for
lists (``array<…>`` in Athena), never JSON text in a string.

Column names are lowercase snake_case, as Athena and the Glue catalog lowercase names.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

S = pa.string()
I64 = pa.int64()
F64 = pa.float64()
B = pa.bool_()
TS = pa.timestamp("ms", tz="UTC")


def _struct(**fields: pa.DataType) -> pa.StructType:
    return pa.struct([pa.field(name, typ) for name, typ in fields.items()])


URL_ENTITY = _struct(
    url=S, expanded_url=S, display_url=S, unwound_url=S, title=S, description=S, status=I64, media_key=S
)
ANNOTATION = _struct(type=S, normalized_text=S, probability=F64)
CONTEXT_ANNOTATION = _struct(
    domain_id=S, domain_name=S, domain_description=S, entity_id=S, entity_name=S, entity_description=S
)
MEDIA = _struct(
    media_key=S,
    type=S,
    url=S,
    preview_image_url=S,
    width=I64,
    height=I64,
    duration_ms=I64,
    alt_text=S,
    view_count=I64,
    variants=pa.list_(_struct(bit_rate=I64, content_type=S, url=S)),
)
POLL_OPTION = _struct(position=I64, label=S, votes=I64)
#: A referenced post the API reported unavailable: the ``referenced_tweets`` entry (id, type) and
#: the page's ``errors`` entry about it (title, detail), as the API words them.
UNAVAILABLE_REFERENCE = _struct(id=I64, type=S, title=S, detail=S)
MATCHING_RULE = _struct(id=I64, tag=S)


@dataclass(frozen=True)
class Column:
    """One published column.

    Attributes:
        name: lowercase snake_case column name.
        type: its Arrow type (the Parquet physical/logical type follows from it).
        description: what it holds, with units; becomes the Athena column comment.
        sources: the API key paths it is built from (see the module docstring for the notation).
    """

    name: str
    type: pa.DataType
    description: str
    sources: tuple[str, ...] = ()


def _c(name: str, typ: pa.DataType, description: str, *sources: str) -> Column:
    return Column(name, typ, description, tuple(sources))


_RT = " For a retweet, the retweeted post's (the API truncates a retweet's own)."
_METRIC = "Count as of retrieval, from public_metrics."
_ENT = " Taken from note_tweet.entities for long posts."

COLUMNS: tuple[Column, ...] = (
    # --- the post
    _c("id", I64, "Post id.", "tweet.id"),
    _c("created_at", TS, "When the post was created, UTC, millisecond precision. The table's dt partition is its UTC day.", "tweet.created_at"),
    _c("conversation_id", I64, "Id of the post that started the conversation.", "tweet.conversation_id"),
    _c("author_id", I64, "Id of the posting account.", "tweet.author_id"),
    _c("text", S, "Full text with &amp; &lt; &gt; unescaped: note_tweet.text for long posts (over 280 characters)." + _RT, "tweet.text", "tweet.note_tweet.text"),
    _c("lang", S, "BCP 47 language detected by X ('und' when undetermined).", "tweet.lang"),
    _c("source", S, "Client used to post (only for posts before late 2022).", "tweet.source"),
    _c("reply_settings", S, "Who may reply: everyone, mentionedUsers, following, subscribers, verified.", "tweet.reply_settings"),
    _c("possibly_sensitive", B, "X's possibly-sensitive flag for links or media.", "tweet.possibly_sensitive"),
    _c("has_note_tweet", B, "True when the post is a long post whose full text came from note_tweet.", "tweet.note_tweet"),
    # --- references
    _c("is_retweet", B, "True when the post is a retweet (referenced_tweets has type retweeted).", "tweet.referenced_tweets.type"),
    _c("retweeted_id", I64, "Id of the retweeted post.", "tweet.referenced_tweets.id"),
    _c("retweeted_user_id", I64, "Author id of the retweeted post (from includes.tweets).", "tweet.author_id"),
    _c("retweeted_username", S, "Author username of the retweeted post (from includes.users).", "user.username"),
    _c("quoted_id", I64, "Id of the quoted post.", "tweet.referenced_tweets.id"),
    _c("quoted_user_id", I64, "Author id of the quoted post (from includes.tweets).", "tweet.author_id"),
    _c("quoted_username", S, "Author username of the quoted post (from includes.users).", "user.username"),
    _c("replied_to_id", I64, "Id of the post this one replies to.", "tweet.referenced_tweets.id"),
    _c("in_reply_to_user_id", I64, "Id of the account replied to.", "tweet.in_reply_to_user_id"),
    _c("in_reply_to_username", S, "Username of the account replied to (from includes.users).", "user.username"),
    _c(
        "unavailable_referenced_tweets",
        pa.list_(UNAVAILABLE_REFERENCE),
        "Referenced posts the API reported unavailable: the post's referenced_tweets whose id is the "
        "resource_id of an entry of the page's errors with resource_type tweet. Each: id, reference "
        "type (replied_to, quoted, retweeted), the error's title ('Not Found Error': deleted; "
        "'Authorization Error': protected) and detail. Null when none was reported.",
        "page.errors.resource_id",
        "page.errors.resource_type",
        "page.errors.title",
        "page.errors.detail",
        "tweet.referenced_tweets.id",
        "tweet.referenced_tweets.type",
    ),
    # --- public_metrics
    _c("retweet_count", I64, _METRIC + _RT, "tweet.public_metrics.retweet_count"),
    _c("reply_count", I64, _METRIC + _RT, "tweet.public_metrics.reply_count"),
    _c("like_count", I64, _METRIC + _RT, "tweet.public_metrics.like_count"),
    _c("quote_count", I64, _METRIC + _RT, "tweet.public_metrics.quote_count"),
    _c("impression_count", I64, _METRIC + " Null (not 0) when the API did not send it (posts before Dec 2022)." + _RT, "tweet.public_metrics.impression_count"),
    _c("bookmark_count", I64, _METRIC + " Null (not 0) when the API did not send it." + _RT, "tweet.public_metrics.bookmark_count"),
    # --- entities
    _c("hashtags", pa.list_(S), "Hashtags without '#', in order of appearance." + _ENT + _RT, "tweet.entities.hashtags.tag", "tweet.note_tweet.entities.hashtags.tag"),
    _c("cashtags", pa.list_(S), "Cashtags without '$'." + _ENT + _RT, "tweet.entities.cashtags.tag", "tweet.note_tweet.entities.cashtags.tag"),
    _c("mentions", pa.list_(S), "Mentioned usernames without '@'." + _ENT + _RT, "tweet.entities.mentions.username", "tweet.note_tweet.entities.mentions.username"),
    _c("mention_user_ids", pa.list_(I64), "Ids of the mentioned accounts, aligned with mentions (null where the API gave none).", "tweet.entities.mentions.id", "tweet.note_tweet.entities.mentions.id"),
    _c("urls", pa.list_(S), "Expanded URLs in the text (display URL's target; for media, the post's media link)." + _ENT + _RT, "tweet.entities.urls.expanded_url", "tweet.note_tweet.entities.urls.expanded_url"),
    _c(
        "url_entities",
        pa.list_(URL_ENTITY),
        "Each URL entity: t.co url, expanded, display and unwound URL, page title and description, HTTP status, media_key for media links.",
        "tweet.entities.urls.url",
        "tweet.entities.urls.display_url",
        "tweet.entities.urls.unwound_url",
        "tweet.entities.urls.title",
        "tweet.entities.urls.description",
        "tweet.entities.urls.status",
        "tweet.entities.urls.media_key",
        "tweet.note_tweet.entities.urls.url",
        "tweet.note_tweet.entities.urls.display_url",
    ),
    _c("annotations", pa.list_(ANNOTATION), "Named entities X detected in the text: type (Person, Place, ...), text, probability 0-1.", "tweet.entities.annotations.type", "tweet.entities.annotations.normalized_text", "tweet.entities.annotations.probability"),
    _c(
        "context_annotations",
        pa.list_(CONTEXT_ANNOTATION),
        "X's topic annotations: domain and entity ids, names, descriptions." + _RT,
        "tweet.context_annotations.domain.id",
        "tweet.context_annotations.domain.name",
        "tweet.context_annotations.domain.description",
        "tweet.context_annotations.entity.id",
        "tweet.context_annotations.entity.name",
        "tweet.context_annotations.entity.description",
    ),
    # --- attachments
    _c("media_keys", pa.list_(S), "attachments.media_keys." + _RT, "tweet.attachments.media_keys"),
    _c(
        "media",
        pa.list_(MEDIA),
        "Attached media joined from includes.media: type (photo, video, animated_gif), URL or preview URL, width and height (pixels), duration (ms), alt text, view count, video variants (bit rate in bits/s).",
        "media.media_key",
        "media.type",
        "media.url",
        "media.preview_image_url",
        "media.width",
        "media.height",
        "media.duration_ms",
        "media.alt_text",
        "media.public_metrics.view_count",
        "media.variants.bit_rate",
        "media.variants.content_type",
        "media.variants.url",
    ),
    _c("poll_id", I64, "Attached poll id (attachments.poll_ids; a post has at most one poll).", "tweet.attachments.poll_ids", "poll.id"),
    _c("poll_options", pa.list_(POLL_OPTION), "Poll options: position (1-based), label, votes.", "poll.options.position", "poll.options.label", "poll.options.votes"),
    _c("poll_duration_minutes", I64, "Poll duration, minutes.", "poll.duration_minutes"),
    _c("poll_end_datetime", TS, "When the poll closes or closed, UTC.", "poll.end_datetime"),
    _c("poll_voting_status", S, "open or closed.", "poll.voting_status"),
    # --- geo
    _c("place_id", S, "Tagged place id (geo.place_id; a hex string, not a number).", "tweet.geo.place_id", "place.id"),
    _c("place_full_name", S, "Tagged place's full name, e.g. 'Manhattan, NY'.", "place.full_name"),
    _c("place_name", S, "Tagged place's short name.", "place.name"),
    _c("place_type", S, "city, admin, country, poi, neighborhood.", "place.place_type"),
    _c("place_country", S, "Tagged place's country name.", "place.country"),
    _c("place_country_code", S, "ISO 3166-1 alpha-2 country code of the tagged place.", "place.country_code"),
    _c("place_bbox", pa.list_(F64), "Place bounding box [west, south, east, north], degrees (GeoJSON bbox).", "place.geo.bbox"),
    _c("longitude", F64, "Exact point longitude, degrees (geo.coordinates, GeoJSON order [lon, lat]).", "tweet.geo.coordinates.coordinates"),
    _c("latitude", F64, "Exact point latitude, degrees.", "tweet.geo.coordinates.coordinates"),
    # --- edits
    _c("edit_history_tweet_ids", pa.list_(I64), "Ids of every version of the post, oldest first; the last is the newest version.", "tweet.edit_history_tweet_ids"),
    _c("edits_remaining", I64, "edit_controls.edits_remaining.", "tweet.edit_controls.edits_remaining"),
    _c("is_edit_eligible", B, "edit_controls.is_edit_eligible.", "tweet.edit_controls.is_edit_eligible"),
    _c("editable_until", TS, "edit_controls.editable_until, UTC.", "tweet.edit_controls.editable_until"),
    # --- withheld
    _c("withheld_copyright", B, "Withheld for a copyright (DMCA) complaint.", "tweet.withheld.copyright"),
    _c("withheld_country_codes", pa.list_(S), "Countries where the post is withheld (ISO alpha-2, or XX/XY).", "tweet.withheld.country_codes"),
    _c("withheld_scope", S, "tweet or user: what the withholding applies to.", "tweet.withheld.scope"),
    # --- the author, as of the page
    _c("author_username", S, "Author's @username (from includes.users).", "user.id", "user.username"),
    _c("author_name", S, "Author's display name.", "user.name"),
    _c("author_created_at", TS, "When the author's account was created, UTC.", "user.created_at"),
    _c("author_description", S, "Author's profile bio.", "user.description"),
    _c("author_location", S, "Author's free-text profile location.", "user.location"),
    _c("author_url", S, "Author's profile URL as given (often t.co).", "user.url"),
    _c("author_expanded_url", S, "Author's profile URL expanded (entities.url.urls).", "user.entities.url.urls.expanded_url", "user.entities.url.urls.url", "user.entities.url.urls.display_url"),
    _c("author_profile_image_url", S, "Author's profile image URL.", "user.profile_image_url"),
    _c("author_pinned_tweet_id", I64, "Id of the author's pinned post.", "user.pinned_tweet_id"),
    _c("author_protected", B, "Author's posts are protected.", "user.protected"),
    _c("author_verified", B, "Author's verified flag (legacy verification before 2023).", "user.verified"),
    _c("author_verified_type", S, "blue, business, government or none.", "user.verified_type"),
    _c("author_followers_count", I64, "Author's followers, as of retrieval.", "user.public_metrics.followers_count"),
    _c("author_following_count", I64, "Accounts the author follows, as of retrieval.", "user.public_metrics.following_count"),
    _c("author_listed_count", I64, "Lists the author is on, as of retrieval.", "user.public_metrics.listed_count"),
    _c("author_tweet_count", I64, "Author's posts, as of retrieval.", "user.public_metrics.tweet_count"),
    _c("author_description_hashtags", pa.list_(S), "Hashtags in the author's bio.", "user.entities.description.hashtags.tag"),
    _c("author_description_cashtags", pa.list_(S), "Cashtags in the author's bio.", "user.entities.description.cashtags.tag"),
    _c("author_description_mentions", pa.list_(S), "Usernames mentioned in the author's bio.", "user.entities.description.mentions.username"),
    _c("author_description_urls", pa.list_(S), "Expanded URLs in the author's bio.", "user.entities.description.urls.expanded_url", "user.entities.description.urls.url", "user.entities.description.urls.display_url"),
    _c("author_withheld_country_codes", pa.list_(S), "Countries where the author's account is withheld.", "user.withheld.country_codes"),
    _c("author_withheld_scope", S, "Scope of the author's withholding.", "user.withheld.scope"),
    # --- filtered stream
    _c("matching_rules", pa.list_(MATCHING_RULE), "Filtered-stream rules the post matched: rule id and tag (null outside the stream).", "page.matching_rules.id", "page.matching_rules.tag"),
    # --- retrieval (of the copy whose counts the row carries)
    _c(
        "retrieved_at",
        TS,
        "When the page holding this copy of the post was retrieved from the API, UTC, ms (twarc2's "
        "__twarc.retrieved_at; the live source records its own). Counts (metrics, followers) are as "
        "of this time: of several copies in the day, the newest copy's. Null when not recorded.",
        "page.__twarc.retrieved_at",
    ),
    _c(
        "request_url",
        S,
        "The API request that returned that copy (__twarc.url: endpoint and query parameters; no credentials).",
        "page.__twarc.url",
    ),
)

#: Key paths present in API pages that are deliberately not columns, with why. They stay in the
#: raw zone (``raw_tweets``), from which any of them can be added later by recomputation.
LEFT_RAW: dict[str, str] = {
    "tweet.entities.*.start": "character offsets into text; only for highlighting, and they refer to the API's text, not the unescaped column",
    "tweet.entities.*.end": "as start",
    "tweet.entities.urls.images": "link-preview thumbnails of the linked page, not content of the post",
    "tweet.note_tweet.entities.*.start": "as tweet.entities.*.start",
    "tweet.note_tweet.entities.*.end": "as tweet.entities.*.start",
    "tweet.geo.coordinates.type": "always 'Point' (GeoJSON); the point itself is longitude/latitude",
    "tweet.attachments.media_source_tweet_id": "the post a re-used media item first appeared in; rarely set",
    "user.entities.description.*.start": "character offsets into the bio",
    "user.entities.description.*.end": "as start",
    "user.entities.url.urls.start": "character offsets into the profile URL",
    "user.entities.url.urls.end": "as start",
    "place.geo.type": "always 'Feature' (GeoJSON); the box itself is place_bbox",
    "place.geo.properties": "always empty in API v2",
    "place.contained_within": "ids of enclosing places, not expanded by the API",
    "page.meta.newest_id": "pagination bookkeeping of one response page",
    "page.meta.oldest_id": "pagination bookkeeping of one response page",
    "page.meta.result_count": "pagination bookkeeping; counted in raw_tweets metadata",
    "page.meta.next_token": "pagination bookkeeping of one response page",
    "page.meta.previous_token": "pagination bookkeeping of one response page",
    "page.errors.*": "partial errors (deleted or suspended referenced objects): counted in raw_tweets and clean_tweets metadata; those about a post's referenced_tweets are its unavailable_referenced_tweets",
    "page.__twarc.version": "the archiving tool's version (twarc2, or tweet_assets for the live source): about the file, not the post",
    # requested since #28 point 5 (public data for an app-only token); kept in raw_tweets, not yet
    # columns: each needs pages.py's PAGE_TYPE, a flatten.py stage and tests/reference.py, being
    # restructured at the same time (#31); none is in the shared recordings yet to test against.
    "tweet.article": "X Articles (long-form title, text, media): nested; raw until a column design for articles (#28 point 5)",
    "tweet.card_uri": "the post's card URI: requested, raw until added as a column (#28 point 5)",
    "tweet.community_id": "the X Community the post was made in: requested, raw until added as a column (#28 point 5)",
    "tweet.display_text_range": "[start, end] code-point offsets of the displayed text; like entity offsets, only for rendering",
    "tweet.media_metadata": "per-media metadata set by the author: requested, raw until added as a column (#28 point 5)",
    "tweet.scopes": "who the post is visible to (followers-only etc.): requested, raw until added as a column (#28 point 5)",
    "tweet.suggested_source_links": "links X suggests as sources: requested, raw until added as a column (#28 point 5)",
    "user.affiliation": "the account's affiliation badge (organisation): requested, raw until added as author columns (#28 point 5)",
    "user.most_recent_tweet_id": "the author's newest post at request time: changes with every post; raw (#28 point 5)",
    "user.parody": "parody-account label: requested, raw until added as an author column (#28 point 5)",
    "user.profile_banner_url": "profile banner image URL: requested, raw until added as an author column (#28 point 5)",
    "user.subscription_type": "the author's X subscription (Basic, Premium, PremiumPlus, None): requested, raw (#28 point 5)",
    "user.verified_followers_count": "followers that are verified: requested, raw until added as an author column (#28 point 5)",
}

COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)

#: The Arrow schema of both ``clean_tweets`` and the published Parquet files (``s3_parquet``).
PUBLISHED_SCHEMA: pa.Schema = pa.schema(
    [pa.field(c.name, c.type, nullable=c.name not in ("id", "created_at")) for c in COLUMNS]
)
#: Columns that may never be null (posts without them are quarantined, not published).
REQUIRED = ("id", "created_at")
#: The partition column of the published table (Hive layout ``dt=YYYY-MM-DD/``; not in the files).
PARTITION_COLUMN = "dt"
#: The published table's default name in every warehouse, and the default Glue/Athena database.
DEFAULT_TABLE = "tweets"
DEFAULT_DATABASE = "default"


def is_left_raw(path: str) -> bool:
    """True if key path ``path`` (module notation) is listed in :data:`LEFT_RAW`, wildcards included."""
    parts = path.split(".")
    for pattern in LEFT_RAW:
        pat = pattern.split(".")
        if len(pat) > len(parts):
            continue
        if all(p == "*" or p == q for p, q in zip(pat, parts)):
            return True
    return False


def mapped_source_paths() -> set[str]:
    """Every key path some column is built from."""
    return {source for column in COLUMNS for source in column.sources}
