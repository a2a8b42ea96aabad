"""The filtered stream as a source: a day's landed segments, read back as the day's pages.

``tweet-assets stream`` (:mod:`tweet_assets.stream`) lands each message under
``<lake>/raw_stream/dt=YYYY-MM-DD/<start>-<end>.jsonl.gz`` by the UTC day of its post's
``created_at``. For a run's window this source lists each day's segments (sorted by name, that is
by receive time) and yields every message as one page with its keys and values as landed and
one change: the message's ``data`` object becomes a one-element list, ``{"data": [post],
"includes", "matching_rules", "__twarc"}``: the search page shape, so ``raw_tweets``,
``clean_tweets`` (which keeps each post's ``matching_rules`` and ``__twarc`` and dedups a post
delivered twice), ``s3_parquet``, the checks and Athena need no change. (``clean_tweets`` also reads
the object form, but only one page at a time: 500 messages took 2.96 s to flatten against 0.27 s as
one-element lists: ``flatten.flatten_day`` on the 500 posts of the shared twarc-network recording,
cut into messages.)
The segments themselves keep the bytes as received. A line that is not JSON is yielded as it is (quarantined by
``clean_tweets``, counted). A segment that cannot be read (not gzip, truncated) fails the run naming
its key: segments are published whole, so that is damage to look at, not to skip.

Only segments published when the run starts are read: a day is complete once it ended plus the
consumer's roll time (``tweet_assets.defs.stream.days.stream_day_sensor`` waits that long). Messages about a day that
arrive later (a post delivered after a long reconnect) land in new segments; rematerializing the
day takes them in.

``day_metadata`` gives each day ``stream_segments``, ``stream_newest_segment_end`` and the
consumer's active rules with their ids (``stream_rules``, from ``raw_stream/_consumer/rules.json``).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Iterator

import orjson
from dagster import MetadataValue
from isal import igzip
from pydantic import Field, PrivateAttr

from tweet_assets.lake.io_manager import LakeResource
from tweet_assets.lake.store import LakeError
from tweet_assets.partitions import days_in_window
from tweet_assets.sources.base import ConfigurationError, PostSource, SourcePage

PREFIX = "raw_stream"
RULES_KEY = "_consumer/rules.json"


class StreamSource(PostSource):
    """Pages of the filtered stream's landed segments in the lake (``location``)."""

    location: LakeResource = Field(description="The lake the consumer publishes to (TWEET_ASSETS_LAKE_URL).")
    prefix: str = Field(default=PREFIX, description="Segments' prefix in the lake.")
    _day_metadata: dict = PrivateAttr(default_factory=dict)

    @property
    def source_name(self) -> str:
        return "stream"

    @classmethod
    def from_env(cls, env, lake=None) -> "StreamSource":
        """The filtered stream's segments in the lake the consumer publishes to (``lake``)."""
        if lake is None:
            raise ConfigurationError("TWEET_ASSETS_SOURCE=stream reads the lake: set TWEET_ASSETS_LAKE_URL.")
        return cls(location=lake)

    def describe(self) -> str:
        return f"filtered-stream segments under {self.location.lake().uri(self.prefix)}"

    def segments(self, day: str) -> list[str]:
        """The keys of ``day``'s published segments, in receive order."""
        return [k for k in self.location.lake().list(f"{self.prefix}/dt={day}/") if k.endswith(".jsonl.gz")]

    def pages(self, start: datetime, end: datetime, log: logging.Logger) -> Iterator[SourcePage]:
        """One page per landed message of ``[start, end)``'s days.

        Raises:
            LakeError: a segment cannot be listed, read or decompressed (the message names it).
        """
        lake = self.location.lake()
        rules = self._rules(lake, log)
        self._day_metadata = {}
        for day in days_in_window(start, end):
            keys = self.segments(day)
            log.info("%s: %d stream segment(s)", day, len(keys))
            for key in keys:
                try:
                    text = igzip.decompress(lake.read_bytes(key))
                except (OSError, EOFError, ValueError) as exc:
                    raise LakeError(f"stream segment {lake.uri(key)} cannot be read: {exc}") from exc
                for n, line in enumerate(text.splitlines(), 1):
                    if line.strip():
                        yield _page(day, line, f"{lake.uri(key)}:{n}")
            newest = max((k.rsplit("-", 1)[-1].removesuffix(".jsonl.gz") for k in keys), default="")
            self._day_metadata[day] = {"stream_segments": len(keys), "stream_newest_segment_end": newest, "stream_rules": MetadataValue.json(rules)}

    def day_metadata(self) -> dict[str, dict]:
        return self._day_metadata

    def _rules(self, lake, log) -> list:
        if lake.size(f"{self.prefix}/{RULES_KEY}") is None:
            return []
        try:
            return orjson.loads(lake.read_bytes(f"{self.prefix}/{RULES_KEY}")).get("rules") or []
        except (orjson.JSONDecodeError, AttributeError) as exc:
            log.warning("the consumer's rules record is unreadable: %s", exc)
            return []


def _page(day: str, line: bytes, location: str) -> SourcePage:
    try:
        message = orjson.loads(line)
    except orjson.JSONDecodeError:
        return SourcePage(day=day, body=line, location=location)
    if not isinstance(message, dict):
        return SourcePage(day=day, body=line, location=location)
    data, errors = message.get("data"), message.get("errors")
    stamp = data.get("created_at") if isinstance(data, dict) and isinstance(data.get("created_at"), str) else None
    if isinstance(data, dict):
        message["data"] = [data]  # the search page shape: decoded in bulk downstream
        line = orjson.dumps(message)
    return SourcePage(
        day=day,
        body=line,
        location=location,
        posts=1 if isinstance(data, dict) else 0,
        api_errors=len(errors) if isinstance(errors, list) else 0,
        earliest=stamp,
        latest=stamp,
    )
