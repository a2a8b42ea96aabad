"""Parquet files as this project writes them (clean_tweets and the published table alike).

zstd, row groups of at most :data:`ROW_GROUP_ROWS` rows written one chunk at a time, column
statistics on, dictionary encoding only where it pays, timestamps in milliseconds (UTC), which
Athena reads as ``timestamp``. Free of Dagster, so flattening a file needs only polars and pyarrow.
"""

from __future__ import annotations

import functools
import itertools
import struct
from typing import Callable, Iterable, Iterator, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

#: Rows per Parquet row group: a day is one file; ~100k posts make row groups of tens of MB.
ROW_GROUP_ROWS = 100_000
#: Integer columns that grow with the row order (snowflake ids and timestamps, rows sorted by
#: created_at; an edit history is mostly the post's own id): DELTA_BINARY_PACKED stores their small
#: differences (Parquet encodings spec; read by Athena/Trino, Spark and every parquet-mr reader).
#: Every other leaf column, nested list elements included, is dictionary-encoded.
DELTA_COLUMNS = ("id", "created_at", "conversation_id", "edit_history_tweet_ids")
#: Largest dictionary page per column chunk, bytes. Past it the writer falls back to plain for the
#: rest of the chunk (Arrow's rule). Arrow's default, 1 MB, is too small for a day's repeated texts
#: (retweets repeat their original's text): 4 MB made the sample day's ``text`` 2.2× smaller.
DICTIONARY_PAGE_BYTES = 4 << 20


#: The order of every day's rows (clean_tweets and the published table), recorded in each row
#: group's ``sorting_columns`` (Parquet format, ``RowGroup.sorting_columns``).
SORTED_BY: tuple[tuple[str, str], ...] = (("created_at", "ascending"), ("id", "ascending"))


def write_parquet(
    table: pa.Table | Iterable[pa.Table],
    path: str,
    schema: pa.Schema | None = None,
    sorted_by: Sequence[tuple[str, str]] | None = None,
) -> int:
    """Write a table, or chunks of one in order, as Parquet at ``path``; returns the row count.

    zstd, row groups of at most ``ROW_GROUP_ROWS`` rows (a chunk is written as it comes, so memory
    holds one chunk), column statistics on, :data:`DELTA_COLUMNS` delta-encoded and every other
    leaf column dictionary-encoded (dictionary pages up to :data:`DICTIONARY_PAGE_BYTES`), timestamps kept at their unit (the published schema: ms, UTC). ``schema`` casts every chunk (default: the first chunk's schema). ``sorted_by``
    (``(column, "ascending"|"descending")`` pairs) is the order the caller guarantees the rows are
    in; it is recorded as the row groups' ``sorting_columns``, not checked.
    """
    chunks = iter([table] if isinstance(table, pa.Table) else table)
    first = next(chunks, None)
    if first is None:
        if schema is None:
            raise ValueError(f"{path}: no chunk to write and no schema")
        first = schema.empty_table()
    if schema is not None:
        first = first.cast(schema)
    dictionary, delta = _encodings(first.schema)
    rows = 0
    with pq.ParquetWriter(
        path,
        first.schema,
        compression="zstd",
        use_dictionary=list(dictionary) or False,
        dictionary_pagesize_limit=DICTIONARY_PAGE_BYTES,
        column_encoding=dict(delta) or None,
        write_statistics=True,
        coerce_timestamps="ms",
        allow_truncated_timestamps=False,
        sorting_columns=pq.SortingColumn.from_ordering(first.schema, list(sorted_by)) if sorted_by else None,
    ) as writer:
        pending = [first]
        del first  # from here on only the chunk being written is held
        for chunk in itertools.chain(_drain(pending), chunks):
            if schema is not None:
                chunk = chunk.cast(schema)
            writer.write_table(chunk, row_group_size=ROW_GROUP_ROWS)
            rows += chunk.num_rows
            del chunk  # before the next chunk is built
    return rows


@functools.lru_cache(maxsize=16)
def _encodings(schema: pa.Schema) -> tuple[list[str], dict[str, str]]:
    """``(dictionary-encoded leaf paths, {leaf path: "DELTA_BINARY_PACKED"})`` of a schema (cached:
    a backfill writes hundreds of files of the same schema)."""
    leaves = [(f.name, path, type_) for f in schema for path, type_ in leaf_columns(f.name, f.type)]
    delta = {
        path: "DELTA_BINARY_PACKED"
        for name, path, type_ in leaves
        if name in DELTA_COLUMNS and (pa.types.is_integer(type_) or pa.types.is_timestamp(type_))
    }
    return [path for _, path, _ in leaves if path not in delta], delta


def _drain(items: list) -> Iterator:
    """Yield and forget the items of a list (a plain list would hold on to each)."""
    while items:
        yield items.pop(0)


def leaf_columns(name: str, type_: pa.DataType) -> list[tuple[str, pa.DataType]]:
    """The Parquet leaf columns of an Arrow field: ``[(dotted path, leaf type)]``.

    Paths are Parquet's as pyarrow writes them (``use_compliant_nested_type``): a list's elements
    are ``<name>.list.element``, a struct's fields ``<name>.<field>``, a map's ``<name>.key_value.key``
    and ``.value``. Writer options such as ``use_dictionary`` and ``column_encoding`` take these
    paths: given a top-level name of a nested column, they do not reach its leaves.
    """
    if pa.types.is_list(type_) or pa.types.is_large_list(type_) or pa.types.is_fixed_size_list(type_):
        return leaf_columns(f"{name}.list.element", type_.value_type)
    if pa.types.is_map(type_):
        return leaf_columns(f"{name}.key_value.key", type_.key_type) + leaf_columns(f"{name}.key_value.value", type_.item_type)
    if pa.types.is_struct(type_):
        return [leaf for field in type_ for leaf in leaf_columns(f"{name}.{field.name}", field.type)]
    return [(name, type_)]


def read_footer(read_tail: Callable[[int], bytes], guess: int = 1 << 16) -> pq.FileMetaData:
    """A Parquet file's metadata (schema, row groups, sorting columns) from its footer alone.

    ``read_tail(n)`` returns the file's last ``n`` bytes (or the whole file if shorter): one ranged
    read of ``guess`` bytes, a second only when the footer is longer. Layout per the Parquet
    format: ``<metadata><4-byte little-endian length>PAR1`` at the end of the file.

    Raises:
        ValueError: the bytes do not end like a Parquet file.
    """
    tail = read_tail(guess)
    if len(tail) < 12 or tail[-4:] != b"PAR1":
        raise ValueError("not a Parquet file (no PAR1 footer magic)")
    length = struct.unpack("<I", tail[-8:-4])[0]
    if length + 8 > len(tail):
        tail = read_tail(length + 8)
    return pq.read_metadata(pa.BufferReader(tail[-(length + 8) :]))


def is_sorted_by(metadata: pq.FileMetaData, sorted_by: Sequence[tuple[str, str]] = SORTED_BY) -> bool:
    """True if every row group of ``metadata`` declares ``sorted_by`` as its sorting columns."""
    schema = metadata.schema.to_arrow_schema()
    if any(name not in schema.names for name, _ in sorted_by):
        return False
    want = pq.SortingColumn.from_ordering(schema, list(sorted_by))
    return all(tuple(metadata.row_group(i).sorting_columns) == tuple(want) for i in range(metadata.num_row_groups))
