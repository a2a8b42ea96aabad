"""Replay recorded API v2 response pages: twarc2 JSON-lines archives, files or directories.

Format (twarc2, DocNow): one whole response page per line, ``{"data": [...], "includes": {...},
"meta": {...}, "errors": [...]}``, plus twarc's own ``"__twarc"`` key (``url``, ``version``,
``retrieved_at``), which is landed with the page: the raw zone holds the page as it was archived.
Filtered-stream messages (``data`` is one object, with ``matching_rules``) are read too. Files may be
plain or gzip (told by their first bytes, not their name: :mod:`.jsonl_files`).

For a window ``[start, end)`` the source yields, per UTC day, the posts whose ``created_at`` lies in
that day (the API's ``start_time`` inclusive, ``end_time`` exclusive rule). A page whose posts all
fall in one day is yielded byte for byte; a page that spans days is split into one page per day,
each with only the ``includes`` its posts expand to and each ``errors`` entry in exactly one piece
(:mod:`.day_split`).

Nothing is dropped silently. A page is classified by everything its ``data`` holds, not by its first
item: it is a page of posts when any item has a field only posts have (``text``, ``author_id``,
``edit_history_tweet_ids``, ...) or when no item is recognisably another endpoint's object. Then:

- posts with an unreadable ``created_at`` (or ``null`` items) go with their page, whose other
  posts give the day; ``clean_tweets`` quarantines them with the reason;
- a JSON array of pages (``[page, ...]``) is read as its pages;
- a line with invalid UTF-8 is read with U+FFFD replacement characters: a page of one day is still
  landed byte for byte (``clean_tweets`` reads it the same way and counts the replacements), a page
  that spans days is split from the replaced text;
- a UTF-8 byte order mark at the start of a file is removed;
- what cannot be dated is landed as received and quarantined, counted, by ``clean_tweets``: a line
  that is not JSON, a JSON value that is not an object, a page none of whose posts has a readable
  ``created_at``, a page of API ``errors`` without ``data`` (all requested posts deleted, a
  suspended user; landed and counted in ``api_errors``), and, for a damaged file (a truncated or
  corrupt gzip stream), a line naming the file, the byte offset and the damage, after whatever the
  readable part holds. Such a line goes to a deterministic day, so that it lands in exactly one
  partition whatever the runs' windows: the day of the previous dated page of its file, else of the
  next one; for a file with no dated page, the last day of the files before it, else the first day
  of the files after it; only an archive with no dated page at all lands it with the run's first
  day (every run then lands and quarantines it again). Each placement is logged as a warning;
  a damaged file is logged as an error and listed in ``raw_tweets``' ``damaged_input`` metadata;
  reading goes on with the next file.
- pages of other endpoints (users, lists, counts, compliance rows, twarc2 ``flatten`` output) are
  skipped with a warning that names the file and counts them.
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter, deque
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from operator import itemgetter
from typing import Callable, Iterator

import orjson
from pydantic import Field

from tweet_assets.partitions import DAY_FORMAT
from tweet_assets.sources.base import ConfigurationError, PostSource, SourcePage
from tweet_assets.sources.day_split import split_by_day
from tweet_assets.sources.archive_files import ArchiveListing, list_archive
from tweet_assets.sources.jsonl_files import JsonLinesFile
from tweet_assets.transform.pages import TWEET
from tweet_assets.transform.tolerant import read_page

#: Top-level fields of the Post object that no other API v2 object has (X API v2 data dictionary).
POST_FIELDS = frozenset(
    {"text", "edit_history_tweet_ids", "author_id", "conversation_id", "referenced_tweets", "in_reply_to_user_id", "note_tweet", "attachments", "reply_settings"}
)
#: Fields that mark another endpoint's object, and its name for the warning.
OTHER_FIELDS = {
    "username": "users",
    "tweet_count": "counts",
    "start": "counts",
    "member_count": "lists",
    "follower_count": "lists",
    "owner_id": "lists",
    "private": "lists",
    "action": "compliance",
    "redacted_at": "compliance",
    "host_ids": "spaces",
    "state": "spaces",
    "event_type": "dm_events",
    "name": "other",
    "description": "other",
}
_CREATED = itemgetter("created_at")
_DAY = itemgetter(slice(0, 10))
_TEXT = itemgetter("text")
_DAY_RE = re.compile(r"\d{4}-\d{2}-\d{2}\Z")
LOGGED_PER_FILE = 5


class ReplaySource(PostSource):
    """Reads twarc2 JSON-lines archives (``*.jsonl``, or ``*.jsonl.gz``) under ``path``."""

    path: str = Field(description="A twarc2 JSON-lines file, or a directory searched recursively.")
    pattern: str = Field(default="*.jsonl*", description="File name pattern inside a directory (matched case-insensitively, hidden files included).")
    follow_outside_links: bool = Field(
        default=False, description="Read symbolic links whose target lies outside the archive directory (refused, named and counted, by default)."
    )

    @property
    def source_name(self) -> str:
        return "replay"

    @classmethod
    def from_env(cls, env, lake=None) -> "ReplaySource":
        """``TWEET_ASSETS_REPLAY_DIR``: the twarc2 JSON-lines file or directory.

        Raises:
            ConfigurationError: the variable is not set.
        """
        path = env.get("TWEET_ASSETS_REPLAY_DIR", "").strip()
        if not path:
            raise ConfigurationError("TWEET_ASSETS_SOURCE=replay needs TWEET_ASSETS_REPLAY_DIR: a twarc2 JSON-lines file or directory.")
        return cls(path=path)

    def describe(self) -> str:
        return f"replay of {self.path}"

    def files(self) -> list[str]:
        """The archive files, sorted (see :meth:`scan`; refused entries are left out here).

        Raises:
            FileNotFoundError: ``path`` does not exist or holds no matching file.
        """
        return self.scan().files

    def scan(self) -> ArchiveListing:
        """The archive's files and the entries refused, by :func:`list_archive` (``pattern``
        matched case-insensitively, hidden files included, links that leave ``path`` refused
        unless ``follow_outside_links``).

        Raises:
            FileNotFoundError: ``path`` does not exist or holds no matching file.
        """
        return list_archive(self.path, self.pattern, self.follow_outside_links)

    def pages(self, start: datetime, end: datetime, log: logging.Logger) -> Iterator[SourcePage]:
        """Yield the pages of posts created in ``[start, end)``, per day; see the module docstring.

        Raises:
            FileNotFoundError: no archive at ``path``.
            OSError: a file cannot be opened or read (damaged content does not raise).
        """
        lo, hi = start.strftime(DAY_FORMAT), end.strftime(DAY_FORMAT)
        files = self._listed(log)
        index = _INDEXES.get(_index_key(files))
        if index is not None and index.usable:  # read only the lines of the window's days (#31 point 4)
            log.info("replay: reading only the lines of %s…%s, from the index of the archive built by its scan (its warnings were logged then)", lo, hi)
            yield from index.pages(files, lo, hi)
            return
        for placed in _Placer(lo, log).archive(files):
            if lo <= placed.day < hi:
                yield placed.page()

    def days(self, log: logging.Logger) -> Counter:
        """Posts per UTC day (``{YYYY-MM-DD: posts}``) over the whole archive, without building the
        split pages: what a run of each day would land. Lines that cannot be dated are counted
        under the day they would land with (an archive without any dated page: under ``None``)."""
        found: Counter = Counter()
        files = self._listed(log)
        index = _ArchiveIndex()
        for placed in index.record(_Placer(None, log).archive(files)):
            found[placed.day] += placed.posts
        index.usable = index.usable and None not in found
        _INDEXES[_index_key(files)] = index
        return found

    def _listed(self, log: logging.Logger) -> list[str]:
        listing = self.scan()
        listing.log(log)
        return listing.files


def _index_key(files: list[str]) -> tuple:
    """The archive as it is now: each file's path, size and modification time (ns)."""
    key = []
    for path in files:
        try:
            st = os.stat(path)
        except OSError:
            return (None,)
        key.append((path, st.st_size, st.st_mtime_ns))
    return tuple(key)


