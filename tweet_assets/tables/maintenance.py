"""Keeping an Iceberg table lean, and its deleted posts physically gone.

pyiceberg's ``expire_snapshots`` only drops snapshots from the table metadata; it deletes no file.
So a compliance delete (copy-on-write) leaves the old data files, with the deleted posts in them, in
storage. This module removes them:

- :func:`expire_snapshots`: expires every snapshot older than ``TWEET_ASSETS_ICEBERG_SNAPSHOT_RETENTION``
  hours (never the current one, nor a branch's or tag's head), then deletes at once each file that
  only the expired snapshots reached (data and delete files, manifests, manifest lists): those were
  committed, so no writer is still about to commit them.
- :func:`remove_orphan_files`: deletes each data, delete, manifest or metadata file under the table's
  ``data/`` and ``metadata/`` folders that no live snapshot references and that is older than
  ``TWEET_ASSETS_ICEBERG_ORPHAN_GRACE_S`` (a failed writer's leftovers; a younger one may be another
  writer's uncommitted file, so it stays), **unless a live writer may still commit it**: a data file
  of a day whose lease names a run that may still write (not released, its run not finished, even
  past the lease's expiry, since a paused writer may resume: a backfill writes every day's files
  first and commits once, hours later), or a metadata file while any day's lease is held (a
  commit's manifests carry no day, and are written at commit time, so are young). Those are skipped and counted (``held``); the
  next sweep removes what is still unreferenced then. Nothing outside those two folders is touched
  (the Hive ``dt=`` objects of a lake that switched formats stay).
- :func:`compact`: rewrites each day held in several data files as one (sorted by ``created_at, id``),
  all such days in one commit.

Athena's ``OPTIMIZE … REWRITE DATA USING BIN_PACK`` and ``VACUUM`` do the same from Athena
(docs/warehouses.md).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from pyiceberg.table import Table, TableProperties

from tweet_assets import config
from tweet_assets.lake.leases import DayLeases
from tweet_assets.tables.iceberg import IcebergTable, TableCommitError, ordinal_day  # noqa: F401  (TableCommitError: compact raises it)

RETENTION_ENV = "TWEET_ASSETS_ICEBERG_SNAPSHOT_RETENTION"
GRACE_ENV = "TWEET_ASSETS_ICEBERG_ORPHAN_GRACE_S"
#: The file names this module may delete: Iceberg's own (data/delete files, manifests, manifest
#: lists, metadata JSON).
ICEBERG_SUFFIXES = (".parquet", ".avro", ".metadata.json", ".metadata.json.gz")


def retention_hours() -> float:
    """``TWEET_ASSETS_ICEBERG_SNAPSHOT_RETENTION``: hours a snapshot is kept (default 0: only the current one)."""
    return float(config.number(RETENTION_ENV))


def orphan_grace_s() -> float:
    """``TWEET_ASSETS_ICEBERG_ORPHAN_GRACE_S``: age (s) before an unreferenced file counts as an orphan."""
    return float(config.number(GRACE_ENV))


def normalized(location: str) -> str:
    """A file location without its scheme (``s3://b/k`` → ``b/k``, ``file:///p`` → ``/p``): how
    pyarrow's filesystems list them."""
    for scheme in ("s3://", "s3a://", "s3n://", "gs://"):
        if location.startswith(scheme):
            return location[len(scheme) :]
    if location.startswith("file://"):
        return location[len("file://") :]
    return location


def _filesystem(table: Table, location: str) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem of ``table``'s FileIO for ``location`` and the path in it."""
    io = table.io
    if not hasattr(io, "fs_by_scheme"):
        raise TypeError(f"table {table.name()}: its FileIO {type(io).__name__} cannot list files; use pyiceberg's PyArrowFileIO (the default)")
    scheme, netloc, path = io.parse_location(location)
    return io.fs_by_scheme(scheme, netloc), path


def files_under(table: Table, folder: str = "") -> Iterator[tuple[str, float]]:
    """``(normalized path, modified Unix s)`` of every file under the table's location (or its
    ``folder`` sub-folder), as the storage lists them (its clock)."""
    location = table.location().rstrip("/") + (f"/{folder.strip('/')}" if folder else "")
    fs, path = _filesystem(table, location)
    try:
        infos = fs.get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True))
    except FileNotFoundError:
        return
    for info in infos:
        if info.type == pafs.FileType.File:
            yield info.path, info.mtime.timestamp() if info.mtime is not None else 0.0


