"""One IO manager for the whole lake: keys, formats, one object per partition, atomic writes.

Layout (Hive style, one object per asset and UTC day, overwritten on re-materialization)::

    <lake>/raw_tweets/dt=YYYY-MM-DD/part-00000.jsonl.gz     gzip JSON lines, one API page per line
    <lake>/clean_tweets/dt=YYYY-MM-DD/part-00000.parquet    Parquet, zstd
    <lake>/tweets/dt=YYYY-MM-DD/part-00000.parquet          the published table (s3_parquet)

``<lake>`` is a local directory (the embedded default) or ``s3://bucket/prefix`` through
dagster-aws's ``S3Resource`` (region, ``endpoint_url`` and credentials from its configuration or the
standard AWS environment). An asset's table folder and format come from its definition metadata
(``lake/table``, ``lake/format``); the folder defaults to the asset key.

Partitioned values are mappings ``{partition_key: value}`` both ways: the assets carry
``BackfillPolicy.single_run()``, so one run may hold one day or a year. ``handle_output`` writes
each day's object; ``load_input`` returns the upstream days of the run, lazily for raw pages.
Dagster's own ``UPathIOManager`` is not used because it refuses multi-partition runs for outputs.
"""

from __future__ import annotations

import io
import os
import tempfile
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterable, Iterator, Mapping

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from dagster import ConfigurableIOManager, ConfigurableResource, InputContext, OutputContext
from dagster_aws.s3 import S3Resource
from isal import igzip
from pydantic import Field, PrivateAttr

from .lake import Lake, LakeError, open_lake
from .parquet import ROW_GROUP_ROWS, read_footer, write_parquet
from .spools import owning_spool_dir, remove_run_spool_dirs, remove_spool_dir

PART = "part-00000"
#: Raw pages are gzip (RFC 1952) written by ISA-L (python-isal) at its middle level: on JSON pages
#: about 12x less CPU than zlib's level 6 for files about a fifth larger (bench/README.md).
GZIP_LEVEL = 2
#: A run of more partitions logs progress and a summary instead of one line per object.
LOG_EACH_UP_TO = 7
#: Read buffer over the decompressed pages, bytes: pages are long lines (0.1-1 MB); reading them
#: in big blocks makes unpacking a day ~30% faster than gzip's own small reads.
READ_BUFFER_BYTES = 4 << 20
PROGRESS_EVERY_S = 10.0
FORMATS = {"jsonl.gz", "parquet"}


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


@dataclass(frozen=True)
class SpooledPages:
    """A day's pages in a local gzip JSON-lines file, ready to be stored (the ``raw_tweets`` value)."""

    path: str
    pages: int


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
    return SpooledTable(path, write_parquet(chunks, path, schema, sorted_by))


