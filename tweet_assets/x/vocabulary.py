"""The two vocabularies of X API v2 answers, read into one: spec 2.167's post names mapped to
spec 2.159's tweet names, which the decoder, the flattener and the published columns use.

The mapping (X's OpenAPI spec 2.167 schemas ``Post``, ``User``, ``Expansions``,
``GetPostsCounts*Response`` against 2.159's ``Tweet``, ``User``, ``Expansions``,
``Get2TweetsCounts*Response``):

==============================================  ==============================================
2.167 ("posts")                                 2.159 ("tweets")
==============================================  ==============================================
``includes.posts``                              ``includes.tweets``
post ``referenced_posts``                       ``referenced_tweets`` (``type`` values the same)
post ``note_post``                              ``note_tweet``
post ``edit_history_post_ids``                  ``edit_history_tweet_ids``
post ``public_metrics.repost_count``            ``public_metrics.retweet_count``
user ``pinned_post_id``                         ``pinned_tweet_id``
user ``most_recent_post_id``                    ``most_recent_tweet_id``
user ``public_metrics.post_count``              ``public_metrics.tweet_count``
counts bucket ``post_count``                    ``tweet_count``
counts ``meta.total_post_count``                ``meta.total_tweet_count``
==============================================  ==============================================

A key is renamed only when its tweet name is absent (a page carrying both keeps the tweet one).
The landing zone keeps pages as received; this runs where pages are decoded.
"""

from __future__ import annotations

import orjson

POST_KEYS = {"referenced_posts": "referenced_tweets", "note_post": "note_tweet", "edit_history_post_ids": "edit_history_tweet_ids"}
USER_KEYS = {"pinned_post_id": "pinned_tweet_id", "most_recent_post_id": "most_recent_tweet_id"}
METRIC_KEYS = {"repost_count": "retweet_count", "post_count": "tweet_count"}  # posts' and users' public_metrics
COUNT_KEYS = {"post_count": "tweet_count"}
META_KEYS = {"total_post_count": "total_tweet_count"}
#: Bytes that occur in every 2.167-named page and in no 2.159 key: pages without any are left as they are.
MARKERS = (b"_post", b'"post_count"', b'"repost_count"', b'"posts"')
#: Every 2.159 key of the tables above → its 2.167 name, with ``includes.tweets`` → ``includes.posts``.
#: No key of a page means two things in different objects, so one flat map serves every level
#: (the bulk decoder reads both names, :func:`tweet_assets.transform.pages.decode_pages`).
POST_NAME_OF = {new: old for keys in (POST_KEYS, USER_KEYS, METRIC_KEYS, COUNT_KEYS, META_KEYS) for old, new in keys.items()} | {"tweets": "posts"}


def _rename(obj: dict, keys: dict[str, str]) -> None:
    for old, new in keys.items():
        if old in obj:
            value = obj.pop(old)
            obj.setdefault(new, value)


def _object(obj) -> None:
    """A post, a user or a counts bucket, in place."""
    if not isinstance(obj, dict):
        return
    _rename(obj, POST_KEYS)
    _rename(obj, USER_KEYS)
    if "start" in obj and "end" in obj:
        _rename(obj, COUNT_KEYS)
    metrics = obj.get("public_metrics")
    if isinstance(metrics, dict):
        _rename(metrics, METRIC_KEYS)


def to_tweet_names(page: dict) -> dict:
    """``page`` (an API v2 response body or stream message, as a dict) with every 2.167 post name
    of the module's table renamed to its 2.159 tweet name, in place; returns ``page``. Shapes the
    names do not fit (a non-dict ``includes``, say) are left for the decoder to coerce or
    quarantine."""
    data = page.get("data")
    for item in data if isinstance(data, list) else [data]:
        _object(item)
    includes = page.get("includes")
    if isinstance(includes, dict):
        if "posts" in includes:
            posts = includes.pop("posts")
            if "tweets" in includes and isinstance(includes["tweets"], list) and isinstance(posts, list):
                includes["tweets"] = includes["tweets"] + posts
            else:
                includes.setdefault("tweets", posts)
        for kind in ("tweets", "users"):
            items = includes.get(kind)
            for item in items if isinstance(items, list) else []:
                _object(item)
    meta = page.get("meta")
    if isinstance(meta, dict):
        _rename(meta, META_KEYS)
    return page


def line_in_tweet_names(line: bytes) -> bytes:
    """One JSON-lines page in tweet names: the line as it is when it carries no post name
    (:data:`MARKERS`; most pages, no parsing), else parsed, renamed (:func:`to_tweet_names`) and
    serialised again. A line that is not a JSON object is returned unchanged (the decoder
    quarantines it)."""
    if not any(marker in line for marker in MARKERS):
        return line
    try:
        page = orjson.loads(line)
    except orjson.JSONDecodeError:
        return line
    if not isinstance(page, dict):
        return line
    return orjson.dumps(to_tweet_names(page))


def _names(vocabulary: str) -> set[str]:
    from tweet_assets.x.fields import FIELDS

    v = FIELDS[vocabulary]
    return {v.fields_param, *v.post_fields, *v.expansions, *v.user_fields}


def own_names(vocabulary: str) -> set[str]:
    """The request names only ``vocabulary`` uses (``tweets``: ``tweet.fields``,
    ``referenced_tweets.id``, ``pinned_tweet_id``, ...; ``posts``: ``post.fields``,
    ``referenced_posts``, ``note_post``, ...): a server speaking the other one refuses them."""
    from tweet_assets.x.fields import POSTS, TWEETS

    other = POSTS if vocabulary == TWEETS else TWEETS
    return _names(vocabulary) - _names(other)


def _strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (k, *_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def refuses_vocabulary(problem: dict, sent: str) -> bool:
    """True when a 400's problem JSON (``detail``, ``errors[].message``, ``errors[].parameters``
    names and values, ``errors[].value``) names a parameter or value that only the ``sent``
    vocabulary uses (:func:`own_names`): the server speaks the other one. X answers an unknown
    parameter or enum value with 400 ``invalid-request`` naming it, e.g. ``The query parameter
    [tweet.fields] is not one of [...]``."""
    import re

    texts = _strings([problem.get("detail"), problem.get("title"), problem.get("errors")])
    tokens = {t for text in texts for t in re.findall(r"[A-Za-z0-9_.]+", text)}
    return bool(tokens & own_names(sent))
