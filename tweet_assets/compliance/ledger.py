"""The compliance ledger: one row per affected post id, in the lake, ids only.

``clean_tweets/_compliance_ledger/part-00000.parquet`` (:data:`LEDGER_SCHEMA`): one row per
affected post id with ``action``, ``reason``, the post's ``created_at``, ``redacted_at`` when
given, ``checked_at`` (when the job's result was downloaded, UTC) and ``job_id``; the first
result recorded for an id is kept. It is rewritten whole (one PutObject) per compliance run.
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
from tweet_assets.lake.store import Lake
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


def write_ledger(lake: Lake, table: pa.Table) -> int:
    """Store the ledger (one PutObject replacing the previous one); returns bytes."""
    return put_table(lake, LEDGER_KEY, table.cast(LEDGER_SCHEMA), None)


def put_table(lake: Lake, key: str, table: pa.Table, sorted_by) -> int:
    fd, tmp = tempfile.mkstemp(suffix=".parquet")
    os.close(fd)
    try:
        write_parquet(table, tmp, table.schema, sorted_by)
        return lake.put_file(key, tmp)
    finally:
        os.remove(tmp)