@dataclass(frozen=True)
class StoredTable:
    """A day's Parquet object in the lake, read on demand (``clean_tweets`` as an input)."""

    lake: Lake
    key: str
    uri: str

    def read(self, columns: list[str] | None = None) -> pa.Table:
        """The rows as Arrow (only ``columns`` if given).

        Raises:
            LakeError: no object at ``uri`` (materialize the upstream partition first).
        """
        with self.lake.open(self.key) as handle:
            source = handle if handle.seekable() else pa.BufferReader(handle.read())  # S3 bodies stream
            return pq.read_table(source, columns=columns)

    def metadata(self) -> pq.FileMetaData:
        """The Parquet footer (schema, row counts, sorting columns), read with one ranged read.

        Raises:
            LakeError: no object at ``uri``, or it is not Parquet.
        """
        try:
            return read_footer(lambda n: self.lake.read_tail(self.key, n))
        except ValueError as exc:
            raise LakeError(f"{self.uri}: {exc}; rematerialize this partition.") from exc

    def frame(self, columns: list[str] | None = None) -> pl.DataFrame:
        """The rows as a polars DataFrame (only ``columns`` if given)."""
        return pl.from_arrow(self.read(columns))

    def batches(self, rows: int = ROW_GROUP_ROWS) -> Iterator[pa.Table]:
        """The rows, ``rows`` at a time, read as they are needed."""
        with self.lake.open(self.key) as handle:
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

    ``uri`` is where they are; :meth:`lines` streams them without holding the day in memory.
    """

    lake: Lake
    key: str
    uri: str

    def size(self) -> int | None:
        """Stored (gzip) bytes of the pages, or None if the object is not there."""
        return self.lake.size(self.key)

    def lines(self) -> Iterator[tuple[str, bytes]]:
        """``(location, page bytes)`` per page, location ``<uri>:<line number>``; empty lines skipped."""
        with self.lake.open(self.key) as raw, igzip.GzipFile(fileobj=raw, mode="rb") as unzipped, io.BufferedReader(unzipped, READ_BUFFER_BYTES) as handle:
            for number, line in enumerate(handle, start=1):
                line = line.rstrip(b"\r\n")
                if line:
                    yield f"{self.uri}:{number}", line


class LakeResource(ConfigurableResource):
    """Where the lake is, as a resource: the IO manager stores through it, asset checks read
    the written objects through it.
    """

    url: str = Field(
        default="lake",
        description="A local directory, or s3://bucket/prefix. Env: TWEET_ASSETS_LAKE_URL.",
    )
    s3: S3Resource = Field(default_factory=S3Resource, description="S3 client settings, for s3:// lakes.")
    _lake: Lake | None = PrivateAttr(default=None)

    def lake(self) -> Lake:
        """The :class:`~tweet_assets.lake.Lake` behind ``url`` (one client per resource)."""
        if self._lake is None:
            self._lake = open_lake(self.url, self.s3.get_client, self.s3.endpoint_url)
        return self._lake


class LakeIOManager(ConfigurableIOManager):
    """Stores each asset partition as one object in the lake (local directory or S3).

    Values: ``raw_tweets`` → :class:`SpooledPages` out, :class:`StoredPages` in (lazy);
    Parquet → :class:`SpooledTable` (or a polars DataFrame / Arrow table, written with
    :func:`write_parquet`) out, :class:`StoredTable` in (read on demand). Partitioned values are
    always ``{partition_key: value}``.

    Raises:
        LakeError: a write or read failed (the message names bucket, key and endpoint).
        ValueError: an output's partition keys differ from the run's.
    """

    location: LakeResource = Field(default_factory=LakeResource, description="Where the lake is.")

    def lake(self) -> Lake:
        """The :class:`~tweet_assets.lake.Lake` this IO manager writes to."""
        return self.location.lake()

    # --- keys
    @staticmethod
    def _table(metadata: Mapping | None, asset_key) -> tuple[str, str]:
        metadata = metadata or {}
        table = metadata.get("lake/table") or "/".join(asset_key.path)
        fmt = metadata.get("lake/format") or "parquet"
        if fmt not in FORMATS:
            raise ValueError(f"asset {asset_key.to_user_string()}: lake/format {fmt!r} is not one of {sorted(FORMATS)}")
        return str(table), str(fmt)

    @staticmethod
    def key(table: str, fmt: str, partition_key: str | None) -> str:
        """Object key of one partition: ``<table>/dt=<day>/part-00000.<fmt>`` (or no dt folder)."""
        folder = f"{table}/dt={partition_key}" if partition_key else table
        return f"{folder}/{PART}.{fmt}"

    # --- output
    def handle_output(self, context: OutputContext, obj) -> None:
        table, fmt = self._table(context.definition_metadata, context.asset_key)
        if context.has_asset_partitions:
            expected = list(context.asset_partition_keys)
            if not isinstance(obj, Mapping):
                if len(expected) != 1:
                    raise ValueError(f"{context.asset_key.to_user_string()}: a run of {len(expected)} partitions must return {{partition_key: value}}")
                obj = {expected[0]: obj}
            if sorted(obj) != sorted(expected):
                raise ValueError(
                    f"{context.asset_key.to_user_string()} returned partitions {sorted(obj)[:3]}… but the run targets {expected[:3]}…"
                )
            items = [(pk, obj[pk]) for pk in expected]
        else:
            items = [(None, obj)]
        try:
            self._store(context, table, fmt, items)
        finally:  # stored or not, the spooled files and their directory go now
            for _, value in items:
                if isinstance(value, (SpooledPages, SpooledTable)):
                    _remove_file(value.path)
                    remove_spool_dir(owning_spool_dir(value.path))

    def _store(self, context: OutputContext, table: str, fmt: str, items: list) -> None:
        lake = self.lake()
        keys = [self.key(table, fmt, pk) for pk, _ in items]
        try:  # what a killed earlier run of these partitions left (local .tmp-*.part, S3 uploads)
            stale = lake.remove_stale_temporaries(keys, before=time.time())
            if stale:
                context.log.info(f"removed {stale} temporary object(s) left at {lake.uri(table)} by an earlier, interrupted run")
        except LakeError as exc:
            context.log.warning(f"could not look for temporaries left by an earlier run (the write goes on): {exc}")
        total = 0
        started = last_report = time.monotonic()
        for done, (partition_key, value) in enumerate(items, start=1):
            key = self.key(table, fmt, partition_key)
            began = time.monotonic()
            size = self._write(lake, key, fmt, value)
            total += size
            if len(items) <= LOG_EACH_UP_TO:
                context.log.info(f"wrote {lake.uri(key)} ({size:,} bytes, {time.monotonic() - began:.2f}s)")
            elif time.monotonic() - last_report >= PROGRESS_EVERY_S:
                last_report = time.monotonic()
                context.log.info(f"stored {done:,} of {len(items):,} objects ({total:,} bytes) under {lake.uri(table)}")
            metadata = {"uri": lake.uri(key), "bytes": size}
            if partition_key is not None:
                context.step_context.add_asset_metadata(metadata, asset_key=context.asset_key, partition_key=partition_key)
        if len(items) > LOG_EACH_UP_TO:
            context.log.info(f"wrote {len(items):,} objects ({total:,} bytes) under {lake.uri(table)} in {time.monotonic() - started:.1f}s")
        if not context.has_asset_partitions:
            context.add_output_metadata({"uri": lake.uri(self.key(table, fmt, None)), "bytes": total})

    def _write(self, lake: Lake, key: str, fmt: str, value) -> int:
        from .empty_days import is_empty, store_empty

        if is_empty(value):  # a day without posts: no object (tweet_assets.empty_days)
            return store_empty(lake, key, fmt)
        if fmt == "jsonl.gz":
            if not isinstance(value, SpooledPages):
                raise TypeError(f"{key}: jsonl.gz objects are written from SpooledPages, got {type(value).__name__}")
            try:
                return lake.put_file(key, value.path)
            finally:
                _remove_file(value.path)
        if isinstance(value, StoredTable):  # an object of this lake, published as it is
            return lake.copy(value.key, key)
        if isinstance(value, SpooledTable):
            try:
                return lake.put_file(key, value.path)
            finally:
                _remove_file(value.path)
        if isinstance(value, pl.DataFrame):
            value = value.to_arrow()
        if not isinstance(value, pa.Table):
            raise TypeError(f"{key}: Parquet objects are written from SpooledTable, StoredTable (copied), polars DataFrames or Arrow tables, got {type(value).__name__}")
        fd, tmp = tempfile.mkstemp(suffix=".parquet")
        os.close(fd)
        try:
            write_parquet(value, tmp)
            return lake.put_file(key, tmp)
        finally:
            os.remove(tmp)

    def teardown_after_execution(self, context) -> None:
        """The end of the step (or run): remove what is left of the run's spool directories in
        this process, e.g. an asset failed after spooling some days (tweet_assets.spools)."""
        run = getattr(context, "run", None)
        if run is not None:
            remove_run_spool_dirs(run.run_id)

    # --- input
    def load_input(self, context: InputContext):
        upstream = context.upstream_output
        table, fmt = self._table(upstream.definition_metadata if upstream else None, context.asset_key)
        lake = self.lake()
        if not context.has_asset_partitions:
            return self._read(lake, self.key(table, fmt, None), fmt)
        from .empty_days import read_days, recorded_empty

        keys = {pk: self.key(table, fmt, pk) for pk in context.asset_partition_keys}
        # a missing object is an empty day when its materialization recorded bytes: 0
        return read_days(lake, keys, fmt, lambda days: recorded_empty(context.instance, context.asset_key, days), self._read)

    def _read(self, lake: Lake, key: str, fmt: str):
        if fmt == "jsonl.gz":
            if lake.size(key) is None:
                raise LakeError(f"no object at {lake.uri(key)}: materialize raw_tweets for this partition first.")
            return StoredPages(lake, key, lake.uri(key))
        return StoredTable(lake, key, lake.uri(key))


def _remove_file(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
