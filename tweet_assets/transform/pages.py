"""X API v2 response pages: their Arrow shape, and decoding JSON lines into Arrow with a quarantine.

A *page* is one whole API v2 response body, ``{"data": [...], "includes": {...}, "meta": {...},
"errors": [...]}`` (filtered-stream messages carry one post in ``data`` and ``matching_rules``).
The shapes below follow the X API v2 object model (docs.x.com, "Data dictionary": Post, User, Media,
Poll, Place objects) with ids as the API sends them: strings.

Decoding is bulk first: a batch of pages is parsed by ``pyarrow.json`` straight into
:data:`PAGE_TYPE` columns (no per-post Python). Only when that fails (a broken line, a post where a
field has an unexpected JSON type, a stream message whose ``data`` is an object) does the batch fall
back to per-page ``orjson`` parsing, and only a page that still does not fit is coerced field by
field. Anything that cannot be read is quarantined with a reason and its location, never dropped.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from tweet_assets.transform.tolerant import read_page
from tweet_assets.x.vocabulary import POST_NAME_OF, line_in_tweet_names, to_tweet_names

S = pa.string()
I64 = pa.int64()
F64 = pa.float64()
B = pa.bool_()


def _struct(**fields: pa.DataType) -> pa.StructType:
    return pa.struct([pa.field(name, typ) for name, typ in fields.items()])


def _tag_list() -> pa.ListType:
    return pa.list_(_struct(start=I64, end=I64, tag=S))


URL_ENTITY = _struct(
    start=I64,
    end=I64,
    url=S,
    expanded_url=S,
    display_url=S,
    unwound_url=S,
    title=S,
    description=S,
    status=I64,
    media_key=S,
    images=pa.list_(_struct(url=S, width=I64, height=I64)),
)
MENTION_ENTITY = _struct(start=I64, end=I64, username=S, id=S)
ANNOTATION_ENTITY = _struct(start=I64, end=I64, probability=F64, type=S, normalized_text=S)

#: ``entities`` of a post (and of ``note_tweet``).
ENTITIES = _struct(
    annotations=pa.list_(ANNOTATION_ENTITY),
    cashtags=_tag_list(),
    hashtags=_tag_list(),
    mentions=pa.list_(MENTION_ENTITY),
    urls=pa.list_(URL_ENTITY),
)

CONTEXT_ANNOTATION = _struct(
    domain=_struct(id=S, name=S, description=S),
    entity=_struct(id=S, name=S, description=S),
)

#: The Post object (``data[]`` and ``includes.tweets[]``).
TWEET = _struct(
    id=S,
    text=S,
    created_at=S,
    author_id=S,
    conversation_id=S,
    in_reply_to_user_id=S,
    lang=S,
    source=S,
    reply_settings=S,
    possibly_sensitive=B,
    referenced_tweets=pa.list_(_struct(type=S, id=S)),
    public_metrics=_struct(
        retweet_count=I64,
        reply_count=I64,
        like_count=I64,
        quote_count=I64,
        impression_count=I64,
        bookmark_count=I64,
    ),
    entities=ENTITIES,
    context_annotations=pa.list_(CONTEXT_ANNOTATION),
    attachments=_struct(media_keys=pa.list_(S), poll_ids=pa.list_(S)),
    geo=_struct(place_id=S, coordinates=_struct(type=S, coordinates=pa.list_(F64))),
    edit_history_tweet_ids=pa.list_(S),
    edit_controls=_struct(edits_remaining=I64, is_edit_eligible=B, editable_until=S),
    withheld=_struct(copyright=B, country_codes=pa.list_(S), scope=S),
    note_tweet=_struct(text=S, entities=ENTITIES),
)

#: The User object (``includes.users[]``).
USER = _struct(
    id=S,
    name=S,
    username=S,
    created_at=S,
    description=S,
    location=S,
    url=S,
    pinned_tweet_id=S,
    profile_image_url=S,
    protected=B,
    verified=B,
    verified_type=S,
    public_metrics=_struct(followers_count=I64, following_count=I64, tweet_count=I64, listed_count=I64),
    entities=_struct(
        url=_struct(urls=pa.list_(URL_ENTITY)),
        description=_struct(
            cashtags=_tag_list(), hashtags=_tag_list(), mentions=pa.list_(MENTION_ENTITY), urls=pa.list_(URL_ENTITY)
        ),
    ),
    withheld=_struct(country_codes=pa.list_(S), scope=S),
)

#: The Media object (``includes.media[]``).
MEDIA = _struct(
    media_key=S,
    type=S,
    url=S,
    preview_image_url=S,
    width=I64,
    height=I64,
    duration_ms=I64,
    alt_text=S,
    public_metrics=_struct(view_count=I64),
    variants=pa.list_(_struct(bit_rate=I64, content_type=S, url=S)),
)

#: The Place object (``includes.places[]``).
PLACE = _struct(
    id=S,
    full_name=S,
    name=S,
    country=S,
    country_code=S,
    place_type=S,
    geo=_struct(type=S, bbox=pa.list_(F64)),
    contained_within=pa.list_(S),
)

#: The Poll object (``includes.polls[]``).
POLL = _struct(
    id=S,
    options=pa.list_(_struct(position=I64, label=S, votes=I64)),
    duration_minutes=I64,
    end_datetime=S,
    voting_status=S,
)

#: One entry of a page's ``errors`` (partial errors: suspended authors, deleted referenced posts).
API_ERROR = _struct(
    value=S, detail=S, title=S, resource_type=S, parameter=S, resource_id=S, type=S, section=S
)

#: The retrieval record twarc2 adds to every page it archives (``"__twarc"``), and the live source
#: adds the same way: the request URL, the tool's version, and when the page was retrieved
#: (ISO 8601 with a UTC offset, e.g. ``2021-04-08T19:34:32+00:00`` or ``...T19:34:32.123Z``).
RETRIEVAL = _struct(url=S, version=S, retrieved_at=S)

#: One whole response page. ``data`` is always a list here: a stream message's single object is
#: wrapped on the fallback path.
PAGE_TYPE = _struct(
    data=pa.list_(TWEET),
    includes=_struct(
        users=pa.list_(USER),
        tweets=pa.list_(TWEET),
        media=pa.list_(MEDIA),
        places=pa.list_(PLACE),
        polls=pa.list_(POLL),
    ),
    errors=pa.list_(API_ERROR),
    meta=_struct(result_count=I64, newest_id=S, oldest_id=S, next_token=S, previous_token=S),
    matching_rules=pa.list_(_struct(id=S, tag=S)),
    __twarc=RETRIEVAL,
)
PAGE_SCHEMA = pa.schema(list(PAGE_TYPE))


def _with_post_names(typ: pa.DataType) -> pa.DataType:
    """``typ`` with, beside every field that has a 2.167 name (:data:`~tweet_assets.x.vocabulary.POST_NAME_OF`),
    a field of that name and the same type, at every level."""
    if pa.types.is_struct(typ):
        fields = [pa.field(f.name, _with_post_names(f.type)) for f in typ]
        return pa.struct(fields + [pa.field(POST_NAME_OF[f.name], f.type) for f in fields if f.name in POST_NAME_OF])
    if pa.types.is_list(typ):
        return pa.list_(_with_post_names(typ.value_type))
    return typ


#: What the bulk decoder reads: :data:`PAGE_TYPE` plus spec 2.167's post names beside the tweet
#: names (``referenced_posts``, ``note_post``, ``includes.posts``, ``public_metrics.repost_count``,
#: ...), so a page in either vocabulary is read in one pass with no scan of its bytes;
#: :func:`_in_tweet_names` folds them back into :data:`PAGE_SCHEMA`.
DECODE_SCHEMA = pa.schema(list(_with_post_names(PAGE_TYPE)))


class _BothListsInOnePage(Exception):
    """A page carries ``includes.tweets`` and ``includes.posts`` both: their lists are concatenated
    by :func:`~tweet_assets.x.vocabulary.to_tweet_names`, not coalesced."""


@dataclass(frozen=True)
class Quarantined:
    """One thing that could not be read, with where it was and why.

    ``location`` is ``<object or file>:<line>`` (1-based line of the JSON-lines page) and, for a
    post, ``#<index in data>``; ``reason`` is a short code (``invalid_json``, ``not_an_object``,
    ``missing_id``, ``missing_created_at``, ``invalid_id``, ``invalid_created_at``,
    ``outside_partition``); ``detail`` says what was found.
    """

    location: str
    reason: str
    detail: str = ""
    day: str | None = None
    #: posts the record stands for: 1 for a post; for a page, the ``data`` items the tolerant
    #: reader found in it (:mod:`.tolerant`), None when unknown.
    posts: int | None = 1


@dataclass
class DecodedBatch:
    """A batch of pages as Arrow: ``table`` has :data:`PAGE_SCHEMA` (one row per readable page).

    ``locations[i]`` is where row ``i`` came from and ``days[i]`` the partition it belongs to
    (None when the batch is one day's). ``quarantined`` lists unreadable pages; ``coerced`` counts,
    per day, values whose JSON type was wrong and were converted (``"5"`` → ``5``) or, when not
    convertible, set to null, keyed by key path.
    """

    table: pa.Table
    locations: list[str]
    quarantined: list[Quarantined] = field(default_factory=list)
    coerced: dict = field(default_factory=dict)
    fast_path: bool = True
    days: list = field(default_factory=list)

    def coerced_for(self, day: str | None) -> Counter:
        """The coercion counter of ``day`` (created on first use)."""
        return self.coerced.setdefault(day, Counter())


def decode_pages(lines: Sequence[bytes], locations: Sequence[str], days: Sequence | None = None) -> DecodedBatch:
    """Decode JSON-lines pages into one Arrow table of :data:`PAGE_SCHEMA`.

    Args:
        lines: page bodies, one JSON object each, without trailing newline.
        locations: where each line came from (same length), used in quarantine records.
        days: the partition key of each line (same length), or None for a one-day batch.

    Returns:
        A :class:`DecodedBatch`. Never raises for bad input: a line that is not JSON (or not
        UTF-8 even after replacement) or not an object is quarantined; a field of the wrong type
        is coerced or nulled and counted.
    """
    days = list(days) if days is not None else [None] * len(lines)
    if not len(lines) == len(locations) == len(days):
        raise ValueError(f"{len(lines)} lines but {len(locations)} locations and {len(days)} days")
    if not lines:
        return DecodedBatch(PAGE_SCHEMA.empty_table(), [])
    blob = b"\n".join(lines)
    # Bulk parsing only for lines that look like one object each: pyarrow 26's JSON reader
    # crashes (SIGSEGV) on a first line "null" and reads a later "null" line as an all-null row.
    # A raw newline inside a line splits it into parts that are not objects (a parse error) or
    # into more objects than lines (the row count below): either way it goes one by one.
    objects = all(line[:1] == b"{" and line[-1:] == b"}" for line in lines)
    if objects:
        try:
            table = _read_json_bulk(blob, max(len(line) for line in lines))
            if table.num_rows == len(lines):
                table.validate(full=True)  # the JSON reader does not check UTF-8; this does
                try:
                    table = _in_tweet_names(table)
                except _BothListsInOnePage:  # rare: rename line by line, then read again
                    table = _read_json_bulk(b"\n".join(line_in_tweet_names(line) for line in lines), 2 * max(len(line) for line in lines))
                    table = _in_tweet_names(table)
                return DecodedBatch(table, list(locations), days=days if any(d is not None for d in days) else [])
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            pass
    batch = _decode_one_by_one(lines, locations, days)
    if not any(d is not None for d in batch.days):
        batch.days = []
    return batch


def _read_json_bulk(blob: bytes, longest_line: int) -> pa.Table:
    """Pages as :data:`DECODE_SCHEMA` (both vocabularies' names)."""
    block = max(1 << 20, 2 * longest_line + 2, len(blob) // 2 + 1)
    return pa_json.read_json(
        pa.BufferReader(blob),  # read by Arrow without the GIL (io.BytesIO is read through Python)
        read_options=pa_json.ReadOptions(block_size=block, use_threads=True),
        parse_options=pa_json.ParseOptions(explicit_schema=DECODE_SCHEMA, unexpected_field_behavior="ignore"),
    )


def _in_tweet_names(table: pa.Table) -> pa.Table:
    """A :data:`DECODE_SCHEMA` table as :data:`PAGE_SCHEMA`: each value under a 2.167 post name fills
    the same place under the 2.159 tweet name where that is null (absent), as
    :func:`~tweet_assets.x.vocabulary.to_tweet_names` renames a key only when the tweet name is
    absent. Zero-copy where a post name is nowhere in the batch (the 2.159 pages of twarc2 archives).

    Raises:
        _BothListsInOnePage: a page has ``includes.tweets`` and ``includes.posts`` both.
    """
    columns = [
        pa.chunked_array([_to_page_type(chunk, f.type) for chunk in table.column(f.name).chunks], type=f.type)
        for f in PAGE_SCHEMA
    ]
    return pa.Table.from_arrays(columns, schema=PAGE_SCHEMA)


def _to_page_type(array: pa.Array, typ: pa.DataType) -> pa.Array:
    if array.type == typ:
        return array
    mask = array.is_null() if array.null_count else None
    if pa.types.is_list(typ):
        return pa.ListArray.from_arrays(array.offsets, _to_page_type(array.values, typ.value_type), type=typ, mask=mask)
    children = []
    for f in typ:  # a struct: its tweet-named fields, each coalesced with its post-named twin
        child = _to_page_type(array.field(f.name), f.type)
        twin = POST_NAME_OF.get(f.name)
        if twin is not None and array.type.get_field_index(twin) >= 0:
            other = array.field(twin)
            if other.null_count < len(other):
                other = _to_page_type(other, f.type)
                if f.name == "tweets" and pc.any(pc.and_(child.is_valid(), other.is_valid())).as_py():
                    raise _BothListsInOnePage
                child = pc.coalesce(child, other)
        children.append(child)
    return pa.StructArray.from_arrays(children, fields=list(typ), mask=mask)


def _decode_one_by_one(lines: Sequence[bytes], locations: Sequence[str], days: list) -> DecodedBatch:
    pages: list[dict] = []
    kept: list[str] = []
    batch = DecodedBatch(PAGE_SCHEMA.empty_table(), kept, fast_path=False)
    for line, location, day in zip(lines, locations, days):
        page = parse_page(line, location, batch, day)
        if page is None:
            continue
        try:
            pa.array([page], type=PAGE_TYPE)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
            page = coerce(page, PAGE_TYPE, "", batch.coerced_for(day))
        pages.append(page)
        kept.append(location)
        batch.days.append(day)
    batch.table = pa.Table.from_struct_array(pa.array(pages, type=PAGE_TYPE)) if pages else batch.table
    return batch


def parse_page(line: bytes, location: str, batch: DecodedBatch | None = None, day: str | None = None) -> dict | None:
    """Parse one JSON-lines page with orjson; return it with ``data`` as a list, or None.

    A line that is not valid UTF-8 is decoded with U+FFFD replacement characters (counted in
    ``batch.coerced_for(day)['<invalid utf-8>']``). A line that is not JSON or not an object is
    recorded in ``batch.quarantined`` and None is returned.
    """
    try:
        page = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        page = None
        if "utf-8" in str(exc).lower() or "unicode" in str(exc).lower():
            try:
                page = orjson.loads(line.decode("utf-8", errors="replace"))
                if batch is not None:
                    batch.coerced_for(day)["<invalid utf-8>"] += 1
            except orjson.JSONDecodeError as exc2:
                exc = exc2
        if page is None:
            page = read_tolerantly(line, location, batch, day, exc)
            if page is None:
                return None
    if not isinstance(page, dict):
        if batch is not None:
            batch.quarantined.append(Quarantined(location, "not_an_object", f"a JSON {type(page).__name__}", day))
        return None
    if isinstance(page.get("data"), dict):  # a filtered-stream message: one post
        page["data"] = [page["data"]]
    return to_tweet_names(page)  # spec 2.167's post names read as 2.159's (tweet_assets.x.vocabulary)


def coerce(value: Any, typ: pa.DataType, path: str, coerced: Counter) -> Any:
    """Convert ``value`` to what Arrow type ``typ`` accepts, recording each change in ``coerced``.

    Rules: numbers and booleans become strings for string fields; integral strings and floats
    become ints; numeric strings become floats; ``"true"``/``"false"`` become booleans; a single
    object where a list is expected becomes a one-element list; anything else that does not fit
    becomes null; so does a scalar where a list is expected. Unknown keys are kept out (the raw
    zone still has them).
    """
    if value is None:
        return None
    if pa.types.is_struct(typ):
        if not isinstance(value, dict):
            coerced[path or "<page>"] += 1
            return None
        return {f.name: coerce(value.get(f.name), f.type, f"{path}.{f.name}" if path else f.name, coerced) for f in typ}
    if pa.types.is_list(typ):
        if not isinstance(value, list):
            coerced[path] += 1
            if not (isinstance(value, dict) and pa.types.is_struct(typ.value_type)):
                return None
            value = [value]
        return [coerce(v, typ.value_type, path, coerced) for v in value]
    if pa.types.is_string(typ):
        if isinstance(value, str):
            return value
        coerced[path] += 1
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float)):
            return str(value)
        return None
    if pa.types.is_integer(typ):
        if isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63:
            return value
        coerced[path] += 1
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                number = int(value.strip())
                return number if -(2**63) <= number < 2**63 else None
            except ValueError:
                return None
        return None
    if pa.types.is_floating(typ):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        coerced[path] += 1
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                return None
        return None
    if pa.types.is_boolean(typ):
        if isinstance(value, bool):
            return value
        coerced[path] += 1
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        return None
    raise TypeError(f"no coercion rule for Arrow type {typ} at {path}")


def read_tolerantly(line: bytes, location: str, batch: DecodedBatch | None, day: str | None, exc: Exception) -> dict | None:
    """A page orjson refused (``exc``), read by :func:`tweet_assets.transform.tolerant.read_page`:
    the page with ``data`` a list (an unreadable post replaced by its placeholder, quarantined as
    ``unreadable_post`` by the flattener), counting in ``batch.coerced_for(day)`` the lone
    surrogates replaced (``<lone surrogate>``). None when the page is unreadable as a whole: then recorded in
    ``batch.quarantined`` as ``invalid_json`` with the posts the reader found in it."""
    found = read_page(line, TWEET)
    if found.page is None:
        if batch is not None:
            preview = line[:80].decode("utf-8", errors="replace")
            posts = "posts: unknown" if found.data_items is None else f"{found.data_items} post(s) in data"
            batch.quarantined.append(
                Quarantined(location, "invalid_json", f"{exc} [{posts}] (line starts {preview!r}, {len(line)} bytes)", day, found.data_items)
            )
        return None
    if batch is not None:
        coerced = batch.coerced_for(day)
        if found.surrogates:
            coerced["<lone surrogate>"] += found.surrogates
    return found.page


#: Reasons of records that stand for a whole page (their ``posts`` are the page's, not in ``stats['posts']``).
PAGE_REASONS = frozenset({"invalid_json", "not_an_object"})


def count_quarantined(records: Sequence[Quarantined]) -> tuple[int, int]:
    """``(posts, records whose posts are unknown)`` of quarantine records: a post counts 1, a
    page the posts found in it (``Quarantined.posts``), never 1 for the page."""
    known = sum(q.posts for q in records if q.posts is not None)
    return known, sum(1 for q in records if q.posts is None)