class _ArchiveIndex:
    """Which lines of which file give pages to which day, from one full pass over the archive
    (:meth:`ReplaySource.days`, the replay planner's scan), so that each later run
    parses only its days' lines (#31 point 4: the sparse replay parsed the whole archive for each
    of its runs). ``lines[day][path]`` holds line numbers; ``undated[location]`` the day an undated
    line was given by its neighbours (kept, not recomputed, so a run of a few days lands it where
    the full pass did). Not used (``usable`` False) for an archive with a damaged file or without
    any dated page: those are read whole, as before."""

    def __init__(self):
        self.lines: dict = {}
        self.undated: dict[str, str] = {}
        self.usable = True

    def record(self, placed: Iterator[_Placed]) -> Iterator[_Placed]:
        for item in placed:
            if item.damaged or item.line is None:
                self.usable = False
            else:
                self.lines.setdefault(item.day, {}).setdefault(item.path, set()).add(item.line)
                if item.undated:
                    self.undated[item.location] = item.day
            yield item

    def pages(self, files: list[str], lo: str, hi: str) -> Iterator[SourcePage]:
        wanted: dict[str, set] = {}
        for day, by_path in self.lines.items():
            if day is not None and lo <= day < hi:
                for path, numbers in by_path.items():
                    wanted.setdefault(path, set()).update(numbers)
        for path in files:
            numbers = wanted.get(path)
            if not numbers:
                continue
            skipped: Counter = Counter()
            replaced: Counter = Counter()
            for number, line in JsonLinesFile(path).lines():
                if number not in numbers:
                    continue
                for thing in _read_line(line, f"{path}:{number}", skipped, replaced):
                    if isinstance(thing, _Undated):
                        thing = thing.at(self.undated.get(thing.location))
                    if thing.day is not None and lo <= thing.day < hi:
                        yield thing.page()


