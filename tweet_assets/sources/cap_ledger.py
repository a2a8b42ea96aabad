"""The cap reservation ledger: the posts each running run expects to read, in one small object of
the lake, so runs of several collections at once never each see the whole remainder of X's post
cap (#38 point 3).

One JSON object, shared by every collection of the lake (they share one X project)::

    <lake>/clean_tweets/_x_api_cap/reservations.json
    {"reservations": [{"run_id": "...", "collection": "brand", "posts": 4210, "first": "2026-11-01",
                       "last": "2026-11-07", "reserved_at": 1.7e9, "expires_at": 1.7e9}]}

(under ``clean_tweets/`` like the day leases, so the pipeline's IAM policy covers it). Every change
is a read-modify-write made conditional on what was read, as the day leases
(:mod:`tweet_assets.lake.leases`): ``If-None-Match: *`` when there is no ledger, ``If-Match`` on the
ETag read otherwise (S3 User Guide, "conditional writes"; a local lake emulates them under its lock
file). A write that loses (another run changed the ledger since it was read) is read and decided
again, so of two runs deciding at once the second always sees the first's reservation.

A reservation is dead, and dropped at the next write, when its run is finished according to the
Dagster instance (``run_finished``) or when it expired: it lives ``TWEET_ASSETS_LEASE_TTL_S`` (6 h)
and is renewed as the run reads pages (:meth:`CapLedger.renew`, past half its life). A live run's
reservation counts in full until it ends, even for the posts it has already read (which X's usage
counts too): the remainder others see errs on the safe side while it runs.

Expiry is judged by the **storage's clock**, as the day leases do: ``reserved_at``/``expires_at``
are the storage's time of the read that preceded the write (S3's ``Date`` header, a local lake's
file-system clock: :meth:`tweet_assets.lake.store.Lake.read_record`), and a reservation is dead
only once the storage's time of a later read is past ``expires_at`` by more than the clock's
resolution. Host clocks never decide, so a host whose clock runs ahead cannot drop another run's
live reservation. When to renew is judged by this process's monotonic clock.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable

import orjson

from tweet_assets import config
from tweet_assets.lake.store import Lake, LakeError, PreconditionFailed

LEDGER_KEY = "clean_tweets/_x_api_cap/reservations.json"
#: Conditional writes lost in a row before giving up (each loss means another run progressed).
MAX_RACES = 50


@dataclass(frozen=True)
class Reservation:
    """One run's reservation: ``posts`` expected over ``first``…``last`` (``YYYY-MM-DD``) by
    ``collection``; ``reserved_at``/``expires_at`` Unix seconds by the storage's clock."""

    run_id: str
    collection: str
    posts: int
    first: str
    last: str
    reserved_at: float = 0.0
    expires_at: float = 0.0

    def describe(self) -> str:
        """``run R (collection brand, 2026-11-01…2026-11-07: 4,210 posts)``."""
        days = self.first if self.first == self.last else f"{self.first}…{self.last}"
        return f"run {self.run_id} (collection {self.collection}, {days}: {self.posts:,} posts)"


