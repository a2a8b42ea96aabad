"""A day's rows, gathered batch by batch as sorted runs, then handed out deduplicated and in order.

This is an external merge sort sized for the busiest days: each flattened batch of a day is sorted
by ``(created_at, id)`` on arrival and kept as a *run*, in memory while the day's runs total less
than :data:`SPILL_AFTER_BYTES`, otherwise written to an uncompressed Arrow IPC file in a temporary
directory (``TMPDIR``; it needs about the day's flattened size on local disk, some 1 GB per million
posts). Only four small columns per row stay in memory for the whole day (the index: id,
created_at and where the row is), plus the ids that edits superseded. Once the day is complete,
the rows to publish and their order are worked out on the index, and :meth:`DayResult.chunks` reads each
output chunk's rows from every run as one contiguous row range (runs and output share the sort
key), so writing a day of any size holds one chunk, not the day.

Memory for a day of N rows: about 24 bytes x N of index + ``SPILL_AFTER_BYTES`` of runs in
memory + one chunk; the rest is on local disk (the temporary directory is removed when the
:class:`DayResult` is garbage-collected or closed).
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterator

import polars as pl
import pyarrow as pa

from .pages import Quarantined
from .parquet import ROW_GROUP_ROWS

P = pl.col
#: The day's runs stay in memory up to this estimated size (bytes); later runs go to disk.
SPILL_AFTER_BYTES = 32 << 20
#: Rows per record batch in a spilled run: the unit read back (a chunk reads at most two extra
#: batches per run it draws on).
SPILL_BATCH_ROWS = 1_024
#: Rows per chunk handed out by :meth:`DayResult.chunks` (and per Parquet row group).
CHUNK_ROWS = ROW_GROUP_ROWS
SORT_KEY = ["created_at", "id"]
#: Columns interleaved together when a chunk draws on runs that overlap in time.
GATHER_COLUMNS = 16


class Run:
    """One batch's rows of one day, sorted by ``(created_at, id)``: in memory or in an IPC file."""

    def __init__(self, frame: pl.DataFrame, spill_dir: str | None = None):
        self.height = frame.height
        self.frame: pl.DataFrame | None = frame
        self.path: str | None = None
        if spill_dir is not None:
            fd, self.path = tempfile.mkstemp(suffix=".arrow", dir=spill_dir)
            os.close(fd)
            # polars' own IPC (newest compat level: strings stay views, no conversion either way)
            frame.write_ipc(self.path, compat_level=pl.CompatLevel.newest(), record_batch_size=SPILL_BATCH_ROWS)
            self.frame = None

    def slice(self, start: int, length: int, columns: list[str] | None = None) -> pl.DataFrame:
        """Rows ``[start, start + length)`` (only ``columns`` when given)."""
        if self.frame is not None:
            part = self.frame.slice(start, length)
            return part.select(columns) if columns else part
        # Read with polars (slice pushed down to the record batches): the rows handed out are
        # polars' own memory, holding no spill file and no Arrow buffer of a larger range.
        part = pl.scan_ipc(self.path).slice(start, length)
        return (part.select(columns) if columns else part).collect()


@dataclass
class DayRows:
    """Accumulates a day's flattened batches (:meth:`add`), then :meth:`finish` es the day.

    ``schema`` is the polars schema of the rows (the published columns); ``quarantined`` and
    ``stats`` gather what the batches set aside and counted.
    """

    schema: pl.Schema
    quarantined: list[Quarantined] = field(default_factory=list)
    stats: Counter = field(default_factory=Counter)
    runs: list[Run] = field(default_factory=list)
    index: list[pl.DataFrame] = field(default_factory=list)
    superseded: list[pl.Series] = field(default_factory=list)
    in_memory_bytes: int = 0
    spill_after_bytes: int | None = None  # default: SPILL_AFTER_BYTES
    _spill: tempfile.TemporaryDirectory | None = None

    def add(self, frame: pl.DataFrame) -> None:
        """Add a batch's rows (in arrival order), sorting them into a run."""
        if frame.height == 0:
            return
        number = len(self.runs)
        frame = frame.with_row_index("_seq").sort([*SORT_KEY, "_seq"])
        # the index stays in arrival order (so "the last seen wins" across runs is concat order)
        self.index.append(
            frame.select(
                pl.lit(number, pl.UInt32).alias("_run"),
                pl.int_range(pl.len(), dtype=pl.UInt32).alias("_r"),
                "_seq",
                "id",
                "created_at",
            )
            .sort("_seq")
            .drop("_seq")
        )
        # An edit is a new post whose edit_history_tweet_ids ends with its own id and lists the
        # earlier versions' ids (X API v2 "Edit Posts" docs): those versions are superseded.
        history = P("edit_history_tweet_ids")
        self.superseded.append(
            frame.filter((history.list.len() > 1) & (history.list.last() == P("id")))
            .select(history.list.slice(0, history.list.len() - 1).alias("old"))
            .explode("old")
            .get_column("old")
        )
        frame = frame.drop("_seq")
        size = frame.estimated_size()
        budget = SPILL_AFTER_BYTES if self.spill_after_bytes is None else self.spill_after_bytes
        if self.in_memory_bytes + size <= budget:
            self.in_memory_bytes += size
            self.runs.append(Run(frame))
        else:
            if self._spill is None:
                self._spill = tempfile.TemporaryDirectory(prefix="tweet_assets-day-")
            self.runs.append(Run(frame, self._spill.name))

    def finish(self) -> "DayResult":
        """Deduplicate by id (the last seen wins), keep an edited post's newest version, order by
        ``(created_at, id)``; see :class:`DayResult`."""
        stats = Counter(self.stats)
        if not self.index:
            order = pl.DataFrame(schema={"_run": pl.UInt32, "_r": pl.UInt32})
            return DayResult(self.schema, [], order, self.quarantined, stats, None)
        index = pl.concat(self.index, rechunk=True)  # arrival order
        self.index.clear()
        kept = index.unique("id", keep="last")
        stats["duplicates"] += index.height - kept.height
        del index
        older = pl.concat(self.superseded).drop_nulls().unique()
        self.superseded.clear()
        if older.len():
            before = kept.height
            kept = kept.filter(~P("id").is_in(older.implode()))
            stats["superseded_edits"] += before - kept.height
        order = kept.sort(SORT_KEY).select("_run", "_r")
        return DayResult(self.schema, self.runs, order, self.quarantined, stats, self._spill)