def reachable(table: Table) -> dict[str, str]:
    """Every file the table's snapshots reach, ``{location: kind}`` (``manifest_list``,
    ``manifest``, ``data``, ``delete``); a manifest's entries marked deleted are not reached."""
    out: dict[str, str] = {}
    seen_manifests: set[str] = set()
    for snapshot in table.snapshots():
        out[snapshot.manifest_list] = "manifest_list"
        for manifest in snapshot.manifests(table.io):
            out[manifest.manifest_path] = "manifest"
            if manifest.manifest_path in seen_manifests:
                continue
            seen_manifests.add(manifest.manifest_path)
            for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True):
                data_file = entry.data_file
                out[data_file.file_path] = "data" if data_file.content.value == 0 else "delete"
    return out


def metadata_files(table: Table) -> set[str]:
    """The table's current metadata JSON and those its metadata log keeps."""
    files = {normalized(table.metadata_location)} if table.metadata_location else set()
    files.update(normalized(entry.metadata_file) for entry in table.metadata.metadata_log)
    for stats in (*table.metadata.statistics, *table.metadata.partition_statistics):
        files.add(normalized(stats.statistics_path))
    return files


@dataclass
class Expiry:
    """What :func:`expire_snapshots` did: snapshots expired and kept, files deleted by kind."""

    snapshots_expired: int = 0
    snapshots_kept: int = 0
    files_deleted: dict[str, int] = field(default_factory=dict)

    @property
    def deleted(self) -> int:
        return sum(self.files_deleted.values())


def expire_snapshots(table: Table, retention_h: float | None = None, now: float | None = None) -> tuple[Table, Expiry]:
    """Expire every snapshot older than ``retention_h`` hours (default the setting) except the
    current one and branch/tag heads, then delete each file only they reached.

    Returns: the reloaded table and the :class:`Expiry`.
    """
    retention_h = retention_hours() if retention_h is None else retention_h
    now = time.time() if now is None else now
    cutoff_ms = int((now - retention_h * 3600) * 1000)
    out = Expiry()
    table = table.refresh()
    current = table.current_snapshot()
    protected = {ref.snapshot_id for ref in table.metadata.refs.values()}
    old = [s.snapshot_id for s in table.snapshots() if s.timestamp_ms < cutoff_ms and s.snapshot_id not in protected and (current is None or s.snapshot_id != current.snapshot_id)]
    if not old:
        out.snapshots_kept = len(table.snapshots())
        return table, out
    before = reachable(table)
    table.maintenance.expire_snapshots().by_ids(old).commit()
    table = table.refresh()
    after = reachable(table)
    for location, kind in before.items():
        if location not in after:
            table.io.delete(location)
            out.files_deleted[kind] = out.files_deleted.get(kind, 0) + 1
    out.snapshots_expired = len(old)
    out.snapshots_kept = len(table.snapshots())
    return table, out


@dataclass
class Sweep:
    """What :func:`remove_orphan_files` did: files listed, deleted, unreferenced but younger than the
    grace period (``young``), and unreferenced but kept for a run holding their day's lease
    (``held``, by the runs ``held_by``)."""

    listed: int = 0
    deleted: int = 0
    young: int = 0
    held: int = 0
    held_by: list[str] = field(default_factory=list)