class CapLedger:
    """Reserve, renew and release a run's expected posts in ``lake``'s ledger.

    Args:
        lake: the lake (its root: every collection's runs share the ledger).
        run_finished: ``run_id -> bool``, True when that run is finished (Dagster's instance,
            :func:`tweet_assets.lake.leases.dagster_run_finished`); unknown runs count as live.
        ttl_s: a reservation's life without renewal, seconds (default ``TWEET_ASSETS_LEASE_TTL_S``).
        monotonic: this process's monotonic clock, seconds (when to renew; tests inject one).
    """

    def __init__(self, lake: Lake, run_finished: Callable[[str], bool] | None = None, ttl_s: float | None = None, monotonic: Callable[[], float] = time.monotonic):
        self.lake = lake
        self.run_finished = run_finished or (lambda _run_id: False)
        self.ttl_s = ttl_s if ttl_s is not None else config.number("TWEET_ASSETS_LEASE_TTL_S")
        self.monotonic = monotonic
        self._written: dict[str, float] = {}  # run_id -> monotonic time its reservation was last written by this ledger

    def _read(self) -> tuple[list[Reservation], str | None, float]:
        """``(reservations, ETag, the storage's time of the read)``; ``([], None, time)`` without a ledger."""
        record = self.lake.read_record(LEDGER_KEY)
        if record.data is None:
            return [], None, record.now
        try:
            entries = orjson.loads(record.data).get("reservations") or []
            return [Reservation(**entry) for entry in entries], record.etag, record.now
        except (orjson.JSONDecodeError, AttributeError, TypeError) as exc:
            raise LakeError(f"the cap ledger {self.lake.uri(LEDGER_KEY)} is not a reservations object ({exc}): remove it (it holds only running runs' reservations) and run again.") from None

    def _alive(self, reservation: Reservation, now: float) -> bool:
        """Live at the storage's time ``now``: not past its expiry by more than the storage clock's
        resolution, and its run not known to be finished."""
        if now >= reservation.expires_at + self.lake.clock_resolution_s:
            return False
        try:
            return not self.run_finished(reservation.run_id)
        except Exception:  # the instance cannot say: the reservation counts as live
            return True

    def live(self) -> list[Reservation]:
        """The live reservations (dead ones are left for the next write to drop)."""
        entries, _, now = self._read()
        return [r for r in entries if self._alive(r, now)]

    def _write(self, reservations: list[Reservation], etag: str | None) -> None:
        body = orjson.dumps({"reservations": [asdict(r) for r in reservations]}, option=orjson.OPT_INDENT_2)
        if etag is None:
            self.lake.put_if_absent(LEDGER_KEY, body)
        else:
            self.lake.put_if_match(LEDGER_KEY, body, etag)

    def _change(self, change: Callable[[list[Reservation], float], list[Reservation] | None]) -> list[Reservation] | None:
        """Read the ledger, apply ``change(live reservations of other runs and this one, the
        storage's time of the read)`` and write its result conditionally, again on a lost race;
        None from ``change``: write nothing."""
        for _ in range(MAX_RACES):
            entries, etag, now = self._read()
            wanted = change([r for r in entries if self._alive(r, now)], now)
            if wanted is None:
                return None
            try:
                self._write(wanted, etag)
            except PreconditionFailed:
                continue  # another run wrote between our read and our write: decide again
            return wanted
        raise LakeError(f"could not write the cap ledger {self.lake.uri(LEDGER_KEY)}: {MAX_RACES} conditional writes in a row lost to other runs.")

    def reserve(self, reservation: Reservation, refusal: Callable[[list[Reservation]], str | None]) -> tuple[Reservation | None, str | None]:
        """Add ``reservation`` (replacing this run's earlier one) unless ``refusal(others)``, given
        the other runs' live reservations as read in the same conditional read-modify-write, says
        why not. ``refusal`` is called after the ledger was read and before it is written (again
        after a lost race), so what it reads then (the project's usage) is newer than the read.

        Returns ``(the reservation as written, with its times, None)``, or ``(None, why not)``.

        Raises:
            LakeError: the ledger cannot be read or written.
        """
        outcome: list = [None, None]
        started = self.monotonic()

        def add(live: list[Reservation], now: float) -> list[Reservation] | None:
            others = [r for r in live if r.run_id != reservation.run_id]
            outcome[:] = [None, refusal(others)]  # decided again after a lost race
            if outcome[1]:
                return None
            outcome[0] = Reservation(**{**asdict(reservation), "reserved_at": now, "expires_at": now + self.ttl_s})
            return [*others, outcome[0]]

        self._change(add)
        if outcome[0] is not None:
            self._written[reservation.run_id] = started
        return outcome[0], outcome[1]

    def renew(self, reservation: Reservation) -> Reservation:
        """Extend ``reservation``'s life (from the storage's time of the renewal's read) once half
        of it has passed since this ledger last wrote it (this process's monotonic clock; a
        reservation it never wrote is renewed at once); else return it as is."""
        written = self._written.get(reservation.run_id)
        if written is not None and self.monotonic() - written < self.ttl_s / 2:
            return reservation
        started = self.monotonic()
        renewed: list = [reservation]

        def extend(live: list[Reservation], now: float) -> list[Reservation]:
            renewed[0] = Reservation(**{**asdict(reservation), "expires_at": now + self.ttl_s})
            return [*(r for r in live if r.run_id != reservation.run_id), renewed[0]]

        self._change(extend)
        self._written[reservation.run_id] = started
        return renewed[0]

    def release(self, run_id: str) -> None:
        """Remove ``run_id``'s reservation (nothing to write when it has none)."""
        self._written.pop(run_id, None)

        def drop(live: list[Reservation], _now: float) -> list[Reservation] | None:
            kept = [r for r in live if r.run_id != run_id]
            return kept if len(kept) != len(live) else None

        self._change(drop)
