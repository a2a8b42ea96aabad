"""Split one X API v2 response page into one page per UTC day of its posts, each with its own expansions.

A search or timeline page can hold posts of several days; the lake stores pages per day
(``raw_tweets/dt=YYYY-MM-DD``), so such a page is split. Each day's piece keeps the page's other
keys (``meta``, ``matching_rules``, twarc's ``__twarc``) and gets:

- ``data``: the posts of that day, in page order (posts whose day cannot be read go with the
  first piece, where ``clean_tweets`` quarantines them with the reason);
- ``includes``: only the objects its posts expand to, following the API's expansions (X API v2
  "Expansions": ``author_id``, ``in_reply_to_user_id``, ``entities.mentions.username``,
  ``referenced_tweets.id``, ``referenced_tweets.id.author_id``, ``attachments.media_keys``,
  ``attachments.poll_ids``, ``geo.place_id``), the referenced posts' own expansions included.
  An included object no post of the page references, and an ``includes`` kind this module does
  not know, go with the first piece: the pieces together hold every object of the page;
- ``errors``: each entry exactly once, with the first piece holding a post, referenced post, user,
  media, poll or place whose id (or username) is the entry's ``resource_id`` or ``value``; an
  entry that concerns none of them goes with the first piece. So ``api_errors`` summed over the
  pieces is the page's count.

The first piece is the day of the first dated post in ``data``. This is per-post Python work; it
runs only for pages that span days (a page of one day is landed byte for byte by the caller).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

#: ``includes`` kinds and the key an expansion refers to them by.
INCLUDE_KEYS = {"users": "id", "tweets": "id", "media": "media_key", "polls": "id", "places": "id"}


def _key(value: Any) -> str | None:
    """An id as the API writes it (a string); integers are tolerated, anything else is no key."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


@dataclass
class _Refs:
    """What a day's posts refer to, by ``includes`` kind; usernames lower-cased."""

    users: set = field(default_factory=set)
    usernames: set = field(default_factory=set)
    tweets: set = field(default_factory=set)
    media: set = field(default_factory=set)
    polls: set = field(default_factory=set)
    places: set = field(default_factory=set)

    def concerns(self, error: Any) -> bool:
        if not isinstance(error, dict):
            return False
        for value in (error.get("resource_id"), error.get("value")):
            key = _key(value)
            if key is None:
                continue
            if key in self.tweets or key in self.users or key in self.media or key in self.polls or key in self.places:
                return True
            if key.lower() in self.usernames:
                return True
        return False


def _add(target: set, value: Any) -> None:
    key = _key(value)
    if key is not None:
        target.add(key)


def _mentions(post: dict) -> list:
    found = []
    for holder in (post, post.get("note_tweet")):
        entities = holder.get("entities") if isinstance(holder, dict) else None
        mentions = entities.get("mentions") if isinstance(entities, dict) else None
        if isinstance(mentions, list):
            found.extend(m for m in mentions if isinstance(m, dict))
    return found


def references(posts: list, included_tweets: dict) -> _Refs:
    """The keys ``posts`` expand to, following referenced posts found in ``included_tweets``
    (``{id: post}``) to their own expansions."""
    refs = _Refs()
    queue = list(posts)
    seen: set = set()
    for post in queue:  # grows while referenced posts are followed
        if not isinstance(post, dict):
            continue
        _add(refs.tweets, post.get("id"))
        _add(refs.users, post.get("author_id"))
        _add(refs.users, post.get("in_reply_to_user_id"))
        for mention in _mentions(post):
            _add(refs.users, mention.get("id"))
            name = mention.get("username")
            if isinstance(name, str):
                refs.usernames.add(name.lower())
        attachments = post.get("attachments")
        if isinstance(attachments, dict):
            for target, name in ((refs.media, "media_keys"), (refs.polls, "poll_ids")):
                keys = attachments.get(name)
                if isinstance(keys, list):
                    for key in keys:
                        _add(target, key)
        geo = post.get("geo")
        if isinstance(geo, dict):
            _add(refs.places, geo.get("place_id"))
        referenced = post.get("referenced_tweets")
        if isinstance(referenced, list):
            for ref in referenced:
                rid = _key(ref.get("id")) if isinstance(ref, dict) else None
                if rid is None:
                    continue
                refs.tweets.add(rid)
                if rid not in seen and rid in included_tweets:
                    seen.add(rid)
                    queue.append(included_tweets[rid])
    return refs


