"""The published table as an Apache Iceberg v2 table (pyiceberg), beside the Hive files.

- **Where**: the catalog chosen by name (:mod:`.catalogs`), database and table named as the Hive
  table is (``default.tweets``, a collection's ``table``), data under the lake's table location
  (``<lake>/tweets/data/created_at_day=YYYY-MM-DD/*.parquet``, metadata in ``<lake>/tweets/metadata/``).
- **Shape**: the columns of ``schema.py`` with timestamps in microseconds UTC, partitioned by
  ``day(created_at)``, sorted by ``created_at, id`` (:mod:`.iceberg_schema`), zstd Parquet with
  the field ids in every file. Column bounds are kept in the manifests only for ``id``,
  ``created_at`` and the other id columns (:data:`BOUNDED_COLUMNS`): no post content is copied into
  metadata, so a compliance delete leaves no trace of a post's text there.
- **One commit per run** (:meth:`IcebergTable.publish`): the run's data files are written first
  (one file per day, rolled at ``write.target-file-size-bytes``), then one catalog commit makes one
  ``overwrite`` snapshot that removes the days' previous data files and adds the new ones: a rerun
  of a day replaces that day and nothing else. A lost race (another writer committed first) is
  retried by pyiceberg with the table reloaded (``commit.retry.num-retries``, 4), and what still
  fails (a conflicting change to the same days, retries spent) is planned again from the reloaded
  table, up to ``TWEET_ASSETS_ICEBERG_COMMIT_ATTEMPTS`` times, re-checking the run's day leases
  before each attempt.
- **Deletes** (:meth:`IcebergTable.remove_ids`): one transaction with pyiceberg's row-level
  ``delete`` (copy-on-write: a data file holding a removed post is rewritten without it).
  Physically removing what old snapshots still reference is :mod:`.maintenance`'s job.
"""

from __future__ import annotations

import logging
import uuid
from datetime import date, datetime, timedelta, timezone
from typing import Callable, Iterable, Iterator, Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import (
    CommitFailedException,
    NamespaceAlreadyExistsError,
    NoSuchIcebergTableError,
    NoSuchNamespaceError,
    NoSuchPropertyException,
    NoSuchTableError,
    TableAlreadyExistsError,
    ValidationException,
)
from pyiceberg.expressions import AlwaysFalse, And, BooleanExpression, GreaterThanOrEqual, In, LessThan, NotNull, Or
from pyiceberg.io.fileformat import FileFormatFactory
from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
from pyiceberg.partitioning import PartitionFieldValue, PartitionKey
from pyiceberg.table import Table, TableProperties

from tweet_assets import config
from tweet_assets.tables import pyiceberg_fixes  # noqa: F401  (null lists of structs read back as null: see the module)
from tweet_assets.lake.store import Lake, LocalLake
from tweet_assets.tables.base import Commit, DayChange, DayRows, PublishedTable, Removal
from tweet_assets.tables.catalogs import CATALOG_ENV, CatalogError, catalog_name, database_name, open_catalog
from tweet_assets.tables.iceberg_schema import (
    SchemaChangeRefused,  # noqa: F401  (raised by publish; importers catch it from here)
    conform,
    evolution,
    file_schema,
    iceberg_arrow_schema,
    new_table_schema,
    partition_spec,
    sort_order,
    to_file_schema,
    zoned,
)

logger = logging.getLogger(__name__)

