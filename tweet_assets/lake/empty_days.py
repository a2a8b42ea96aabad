"""A day materialized without posts stores no object: empty days cost a metadata record, not a file.

Rule (issue #17): when a day's value is empty (``raw_tweets``: no page; ``clean_tweets`` and the
published table: 0 rows), the IO manager stores nothing at the day's key and records ``bytes: 0``
in the partition's materialization (with ``dagster/row_count: 0`` from the asset). If an object is
already there (the day had posts in an earlier run), it is overwritten with the smallest valid
empty object instead (an empty gzip stream, 20 bytes; a Parquet file with the schema and no row
group, ~12 KB, no ``ARROW:schema`` copy): overwriting needs only ``s3:PutObject``, which the
pipeline's IAM policy grants, where deleting would need ``s3:DeleteObject``, which it does not.

Reading: a missing object is an empty day only when the asset partition's latest materialization
in the Dagster instance recorded ``bytes: 0``; otherwise it is still an error (the upstream day
was never materialized, or its object was lost), as before. Query engines need nothing: Athena's
partition projection and a DuckDB/Hive glob over ``tweets/dt=*/`` read a day without objects as a
day without rows.
"""

from __future__ import annotations

import functools
import io
from typing import Callable, Iterable, Iterator, Mapping

import pyarrow as pa
import pyarrow.parquet as pq
from isal import igzip

from tweet_assets.lake.values import SpooledPages, SpooledTable, StoredPages, StoredTable
from tweet_assets.lake.store import ANY, Lake, Written
from tweet_assets.lake.parquet import SORTED_BY
from tweet_assets.schema import PUBLISHED_SCHEMA

#: Metadata key the IO manager records per partition: bytes stored; 0 means no object.
BYTES = "bytes"


@functools.lru_cache(maxsize=1)
def empty_gzip() -> bytes:
    """An empty gzip stream (RFC 1952: header, empty deflate block, CRC and size 0), mtime 0."""
    out = io.BytesIO()
    with igzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0):
        pass
    return out.getvalue()


@functools.lru_cache(maxsize=4)
def empty_parquet(schema: pa.Schema = PUBLISHED_SCHEMA) -> bytes:
    """The smallest valid Parquet file of ``schema``: no row group, no ``ARROW:schema`` copy (the
    Parquet logical types read back as ``schema``: tested against the published schema)."""
    out = io.BytesIO()
    table = schema.empty_table()
    # the published order recorded like every day's (its one empty row group), so s3_parquet copies it as it is
    sorting = pq.SortingColumn.from_ordering(schema, list(SORTED_BY))
    pq.write_table(table, out, store_schema=False, compression="none", write_statistics=False, sorting_columns=sorting)
    return out.getvalue()


class EmptyTable(StoredTable):
    """A materialized day without rows and without an object: reads as 0 rows of the published schema."""

    def read(self, columns: list[str] | None = None) -> pa.Table:
        table = PUBLISHED_SCHEMA.empty_table()
        return table.select(columns) if columns is not None else table

    def metadata(self) -> pq.FileMetaData:
        return pq.read_metadata(pa.BufferReader(empty_parquet()))

    def batches(self, rows: int = 0) -> Iterator[pa.Table]:
        yield PUBLISHED_SCHEMA.empty_table()


class EmptyPages(StoredPages):
    """A materialized day without pages and without an object."""

    def size(self) -> int:
        return 0

    def lines(self) -> Iterator[tuple[str, bytes]]:
        return iter(())


def is_empty(value) -> bool:
    """True for a day's value that holds nothing: no page, 0 rows, or an :class:`EmptyTable`."""
    if isinstance(value, SpooledPages):
        return value.pages == 0
    if isinstance(value, SpooledTable):
        return value.rows == 0
    return isinstance(value, EmptyTable)


def store_empty(lake: Lake, key: str, fmt: str) -> int:
    """Store an empty day at ``key``: nothing when no object is there (returns 0), else the smallest
    valid empty object of ``fmt`` over the old one (returns its bytes). Unconditional: a day's object
    in a pipeline run goes through :func:`store_empty_fenced`.

    Raises:
        LakeError: the lake cannot be read or written.
    """
    if lake.size(key) is None:
        return 0
    return lake.put_bytes(key, empty_object(fmt))


def empty_object(fmt: str) -> bytes:
    """The smallest valid empty object of ``fmt`` (``jsonl.gz`` or ``parquet``)."""
    return empty_gzip() if fmt == "jsonl.gz" else empty_parquet()


def store_empty_fenced(lake: Lake, key: str, fmt: str, expect, meta: dict | None = None) -> Written:
    """Store an empty day at ``key`` where the object is expected to be ``expect`` (an ETag, None
    for none: tweet_assets.lake.fencing; ``ANY``: whatever is there, unconditionally): nothing when
    none is expected (``Written(None, 0, 0)``), else the smallest valid empty object of ``fmt`` over
    that version (a conditional write).

    Raises:
        PreconditionFailed: the object is not ``expect``.
        LakeError: the lake cannot be written.
    """
    if expect is ANY:  # an unpartitioned asset: no lease, no condition
        expect = ANY if lake.size(key) is not None else None
    if expect is None:
        return Written(None, 0, 0)
    written = lake.write_bytes(key, empty_object(fmt), expect, meta)
    return Written(written.etag, written.bytes, 0)


def recorded_empty(instance, asset_key, partitions: Iterable[str]) -> set[str]:
    """The ``partitions`` whose latest materialization of ``asset_key`` in ``instance`` recorded
    ``bytes: 0`` (stored as an empty day). One query per 1,000 records, newest first."""
    from dagster import AssetRecordsFilter

    wanted = set(partitions)
    seen: set[str] = set()
    empty: set[str] = set()
    cursor = None
    while wanted - seen:
        result = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=asset_key, asset_partitions=sorted(wanted - seen)), limit=1000, cursor=cursor
        )
        for record in result.records:  # newest first: the first per partition is its latest
            materialization = record.asset_materialization
            if materialization is None or materialization.partition in seen:
                continue
            seen.add(materialization.partition)
            stored = materialization.metadata.get(BYTES)
            if getattr(stored, "value", stored) == 0:
                empty.add(materialization.partition)
        if not result.has_more:
            break
        cursor = result.cursor
    return empty


def read_days(
    lake: Lake, keys: Mapping[str, str], fmt: str, recorded: Callable[[list[str]], set[str]], read: Callable[[Lake, str, str], object], versions: Mapping[str, str | None] | None = None
) -> dict:
    """``{day: value}`` for the IO manager's load: ``read(lake, key, fmt)`` where an object is
    there; :class:`EmptyPages`/:class:`EmptyTable` where none is and ``recorded(missing days)``
    says the day was stored empty; otherwise ``read`` too (which fails for a day never stored).
    ``versions``: ``{day: ETag or None}`` already read (None: no object), so no HEAD is made;
    without it, each key is HEADed."""
    missing = [day for day, key in keys.items() if (versions[day] if versions is not None else lake.size(key)) is None]
    empty = recorded(missing) if missing else set()
    kind = EmptyPages if fmt == "jsonl.gz" else EmptyTable
    return {day: kind(lake, key, lake.uri(key)) if day in empty else read(lake, key, fmt) for day, key in keys.items()}
