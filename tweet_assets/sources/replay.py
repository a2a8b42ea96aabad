"""Replay recorded API v2 response pages: twarc2 JSON-lines archives, files or directories.

Format (twarc2, DocNow): one whole response page per line, ``{"data": [...], "includes": {...},
"meta": {...}, "errors": [...]}``, plus twarc's own ``"__twarc"`` key, which is kept out of the
landed page. Filtered-stream messages (``data`` is one object, with ``matching_rules``) are read too.

For a window ``[start, end)`` the source yields, per day, the posts whose ``created_at`` lies in
that day with their page's ``includes``, ``meta`` and ``errors`` (the API's ``start_time`` inclusive,
``end_time`` exclusive rule). A page whose posts all fall in one day is yielded byte for byte
(only ``__twarc`` removed); a page that spans days is split into one page per day.

Nothing is dropped silently:
- a line that is not JSON is yielded as received, with the day of the previous page of the same
  file (archives are written in fetch order), so ``clean_tweets`` quarantines and counts it;
- a post without a readable ``created_at`` goes with the other posts of its page;
- pages of other endpoints (users, lists, counts, compliance rows) are skipped with a warning that
  names the file and counts them.
"""

from __future__ import annotations

import glob
import logging
import os
from collections import Counter
from datetime import datetime
from typing import Iterator

import orjson
from pydantic import Field

from ..pages import NON_API_KEYS
from ..partitions import DAY_FORMAT
from .base import PostSource, SourcePage, created_at_range


class ReplaySource(PostSource):
    """Reads twarc2 JSON-lines archives (``*.jsonl``, or ``*.jsonl.gz``) under ``path``."""

    path: str = Field(description="A twarc2 JSON-lines file, or a directory searched recursively.")
    pattern: str = Field(default="*.jsonl*", description="File name pattern inside a directory.")

    @property
    def source_name(self) -> str:
        return "replay"

    def describe(self) -> str:
        return f"replay of {self.path}"

    def files(self) -> list[str]:
        """The archive files, sorted.

        Raises:
            FileNotFoundError: ``path`` does not exist or holds no matching file.
        """
        if os.path.isfile(self.path):
            return [self.path]
        if not os.path.isdir(self.path):
            raise FileNotFoundError(
                f"replay source: {self.path!r} is neither a file nor a directory; set "
                "TWEET_ASSETS_REPLAY_DIR (or the replay resource's path) to a twarc2 JSON-lines archive."
            )
        found = sorted(glob.glob(os.path.join(self.path, "**", self.pattern), recursive=True))
        if not found:
            raise FileNotFoundError(f"replay source: no file matching {self.pattern!r} under {self.path!r}.")
        return found

    def pages(self, start: datetime, end: datetime, log: logging.Logger) -> Iterator[SourcePage]:
        lo, hi = start.strftime(DAY_FORMAT), end.strftime(DAY_FORMAT)
        for path in self.files():
            yield from self._file_pages(path, lo, hi, log)

    def _file_pages(self, path: str, lo: str, hi: str, log: logging.Logger) -> Iterator[SourcePage]:
        skipped: Counter = Counter()
        last_day: str | None = None
        pending: list[tuple[str, bytes, str]] = []  # undatable lines before the file's first dated page

        def undated(location: str, body: bytes, why: str) -> Iterator[SourcePage]:
            if last_day is None:
                pending.append((location, body, why))
            elif lo <= last_day < hi:
                log.warning("%s %s; landing it as received with %s (its file's previous page)", location, why, last_day)
                yield SourcePage(last_day, body, location)

        for number, line in _lines(path):
            location = f"{path}:{number}"
            try:
                page = orjson.loads(line)
            except orjson.JSONDecodeError:
                yield from undated(location, line, "is not valid JSON")
                continue
            kind = _page_kind(page)
            if kind != "posts":
                skipped[kind] += 1
                continue
            parts = _split_by_day(page, line)
            if not parts:
                if page.get("data") or page.get("errors"):
                    body = orjson.dumps({k: v for k, v in page.items() if k not in NON_API_KEYS})
                    yield from undated(location, body, "has no post with a created_at")
                continue
            for day, body, posts in parts:
                if last_day is None and pending:
                    for plocation, pbody, why in pending:
                        if lo <= day < hi:
                            log.warning("%s %s; landing it as received with %s (the next page)", plocation, why, day)
                            yield SourcePage(day, pbody, plocation)
                    pending.clear()
                last_day = day
                if lo <= day < hi:
                    earliest, latest = created_at_range(posts)
                    errors = page.get("errors")
                    yield SourcePage(
                        day,
                        body,
                        location,
                        posts=len(posts),
                        api_errors=len(errors) if isinstance(errors, list) else 0,
                        earliest=earliest,
                        latest=latest,
                    )
        if pending:
            log.warning(
                "%s: %d line(s) could not be dated (%s) and the file has no dated page; not replayed",
                path,
                len(pending),
                ", ".join(loc for loc, _, _ in pending),
            )
        if skipped:
            log.warning("%s: skipped pages of other endpoints (no posts): %s", path, dict(skipped))


