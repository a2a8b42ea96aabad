"""The compliance ledger: one row per affected post id, in the lake, ids only.

``clean_tweets/_compliance_ledger/part-00000.parquet`` (:data:`LEDGER_SCHEMA`): one row per
affected post id with ``action``, ``reason``, the post's ``created_at``, ``redacted_at`` when
given, ``checked_at`` (when the job's result was downloaded, UTC) and ``job_id``; the first
result recorded for an id is kept. It is rewritten whole (one PutObject) per compliance job, as a
conditional write (:func:`add_to_ledger`: ``If-Match`` on the ETag read, ``If-None-Match: *`` for the
first one; on a conflict it is read again and merged again), so two compliance runs at once keep
every id both found.
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime, timezone

import orjson
import polars as pl
import pyarrow as pa

from tweet_assets.compliance.api import ComplianceError
from tweet_assets.lake.values import StoredTable
from tweet_assets.lake.store import Lake, LakeError, PreconditionFailed
from tweet_assets.lake.parquet import write_parquet

LEDGER_TABLE = "compliance_ledger"
#: Under ``clean_tweets/`` so that the pipeline policy (deploy/iam/policy.json: ListBucket, Get
#: and Put on raw_tweets/, clean_tweets/, tweets/) covers it: every clean_tweets run reads it. The
#: leading ``_`` keeps it out of any Hive-style reading of the clean zone (Athena, Spark and Hive
#: skip ``_``-prefixed paths); nothing lists ``clean_tweets/``.
LEDGER_KEY = f"clean_tweets/_{LEDGER_TABLE}/part-00000.parquet"
PUBLISHED_TABLE = "tweets"
CLEAN_TABLE = "clean_tweets"
RAW_TABLE = "raw_tweets"
TS = pa.timestamp("ms", tz="UTC")
#: The ledger's columns: ids and compliance facts only, never a post's content.
LEDGER_SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("action", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("created_at", TS),
        pa.field("redacted_at", TS),
        pa.field("checked_at", TS, nullable=False),
        pa.field("job_id", pa.string()),
    ]
)

def _timestamp(value) -> datetime | None:
    if not value:
        return None
    text = str(value).replace("Z", "+00:00")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ComplianceError(f"compliance result: {value!r} is not an RFC 3339 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def parse_results(body: bytes, checked_at: datetime, job_id: str) -> pa.Table:
    """A job's result (JSON lines ``{"id", "action", "created_at", "redacted_at"?, "reason"}``,
    blank lines allowed) as a ledger table (:data:`LEDGER_SCHEMA`); extra keys are ignored.

    Raises:
        ComplianceError: a line is not a JSON object with a numeric ``id`` and an ``action`` (a
            compliance row is never dropped: a post it names would stay in the lake).
    """
    rows = {name: [] for name in LEDGER_SCHEMA.names}
    for number, line in enumerate(body.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError:
            row = None
        if not isinstance(row, dict) or not str(row.get("id", "")).isdigit() or not row.get("action"):
            raise ComplianceError(f"compliance job {job_id} result line {number} is not a result row: {line[:120]!r}")
        rows["id"].append(int(row["id"]))
        rows["action"].append(str(row["action"]))
        rows["reason"].append(str(row["reason"]) if row.get("reason") is not None else None)
        rows["created_at"].append(_timestamp(row.get("created_at")))
        rows["redacted_at"].append(_timestamp(row.get("redacted_at")))
        rows["checked_at"].append(checked_at)
        rows["job_id"].append(job_id)
    return pa.table(rows, schema=LEDGER_SCHEMA)


def read_ledger(lake: Lake) -> pa.Table:
    """The ledger (:data:`LEDGER_SCHEMA`); empty when none was written yet."""
    if lake.size(LEDGER_KEY) is None:
        return LEDGER_SCHEMA.empty_table()
    return StoredTable(lake, LEDGER_KEY, lake.uri(LEDGER_KEY)).read().select(LEDGER_SCHEMA.names).cast(LEDGER_SCHEMA)


def ledger_ids(lake: Lake) -> pa.Array:
    """The ids in the ledger (int64 array), for filtering."""
    return read_ledger(lake).column("id").combine_chunks()


def merge_ledger(old: pa.Table, new: pa.Table) -> pa.Table:
    """``old`` plus the rows of ``new`` whose id is not in ``old`` yet (first result kept), sorted by id."""
    frame = pl.concat([pl.from_arrow(old), pl.from_arrow(new)]).unique(subset="id", keep="first", maintain_order=True).sort("id")
    return frame.to_arrow().cast(LEDGER_SCHEMA)


#: Conditional writes of the ledger lost in a row before giving up (each loss: another run added ids).
MAX_CONFLICTS = 50


def add_to_ledger(lake: Lake, new: pa.Table) -> pa.Table:
    """Add ``new``'s rows (:data:`LEDGER_SCHEMA`) to the stored ledger and return the ledger stored:
    read it with its ETag, merge (:func:`merge_ledger`), store it only if it is still that version
    (S3 PutObject ``If-Match``; ``If-None-Match: *`` when there is none yet); when another writer
    stored it meanwhile, read and merge again. A concurrent run's ids are never lost.

    Raises:
        LakeError: the ledger could not be read or stored, or lost :data:`MAX_CONFLICTS` races in a row.
    """
    import pyarrow.parquet as pq

    for _ in range(MAX_CONFLICTS):
        data, etag = lake.read_with_etag(LEDGER_KEY)
        old = pq.read_table(pa.BufferReader(data)).select(LEDGER_SCHEMA.names).cast(LEDGER_SCHEMA) if data else LEDGER_SCHEMA.empty_table()
        merged = merge_ledger(old, new)
        try:
            put_table(lake, LEDGER_KEY, merged, None, if_match=etag)
            return merged
        except PreconditionFailed:
            continue  # another compliance run stored its ids first: merge with them
    raise LakeError(f"could not store the compliance ledger {lake.uri(LEDGER_KEY)}: {MAX_CONFLICTS} conditional writes in a row lost to other writers; run compliance_job again.")


def write_ledger(lake: Lake, table: pa.Table) -> int:
    """Store the ledger (one PutObject replacing the previous one); returns bytes."""
    return put_table(lake, LEDGER_KEY, table.cast(LEDGER_SCHEMA), None)


#: ``put_table(..., if_match=ANY)``: store unconditionally.
ANY = object()


def put_table(lake: Lake, key: str, table: pa.Table, sorted_by, if_match=ANY) -> int:
    """Write ``table`` as Parquet at ``key``; with ``if_match`` (an ETag, or None for "no object
    yet") as a conditional write that raises PreconditionFailed when the object changed. Returns bytes."""
    fd, tmp = tempfile.mkstemp(suffix=".parquet")
    os.close(fd)
    try:
        write_parquet(table, tmp, table.schema, sorted_by)
        if if_match is ANY:
            return lake.put_file(key, tmp)
        lake.put_file_if_match(key, tmp, if_match)
        return os.path.getsize(tmp)
    finally:
        os.remove(tmp)
