"""Moving an existing lake: the published Hive days loaded into the Iceberg table
(``tweet-assets iceberg import``).

Each Hive day (``<table>/dt=D/part-00000.parquet``) replaces day ``D`` in the Iceberg table, in
commits of ``days_per_commit`` days (one snapshot each; a failure keeps the commits before it), each
under the days' leases (a run writing one of them refuses the import, naming it). A day the Iceberg
table already holds with exactly the Hive rows (every value, timestamps at ms: a hash per row
compared as a multiset) is left alone, so an import run twice leaves the same table, and an
interrupted import resumes where it stopped. The Hive objects stay (delete them when the Iceberg
table is the one the warehouses read).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import polars as pl
import pyarrow as pa

from tweet_assets.lake.leases import DayLeases
from tweet_assets.schema import PUBLISHED_SCHEMA
from tweet_assets.tables.hive import HiveTable
from tweet_assets.tables.iceberg import IcebergTable, renew_leases


@dataclass
class DayImport:
    """One day of an import: posts read from Hive, posts committed (0 when unchanged), the snapshot."""

    day: str
    posts_in: int
    committed: int
    unchanged: bool
    snapshot_id: int | None = None


def _fingerprint(table: pa.Table) -> pl.Series:
    """One hash per row of ``table`` in the published schema (timestamps at ms), sorted."""
    return pl.from_arrow(table.select(PUBLISHED_SCHEMA.names).cast(PUBLISHED_SCHEMA)).hash_rows().sort()


def same_rows(hive: pa.Table, iceberg: pa.Table) -> bool:
    """Whether a Hive day and an Iceberg day hold the same rows (every column; µs timestamps
    compared at ms, which is what the Hive files hold)."""
    if hive.num_rows != iceberg.num_rows:
        return False
    return _fingerprint(hive).equals(_fingerprint(iceberg))


def import_days(
    hive: HiveTable,
    iceberg: IcebergTable,
    days: Sequence[str],
    leases: DayLeases,
    run_id: str,
    days_per_commit: int = 30,
    on_commit: Callable[[list[DayImport]], None] | None = None,
) -> Iterator[DayImport]:
    """Import ``days`` (``YYYY-MM-DD``, the Hive days to load) into ``iceberg``, yielding one
    :class:`DayImport` per day in order (``on_commit`` gets each commit's days first).

    Raises:
        LeaseConflict: a run is writing one of the days (nothing of that commit is written).
        SchemaChangeRefused, TableCommitError: as :meth:`IcebergTable.publish`.
    """
    pending = sorted(days)
    for start in range(0, len(pending), max(1, days_per_commit)):
        batch = pending[start : start + max(1, days_per_commit)]
        leases.acquire(batch)
        try:
            results = []
            changed = {}
            loaded = iceberg.load()  # once per commit, not per day (the batch's days are held)
            for day in batch:
                rows = hive.read_day(day)
                if same_rows(rows, iceberg.read_day(day, table=loaded)):
                    results.append(DayImport(day, rows.num_rows, 0, True))
                else:
                    changed[day] = rows
                    results.append(DayImport(day, rows.num_rows, 0, False))
            if changed:
                commit = iceberg.publish(
                    {day: (lambda d=day: iter([changed[d].sort_by([("created_at", "ascending"), ("id", "ascending")])])) for day in changed},
                    run_id,
                    before_commit=lambda: renew_leases(leases, batch),
                )
                for result in results:
                    if not result.unchanged:
                        result.committed = commit.days[result.day].records_added
                        result.snapshot_id = commit.snapshot_id
        finally:
            leases.release(batch)
        if on_commit is not None:
            on_commit(results)
        yield from results
