"""An independent reference for the published table, built from raw twarc2 JSON lines with the json
module alone (no project code): every column of ``schema.COLUMNS`` for every copy of a post, and the
merge of a day's copies into one row (issue #18).

The rules written out here are the documented ones (README, ``schema.py`` descriptions, twarc-csv's
``dataframe_converter`` for retweets and entities), not a translation of ``flatten.py``'s polars
code: a test that compares the two catches a divergence in either.

- A retweet whose retweeted post is in the page's ``includes.tweets`` shows that post's text,
  entities, context annotations, attachments and public metrics (twarc-csv ``merge_retweets``).
- A long post's text and entities come from ``note_tweet``; only ``&amp; &lt; &gt;`` are unescaped.
- Joins are within the page: the author, replied-to user, retweeted/quoted posts and their
  authors, media, the poll, the place; the last ``includes`` entry of a key wins.
- Of several copies of a post in a day: each column the newest copy's non-null value; the post's
  counts with ``retrieved_at``/``request_url`` from the newest copy that has counts; the author's
  counts from the newest copy that has them; text with ``has_note_tweet`` from the newest long-post
  copy. "Newest": the latest ``__twarc.retrieved_at`` (unknown is oldest), then the latest landed.
- An edited post's older versions give way to its newest version present in the day.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

POST_COUNTS = ["retweet_count", "reply_count", "like_count", "quote_count"]
POST_GROUP = POST_COUNTS + ["impression_count", "bookmark_count", "retrieved_at", "request_url"]
AUTHOR_GROUP = ["author_followers_count", "author_following_count", "author_listed_count", "author_tweet_count"]


def _int(value):
    try:
        return int(value) if value is not None and not isinstance(value, bool) else None
    except (TypeError, ValueError):
        return None


def _count(value):
    """An integer field: an integral string is read as its number (``pages.coerce``'s documented rule)."""
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return value


def _ts(text):
    """RFC 3339 / ISO 8601 → aware UTC datetime truncated to ms; None if absent or unreadable."""
    if not isinstance(text, str):
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    value = value.astimezone(timezone.utc)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def _get(obj, *keys):
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _unescape(text):
    return None if text is None else text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _each(items, fn):
    return None if items is None else [fn(item) for item in items]


def _url_entity(u):
    return {k: u.get(k) for k in ("url", "expanded_url", "display_url", "unwound_url", "title", "description", "status", "media_key")}


def _content(src: dict) -> dict:
    """Columns a post's own content gives (for a retweet: the retweeted post's)."""
    note = src.get("note_tweet") or {}
    entities = note.get("entities") if note.get("entities") is not None else src.get("entities")
    entities = entities or {}
    metrics = src.get("public_metrics") or {}
    return {
        "text": _unescape(note.get("text") if note.get("text") is not None else src.get("text")),
        "has_note_tweet": note.get("text") is not None,
        "hashtags": _each(entities.get("hashtags"), lambda h: h.get("tag")),
        "cashtags": _each(entities.get("cashtags"), lambda h: h.get("tag")),
        "mentions": _each(entities.get("mentions"), lambda m: m.get("username")),
        "mention_user_ids": _each(entities.get("mentions"), lambda m: _int(m.get("id"))),
        "urls": _each(entities.get("urls"), lambda u: u.get("expanded_url")),
        "url_entities": _each(entities.get("urls"), _url_entity),
        "annotations": _each(_get(src, "entities", "annotations"), lambda a: {k: a.get(k) for k in ("type", "normalized_text", "probability")}),
        "context_annotations": _each(
            src.get("context_annotations"),
            lambda c: {
                f"{part}_{key}": _get(c, part, key) for part in ("domain", "entity") for key in ("id", "name", "description")
            },
        ),
        "media_keys": _get(src, "attachments", "media_keys"),
        "_poll_id": (_get(src, "attachments", "poll_ids") or [None])[0],
        **{m: metrics.get(m) for m in POST_COUNTS + ["impression_count", "bookmark_count"]},
    }


def _first_ref(post: dict, kind: str):
    for ref in post.get("referenced_tweets") or []:
        if ref.get("type") == kind:
            return ref.get("id")
    return None


def _list_field(obj, *keys_then_field):
    *keys, name = keys_then_field
    return _each(_get(obj, *keys), lambda e: e.get(name))


def reference_row(post: dict, page: dict) -> dict:
    """Every published column for one copy of ``post`` in ``page`` (a decoded twarc2 line)."""
    inc = page.get("includes") or {}
    users = {u["id"]: u for u in inc.get("users") or [] if u.get("id") is not None}
    tweets = {t["id"]: t for t in inc.get("tweets") or [] if t.get("id") is not None}
    media = {m["media_key"]: m for m in inc.get("media") or [] if m.get("media_key") is not None}
    polls = {p["id"]: p for p in inc.get("polls") or [] if p.get("id") is not None}
    places = {p["id"]: p for p in inc.get("places") or [] if p.get("id") is not None}

    rt_id, quoted_id, replied_id = (_first_ref(post, k) for k in ("retweeted", "quoted", "replied_to"))
    original = tweets.get(rt_id) if rt_id is not None else None
    found = original is not None and (original.get("author_id") is not None or original.get("text") is not None)
    row = _content(original if found else post)
    retweeted_user = original.get("author_id") if original else None
    quoted_user = (tweets.get(quoted_id) or {}).get("author_id") if quoted_id is not None else None
    author = users.get(post.get("author_id")) or {}
    geo = post.get("geo") or {}
    coords = _get(geo, "coordinates", "coordinates") or []
    place = places.get(geo.get("place_id")) or {}
    poll_key = row.pop("_poll_id")
    poll = polls.get(poll_key) or {}
    keys = [k for k in (row["media_keys"] or []) if k is not None]
    errors = {}
    for error in page.get("errors") or []:
        if error.get("resource_type") == "tweet" and error.get("resource_id") is not None:
            errors.setdefault(error["resource_id"], error)
    unavailable = [
        {"id": _int(ref.get("id")), "type": ref.get("type"), "title": errors[ref["id"]].get("title"), "detail": errors[ref["id"]].get("detail")}
        for ref in post.get("referenced_tweets") or []
        if ref.get("id") in errors
    ]
    desc = _get(author, "entities", "description") or {}
    metrics = author.get("public_metrics") or {}
    twarc = page.get("__twarc") or {}
    row.update(
        {
            "id": _int(post.get("id")),
            "created_at": _ts(post.get("created_at")),
            "conversation_id": _int(post.get("conversation_id")),
            "author_id": _int(post.get("author_id")),
            "lang": post.get("lang"),
            "source": post.get("source"),
            "reply_settings": post.get("reply_settings"),
            "possibly_sensitive": post.get("possibly_sensitive"),
            "is_retweet": rt_id is not None,
            "retweeted_id": _int(rt_id),
            "retweeted_user_id": _int(retweeted_user),
            "retweeted_username": (users.get(retweeted_user) or {}).get("username"),
            "quoted_id": _int(quoted_id),
            "quoted_user_id": _int(quoted_user),
            "quoted_username": (users.get(quoted_user) or {}).get("username"),
            "replied_to_id": _int(replied_id),
            "in_reply_to_user_id": _int(post.get("in_reply_to_user_id")),
            "in_reply_to_username": (users.get(post.get("in_reply_to_user_id")) or {}).get("username"),
            "unavailable_referenced_tweets": unavailable or None,
            "media": [
                {
                    "media_key": key,
                    **{f: (media.get(key) or {}).get(f) for f in ("type", "url", "preview_image_url", "width", "height", "duration_ms", "alt_text")},
                    "view_count": _get(media.get(key), "public_metrics", "view_count"),
                    "variants": _each((media.get(key) or {}).get("variants"), lambda v: {k: v.get(k) for k in ("bit_rate", "content_type", "url")}),
                }
                for key in keys
            ]
            or None,
            "poll_id": _int(poll_key),
            "poll_options": _each(poll.get("options"), lambda o: {k: o.get(k) for k in ("position", "label", "votes")}),
            "poll_duration_minutes": poll.get("duration_minutes"),
            "poll_end_datetime": _ts(poll.get("end_datetime")),
            "poll_voting_status": poll.get("voting_status"),
            "place_id": geo.get("place_id"),
            "place_full_name": place.get("full_name"),
            "place_name": place.get("name"),
            "place_type": place.get("place_type"),
            "place_country": place.get("country"),
            "place_country_code": place.get("country_code"),
            "place_bbox": _get(place, "geo", "bbox"),
            "longitude": coords[0] if len(coords) > 0 else None,
            "latitude": coords[1] if len(coords) > 1 else None,
            "edit_history_tweet_ids": _each(post.get("edit_history_tweet_ids"), _int),
            "edits_remaining": _count(_get(post, "edit_controls", "edits_remaining")),
            "is_edit_eligible": _get(post, "edit_controls", "is_edit_eligible"),
            "editable_until": _ts(_get(post, "edit_controls", "editable_until")),
            "withheld_copyright": _get(post, "withheld", "copyright"),
            "withheld_country_codes": _get(post, "withheld", "country_codes"),
            "withheld_scope": _get(post, "withheld", "scope"),
            "author_username": author.get("username"),
            "author_name": author.get("name"),
            "author_created_at": _ts(author.get("created_at")),
            "author_description": author.get("description"),
            "author_location": author.get("location"),
            "author_url": author.get("url"),
            "author_expanded_url": (_list_field(author, "entities", "url", "urls", "expanded_url") or [None])[0],
            "author_profile_image_url": author.get("profile_image_url"),
            "author_pinned_tweet_id": _int(author.get("pinned_tweet_id")),
            "author_protected": author.get("protected"),
            "author_verified": author.get("verified"),
            "author_verified_type": author.get("verified_type"),
            **{f"author_{m}": metrics.get(m) for m in ("followers_count", "following_count", "listed_count", "tweet_count")},
            "author_description_hashtags": _list_field(desc, "hashtags", "tag"),
            "author_description_cashtags": _list_field(desc, "cashtags", "tag"),
            "author_description_mentions": _list_field(desc, "mentions", "username"),
            "author_description_urls": _list_field(desc, "urls", "expanded_url"),
            "author_withheld_country_codes": _get(author, "withheld", "country_codes"),
            "author_withheld_scope": _get(author, "withheld", "scope"),
            "matching_rules": _each(page.get("matching_rules"), lambda r: {"id": _int(r.get("id")), "tag": r.get("tag")}),
            "retrieved_at": _ts(twarc.get("retrieved_at")),
            "request_url": twarc.get("url"),
        }
    )
    return row


def _newest_with(copies: list[dict], has) -> dict:
    chosen = [c for c in copies if has(c)]
    return (chosen or copies)[-1]


def merge(copies: list[dict]) -> dict:
    """One row from a post's copies, given oldest first (see the module docstring)."""
    if len(copies) == 1:
        return dict(copies[0])
    row = {}
    for column in copies[0]:
        values = [c[column] for c in copies if c[column] is not None]
        row[column] = values[-1] if values else None
    counts = _newest_with(copies, lambda c: any(c[m] is not None for m in POST_COUNTS))
    row.update({m: counts[m] for m in POST_GROUP})
    author = _newest_with(copies, lambda c: any(c[m] is not None for m in AUTHOR_GROUP))
    row.update({m: author[m] for m in AUTHOR_GROUP})
    text = _newest_with(copies, lambda c: c["has_note_tweet"] is True)
    row.update({"text": text["text"], "has_note_tweet": text["has_note_tweet"]})
    return row


def read_pages(files: list[Path]):
    """``(page, post)`` for every post of every readable page, in landing order (files in the
    order given, lines in order, posts in order); a stream message's ``data`` object is one post."""
    for path in files:
        for line in path.read_bytes().splitlines():
            try:
                page = json.loads(line)
            except ValueError:
                continue
            if not isinstance(page, dict):
                continue
            data = page.get("data")
            for post in [data] if isinstance(data, dict) else data if isinstance(data, list) else []:
                if isinstance(post, dict):
                    yield page, post


def reference_table(files: list[Path], merge_copies: bool = True, retrieval: bool = True) -> dict[str, dict[int, dict]]:
    """``{day: {id: row}}``: the rows the published table must hold for these files.

    Posts without a readable id or created_at are left out (they are quarantined). With
    ``merge_copies`` False, the last copy landed wins whole (the rule before issue #18); with
    ``retrieval`` False, pages are taken without their ``__twarc`` record (as landed by a source
    that drops it).
    """
    copies: dict[str, dict[int, list]] = {}
    for landed, (page, post) in enumerate(read_pages(files)):
        if not retrieval:
            page = {k: v for k, v in page.items() if k != "__twarc"}
        row = reference_row(post, page)
        if row["id"] is None or row["created_at"] is None:
            continue
        day = row["created_at"].strftime("%Y-%m-%d")
        copies.setdefault(day, {}).setdefault(row["id"], []).append((row["retrieved_at"], landed, row))
    oldest = datetime.min.replace(tzinfo=timezone.utc)
    out: dict[str, dict[int, dict]] = {}
    for day, by_id in copies.items():
        older = set()
        for versions in by_id.values():
            for _, _, row in versions:
                history = row["edit_history_tweet_ids"] or []
                if len(history) > 1 and history[-1] == row["id"]:
                    older.update(history[:-1])
        rows = {}
        for post_id, versions in by_id.items():
            if post_id in older:
                continue
            if merge_copies:
                versions = sorted(versions, key=lambda v: (v[0] is not None, v[0] or oldest, v[1]))
                rows[post_id] = merge([row for _, _, row in versions])
            else:
                rows[post_id] = versions[-1][2]
        out[day] = rows
    return out

