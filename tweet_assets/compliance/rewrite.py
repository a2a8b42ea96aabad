"""Removing the ledger's posts from every zone of the lake, day by day.

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
  ``includes.tweets``; tweet_assets.transform.flatten);
- a **quote** or **reply** keeps its own row and raw post: it is the other author's content and
  holds only the referenced id (``quoted_id``/``replied_to_id``, ``referenced_tweets``), never
  the removed post's content, whose copy in ``includes.tweets`` is removed.

What it removes (:func:`remove_from_day`, per UTC day, each object rewritten atomically at the same
key, as the IO manager writes: a conditional PutObject or multipart upload; no delete call is made):

- ``tweets/dt=<day>/part-00000.parquet`` (published) and ``clean_tweets/dt=<day>/...``: the rows
  whose ``id`` or ``retweeted_id`` is in the ledger;
- ``raw_tweets/dt=<day>/part-00000.jsonl.gz``: each page holding such a post (or a retweet of
  one) is rewritten without it in ``data`` and ``includes.tweets`` (pages without one stay byte
  for byte); an unreadable
  (quarantined) line naming such an id is dropped and counted; optionally the filtered stream's
  segments ``raw_stream/dt=<day>/*.jsonl.gz`` the same way (a message holding such a post dropped).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from tweet_assets.compliance.ledger import CLEAN_TABLE, PUBLISHED_TABLE, RAW_TABLE
from tweet_assets.lake.io_manager import LakeIOManager
from tweet_assets.lake.leases import DayLeases
from tweet_assets.lake.values import PageSpool, StoredPages, StoredTable
from tweet_assets.lake.store import RUN_ID_META, WRITE_ID_META, Lake, LakeError, ObjectChanged, PreconditionFailed, new_write_id
from tweet_assets.lake.parquet import SORTED_BY, write_parquet
from tweet_assets.schema import PUBLISHED_SCHEMA

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
    #: the ETag each rewritten object's write answered (key -> ETag), for the day's lineage
    etags: dict[str, str] = field(default_factory=dict)

    @property
    def removed_ids(self) -> set[int]:
        return set(self.published) | set(self.clean)


#: Conditional rewrites of one object lost in a row before giving up (each loss: another writer stored it).
MAX_CONFLICTS = 20


@dataclass
class Fence:
    """The compliance run's hold on a day (tweet_assets.lake.fencing): its lease, checked before each
    rewrite is stored (``check``) and renewed at once when a rewrite's condition fails (``force``:
    another writer stored the object, so either a stale write landed or this run's lease is gone).
    ``None`` fences: a caller without leases (tests of the filtering alone)."""

    leases: DayLeases | None
    day: str

    def check(self, force: bool = False) -> None:
        if self.leases is not None:
            self.leases.check(self.day, force=force)

    def meta(self) -> dict:
        return {} if self.leases is None else {RUN_ID_META: self.leases.run_id, WRITE_ID_META: new_write_id()}


def _store_file(lake: Lake, key: str, path: str, etag: str, fence: Fence) -> str:
    """Store ``path`` at ``key`` only if the object is still ``etag`` and this run holds the day's
    lease; returns the ETag the write answered."""
    fence.check()
    return lake.write_file(key, path, etag, fence.meta()).etag


def _rewrite_table(lake: Lake, key: str, ids: pa.Array, sorted_by, fence: Fence | None = None) -> tuple[list[int], int | None, str | None]:
    """Read the table with its ETag, drop the rows of ``ids``, store it back only if it is still that
    version (``If-Match``) and the day's lease is held; on a conflict renew the lease (LeaseLost when
    another run took the day) and read and filter the new version, so what another run stored
    meanwhile is filtered, never overwritten by an older copy. Returns (ids removed, rows kept, the
    new ETag or None when nothing was stored)."""
    fence = fence or Fence(None, "")
    for _ in range(MAX_CONFLICTS):
        etag = lake.etag(key)
        if etag is None:
            return [], None, None
        try:
            table = StoredTable(lake, key, lake.uri(key), etag).read()
        except ObjectChanged:
            continue  # replaced between the ETag and the read: read again
        kept, removed = without_ids(table, ids)
        if not len(removed):
            return [], kept.num_rows, None
        fd, tmp = tempfile.mkstemp(suffix=".parquet")
        os.close(fd)
        try:
            write_parquet(kept.cast(PUBLISHED_SCHEMA), tmp, PUBLISHED_SCHEMA, sorted_by)
            new = _store_file(lake, key, tmp, etag, fence)
        except PreconditionFailed:
            fence.check(force=True)
            continue
        finally:
            os.remove(tmp)
        return removed.to_pylist(), kept.num_rows, new
    raise LakeError(f"could not rewrite {lake.uri(key)}: {MAX_CONFLICTS} conditional writes in a row lost to other writers; run compliance_job again.")


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
    # spec 2.159 names the list referenced_tweets, 2.167 referenced_posts (pages land as received)
    refs = post.get("referenced_tweets", post.get("referenced_posts"))
    return isinstance(refs, list) and any(isinstance(r, dict) and r.get("type") == "retweeted" and str(r.get("id")) in ids for r in refs)


def _clean_page(line: bytes, ids: set[str]) -> tuple[bytes | None, int, bool]:
    """``(new line or None to drop it, posts removed, changed)`` for one raw page: the posts of
    ``ids`` and the retweets of them leave ``data`` and ``includes.tweets`` (``includes.posts`` in a
    page landed in spec 2.167's vocabulary)."""
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
    for name in ("tweets", "posts"):  # includes.tweets (spec 2.159) or includes.posts (2.167)
        if isinstance(includes, dict) and isinstance(includes.get(name), list):
            kept = [p for p in includes[name] if not _gone(p, ids)]
            if len(kept) != len(includes[name]):
                includes[name] = kept
                changed = True
    if not changed:
        return line, 0, False
    return orjson.dumps(page), removed, True


def _rewrite_pages(lake: Lake, key: str, wanted: set[str], day: str, fence: Fence | None = None) -> tuple[int, int, int, str | None]:
    """Rewrite one gzip JSON-lines object of pages or stream messages without the posts in
    ``wanted``: ``(posts removed, pages rewritten or dropped, unreadable lines dropped, new ETag or
    None)``; the object is stored again only when one of its lines named such a post, and only if it
    is still the version read (``If-Match``) while the day's lease is held (on a conflict the lease is
    renewed and the new version read and filtered again)."""
    fence = fence or Fence(None, day)
    for _ in range(MAX_CONFLICTS):
        etag = lake.etag(key)
        if etag is None:
            return 0, 0, 0, None
        try:
            return _rewrite_pages_once(lake, key, wanted, day, etag, fence)
        except ObjectChanged:
            continue
        except PreconditionFailed:
            fence.check(force=True)
            continue
    raise LakeError(f"could not rewrite {lake.uri(key)}: {MAX_CONFLICTS} conditional writes in a row lost to other writers; run compliance_job again.")


def _rewrite_pages_once(lake: Lake, key: str, wanted: set[str], day: str, etag: str, fence: Fence) -> tuple[int, int, int, str | None]:
    """One pass of :func:`_rewrite_pages` over version ``etag``; its spool directory is removed
    whatever happens (a read that fails mid-stream, a refused store)."""
    spool_dir = tempfile.mkdtemp(prefix="compliance-raw-")
    spool = PageSpool(spool_dir, day)
    posts = pages = unreadable = 0
    new = None
    try:
        for _, line in StoredPages(lake, key, lake.uri(key), etag).lines():
            new_line, removed, touched = _clean_page(line, wanted)
            if touched:
                if new_line is None and removed == 0:
                    unreadable += 1
                else:
                    pages += 1
                posts += removed
            if new_line is not None:
                spool.write(new_line)
        stored = spool.close()
        if pages or unreadable:
            new = _store_file(lake, key, stored.path, etag, fence)
    finally:
        with contextlib.suppress(OSError):  # the original error is the one to see
            spool.suspend()  # no spool file left open after a failure
        shutil.rmtree(spool_dir, ignore_errors=True)
    return posts, pages, unreadable, new


def remove_from_day(lake: Lake, day: str, ids: pa.Array, stream_prefix: str | None = None, leases: DayLeases | None = None) -> DayRemoval:
    """Rewrite ``day``'s published, clean and raw objects without the posts in ``ids`` (int64),
    and with ``stream_prefix`` (``raw_stream``) the filtered stream's landed segments of the day
    too (``<stream_prefix>/dt=<day>/*.jsonl.gz``: a message holding such a post is dropped). Each
    object is read, filtered and stored again at its key by one conditional write (a local lake:
    written to a temporary name and renamed under its lock), and only when it held one of them.
    With ``leases`` (the run's, holding ``day``), every write is fenced by the day's lease too
    (tweet_assets.lake.fencing) and carries the run's id.

    Returns: what was removed (:class:`DayRemoval`), with the ETag of each object written.
    Raises:
        LeaseLost: another run took the day over from this run.
        LakeError: an object could not be read or stored (the others may already be rewritten:
            rerun, the rewrite is idempotent).
    """
    out = DayRemoval(day)
    fence = Fence(leases, day)
    for table, into in ((PUBLISHED_TABLE, "published"), (CLEAN_TABLE, "clean")):
        key = LakeIOManager.key(table, "parquet", day)
        removed, rows, etag = _rewrite_table(lake, key, ids, SORTED_BY, fence)
        setattr(out, into, removed)
        if into == "published":
            out.published_rows = rows
        if etag is not None:
            out.etags[key] = etag
    wanted = {str(i) for i in ids.to_pylist()}
    raw_keys = [LakeIOManager.key(RAW_TABLE, "jsonl.gz", day)]
    if stream_prefix:
        raw_keys += [k for k in lake.list(f"{stream_prefix}/dt={day}/") if k.endswith(".jsonl.gz")]
    for key in raw_keys:
        if lake.size(key) is None:
            continue
        posts, pages, unreadable, etag = _rewrite_pages(lake, key, wanted, day, fence)
        if etag is not None:
            out.etags[key] = etag
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