#: A partition folder of a day in a data file's path (``created_at_day=2024-06-01``).
_DAY_FOLDER = re.compile(r"/[^/=]+=(\d{4}-\d{2}-\d{2})/")


def remove_orphan_files(table: Table, grace_s: float | None = None, now: float | None = None, leases: DayLeases | None = None) -> Sweep:
    """Delete each Iceberg file under the table's ``data/`` and ``metadata/`` folders that no
    snapshot reaches and the metadata does not name, when older than ``grace_s`` (default the
    setting): what failed or killed writers left behind.

    ``leases``: the day leases of the table's lake (a :class:`~tweet_assets.lake.leases.DayLeases`
    whose ``run_finished`` asks the Dagster instance). Such a file is kept while a run may still
    commit it: a data file of a day whose lease names a run that may still write it
    (:meth:`~tweet_assets.lake.leases.DayLeases.writer`: not released, its run not finished, even
    past its expiry, as a paused writer may resume), a metadata file (or a data file whose path
    names no day) while any day is held (module doc). None: no writer is asked about (tests, a
    table no pipeline writes).

    In two passes: the candidates (unreferenced, old enough), then, once the writers are asked,
    the table read again and only what it still does not reach deleted. A run that committed a
    candidate day's files and released its lease between the first read and the question is in
    the second read (it releases after its commit).
    """
    grace_s = orphan_grace_s() if grace_s is None else grace_s
    now = time.time() if now is None else now
    table = table.refresh()
    live = _live(table)
    out = Sweep()
    data_folder = table.properties.get(TableProperties.WRITE_DATA_PATH) or f"{table.location().rstrip('/')}/data"
    folders = {data_folder, table.properties.get(TableProperties.WRITE_METADATA_PATH) or f"{table.location().rstrip('/')}/metadata"}
    _, data_path = _filesystem(table, data_folder)
    candidates: dict[str | None, list[tuple[pafs.FileSystem, str]]] = {}  # day (None: no day) -> files
    for folder in sorted(folders):
        fs, path = _filesystem(table, folder)
        for info in fs.get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True)):
            if info.type != pafs.FileType.File or not info.path.endswith(ICEBERG_SUFFIXES):
                continue
            out.listed += 1
            if info.path in live:
                continue
            if info.mtime is not None and info.mtime.timestamp() > now - grace_s:
                out.young += 1
                continue
            day = _DAY_FOLDER.search(info.path[len(data_path.rstrip("/")) :]) if info.path.startswith(data_path.rstrip("/") + "/") else None
            candidates.setdefault(day.group(1) if day else None, []).append((fs, info.path))
    if not candidates:
        return out
    writers = {}
    if leases is not None:
        for day in candidates:
            writers[day] = leases.writer(day) if day is not None else next(iter(sorted(set(leases.holders().values()))), None)
    live = _live(table.refresh())  # after the writers were asked: what they committed meanwhile is reached
    for day, files in candidates.items():
        run = writers.get(day)
        if run is not None:  # a live (or paused) writer's uncommitted files, maybe: the next sweep decides
            out.held += len(files)
            if run not in out.held_by:
                out.held_by.append(run)
            continue
        for fs, path in files:
            if path not in live:
                fs.delete_file(path)
                out.deleted += 1
    return out


def _live(table: Table) -> set[str]:
    """Every file the table reaches (snapshots, manifests, data and delete files) or names
    (metadata JSON), as paths of its filesystem."""
    return {normalized(location) for location in reachable(table)} | metadata_files(table)


