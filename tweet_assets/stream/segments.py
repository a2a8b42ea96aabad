"""Landing stream messages durably: a local spool per day, published to the lake as segments.

**Durability promise.** A message counts as received only once its line is in the day's spool file:
one ``write(2)`` of the whole line and its newline on a file opened ``O_APPEND``, followed by
``fsync(2)`` (``fsync=True``, the default: the line survives a power loss or kernel crash) or not
(``fsync=False``: it survives the process being killed, ``SIGKILL`` included, since it is in the
kernel's page cache). So a kill loses at most what was still in the socket or in the consumer's
line buffer (part of one message); nothing counted as received.

**Segments.** Every spool is published as one object
``<prefix>/dt=YYYY-MM-DD/<start>-<end>.jsonl.gz`` (gzip JSON lines, ``start``/``end`` the receive
times of its first and last message, UTC, ``YYYYMMDDTHHMMSSmmmZ``) when it is ``max_age_s`` old
or ``max_bytes`` big, on shutdown, and on restart. Publishing is: rename the spool to its sealed
name (``<start>-<end>.jsonl``, atomic on the local file system), gzip it, store it with the lake's
atomic write (:mod:`tweet_assets.lake.store`: a renamed temporary file, or one S3 ``PutObject`` /
multipart upload), then delete the sealed spool. A reader never sees half a segment.

**Lake outage.** A segment the lake refuses (S3 unreachable, 5xx, a permission) stays sealed in
the spool and is retried every ``retry_s`` (60 s) while messages keep being received; what is still
refused at shutdown is published by the next start. Disk space is the limit: watch the spool's
file system (``segments_waiting`` in the health record).

**Restart.** :meth:`SegmentWriter.recover` publishes what a crash left, first: sealed spools under
their names (a crash between upload and delete republishes the same bytes under the same key: no
duplicate), open spools cut back to their last complete line (a line without its newline was
never counted as received) and sealed with their file's modification time as ``end``.

The ``dt`` is the UTC day of the post's ``created_at`` (the partition rule of
:mod:`tweet_assets.partitions`); a message without a readable one (an ``errors``-only message) goes
to the day it was received.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

from isal import igzip

from tweet_assets import config

from tweet_assets.lake.store import Lake, LakeError

PREFIX = "raw_stream"
MAX_AGE_S = config.NUMBERS["TWEET_ASSETS_STREAM_SEGMENT_SECONDS"].default
MAX_BYTES = 16 << 20
RETRY_S = 60.0
STAMP = "%Y%m%dT%H%M%S"
_OPEN = re.compile(r"(\d{8}T\d{9}Z)\.jsonl\Z")
_SEALED = re.compile(r"(\d{8}T\d{9}Z)-(\d{8}T\d{9}Z)\.jsonl\Z")
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}\Z")
log = logging.getLogger("tweet_assets.stream")


def stamp(epoch_ms: int) -> str:
    """``YYYYMMDDTHHMMSSmmmZ`` (UTC) of a time in ms since the epoch: sortable as text."""
    moment = datetime.fromtimestamp(epoch_ms / 1000, timezone.utc)
    return moment.strftime(STAMP) + f"{epoch_ms % 1000:03d}Z"


def parse_stamp(text: str) -> int:
    """Inverse of :func:`stamp`: ms since the epoch. Raises ValueError on another format."""
    moment = datetime.strptime(text[:15], STAMP).replace(tzinfo=timezone.utc)
    return int(moment.timestamp()) * 1000 + int(text[15:18])


def segment_key(day: str, start_ms: int, end_ms: int, prefix: str = PREFIX) -> str:
    """The lake key of a segment: ``<prefix>/dt=<day>/<start>-<end>.jsonl.gz``."""
    return f"{prefix}/dt={day}/{stamp(start_ms)}-{stamp(end_ms)}.jsonl.gz"


@dataclass
class _Spool:
    day: str
    path: str
    fd: int
    start_ms: int
    end_ms: int
    bytes: int = 0
    messages: int = 0


class SegmentWriter:
    """Appends message lines to per-day spools under ``spool_dir`` and publishes them to ``lake``.

    Args:
        lake: where segments go (:func:`tweet_assets.lake.store.open_lake`).
        spool_dir: a local directory that survives a restart of the process (not a tmpfs if the
            machine may reboot).
        max_age_s, max_bytes: roll a spool once its first message is this old (seconds) or it
            holds this many uncompressed bytes.
        fsync: fsync every message (see the module docstring).
        clock: seconds since the epoch (``time.time``); tests inject their own.
        retry_s: when the lake refuses a segment, it stays sealed in the spool and is retried
            after this many seconds (60) while messages keep being received.
    """

    def __init__(self, lake: Lake, spool_dir: str, *, prefix: str = PREFIX, max_age_s: float = MAX_AGE_S, max_bytes: int = MAX_BYTES, fsync: bool = True, clock: Callable[[], float] = time.time, retry_s: float = RETRY_S):
        self.lake = lake
        self.spool_dir = os.path.abspath(spool_dir)
        self.prefix = prefix
        self.max_age_s = max_age_s
        self.max_bytes = max_bytes
        self.fsync = fsync
        self.clock = clock
        self.open: dict[str, _Spool] = {}
        self.published: list[str] = []
        self.published_messages = 0
        self.newest_end_ms: int | None = None
        self.retry_s = retry_s
        self.unpublished: list[tuple] = []  # sealed spools the lake refused: (day, path, start, end, messages)
        self._retry_at_ms = 0
        os.makedirs(self.spool_dir, exist_ok=True)

    # -- writing ---------------------------------------------------------------------------
    def append(self, day: str, line: bytes, received_ms: int) -> None:
        """Land one message (``line``: its bytes, no newline) in ``day``'s spool. When this
        returns, the message is durable as the module docstring says; then a due roll happens.

        Raises:
            ValueError: ``day`` is not ``YYYY-MM-DD`` or ``line`` holds a newline.
            OSError: the spool cannot be written (disk full): the message is not received.
        """
        if not _DAY.match(day):
            raise ValueError(f"day {day!r} is not YYYY-MM-DD")
        if b"\n" in line:
            raise ValueError("a message line must not contain a newline")
        spool = self.open.get(day) or self._open(day, received_ms)
        data = line + b"\n"
        written = os.write(spool.fd, data)
        if written != len(data):  # a regular file writes all of it or raises; say so if not
            raise OSError(f"short write to {spool.path}: {written} of {len(data)} bytes")
        if self.fsync:
            os.fsync(spool.fd)
        spool.bytes += len(data)
        spool.messages += 1
        spool.end_ms = max(spool.end_ms, received_ms)
        self.roll_due()

    def _open(self, day: str, start_ms: int) -> _Spool:
        directory = os.path.join(self.spool_dir, f"dt={day}")
        os.makedirs(directory, exist_ok=True)
        while True:
            path = os.path.join(directory, f"{stamp(start_ms)}.jsonl")
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o640)
                break
            except FileExistsError:
                start_ms += 1
        _fsync_dir(directory)
        spool = self.open[day] = _Spool(day, path, fd, start_ms, start_ms)
        return spool

    def roll_due(self) -> list[str]:
        """Publish every spool that is ``max_age_s`` old or ``max_bytes`` big, and retry sealed
        spools the lake refused before (at most every ``retry_s``); returns the keys published."""
        now_ms = int(self.clock() * 1000)
        due = [s for s in self.open.values() if s.bytes >= self.max_bytes or now_ms - s.start_ms >= self.max_age_s * 1000]
        keys = [k for k in (self._seal_and_publish(s) for s in due) if k]
        if self.unpublished and now_ms >= self._retry_at_ms:
            keys += self._retry()
        return keys

    def close(self) -> list[str]:
        """Publish every open spool and retry refused ones (on shutdown); returns the keys.
        What the lake still refuses stays sealed in the spool for :meth:`recover`."""
        keys = [k for k in (self._seal_and_publish(s) for s in list(self.open.values())) if k]
        return keys + self._retry()

    def _seal_and_publish(self, spool: _Spool) -> str | None:
        os.close(spool.fd)
        del self.open[spool.day]
        sealed = os.path.join(os.path.dirname(spool.path), f"{stamp(spool.start_ms)}-{stamp(spool.end_ms)}.jsonl")
        os.replace(spool.path, sealed)
        _fsync_dir(os.path.dirname(sealed))
        return self._try_publish((spool.day, sealed, spool.start_ms, spool.end_ms, spool.messages))

    def _try_publish(self, item: tuple) -> str | None:
        """Publish a sealed spool; when the lake refuses (an S3 outage, a permission), keep it
        sealed on disk, log, and retry later: receiving goes on meanwhile."""
        try:
            return self._publish(*item)
        except LakeError as exc:
            self.unpublished.append(item)
            self._retry_at_ms = int(self.clock() * 1000) + int(self.retry_s * 1000)
            log.error("segment kept in the spool, the lake refused it (retry in %g s): %s", self.retry_s, exc)
            return None

    def _retry(self) -> list[str]:
        pending, self.unpublished = self.unpublished, []
        return [k for k in (self._try_publish(item) for item in pending) if k]

    def _publish(self, day: str, sealed: str, start_ms: int, end_ms: int, messages: int | None) -> str:
        key = segment_key(day, start_ms, end_ms, self.prefix)
        fd, tmp = tempfile.mkstemp(dir=self.spool_dir, prefix=".gz-", suffix=".part")
        try:
            with open(sealed, "rb") as src, os.fdopen(fd, "wb") as raw, igzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as out:
                shutil.copyfileobj(src, out, 1 << 20)
            size = self.lake.put_file(key, tmp)
        finally:
            os.unlink(tmp)
        os.unlink(sealed)
        self.published.append(key)
        self.published_messages += messages or 0
        self.newest_end_ms = max(self.newest_end_ms or 0, end_ms)
        log.info("published %s (%s messages, %d bytes gzip)", self.lake.uri(key), "?" if messages is None else messages, size)
        return key

    # -- restart ---------------------------------------------------------------------------
    def recover(self) -> list[str]:
        """Publish the spools a previous process left (see the module docstring); returns keys.
        Call before the first :meth:`append`. A segment the lake refuses stays sealed in the
        spool and is retried like any other (:attr:`unpublished`).
        """
        keys = []
        for entry in sorted(os.listdir(self.spool_dir)):
            directory = os.path.join(self.spool_dir, entry)
            if not (entry.startswith("dt=") and os.path.isdir(directory) and _DAY.match(entry[3:])):
                continue
            day = entry[3:]
            for name in sorted(os.listdir(directory)):
                path = os.path.join(directory, name)
                sealed = _SEALED.match(name)
                if sealed:
                    keys.append(self._try_publish((day, path, parse_stamp(sealed[1]), parse_stamp(sealed[2]), None)))
                    continue
                opened = _OPEN.match(name)
                if not opened:
                    continue
                start_ms = parse_stamp(opened[1])
                end_ms = max(start_ms, int(os.stat(path).st_mtime * 1000))  # before the cut touches it
                complete = _cut_partial_line(path)
                if complete == 0:
                    os.unlink(path)
                    log.warning("recovered spool %s held no complete message: removed", path)
                    continue
                target = os.path.join(directory, f"{stamp(start_ms)}-{stamp(end_ms)}.jsonl")
                os.replace(path, target)
                _fsync_dir(directory)
                keys.append(self._try_publish((day, target, start_ms, end_ms, None)))
            for name in os.listdir(directory):
                if name.endswith(".part"):
                    os.unlink(os.path.join(directory, name))
        for name in os.listdir(self.spool_dir):
            if name.startswith(".gz-"):
                os.unlink(os.path.join(self.spool_dir, name))
        keys = [k for k in keys if k]
        if keys:
            log.warning("published %d segment(s) left by a previous run before connecting", len(keys))
        return keys


def _cut_partial_line(path: str) -> int:
    """Truncate ``path`` after its last newline (a line cut by a crash was never counted as
    received); returns the bytes kept."""
    size = os.path.getsize(path)
    with open(path, "r+b") as handle:
        keep = size
        step = 1 << 16
        while keep > 0:
            start = max(0, keep - step)
            handle.seek(start)
            block = handle.read(keep - start)
            cut = block.rfind(b"\n")
            if cut >= 0:
                keep = start + cut + 1
                break
            keep = start
        if keep != size:
            log.warning("recovered spool %s: cut %d bytes of a partial last line", path, size - keep)
            handle.truncate(keep)
            handle.flush()
            os.fsync(handle.fileno())
    return keep


def _fsync_dir(directory: str) -> None:
    """Make a rename or a new file in ``directory`` durable (POSIX: fsync the directory)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