def _lines(path: str) -> Iterator[tuple[int, bytes]]:
    if path.endswith(".gz"):
        import gzip

        handle = gzip.open(path, "rb")
    else:
        handle = open(path, "rb")
    with handle:
        for number, line in enumerate(handle, start=1):
            line = line.rstrip(b"\r\n")
            if line.strip():
                yield number, line


def _page_kind(page) -> str:
    """``posts`` for a page of posts; otherwise what it is (``users``, ``counts``, ``other``)."""
    if not isinstance(page, dict):
        return "other"
    data = page.get("data")
    items = [data] if isinstance(data, dict) else data
    if not isinstance(items, list):
        return "no_data" if "id" not in page else "other"
    if not items:
        return "posts" if "meta" in page or "errors" in page else "no_data"
    first = items[0] if isinstance(items[0], dict) else {}
    if "text" in first or "edit_history_tweet_ids" in first or "author_id" in first:
        return "posts"
    if "username" in first:
        return "users"
    if "tweet_count" in first:
        return "counts"
    return "other"


def _split_by_day(page: dict, line: bytes) -> list[tuple[str, bytes, list[dict]]]:
    """``[(day, page bytes, posts)]``: the page itself if all its posts share a day, else one
    sub-page per day (same ``includes``, ``meta``, ``errors``). Undated posts go with the first day.
    """
    data = page.get("data")
    stream = isinstance(data, dict)
    posts = [data] if stream else list(data or [])
    by_day: dict[str, list[dict]] = {}
    undated: list[dict] = []
    for post in posts:
        stamp = post.get("created_at") if isinstance(post, dict) else None
        day = _day_of(stamp)
        if day is None:
            undated.append(post)
        else:
            by_day.setdefault(day, []).append(post)
    if not by_day:  # nothing dated: the caller lands it with a neighbouring page's day
        return []
    first = next(iter(by_day))
    by_day[first].extend(undated)
    has_extra_keys = any(k in page for k in NON_API_KEYS)
    if len(by_day) == 1 and not has_extra_keys:
        return [(first, line, by_day[first])]
    base = {k: v for k, v in page.items() if k not in NON_API_KEYS}
    out = []
    for day, day_posts in by_day.items():
        base["data"] = day_posts[0] if stream and len(day_posts) == 1 else day_posts
        out.append((day, orjson.dumps(base), day_posts))
    return out


def _day_of(stamp) -> str | None:
    if not isinstance(stamp, str) or len(stamp) < 10:
        return None
    day = stamp[:10]
    try:
        datetime.strptime(day, DAY_FORMAT)
    except ValueError:
        return None
    return day