#: Archive indexes of this process, by :func:`_index_key` (the CLI's replay runs in one process).
_INDEXES: dict[tuple, _ArchiveIndex] = {}


@dataclass
class _Placed:
    """A page placed in a day; its bytes are built only when asked for (a split page's piece)."""

    day: str | None
    location: str
    build: Callable[[], bytes]
    posts: int = 0
    api_errors: int = 0
    earliest: str | None = None
    latest: str | None = None
    damaged: str | None = None
    path: str | None = None  # the file and line it came from (the archive index)
    line: int | None = None
    undated: bool = False

    def page(self) -> SourcePage:
        return SourcePage(
            day=self.day,
            body=self.build(),
            location=self.location,
            posts=self.posts,
            api_errors=self.api_errors,
            earliest=self.earliest,
            latest=self.latest,
            damaged=self.damaged,
        )


@dataclass
class _Undated:
    """Something that holds no readable ``created_at``: landed as received with a neighbour's day."""

    body: bytes
    location: str
    why: str
    posts: int = 0
    api_errors: int = 0
    damaged: str | None = None
    outcome: str = "quarantined by clean_tweets"
    path: str | None = None
    line: int | None = None

    def at(self, day: str | None) -> _Placed:
        body = self.body
        return _Placed(day, self.location, lambda: body, self.posts, self.api_errors, damaged=self.damaged, path=self.path, line=self.line, undated=True)


