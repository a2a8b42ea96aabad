"""The published table as Hive-partitioned Parquet: today's files, described behind the tables interface.

``<lake>/<table>/dt=YYYY-MM-DD/part-00000.parquet`` (``dt`` in the path only), one object per day,
zstd, timestamps in milliseconds UTC, rows sorted by ``(created_at, id)``; Athena reads it through
partition projection (:mod:`tweet_assets.warehouses.athena`). A day without posts stores no object
(:mod:`tweet_assets.lake.empty_days`).

In the pipeline the lake IO manager (:mod:`tweet_assets.lake.io_manager`) writes these objects
under the run's day leases and records their lineage; compliance rewrites them
(:mod:`tweet_assets.compliance.rewrite`). This module does not replace either: it reads the days
back, lists them, describes the table, and publishes with the same primitives (one PutObject per
day, replacing it) where no Dagster run is involved (the benchmark, ``tweet-assets iceberg
import``'s tests).
"""

from __future__ import annotations

import os
import tempfile
from typing import Callable, Mapping, Sequence

import pyarrow as pa

from tweet_assets.compliance.rewrite import published_days, remove_from_day
from tweet_assets.lake.empty_days import store_empty
from tweet_assets.lake.io_manager import LakeIOManager
from tweet_assets.lake.parquet import SORTED_BY, write_parquet
from tweet_assets.lake.prefixes import sub_lake
from tweet_assets.lake.store import Lake
from tweet_assets.lake.values import StoredTable
from tweet_assets.schema import PUBLISHED_SCHEMA
from tweet_assets.tables.base import Commit, DayChange, DayRows, PublishedTable, Removal


class HiveTable(PublishedTable):
    """The Hive table in lake folder ``table`` (``tweets`` or ``<collection>/tweets``) of ``lake``."""

    format = "hive"

    def __init__(self, lake: Lake, table: str = "tweets"):
        self.lake = lake
        self.table = table
        prefix, _, self.name = table.rpartition("/")
        self.zone = sub_lake(lake, prefix)  # the collection's lake: its tweets/, clean_tweets/, raw_tweets/
        self.location = lake.uri(table)

    def key(self, day: str) -> str:
        """The day's object key in ``lake``: ``<table>/dt=<day>/part-00000.parquet``."""
        return LakeIOManager.key(self.table, "parquet", day)

    def publish(self, days: Mapping[str, DayRows], run_id: str, before_commit: Callable[[], None] | None = None) -> Commit:
        """Store each day's rows as its one object (a PutObject replacing the day's; a day without
        rows stores the smallest empty Parquet file over an existing object, nothing otherwise), one
        day after the other: there is no commit spanning days in this format."""
        changes = {}
        for day, rows in days.items():
            if before_commit is not None:
                before_commit()
            key = self.key(day)
            old = self.lake.size(key)
            fd, path = tempfile.mkstemp(suffix=".parquet")
            os.close(fd)
            try:
                records = write_parquet(rows(), path, PUBLISHED_SCHEMA, SORTED_BY)
                if records:
                    size = self.lake.put_file(key, path)
                else:
                    size = store_empty(self.lake, key, "parquet")
            finally:
                os.remove(path)
            changes[day] = DayChange(day, files_added=1 if records else 0, records_added=records, bytes_added=size, files_removed=1 if old is not None else 0)
        return Commit(self.format, self.location, None, changes, 1)

    def remove_ids(self, ids: pa.Array, days: Sequence[str] | None = None) -> Removal:
        """Today's compliance removal (:func:`tweet_assets.compliance.rewrite.remove_from_day`): each
        day's published, clean and raw objects rewritten without the posts (conditional writes)."""
        out = Removal()
        for day in days if days is not None else self.days():
            removal = remove_from_day(self.zone, day, ids)
            if removal.published:
                out.removed_ids[day] = sorted(removal.published)
                out.files_rewritten += 1
                out.records_removed += len(removal.published)
        return out

    def read_day(self, day: str, columns: Sequence[str] | None = None) -> pa.Table:
        key = self.key(day)
        if self.lake.size(key) is None:
            schema = PUBLISHED_SCHEMA if not columns else pa.schema([PUBLISHED_SCHEMA.field(c) for c in columns])
            return schema.empty_table()
        return StoredTable(self.lake, key, self.lake.uri(key)).read(list(columns) if columns else None)

    def days(self, first: str | None = None, last: str | None = None) -> list[str]:
        return published_days(self.zone, first, last) if self.name == "tweets" else []

    def describe(self) -> dict[str, str]:
        return {"format": self.format, "location": self.location.rstrip("/") + "/", "layout": "dt=YYYY-MM-DD/part-00000.parquet"}