COMMIT_ATTEMPTS_ENV = "TWEET_ASSETS_ICEBERG_COMMIT_ATTEMPTS"
#: Columns whose lower/upper bounds the manifests keep (``full``): ids and times, never content.
#: Every other column keeps counts only (``write.metadata.metrics.default = counts``).
BOUNDED_COLUMNS = ("id", "created_at", "conversation_id", "author_id", "retweeted_id", "quoted_id", "replied_to_id")
#: The table's properties at creation (Iceberg spec, "Table properties"; pyiceberg honours each).
TABLE_PROPERTIES = {
    TableProperties.FORMAT_VERSION: "2",
    TableProperties.PARQUET_COMPRESSION: "zstd",
    TableProperties.DEFAULT_WRITE_METRICS_MODE: "counts",
    **{f"{TableProperties.METRICS_MODE_COLUMN_CONF_PREFIX}.{name}": "full" for name in BOUNDED_COLUMNS},
    # old metadata JSON files (snapshot lists, no data) are deleted after each commit past 100
    TableProperties.METADATA_DELETE_AFTER_COMMIT_ENABLED: "true",
    "tweet_assets.columns": "tweet_assets/schema.py",
}
#: Snapshot summary properties every commit of this project carries.
RUN_PROPERTY = "tweet-assets.run-id"
DAYS_PROPERTY = "tweet-assets.days"
#: What a compliance delete's snapshots carry: the operation, and an id of that one call.
OPERATION_PROPERTY = "tweet-assets.operation"
OPERATION_ID_PROPERTY = "tweet-assets.operation-id"
DAY = timedelta(days=1)
EPOCH = date(1970, 1, 1)


class TableCommitError(RuntimeError):
    """A commit could not be made; the message says why and what to do."""


def table_location(lake: Lake, table: str) -> str:
    """The Iceberg table location of lake table folder ``table`` (``tweets``, ``<collection>/tweets``):
    ``s3://bucket/prefix/tweets`` or ``file:///abs/lake/tweets``."""
    uri = lake.uri(table)
    return f"file://{uri}" if isinstance(lake, LocalLake) else uri


def day_ordinal(day: str) -> int:
    """Days since 1970-01-01 of ``YYYY-MM-DD``: the value of ``day(created_at)`` (Iceberg spec, "Partition transforms")."""
    return (date.fromisoformat(day) - EPOCH).days


def ordinal_day(ordinal: int) -> str:
    return (EPOCH + timedelta(days=int(ordinal))).isoformat()


def _midnight(day: date, zone: bool = True) -> str:
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc if zone else None).isoformat()


def days_filter(days: Iterable[str], zone: bool = True) -> BooleanExpression:
    """``created_at`` within any of ``days`` (UTC): consecutive days merged into one range, the
    ranges OR-ed as a balanced tree (a year of days stays a shallow expression). ``zone=False``
    for a table whose ``created_at`` is a timestamp without time zone (UTC values)."""
    ordered = sorted({date.fromisoformat(d) for d in days})
    ranges: list[tuple[date, date]] = []
    for day in ordered:
        if ranges and ranges[-1][1] == day:
            ranges[-1] = (ranges[-1][0], day + DAY)
        else:
            ranges.append((day, day + DAY))
    terms = [And(GreaterThanOrEqual("created_at", _midnight(a, zone)), LessThan("created_at", _midnight(b, zone))) for a, b in ranges]
    return _balanced_or(terms) if terms else AlwaysFalse()


def _balanced_or(terms: list[BooleanExpression]) -> BooleanExpression:
    if len(terms) == 1:
        return terms[0]
    middle = len(terms) // 2
    return Or(_balanced_or(terms[:middle]), _balanced_or(terms[middle:]))


def removal_filter(ids: pa.Array) -> BooleanExpression:
    """Rows whose ``id`` is in ``ids`` or that retweet one of them (``retweeted_id``): X removes a
    deleted post's retweets with it (the rule of :func:`tweet_assets.compliance.rewrite.without_ids`).

    ``retweeted_id IS NOT NULL`` is spelt out: pyiceberg 0.12's copy-on-write delete keeps the rows
    of its filter's complement, to which it adds ``OR <column> IS NULL`` for each column the filter
    names without a null test, so ``id in ids OR retweeted_id in ids`` alone would keep every
    removed post that is not a retweet (its ``retweeted_id`` is null)."""
    values = [int(v) for v in pc.unique(pc.drop_null(ids.cast(pa.int64()))).to_pylist()]
    if not values:
        return AlwaysFalse()
    return Or(In("id", values), And(NotNull("retweeted_id"), In("retweeted_id", values)))


