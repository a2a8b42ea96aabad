"""Day leases: one writer per UTC day of the lake at a time, across the three zones.

A run that writes any zone of a day (``raw_tweets``, ``clean_tweets``, ``tweets``; the compliance
job's rewrites) first holds that day's lease, one small JSON object per day::

    <lake>/clean_tweets/_leases/dt=YYYY-MM-DD.json
    {"run_id": "...", "purpose": "raw_tweets", "acquired_at": 1.7e9, "expires_at": 1.7e9, "released": false}

(under ``clean_tweets/`` like the compliance ledger, so the pipeline's IAM policy covers it; the
``_`` keeps it out of Hive-style readings). It is taken with a conditional PUT: ``If-None-Match: *``
when there is none, ``If-Match`` on the ETag read to take over a dead one, renew or release
(S3 User Guide, "conditional writes"; a local lake emulates them with a lock file and a content
hash: :meth:`tweet_assets.lake.store.Lake.put_if_match`). Of two runs racing for a day exactly one
wins; the other gets :class:`LeaseConflict` naming the holder run.

A lease is one run's (its Dagster run id): every step of the run renews it (re-entrant), so a day
can never hold zones written by two runs at once. It is dead, and may be taken over, when it is
released, when it expired (``expires_at``, :data:`TTL_ENV`, renewed by each step) or when the
holder run is finished according to the Dagster instance (``run_finished``). A range (a backfill of
many days) takes every day's lease, in day order, before writing; if one day is held, the days
taken by that call are released again and nothing is written.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Iterable

import orjson

from tweet_assets import config
from tweet_assets.lake.store import Lake, LakeError, PreconditionFailed

LEASE_PREFIX = "clean_tweets/_leases"
#: Seconds a lease lives without renewal (each step renews it). Env override, whole seconds.
TTL_ENV = "TWEET_ASSETS_LEASE_TTL_S"
DEFAULT_TTL_S = config.NUMBERS[TTL_ENV].default
#: Seconds a waiting taker (the compliance job) waits for a live holder before failing.
WAIT_ENV = "TWEET_ASSETS_LEASE_WAIT_S"
DEFAULT_WAIT_S = config.NUMBERS[WAIT_ENV].default
#: Conditional-write races lost in a row before giving up (each loss means another writer progressed).
MAX_RACES = 50


class LeaseConflict(LakeError):
    """The day is leased by another live run; ``holder`` is its lease record (``run_id``, ``purpose``,
    ``acquired_at``, ``expires_at``)."""

    def __init__(self, message: str, day: str, holder: dict):
        super().__init__(message)
        self.day = day
        self.holder = holder


@dataclass
class Lease:
    """A held lease: the day, the holder run, the lease object's ETag, when it expires (Unix s),
    and, when it was taken over from another run's dead lease, when (``took_over_at``; what that run
    left half-written before then is provably dead)."""

    day: str
    run_id: str
    etag: str
    expires_at: float
    took_over_at: float | None = None


def lease_key(day: str) -> str:
    """The lease object of ``day`` (``YYYY-MM-DD``)."""
    return f"{LEASE_PREFIX}/dt={day}.json"


def lease_wait_s() -> float:
    """How long a waiting taker (the compliance job) waits for a live holder: :data:`WAIT_ENV` or 1 h."""
    return config.number(WAIT_ENV)


def _utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


_sleep = time.sleep  # the wait between polls of a held lease (tests replace it to see a taker wait)
_held: dict[tuple[str, str, str], Lease] = {}  # (lake url, run id, day) -> lease, this process
_guard = threading.Lock()


class DayLeases:
    """Take, renew and release day leases for run ``run_id`` in ``lake``.

    Args:
        lake: the lake the days are written to.
        run_id: the Dagster run id of the writer (the holder named to others).
        purpose: what the run writes (shown to a run that is refused), e.g. ``"raw_tweets"``.
        run_finished: ``run_id -> bool``, True when that run is known to be finished (Dagster's
            ``DagsterInstance.get_run_by_id(...).is_finished``); unknown runs count as live.
        ttl_s: lease lifetime without renewal (default :data:`TTL_ENV` or 6 h).
    """

    def __init__(self, lake: Lake, run_id: str, purpose: str, run_finished: Callable[[str], bool] | None = None, ttl_s: float | None = None, clock=time.time):
        self.lake = lake
        self.run_id = run_id
        self.purpose = purpose
        self.run_finished = run_finished or (lambda _run_id: False)
        self.ttl_s = ttl_s if ttl_s is not None else config.number(TTL_ENV)
        self.clock = clock

    def _body(self, now: float, released: bool = False) -> bytes:
        return orjson.dumps({"run_id": self.run_id, "purpose": self.purpose, "acquired_at": now, "expires_at": now + self.ttl_s, "released": released, "pid": os.getpid()})

    def _dead(self, lease: dict, now: float) -> bool:
        if lease.get("released") or float(lease.get("expires_at", 0)) <= now:
            return True
        holder = str(lease.get("run_id", ""))
        try:
            return bool(holder) and self.run_finished(holder)
        except Exception:  # the instance cannot say: the lease counts as live
            return False

    def _conflict(self, day: str, lease: dict) -> LeaseConflict:
        holder = lease.get("run_id", "?")
        return LeaseConflict(
            f"{day} is being written by Dagster run {holder} ({lease.get('purpose', '?')}; lease {self.lake.uri(lease_key(day))} taken "
            f"{_utc(float(lease.get('acquired_at', 0)))} UTC, expires {_utc(float(lease.get('expires_at', 0)))} UTC): run {self.run_id} "
            f"({self.purpose}) writes nothing for {day}. Two runs may not write one day at once; wait for run {holder} to finish "
            "(or terminate it in Dagit), then launch this run again.",
            day,
            lease,
        )

    def acquire_one(self, day: str, wait_s: float = 0.0, poll_s: float = 0.5) -> Lease:
        """Hold ``day``'s lease (take it, take over a dead one, or renew this run's own).

        Args:
            wait_s: how long to wait for a live holder (polling every ``poll_s``) before failing.
        Raises:
            LeaseConflict: another live run holds it (after ``wait_s``).
        """
        cache = (self.lake.url, self.run_id, day)
        with _guard:
            mine = _held.get(cache)
        now = self.clock()
        if mine is not None and mine.expires_at - now > self.ttl_s / 2:
            return mine
        key = lease_key(day)
        deadline = now + wait_s
        for _ in range(MAX_RACES):
            now = self.clock()
            data, etag = self.lake.read_with_etag(key)
            try:
                if data is None:
                    lease = Lease(day, self.run_id, self.lake.put_if_absent(key, self._body(now)), now + self.ttl_s)
                else:
                    record = orjson.loads(data)
                    own = record.get("run_id") == self.run_id and not record.get("released")
                    if not own and not self._dead(record, now):
                        if self.clock() >= deadline:
                            raise self._conflict(day, record)
                        _sleep(poll_s)  # a waiting taker (compliance): bounded by the holder's lease and wait_s
                        continue
                    took_over = None if own or record.get("run_id") in (None, self.run_id) else now
                    lease = Lease(day, self.run_id, self.lake.put_if_match(key, self._body(now), etag), now + self.ttl_s, took_over)
            except PreconditionFailed:
                continue  # another taker wrote between our read and our write: read again
            with _guard:
                _held[cache] = lease
            return lease
        raise LakeError(f"could not take the lease {self.lake.uri(key)}: {MAX_RACES} conditional writes in a row lost to other writers.")

    def acquire(self, days: Iterable[str], wait_s: float = 0.0) -> dict[str, Lease]:
        """Hold the leases of every day of ``days`` (a range: each day, in order), or none.

        Raises:
            LeaseConflict: a day is held by another live run; the leases this call took are released.
        """
        taken: dict[str, Lease] = {}
        with _guard:
            before = {d for (url, run, d) in _held if url == self.lake.url and run == self.run_id}
        try:
            for day in sorted(set(days)):
                taken[day] = self.acquire_one(day, wait_s)
        except LakeError:
            self.release([d for d in taken if d not in before])
            raise
        return taken

    def release(self, days: Iterable[str]) -> None:
        """Release this run's leases of ``days`` (``If-Match`` on the ETag: a lease another run took
        over meanwhile is left alone)."""
        for day in sorted(set(days)):
            with _guard:
                _held.pop((self.lake.url, self.run_id, day), None)
            data, etag = self.lake.read_with_etag(lease_key(day))
            if data is None or orjson.loads(data).get("run_id") != self.run_id:
                continue
            try:
                self.lake.put_if_match(lease_key(day), self._body(self.clock(), released=True), etag)
            except PreconditionFailed:
                pass  # taken over meanwhile: no longer ours to release

    def forget(self) -> None:
        """Drop this process's memory of the run's leases (the lease objects stay as they are)."""
        with _guard:
            for cache in [c for c in _held if c[0] == self.lake.url and c[1] == self.run_id]:
                del _held[cache]


def dagster_run_finished(instance) -> Callable[[str], bool]:
    """``run_id -> bool`` from a Dagster instance: True when the run is finished (success,
    failure, canceled). A run the instance does not know counts as live (its lease's expiry rules)."""

    def finished(run_id: str) -> bool:
        run = instance.get_run_by_id(run_id)
        return run is not None and run.is_finished

    return finished
