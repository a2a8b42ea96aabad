"""Batch compliance (X API v2): which stored posts were since deleted, made protected, suspended
or withheld, a ledger of them in the lake, and their removal from every zone of the lake.

The X Developer Agreement requires removing such posts. The API's batch compliance flow
(docs.x.com, "Batch compliance", quick start: create, upload, poll, download) is:

1. ``POST /2/compliance/jobs`` ``{"type": "tweets", "name": ...}`` (app-only bearer token; tweepy's
   ``Client.create_compliance_job``) returns the job with a signed ``upload_url`` and ``download_url``;
2. ``PUT upload_url`` with the post ids, one per line, ``Content-Type: text/plain`` (no X
   credential: the URL is signed; it points at cloud storage, not at the API);
3. ``GET /2/compliance/jobs/:id`` (tweepy's ``Client.get_compliance_job``) until ``status`` is
   ``complete`` (``created`` → ``in_progress`` → ``complete``; or ``failed``/``expired``);
4. ``GET download_url``: JSON lines, one per affected id only, e.g. (recorded,
   ``twarc-csv-test-data/tweets_compliance.jsonl``)
   ``{"id": "1170147183095664640", "action": "delete", "created_at": "2019-09-07T01:30:03.390Z",
   "redacted_at": "2021-08-17T17:26:15.788Z", "reason": "deactivated"}``.

What this module keeps, all in the lake, ids only (never text or any other content):

- the **ledger** ``clean_tweets/_compliance_ledger/part-00000.parquet`` (:data:`LEDGER_SCHEMA`): one row per
  affected post id with ``action``, ``reason``, the post's ``created_at``, ``redacted_at`` when
  given, ``checked_at`` (when the job's result was downloaded, UTC) and ``job_id``; the first
  result recorded for an id is kept. It is rewritten whole (one PutObject) per compliance run.

What it submits: the range's published ids **and** the ids the published rows reference
(``retweeted_id``, ``quoted_id``, ``replied_to_id``; :func:`submitted_ids`), deduplicated within
each day and each job's upload: a referenced post is held in the lake too (its copy in
``includes.tweets`` of the referencing page, a retweet's text), even when it is published nowhere.

The rule for a post that references a removed post (the referencing row is on the days whose
published rows name the removed id, which are rewritten too):

- a **retweet** of it is removed as well (row, raw post and stream message): X removes the
  retweets of a deleted post with it (X Help Center, "How to delete a post": the reposts of a
  deleted post are removed as well), whether or not the job's result lists the retweet's own id,
  and the retweet's row carries the original's content (``text`` etc., taken from
  ``includes.tweets``; tweet_assets.flatten);
- a **quote** or **reply** keeps its own row and raw post: it is the other author's content and
  holds only the referenced id (``quoted_id``/``replied_to_id``, ``referenced_tweets``), never
  the removed post's content, whose copy in ``includes.tweets`` is removed.

What it removes (:func:`remove_from_day`, per UTC day, each object rewritten atomically by one
PutObject at the same key, as the IO manager writes; no delete call is made):

- ``tweets/dt=<day>/part-00000.parquet`` (published) and ``clean_tweets/dt=<day>/...``: the rows
  whose ``id`` or ``retweeted_id`` is in the ledger;
- ``raw_tweets/dt=<day>/part-00000.jsonl.gz``: each page holding such a post (or a retweet of
  one) is rewritten without it in ``data`` and ``includes.tweets`` (pages without one stay byte
  for byte); an unreadable
  (quarantined) line naming such an id is dropped and counted; optionally the filtered stream's
  segments ``raw_stream/dt=<day>/*.jsonl.gz`` the same way (a message holding such a post dropped).
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Iterable, Iterator, Optional

import orjson
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import requests
import tweepy
from dagster import ConfigurableResource
from pydantic import Field

from .io_manager import LakeIOManager, PageSpool, StoredPages, StoredTable
from .lake import Lake
from .parquet import SORTED_BY, write_parquet
from .schema import PUBLISHED_SCHEMA

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
#: Job states of ``GET /2/compliance/jobs/:id`` (API reference, ComplianceJobStatus).
DONE, FAILED = "complete", ("failed", "expired")
API_HOST = "https://api.twitter.com"


class ComplianceError(RuntimeError):
    """A compliance job could not be run or its result not read; the message says which step and
    what to check, never a credential."""


@dataclass(frozen=True)
class ComplianceJob:
    """One batch compliance job as the API describes it (``data`` of ``POST``/``GET
    /2/compliance/jobs``): ``id``, ``status``, signed ``upload_url``/``download_url`` and their
    expiry times (RFC 3339 strings, UTC)."""

    id: str
    status: str
    upload_url: str
    download_url: str
    upload_expires_at: str = ""
    download_expires_at: str = ""

    @classmethod
    def from_api(cls, body: dict) -> "ComplianceJob":
        """From a response body ``{"data": {...}}``.

        Raises:
            ComplianceError: the body has no job (an ``errors`` answer, say).
        """
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict) or not data.get("id") or not data.get("status"):
            raise ComplianceError(f"the compliance job answer has no job: {str(body)[:300]}")
        return cls(
            id=str(data["id"]),
            status=str(data["status"]),
            upload_url=str(data.get("upload_url", "")),
            download_url=str(data.get("download_url", "")),
            upload_expires_at=str(data.get("upload_expires_at", "")),
            download_expires_at=str(data.get("download_expires_at", "")),
        )


class ComplianceApi(ConfigurableResource):
    """The X API v2 batch compliance endpoints (app-only bearer token, through tweepy) and the
    signed upload/download URLs they return (plain HTTPS, no X credential sent there).

    Env (see ``definitions.compliance_api_from_env``): ``X_BEARER_TOKEN``.
    """

    bearer_token: Optional[str] = Field(default=None, description="App-only bearer token. Env: X_BEARER_TOKEN.")
    base_url: str = Field(default=API_HOST, description="API host (tests point it at a loopback double).")
    poll_interval_s: float = Field(default=30.0, description="Seconds between status polls.")
    max_wait_s: float = Field(default=6 * 3600.0, description="Give up waiting for a job after this many seconds.")
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 120.0

    def client(self) -> tweepy.Client:
        """A tweepy client for the compliance endpoints (app-only).

        Raises:
            ComplianceError: no bearer token configured.
        """
        if not self.bearer_token:
            raise ComplianceError("the batch compliance endpoints need an app-only bearer token: set X_BEARER_TOKEN.")
        from .sources.x_api import ApiSession, _redact_tweepy_debug_log

        client = tweepy.Client(bearer_token=self.bearer_token, return_type=dict, wait_on_rate_limit=True)
        client.session = ApiSession((self.connect_timeout_s, self.read_timeout_s), self.base_url)
        _redact_tweepy_debug_log()
        return client

    def _call(self, what: str, call: Callable[[], dict]) -> ComplianceJob:
        try:
            return ComplianceJob.from_api(call())
        except tweepy.HTTPException as exc:
            detail = "; ".join(str(m) for m in exc.api_messages) or exc.response.reason
            raise ComplianceError(self._redact(f"{what}: HTTP {exc.response.status_code}: {detail}")) from None
        except requests.RequestException as exc:
            raise ComplianceError(self._redact(f"{what}: {type(exc).__name__}: {exc}")) from None

    def create(self, name: str) -> ComplianceJob:
        """``POST /2/compliance/jobs`` with ``type=tweets`` (not resumable).

        Raises:
            ComplianceError: the API refused (message and status, no credential).
        """
        client = self.client()
        return self._call("create compliance job", lambda: client.create_compliance_job("tweets", name=name))

    def status(self, job_id: str) -> ComplianceJob:
        """``GET /2/compliance/jobs/:id``.

        Raises:
            ComplianceError: the API refused.
        """
        client = self.client()
        return self._call(f"compliance job {job_id}", lambda: client.get_compliance_job(job_id))

    def upload(self, job: ComplianceJob, ids: Iterable[int]) -> int:
        """``PUT`` the ids (decimal, one per line, ``Content-Type: text/plain``) to the job's
        signed ``upload_url``; returns the bytes sent.

        Raises:
            ComplianceError: the storage refused the upload (status, never the signed URL's query).
        """
        body = b"".join(b"%d\n" % i for i in ids)
        try:
            response = requests.put(job.upload_url, data=body, headers={"Content-Type": "text/plain"}, timeout=(self.connect_timeout_s, self.read_timeout_s))
        except requests.RequestException as exc:
            raise ComplianceError(f"upload for compliance job {job.id}: {type(exc).__name__}") from None
        if response.status_code >= 300:
            raise ComplianceError(f"upload for compliance job {job.id} to {_no_query(job.upload_url)}: HTTP {response.status_code} {response.text[:200]}")
        return len(body)

    def wait(self, job: ComplianceJob, log: logging.Logger, sleep=time.sleep, clock=time.monotonic) -> ComplianceJob:
        """Poll the job every ``poll_interval_s`` until ``complete``, logging each status change
        and the elapsed time.

        Raises:
            ComplianceError: the job ``failed``/``expired``, or ``max_wait_s`` passed.
        """
        started = clock()
        last = job.status
        while True:
            job = self.status(job.id)
            if job.status != last:
                log.info(f"compliance job {job.id}: {job.status} after {clock() - started:.0f}s")
                last = job.status
            if job.status == DONE:
                return job
            if job.status in FAILED:
                raise ComplianceError(f"compliance job {job.id} ended {job.status}: create a new one (the ids were not checked).")
            if clock() - started > self.max_wait_s:
                raise ComplianceError(f"compliance job {job.id} still {job.status} after {self.max_wait_s:.0f}s: run the compliance job again later.")
            sleep(self.poll_interval_s)

    def download(self, job: ComplianceJob) -> bytes:
        """The job's result (JSON lines) from its signed ``download_url``.

        Raises:
            ComplianceError: the storage refused (status, never the signed URL's query).
        """
        try:
            response = requests.get(job.download_url, timeout=(self.connect_timeout_s, self.read_timeout_s))
        except requests.RequestException as exc:
            raise ComplianceError(f"download for compliance job {job.id}: {type(exc).__name__}") from None
        if response.status_code >= 300:
            raise ComplianceError(f"download for compliance job {job.id} from {_no_query(job.download_url)}: HTTP {response.status_code}")
        return response.content

    def check(self, ids: list[int], name: str, log: logging.Logger, sleep=time.sleep) -> tuple[ComplianceJob, bytes]:
        """Create a job, upload ``ids``, wait for it and download its result:
        ``(job, result JSON lines)``. Raises :class:`ComplianceError` at any failed step."""
        job = self.create(name)
        log.info(f"compliance job {job.id} created ({job.status}); uploading {len(ids):,} post ids")
        sent = self.upload(job, ids)
        log.info(f"compliance job {job.id}: uploaded {sent:,} bytes; polling every {self.poll_interval_s:g}s")
        job = self.wait(job, log, sleep=sleep)
        return job, self.download(job)

    def _redact(self, text: str) -> str:
        if self.bearer_token and len(self.bearer_token) >= 4:
            text = text.replace(self.bearer_token, "***")
        return text


def _no_query(url: str) -> str:
    """A signed URL without its query (the signature)."""
    return url.split("?", 1)[0]


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
    return _put_table(lake, LEDGER_KEY, table.cast(LEDGER_SCHEMA), None)


def _put_table(lake: Lake, key: str, table: pa.Table, sorted_by) -> int:
    fd, tmp = tempfile.mkstemp(suffix=".parquet")
    os.close(fd)
    try:
        write_parquet(table, tmp, table.schema, sorted_by)
        return lake.put_file(key, tmp)
    finally:
        os.remove(tmp)


def published_days(lake: Lake, first: str | None = None, last: str | None = None) -> list[str]:
    """The UTC days (``YYYY-MM-DD``) with a published object, within ``[first, last]`` if given."""
    days = []
    for key in lake.list(f"{PUBLISHED_TABLE}/"):
        part = key.split("/")
        if len(part) == 3 and part[1].startswith("dt=") and part[2].endswith(".parquet"):
            day = part[1][3:]
            if (not first or day >= first) and (not last or day <= last):
                days.append(day)
    return sorted(set(days))


def published_ids(lake: Lake, day: str) -> pa.Array:
    """The ids published for ``day`` (int64), read from the ``id`` column alone."""
    key = LakeIOManager.key(PUBLISHED_TABLE, "parquet", day)
    return StoredTable(lake, key, lake.uri(key)).read(["id"]).column("id").combine_chunks()


#: Columns of the published table (tweet_assets.schema) naming a post the row references.
REFERENCE_COLUMNS = ("retweeted_id", "quoted_id", "replied_to_id")


def submitted_ids(lake: Lake, day: str) -> pa.Array:
    """The ids to check for ``day`` (int64, no null, each once): the published ids, then the ids
    the published rows reference (:data:`REFERENCE_COLUMNS`) that are not among them."""
    key = LakeIOManager.key(PUBLISHED_TABLE, "parquet", day)
    table = StoredTable(lake, key, lake.uri(key)).read(["id", *REFERENCE_COLUMNS])
    ids = pa.concat_arrays([table.column(c).combine_chunks().cast(pa.int64()) for c in ("id", *REFERENCE_COLUMNS)])
    return pc.unique(pc.drop_null(ids))


def without_ids(table: pa.Table, ids: pa.Array) -> tuple[pa.Table, pa.Array]:
    """``(table without the rows whose id is in ids, or that retweet a post in ids (its
    ``retweeted_id``, when the table has that column), the removed rows' ids)``: X removes the
    retweets of a deleted post with it, and a retweet's row carries the original's text."""
    hit = pc.fill_null(pc.is_in(table.column("id"), value_set=ids), False)
    if "retweeted_id" in table.column_names:
        hit = pc.or_(hit, pc.fill_null(pc.is_in(table.column("retweeted_id"), value_set=ids), False))
    return table.filter(pc.invert(hit)), table.column("id").filter(hit).combine_chunks()


@dataclass
class DayRemoval:
    """What :func:`remove_from_day` removed from one day: ids removed from the published and clean
    tables, posts removed from raw pages (and stream segments), pages rewritten, raw keys rewritten."""

    day: str
    published: list[int] = field(default_factory=list)
    clean: list[int] = field(default_factory=list)
    raw_posts: int = 0
    raw_pages_rewritten: int = 0
    raw_unreadable_lines_dropped: int = 0
    raw_objects_rewritten: list[str] = field(default_factory=list)
    published_rows: int | None = None

    @property
    def removed_ids(self) -> set[int]:
        return set(self.published) | set(self.clean)


def _rewrite_table(lake: Lake, key: str, ids: pa.Array, sorted_by) -> tuple[list[int], int | None]:
    if lake.size(key) is None:
        return [], None
    table = StoredTable(lake, key, lake.uri(key)).read()
    kept, removed = without_ids(table, ids)
    if len(removed):
        _put_table(lake, key, kept.cast(PUBLISHED_SCHEMA), sorted_by)
    return removed.to_pylist(), kept.num_rows


#: A post id as the API writes it in a page (``"id":"123"``): pages naming no ledger id are kept
#: byte for byte without being parsed.
_ID = re.compile(rb'"id"\s*:\s*"(\d{1,19})"')


def _gone(post, ids: set[str]) -> bool:
    """A post object to remove: its id is in ``ids``, or it retweets one (``referenced_tweets``
    entry of type ``retweeted``); a quote or reply of one is kept (it holds only the id)."""
    if not isinstance(post, dict):
        return False
    if str(post.get("id")) in ids:
        return True
    refs = post.get("referenced_tweets")
    return isinstance(refs, list) and any(isinstance(r, dict) and r.get("type") == "retweeted" and str(r.get("id")) in ids for r in refs)


def _clean_page(line: bytes, ids: set[str]) -> tuple[bytes | None, int, bool]:
    """``(new line or None to drop it, posts removed, changed)`` for one raw page: the posts of
    ``ids`` and the retweets of them leave ``data`` and ``includes.tweets``."""
    if ids.isdisjoint(m.decode() for m in _ID.findall(line)):
        return line, 0, False
    try:
        page = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None, 0, True  # an unreadable line naming an affected id: dropped (counted by the caller)
    if not isinstance(page, dict):
        return line, 0, False
    removed = 0
    data = page.get("data")
    if isinstance(data, dict) and _gone(data, ids):  # a stream message: one post
        return None, 1, True
    if isinstance(data, list):
        kept = [p for p in data if not _gone(p, ids)]
        removed += len(data) - len(kept)
        page["data"] = kept
    includes = page.get("includes")
    changed = removed > 0
    if isinstance(includes, dict) and isinstance(includes.get("tweets"), list):
        kept = [p for p in includes["tweets"] if not _gone(p, ids)]
        if len(kept) != len(includes["tweets"]):
            includes["tweets"] = kept
            changed = True
    if not changed:
        return line, 0, False
    return orjson.dumps(page), removed, True


def _rewrite_pages(lake: Lake, key: str, wanted: set[str], day: str) -> tuple[int, int, int]:
    """Rewrite one gzip JSON-lines object of pages or stream messages without the posts in
    ``wanted``: ``(posts removed, pages rewritten or dropped, unreadable lines dropped)``; the
    object is stored again only when one of its lines named such a post."""
    spool_dir = tempfile.mkdtemp(prefix="compliance-raw-")
    spool = PageSpool(spool_dir, day)
    posts = pages = unreadable = 0
    for _, line in StoredPages(lake, key, lake.uri(key)).lines():
        new, removed, touched = _clean_page(line, wanted)
        if touched:
            if new is None and removed == 0:
                unreadable += 1
            else:
                pages += 1
            posts += removed
        if new is not None:
            spool.write(new)
    stored = spool.close()
    try:
        if pages or unreadable:
            lake.put_file(key, stored.path)
    finally:
        os.remove(stored.path)
        os.rmdir(spool_dir)
    return posts, pages, unreadable


def remove_from_day(lake: Lake, day: str, ids: pa.Array, stream_prefix: str | None = None) -> DayRemoval:
    """Rewrite ``day``'s published, clean and raw objects without the posts in ``ids`` (int64),
    and with ``stream_prefix`` (``raw_stream``) the filtered stream's landed segments of the day
    too (``<stream_prefix>/dt=<day>/*.jsonl.gz``: a message holding such a post is dropped). Each
    object is read, filtered and stored again at its key by one PutObject (a local lake: written
    to a temporary name and renamed), and only when it held one of them.

    Returns: what was removed (:class:`DayRemoval`).
    Raises:
        LakeError: an object could not be read or stored (the others may already be rewritten:
            rerun, the rewrite is idempotent).
    """
    out = DayRemoval(day)
    out.published, out.published_rows = _rewrite_table(lake, LakeIOManager.key(PUBLISHED_TABLE, "parquet", day), ids, SORTED_BY)
    out.clean, _ = _rewrite_table(lake, LakeIOManager.key(CLEAN_TABLE, "parquet", day), ids, SORTED_BY)
    wanted = {str(i) for i in ids.to_pylist()}
    raw_keys = [LakeIOManager.key(RAW_TABLE, "jsonl.gz", day)]
    if stream_prefix:
        raw_keys += [k for k in lake.list(f"{stream_prefix}/dt={day}/") if k.endswith(".jsonl.gz")]
    for key in raw_keys:
        if lake.size(key) is None:
            continue
        posts, pages, unreadable = _rewrite_pages(lake, key, wanted, day)
        out.raw_posts += posts
        out.raw_pages_rewritten += pages
        out.raw_unreadable_lines_dropped += unreadable
        if pages or unreadable:
            out.raw_objects_rewritten.append(key)
    return out


def filter_chunks(tables: Iterable[pa.Table], ids: pa.Array, removed: list) -> Iterator[pa.Table]:
    """``tables`` without rows whose id is in ``ids`` or that retweet one (:func:`without_ids`);
    the removed ids are appended to ``removed`` (``clean_tweets`` applies the ledger this way, so a
    recompute never brings a post, or a retweet of it, back)."""
    for table in tables:
        if len(ids):
            table, gone = without_ids(table, ids)
            removed.extend(gone.to_pylist())
        yield table


__all__ = [
    "ComplianceApi",
    "ComplianceError",
    "ComplianceJob",
    "DayRemoval",
    "LEDGER_KEY",
    "LEDGER_SCHEMA",
    "filter_chunks",
    "ledger_ids",
    "merge_ledger",
    "parse_results",
    "published_days",
    "published_ids",
    "read_ledger",
    "remove_from_day",
    "submitted_ids",
    "without_ids",
    "write_ledger",
]