class _Placer:
    """Reads the archive's files in order and gives every undated line its deterministic day."""

    def __init__(self, first_day: str | None, log: logging.Logger):
        self.first_day = first_day  # the run's first day: the last resort
        self.log = log
        self.last_day: str | None = None  # of the archive so far
        self.waiting: list[_Undated] = []  # of files without a dated page, before any dated page

    def archive(self, paths: list[str]) -> Iterator[_Placed]:
        for path in paths:
            yield from self._file(path)
        if self.waiting:
            self.log.warning(
                "replay: no page of the archive has a dated post; %d undated line(s) landed with the run's first day %s: %s",
                len(self.waiting),
                self.first_day,
                ", ".join(u.location for u in self.waiting[:LOGGED_PER_FILE]),
            )
            for item in self.waiting:
                yield item.at(self.first_day)

    def _file(self, path: str) -> Iterator[_Placed]:
        archive = JsonLinesFile(path)
        skipped: Counter = Counter()
        pending: list[_Undated] = []  # undated lines before the file's first dated page
        file_day: str | None = None
        logged = 0

        def place(item: _Undated, day: str | None, rule: str) -> _Placed:
            nonlocal logged
            logged += 1
            if logged <= LOGGED_PER_FILE:
                self.log.warning("%s %s; landed as received with %s (%s), %s", item.location, item.why, day, rule, item.outcome)
            return item.at(day)

        replaced: Counter = Counter()
        for number, line in archive.lines():
            location = f"{path}:{number}"
            for thing in _read_line(line, location, skipped, replaced):
                thing.path, thing.line = path, number
                if isinstance(thing, _Undated):
                    if file_day is None:
                        pending.append(thing)
                    else:
                        yield place(thing, file_day, "the previous page of its file")
                    continue
                if pending:
                    for item in pending:
                        yield place(item, thing.day, "the next page of its file")
                    pending.clear()
                file_day = self.last_day = thing.day
                if self.waiting:
                    for item in self.waiting:
                        yield place(item, thing.day, "the first dated page of the files after it")
                    self.waiting.clear()
                yield thing
        if archive.damage is not None:
            damage = str(archive.damage)
            self.log.error("replay: damaged file: %s; going on with the other files", damage)
            head = f"unreadable rest of damaged file {os.path.basename(path)} from byte {archive.damage.offset:,}"  # first: quarantine details show 80 characters
            marker = f"{head}: {damage}".replace("\n", " ").encode("utf-8", "replace")
            item = _Undated(marker, f"{path}@{archive.damage.offset}", "is a damaged file's unreadable rest", damaged=damage)
            if file_day is None:
                pending.append(item)
            else:
                yield place(item, file_day, "the previous page of its file")
        if archive.note:
            self.log.warning("replay: %s", archive.note)
        if archive.bom:
            self.log.warning("replay: %s starts with a UTF-8 byte order mark; removed", path)
        if replaced["lines"]:
            self.log.warning("replay: %s: %d line(s) had invalid UTF-8, read with U+FFFD replacement characters", path, replaced["lines"])
        if replaced["tolerant_lines"]:
            self.log.warning(
                "replay: %s: %d page(s) refused by orjson read by the tolerant reader: %d lone surrogate(s) replaced by U+FFFD, %d unreadable post(s) (quarantined by clean_tweets)",
                path,
                replaced["tolerant_lines"],
                replaced["surrogates"],
                replaced["unreadable_posts"],
            )
        if pending:
            if self.last_day is not None:
                for item in pending:
                    yield place(item, self.last_day, "the last dated page of the files before it")
            else:
                self.waiting.extend(pending)
        if logged > LOGGED_PER_FILE:
            self.log.warning("%s: %d undated line(s) in all, landed with a neighbour's day", path, logged)
        if skipped:
            self.log.warning("%s: skipped pages of other endpoints (no posts): %s", path, dict(skipped))


def _read_line(line: bytes, location: str, skipped: Counter, replaced: Counter) -> Iterator[_Placed | _Undated]:
    """What one archive line holds: placed pages (per day), undated things to land, or nothing
    (another endpoint's page, counted in ``skipped``). A line with invalid UTF-8 is read with
    replacement characters (counted in ``replaced['lines']``)."""
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        try:
            value = orjson.loads(line.decode("utf-8", errors="replace"))  # only helps when not UTF-8
        except orjson.JSONDecodeError:
            yield from _read_tolerantly(line, location, skipped, replaced)
            return
        replaced["lines"] += 1
    if isinstance(value, dict):
        yield from _read_page(value, line, location, skipped)
    elif isinstance(value, list) and any(isinstance(v, dict) for v in value):
        for i, item in enumerate(value):  # an array of pages: each is a page; anything else in it is landed
            if isinstance(item, dict):
                yield from _read_page(item, None, f"{location}[{i}]", skipped)
            else:
                yield _Undated(orjson.dumps(item), f"{location}[{i}]", f"is a JSON {type(item).__name__} in an array of pages")
    else:
        yield _Undated(line, location, f"is a JSON {type(value).__name__}, not a page object")


def _read_tolerantly(line: bytes, location: str, skipped: Counter, replaced: Counter) -> Iterator[_Placed | _Undated]:
    """A line orjson refused, read by the tolerant reader (:mod:`tweet_assets.transform.tolerant`):
    dated from its readable posts like any page (landed byte for byte when of one day; the
    unreadable posts' placeholders, which keep their text, go with the first piece of a split page
    and are quarantined by ``clean_tweets``). Lone surrogates replaced are counted in
    ``replaced['surrogates']``, unreadable posts in ``replaced['unreadable_posts']``. A line
    unreadable as a whole is landed as received, with the posts the reader found in it."""
    found = read_page(line, TWEET)
    if found.page is None:
        posts = "its posts unknown" if found.data_items is None else f"{found.data_items} post(s) in its data"
        yield _Undated(line, location, "is not valid JSON", posts=found.data_items or 0, outcome=f"quarantined by clean_tweets ({posts}; {found.error[:120]})")
        return
    replaced["tolerant_lines"] += 1
    replaced["surrogates"] += found.surrogates
    replaced["unreadable_posts"] += len(found.unreadable)
    yield from _read_page(found.page, line, location, skipped)


