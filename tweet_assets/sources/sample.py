"""A deterministic generator of API v2-shaped response pages: the embedded default source.

It needs no credentials and no network, so the demo runs on any fresh machine, and the benchmark
uses it for large volumes. The same ``(seed, day, posts_per_day)`` always gives the same bytes.

Each page is shaped like a ``GET /2/tweets/search/recent`` response with every expansion
(docs.x.com, "Search Posts", "Expansions"): ``data`` newest first, ``includes.users`` (authors,
replied-to and referenced authors), ``includes.tweets`` (retweeted, quoted and replied-to posts),
``includes.media``, ``includes.places``, ``includes.polls``, and ``meta`` with ``next_token``.
The mix: about 55% original posts, 20% retweets (text truncated with "…", as the API does), 15%
replies, 10% quotes; hashtags, mentions, cashtags, URLs, annotations, media, places, polls, edit
history, long posts (``note_tweet``) and non-ASCII text (accents, CJK, Arabic, emoji).

Speed (it stands in for the API in the 365-day backfill benchmark): 12-22 µs per post on the
2-core benchmark machine, as its load varies (31 µs before these were done), 2.1 KB of JSON per
post. Users, texts' entities and places are serialized once per seed and embedded in each page as
``orjson.Fragment``; timestamps are formatted from tables. The random draws keep their order, so a
seed gives the same bytes as before.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import random
from datetime import datetime, timezone
from typing import Iterator

import orjson
from pydantic import Field

from tweet_assets import config
from tweet_assets.partitions import DAY_FORMAT, days_in_window
from tweet_assets.sources.base import ConfigurationError, PostSource, SourcePage

_WORDS = (
    "data lake parquet athena dagster pipeline backfill partition schema query "
    "café naïve über façade 東京 データ مرحبا שלום Привет 🎉 🚀 ❤️ 👍🏽 & < > news today"
).split()
_TAGS = ("dataengineering", "python", "AWS", "OpenData", "日本", "café", "100DaysOfCode")
_CASHTAGS = ("AMZN", "TSLA", "BTC")
_LANGS = ("en", "en", "en", "es", "fr", "ja", "ar", "de", "und")
_SOURCES = ("Twitter Web App", "Twitter for iPhone", "Twitter for Android")
_ANNOTATION_TYPES = ("Person", "Place", "Organization", "Product", "Other")
_PLACES = (
    ("01a9a39529b27f36", "Manhattan, NY", "Manhattan", "city", "United States", "US", [-74.026675, 40.683935, -73.910408, 40.877483]),
    ("5e02a0f0d91c76d2", "İstanbul, Türkiye", "İstanbul", "city", "Türkiye", "TR", [28.632104, 40.802734, 29.356553, 41.239907]),
    ("0f3ee3ba0b7a5e4c", "東京都 千代田区", "千代田区", "city", "日本", "JP", [139.72913, 35.665856, 139.783052, 35.70447]),
)
_EPOCH_MS = 1288834974657  # the X snowflake epoch (2010-11-04T01:42:54.657Z)


@functools.lru_cache(maxsize=4096)
def _date_prefix(day_number: int) -> str:
    return datetime.fromtimestamp(day_number * 86_400, tz=timezone.utc).strftime("%Y-%m-%dT")


#: "HH:MM:SS." for every second of a day and "mmmZ" for every millisecond: _iso is two look-ups.
_CLOCK = [f"{h:02d}:{m:02d}:{s:02d}." for h in range(24) for m in range(60) for s in range(60)]
_MILLI = [f"{ms:03d}Z" for ms in range(1000)]


def _iso(ms: int) -> str:
    """RFC 3339 UTC with milliseconds, as the API writes ``created_at``."""
    day, rest = divmod(ms, 86_400_000)
    seconds, milli = divmod(rest, 1000)
    return _date_prefix(day) + _CLOCK[seconds] + _MILLI[milli]


def _snowflake(ms: int, seq: int) -> int:
    """A post id as X makes them: milliseconds since its epoch << 22, plus a sequence number.

    Days before the epoch (X's own ids were sequential then) get ids from 6e18 up, still
    unique per (ms, seq) and inside int64.
    """
    if ms >= _EPOCH_MS:
        return ((ms - _EPOCH_MS) << 22) + (seq % 4_000_000)
    return 6 * 10**18 + ((ms - 1_100_000_000_000) << 22) + (seq % 4_000_000)


class SampleSource(PostSource):
    """Generated pages for any day; volume and page size are configurable."""

    posts_per_day: int = Field(default=200, ge=0, description="Posts in `data` per day.")
    page_size: int = Field(default=100, ge=1, le=500, description="Posts per page (max_results).")
    seed: int = Field(default=7, description="Same seed, same pages.")

    @property
    def source_name(self) -> str:
        return "sample"

    @classmethod
    def from_env(cls, env, lake=None) -> "SampleSource":
        """``TWEET_ASSETS_SAMPLE_POSTS`` posts per day (default 200).

        Raises:
            ConfigurationError: the count is not a whole number.
        """
        try:
            return cls(posts_per_day=config.number("TWEET_ASSETS_SAMPLE_POSTS", env))
        except config.SettingError as exc:
            raise ConfigurationError(str(exc)) from None

    def describe(self) -> str:
        return f"sample generator ({self.posts_per_day} posts/day, seed {self.seed})"

    def pages(self, start: datetime, end: datetime, log: logging.Logger) -> Iterator[SourcePage]:
        for day in days_in_window(start, end):
            yield from self.day_pages(day)

    def day_pages(self, day: str) -> Iterator[SourcePage]:
        """The pages of one day, newest posts first, as the search endpoints return them."""
        day_seed = int.from_bytes(hashlib.sha256(f"{self.seed}:{day}".encode()).digest()[:8], "big")
        rng = random.Random(day_seed)
        start_ms = int(datetime.strptime(day, DAY_FORMAT).replace(tzinfo=timezone.utc).timestamp() * 1000)
        stamps = sorted((rng.randrange(86_400_000) for _ in range(self.posts_per_day)), reverse=True)
        users = _user_pool(self.seed)
        for page_no, first in enumerate(range(0, self.posts_per_day, self.page_size), start=1):
            chunk = stamps[first : first + self.page_size]
            page = _Page(rng, users)
            for i, offset in enumerate(chunk):
                page.post(start_ms + offset, first + i)
            last = first + len(chunk) >= self.posts_per_day
            body = page.body(None if last else f"{day.replace('-', '')}p{page_no + 1}")
            yield SourcePage(
                day,
                body,
                f"sample:{day}:page{page_no}",
                posts=len(chunk),
                api_errors=0,
                earliest=_iso(start_ms + chunk[-1]),
                latest=_iso(start_ms + chunk[0]),
            )


@functools.lru_cache(maxsize=8)
def _user_pool(seed: int) -> "_UserPool":
    return _UserPool(seed)


class _UserPool:
    """500 deterministic accounts per seed, 4,096 texts with their entities and 256 long texts."""

    def __init__(self, seed: int, size: int = 500, texts: int = 4096):
        rng = random.Random(seed)
        self.users = []
        for n in range(size):
            uid = str(10_000_000 + n * 7919 + seed)
            name = rng.choice(("Ana", "Bo", "Chloé", "Dmitri", "Émile", "Fatima", "Kenji", "Lena", "Omar", "Zoë"))
            self.users.append(
                {
                    "id": uid,
                    "username": f"{name.lower().replace('é', 'e').replace('ë', 'e').replace('é', 'e')}_{n}",
                    "name": f"{name} {n} ✨" if n % 9 == 0 else f"{name} {n}",
                    "created_at": _iso(1_200_000_000_000 + n * 86_400_000),
                    "description": f"Data person #{_TAGS[n % len(_TAGS)]} @ana_{n % 50} https://t.co/x{n}",
                    "entities": {
                        "description": {
                            "hashtags": [{"start": 12, "end": 13 + len(_TAGS[n % len(_TAGS)]), "tag": _TAGS[n % len(_TAGS)]}],
                            "mentions": [{"start": 30, "end": 38, "username": f"ana_{n % 50}"}],
                        },
                        "url": {"urls": [{"start": 0, "end": 23, "url": f"https://t.co/u{n}", "expanded_url": f"https://example.org/~{n}", "display_url": f"example.org/~{n}"}]},
                    },
                    "location": rng.choice(("Berlin", "São Paulo", "東京", "", "Lagos")),
                    "url": f"https://t.co/u{n}",
                    "protected": False,
                    "verified": n % 25 == 0,
                    "verified_type": "blue" if n % 25 == 0 else "none",
                    "profile_image_url": f"https://pbs.twimg.com/profile_images/{uid}/a_normal.jpg",
                    "public_metrics": {
                        "followers_count": rng.randrange(100_000),
                        "following_count": rng.randrange(5_000),
                        "tweet_count": rng.randrange(50_000),
                        "listed_count": rng.randrange(200),
                    },
                }
            )
        made = [_make_text(rng, self.users) for _ in range(texts)]
        self.long_texts = [" ".join(rng.choice(_WORDS) for _ in range(80)) for _ in range(256)]
        # Serialized once: pages embed these bytes (orjson.Fragment) instead of re-encoding them.
        self.user_json = {user["id"]: orjson.Fragment(orjson.dumps(user)) for user in self.users}
        self.texts = [(text, orjson.Fragment(orjson.dumps(entities)) if entities else None, mentioned) for text, entities, mentioned in made]


def _make_text(rng: random.Random, users: list[dict]) -> tuple[str, dict, dict | None]:
    """``(text, entities, mentioned user or None)``; text HTML-escaped as the API sends it."""
    words = [rng.choice(_WORDS) for _ in range(rng.randrange(4, 14))]
    entities: dict = {}
    mentioned = None
    text = " ".join(words)
    if rng.random() < 0.5:
        tag = rng.choice(_TAGS)
        entities["hashtags"] = [{"start": len(text) + 1, "end": len(text) + 2 + len(tag), "tag": tag}]
        text += f" #{tag}"
    if rng.random() < 0.05:
        tag = rng.choice(_CASHTAGS)
        entities["cashtags"] = [{"start": len(text) + 1, "end": len(text) + 2 + len(tag), "tag": tag}]
        text += f" ${tag}"
    if rng.random() < 0.3:
        mentioned = rng.choice(users)
        entities["mentions"] = [{"start": len(text) + 1, "end": len(text) + 2 + len(mentioned["username"]), "username": mentioned["username"], "id": mentioned["id"]}]
        text += f" @{mentioned['username']}"
    if rng.random() < 0.2:
        n = rng.randrange(10**6)
        entities["urls"] = [
            {
                "start": len(text) + 1,
                "end": len(text) + 24,
                "url": f"https://t.co/{n:07d}",
                "expanded_url": f"https://example.com/a/{n}?utm=x&y=1",
                "display_url": f"example.com/a/{n}",
                "status": 200,
                "title": "An example page",
                "unwound_url": f"https://example.com/a/{n}",
            }
        ]
        text += f" https://t.co/{n:07d}"
    if rng.random() < 0.2:
        entities["annotations"] = [
            {"start": 0, "end": len(words[0]) - 1, "probability": round(rng.random(), 4), "type": rng.choice(_ANNOTATION_TYPES), "normalized_text": words[0]}
        ]
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"), entities, mentioned


#: Constant parts of posts and includes, serialized once.
_NOTE_ENTITIES = orjson.Fragment(orjson.dumps({"hashtags": [{"start": 0, "end": 5, "tag": "long"}]}))
_PLACE_JSON = {
    pid: orjson.Fragment(orjson.dumps({"id": pid, "full_name": full, "name": name, "place_type": ptype, "country": country, "country_code": code, "geo": {"type": "Feature", "bbox": bbox, "properties": {}}}))
    for pid, full, name, ptype, country, code, bbox in _PLACES
}


class _Page:
    """Builds one response page (hot path of the sample source: keep the draws in this order, the
    same seed must keep giving the same bytes)."""

    def __init__(self, rng: random.Random, users: _UserPool):
        self.rng = rng
        self.random = rng.random
        self.pool = users.users
        self.user_json = users.user_json
        self.texts = users.texts
        self.long_texts = users.long_texts
        self.data: list[dict] = []
        self.users: dict[str, orjson.Fragment] = {}
        self.tweets: dict[str, dict] = {}
        self.media: dict[str, dict] = {}
        self.places: dict[str, orjson.Fragment] = {}
        self.polls: dict[str, dict] = {}

    def _user(self) -> dict:
        user = self.pool[int(self.random() * len(self.pool))]
        uid = user["id"]
        self.users[uid] = self.user_json[uid]
        return user

    def _tweet(self, ms: int, seq: int, author: dict) -> dict:
        r = self.random
        tid = str(_snowflake(ms, seq))
        text, entities, mentioned = self.texts[int(r() * len(self.texts))]
        if mentioned is not None:
            self.users[mentioned["id"]] = self.user_json[mentioned["id"]]
        tweet = {
            "id": tid,
            "text": text,
            "created_at": _iso(ms),
            "author_id": author["id"],
            "conversation_id": tid,
            "lang": _LANGS[int(r() * len(_LANGS))],
            "source": _SOURCES[int(r() * len(_SOURCES))],
            "reply_settings": "everyone",
            "possibly_sensitive": r() < 0.02,
            "edit_history_tweet_ids": [tid],
            "public_metrics": {
                "retweet_count": int(r() * 1000),
                "reply_count": int(r() * 100),
                "like_count": int(r() * 5000),
                "quote_count": int(r() * 50),
                "impression_count": int(r() * 100_000),
                "bookmark_count": int(r() * 100),
            },
        }
        if entities is not None:
            tweet["entities"] = entities
        if r() < 0.03:
            long_text = self.long_texts[int(r() * len(self.long_texts))]
            tweet["note_tweet"] = {"text": long_text, "entities": _NOTE_ENTITIES}
            tweet["text"] = long_text[:275] + "…"
        if r() < 0.15:
            rng = self.rng
            keys = []
            for k in range(rng.choice((1, 1, 2))):
                key = f"3_{tid}{k}"
                self.media[key] = {"media_key": key, "type": "photo", "url": f"https://pbs.twimg.com/media/{key}.jpg", "width": 1200, "height": 800, "alt_text": "ein Foto 📷"}
                keys.append(key)
            tweet["attachments"] = {"media_keys": keys}
        elif r() < 0.02:
            rng = self.rng
            pid = str(_snowflake(ms, seq + 7))
            self.polls[pid] = {
                "id": pid,
                "options": [{"position": 1, "label": "Oui", "votes": rng.randrange(100)}, {"position": 2, "label": "Non", "votes": rng.randrange(100)}],
                "duration_minutes": 1440,
                "end_datetime": _iso(ms + 86_400_000),
                "voting_status": "closed",
            }
            tweet["attachments"] = {"poll_ids": [pid]}
        if r() < 0.05:
            pid, _, _, _, _, _, bbox = self.rng.choice(_PLACES)
            self.places[pid] = _PLACE_JSON[pid]
            tweet["geo"] = {"place_id": pid}
            if r() < 0.3:
                tweet["geo"]["coordinates"] = {"type": "Point", "coordinates": [round(bbox[0] + 0.01, 6), round(bbox[1] + 0.01, 6)]}
        if r() < 0.02:
            earlier = str(_snowflake(ms - 60_000, seq))
            tweet["edit_history_tweet_ids"] = [earlier, tid]
            tweet["edit_controls"] = {"edits_remaining": 4, "is_edit_eligible": True, "editable_until": _iso(ms + 3_600_000)}
        return tweet

    def post(self, ms: int, seq: int) -> None:
        rng = self.rng
        author = self._user()
        kind = rng.random()
        if 0.55 <= kind < 0.75:  # retweet: own text truncated, content in includes.tweets
            tid = str(_snowflake(ms, seq * 4))
            original_author = self._user()
            original = self._tweet(ms - rng.randrange(1, 86_400_000), seq * 4 + 1, original_author)
            self.tweets[original["id"]] = original
            rt_text = f"RT @{original_author['username']}: {original['text']}"
            self.data.append({
                "id": tid,
                "text": rt_text[:140] + ("…" if len(rt_text) > 140 else ""),
                "created_at": _iso(ms),
                "author_id": author["id"],
                "conversation_id": tid,
                "lang": original.get("lang"),
                "source": rng.choice(_SOURCES),
                "reply_settings": "everyone",
                "possibly_sensitive": False,
                "edit_history_tweet_ids": [tid],
                "referenced_tweets": [{"type": "retweeted", "id": original["id"]}],
                "entities": {"mentions": [{"start": 3, "end": 4 + len(original_author["username"]), "username": original_author["username"], "id": original_author["id"]}]},
                "public_metrics": dict(original["public_metrics"], like_count=0, reply_count=0),
            })
            return
        tweet = self._tweet(ms, seq * 4, author)
        if kind < 0.55:
            pass
        elif kind < 0.90:  # reply
            parent_author = self._user()
            parent = self._tweet(ms - rng.randrange(1, 3_600_000), seq * 4 + 2, parent_author)
            self.tweets[parent["id"]] = parent
            tweet["referenced_tweets"] = [{"type": "replied_to", "id": parent["id"]}]
            tweet["in_reply_to_user_id"] = parent_author["id"]
            tweet["conversation_id"] = parent["conversation_id"]
            tweet["text"] = f"@{parent_author['username']} {tweet['text']}"
        else:  # quote
            quoted_author = self._user()
            quoted = self._tweet(ms - rng.randrange(1, 86_400_000), seq * 4 + 3, quoted_author)
            self.tweets[quoted["id"]] = quoted
            tweet["referenced_tweets"] = [{"type": "quoted", "id": quoted["id"]}]
        self.data.append(tweet)

    def body(self, next_token: str | None) -> bytes:
        includes: dict = {"users": list(self.users.values())}
        for name, objects in (("tweets", self.tweets), ("media", self.media), ("places", self.places), ("polls", self.polls)):
            if objects:
                includes[name] = list(objects.values())
        meta: dict = {"newest_id": self.data[0]["id"], "oldest_id": self.data[-1]["id"], "result_count": len(self.data)}
        if next_token:
            meta["next_token"] = next_token
        return orjson.dumps({"data": self.data, "includes": includes, "meta": meta})
