"""A day's rows, gathered batch by batch as sorted runs, then handed out merged by id and in order.

This is an external merge sort sized for the busiest days: each flattened batch of a day is sorted
by ``(created_at, id)`` on arrival and kept as a *run* in memory while the day's runs total less
than :data:`SPILL_AFTER_BYTES`; later batches are gathered up to :data:`SPILL_RUN_BYTES`, sorted
together and written as one run to an LZ4-compressed Arrow IPC file in a temporary directory
(``TMPDIR``; about 0.3 GB of local disk per million real-shaped posts). Only five small columns
per row stay in memory for the whole day (the index: id, created_at, retrieved_at and where the
row is), plus the ids that edits superseded. Once the day is complete, the rows to publish and their order are worked out on the index, and :meth:`DayResult.chunks`
reads each output chunk's rows from every run as one contiguous row range (runs and output share the
sort key), so writing a day of any size holds one chunk, not the day.

Several copies of a post (the same id from a search, a timeline and a lookup, or a page fetched
twice) are merged field by field into one row (:func:`merge_copies`): the copies are ordered from
oldest to newest (``retrieved_at``, unknown first, then landing order), placed next to one another in
the output order, and each output chunk merges the copies it holds. A day without copies pays one
hash pass over the index for this (``is_duplicated``), nothing more.

Memory for a day of N rows: about 32 bytes x N of index + ``SPILL_AFTER_BYTES`` of runs in
memory + up to ``SPILL_RUN_BYTES`` of batches waiting to be sorted into one run on disk (twice that
while they are sorted) + one chunk (with its copies); the rest is on local disk (the temporary
directory is removed when the :class:`DayResult` is garbage-collected or closed).
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterator

import polars as pl
import pyarrow as pa

from tweet_assets.transform.pages import Quarantined
from tweet_assets.lake.parquet import ROW_GROUP_ROWS
from tweet_assets.lake.spools import SpillDir

P = pl.col
#: The day's runs stay in memory up to this estimated size (bytes); later runs go to disk.
SPILL_AFTER_BYTES = 32 << 20
#: Past :data:`SPILL_AFTER_BYTES`, batches are gathered up to this estimated size (bytes) and sorted
#: into one run on disk, not one run per batch: a chunk reads a range from every run that overlaps
#: it, so the runs' count multiplies the reads (a real-shaped 10M-post day, every batch spanning
#: the whole day, made ~480 runs of one 64 MB batch each and peaked at 3.5 GB writing them out).
SPILL_RUN_BYTES = 128 << 20
#: Batches are spilled one run each until this many (estimated) bytes are on disk, then gathered
#: into :data:`SPILL_RUN_BYTES` runs: a day of some 100k posts keeps the cheaper one-run-per-batch
#: spill (the real 100k corpus gathered from the first spill on: +0.4 s and +0.1 GB, bench/README.md),
#: a day of millions the few runs its write-out needs.
SPILL_GROUP_AFTER_BYTES = 256 << 20
#: Rows per record batch in a spilled run: the unit read back (a chunk reads at most two extra
#: batches per run it draws on).
SPILL_BATCH_ROWS = 256
#: A slice read from a spilled run shorter than this many record batches is copied (see
#: :meth:`Run.slice`); a longer one holds at most two batches more than it needs.
COPY_SLICES_UNDER = 8
#: Spilled runs are LZ4-compressed Arrow IPC: a quarter to a ninth of the bytes for ~0.1 CPU-s per
#: 100k posts (a batch of 15.7k real posts: 39 → 10 MB, written in 0.06 s either way; a real-shaped
#: 10M-post day's runs: 28 → 3 GB), so they stay in the page cache instead of being read from disk.
SPILL_COMPRESSION = "lz4"
#: Rows per chunk handed out by :meth:`DayResult.chunks` (and per Parquet row group).
CHUNK_ROWS = ROW_GROUP_ROWS
SORT_KEY = ["created_at", "id"]
#: Columns interleaved together when a chunk draws on runs that overlap in time.
GATHER_COLUMNS = 16
#: The column that says how new a copy is (UTC); None/null: unknown, older than any known time.
RETRIEVED_AT = "retrieved_at"


@dataclass(frozen=True)
class CopyGroup:
    """Columns taken together from one copy when a post's copies are merged (see :func:`merge_copies`).

    ``columns`` come from the newest copy that *has* the group: where any of ``present`` is non-null
    (for a boolean column: true); if no copy has it, from the newest copy. Every other column takes
    the newest non-null value among the copies.
    """

    columns: tuple[str, ...]
    present: tuple[str, ...]


def merge_copies(chunk: pl.DataFrame, groups: pl.Series, copy_groups: tuple[CopyGroup, ...] = ()) -> pl.DataFrame:
    """Merge adjacent copies of a post into one row each, field by field.

    Args:
        chunk: rows in output order; the copies of a post are adjacent, oldest first.
        groups: for each row of ``chunk``, the number of the output row it belongs to (ascending;
            a number repeated = copies to merge).
        copy_groups: columns taken together from one copy (counts as of one retrieval).

    Returns:
        One row per group, in order, with ``chunk``'s columns and types: per column the newest
        non-null value (a null never hides another copy's value), except ``copy_groups``.

    The rule is issue #18's (values from the newest retrieval first, a null never hides another
    copy's value, counts from the newest copy); twarc-csv 0.7.2 keeps one copy whole instead.
    Only the copies are grouped (polars ``group_by``); rows without copies pass through.
    """
    several = groups.is_duplicated()
    if not several.any():
        return chunk
    names = chunk.columns
    chunk = chunk.with_columns(groups.alias("_g"))
    copies = chunk.filter(several)
    together: dict[str, pl.Expr] = {}
    flags = []
    for number, group in enumerate(copy_groups):
        present = [c for c in group.present if c in names]
        if not present or not any(c in names for c in group.columns):
            continue
        flag = f"_has{number}"
        has = [
            (P(c) & P(c).is_not_null()) if chunk.schema[c] == pl.Boolean else P(c).is_not_null() for c in present
        ]
        flags.append(pl.any_horizontal(has).alias(flag))
        for c in group.columns:
            if c in names:
                # stable sort: the copies that have the group last, newest last among them
                together[c] = P(c).sort_by(P(flag), maintain_order=True).last()
    if flags:
        copies = copies.with_columns(flags)
    merged = copies.group_by("_g", maintain_order=True).agg(
        together[c] if c in together else P(c).drop_nulls().last() for c in names
    )
    singles = chunk.filter(~several)
    return pl.concat([singles, merged.select(*names, "_g")]).sort("_g").drop("_g")


def columns_to_merge(columns: list[str] | None, copy_groups: tuple[CopyGroup, ...]) -> list[str] | None:
    """``columns`` plus what merging them needs (the ``present`` columns of their copy groups)."""
    if columns is None:
        return None
    needed = list(columns)
    for group in copy_groups:
        if any(c in group.columns for c in columns):
            needed += [c for c in group.present if c not in needed]
    return needed



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
            frame.write_ipc(self.path, compat_level=pl.CompatLevel.newest(), record_batch_size=SPILL_BATCH_ROWS, compression=SPILL_COMPRESSION)
            self.frame = None

    def slice(self, start: int, length: int, columns: list[str] | None = None) -> pl.DataFrame:
        """Rows ``[start, start + length)`` (only ``columns`` when given)."""
        if self.frame is not None:
            part = self.frame.slice(start, length)
            return part.select(columns) if columns else part
        # Read with polars (slice pushed down to the record batches). A short slice is copied: it
        # would keep its whole record batches alive (300 slices of 200 rows held 1.1 GB, their
        # copies 76 MB), and a chunk of a day whose runs overlap draws a short slice from each.
        part = pl.scan_ipc(self.path).slice(start, length)
        part = (part.select(columns) if columns else part).collect()
        if part.width and length < COPY_SLICES_UNDER * SPILL_BATCH_ROWS:
            part = part.select(pl.all().gather(pl.int_range(0, pl.len())))
        return part


@dataclass
class DayRows:
    """Accumulates a day's flattened batches (:meth:`add`), then :meth:`finish` es the day.

    ``schema`` is the polars schema of the rows (the published columns, with ``id``,
    ``created_at`` and, if present, ``retrieved_at``); ``quarantined`` and ``stats`` gather what the
    batches set aside and counted; ``copy_groups`` says which columns merge together
    (:func:`merge_copies`).
    """

    schema: pl.Schema
    quarantined: list[Quarantined] = field(default_factory=list)
    stats: Counter = field(default_factory=Counter)
    runs: list[Run] = field(default_factory=list)
    index: list[pl.DataFrame] = field(default_factory=list)
    superseded: list[pl.Series] = field(default_factory=list)
    in_memory_bytes: int = 0
    spill_after_bytes: int | None = None  # default: SPILL_AFTER_BYTES
    copy_groups: tuple[CopyGroup, ...] = ()
    _spill: SpillDir | None = None
    #: batches past the in-memory budget, waiting to be sorted into one run (:data:`SPILL_RUN_BYTES`)
    _pending: list[pl.DataFrame] = field(default_factory=list)
    _pending_bytes: int = 0
    _spilled_bytes: int = 0

    def add(self, frame: pl.DataFrame) -> None:
        """Add a batch's rows (in arrival order), sorting them into a run."""
        if frame.height == 0:
            return
        # An edit is a new post whose edit_history_tweet_ids ends with its own id and lists the
        # earlier versions' ids (X API v2 "Edit Posts" docs): those versions are superseded.
        history = P("edit_history_tweet_ids")
        self.superseded.append(
            frame.filter((history.list.len() > 1) & (history.list.last() == P("id")))
            .select(history.list.slice(0, history.list.len() - 1).alias("old"))
            .explode("old")
            .get_column("old")
        )
        size = frame.estimated_size()
        budget = SPILL_AFTER_BYTES if self.spill_after_bytes is None else self.spill_after_bytes
        if not self._pending and self.in_memory_bytes + size <= budget:
            self.in_memory_bytes += size
            self.runs.append(Run(self._sorted_run([frame])))
            return
        # past the budget (and from then on: the index keeps landing order), to disk: a run per
        # batch for the first SPILL_GROUP_AFTER_BYTES, then runs of about SPILL_RUN_BYTES
        self._pending.append(frame)
        self._pending_bytes += size
        if self._pending_bytes >= SPILL_RUN_BYTES or self._spilled_bytes < SPILL_GROUP_AFTER_BYTES:
            self._spilled_bytes += self._pending_bytes
            self._flush_pending()

    def _flush_pending(self, to_disk: bool = True) -> None:
        """Sort the waiting batches into one run (on disk, or kept in memory for the last one)."""
        if not self._pending:
            return
        frames, self._pending, self._pending_bytes = self._pending, [], 0
        box = [pl.concat(frames, rechunk=False) if len(frames) > 1 else frames[0]]
        del frames
        frame = self._sorted_run(box)
        if to_disk:
            if self._spill is None:
                self._spill = SpillDir("day-rows")  # swept after a kill, like the steps' spools
            self.runs.append(Run(frame, self._spill.name))
        else:
            self.runs.append(Run(frame))

    def _sorted_run(self, box: list[pl.DataFrame]) -> pl.DataFrame:
        """The frame in ``box`` (rows in arrival order; taken out of it, so that it is freed once
        sorted) sorted by the key, stably, its index entries recorded (in arrival order) as the
        next run's."""
        number = len(self.runs)
        frame = box.pop().with_row_index("_seq").sort([*SORT_KEY, "_seq"])
        # the index stays in arrival order (landing order across runs is concat order)
        retrieved = P(RETRIEVED_AT) if RETRIEVED_AT in frame.columns else pl.lit(None, pl.Datetime("ms", "UTC")).alias(RETRIEVED_AT)
        self.index.append(
            frame.select(
                pl.lit(number, pl.UInt32).alias("_run"),
                pl.int_range(pl.len(), dtype=pl.UInt32).alias("_r"),
                "_seq",
                "id",
                "created_at",
                retrieved.cast(pl.Datetime("ms", "UTC")),
            )
            .sort("_seq")
            .drop("_seq")
        )
        return frame.drop("_seq")

    def finish(self) -> "DayResult":
        """One row per id (its copies merged, see :func:`merge_copies`), an edited post's newest
        version only, ordered by ``(created_at, id)``; see :class:`DayResult`."""
        self._flush_pending(to_disk=False)  # the last waiting batches stay in memory (at most SPILL_RUN_BYTES)
        stats = Counter(self.stats)
        if not self.index:
            order = pl.DataFrame(schema={"_run": pl.UInt32, "_r": pl.UInt32})
            return DayResult(self.schema, [], order, self.quarantined, stats, None, 0, self.copy_groups)
        index = pl.concat(self.index, rechunk=True)  # landing order
        self.index.clear()
        copies = index.get_column("id").is_duplicated()
        several = bool(copies.any())
        if several:
            index = index.with_row_index("_arr").with_columns(copies.alias("_copy"))
            copy_ids = index.filter(P("_copy")).get_column("id")
            stats["duplicates"] += copy_ids.len() - copy_ids.n_unique()
            del copy_ids
        del copies
        older = pl.concat(self.superseded).drop_nulls().unique()
        self.superseded.clear()
        if older.len():
            drop = P("id").is_in(older.implode())
            removed = index.filter(drop).get_column("id")
            stats["superseded_edits"] += removed.n_unique()
            index = index.filter(~drop)
        if not several:
            order = index.sort(SORT_KEY).select("_run", "_r")
            return DayResult(self.schema, self.runs, order, self.quarantined, stats, self._spill, order.height, self.copy_groups)
        # copies of a post: oldest first (unknown retrieval time first, then landing order), placed
        # where the newest copy's created_at puts them
        copies = (
            index.filter(P("_copy"))
            .sort(["id", RETRIEVED_AT, "_arr"], nulls_last=False)
            .with_columns(P("created_at").last().over("id"))
        )
        stats["merged_posts"] += copies.get_column("id").n_unique()
        rows = pl.concat([index.filter(~P("_copy")), copies]).sort([*SORT_KEY, RETRIEVED_AT, "_arr"], nulls_last=False)
        del index, copies
        new_row = (P("id") != P("id").shift(1)).fill_null(True)
        order = rows.select("_run", "_r", (new_row.cum_sum() - 1).cast(pl.UInt32).alias("_g"))
        height = int(order.get_column("_g")[-1]) + 1 if order.height else 0
        return DayResult(self.schema, self.runs, order, self.quarantined, stats, self._spill, height, self.copy_groups)


@dataclass
class DayResult:
    """A day's rows, one per id, sorted by ``(created_at, id)``, with what was set aside.

    ``order`` lists the rows to read (``_run``, ``_r``: run number, row in the run) in order; when
    the day holds copies of a post, also ``_g``, the output row each belongs to (copies adjacent,
    oldest first), and :meth:`chunks` merges them (:func:`merge_copies`). ``rows`` is the number of
    output rows. ``stats`` adds ``duplicates`` (copies beyond the first of an id), ``merged_posts``
    (ids published from several copies) and ``superseded_edits`` (older versions of an edited
    post whose newer version is in the day) to the batches' counters.
    """

    schema: pl.Schema
    runs: list[Run]
    order: pl.DataFrame
    quarantined: list[Quarantined]
    stats: Counter
    spill: SpillDir | None = None
    rows: int | None = None
    copy_groups: tuple[CopyGroup, ...] = ()

    @property
    def height(self) -> int:
        """Output rows (posts) of the day."""
        return self.order.height if self.rows is None else self.rows

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
        edits. Rows are copied only to interleave runs that overlap in time, or to merge copies.
        """
        schema = {n: self.schema[n] for n in columns} if columns else self.schema
        if self.height == 0:
            yield pl.DataFrame(schema=schema)
            return
        if "_g" not in self.order.columns:
            for start in range(0, self.height, rows):
                # built in a function so its pieces are freed before the caller gets the chunk (a
                # generator's own locals would live on until the next chunk)
                yield self._chunk(self.order.slice(start, rows), columns)
            return
        # a chunk is ``rows`` output rows: all the copies of each, never split between chunks
        bounds = self.order.get_column("_g").search_sorted(pl.Series(range(0, self.height + rows, rows), dtype=pl.UInt32), side="left").to_list()
        for start, stop in zip(bounds, bounds[1:]):
            if stop > start:
                yield self._merged_chunk(self.order.slice(start, stop - start), columns)

    def _merged_chunk(self, order: pl.DataFrame, columns: list[str] | None) -> pl.DataFrame:
        groups = order.get_column("_g")
        if not groups.is_duplicated().any():
            return self._chunk(order, columns)
        # :data:`GATHER_COLUMNS` columns at a time (with the copy groups' ``present`` columns they
        # need): a chunk of copies is read and merged a slice of columns at a time, so memory holds
        # the merged chunk and one slice of its copies, not every copy of every column at once (a
        # day where every post came twice held the copies, their filtered copy and the merge: +0.3 GB
        # per 100k posts)
        names = list(columns) if columns else list(self.schema)
        parts = []
        for at in range(0, len(names), GATHER_COLUMNS):
            group = names[at : at + GATHER_COLUMNS]
            parts.append(merge_copies(self._chunk(order, columns_to_merge(group, self.copy_groups)), groups, self.copy_groups).select(group))
        return pl.concat(parts, how="horizontal")

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
        if runs.min() == runs.max() and rows[-1] - rows[0] + 1 == order.height and ("_g" not in order.columns or rows.is_sorted()):
            # one run, no row removed inside the range, in the run's order (the usual small day): a plain slice
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