def _read_page(page: dict, line: bytes | None, location: str, skipped: Counter) -> Iterator[_Placed | _Undated]:
    """``line`` is the page's bytes as received, or None when it must be serialized (from an array)."""
    data = page.get("data")
    stream = isinstance(data, dict)
    posts = [data] if stream else data
    errors = page.get("errors")
    n_errors = len(errors) if isinstance(errors, list) else 0
    # fast path: every item a post with a created_at and a text, all of one valid day
    if isinstance(posts, list) and posts:
        try:
            stamps = list(map(_CREATED, posts))
            days = set(map(_DAY, stamps))
            deque(map(_TEXT, posts), 0)
            if any(s[-6:-5] in ("+", "-") for s in stamps):  # an RFC 3339 offset: its UTC day, on the slow path
                days = None
        except (KeyError, TypeError, IndexError):
            days = None
        if days is not None and len(days) == 1:
            day = next(iter(days))
            if _valid_day(day):
                body = line if line is not None else orjson.dumps(page)
                stamps = list(map(_CREATED, posts))
                yield _Placed(day, location, lambda: body, len(posts), n_errors, min(stamps), max(stamps))
                return
    # slow path: classify by every item, then split by day
    if not isinstance(posts, list) or not posts:
        if n_errors:
            yield _Undated(_bytes(page, line), location, "holds API errors and no posts", api_errors=n_errors, outcome="its errors counted in api_errors")
        elif "id" in page:
            skipped["flattened_posts" if POST_FIELDS & page.keys() else _other_kind(page) or "other"] += 1
        else:
            skipped["no_data"] += 1
        return
    kind = _page_kind(posts)
    if kind != "posts":
        skipped[kind] += 1
        return
    days = [_day_of(p.get("created_at")) if isinstance(p, dict) else None for p in posts]
    if not any(days):
        yield _Undated(_bytes(page, line), location, "has no post with a readable created_at", posts=len(posts), api_errors=n_errors)
        return
    pieces = split_by_day(page, posts, days)
    if len(pieces) == 1:  # one day, but some post without a readable day: as received
        body = _bytes(page, line)
        piece = pieces[0]
        stamps = _stamps(piece.posts)
        yield _Placed(piece.day, location, lambda: body, len(posts), n_errors, *stamps)
        return
    for piece in pieces:
        yield _Placed(
            piece.day,
            location,
            lambda piece=piece: piece.body(page, stream),
            len(piece.posts),
            len(piece.errors),
            *_stamps(piece.posts),
        )


def _bytes(page: dict, line: bytes | None) -> bytes:
    return line if line is not None else orjson.dumps(page)


def _stamps(posts: list) -> tuple[str | None, str | None]:
    stamps = [p["created_at"] for p in posts if isinstance(p, dict) and isinstance(p.get("created_at"), str) and _day_of(p["created_at"])]
    return (min(stamps), max(stamps)) if stamps else (None, None)


def _other_kind(item: dict) -> str | None:
    for key, kind in OTHER_FIELDS.items():  # in OTHER_FIELDS' order: ``username`` before ``name``
        if key in item:
            return kind
    return None


def _page_kind(items: list) -> str:
    """``posts`` when any item has a post-only field, or when no item is recognisably another
    endpoint's object (nulls, bare ids: ``clean_tweets`` judges them); else that endpoint."""
    other = None
    for item in items:
        if not isinstance(item, dict):
            continue
        if not POST_FIELDS.isdisjoint(item.keys()):
            return "posts"
        other = other or _other_kind(item)
    return other or "posts"


@lru_cache(maxsize=4096)
def _valid_day(day: str) -> bool:
    if not _DAY_RE.match(day):
        return False
    try:
        datetime.strptime(day, DAY_FORMAT)
    except ValueError:
        return False
    return True


def _day_of(stamp) -> str | None:
    """The UTC day of a ``created_at``: its first 10 characters, or, for an RFC 3339 time with an
    offset (``2021-06-12T01:00:00+02:00``), the day of that time in UTC (``2021-06-11``), as
    ``clean_tweets`` converts it."""
    if not isinstance(stamp, str) or len(stamp) < 10:
        return None
    day = stamp[:10]
    if len(stamp) > 19 and stamp[-6:-5] in ("+", "-") and stamp[-3:-2] == ":":
        try:
            day = datetime.fromisoformat(stamp).astimezone(timezone.utc).strftime(DAY_FORMAT)
        except ValueError:
            pass
    return day if _valid_day(day) else None