def parquet_ids(table: Table, columns: Sequence[str] = ("id", "retweeted_id")) -> pa.Table:
    """``columns`` of every Parquet file under the table's location, read with pyarrow file by file,
    not through the catalog (the proof that a removed post left the storage), with a ``file``
    column. A file without one of the columns contributes nulls for it."""
    parts = []
    fs, _ = _filesystem(table, table.location())
    for path, _ in files_under(table):
        if not path.endswith(".parquet"):
            continue
        with fs.open_input_file(path) as handle:
            parquet = pq.ParquetFile(handle)
            names = parquet.schema_arrow.names
            read = parquet.read(columns=[c for c in columns if c in names])
        arrays = {c: read.column(c).cast(pa.int64()) if c in names else pa.nulls(read.num_rows, pa.int64()) for c in columns}
        parts.append(pa.table({**arrays, "file": pa.array([path] * read.num_rows, pa.string())}))
    schema = pa.schema([*(pa.field(c, pa.int64()) for c in columns), pa.field("file", pa.string())])
    return pa.concat_tables([p.cast(schema) for p in parts]) if parts else schema.empty_table()


@dataclass
class Compaction:
    """What :func:`compact` did: the days rewritten, data files before and after, the snapshot."""

    days: list[str] = field(default_factory=list)
    files_before: int = 0
    files_after: int = 0
    snapshot_id: int | None = None


def data_files_by_day(table: Table) -> dict[str, list]:
    """The current snapshot's data files by partition day (``YYYY-MM-DD``)."""
    out: dict[str, list] = {}
    if table.current_snapshot() is None:
        return out
    for task in table.scan().plan_files():
        data_file = task.file
        if len(data_file.partition):
            out.setdefault(ordinal_day(data_file.partition[0]), []).append(data_file)
    return out


def compact(
    itable: IcebergTable,
    days: Sequence[str] | None = None,
    min_files: int = 2,
    before_commit: Callable[[list[str]], None] | None = None,
    run_id: str = "maintenance",
    hold: Callable[[list[str]], list[str]] | None = None,
) -> Compaction:
    """Rewrite each day (of ``days``, default all) held in ``min_files`` or more data files as
    one day of rows sorted by ``(created_at, id)``, through :meth:`IcebergTable.publish` (one commit
    for every such day; ``before_commit(days)`` renews their leases). ``hold(days)``: given the
    days to compact, the ones this run may (their leases taken; the others are left). Files before
    are counted over the whole table (planned once), files after from the committed snapshot's
    summary (so a commit of another run between the plan and this one counts).

    Raises:
        TableCommitError: the commit lost to other writers every time (names the setting).
    """
    table = itable.load()
    out = Compaction()
    if table is None:
        return out
    by_day = data_files_by_day(table)
    out.files_before = sum(len(f) for f in by_day.values())
    chosen = sorted(d for d, files in by_day.items() if len(files) >= min_files and (days is None or d in days))
    if chosen and hold is not None:
        chosen = sorted(set(hold(chosen)) & set(chosen))
    if not chosen:
        out.files_after = out.files_before
        return out

    def rows(day: str):
        def read():
            frame = itable.read_day(day)  # loaded now: a compaction of many days outlives a snapshot another run may expire
            yield frame.sort_by([("created_at", "ascending"), ("id", "ascending")])

        return read

    commit = itable.publish({day: rows(day) for day in chosen}, run_id, before_commit=(lambda: before_commit(chosen)) if before_commit else None)
    out.days = chosen
    out.snapshot_id = commit.snapshot_id
    out.files_after = _data_files_at(itable, commit.snapshot_id)
    if out.files_after is None:  # the snapshot expired meanwhile: this commit's change on the plan's count
        out.files_after = out.files_before + sum(c.files_added - c.files_removed for c in commit.days.values())
    return out


def _data_files_at(itable: IcebergTable, snapshot_id: int | None) -> int | None:
    """The table's data files at ``snapshot_id`` (its summary's ``total-data-files``, Iceberg spec
    "Snapshot summary"), other runs' commits before it included; None when it is gone or says not."""
    table = itable.load()
    snapshot = table.snapshot_by_id(snapshot_id) if table is not None and snapshot_id is not None else None
    total = snapshot.summary.get("total-data-files") if snapshot is not None and snapshot.summary is not None else None
    return int(total) if total is not None else None
