"""The interface of a published table format: publish a run's days, remove ids, read a day back,
describe. :mod:`tweet_assets.tables.hive` (today's files) and :mod:`tweet_assets.tables.iceberg`
implement it; :mod:`tweet_assets.tables.registry` names them."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable, ClassVar, Iterator, Mapping, Sequence

import pyarrow as pa

#: One day's rows to publish: called (again, if the rows must be written again) for an iterator of
#: Arrow tables in the published schema (``tweet_assets.schema.PUBLISHED_SCHEMA``), sorted by
#: ``(created_at, id)``; no chunk at all for a day without posts.
DayRows = Callable[[], Iterator[pa.Table]]


@dataclass
class DayChange:
    """What a commit did to one UTC day (``YYYY-MM-DD``): data files and records added and removed,
    bytes added."""

    day: str
    files_added: int = 0
    records_added: int = 0
    bytes_added: int = 0
    files_removed: int = 0
    records_removed: int = 0


@dataclass
class Commit:
    """One run's publish: the table, the snapshot it made (None for a format without snapshots),
    each day's change, how many commit attempts it took and the columns it added to the table."""

    format: str
    table: str
    snapshot_id: int | None
    days: dict[str, DayChange] = field(default_factory=dict)
    attempts: int = 1
    columns_added: list[str] = field(default_factory=list)

    def day_metadata(self, day: str) -> dict:
        """The partition's materialization metadata for ``day`` (Dagit shows it per partition)."""
        change = self.days.get(day, DayChange(day))
        return {
            "table_format": self.format,
            f"{self.format}/table": self.table,
            **({f"{self.format}/snapshot_id": str(self.snapshot_id)} if self.snapshot_id is not None else {}),
            "data_files_added": change.files_added,
            "data_files_removed": change.files_removed,
            "records_added": change.records_added,
            "records_removed": change.records_removed,
        }


@dataclass
class Removal:
    """What :meth:`PublishedTable.remove_ids` removed: ids per day, data files rewritten (a file
    that kept some rows) and deleted (a file whose rows all went), the snapshots made."""

    removed_ids: dict[str, list[int]] = field(default_factory=dict)
    files_rewritten: int = 0
    files_deleted: int = 0
    records_removed: int = 0
    snapshot_ids: list[int] = field(default_factory=list)
    attempts: int = 0


class PublishedTable(ABC):
    """A collection's published table in one format.

    Attributes:
        format: ``hive`` or ``iceberg`` (:data:`tweet_assets.tables.FORMATS`).
        location: the table's folder (``s3://bucket/prefix/tweets`` or a local path/``file://`` URI).
    """

    format: ClassVar[str]
    location: str

    @abstractmethod
    def publish(self, days: Mapping[str, DayRows], run_id: str, before_commit: Callable[[], None] | None = None) -> Commit:
        """Replace exactly ``days`` (``{YYYY-MM-DD: rows}``) with the given rows; a day without rows
        is left without rows. ``before_commit`` is called right before each commit attempt (the
        run's day leases are renewed there: a run that lost one writes nothing)."""

    @abstractmethod
    def remove_ids(self, ids: pa.Array, days: Sequence[str] | None = None) -> Removal:
        """Remove the rows whose ``id`` is in ``ids`` (int64) or that retweet one (``retweeted_id``),
        on ``days`` (default: every day)."""

    @abstractmethod
    def read_day(self, day: str, columns: Sequence[str] | None = None) -> pa.Table:
        """``day``'s rows as stored (Hive: timestamps in ms; Iceberg: µs), an empty table when none."""

    @abstractmethod
    def days(self, first: str | None = None, last: str | None = None) -> list[str]:
        """The days holding rows, sorted, within ``[first, last]`` when given."""

    @abstractmethod
    def describe(self) -> dict[str, str]:
        """What a user needs to find the table: format, location, catalog names."""
