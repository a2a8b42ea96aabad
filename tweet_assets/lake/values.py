"""The values the lake IO manager stores and loads, apart from the IO manager itself.

Out of an asset: :class:`SpooledPages` (a day's API pages spooled as gzip JSON lines by
:class:`PageSpool`/:class:`SpoolSet`), :class:`SpooledTable` (a day's Parquet file, :func:`spool_table`).
Into an asset: :class:`StoredPages` (lines read lazily from the lake) and :class:`StoredTable`
(a Parquet object read on demand). :mod:`tweet_assets.lake.empty_days` adds the empty-day variants,
:mod:`tweet_assets.lake.io_manager` moves them between assets and the lake.
"""

from __future__ import annotations

import io
import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterable, Iterator

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from isal import igzip

from tweet_assets.lake.store import Lake, LakeError
from tweet_assets.lake.parquet import ROW_GROUP_ROWS, read_footer, write_parquet
from tweet_assets.lake.spools import spool_full

#: Raw pages are gzip (RFC 1952) written by ISA-L (python-isal) at its middle level: on JSON pages
#: about 12x less CPU than zlib's level 6 for files about a fifth larger (bench/README.md).
GZIP_LEVEL = 2
#: Read buffer over the decompressed pages, bytes: pages are long lines (0.1-1 MB); reading them
#: in big blocks makes unpacking a day ~30% faster than gzip's own small reads.
READ_BUFFER_BYTES = 4 << 20


class PageSpool:
    """Writes one day's pages to a local gzip JSON-lines file, one page per line, as received.

    ``path`` is the file; ``pages`` and ``bytes_in`` count what was written (uncompressed bytes).
    The file is opened on the first write and may be suspended (closed) and resumed: each resume
    appends a new gzip member, which every gzip reader reads as one stream (RFC 1952, 2.2). So a
    backfill of years keeps only a few files open, whatever the order pages come in.
    Call :meth:`close` before storing it.
    """

    def __init__(self, directory: str, day: str):
        self.path = os.path.join(directory, f"raw-{day}.jsonl.gz")
        self._raw = None
        self._file = None
        self._started = False
        self.pages = 0
        self.bytes_in = 0

    @property
    def is_open(self) -> bool:
        return self._file is not None

    def write(self, body: bytes) -> None:
        try:
            self._write(body)
        except OSError as exc:
            raise spool_full(exc, self.path) from exc

    def _write(self, body: bytes) -> None:
        if self._file is None:
            self._raw = open(self.path, "ab" if self._started else "wb")
            # mtime=0: the same pages give the same bytes, so a rerun rewrites an identical object
            self._file = igzip.GzipFile(filename="", mode="wb", fileobj=self._raw, compresslevel=GZIP_LEVEL, mtime=0)
            self._started = True
        self._file.write(body)
        self._file.write(b"\n")
        self.pages += 1
        self.bytes_in += len(body) + 1

    def suspend(self) -> None:
        """Close the file for now; the next write resumes it."""
        if self._file is not None:
            self._file.close()
            self._raw.close()
            self._file = self._raw = None

    def close(self) -> "SpooledPages":
        try:
            return self._close()
        except OSError as exc:
            raise spool_full(exc, self.path) from exc

    def _close(self) -> "SpooledPages":
        self.suspend()
        if not self._started:  # a day without pages is an empty gzip stream, not a missing object
            with open(self.path, "wb") as raw, igzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0):
                pass
            self._started = True
        return SpooledPages(self.path, self.pages)


class SpoolSet:
    """One :class:`PageSpool` per day, at most ``max_open`` files open at once (least recently
    written suspended first).

    With ``background`` (the default) pages are compressed and written on one worker thread, in
    order, while the caller fetches or generates the next ones (zlib releases the GIL); at most
    ``max_pending`` pages wait in memory. An error on the worker is raised by the next
    :meth:`write` or by :meth:`close`. Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, directory: str, days: list[str], max_open: int = 32, background: bool = True, max_pending: int = 64):
        self.spools = {day: PageSpool(directory, day) for day in days}
        self.max_open = max_open
        self._recent: dict[str, None] = {}
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="raw-spool") if background else None
        self._pending: deque[Future] = deque()
        self._max_pending = max_pending

    def write(self, day: str, body: bytes) -> None:
        """Append one page to ``day``'s spool (KeyError for a day not in the set)."""
        if day not in self.spools:
            raise KeyError(day)
        if self._executor is None:
            self._write(day, body)
            return
        self._pending.append(self._executor.submit(self._write, day, body))
        while len(self._pending) > self._max_pending or (self._pending and self._pending[0].done()):
            self._pending.popleft().result()

    def _write(self, day: str, body: bytes) -> None:
        spool = self.spools[day]
        if not spool.is_open and len(self._recent) >= self.max_open:
            oldest = next(iter(self._recent))
            self.spools[oldest].suspend()
            del self._recent[oldest]
        spool.write(body)
        self._recent.pop(day, None)
        self._recent[day] = None

    def close(self) -> dict[str, "SpooledPages"]:
        """Wait for the pending pages, close every spool; ``{day: SpooledPages}``."""
        self._drain(cancel=False)
        return {day: spool.close() for day, spool in self.spools.items()}

    def _drain(self, cancel: bool) -> None:
        try:
            while self._pending:
                future = self._pending.popleft()
                if cancel:
                    future.cancel()
                else:
                    future.result()
        finally:
            if self._executor is not None:
                self._executor.shutdown(wait=True, cancel_futures=cancel)

    def __enter__(self) -> "SpoolSet":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:  # the run failed: stop writing, leave the files to the temp dir
            self._drain(cancel=True)
            for spool in self.spools.values():
                spool.suspend()


