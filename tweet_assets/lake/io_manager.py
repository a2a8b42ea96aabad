"""One IO manager for the whole lake: keys, formats, one object per partition, atomic writes.

Layout (Hive style, one object per asset and UTC day, overwritten on re-materialization)::

    <lake>/raw_tweets/dt=YYYY-MM-DD/part-00000.jsonl.gz     gzip JSON lines, one API page per line
    <lake>/clean_tweets/dt=YYYY-MM-DD/part-00000.parquet    Parquet, zstd
    <lake>/tweets/dt=YYYY-MM-DD/part-00000.parquet          the published table (s3_parquet)

``<lake>`` is a local directory (the embedded default) or ``s3://bucket/prefix`` through
dagster-aws's ``S3Resource`` (region, ``endpoint_url`` and credentials from its configuration or the
standard AWS environment). An asset's table folder and format come from its definition metadata
(``lake/table``, ``lake/format``); the folder defaults to the asset key.

A day's object is written fenced (:mod:`tweet_assets.lake.fencing`): under the run's live day lease
and conditional on the version the run expects, carrying the run's id; its materialization records
the ETag, bytes and (Parquet) row count of the object as written, and a step reads its inputs at the
versions its lineage check saw.

Partitioned values are mappings ``{partition_key: value}`` both ways: the assets carry
``BackfillPolicy.single_run()``, so one run may hold one day or a year. ``handle_output`` writes
each day's object; ``load_input`` returns the upstream days of the run, lazily for raw pages.
Dagster's own ``UPathIOManager`` is not used because it refuses multi-partition runs for outputs.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from typing import Iterable, Mapping

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from dagster import AssetMaterialization, ConfigurableIOManager, ConfigurableResource, InputContext, OutputContext
from dagster_aws.s3 import S3Resource
from pydantic import Field, PrivateAttr

from tweet_assets import config
from tweet_assets.lake.store import ANY, Lake, LakeError, ObjectChanged, Written, open_lake
from tweet_assets.lake.parquet import write_parquet
from tweet_assets.lake.spools import owning_spool_dir, remove_run_spool_dirs, remove_spool_dir
from tweet_assets.lake.values import NotLanded, SpooledPages, SpooledTable, StoredPages, StoredTable
from tweet_assets.lake.empty_days import is_empty, read_days, recorded_empty, store_empty_fenced
from tweet_assets.lake import fencing, lineage
from tweet_assets.lake.leases import DayLeases, Lease, dagster_run_finished, forget_run
from tweet_assets.lake.prefixes import sub_lake

PART = "part-00000"
#: A run of more partitions logs progress and a summary instead of one line per object.
LOG_EACH_UP_TO = 7
PROGRESS_EVERY_S = 10.0
FORMATS = {"jsonl.gz", "parquet"}
#: A temporary (local ``.tmp-*.part``, S3 incomplete multipart upload) at a key this run writes is
#: removed when it is older than this (seconds; env ``TWEET_ASSETS_TEMPORARY_GRACE_S``), or when it
#: predates this run's takeover of a dead run's lease (its writer is then provably gone).
DEFAULT_TEMPORARY_GRACE_S = config.NUMBERS["TWEET_ASSETS_TEMPORARY_GRACE_S"].default
#: The published table: storing it ends the run's writes of those days, so their leases are released.
RELEASE_AFTER_TABLE = "tweets"
#: Which source each run claimed per day ((lake url, run id, day) -> source name), set by
#: :func:`hold_days_for_source` in the raw step and recorded with the raw object's lineage.
_claimed_sources: dict[tuple[str, str, str], str] = {}
#: The ETags of the inputs each step read ((lake url, run id, day, step key) -> {table: {"key", "etag"}}).
_inputs_read: dict[tuple[str, str, str], dict] = {}
_guard = threading.Lock()
REPLACE_SOURCE_ENV = "TWEET_ASSETS_REPLACE_SOURCE"


def temporary_grace_s() -> float:
    return config.number("TWEET_ASSETS_TEMPORARY_GRACE_S")


def zone_of(lake: Lake, table: str) -> tuple[Lake, str]:
    """The lake a table's leases and lineage live in, and the table's name there: ``<lake>/<name>/``
    and ``clean_tweets`` for a collection's ``<name>/clean_tweets`` (tweet_assets.lake.prefixes), the
    lake itself for the environment's ``clean_tweets``. Collections never share a day's lease."""
    prefix, _, name = table.rpartition("/")
    return sub_lake(lake, prefix), name


def _in_zone(table: str, key: str) -> str:
    prefix = table.rpartition("/")[0]
    return key[len(prefix) + 1 :] if prefix and key.startswith(prefix + "/") else key


def _leases(lake: Lake, run_id: str, purpose: str, instance) -> DayLeases:
    return DayLeases(lake, run_id, purpose, dagster_run_finished(instance) if instance is not None else None)


def hold_days_for_source(lake: Lake, days: Iterable[str], run_id: str, source_name: str, instance=None) -> dict[str, Lease]:
    """Before a source is read for ``days``: hold their leases for run ``run_id`` (a range: all of
    them, or none) and refuse a day whose raw object was landed by another source.

    Two sources on one day: the second is refused, naming both (never last-writer-wins in silence);
    set ``TWEET_ASSETS_REPLACE_SOURCE=1`` to replace the day's raw pages with this source's on purpose.

    Raises:
        LeaseConflict: another live run writes one of the days (named in the message).
        LakeError: a day's raw object came from another source.
    """
    days = list(days)
    leases = _leases(lake, run_id, "raw_tweets", instance)
    held = leases.acquire(days)
    if os.environ.get(REPLACE_SOURCE_ENV, "").strip().lower() not in ("1", "true", "yes"):
        for day in days:
            raw = lineage.read_lineage(lake, day).get("raw_tweets") or {}
            landed_by = raw.get("source")
            if landed_by and landed_by != source_name and raw.get("etag") is not None and lake.etag(raw["key"]) == raw["etag"]:
                leases.release(days)
                raise LakeError(
                    f"raw_tweets for {day} was landed by source {landed_by!r} (run {raw.get('run_id')}); this run {run_id} reads source "
                    f"{source_name!r}. Landing it would replace the {landed_by} pages of {day} with the {source_name} ones: refused. "
                    f"Use the same source for the day, or set {REPLACE_SOURCE_ENV}=1 to replace them on purpose."
                )
    with _guard:
        for day in days:
            _claimed_sources[(lake.url, run_id, day)] = source_name
    return held


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
        """The :class:`~tweet_assets.lake.store.Lake` behind ``url`` (one client per resource)."""
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
        """The :class:`~tweet_assets.lake.store.Lake` this IO manager writes to."""
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
                if isinstance(value, (SpooledPages, SpooledTable, NotLanded)) and value.path:
                    _remove_file(value.path)
                    remove_spool_dir(owning_spool_dir(value.path))

    def _store(self, context: OutputContext, table: str, fmt: str, items: list) -> None:
        lake = self.lake()
        zone, zone_table = zone_of(lake, table)
        keys = [self.key(table, fmt, pk) for pk, _ in items]
        days = [pk for pk, _ in items if pk is not None]
        run_id = context.run_id
        instance = context.step_context.instance if days else None
        # one writer per day: this run's leases (taken by raw_tweets already, renewed here)
        leases = _leases(zone, run_id, zone_table, instance) if days else None
        held = leases.acquire(days) if leases is not None else {}
        now = time.time()
        cutoffs = {}  # a temporary is dead when older than the grace period, or older than our takeover of a dead lease
        for pk, key in zip([pk for pk, _ in items], keys):
            lease = held.get(pk)
            cutoffs.setdefault(max(now - temporary_grace_s(), lease.took_over_at if lease and lease.took_over_at else 0.0), []).append(key)
        try:  # what a killed earlier run of these partitions left (local .tmp-*.part, S3 uploads)
            stale = sum(lake.remove_stale_temporaries(group, before=cutoff) for cutoff, group in cutoffs.items())
            if stale:
                context.log.info(f"removed {stale} temporary object(s) left at {lake.uri(table)} by an earlier, interrupted run")
        except LakeError as exc:
            context.log.warning(f"could not look for temporaries left by an earlier run (the write goes on): {exc}")
        total = 0
        started = last_report = time.monotonic()
        stored: list[tuple[str, dict]] = []
        try:
            for done, (partition_key, value) in enumerate(items, start=1):
                key = self.key(table, fmt, partition_key)
                began = time.monotonic()
                payload = self._payload(table, key, fmt, value)
                try:
                    if partition_key is None:
                        written = payload(lake, key, ANY, None)  # no partition, no lease: stored unconditionally
                    else:  # fenced: this run's live lease and the version it expects (tweet_assets.lake.fencing)
                        zone_key = _in_zone(table, key)
                        written = fencing.store(zone, leases, partition_key, zone_key, lambda expect, meta: payload(zone, zone_key, expect, meta), context.log)
                finally:
                    payload.cleanup()
                size = written.bytes
                total += size
                metadata = {"uri": lake.uri(key), "bytes": size}
                if written.rows is not None:  # the rows of the object as written (its footer), never what was meant
                    metadata["dagster/row_count"] = written.rows
                if partition_key is not None:
                    self._record_lineage(zone, zone_table, _in_zone(table, key), partition_key, leases, context.step_key, written.etag)
                    stored.append((partition_key, metadata))
                if len(items) <= LOG_EACH_UP_TO:
                    context.log.info(f"wrote {lake.uri(key)} ({size:,} bytes, {time.monotonic() - began:.2f}s)")
                elif time.monotonic() - last_report >= PROGRESS_EVERY_S:
                    last_report = time.monotonic()
                    context.log.info(f"stored {done:,} of {len(items):,} objects ({total:,} bytes) under {lake.uri(table)}")
                if partition_key is not None:
                    context.step_context.add_asset_metadata(metadata, asset_key=context.asset_key, partition_key=partition_key)
        except BaseException:
            # a multi-day write failed part-way: the days already overwritten get their
            # materialization recorded now (Dagster records none for a failed step)
            for partition_key, metadata in stored:
                context.log_event(
                    AssetMaterialization(
                        asset_key=context.asset_key,
                        partition=partition_key,
                        description=f"stored before the step failed on a later day (run {run_id})",
                        metadata={**self._pending_metadata(context, partition_key), **metadata, "stored_before_step_failed": True},
                    )
                )
            raise
        if zone_table == RELEASE_AFTER_TABLE and leases is not None:
            leases.release(days)
        if len(items) > LOG_EACH_UP_TO:
            context.log.info(f"wrote {len(items):,} objects ({total:,} bytes) under {lake.uri(table)} in {time.monotonic() - started:.1f}s")
        if not context.has_asset_partitions:
            context.add_output_metadata({"uri": lake.uri(self.key(table, fmt, None)), "bytes": total})

    @staticmethod
    def _pending_metadata(context: OutputContext, partition_key: str) -> dict:
        """The partition's metadata the asset added (row counts...), for a materialization recorded by hand."""
        try:
            return dict(context.step_context.get_asset_metadata(context.asset_key, partition_key=partition_key) or {})
        except Exception:
            return {}

    def _record_lineage(self, lake: Lake, table: str, key: str, day: str, leases: DayLeases, step_key: str, etag: str | None) -> None:
        """The day's lineage entry for ``table``: the ETag the write answered (never a later read,
        which could see another writer's object), the run, what it was computed from. Written right
        after a forced check of ``leases``' lease of ``day`` (a run paused past it fails with
        ``LeaseLost`` instead of overwriting the new holder's entry)."""
        run_id = leases.run_id
        entry = {"key": key, "etag": etag, "run_id": run_id}
        with _guard:
            read = _inputs_read.pop((lake.url, run_id, day, step_key), None)
            source = _claimed_sources.pop((lake.url, run_id, day), None)
        if read is not None:
            entry["read"] = read
        if source is not None and read is None:
            entry["source"] = source
        lineage.record(lake, day, table, entry, fence=lambda: leases.check(day, force=True))

    def _payload(self, table: str, key: str, fmt: str, value) -> "_Payload":
        """What to store for one partition, prepared once (a retried fenced write sends it again):
        a local file, the source version of a copy, or an empty day. ``rows``: the Parquet rows of
        exactly those bytes (the file's footer, or the footer of the source version copied).

        Raises:
            the error of a :class:`NotLanded` day (nothing of it is stored)."""
        if isinstance(value, NotLanded):
            raise value.error
        if is_empty(value):  # a day without posts: no object (tweet_assets.lake.empty_days)
            return _Payload(lambda lake, k, expect, meta: store_empty_fenced(lake, k, fmt, expect, meta))
        if fmt == "jsonl.gz":
            if not isinstance(value, SpooledPages):
                raise TypeError(f"{key}: jsonl.gz objects are written from SpooledPages, got {type(value).__name__}")
            return _Payload.of_file(value.path, rows=None)
        if isinstance(value, StoredTable):  # an object of this lake, published as it is: a server-side copy of the version read
            rows = value.metadata().num_rows
            source = _in_zone(table, value.key)

            def copy(lake: Lake, k: str, expect, meta) -> Written:
                origin = source if lake is not self.lake() else value.key
                try:
                    written = lake.copy_version(origin, value.etag, k, expect, meta)
                except ObjectChanged as exc:
                    raise LakeError(
                        f"{exc} This run read {value.uri} (ETag {value.etag}, {rows:,} rows) and would have published another "
                        f"version of it: refused. Materialize {table} for this day again from its upstream assets."
                    ) from exc
                return Written(written.etag, written.bytes, rows)

            return _Payload(copy)
        if isinstance(value, SpooledTable):
            return _Payload.of_file(value.path, rows=True)
        if isinstance(value, pl.DataFrame):
            value = value.to_arrow()
        if not isinstance(value, pa.Table):
            raise TypeError(f"{key}: Parquet objects are written from SpooledTable, StoredTable (copied), polars DataFrames or Arrow tables, got {type(value).__name__}")
        fd, tmp = tempfile.mkstemp(suffix=".parquet")
        os.close(fd)
        try:
            write_parquet(value, tmp)
        except BaseException:
            os.remove(tmp)
            raise
        return _Payload.of_file(tmp, rows=True)

    def teardown_after_execution(self, context) -> None:
        """The end of the step (or run): remove what is left of the run's spool directories in
        this process, e.g. an asset failed after spooling some days (tweet_assets.lake.spools)."""
        run = getattr(context, "run", None)
        if run is not None:
            remove_run_spool_dirs(run.run_id)
            forget_run(run.run_id)  # its leases' heartbeat in this process ends with the step (tweet_assets.lake.leases)

    # --- input
    def load_input(self, context: InputContext):
        upstream = context.upstream_output
        table, fmt = self._table(upstream.definition_metadata if upstream else None, context.asset_key)
        lake = self.lake()
        if not context.has_asset_partitions:
            return self._read(lake, self.key(table, fmt, None), fmt)
        keys = {pk: self.key(table, fmt, pk) for pk in context.asset_partition_keys}
        versions = self._check_lineage(context, lake, table, keys)
        by_key = {keys[day]: etag for day, etag in versions.items()}
        # a missing object (none when checked) is an empty day when its materialization recorded
        # bytes: 0; every read is of the version the lineage check saw (StoredTable/StoredPages
        # ``etag``), with no other HEAD of the object
        return read_days(
            lake, keys, fmt, lambda days: recorded_empty(context.instance, context.asset_key, days), lambda lk, key, f: self._read(lk, key, f, by_key.get(key)), versions
        )

    def _check_lineage(self, context: InputContext, lake: Lake, table: str, keys: Mapping[str, str]) -> dict[str, str | None]:
        """Hold the days' leases (no other run writes them while this step reads), refuse an input
        whose zones come from different runs (:func:`tweet_assets.lake.lineage.input_problem`), and
        remember the ETags read, recorded with this step's output (:meth:`_record_lineage`);
        returns them (``{day: ETag or None}``): those the check saw (one HEAD per object), so the
        step reads exactly the versions it checked."""
        step = context.step_context
        lake, table_in_zone = zone_of(lake, table)  # a collection's leases and lineage are its own
        keys = {day: _in_zone(table, key) for day, key in keys.items()}
        table = table_in_zone
        _leases(lake, step.run_id, f"reads {table}", step.instance).acquire(keys)
        checked = {day: lineage.check_input(lake, day, table, key) for day, key in keys.items()}
        problems = [problem for problem, _ in checked.values() if problem]
        if problems:
            more = f" (and {len(problems) - 1} more day(s))" if len(problems) > 1 else ""
            raise LakeError(problems[0] + more)
        versions = {day: etag for day, (_, etag) in checked.items()}
        with _guard:
            for day, key in keys.items():
                _inputs_read.setdefault((lake.url, step.run_id, day, step.step.key), {})[table] = {"key": key, "etag": versions[day]}
        return versions

    def _read(self, lake: Lake, key: str, fmt: str, etag: str | None = None):
        """The object at ``key`` as an input value, of version ``etag`` only (None: any, and for
        pages a HEAD first: no object is an error saying what to materialize)."""
        if fmt == "jsonl.gz":
            if etag is None and lake.size(key) is None:
                raise LakeError(f"no object at {lake.uri(key)}: materialize raw_tweets for this partition first.")
            return StoredPages(lake, key, lake.uri(key), etag)
        return StoredTable(lake, key, lake.uri(key), etag)


class _Payload:
    """One partition's value ready to store: ``send(lake, key, expect, meta) -> Written`` (called
    again when a fenced write replaces a stale write), ``cleanup()`` after the last call."""

    def __init__(self, send, cleanup=None):
        self.send, self._cleanup = send, cleanup

    def __call__(self, lake: Lake, key: str, expect, meta) -> Written:
        return self.send(lake, key, expect, meta)

    def cleanup(self) -> None:
        if self._cleanup is not None:
            self._cleanup()

    @classmethod
    def of_file(cls, path: str, rows) -> "_Payload":
        """A local file sent as it is; ``rows`` True: its Parquet footer's row count is the object's."""
        count = pq.read_metadata(path).num_rows if rows is True else None

        def send(lake: Lake, key: str, expect, meta) -> Written:
            written = lake.write_file(key, path, expect, meta) if expect is not ANY else Written(None, lake.put_file(key, path))
            return Written(written.etag, written.bytes, count)

        return cls(send, lambda: _remove_file(path))


def _remove_file(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