def renew_leases(leases, days: Sequence[str]) -> None:
    """Renew ``leases`` (a :class:`~tweet_assets.lake.leases.DayLeases`) of ``days`` from the lease
    objects themselves, not this process's memory of them, before a commit.

    Raises:
        LeaseLost: another run took a day over while this one was paused (past its lease), naming it.
        LeaseConflict: another live run holds a day this run never held (or whose record no longer
            lists this run among its previous holders).
    """
    leases.forget()
    leases.acquire(days)


def commit_attempts() -> int:
    """``TWEET_ASSETS_ICEBERG_COMMIT_ATTEMPTS``: plans of one commit before giving up (each after pyiceberg's own retries)."""
    return int(config.number(COMMIT_ATTEMPTS_ENV))


class IcebergTable(PublishedTable):
    """One collection's Iceberg table.

    Args:
        catalog: a pyiceberg catalog (:func:`tweet_assets.tables.catalogs.open_catalog`).
        database, name: the namespace and table (``default``, ``tweets``).
        location: the table location (:func:`table_location`), used when the table is created.
        catalog_label: how to name the catalog to a user (its configured name, or ``embedded``).
    """

    format = "iceberg"

    def __init__(self, catalog: Catalog | None, database: str, name: str, location: str, catalog_label: str = ""):
        self.catalog = catalog
        self.database = database
        self.name = name
        self.identifier = (database, name)
        self.location = location
        self.catalog_label = catalog_label or "embedded"

    @classmethod
    def open(cls, lake: Lake, table: str, name: str, database: str | None = None, catalog: str | None = None, create: bool = True) -> "IcebergTable":
        """The Iceberg table of lake folder ``table`` named ``database.name`` in the catalog
        ``catalog`` (default ``TWEET_ASSETS_ICEBERG_CATALOG``; embedded for a local lake).
        ``create=False`` opens no embedded catalog that does not exist yet (the table then reads as
        absent). Raises :class:`~tweet_assets.tables.catalogs.CatalogError` (one line)."""
        chosen = catalog_name() if catalog is None else catalog
        return cls(open_catalog(lake, chosen, create=create), database or database_name(), name, table_location(lake, table), chosen or "embedded")

    @classmethod
    def at(cls, lake: Lake, table: str, names: Sequence[str] = (), database: str | None = None, catalog: str | None = None) -> "IcebergTable | None":
        """The Iceberg table whose location is lake folder ``table``, or None: the candidates
        ``names`` first, then every table of ``database`` (default: the setting) in the catalog. A
        lake that cannot have one (an S3 lake without a configured catalog, a local lake without
        the embedded catalog's file) answers None without opening anything. How the compliance job
        and the maintenance job find each collection's table without its definition.

        Raises:
            CatalogError: the catalog cannot list ``database``'s tables (unreachable, access denied):
                one line naming the catalog; a missing database is no error (its names are tried).
        """
        chosen = catalog_name() if catalog is None else catalog.strip()
        if not chosen and not isinstance(lake, LocalLake):
            return None
        opened = open_catalog(lake, chosen, create=False)
        if opened is None:
            return None
        database = database or database_name()
        wanted = table_location(lake, table).rstrip("/")
        tried = set()
        try:
            listed = [ident[-1] for ident in opened.list_tables(database)]
        except NoSuchNamespaceError:  # no such database: only the candidates' names can be tried
            listed = []
        except Exception as exc:  # the catalog cannot answer: never read as "no Iceberg table here"
            raise CatalogError(
                f"cannot list the tables of {database} in Iceberg catalog {chosen or 'embedded'} ({type(exc).__name__}: {str(exc)[:300]}): "
                f"check the catalog's configuration ({CATALOG_ENV}, .pyiceberg.yaml) and that it is reachable with these credentials; "
                f"without it, whether {wanted} has an Iceberg table cannot be told."
            ) from exc
        for name in [*names, *listed]:
            if name in tried or (listed and name not in listed):
                continue
            tried.add(name)
            candidate = cls(opened, database, name, wanted, chosen or "embedded")
            try:
                loaded = candidate.load()
            except TableCommitError:  # a Hive table of that name (glue_table's): not this one
                continue
            if loaded is not None and loaded.location().rstrip("/") == wanted:
                return candidate
        return None

    # --- the table
    @property
    def qualified_name(self) -> str:
        return f"{self.database}.{self.name}"

    def load(self) -> Table | None:
        """The table as the catalog has it now, or None when it does not exist."""
        if self.catalog is None:
            return None
        try:
            return self.catalog.load_table(self.identifier)
        except (NoSuchIcebergTableError, NoSuchPropertyException):  # e.g. the Hive table glue_table registered under this name
            raise TableCommitError(self._not_iceberg()) from None
        except NoSuchTableError:
            return None

    def _not_iceberg(self) -> str:
        return (
            f"{self.qualified_name} in catalog {self.catalog_label} exists but is not an Iceberg table (the Hive table the "
            "glue_table asset registers?): drop it, or publish Iceberg under another name (TWEET_ASSETS_GLUE_TABLE, a collection's table:)."
        )

    def ensure(self) -> Table:
        """The table, created when missing (schema, ``day(created_at)``, sort order, properties:
        :mod:`.iceberg_schema`, :data:`TABLE_PROPERTIES`); a table another writer created
        meanwhile is loaded."""
        table = self.load()
        if table is not None:
            return table
        assert self.catalog is not None
        try:
            self.catalog.create_namespace(self.database)
        except NamespaceAlreadyExistsError:
            pass
        schema = new_table_schema()
        try:
            return self.catalog.create_table(
                self.identifier, schema=schema, location=self.location, partition_spec=partition_spec(schema), sort_order=sort_order(schema), properties=TABLE_PROPERTIES
            )
        except TableAlreadyExistsError:
            table = self.load()
            if table is None:
                raise TableCommitError(self._not_iceberg()) from None
            return table

    # --- publish
    def publish(self, days: Mapping[str, DayRows], run_id: str, before_commit: Callable[[], None] | None = None, log: Callable[[str], None] | None = None) -> Commit:
        """Replace exactly ``days`` with their rows in one commit (one ``overwrite`` snapshot).

        The data files are written once, before the first attempt (again only if the table's
        schema changed under them); each attempt reloads the table (also right after the files were
        written: a backfill writes for hours, while other runs commit and expire snapshots), adds
        any column ``schema.py`` declares and the table lacks (``update_schema``), calls
        ``before_commit`` (the run's day leases: a run that lost one raises there and commits
        nothing), checks that every data file it wrote is still there, finds the days' current
        data files and commits. A commit that still fails after pyiceberg's own retries (4, the
        table reloaded each time), or whose plan read a snapshot expired meanwhile, is planned
        again, up to :data:`COMMIT_ATTEMPTS_ENV` times.

        Returns: the :class:`~tweet_assets.tables.base.Commit` (snapshot id, per-day files and records).
        Raises:
            SchemaChangeRefused: schema.py changed a column in a way Iceberg cannot evolve (names it).
            TableCommitError: every attempt lost to other writers (names the setting to raise), or a
                data file this run wrote is gone before its commit (an orphan sweep removed it).
            ValueError: a day's rows hold a created_at outside that UTC day.
        """
        say = log or logger.info
        table = self.ensure()
        written: dict[str, list[DataFile]] = {}
        written_for = None
        attempts = commit_attempts()
        last: Exception | None = None
        try:
            for attempt in range(1, attempts + 1):
                if attempt > 1:
                    table = self.ensure()  # reloaded: what the other writer committed is the base now
                target = conform(iceberg_arrow_schema(), table.schema())  # a table created from Athena: its timestamps without zone
                evolved = evolution(table, target)
                schema = evolved or table.schema()
                if written_for is None or schema.as_struct() != written_for:
                    _delete_files(table, [f for files in written.values() for f in files])
                    written = {}
                    for day, rows in days.items():  # one day at a time: a failure leaves the days written so far to the finally
                        written[day] = self._write_day(table, schema, day, rows())
                    written_for = schema.as_struct()
                    table = self.ensure()  # the table as it is now, after the writing
                    target = conform(iceberg_arrow_schema(), table.schema())
                    evolved = evolution(table, target)
                    if (evolved or table.schema()).as_struct() != written_for:
                        last = TableCommitError("the table's schema changed while this run wrote its data files")
                        say(f"{self.qualified_name}: commit attempt {attempt} of {attempts}: {last}; writing them again")
                        continue
                if before_commit is not None:
                    before_commit()
                self._check_written(table, written)
                try:
                    old = self.day_files(table, list(days))
                except FileNotFoundError as exc:  # a snapshot expired (its files deleted) since the table was loaded
                    last = exc
                    say(f"{self.qualified_name}: commit attempt {attempt} of {attempts}: the table changed while it was planned ({exc}); planning again")
                    continue
                added = sorted(set(evolved.column_names) - set(table.schema().column_names)) if evolved is not None else []
                try:
                    snapshot_id = self._commit(table, target if evolved is not None else None, written, old, run_id)
                except (CommitFailedException, ValidationException) as exc:  # known not to have landed
                    last = exc
                    say(f"{self.qualified_name}: commit attempt {attempt} of {attempts} lost to another writer ({type(exc).__name__}: {str(exc)[:200]}); planning again from the reloaded table")
                    continue
                except BaseException:
                    written = {}  # the commit may have landed: its files are the table's (or the orphan sweep's)
                    raise
                changes = {
                    day: DayChange(
                        day,
                        files_added=len(written[day]),
                        records_added=sum(f.record_count for f in written[day]),
                        bytes_added=sum(f.file_size_in_bytes for f in written[day]),
                        files_removed=len(old.get(day, [])),
                        records_removed=sum(f.record_count for f in old.get(day, [])),
                    )
                    for day in days
                }
                written = {}
                return Commit(self.format, self.qualified_name, snapshot_id, changes, attempt, added)
        finally:
            _delete_files(table, [f for files in written.values() for f in files])  # never committed: ours to remove
        raise TableCommitError(
            f"{self.qualified_name}: {attempts} commit attempts of {len(days)} day(s) lost to other writers (last: {type(last).__name__}: "
            f"{str(last)[:200]}); nothing of this run was committed. Run it again, or raise {COMMIT_ATTEMPTS_ENV} (now {attempts})."
        )

    def _check_written(self, table: Table, written: dict[str, list[DataFile]]) -> None:
        """Every data file this run wrote is still in storage (one HEAD each), right before the
        commit that references them: an orphan sweep keeps a file of a day whose lease a run holds
        (tweet_assets.tables.maintenance), and this is the check that it did.

        Raises:
            TableCommitError: one or more are gone (one line: how many, one of them, what removes them)."""
        missing = [f.file_path for files in written.values() for f in files if not table.io.new_input(f.file_path).exists()]
        if missing:
            raise TableCommitError(
                f"{self.qualified_name}: {len(missing)} data file(s) this run wrote are gone before its commit ({missing[0]}): an orphan sweep "
                "(compliance_job or iceberg_maintenance) removed them, not knowing this run held their days (its lease lapsed, or a sweep "
                "without lease checks); nothing of this run was committed. Run it again; keep TWEET_ASSETS_ICEBERG_ORPHAN_GRACE_S above the "
                "longest publish if sweeps run without the pipeline's leases."
            )

    def _commit(self, table: Table, evolve_to: pa.Schema | None, written: dict[str, list[DataFile]], old: dict[str, list[DataFile]], run_id: str) -> int:
        """One transaction: the schema change (if any) and one overwrite snapshot; its snapshot id."""
        days = sorted(written)
        properties = {RUN_PROPERTY: run_id, DAYS_PROPERTY: f"{days[0]}..{days[-1]} ({len(days)})" if days else ""}
        with table.transaction() as tx:
            if evolve_to is not None:
                with tx.update_schema() as update:
                    update.union_by_name(evolve_to)
            with tx.update_snapshot(snapshot_properties=properties).overwrite() as overwrite:
                overwrite.delete_by_predicate(days_filter(days, zoned(table.schema())))  # the days' scope: conflict detection and manifest pruning
                for files in old.values():
                    for data_file in files:
                        overwrite.delete_data_file(data_file)
                for files in written.values():
                    for data_file in files:
                        overwrite.append_data_file(data_file)
        return overwrite.snapshot_id

    def day_files(self, table: Table, days: Sequence[str]) -> dict[str, list[DataFile]]:
        """The current snapshot's data files of ``days``, by day (their partition value, not their rows)."""
        if table.current_snapshot() is None or not days:
            return {}
        wanted = {day_ordinal(d): d for d in days}
        found: dict[str, list[DataFile]] = {}
        seen = set()
        for task in table.scan(row_filter=days_filter(days, zoned(table.schema()))).plan_files():
            data_file = task.file
            day = wanted.get(data_file.partition[0]) if len(data_file.partition) else None
            if day is not None and data_file.file_path not in seen:
                seen.add(data_file.file_path)
                found.setdefault(day, []).append(data_file)
        return found

    def _write_day(self, table: Table, schema, day: str, chunks: Iterator[pa.Table]) -> list[DataFile]:
        """Write ``day``'s chunks as data files of partition ``day(created_at) = day`` (a new file
        past ``write.target-file-size-bytes`` of Arrow bytes); the files with their statistics."""
        target = file_schema(schema)
        spec = table.spec()
        key = PartitionKey(field_values=[PartitionFieldValue(spec.fields[0], day_ordinal(day))], partition_spec=spec, schema=schema)
        limit = int(table.properties.get(TableProperties.WRITE_TARGET_FILE_SIZE_BYTES, TableProperties.WRITE_TARGET_FILE_SIZE_BYTES_DEFAULT))
        start, end = datetime.fromisoformat(_midnight(date.fromisoformat(day))), datetime.fromisoformat(_midnight(date.fromisoformat(day) + DAY))
        files: list[DataFile] = []
        paths: list[str] = []
        writer = output = None
        size = 0

        def close() -> None:
            nonlocal writer, output, size
            if writer is not None:
                writer.__exit__(None, None, None)  # closes the file and computes its statistics
                stats = writer.result()
                files.append(
                    DataFile.from_args(
                        content=DataFileContent.DATA,
                        file_path=paths[-1],
                        file_format=FileFormat.PARQUET,
                        partition=key.partition,
                        file_size_in_bytes=len(output),
                        sort_order_id=table.sort_order().order_id,  # the rows are in (created_at, id) order
                        spec_id=spec.spec_id,
                        equality_ids=None,
                        key_metadata=None,
                        **stats.to_serialized_dict(),
                    )
                )
            writer = output = None
            size = 0

        try:
            for chunk in chunks:
                if chunk.num_rows == 0:
                    continue
                low, high = (_utc(v.as_py()) for v in pc.min_max(chunk.column("created_at")).values())
                if low < start or high >= end:
                    raise ValueError(f"rows for {day} hold created_at {low} … {high}, outside that UTC day: not published to {self.qualified_name}")
                if writer is None:
                    paths.append(table.location_provider().new_data_location(f"{uuid.uuid4()}.parquet", key))
                    output = table.io.new_output(paths[-1])
                    writer = FileFormatFactory.get(FileFormat.PARQUET).create_writer(output, schema, table.properties)
                writer.write(to_file_schema(chunk, target))
                size += chunk.nbytes
                if size >= limit:
                    close()
            close()
        except BaseException:
            if writer is not None:
                try:
                    writer.close()
                except Exception:  # noqa: BLE001 - the original error is the one to see
                    pass
            _delete_paths(table, paths)
            raise
        return files

    # --- remove
    def remove_ids(
        self, ids: pa.Array, days: Sequence[str] | None = None, before_commit: Callable[[], None] | None = None, log: Callable[[str], None] | None = None, run_id: str = ""
    ) -> Removal:
        """Remove the rows whose ``id`` is in ``ids`` or that retweet one (``retweeted_id``), on
        ``days`` (default: all), in one transaction: pyiceberg's row-level ``delete``
        (copy-on-write: a data file holding such a row is rewritten without it, or dropped when
        nothing is left). Old snapshots still reference the old files until they are expired
        (:func:`tweet_assets.tables.maintenance.expire_snapshots`). The counts are those of this
        call's snapshots only (they carry :data:`OPERATION_ID_PROPERTY`, and ``run_id`` as
        :data:`RUN_PROPERTY`): another run's commit that pyiceberg's retry put beneath them is not
        counted.

        Raises:
            TableCommitError: every attempt lost to other writers (names the setting).
        """
        say = log or logger.info
        out = Removal()
        table = self.load()
        which = removal_filter(ids)
        if table is None or table.current_snapshot() is None or which == AlwaysFalse():
            return out
        scope = And(days_filter(days, zoned(table.schema())), which) if days else which
        attempts = commit_attempts()
        last: Exception | None = None
        for attempt in range(1, attempts + 1):
            if attempt > 1:
                table = self.load()
            hits = table.scan(row_filter=scope, selected_fields=("id", "created_at")).to_arrow()
            if hits.num_rows == 0:
                out.attempts = attempt
                return out
            if before_commit is not None:
                before_commit()
            before = table.current_snapshot().snapshot_id
            operation = uuid.uuid4().hex
            properties = {OPERATION_PROPERTY: "compliance delete", OPERATION_ID_PROPERTY: operation, **({RUN_PROPERTY: run_id} if run_id else {})}
            try:
                with table.transaction() as tx:  # one commit (a DELETE snapshot for files wholly removed, an OVERWRITE for files rewritten)
                    tx.delete(scope, snapshot_properties=properties)
            except (CommitFailedException, ValidationException) as exc:
                last = exc
                say(f"{self.qualified_name}: delete attempt {attempt} of {attempts} lost to another writer ({type(exc).__name__}); planning again")
                continue
            out.attempts = attempt
            for snapshot in _snapshots_after(table, before):
                summary = snapshot.summary
                if summary is None or summary.get(OPERATION_ID_PROPERTY) != operation:
                    continue  # another run's commit, beneath this one after pyiceberg's retry
                out.snapshot_ids.append(snapshot.snapshot_id)
                deleted = int(summary.get("deleted-data-files", 0) or 0)
                added = int(summary.get("added-data-files", 0) or 0)
                out.files_rewritten += added
                out.files_deleted += deleted - added
                out.records_removed += int(summary.get("deleted-records", 0) or 0) - int(summary.get("added-records", 0) or 0)
            by_day: dict[str, list[int]] = {}
            for post_id, created in zip(hits.column("id").to_pylist(), hits.column("created_at").to_pylist()):
                by_day.setdefault(created.strftime("%Y-%m-%d"), []).append(post_id)
            out.removed_ids = {day: sorted(v) for day, v in sorted(by_day.items())}
            return out
        raise TableCommitError(
            f"{self.qualified_name}: {attempts} delete attempts lost to other writers (last: {type(last).__name__}); the ledger keeps the ids: "
            f"run compliance_job again, or raise {COMMIT_ATTEMPTS_ENV} (now {attempts})."
        )

    def days_holding(self, ids: pa.Array) -> list[str]:
        """The days whose rows have an ``id`` in ``ids`` or retweet one (``retweeted_id``), sorted."""
        table = self.load()
        which = removal_filter(ids)
        if table is None or table.current_snapshot() is None or which == AlwaysFalse():
            return []
        hits = table.scan(row_filter=which, selected_fields=("created_at",)).to_arrow().column("created_at")
        return sorted({t.strftime("%Y-%m-%d") for t in hits.to_pylist()})

    def submitted_ids(self, day: str, table: Table | None = None) -> pa.Array:
        """The ids to check with X for ``day`` (int64, each once): the published ids, then the ids
        the rows reference (:data:`tweet_assets.compliance.rewrite.REFERENCE_COLUMNS`). ``table``:
        as for :meth:`read_day`."""
        from tweet_assets.compliance.rewrite import REFERENCE_COLUMNS

        read = self.read_day(day, ["id", *REFERENCE_COLUMNS], table)
        ids = pa.concat_arrays([read.column(c).combine_chunks().cast(pa.int64()) for c in ("id", *REFERENCE_COLUMNS)])
        return pc.unique(pc.drop_null(ids))

    # --- read
    def read_day(self, day: str, columns: Sequence[str] | None = None, table: Table | None = None) -> pa.Table:
        """``day``'s rows (``columns`` only if given) in the table's current snapshot. ``table``: the
        table as already loaded (:meth:`load`), so that reading many days costs one catalog load
        and reads one snapshot; default: loaded now. When that snapshot's files are gone (another
        run's commit, then an expiry deleted them: the default retention keeps only the current
        snapshot), the table is loaded again and the day read from its current snapshot."""
        given = table is not None
        table = self.load() if table is None else table
        selected = tuple(columns) if columns else ("*",)
        if table is None or table.current_snapshot() is None:
            fields = iceberg_arrow_schema()
            return (fields if not columns else pa.schema([fields.field(c) for c in columns])).empty_table()
        try:
            return table.scan(row_filter=days_filter([day], zoned(table.schema())), selected_fields=selected).to_arrow()
        except FileNotFoundError:
            if not given:
                raise
            return self.read_day(day, columns)  # the snapshot as loaded was expired meanwhile

    def days(self, first: str | None = None, last: str | None = None) -> list[str]:
        table = self.load()
        if table is None or table.current_snapshot() is None:
            return []
        partitions = table.inspect.partitions()
        found = set()
        for partition, records in zip(partitions.column("partition").to_pylist(), partitions.column("record_count").to_pylist()):
            value = (partition or {}).get("created_at_day")
            if value is not None and records:
                day = value.isoformat() if isinstance(value, date) else ordinal_day(value)
                if (not first or day >= first) and (not last or day <= last):
                    found.add(day)
        return sorted(found)

    def describe(self) -> dict[str, str]:
        table = self.load()
        snapshot = table.current_snapshot() if table is not None else None
        return {
            "format": self.format,
            "catalog": self.catalog_label,
            "table": self.qualified_name,
            "location": table.location() if table is not None else self.location,
            "snapshot_id": str(snapshot.snapshot_id) if snapshot else "",
            "format_version": str(table.format_version) if table is not None else "2",
        }


def _utc(moment: datetime) -> datetime:
    """``moment`` as an aware UTC datetime (a timestamp without zone holds UTC here)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _snapshots_after(table: Table, snapshot_id: int) -> list:
    """The snapshots committed after ``snapshot_id`` on the current branch, oldest first."""
    out = []
    snapshot = table.current_snapshot()
    while snapshot is not None and snapshot.snapshot_id != snapshot_id:
        out.append(snapshot)
        snapshot = table.snapshot_by_id(snapshot.parent_snapshot_id) if snapshot.parent_snapshot_id is not None else None
    return list(reversed(out))


def _delete_files(table: Table, files: Iterable[DataFile]) -> None:
    """Remove data files this process wrote and never committed."""
    _delete_paths(table, [f.file_path for f in files])


def _delete_paths(table: Table, paths: Iterable[str]) -> None:
    """Best effort: the orphan sweep of :mod:`tweet_assets.tables.maintenance` removes what is left."""
    for path in paths:
        try:
            table.io.delete(path)
        except Exception as exc:  # noqa: BLE001 - a leftover is swept later
            logger.warning("could not remove uncommitted data file %s: %s", path, exc)