class RawDay:
    """What ``raw_tweets`` hands the IO manager for one day: :class:`SpooledPages`, or
    :class:`NotLanded` when the day could not be finished (the asset's output type)."""


@dataclass(frozen=True)
class SpooledPages(RawDay):
    """A day's pages in a local gzip JSON-lines file, ready to be stored (the ``raw_tweets`` value)."""

    path: str
    pages: int


@dataclass(frozen=True)
class NotLanded(RawDay):
    """A day the step could not finish (e.g. the X API's post cap ran out while it was read): the
    IO manager stores the run's days in order and, at this one, raises ``error`` instead of writing:
    the days before it are stored and recorded, this day and its zone keep what they held, and the
    step fails naming it. ``path`` is its partial spool file (or None), removed, never stored."""

    path: str | None
    error: Exception


@dataclass(frozen=True)
class SpooledTable:
    """A day's rows in a local Parquet file, ready to be stored (``clean_tweets``/``s3_parquet``
    values): written as soon as the day is done, so a long backfill holds one day in memory."""

    path: str
    rows: int


def spool_table(chunks: Iterable[pa.Table], directory: str, name: str, schema: pa.Schema | None = None, sorted_by=None) -> SpooledTable:
    """Write ``chunks`` (Arrow tables of one schema, in order; at least one) to
    ``<directory>/<name>.parquet`` with :func:`write_parquet`, one chunk at a time."""
    path = os.path.join(directory, f"{name}.parquet")
    try:
        return SpooledTable(path, write_parquet(chunks, path, schema, sorted_by))
    except OSError as exc:  # ENOSPC: say which directory and what to set (tweet_assets.lake.spools)
        raise spool_full(exc, path) from exc


@dataclass(frozen=True)
class StoredTable:
    """A day's Parquet object in the lake, read on demand (``clean_tweets`` as an input).

    ``etag``: the version loaded (the one the step's lineage check saw); every read is of that
    version only (S3 ``GetObject`` ``If-Match``), so a step never mixes two writers' objects. None: any.
    """

    lake: Lake
    key: str
    uri: str
    etag: str | None = None

    def read(self, columns: list[str] | None = None) -> pa.Table:
        """The rows as Arrow (only ``columns`` if given).

        Raises:
            LakeError: no object at ``uri`` (materialize the upstream partition first).
            ObjectChanged: it is no longer version ``etag``.
        """
        with self.lake.open_version(self.key, self.etag) as handle:
            source = handle if handle.seekable() else pa.BufferReader(handle.read())  # S3 bodies stream
            return pq.read_table(source, columns=columns)

    def metadata(self) -> pq.FileMetaData:
        """The Parquet footer (schema, row counts, sorting columns), read with one ranged read.

        Raises:
            LakeError: no object at ``uri``, or it is not Parquet.
        """
        try:
            return read_footer(lambda n: self.lake.read_tail_version(self.key, n, self.etag))
        except ValueError as exc:
            raise LakeError(f"{self.uri}: {exc}; rematerialize this partition.") from exc

    def frame(self, columns: list[str] | None = None) -> pl.DataFrame:
        """The rows as a polars DataFrame (only ``columns`` if given)."""
        return pl.from_arrow(self.read(columns))

    def batches(self, rows: int = ROW_GROUP_ROWS) -> Iterator[pa.Table]:
        """The rows, ``rows`` at a time, read as they are needed."""
        with self.lake.open_version(self.key, self.etag) as handle:
            source = handle if handle.seekable() else pa.BufferReader(handle.read())
            parquet = pq.ParquetFile(source)
            empty = True
            for batch in parquet.iter_batches(batch_size=rows):
                empty = False
                yield pa.Table.from_batches([batch])
            if empty:  # a day without posts: one empty chunk, with the schema
                yield parquet.schema_arrow.empty_table()


@dataclass(frozen=True)
class StoredPages:
    """A day's landed pages in the lake, read lazily (the ``raw_tweets`` value as an input).

    ``uri`` is where they are; :meth:`lines` streams them without holding the day in memory, of
    version ``etag`` only when given (as :class:`StoredTable`).
    """

    lake: Lake
    key: str
    uri: str
    etag: str | None = None

    def size(self) -> int | None:
        """Stored (gzip) bytes of the pages, or None if the object is not there."""
        return self.lake.size(self.key)

    def lines(self) -> Iterator[tuple[str, bytes]]:
        """``(location, page bytes)`` per page, location ``<uri>:<line number>``; empty lines skipped."""
        with self.lake.open_version(self.key, self.etag) as raw, igzip.GzipFile(fileobj=raw, mode="rb") as unzipped, io.BufferedReader(unzipped, READ_BUFFER_BYTES) as handle:
            for number, line in enumerate(handle, start=1):
                line = line.rstrip(b"\r\n")
                if line:
                    yield f"{self.uri}:{number}", line
