"""The source interface: a Dagster resource that yields a window's API v2 response pages.

A source knows nothing of storage or flattening. It yields :class:`SourcePage` objects, each one
whole response body as bytes (``{"data", "includes", "meta", "errors"}``), tagged with the UTC day
(partition key) it belongs to. ``raw_tweets`` streams them to the lake unchanged.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Iterator

from dagster import ConfigurableResource

from tweet_assets.partitions import DAY_FORMAT


class ConfigurationError(ValueError):
    """A setting is missing or wrong; the message names the variable and what to set."""


@dataclass(frozen=True)
class SourcePage:
    """One API response page and where it belongs.

    Attributes:
        day: partition key ``YYYY-MM-DD`` (UTC) the page's posts were created on.
        body: the page as one JSON object in UTF-8 bytes, no trailing newline. Bytes that are not
            valid JSON are allowed here (they are landed as received and quarantined later).
        location: where it came from, for logs and quarantine records (``file:line``, or the
            endpoint and page number).
        posts: number of posts in ``data``.
        api_errors: number of entries in ``errors``.
        earliest, latest: smallest and largest ``created_at`` in ``data`` (RFC 3339, UTC), or None.
        requests, retries, rate_limit_wait_s: what fetching the page cost (API sources; 0 otherwise):
            HTTP requests made, of which retries, and seconds slept waiting for rate-limit resets.
        damaged: set on a line that stands for a damaged input's unreadable rest (a truncated or
            corrupt archive file): what was damaged and where (file, byte offset), for the run's
            log and metadata; None otherwise.
    """

    day: str
    body: bytes
    location: str
    posts: int = 0
    api_errors: int = 0
    earliest: str | None = None
    latest: str | None = None
    requests: int = 0
    retries: int = 0
    rate_limit_wait_s: float = 0.0
    damaged: str | None = None


class PostSource(ConfigurableResource):
    """Interface of every source (``replay``, ``sample``, ``x_api``); pick one per environment."""

    @property
    def source_name(self) -> str:
        """Short name shown in metadata (``replay``, ``sample``, ``x_api``)."""
        raise NotImplementedError

    @classmethod
    def from_env(cls, env: Mapping[str, str], lake=None) -> "PostSource":
        """The source configured by the environment variables it documents (``lake``: the
        :class:`~tweet_assets.lake.io_manager.LakeResource`, for sources that read the lake).

        Raises:
            ConfigurationError: a setting the source needs is missing or malformed.
        """
        raise NotImplementedError(f"{cls.__name__} has no from_env")

    def describe(self) -> str:
        """One line for logs and metadata saying what the source reads, without secrets."""
        return self.source_name

    def pages(self, start: datetime, end: datetime, log: logging.Logger) -> Iterator[SourcePage]:
        """Yield every page with posts created in ``[start, end)`` (aware UTC datetimes, 00:00Z).

        Pages may come in any day order; each carries its day. Raises on configuration errors
        (missing path, bad credential) with a message that says what to set.
        """
        raise NotImplementedError

    def spend_plan(self, start: datetime, end: datetime, log: logging.Logger):
        """What reading ``[start, end)`` would spend of a metered API, before any post is read: a
        :class:`~tweet_assets.sources.budget.SpendPlan` (the X API source), or None for a source
        that reads no metered API (default)."""
        return None

    def day_metadata(self) -> dict[str, dict]:
        """What the last :meth:`pages` call learnt about each day beyond its pages, as
        ``{partition key: {metadata name: value}}`` (e.g. the API's own post count, a limit hit);
        ``raw_tweets`` adds it to the day's metadata once the pages are consumed. Default: none."""
        return {}


def created_at_range(posts: list[dict]) -> tuple[str | None, str | None]:
    """Smallest and largest ``created_at`` string among ``posts`` (RFC 3339 sorts as text)."""
    stamps = [p["created_at"] for p in posts if isinstance(p, dict) and isinstance(p.get("created_at"), str)]
    return (min(stamps), max(stamps)) if stamps else (None, None)


_DAY = re.compile(r"\d{4}-\d{2}-\d{2}\Z")


def day_of(stamp) -> str | None:
    """The UTC day ``YYYY-MM-DD`` (partition key) of a post's ``created_at`` (RFC 3339, as the
    X API v2 writes it: ``2021-06-26T23:59:58.000Z``): its first 10 characters when they are a
    real calendar date; None for anything else (not a string, too short, ``2021-02-30``). The
    one rule every source places posts by."""
    if not isinstance(stamp, str) or len(stamp) < 10:
        return None
    day = stamp[:10]
    if not _DAY.match(day):
        return None
    try:
        datetime.strptime(day, DAY_FORMAT)
    except ValueError:
        return None
    return day
