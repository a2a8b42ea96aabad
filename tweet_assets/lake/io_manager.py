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

import os
import tempfile
import time
from typing import Mapping

import polars as pl
import pyarrow as pa
from dagster import ConfigurableIOManager, ConfigurableResource, InputContext, OutputContext
from dagster_aws.s3 import S3Resource
from pydantic import Field, PrivateAttr

from tweet_assets.lake.store import Lake, LakeError, open_lake
from tweet_assets.lake.parquet import write_parquet
from tweet_assets.lake.spools import owning_spool_dir, remove_run_spool_dirs, remove_spool_dir
from tweet_assets.lake.values import SpooledPages, SpooledTable, StoredPages, StoredTable
from tweet_assets.lake.empty_days import is_empty, read_days, recorded_empty, store_empty

PART = "part-00000"
#: A run of more partitions logs progress and a summary instead of one line per object.
LOG_EACH_UP_TO = 7
PROGRESS_EVERY_S = 10.0
FORMATS = {"jsonl.gz", "parquet"}


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
        if is_empty(value):  # a day without posts: no object (tweet_assets.lake.empty_days)
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
        this process, e.g. an asset failed after spooling some days (tweet_assets.lake.spools)."""
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
