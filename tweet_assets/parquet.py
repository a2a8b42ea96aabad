"""Parquet files as this project writes them (clean_tweets and the published table alike).

zstd, row groups of at most :data:`ROW_GROUP_ROWS` rows written one chunk at a time, column
statistics on, dictionary encoding only where it pays, timestamps in milliseconds (UTC), which
Athena reads as ``timestamp``. Free of Dagster, so flattening a file needs only polars and pyarrow.
"""

from __future__ import annotations

import itertools
from typing import Iterable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

#: Rows per Parquet row group: a day is one file; ~100k posts make row groups of tens of MB.
ROW_GROUP_ROWS = 100_000
#: Dictionary-encode only columns with few distinct values (lang, source, ...): for ids and text it
#: costs time and saves nothing.
DICTIONARY_MAX_DISTINCT = 0.1


def write_parquet(table: pa.Table | Iterable[pa.Table], path: str, schema: pa.Schema | None = None) -> int:
    """Write a table, or chunks of one in order, as Parquet at ``path``; returns the row count.

    zstd, row groups of at most ``ROW_GROUP_ROWS`` rows (a chunk is written as it comes, so memory
    holds one chunk), column statistics on, dictionary encoding for the string columns with few
    distinct values in the first chunk, timestamps kept at their unit (the published schema: ms,
    UTC). ``schema`` casts every chunk (default: the first chunk's schema).
    """
    chunks = iter([table] if isinstance(table, pa.Table) else table)
    first = next(chunks, None)
    if first is None:
        if schema is None:
            raise ValueError(f"{path}: no chunk to write and no schema")
        first = schema.empty_table()
    if schema is not None:
        first = first.cast(schema)
    dictionary = [
        f.name
        for f in first.schema
        if pa.types.is_string(f.type) and first.num_rows and pc.count_distinct(first[f.name]).as_py() <= DICTIONARY_MAX_DISTINCT * first.num_rows + 1
    ]
    rows = 0
    with pq.ParquetWriter(
        path,
        first.schema,
        compression="zstd",
        use_dictionary=dictionary or False,
        write_statistics=True,
        coerce_timestamps="ms",
        allow_truncated_timestamps=False,
    ) as writer:
        for chunk in itertools.chain([first], chunks):
            if schema is not None:
                chunk = chunk.cast(schema)
            writer.write_table(chunk, row_group_size=ROW_GROUP_ROWS)
            rows += chunk.num_rows
    return rows
