"""Day leases: one writer per UTC day of the lake at a time, across the three zones.

A run that writes any zone of a day (``raw_tweets``, ``clean_tweets``, ``tweets``; the compliance
job's rewrites) first holds that day's lease, one small JSON object per day::

    <lake>/clean_tweets/_leases/dt=YYYY-MM-DD.json
    {"run_id": "...", "purpose": "raw_tweets", "ttl_s": 21600, "released": false,
     "previous": ["<run that held it before>", ...], "versions": {"<key>": "<ETag>", ...}, ...}

(under ``clean_tweets/`` like the compliance ledger, so the pipeline's IAM policy covers it; the
``_`` keeps it out of Hive-style readings). It is taken with a conditional PUT: ``If-None-Match: *``
when there is none, ``If-Match`` on the ETag read to take over a dead one, renew or release
(S3 User Guide, "conditional writes"; a local lake emulates them with a lock file and a content
hash: :meth:`tweet_assets.lake.store.Lake.put_if_match`). Of two runs racing for a day exactly one
wins; the other gets :class:`LeaseConflict` naming the holder run.

Lifetime (#36 point 2):

- **Renewed by a heartbeat** (:data:`HEARTBEAT_ENV`, default a sixth of :data:`TTL_ENV`): a thread of
  the run's process renews every lease the run holds while any of its steps runs, waits (a
  rate-limit reset) or uploads. A renewal is ``If-Match`` on the ETag this run stored last, never a
  fresh take: a run whose lease was taken over meanwhile learns it there (:class:`LeaseLost`, naming
  the other run), even if the other run has finished and released it.
- **Never trusted past its renewal point**: a cached lease counts as held only until one heartbeat
  interval after the request that stored it was sent (this process's monotonic clock, so a stopped
  process knows time passed); a step boundary or a write past that point renews it first.
- **Expiry is judged by the storage's clock**: another run may take a lease over when the storage's
  time of its read (S3's ``Date`` header, a local lake's file-system clock) is at least ``ttl_s`` plus
  the clock's resolution after the lease object's ``Last-Modified`` (mtime). Host clocks never
  decide, so skew between hosts does not matter; only the rate of the holder's clock does.
- **Previous holders are kept** (``previous``, the last :data:`HISTORY`): a run that finds itself
  there has lost the day, also in a step that starts in a new process.

A lease is dead, and may be taken over, when it is released, when it expired, or when the holder
run is finished according to the Dagster instance (``run_finished``). A range (a backfill of many
days) takes every day's lease, in day order, before writing; if one day is held, the days taken by
that call are released again and nothing is written. The lease also records, per object key of the
day, the version the run expects to find (``versions``: :mod:`tweet_assets.lake.fencing`).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Iterable

import orjson

from tweet_assets import config
from tweet_assets.lake.store import Lake, LakeError, PreconditionFailed, Record

logger = logging.getLogger(__name__)

LEASE_PREFIX = "clean_tweets/_leases"
#: Seconds a lease lives without renewal (the heartbeat renews it). Env override.
TTL_ENV = "TWEET_ASSETS_LEASE_TTL_S"
#: Seconds between renewals (default a sixth of the TTL; at most a third: config.RULES).
HEARTBEAT_ENV = "TWEET_ASSETS_LEASE_HEARTBEAT_S"
#: Seconds a waiting taker (the compliance job) waits for a live holder before failing.
WAIT_ENV = "TWEET_ASSETS_LEASE_WAIT_S"
#: Conditional-write races lost in a row before giving up (each loss means another writer progressed).
MAX_RACES = 50
#: Previous holders kept in a lease record.
HISTORY = 16


class LeaseConflict(LakeError):
    """The day is leased by another live run; ``holder`` is its lease record (``run_id``, ``purpose``,
    ``acquired_at``, ``expires_at``)."""

    def __init__(self, message: str, day: str, holder: dict):
        super().__init__(message)
        self.day = day
        self.holder = holder


class LeaseLost(LakeError):
    """This run held the day's lease and lost it: its lease lapsed (it was not renewed in time: the
    run was stopped, or its requests were held up) and another run took the day over. ``holder`` is
    the lease record now (``run_id``: the other run). The run must stop writing the day."""

    def __init__(self, message: str, day: str, holder: dict, why: str = ""):
        super().__init__(message)
        self.day = day
        self.holder = holder
        #: how it was lost, for a caller's own message: "its lease was not renewed within ... and run R took the day over (lease ...)"
        self.why = why


@dataclass(eq=False)
class Lease:
    """A held lease: the day, the holder run, the lease object's ETag, when the request that last
    stored it was sent (``renewed_mono``, this process's ``time.monotonic()``), when this run took it
    (``taken_at``, the storage's clock, Unix s) and, when it was taken over from another run's lease,
    when and from whom (``took_over_at``, storage clock: what that run left half-written before then
    is provably dead). ``versions``: the version (ETag, None for absent) this run expects at each key
    of the day it writes (tweet_assets.lake.fencing). ``lock``: held while the lease object is
    renewed or released, so a renewal never stores a lease this run has released (``released``)."""

    day: str
    run_id: str
    etag: str
    renewed_mono: float
    taken_at: float
    took_over_at: float | None = None
    took_over_from: str | None = None
    acquired_at: float = 0.0
    previous: list = field(default_factory=list)
    versions: dict = field(default_factory=dict)
    owner: "DayLeases | None" = field(default=None, repr=False)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    released: bool = False


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
_lost: dict[tuple[str, str, str], "LeaseLost"] = {}  # leases this process found lost
_beats: dict[tuple[str, str], "_Heartbeat"] = {}  # (lake url, run id) -> its heartbeat thread
_guard = threading.RLock()


class DayLeases:
    """Take, renew and release day leases for run ``run_id`` in ``lake``.

    Args:
        lake: the lake the days are written to.
        run_id: the Dagster run id of the writer (the holder named to others).
        purpose: what the run writes (shown to a run that is refused), e.g. ``"raw_tweets"``.
        run_finished: ``run_id -> bool``, True when that run is known to be finished (Dagster's
            ``DagsterInstance.get_run_by_id(...).is_finished``); unknown runs count as live.
        ttl_s: lease lifetime without renewal (default :data:`TTL_ENV` or 6 h).
        heartbeat_s: seconds between renewals (default :data:`HEARTBEAT_ENV`, else ``ttl_s / 6``;
            never more than ``ttl_s / 3``).
        clock: a monotonic clock (seconds), for the holder's own view of its lease.
    Raises:
        tweet_assets.config.SettingError: :data:`TTL_ENV` or :data:`HEARTBEAT_ENV` is not valid.
    """

    def __init__(
        self,
        lake: Lake,
        run_id: str,
        purpose: str,
        run_finished: Callable[[str], bool] | None = None,
        ttl_s: float | None = None,
        heartbeat_s: float | None = None,
        clock=time.monotonic,
    ):
        self.lake = lake
        self.run_id = run_id
        self.purpose = purpose
        self.run_finished = run_finished or (lambda _run_id: False)
        self.ttl_s = float(ttl_s if ttl_s is not None else config.number(TTL_ENV))
        beat = heartbeat_s if heartbeat_s is not None else config.number(HEARTBEAT_ENV)
        self.heartbeat_s = float(beat) if beat is not None else self.ttl_s / 6
        if self.ttl_s > 0:
            self.heartbeat_s = min(self.heartbeat_s, self.ttl_s / 3)
        self.clock = clock

    # --- the record
    def _body(self, lease: Lease | None, released: bool = False, previous: list | None = None, versions: dict | None = None) -> bytes:
        now = time.time()
        return orjson.dumps(
            {
                "run_id": self.run_id,
                "purpose": self.purpose,
                "acquired_at": lease.acquired_at if lease else now,  # (a release keeps no take time: it is over)
                "renewed_at": now,
                "expires_at": now + self.ttl_s,  # by the writer's clock: informational; takers judge by the storage's
                "ttl_s": self.ttl_s,
                "released": released,
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "previous": list(lease.previous if lease else previous or []),
                "versions": dict(lease.versions if lease else versions or {}),
            }
        )

    def _dead(self, record: dict, read: Record) -> bool:
        if record.get("released"):
            return True
        ttl = float(record.get("ttl_s", float(record.get("expires_at", 0)) - float(record.get("acquired_at", 0))))
        if read.modified is not None and read.now - read.modified >= ttl + self.lake.clock_resolution_s:
            return True  # expired by the storage's clock
        holder = str(record.get("run_id", ""))
        try:
            return bool(holder) and self.run_finished(holder)
        except Exception:  # the instance cannot say: the lease counts as live
            return False

    def _expires(self, record: dict, read: Record | None) -> str:
        if read is not None and read.modified is not None:
            return _utc(read.modified + float(record.get("ttl_s", 0) or 0))
        return _utc(float(record.get("expires_at", 0)))

    def _conflict(self, day: str, lease: dict, read: Record | None = None, waited_s: float = 0.0) -> LeaseConflict:
        holder = lease.get("run_id", "?")
        waited = f"; this run waited {waited_s:g} s for run {holder} to finish ({WAIT_ENV})" if waited_s > 0 else ""
        return LeaseConflict(
            f"{day} is being written by Dagster run {holder} ({lease.get('purpose', '?')}; lease {self.lake.uri(lease_key(day))} taken "
            f"{_utc(float(lease.get('acquired_at', 0)))} UTC, expires {self._expires(lease, read)} UTC{waited}): run {self.run_id} "
            f"({self.purpose}) writes nothing for {day}. Two runs may not write one day at once; wait for run {holder} to finish "
            f"(or terminate it in Dagit), then launch this run again{f', or raise {WAIT_ENV}' if waited_s > 0 else ''}.",
            day,
            lease,
        )

    def _lost_error(self, day: str, record: dict, read: Record | None) -> LeaseLost:
        holder = record.get("run_id", "?")
        state = "has finished with it" if record.get("released") else f"holds it ({record.get('purpose', '?')})"
        since = f" since {_utc(read.modified)} UTC" if read is not None and read.modified is not None else ""
        done = " and has finished with it" if record.get("released") else ""
        why = (
            f"its lease was not renewed within {self.ttl_s:g} s ({TTL_ENV}: the run was stopped, or its requests were held up) "
            f"and run {holder} took the day over{done} (lease {self.lake.uri(lease_key(day))})"
        )
        lost = LeaseLost(
            f"run {self.run_id} lost its lease of {day} to run {holder}, which {state}{since}: {why}. Run {self.run_id} stops here "
            f"and writes nothing more for {day}; the day is run {holder}'s.",
            day,
            record,
            why,
        )
        with _guard:
            _lost[(self.lake.url, self.run_id, day)] = lost
            _held.pop((self.lake.url, self.run_id, day), None)
        return lost

    def _read(self, day: str) -> tuple[dict | None, Record]:
        read = self.lake.read_record(lease_key(day))
        return (orjson.loads(read.data) if read.data is not None else None), read

    # --- take
    def acquire_one(self, day: str, wait_s: float = 0.0, poll_s: float = 0.5) -> Lease:
        """Hold ``day``'s lease: take it, take over a dead one, or go on with this run's own
        (renewed when past its renewal point).

        Args:
            wait_s: how long (s, this lease's ``clock``) to wait for a live holder, polling every
                ``poll_s``, before failing; the compliance job passes :data:`WAIT_ENV`.
        Raises:
            LeaseConflict: another live run still holds it when ``wait_s`` has passed (the message
                says how long it waited and names :data:`WAIT_ENV`).
            LeaseLost: this run held it and another run took it over.
            LakeError: :data:`MAX_RACES` conditional writes in a row lost to other takers.
        """
        cache = (self.lake.url, self.run_id, day)
        with _guard:
            lost = _lost.get(cache)
            mine = _held.get(cache)
        if lost is not None:
            raise lost
        if mine is not None:
            return self.check(day)
        key = lease_key(day)
        deadline = self.clock() + wait_s
        races = 0  # conditional writes lost in a row; a poll of a live holder is none (it waits until the deadline)
        while True:
            record, read = self._read(day)
            sent = self.clock()
            try:
                if record is None:
                    lease = Lease(day, self.run_id, "", sent, 0.0, acquired_at=time.time(), owner=self)
                    lease.etag, lease.taken_at = self.lake.put_record(key, self._body(lease), None)
                elif record.get("run_id") == self.run_id:  # this run's own, from another step or process
                    lease = Lease(
                        day, self.run_id, "", sent, 0.0, acquired_at=float(record.get("acquired_at", time.time())),
                        previous=list(record.get("previous") or []), versions=dict(record.get("versions") or {}), owner=self,
                    )
                    lease.etag, lease.taken_at = self.lake.put_record(key, self._body(lease), read.etag)
                elif self.run_id in (record.get("previous") or []):
                    raise self._lost_error(day, record, read)  # it was ours, and another run has taken it since
                elif not self._dead(record, read):
                    left = deadline - self.clock()
                    if left <= 0:
                        raise self._conflict(day, record, read, waited_s=wait_s)
                    _sleep(min(poll_s, left))  # a waiting taker (compliance): until wait_s has passed
                    continue
                else:
                    holder = record.get("run_id")
                    previous = ([holder] if holder else []) + [r for r in (record.get("previous") or []) if r != holder][: HISTORY - 1]
                    lease = Lease(day, self.run_id, "", sent, 0.0, acquired_at=time.time(), previous=previous, owner=self)
                    lease.etag, lease.taken_at = self.lake.put_record(key, self._body(lease), read.etag)
                    if holder:
                        lease.took_over_at, lease.took_over_from = lease.taken_at, str(holder)
            except PreconditionFailed:  # another taker wrote between our read and our write: read again
                races += 1
                if races >= MAX_RACES:
                    raise LakeError(f"could not take the lease {self.lake.uri(key)}: {MAX_RACES} conditional writes in a row lost to other writers.") from None
                continue
            with _guard:
                _held[cache] = lease
            self._beat()
            return lease

    def acquire(self, days: Iterable[str], wait_s: float = 0.0) -> dict[str, Lease]:
        """Hold the leases of every day of ``days`` (a range: each day, in order), or none.
        ``wait_s``: how long (s) to wait for live holders, all days together (one deadline: waits
        day after day do not add up).

        Raises:
            LeaseConflict: a day is held by another live run; the leases this call took are released.
            LeaseLost: this run held a day and another run took it over.
        """
        taken: dict[str, Lease] = {}
        with _guard:
            before = {d for (url, run, d) in _held if url == self.lake.url and run == self.run_id}
        deadline = self.clock() + wait_s
        try:
            for day in sorted(set(days)):
                taken[day] = self.acquire_one(day, max(0.0, deadline - self.clock()))
        except LakeError:
            self.release([d for d in taken if d not in before])
            raise
        return taken

    # --- keep
    def check(self, day: str, force: bool = False) -> Lease:
        """This run's lease of ``day``, still held: the cached one while it is before its renewal
        point (one heartbeat interval after its last renewal was sent), otherwise renewed now
        (``force``: renewed now in any case).

        A lease this process does not hold (never taken here, forgotten at a step's end, or
        released by another process of this run) is taken as :meth:`acquire_one` takes it.

        Raises:
            LeaseLost: another run took the day over (named in the message).
            LeaseConflict: this process did not hold it and another live run does.
            LakeError: the lease cannot be renewed (:data:`MAX_RACES` lost races).
        """
        cache = (self.lake.url, self.run_id, day)
        with _guard:
            lost = _lost.get(cache)
            lease = _held.get(cache)
        if lost is not None:
            raise lost
        if lease is None:
            return self.acquire_one(day)
        if not force and self.clock() < lease.renewed_mono + self.heartbeat_s:
            return lease
        renewed = self._renew(lease)
        return renewed if renewed is not None else self.acquire_one(day)  # no longer held here: taken (or found lost) anew

    def _renew(self, lease: Lease) -> Lease | None:
        """Renew ``lease`` (``If-Match`` on the ETag this run stored last); returns it renewed.
        Another process of the same run may have renewed it meanwhile: its ETag is adopted. Anyone
        else's means it is lost.

        A lease this process released, or no longer holds (forgotten; this object replaced by a
        newer take), is not renewed (None): the renewal runs under ``lease.lock``, as
        :meth:`release` does, so a renewal the heartbeat had in hand never stores a released lease
        again. One that another process of this run released is marked ``released``, forgotten
        here, and None is returned.

        Raises:
            LeaseLost: another run holds the day now (also when found by another thread meanwhile).
            LakeError: :data:`MAX_RACES` conditional writes in a row lost to other writers.
        """
        key = lease_key(lease.day)
        cache = (self.lake.url, self.run_id, lease.day)
        with lease.lock:
            for _ in range(MAX_RACES):
                with _guard:
                    lost, current = _lost.get(cache), _held.get(cache)
                if lost is not None:  # the heartbeat found it lost while this thread waited for the lock
                    raise lost
                if lease.released or current is not lease:
                    return None
                sent = self.clock()
                try:
                    lease.etag, _ = self.lake.put_record(key, self._body(lease), lease.etag)
                    lease.renewed_mono = sent
                    return lease
                except PreconditionFailed:
                    record, read = self._read(lease.day)
                    if record is not None and record.get("run_id") == self.run_id:
                        if record.get("released"):  # another process of this run finished with the day
                            lease.released = True
                            with _guard:
                                if _held.get(cache) is lease:
                                    del _held[cache]
                            return None
                        lease.etag = read.etag  # another process of this run renewed it
                        for known, etag in (record.get("versions") or {}).items():  # in place: the step thread may be recording one
                            lease.versions.setdefault(known, etag)
                        continue
                    raise self._lost_error(lease.day, record or {"run_id": "?"}, read) from None
        raise LakeError(f"could not renew the lease {self.lake.uri(key)}: {MAX_RACES} conditional writes in a row lost to other writers.")

    # --- who writes
    def holder(self, day: str) -> str | None:
        """The run holding ``day``'s lease now, or None: a lease that is not dead (released, expired
        by the storage's clock, or its run finished by ``run_finished``) holds. One read."""
        record, read = self._read(day)
        if record is None or self._dead(record, read):
            return None
        return str(record.get("run_id") or "?")

    def writer(self, day: str) -> str | None:
        """The run that may still commit files it wrote for ``day``, or None: the lease's run unless
        the lease is released or ``run_finished`` says the run is over. Unlike :meth:`holder`, an
        expired lease still counts: a run paused past its lease (SIGSTOP, a long wait) resumes, and
        when no other run took the day its renewal succeeds and it commits. A run the instance
        cannot ask about counts as writing. One read (the orphan sweep's rule for a day's data files)."""
        record, _ = self._read(day)
        if record is None or record.get("released"):
            return None
        run = str(record.get("run_id") or "?")
        try:
            return None if self.run_finished(run) else run
        except Exception:  # the instance cannot say: the run may still write
            return run

    def holders(self) -> dict[str, str]:
        """``{day: run}`` of every day whose lease is held now (:meth:`holder`): one listing of the
        lease folder and one read per lease object there (one per day ever written)."""
        out = {}
        for key in self.lake.list(f"{LEASE_PREFIX}/"):
            name = key.rsplit("/", 1)[-1]
            if name.startswith("dt=") and name.endswith(".json"):
                run = self.holder(name[len("dt=") : -len(".json")])
                if run is not None:
                    out[name[len("dt=") : -len(".json")]] = run
        return out

    def _beat(self) -> None:
        """Start this run's heartbeat in this process, unless it runs already."""
        key = (self.lake.url, self.run_id)
        with _guard:
            beat = _beats.get(key)
            if beat is None or not beat.is_alive():
                beat = _beats[key] = _Heartbeat(self)
                beat.start()

    # --- give back
    def release(self, days: Iterable[str]) -> None:
        """Release this run's leases of ``days`` (``If-Match`` on the ETag: a lease another run took
        over meanwhile is left alone). Under each held lease's ``lock``: a renewal in flight
        finishes first, and none is stored after (:meth:`_renew`)."""
        for day in sorted(set(days)):
            with _guard:
                lease = _held.pop((self.lake.url, self.run_id, day), None)
            if lease is None:
                self._release(day, None, [], {})
                continue
            with lease.lock:
                lease.released = True
                self._release(day, lease.etag, lease.previous, dict(lease.versions))

    def _release(self, day: str, etag: str | None, previous: list, versions: dict) -> None:
        for _ in range(MAX_RACES):
            if etag is None:
                record, read = self._read(day)
                if record is None or record.get("run_id") != self.run_id:
                    return
                etag, previous, versions = read.etag, list(record.get("previous") or []), dict(record.get("versions") or {})
            try:
                self.lake.put_record(lease_key(day), self._body(None, released=True, previous=previous, versions=versions), etag)
                return
            except PreconditionFailed:
                etag = None  # read again: another process of this run, or taken over (left alone)

    def forget(self) -> None:
        """Drop this process's memory of the run's leases and stop its heartbeat (the lease objects
        stay as they are; a later step re-reads them)."""
        with _guard:
            for cache in [c for c in _held if c[0] == self.lake.url and c[1] == self.run_id]:
                del _held[cache]
            beat = _beats.pop((self.lake.url, self.run_id), None)
        if beat is not None:
            beat.stop.set()


def forget_run(run_id: str) -> None:
    """The end of a step or run in this process (the IO manager's teardown): forget the run's
    cached leases, the leases it found lost, and stop its heartbeats. The lease objects stay; a
    later step renews them (and finds a lost one lost again: the record names the run in
    ``previous``)."""
    with _guard:
        for cache in [c for c in _held if c[1] == run_id]:
            del _held[cache]
        for cache in [c for c in _lost if c[1] == run_id]:
            del _lost[cache]
        beats = [_beats.pop(k) for k in [k for k in _beats if k[1] == run_id]]
    for beat in beats:
        beat.stop.set()


def lost_lease(lake_url: str, run_id: str, days: Iterable[str] | None = None) -> LeaseLost | None:
    """A lease of ``days`` (default: any) of ``run_id`` in the lake at ``lake_url`` that this process
    found lost (by its heartbeat or a check), or None. No request: cheap enough per page fetched."""
    wanted = None if days is None else set(days)
    with _guard:
        for (url, run, day), lost in _lost.items():
            if url == lake_url and run == run_id and (wanted is None or day in wanted):
                return lost
    return None


class _Heartbeat(threading.Thread):
    """Renews every lease one run holds in this process (through one lake) when it reaches its
    renewal point; stops when the run holds none here any more or is told to. A renewal that finds
    the lease taken over records :class:`LeaseLost` (raised at the run's next check); one that
    cannot reach the storage is tried again a quarter interval later, and logged (a warning once per
    problem, an info line when renewals get through again)."""

    def __init__(self, leases: DayLeases):
        super().__init__(name=f"lease-heartbeat-{leases.run_id[:8]}", daemon=True)
        self.leases = leases
        self.key = (leases.lake.url, leases.run_id)
        self.stop = threading.Event()
        self.problem: str | None = None  # the last renewal error logged, until a renewal gets through

    def renew(self, lease: Lease) -> bool:
        """Renew one due lease; False when the storage could not be reached (logged once per problem)."""
        try:
            (lease.owner or self.leases)._renew(lease)
        except LeaseLost:
            return True  # recorded in _lost: the run stops at its next check
        except Exception as exc:  # noqa: BLE001 - the storage is unreachable now: tried again soon
            problem = f"{type(exc).__name__}: {exc}"
            if problem != self.problem:
                self.problem = problem
                logger.warning(
                    "run %s: the lease heartbeat could not renew %s (tried again every %.3g s; the lease lapses %g s after its "
                    "last renewal, %s): %s", self.leases.run_id, self.leases.lake.uri(lease_key(lease.day)), max(self.leases.heartbeat_s, 0.01) / 4,
                    self.leases.ttl_s, TTL_ENV, problem,
                )
            return False
        if self.problem is not None:
            logger.info("run %s: the lease heartbeat renews again (after %s)", self.leases.run_id, self.problem)
            self.problem = None
        return True

    def run(self) -> None:
        interval = max(self.leases.heartbeat_s, 0.01)
        while not self.stop.is_set():
            with _guard:
                held = [lease for (url, run, _), lease in _held.items() if (url, run) == self.key]
                if not held:
                    if _beats.get(self.key) is self:
                        del _beats[self.key]
                    return
            now = self.leases.clock()
            due = [lease for lease in held if now >= lease.renewed_mono + interval]
            if not due:
                self.stop.wait(min(lease.renewed_mono + interval for lease in held) - now)
                continue
            for lease in due:
                if self.stop.is_set():
                    return
                if not self.renew(lease):
                    self.stop.wait(interval / 4)


def dagster_run_finished(instance) -> Callable[[str], bool]:
    """``run_id -> bool`` from a Dagster instance: True when the run is finished (success,
    failure, canceled). A run the instance does not know counts as live (its lease's expiry rules)."""

    def finished(run_id: str) -> bool:
        run = instance.get_run_by_id(run_id)
        return run is not None and run.is_finished

    return finished
