"""API v2 response pages → one typed row per post (the ``clean_tweets`` transform). Pure functions.

The reference for what a flattener must do is twarc-csv 0.7.2 (``dataframe_converter.py``) and
twarc's ``expansions.ensure_flattened``; this module does at least that, typed instead of
JSON-encoded:

- the author, the replied-to user, and the retweeted and quoted posts' authors are joined from
  ``includes.users``; media from ``includes.media`` by ``attachments.media_keys``; the poll from
  ``includes.polls``; the place from ``includes.places`` by ``geo.place_id``;
- a retweet carries the retweeted post's text, entities, attachments, context annotations and
  public metrics (the API truncates a retweet's own text), keeps its own author and is flagged
  ``is_retweet``;
- a long post's text and entities come from ``note_tweet``; ``&amp;``, ``&lt;``, ``&gt;`` (the only
  entities the API escapes) are unescaped;
- a missing ``impression_count``/``bookmark_count`` is null, not 0;
- each row carries its page's retrieval record (twarc2's ``__twarc``: ``retrieved_at``, request
  ``url``) and the referenced posts the page's ``errors`` report unavailable;
- within a day: one row per id, and of an edited post only the newest version present (the last id
  of its ``edit_history_tweet_ids``), rows sorted by ``created_at``. Several copies of a post are
  merged field by field (issue #18; twarc-csv keeps the last copy whole instead): each column takes
  the newest copy's non-null value, "newest" meaning the latest ``retrieved_at`` (unknown counts as
  oldest), then the latest landed; counts as of retrieval are taken together from the newest copy
  that has them (:data:`COPY_GROUPS`, :func:`tweet_assets.transform.day_rows.merge_copies`).

Every column is built with Arrow/polars operations over a whole batch of pages (explode, joins
against ``includes``); there is no per-post Python here. Posts that cannot be rows (no or invalid
``id``/``created_at``, outside the partition's day) are quarantined with the reason and their
location, and counted.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterable, Iterator

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from tweet_assets.transform.day_rows import CopyGroup, DayResult, DayRows
from tweet_assets.transform.pages import DecodedBatch, Quarantined, decode_pages
from tweet_assets.transform.tolerant import UNREADABLE
from tweet_assets.schema import COLUMN_NAMES, PUBLISHED_SCHEMA

P = pl.col
I64 = pl.Int64
TS_FORMAT = "%Y-%m-%dT%H:%M:%S%.f%#z"  # RFC 3339 as the API writes it, 2021-04-08T19:34:16.000Z, or with an offset (+02:00, converted to UTC; #27 point 11)

#: The polars schema of the published columns (derived from ``schema.PUBLISHED_SCHEMA``).
POLARS_SCHEMA: pl.Schema = pl.from_arrow(PUBLISHED_SCHEMA.empty_table()).schema

#: Content a retweet takes from the retweeted post (twarc-csv's ``merge_retweets`` rule).
RETWEET_INHERITS = (
    "text",
    "has_note_tweet",
    "hashtags",
    "cashtags",
    "mentions",
    "mention_user_ids",
    "urls",
    "url_entities",
    "annotations",
    "context_annotations",
    "media_keys",
    "_poll_id",
    "retweet_count",
    "reply_count",
    "like_count",
    "quote_count",
    "impression_count",
    "bookmark_count",
)


#: Columns that merge together from one copy of a post (day_rows.CopyGroup): the post's counts with
#: the retrieval they are as of, the author's counts, and a long post's text with its flag (a copy
#: fetched without note_tweet has the truncated text).
COPY_GROUPS: tuple[CopyGroup, ...] = (
    CopyGroup(
        ("retweet_count", "reply_count", "like_count", "quote_count", "impression_count", "bookmark_count", "retrieved_at", "request_url"),
        ("retweet_count", "reply_count", "like_count", "quote_count"),
    ),
    CopyGroup(
        ("author_followers_count", "author_following_count", "author_listed_count", "author_tweet_count"),
        ("author_followers_count", "author_following_count", "author_listed_count", "author_tweet_count"),
    ),
    CopyGroup(("text", "has_note_tweet"), ("has_note_tweet",)),
)


def new_day() -> DayRows:
    """An empty :class:`DayRows` for the published columns, merging copies by :data:`COPY_GROUPS`."""
    return DayRows(POLARS_SCHEMA, copy_groups=COPY_GROUPS)


@dataclass
class FlatBatch:
    """The rows of one batch of pages, per partition day.

    ``frames[day]`` has exactly the published columns (``schema.COLUMNS``, in order, typed per
    :data:`POLARS_SCHEMA`); ``quarantined`` the pages and posts that are not rows (each with its
    ``day``); ``stats_by_day[day]`` counters: ``posts`` (in ``data`` of readable pages),
    ``api_errors``, ``quarantined_pages``, ``invalid_<column>`` for ids (and ``retrieved_at``)
    present but not readable (null in the row), ``coerced:<key path>`` for values of the wrong JSON type that were converted
    (see ``pages.coerce``). The day is None for a one-day batch (:func:`flatten_day`).
    """

    frames: dict
    quarantined: list[Quarantined] = field(default_factory=list)
    stats_by_day: dict = field(default_factory=dict)

    @property
    def frame(self) -> pl.DataFrame:
        """All rows of the batch, whatever their day."""
        frames = list(self.frames.values())
        return pl.concat(frames) if frames else pl.DataFrame(schema=POLARS_SCHEMA)

    @property
    def stats(self) -> Counter:
        """The counters summed over days."""
        total: Counter = Counter()
        for counter in self.stats_by_day.values():
            total.update(counter)
        return total


def _ts(expr: pl.Expr) -> pl.Expr:
    return expr.str.to_datetime(format=TS_FORMAT, time_unit="ms", time_zone="UTC", strict=False)


def _iso_utc(expr: pl.Expr) -> pl.Expr:
    """ISO 8601 → UTC ms: twarc2 writes ``2021-04-08T19:34:32+00:00`` (Python's isoformat), the
    live source ``2021-04-08T19:34:32.123Z``; any offset is converted, none means UTC."""
    text = expr.str.replace(r"Z$", "+00:00")
    return pl.coalesce(
        text.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%:z", time_unit="ms", time_zone="UTC", strict=False),
        text.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", time_unit="ms", time_zone="UTC", strict=False),
    )


def _unescape(expr: pl.Expr) -> pl.Expr:
    # The API escapes only these three; &amp; last so "&amp;lt;" becomes "&lt;", not "<".
    return (
        expr.str.replace_all("&lt;", "<", literal=True)
        .str.replace_all("&gt;", ">", literal=True)
        .str.replace_all("&amp;", "&", literal=True)
    )


def _field_list(expr: pl.Expr, name: str) -> pl.Expr:
    """From a list of structs, the list of one field."""
    return expr.list.eval(pl.element().struct.field(name))


def _ref_id(kind: str) -> pl.Expr:
    """The id of the first ``referenced_tweets`` entry of type ``kind`` (string, or null)."""
    refs = P("referenced_tweets")
    return refs.list.eval(
        pl.element().filter(pl.element().struct.field("type") == kind).struct.field("id")
    ).list.first()


def _struct_array_frame(arr: pa.Array) -> pl.DataFrame:
    """A polars frame with one column per field of an Arrow struct array."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return pl.from_arrow(pa.RecordBatch.from_struct_array(arr))


def _includes(table: pa.Table, name: str, key: str = "id") -> pl.DataFrame:
    """``includes.<name>`` of every page, with ``_page`` (the page's row): joins are per page, so
    a post meets the expansions of its own response (users' metrics as of that page).
    Entries without ``key`` are dropped (nothing can join to them); repeats in a page keep the last.
    """
    lists = pc.struct_field(table.column("includes"), name)  # per chunk: the other includes are not copied
    if isinstance(lists, pa.ChunkedArray):
        lists = lists.combine_chunks()
    frame = _struct_array_frame(pc.list_flatten(lists)).with_columns(
        pl.from_arrow(pc.list_parent_indices(lists)).cast(pl.Int64).alias("_page")
    )
    return frame.filter(P(key).is_not_null()).unique(["_page", key], keep="last", maintain_order=True)


def post_content(tweets: pl.DataFrame) -> list[pl.Expr]:
    """Expressions for the columns a post's own content gives (text, entities, metrics, ...).

    ``tweets`` has the raw Post fields (``pages.TWEET``) as columns; used for ``data`` and for
    ``includes.tweets`` (the retweeted/quoted posts) alike.
    """
    note = P("note_tweet")
    entities = pl.coalesce(note.struct.field("entities"), P("entities"))
    metrics = P("public_metrics")
    url_entities = entities.struct.field("urls")
    return [
        _unescape(pl.coalesce(note.struct.field("text"), P("text"))).alias("text"),
        note.struct.field("text").is_not_null().alias("has_note_tweet"),
        _field_list(entities.struct.field("hashtags"), "tag").alias("hashtags"),
        _field_list(entities.struct.field("cashtags"), "tag").alias("cashtags"),
        _field_list(entities.struct.field("mentions"), "username").alias("mentions"),
        _field_list(entities.struct.field("mentions"), "id").list.eval(pl.element().cast(I64, strict=False)).alias("mention_user_ids"),
        _field_list(url_entities, "expanded_url").alias("urls"),
        url_entities.list.eval(
            pl.struct(
                pl.element().struct.field(n)
                for n in ("url", "expanded_url", "display_url", "unwound_url", "title", "description", "status", "media_key")
            )
        ).alias("url_entities"),
        P("entities").struct.field("annotations").list.eval(
            pl.struct(pl.element().struct.field(n) for n in ("type", "normalized_text", "probability"))
        ).alias("annotations"),
        P("context_annotations").list.eval(
            pl.struct(
                pl.element().struct.field("domain").struct.field("id").alias("domain_id"),
                pl.element().struct.field("domain").struct.field("name").alias("domain_name"),
                pl.element().struct.field("domain").struct.field("description").alias("domain_description"),
                pl.element().struct.field("entity").struct.field("id").alias("entity_id"),
                pl.element().struct.field("entity").struct.field("name").alias("entity_name"),
                pl.element().struct.field("entity").struct.field("description").alias("entity_description"),
            )
        ).alias("context_annotations"),
        P("attachments").struct.field("media_keys").alias("media_keys"),
        P("attachments").struct.field("poll_ids").list.first().alias("_poll_id"),
        *(metrics.struct.field(m).alias(m) for m in ("retweet_count", "reply_count", "like_count", "quote_count", "impression_count", "bookmark_count")),
    ]


def _users(table: pa.Table) -> pl.DataFrame:
    users = _includes(table, "users")
    desc = P("entities").struct.field("description")
    return (
        users.select(
            "_page",
            P("id").alias("_uid"),
            P("username").alias("author_username"),
            P("name").alias("author_name"),
            _ts(P("created_at")).alias("author_created_at"),
            P("description").alias("author_description"),
            P("location").alias("author_location"),
            P("url").alias("author_url"),
            _field_list(P("entities").struct.field("url").struct.field("urls"), "expanded_url").list.first().alias("author_expanded_url"),
            P("profile_image_url").alias("author_profile_image_url"),
            P("pinned_tweet_id").cast(I64, strict=False).alias("author_pinned_tweet_id"),
            P("protected").alias("author_protected"),
            P("verified").alias("author_verified"),
            P("verified_type").alias("author_verified_type"),
            *(
                P("public_metrics").struct.field(m).alias(f"author_{m}")
                for m in ("followers_count", "following_count", "listed_count", "tweet_count")
            ),
            _field_list(desc.struct.field("hashtags"), "tag").alias("author_description_hashtags"),
            _field_list(desc.struct.field("cashtags"), "tag").alias("author_description_cashtags"),
            _field_list(desc.struct.field("mentions"), "username").alias("author_description_mentions"),
            _field_list(desc.struct.field("urls"), "expanded_url").alias("author_description_urls"),
            P("withheld").struct.field("country_codes").alias("author_withheld_country_codes"),
            P("withheld").struct.field("scope").alias("author_withheld_scope"),
        )
    )


def _media(table: pa.Table) -> pl.DataFrame:
    media = _includes(table, "media", key="media_key")
    return (
        media.with_columns(P("public_metrics").struct.field("view_count").alias("view_count"))
        .drop("public_metrics")
    )


Frame = pl.DataFrame | pl.LazyFrame  # the stages take and give either (flatten_batch: eager)


def flatten_batch(batch: DecodedBatch, window: tuple[datetime, datetime] | None = None) -> FlatBatch:
    """Flatten a decoded batch of pages into published rows, per partition day.

    The stages, top to bottom (each a frame → frame function, see their docstrings):
    :func:`posts` → :func:`quarantine` → :func:`own_fields` → :func:`referenced_posts` →
    :func:`users` → :func:`attachments` → :func:`retrieval` → :func:`ids` → :func:`by_day`.
    The stages run eagerly: one lazy plan from :func:`own_fields` to :func:`ids`, collected once,
    took 2.3× the CPU time per 200-page batch with polars 2.1 (bench/README.md); they accept a
    ``pl.LazyFrame`` all the same (tests/transform/test_flatten_stages.py).

    Args:
        batch: pages as decoded by :func:`tweet_assets.transform.pages.decode_pages`. When its pages carry
            days (``batch.days``), each post must lie in its page's UTC day ``[00:00Z, next 00:00Z)``.
        window: for a one-day batch (no days), the partition's UTC ``[start, end)``. Posts
            outside the day or window are quarantined (``outside_partition``). None keeps all.

    Returns:
        A :class:`FlatBatch`; per day, rows + quarantined posts == ``stats_by_day[day]['posts']``.
        Not yet deduplicated across batches: see :func:`finalize_days`.
    """
    table = batch.table
    stats = page_counts(batch)
    rows = posts(table, batch.days)
    if rows.height == 0:
        return FlatBatch({}, list(batch.quarantined), stats)
    rows, bad = quarantine(rows, window, by_page_day=bool(batch.days))
    quarantined = [*batch.quarantined, *quarantine_records(bad, batch.locations)]
    frame = own_fields(rows)
    del rows
    frame = referenced_posts(frame, table)
    frame = users(frame, table)
    frame = attachments(frame, table)
    frame = retrieval(frame, table)
    frame = ids(frame)
    count_invalid(frame, stats)
    return FlatBatch(by_day(frame, by_page_day=bool(batch.days)), quarantined, stats)


def page_counts(batch: DecodedBatch) -> dict:
    """``{day: Counter}`` of what the pages themselves say: ``posts`` (entries of ``data``),
    ``api_errors`` (entries of ``errors``), ``quarantined_pages``, ``coerced:<key path>``."""
    table = batch.table
    days = batch.days if batch.days else [None] * table.num_rows
    stats: dict = {}
    for q in batch.quarantined:
        stats.setdefault(q.day, Counter())["quarantined_pages"] += 1
    for day, coerced in batch.coerced.items():
        for path, count in coerced.items():
            stats.setdefault(day, Counter())[f"coerced:{path}"] += count
    errors = pc.list_value_length(table.column("errors")).to_pylist()  # per chunk: no copy of the posts
    n_posts = pc.list_value_length(table.column("data")).to_pylist()
    for day, n_errors, n in zip(days, errors, n_posts):  # per page
        counter = stats.setdefault(day, Counter())
        counter["api_errors"] += n_errors or 0
        counter["posts"] += n or 0
    return stats


def posts(table: pa.Table, days: list | None = None) -> pl.DataFrame:
    """Stage *posts*: one row per entry of the pages' ``data``.

    Args:
        table: pages of :data:`tweet_assets.transform.pages.PAGE_SCHEMA`.
        days: each page's partition day (``YYYY-MM-DD``), or empty/None for a one-day batch.

    Returns:
        The raw Post fields (``pages.TWEET``: strings as the API sends them) plus ``_page`` (Int64:
        the page's row in ``table``), ``_pos`` (Int64: index in the page's ``data``), ``_rules``
        (the page's ``matching_rules``), ``_day`` (String, null for a one-day batch) and ``_row``
        (UInt32: the post's number in the batch).
    """
    data = table.column("data").combine_chunks()
    page_of_post = pl.from_arrow(pc.list_parent_indices(data)).cast(pl.Int64)
    raw = _struct_array_frame(pc.list_flatten(data))
    offsets = pl.from_arrow(data.offsets).cast(pl.Int64)
    position = pl.int_range(0, raw.height, eager=True) - offsets.gather(page_of_post)
    rules = table.column("matching_rules").combine_chunks().take(page_of_post.to_arrow())
    page_days = pl.Series("_day", days if days else [None] * table.num_rows, dtype=pl.String).gather(page_of_post)
    return raw.with_columns(
        page_of_post.alias("_page"),
        position.alias("_pos"),
        pl.from_arrow(rules).alias("_rules"),
        page_days,
    ).with_row_index("_row")


def quarantine(
    rows: pl.DataFrame, window: tuple[datetime, datetime] | None = None, by_page_day: bool = False
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Stage *quarantine*: split :func:`posts`' rows into those that can be rows and those that cannot.

    Adds ``_id`` (Int64) and ``_created_at`` (Datetime ms UTC, RFC 3339 as the API writes it). A post
    is set aside with ``_reason`` ``missing_id``, ``invalid_id``, ``missing_created_at``,
    ``invalid_created_at`` or ``outside_partition`` (``created_at`` outside ``window``'s UTC
    ``[start, end)`` or, ``by_page_day``, outside its page's ``_day``).

    Returns:
        ``(kept, set_aside)``: the kept rows without ``_reason``, the others with it.
    """
    rows = rows.with_columns(
        # a post id is 1-19 ASCII digits (X API v2 spec, TweetId pattern ^[0-9]{1,19}$): "-1" or "+7" is invalid
        pl.when(P("id").str.contains(r"^[0-9]{1,19}$")).then(P("id").cast(I64, strict=False)).alias("_id"),
        _ts(P("created_at")).alias("_created_at"),
    )
    reason = (
        pl.when(P("id").str.starts_with(UNREADABLE))  # a post the tolerant reader could not read (transform/tolerant.py)
        .then(pl.lit("unreadable_post"))
        .when(P("id").is_null())
        .then(pl.lit("missing_id"))
        .when(P("_id").is_null())
        .then(pl.lit("invalid_id"))
        .when(P("created_at").is_null())
        .then(pl.lit("missing_created_at"))
        .when(P("_created_at").is_null())
        .then(pl.lit("invalid_created_at"))
    )
    if window is not None:
        start, end = (pl.lit(t).cast(pl.Datetime("ms", "UTC")) for t in window)
        reason = reason.when((P("_created_at") < start) | (P("_created_at") >= end)).then(pl.lit("outside_partition"))
    if by_page_day:
        day_start = P("_day").str.to_datetime("%Y-%m-%d", time_unit="ms", time_zone="UTC")
        outside = (P("_created_at") < day_start) | (P("_created_at") >= day_start.dt.offset_by("1d"))
        reason = reason.when(P("_day").is_not_null() & outside).then(pl.lit("outside_partition"))
    reasons = rows.select(reason.otherwise(None).alias("_reason")).to_series()
    if reasons.null_count() == reasons.len():  # the usual batch: nothing set aside, nothing copied
        return rows, rows.clear().with_columns(pl.lit(None, pl.String).alias("_reason"))
    flagged = rows.with_columns(reasons)
    return flagged.filter(P("_reason").is_null()).drop("_reason"), flagged.filter(P("_reason").is_not_null())


def quarantine_records(set_aside: pl.DataFrame, locations: list[str]) -> list[Quarantined]:
    """:class:`Quarantined` records for :func:`quarantine`'s set-aside posts, located
    ``<page location>#<index in data>``."""
    return [
        Quarantined(
            f"{locations[row['_page']]}#{row['_pos']}",
            row["_reason"],
            f"id={row['id']!r} created_at={row['created_at']!r}",
            row["_day"],
        )
        for row in set_aside.select("_page", "_pos", "_reason", "id", "created_at", "_day").iter_rows(named=True)
    ]


def own_fields(rows: Frame) -> Frame:
    """Stage *own fields*: the post's own columns from :func:`quarantine`'s kept rows.

    Returns ``_row``, ``_page``, ``_day``, the published columns a post gives by itself (``id``,
    ``created_at``, ``conversation_id``, ``author_id``, ``lang``, geo, edit, withheld,
    ``matching_rules`` and :func:`post_content`'s), and the ids still as strings for later stages:
    ``_author_id``, ``_retweeted_id``, ``_quoted_id``, ``_replied_to_id``, ``_in_reply_to_user_id``,
    ``_referenced_tweets`` (the raw list).
    """
    return rows.select(
        "_row",
        "_page",
        "_day",
        P("_id").alias("id"),
        P("_created_at").alias("created_at"),
        P("conversation_id").cast(I64, strict=False),
        P("author_id").cast(I64, strict=False).alias("author_id"),
        P("author_id").alias("_author_id"),
        P("lang"),
        P("source"),
        P("reply_settings"),
        P("possibly_sensitive"),
        _ref_id("retweeted").alias("_retweeted_id"),
        _ref_id("quoted").alias("_quoted_id"),
        _ref_id("replied_to").alias("_replied_to_id"),
        P("in_reply_to_user_id").alias("_in_reply_to_user_id"),
        P("referenced_tweets").alias("_referenced_tweets"),
        P("geo").struct.field("place_id").alias("place_id"),
        P("geo").struct.field("coordinates").struct.field("coordinates").list.get(0, null_on_oob=True).alias("longitude"),
        P("geo").struct.field("coordinates").struct.field("coordinates").list.get(1, null_on_oob=True).alias("latitude"),
        P("edit_history_tweet_ids").list.eval(pl.element().cast(I64, strict=False)).alias("edit_history_tweet_ids"),
        P("edit_controls").struct.field("edits_remaining").alias("edits_remaining"),
        P("edit_controls").struct.field("is_edit_eligible").alias("is_edit_eligible"),
        _ts(P("edit_controls").struct.field("editable_until")).alias("editable_until"),
        P("withheld").struct.field("copyright").alias("withheld_copyright"),
        P("withheld").struct.field("country_codes").alias("withheld_country_codes"),
        P("withheld").struct.field("scope").alias("withheld_scope"),
        P("_rules")
        .list.eval(pl.struct(pl.element().struct.field("id").cast(I64, strict=False), pl.element().struct.field("tag")))
        .alias("matching_rules"),
        *post_content(rows),
    )


def referenced_posts(frame: Frame, table: pa.Table) -> Frame:
    """Stage *referenced posts*: joins :func:`own_fields`' rows to their page's ``includes.tweets``.

    A retweet takes the retweeted post's :data:`RETWEET_INHERITS` columns (when the page includes
    it) and ``is_retweet``; adds ``_retweeted_user_id`` and ``_quoted_user_id`` (the referenced posts'
    authors, strings) and ``unavailable_referenced_tweets`` (the ``referenced_tweets`` the page's
    ``errors`` report unavailable, see :func:`_unavailable_references`); drops ``_referenced_tweets``.
    """
    originals = _includes(table, "tweets")
    originals = originals.select("_page", P("id").alias("_ref_id"), P("author_id").alias("_ref_author_id"), *post_content(originals))
    lazy = isinstance(frame, pl.LazyFrame)
    if lazy:
        originals = originals.lazy()
    frame = frame.join(
        originals.rename({c: f"{c}__rt" for c in RETWEET_INHERITS}).rename({"_ref_author_id": "_retweeted_user_id"}),
        left_on=["_page", "_retweeted_id"],
        right_on=["_page", "_ref_id"],
        how="left",
        maintain_order="left",
    )
    found = P("_retweeted_user_id").is_not_null() | P("text__rt").is_not_null()
    frame = frame.with_columns(
        P("_retweeted_id").is_not_null().alias("is_retweet"),
        *(pl.when(found).then(P(f"{c}__rt")).otherwise(P(c)).alias(c) for c in RETWEET_INHERITS),
    ).drop([f"{c}__rt" for c in RETWEET_INHERITS])
    frame = frame.join(
        originals.select("_page", "_ref_id", P("_ref_author_id").alias("_quoted_user_id")),
        left_on=["_page", "_quoted_id"],
        right_on=["_page", "_ref_id"],
        how="left",
        maintain_order="left",
    )
    unavailable = _unavailable_references(table)
    if unavailable is not None:
        refs = frame.select("_row", "_page", "_referenced_tweets")
        if lazy:
            unavailable = unavailable.lazy()
        frame = frame.join(_unavailable_by_row(refs, unavailable), on="_row", how="left", maintain_order="left")
    return frame.drop("_referenced_tweets")


def users(frame: Frame, table: pa.Table) -> Frame:
    """Stage *users*: the author's profile (``author_*`` columns) and the replied-to, retweeted and
    quoted users' ``*_username``, joined from the page's ``includes.users`` (by ``_author_id``,
    ``_in_reply_to_user_id``, ``_retweeted_user_id``, ``_quoted_user_id``)."""
    profiles = _users(table)
    usernames = profiles.select("_page", "_uid", "author_username")
    if isinstance(frame, pl.LazyFrame):
        profiles, usernames = profiles.lazy(), usernames.lazy()
    frame = frame.join(profiles, left_on=["_page", "_author_id"], right_on=["_page", "_uid"], how="left", maintain_order="left")
    for prefix, id_col in (("in_reply_to", "_in_reply_to_user_id"), ("retweeted", "_retweeted_user_id"), ("quoted", "_quoted_user_id")):
        frame = frame.join(
            usernames.rename({"author_username": f"{prefix}_username"}),
            left_on=["_page", id_col],
            right_on=["_page", "_uid"],
            how="left",
            maintain_order="left",
        )
    return frame


def attachments(frame: Frame, table: pa.Table) -> Frame:
    """Stage *attachments*: ``media`` (a list of structs, in ``media_keys`` order, from
    ``includes.media``), the poll's ``poll_*`` columns (by ``_poll_id``, from ``includes.polls``)
    and the place's ``place_*`` columns (by ``place_id``, from ``includes.places``)."""
    lazy = isinstance(frame, pl.LazyFrame)
    media = _media(table)
    if lazy:
        media = media.lazy()
    exploded = frame.select("_row", "_page", "media_keys").explode("media_keys").filter(P("media_keys").is_not_null())
    attached = (
        exploded.join(media, left_on=["_page", "media_keys"], right_on=["_page", "media_key"], how="left", maintain_order="left")
        .select(
            "_row",
            pl.struct(
                P("media_keys").alias("media_key"),
                *(P(n) for n in ("type", "url", "preview_image_url", "width", "height", "duration_ms", "alt_text", "view_count", "variants")),
            ).alias("_media"),
        )
        .group_by("_row", maintain_order=True)
        .agg(P("_media").alias("media"))
    )
    frame = frame.join(attached, on="_row", how="left", maintain_order="left")

    polls = _includes(table, "polls")
    if polls.height:
        polls = polls.select(
            "_page",
            P("id").alias("_poll_id"),
            P("options").alias("poll_options"),
            P("duration_minutes").alias("poll_duration_minutes"),
            _ts(P("end_datetime")).alias("poll_end_datetime"),
            P("voting_status").alias("poll_voting_status"),
        )
        frame = frame.join(polls.lazy() if lazy else polls, on=["_page", "_poll_id"], how="left", maintain_order="left")

    places = _includes(table, "places")
    if places.height:
        places = places.select(
            "_page",
            P("id").alias("place_id"),
            P("full_name").alias("place_full_name"),
            P("name").alias("place_name"),
            P("place_type"),
            P("country").alias("place_country"),
            P("country_code").alias("place_country_code"),
            P("geo").struct.field("bbox").alias("place_bbox"),
        )
        frame = frame.join(places.lazy() if lazy else places, on=["_page", "place_id"], how="left", maintain_order="left")
    return frame


def retrieval(frame: Frame, table: pa.Table) -> Frame:
    """Stage *retrieval*: the page's retrieval record (twarc2's ``__twarc``): ``request_url``,
    ``retrieved_at`` (ISO 8601 → Datetime ms UTC, see :func:`_iso_utc`) and ``_retrieved_at`` (the
    string, to count unreadable ones)."""
    record = _struct_array_frame(table.column("__twarc")).select(
        P("url").alias("request_url"), _iso_utc(P("retrieved_at")).alias("retrieved_at"), P("retrieved_at").alias("_retrieved_at")
    )
    record = record.with_row_index("_page").with_columns(P("_page").cast(pl.Int64))
    return frame.join(record.lazy() if isinstance(frame, pl.LazyFrame) else record, on="_page", how="left", maintain_order="left")


#: The referenced ids, arriving as strings; :func:`ids` casts ``_<name>`` to ``<name>`` (Int64).
ID_COLUMNS = ("retweeted_id", "retweeted_user_id", "quoted_id", "quoted_user_id", "replied_to_id", "in_reply_to_user_id", "poll_id")


def ids(frame: Frame) -> Frame:
    """Stage *ids*: ``<name>`` (Int64) from each ``_<name>`` string of :data:`ID_COLUMNS`; one that is
    not a number becomes null (counted by :func:`count_invalid`)."""
    return frame.with_columns(P(f"_{name}").cast(I64, strict=False).alias(name) for name in ID_COLUMNS)


def count_invalid(frame: pl.DataFrame, stats: dict) -> None:
    """Count, per ``_day`` into ``stats``, ids (and ``retrieved_at``) present but unreadable:
    ``invalid_<column>`` where ``_<column>`` is set and ``<column>`` null."""
    for src, dst in [("_author_id", "author_id"), *((f"_{name}", name) for name in ID_COLUMNS), ("_retrieved_at", "retrieved_at")]:
        invalid = frame.filter(P(src).is_not_null() & P(dst).is_null()).get_column("_day").value_counts()
        for day, count in invalid.iter_rows():
            stats.setdefault(day, Counter())[f"invalid_{dst}"] += count


def by_day(frame: pl.DataFrame, by_page_day: bool = False) -> dict:
    """Stage *by day*: ``{day: rows}``, each :func:`conform` ed to the published columns; one
    ``{None: rows}`` for a one-day batch. Conformed once, then split (a backfill batch holds
    hundreds of small days)."""
    if not by_page_day:
        return {None: conform(frame)}
    conformed = conform(frame).with_columns(frame.get_column("_day"))
    return {key[0]: part for key, part in conformed.partition_by("_day", as_dict=True, maintain_order=True, include_key=False).items()}


def _unavailable_references(table: pa.Table) -> pl.DataFrame | None:
    """The page's ``errors`` entries about posts (``resource_type`` ``tweet``, a ``resource_id``):
    ``_page``, ``resource_id``, ``title``, ``detail``, first per page and id (X API v2 "Partial
    errors": ``Not Found Error`` for a deleted post, ``Authorization Error`` for a protected one).
    None when no page of the batch has such an entry.
    """
    errors = table.column("errors").combine_chunks()
    if pc.sum(pc.list_value_length(errors)).as_py() in (None, 0):
        return None
    entries = _struct_array_frame(pc.list_flatten(errors)).with_columns(
        pl.from_arrow(pc.list_parent_indices(errors)).cast(pl.Int64).alias("_page")
    )
    entries = entries.filter((P("resource_type") == "tweet") & P("resource_id").is_not_null())
    if entries.height == 0:
        return None
    return entries.unique(["_page", "resource_id"], keep="first", maintain_order=True).select("_page", "resource_id", "title", "detail")


def _unavailable_by_row(refs: Frame, entries: Frame) -> Frame:
    """``_row`` → ``unavailable_referenced_tweets`` (id Int64, type, title, detail) for the posts
    whose ``_referenced_tweets`` ids ``entries`` (:func:`_unavailable_references`) name."""
    refs = (
        refs.filter(P("_referenced_tweets").list.len() > 0)
        .explode("_referenced_tweets")
        .unnest("_referenced_tweets")
    )
    return (
        refs.join(entries, left_on=["_page", "id"], right_on=["_page", "resource_id"], how="inner", maintain_order="left")
        .group_by("_row", maintain_order=True)
        .agg(pl.struct(P("id").cast(I64, strict=False), P("type"), P("title"), P("detail")).alias("unavailable_referenced_tweets"))
    )


#: Published columns no stage builds, with the reason (tests/transform/test_columns.py fails on a
#: schema column that is neither built nor listed here).
ALWAYS_NULL: dict[str, str] = {}


def conform(frame: pl.DataFrame) -> pl.DataFrame:
    """Select the published columns in order, cast to :data:`POLARS_SCHEMA`; absent ones are null
    (a batch without polls or places has no ``poll_*``/``place_*`` columns; a column no stage ever
    builds is caught by tests/transform/test_columns.py, see :data:`ALWAYS_NULL`)."""
    return frame.select(
        (P(name) if name in frame.columns else pl.lit(None)).cast(POLARS_SCHEMA[name]).alias(name)
        for name in COLUMN_NAMES
    )


#: Pages decoded and flattened together: bounds memory (a page is ~0.1-1 MB of JSON) while keeping
#: the per-batch overhead small. 24 MB, under glibc's 32 MB ceiling for serving a block from the
#: heap instead of a fresh mmap: a batch's joined bytes then reuse the last batch's memory instead
#: of faulting in new pages (64 MB batches: 350k minor faults and 1.0-1.1 GB peak for the real 100k
#: posts; 24 MB: 225k and 0.90-0.96 GB, the same CPU seconds; bench/README.md).
BATCH_PAGES = 200
BATCH_BYTES = 24 << 20


def iter_days(
    pages: Iterable[tuple[str | None, str, bytes]],
    window: tuple[datetime, datetime] | None = None,
    batch_pages: int = BATCH_PAGES,
    batch_bytes: int = BATCH_BYTES,
    progress=None,
) -> Iterator[tuple[str | None, "DayResult"]]:
    """Flatten landed pages of one or many days, batch by batch, yielding each day's rows as
    soon as the day is complete. Memory is bounded whatever the range or the size of a day: a
    batch of pages, and per open day its index and at most ``day_rows.SPILL_AFTER_BYTES`` of
    rows (the rest spilled to local disk, see :mod:`tweet_assets.transform.day_rows`).

    A batch may hold pages of several days (a backfill of small days is flattened in few
    batches); every post must lie in its page's day.

    Args:
        pages: ``(day, location, page bytes)`` in landing order, grouped by day; ``day`` is the
            partition key, or None for pages of one day checked against ``window``.
        window: with ``day`` None, the UTC ``[start, end)`` posts must lie in.
        batch_pages, batch_bytes: a batch is closed at whichever comes first.
        progress: optional callable ``(pages_done, rows_so_far)`` called after each batch.

    Yields:
        ``(day, DayResult)`` for every day that had pages, in order.

    Raises:
        ValueError: the pages are not grouped by day (a finished day came back).
    """
    open_days: dict = {}  # day → DayRows, for days met whose rows are not yet yielded, in order
    done: set = set()
    lines: list[bytes] = []
    locations: list[str] = []
    days: list = []
    size = pages_done = rows = 0

    def flush() -> None:
        nonlocal size, pages_done, rows
        if not lines:
            return
        flat = flatten_batch(decode_pages(lines, locations, days if any(d is not None for d in days) else None), window)
        _add(flat, open_days)
        pages_done += len(lines)
        rows += sum(f.height for f in flat.frames.values())
        lines.clear()
        locations.clear()
        days.clear()
        size = 0
        if progress is not None:
            progress(pages_done, rows)

    def finished(keep_last: bool) -> Iterator[tuple]:
        for day in list(open_days)[:-1] if keep_last else list(open_days):
            yield day, open_days.pop(day).finish()
            done.add(day)

    for day, location, line in pages:
        if day not in open_days:
            if day in done:
                raise ValueError(f"pages of {day} came after other days' pages: group pages by day")
            open_days[day] = new_day()
        lines.append(line)
        locations.append(location)
        days.append(day)
        size += len(line)
        if len(lines) >= batch_pages or size >= batch_bytes:
            flush()
            yield from finished(keep_last=True)
    flush()
    yield from finished(keep_last=False)


def _add(flat: FlatBatch, open_days: dict) -> None:
    """Hand a flattened batch's rows, quarantine and counters to each day's :class:`DayRows`."""
    for day in {*flat.frames, *flat.stats_by_day, *(q.day for q in flat.quarantined)}:
        rows = open_days.get(day)
        if rows is None:
            rows = open_days[day] = new_day()
        if day in flat.frames:
            rows.add(flat.frames[day])
        rows.stats.update(flat.stats_by_day.get(day, {}))
    for q in flat.quarantined:
        open_days[q.day].quarantined.append(q)


def flatten_days(
    pages: Iterable[tuple[str | None, str, bytes]],
    window: tuple[datetime, datetime] | None = None,
    batch_pages: int = BATCH_PAGES,
    batch_bytes: int = BATCH_BYTES,
    progress=None,
) -> dict:
    """``{day: DayResult}``: :func:`iter_days` collected (for callers that want every day at once)."""
    return dict(iter_days(pages, window, batch_pages, batch_bytes, progress))


def flatten_day(
    pages: Iterable[tuple[str, bytes]],
    window: tuple[datetime, datetime] | None = None,
    batch_pages: int = BATCH_PAGES,
    batch_bytes: int = BATCH_BYTES,
    progress=None,
) -> "DayResult":
    """Flatten one day's landed pages (``(location, page bytes)``) into its rows; posts outside
    ``window`` (the day's UTC ``[start, end)``) are quarantined. See :func:`flatten_days`.
    """
    result = flatten_days(((None, location, line) for location, line in pages), window, batch_pages, batch_bytes, progress)
    return result.get(None) or finalize_days([], [None])[None]


def finalize_days(batches: Iterable[FlatBatch], days: list) -> dict:
    """``{day: DayResult}`` for ``days`` from flattened batches (a day without rows is empty)."""
    open_days: dict = {day: new_day() for day in days}
    for flat in batches:
        _add(flat, open_days)
    return {day: open_days[day].finish() for day in days}


def finalize_day(batches: Iterable[FlatBatch]) -> DayResult:
    """Combine one day's flattened batches: one row per id (copies merged), keep an edited post's
    newest version, sort by ``created_at`` then ``id`` (see :mod:`tweet_assets.transform.day_rows`)."""
    rows = new_day()
    for flat in batches:
        for frame in flat.frames.values():
            rows.add(frame)
        rows.stats.update(flat.stats)
        rows.quarantined.extend(flat.quarantined)
    return rows.finish()