def _owners(kind: str, pieces: list, refs: list) -> dict:
    """``{key: [pieces that need it]}`` for one ``includes`` kind (usernames as ``@name``)."""
    owners: dict = {}
    for piece, ref in zip(pieces, refs):
        keys = getattr(ref, kind)
        for key in keys:
            owners.setdefault(key, []).append(piece)
        if kind == "users":
            for name in ref.usernames:
                owners.setdefault("@" + name, []).append(piece)
    return owners


@dataclass(eq=False)
class DayPiece:
    """One day's part of a page: ``posts`` (its ``data``), its ``includes`` and ``errors``."""

    day: str
    posts: list
    includes: dict = field(default_factory=dict)
    errors: list = field(default_factory=list)
    whole: dict = field(default_factory=dict)  # keys copied as they are (first piece: odd includes/errors)

    def body(self, page: dict, stream: bool) -> bytes:
        """The piece as a page: ``page``'s keys in order, ``data``/``includes``/``errors`` replaced."""
        out = {}
        for key, value in page.items():
            if key == "data":
                out[key] = self.posts[0] if stream and len(self.posts) == 1 else self.posts
            elif key in self.whole:
                out[key] = self.whole[key]
            elif key == "includes":
                if self.includes:
                    out[key] = self.includes
            elif key == "errors":
                if self.errors:
                    out[key] = self.errors
            else:
                out[key] = value
        return orjson.dumps(out)


def split_by_day(page: dict, posts: list, days: list) -> list[DayPiece]:
    """Split ``page`` (whose ``data`` items are ``posts``, with UTC days ``days``: ``YYYY-MM-DD``
    or None when unreadable) into one :class:`DayPiece` per day, first piece first.

    Raises ValueError when no post has a day (the caller places such a page whole).
    """
    pieces: dict[str, DayPiece] = {}
    undated = []
    for post, day in zip(posts, days):
        if day is None:
            undated.append(post)
        elif day in pieces:
            pieces[day].posts.append(post)
        else:
            pieces[day] = DayPiece(day, [post])
    if not pieces:
        raise ValueError("no post of the page has a readable created_at")
    ordered = list(pieces.values())
    first = ordered[0]
    first.posts.extend(undated)

    includes = page.get("includes")
    errors = page.get("errors")
    if isinstance(includes, dict):
        tweets = includes.get("tweets")
        by_id = {_key(t.get("id")): t for t in tweets if isinstance(t, dict)} if isinstance(tweets, list) else {}
        by_id.pop(None, None)
        refs = [references(piece.posts, by_id) for piece in ordered]
        for kind, objects in includes.items():
            if kind not in INCLUDE_KEYS or not isinstance(objects, list):
                first.includes[kind] = objects
                continue
            owners_of = _owners(kind, ordered, refs)
            field_name = INCLUDE_KEYS[kind]
            for obj in objects:
                owners = owners_of.get(_key(obj.get(field_name))) if isinstance(obj, dict) else None
                if kind == "users" and isinstance(obj, dict) and isinstance(obj.get("username"), str):
                    by_name = owners_of.get("@" + obj["username"].lower())
                    if by_name:
                        owners = sorted({*(owners or ()), *by_name}, key=ordered.index)
                for piece in owners or (first,):
                    piece.includes.setdefault(kind, []).append(obj)
    elif "includes" in page:
        first.whole["includes"] = includes
    if isinstance(errors, list):
        if not isinstance(includes, dict):
            refs = [references(piece.posts, {}) for piece in ordered]
        for error in errors:
            owner = next((piece for piece, ref in zip(ordered, refs) if ref.concerns(error)), first)
            owner.errors.append(error)
    elif "errors" in page:
        first.whole["errors"] = errors
    return ordered
