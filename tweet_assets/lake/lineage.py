"""Lineage between the zones of a day: which raw object a day's clean table was computed from.

One JSON object per day, written by the day's lease holder (:mod:`tweet_assets.lake.leases`) with
conditional writes (read, change, ``If-Match``; retried when another writer won), each right after
a forced check of the writer's lease (``fence``: a run paused past its lease fails there instead of
overwriting the new holder's entry)::

    <lake>/clean_tweets/_lineage/dt=YYYY-MM-DD.json
    {"raw_tweets":   {"key": "raw_tweets/dt=…/part-00000.jsonl.gz", "etag": "…", "run_id": "…", "source": "replay"},
     "clean_tweets": {"key": "clean_tweets/dt=…/part-00000.parquet", "etag": "…", "run_id": "…",
                      "read": {"raw_tweets": {"key": "raw_tweets/dt=…/…", "etag": "…"}}},
     "tweets":       {"key": …, "etag": …, "run_id": …, "read": {"clean_tweets": {…}}}}

ETags are the store's (S3's, or a local file's MD5); ``null`` for a day without posts (no
object). ``s3_parquet`` publishes a day only when the clean object is the one recorded and the raw
object is still the one that clean table was computed from (:func:`input_problem`); otherwise it
fails saying which zone changed and which run wrote it.
"""

from __future__ import annotations

import orjson

from typing import Callable

from tweet_assets.lake.store import Lake, LakeError, PreconditionFailed

LINEAGE_PREFIX = "clean_tweets/_lineage"
MAX_RACES = 50


def lineage_key(day: str) -> str:
    return f"{LINEAGE_PREFIX}/dt={day}.json"


def read_lineage(lake: Lake, day: str) -> dict:
    """The day's lineage record (``{}`` when none was written: a lake older than lineage)."""
    data, _ = lake.read_with_etag(lineage_key(day))
    return orjson.loads(data) if data else {}


def record(lake: Lake, day: str, zone: str, entry: dict, fence: Callable[[], object] | None = None) -> dict:
    """Set ``zone``'s entry of the day's record (a conditional read-modify-write, retried on
    conflict: another zone's entry written meanwhile is kept); returns the record written.
    ``fence``: called right before each write, e.g. ``lambda: leases.check(day, force=True)``
    (the writer's lease renewed now: a lost lease raises and nothing is written).

    Raises:
        LeaseLost: from ``fence``: the writer's lease of ``day`` was taken over.
        LakeError: the record could not be stored.
    """
    return _update(lake, day, lambda current: current.__setitem__(zone, entry), fence)


def refresh_after_rewrite(lake: Lake, day: str, run_id: str, etags: dict[str, str] | None = None, fence: Callable[[], object] | None = None) -> dict:
    """After the compliance job rewrote ``day``'s zones together (the same posts removed from each):
    every entry's ETags are the objects' new ones, ``rewritten_by`` names the run. ``etags``: the ETag
    each rewrite's write answered (key -> ETag; a key not in it kept its version); None: read them
    now (a later read could see another writer's object: pass them). Call it only when the zones
    agreed before the rewrite (:func:`input_problem` None for each), or a mix would be hidden.
    ``fence``: as for :func:`record`."""

    def now(key: str, recorded):
        if etags is None:
            return lake.etag(key)
        return etags.get(key, recorded)

    def refresh(current: dict) -> None:
        for entry in current.values():
            entry["etag"] = now(entry["key"], entry.get("etag"))
            entry["rewritten_by"] = run_id
            for seen in (entry.get("read") or {}).values():
                seen["etag"] = now(seen["key"], seen.get("etag"))

    return _update(lake, day, refresh, fence)


def _update(lake: Lake, day: str, change, fence: Callable[[], object] | None = None) -> dict:
    key = lineage_key(day)
    for _ in range(MAX_RACES):
        data, etag = lake.read_with_etag(key)
        current = orjson.loads(data) if data else {}
        change(current)
        body = orjson.dumps(current, option=orjson.OPT_SORT_KEYS)
        if fence is not None:
            fence()  # the lease, renewed now: a run paused past it stops here
        try:
            if etag is None:
                lake.put_if_absent(key, body)
            else:
                lake.put_if_match(key, body, etag)
            return current
        except PreconditionFailed:
            continue
    raise LakeError(f"could not record lineage {lake.uri(key)}: {MAX_RACES} conditional writes in a row lost to other writers.")


def input_problem(lake: Lake, day: str, table: str) -> str | None:
    """Why ``table``'s object of ``day`` must not be read as an input now, or None when it may: it is
    not the object its run recorded, or an object it was computed from (its entry's ``read``) changed
    since. A day or zone without a record (a lake older than lineage, a landing zone) may be read.

    Entries are ``{"key", "etag", "run_id", "read": {table: {"key", "etag"}}}`` (:func:`record`)."""
    return _check(lake, day, table, None)[0]


def check_input(lake: Lake, day: str, table: str, key: str) -> tuple[str | None, str | None]:
    """``(problem, etag)``: :func:`input_problem`'s answer for ``table``'s object of ``day`` at
    ``key``, and the ETag of that object as this check saw it (None: no object), HEADed once. A
    reader pins its read to that ETag (``GetObject If-Match``), so it reads the version checked,
    never one that replaced it after the check."""
    return _check(lake, day, table, key)


def _check(lake: Lake, day: str, table: str, key: str | None) -> tuple[str | None, str | None]:
    entries = read_lineage(lake, day)
    entry = entries.get(table)
    if not entry or "read" not in entry:
        return None, (lake.etag(key) if key is not None else None)
    now = lake.etag(entry["key"])
    seen = now if key is None or key == entry["key"] else lake.etag(key)
    if now != entry.get("etag"):
        return (
            f"{lake.uri(entry['key'])} is not the object run {entry.get('run_id')} wrote (ETag now {now}, recorded {entry.get('etag')}): "
            f"another writer replaced it. Materialize {table} for {day} again, then its downstream assets."
        ), seen
    for upstream, seen_then in sorted(entry["read"].items()):
        up_now = lake.etag(seen_then["key"])
        if up_now != seen_then.get("etag"):
            other = entries.get(upstream) or {}
            by = f"run {other.get('run_id')}" + (f" (source {other['source']})" if other.get("source") else "") if other.get("etag") == up_now else "a writer that recorded no lineage"
            return (
                f"{lake.uri(seen_then['key'])} changed since run {entry.get('run_id')} computed {table} for {day} from it "
                f"(ETag then {seen_then.get('etag')}, now {up_now}, written by {by}): using {table} now would mix two runs' zones. "
                f"Materialize {table} for {day} again, then its downstream assets."
            ), seen
    return None, seen