@dataclass
class DayResult:
    """A day's rows, deduplicated and sorted by ``(created_at, id)``, with what was set aside.

    ``order`` lists the rows to publish (``_run``, ``_r``: run number, row in the run) in order;
    :meth:`chunks` reads them a chunk at a time. ``stats`` adds ``duplicates`` (rows whose id was
    seen again; the last seen is kept) and ``superseded_edits`` (older versions of an edited post
    whose newer version is in the day) to the batches' counters.
    """

    schema: pl.Schema
    runs: list[Run]
    order: pl.DataFrame
    quarantined: list[Quarantined]
    stats: Counter
    spill: tempfile.TemporaryDirectory | None = None

    @property
    def height(self) -> int:
        return self.order.height

    @property
    def frame(self) -> pl.DataFrame:
        """The day's rows, in order, as one frame (the whole day in memory)."""
        return pl.concat(list(self.chunks()), rechunk=True)

    def column(self, name: str) -> pl.Series:
        """One column of the day's rows, in order."""
        return pl.concat([c.get_column(name) for c in self.chunks(columns=[name])])

    def chunks(self, rows: int = CHUNK_ROWS, columns: list[str] | None = None) -> Iterator[pl.DataFrame]:
        """The day's rows in order, ``rows`` at a time (at least one, possibly empty, chunk).

        Each chunk reads, from every run it draws on, one contiguous row range: runs are sorted
        by the same key as the output, so a chunk's rows of a run are adjacent but for removed
        duplicates. Rows are copied only to interleave runs that overlap in time.
        """
        schema = {n: self.schema[n] for n in columns} if columns else self.schema
        if self.height == 0:
            yield pl.DataFrame(schema=schema)
            return
        for start in range(0, self.height, rows):
            # built in a function so its pieces are freed before the caller gets the chunk (a
            # generator's own locals would live on until the next chunk)
            yield self._chunk(self.order.slice(start, rows), columns)

    def arrow_chunks(self, rows: int = CHUNK_ROWS, each: Callable[[pl.DataFrame], None] | None = None) -> Iterator[pa.Table]:
        """:meth:`chunks` as Arrow tables (polars' Arrow types: ``large_string``, ``large_list``),
        for writing Parquet. Each polars chunk is dropped as soon as its Arrow copy exists
        (``to_arrow`` copies polars' string views), and each Arrow chunk as soon as the next is
        asked for, so a writer that lets go of what it wrote holds one chunk. ``each``, if given,
        sees every polars chunk first (to gather a column, say)."""
        for chunk in self.chunks(rows):
            if each is not None:
                each(chunk)
            table = chunk.to_arrow()
            del chunk
            yield table
            del table  # on resuming: before the next chunk is built

    def _chunk(self, order: pl.DataFrame, columns: list[str] | None) -> pl.DataFrame:
        runs, rows = order.get_column("_run"), order.get_column("_r")
        if runs.min() == runs.max() and rows[-1] - rows[0] + 1 == order.height:
            # one run, no row removed inside the range (the usual small day): a plain slice
            return self.runs[runs[0]].slice(rows[0], order.height, columns)
        entries = order.with_row_index("_p")
        ranges = (
            entries.group_by("_run")
            .agg(P("_r").min().alias("lo"), P("_r").max().alias("hi"), P("_p").min().alias("first"), pl.len().alias("n"))
            .sort("first")
            .with_row_index("_rank")
        )
        pieces = []
        for _, run, lo, hi, _, n in ranges.iter_rows():
            piece = self.runs[run].slice(lo, hi - lo + 1, columns)
            if n < hi - lo + 1:  # removed duplicates inside the range
                piece = piece.gather(entries.filter(P("_run") == run).get_column("_r").sort() - lo)
            pieces.append(piece)
        # the pieces follow one another in the chunk unless runs overlap in time
        arrival = entries.join(ranges.select("_run", "_rank"), on="_run").sort("_rank", "_r").get_column("_p")
        if arrival.is_sorted():
            return pl.concat(pieces, rechunk=False)
        chunk = pl.concat(pieces, rechunk=False)
        pieces.clear()
        # interleave a few columns at a time, dropping the source columns once gathered: memory
        # holds the chunk about once, not twice
        positions = arrival.arg_sort()
        names = chunk.columns
        parts = []
        for at in range(0, len(names), GATHER_COLUMNS):
            group = names[at : at + GATHER_COLUMNS]
            parts.append(chunk.select(group).rechunk().gather(positions))
            chunk = chunk.drop(group)
        return pl.concat(parts, how="horizontal")

    def close(self) -> None:
        """Remove the spilled runs now (otherwise when this object is garbage-collected)."""
        if self.spill is not None:
            self.spill.cleanup()
            self.spill = None
