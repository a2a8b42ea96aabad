"""Fenced writes of a day's objects: no write without a live lease and the version it expects.

A day's lease (:mod:`tweet_assets.lake.leases`) alone cannot stop a run that was paused past it:
the run checked its lease, then its write was held up (a slow request, SIGSTOP, a long GC), and it
lands after another run took the day over. So every write of a day's object is also conditional on
the object's version (S3 conditional writes; a local lake compares under a lock):

1. The run's lease must be held (cached only up to its renewal point, else renewed:
   :meth:`DayLeases.check`).
2. The expected version is the one the run recorded in its lease for that key (what it wrote there
   last), or, the first time, the version read then, under that held lease: ``If-Match: <ETag>``,
   or ``If-None-Match: *`` when there was none. A paused run's later write fails its condition as
   soon as the new holder has written the object.
3. The write carries the run's id (``x-amz-meta-run-id``) and a write id.

What a conditional write alone cannot do: fence a stale writer whose condition still matches
because the new holder has not written that object yet. Its write lands. The rule that settles it:
**a run holding a live lease owns every version of its day's objects; a change it did not make is a
stale write.** So when the live holder's own conditional write fails, it renews its lease (forced):

- the lease is still its own: the object it finds was written by a run whose lease had lapsed
  (named by its ``x-amz-meta-run-id``): it replaces it, conditionally on that object's ETag, and
  logs a warning naming the stale run;
- the lease is lost: this run is the stale one. It fails: "day D was written by run R after this
  run's lease lapsed; nothing of this run was kept for D".

And the stale writer whose write did land learns it right after: its lease check before recording
anything (past its renewal point, so renewed) finds the lease taken and fails, recording no
lineage. The final version of each object the live holder writes is therefore always its own. An
object the live holder never writes (a run of ``raw_tweets`` alone; an empty day, which stores no
object) is not guarded this way: a stale write to it is refused by every reader instead, because
it is not the version the day's lineage records (:func:`tweet_assets.lake.lineage.input_problem`).
"""

from __future__ import annotations

from typing import Callable

from tweet_assets.lake.leases import DayLeases, Lease, LeaseLost
from tweet_assets.lake.store import RUN_ID_META, WRITE_ID_META, Lake, LakeError, ObjectChanged, PreconditionFailed, Written, new_write_id

#: Stale writes replaced in a row before giving up (each one: another lapsed run's write landed).
MAX_REPLACEMENTS = 8


def expected_version(lake: Lake, lease: Lease, key: str, log=None) -> str | None:
    """The version of ``key`` this run expects (an ETag, None for no object): the one recorded in
    its lease, else the one there now (read under the held lease, then recorded). An object written
    by another run after this run took the day is a stale write: a warning names that run."""
    if key in lease.versions:
        return lease.versions[key]
    current = lake.head(key)
    if current is not None and current.run_id and current.run_id != lease.run_id and current.modified > lease.taken_at and log is not None:
        log.warning(_stale(lake, key, current.run_id, lease))
    lease.versions[key] = current.etag if current is not None else None
    return lease.versions[key]


def _stale(lake: Lake, key: str, writer: str | None, lease: Lease) -> str:
    return (
        f"{lake.uri(key)} holds a stale write by run {writer or '(unknown)'}: it landed after that run's lease of {lease.day} lapsed, "
        f"while run {lease.run_id} holds the day. Run {lease.run_id} replaces it with its own."
    )


def store(lake: Lake, leases: DayLeases, day: str, key: str, write: Callable[[object, dict], Written], log=None) -> Written:
    """Store one object of ``day`` at ``key`` of ``lake`` for ``leases``' run, fenced (module doc):
    ``write(expect, meta)`` performs the conditional write (``expect``: the ETag the object must
    have, None for none; ``meta``: the run and write ids to store with it) and returns what the
    store answered.

    Returns: the write's answer (its ETag, bytes).
    Raises:
        LeaseLost: this run's lease of ``day`` was taken over (before the write, when its condition
            failed, or found right after it landed): nothing of this run is kept for ``day``.
        ObjectChanged: an input version the write copies from was replaced (the caller names it).
        LakeError: the write failed otherwise.
    """
    lease = leases.check(day)
    expect = expected_version(lake, lease, key, log)
    write_id = new_write_id()
    meta = {RUN_ID_META: leases.run_id, WRITE_ID_META: write_id}
    for _ in range(MAX_REPLACEMENTS):
        try:
            written = write(expect, meta)
            break
        except PreconditionFailed as refused:
            current = lake.head(key)
            if current is not None and current.write_id == write_id:  # this very write landed; its answer was lost and a retry refused
                written = Written(current.etag, current.size)
                break
            writer = current.run_id if current is not None else None
            try:
                lease = leases.check(day, force=True)
            except LeaseLost as lost:
                by = writer if writer and writer != leases.run_id else lost.holder.get("run_id", "?")
                raise LeaseLost(
                    f"{day} was written by run {by} after this run's lease lapsed; nothing of this run was kept for {day} "
                    f"({lake.uri(key)} is not the version run {leases.run_id} expected): {lost.why or lost}.",
                    day,
                    lost.holder,
                    lost.why,
                ) from refused
            if log is not None:
                if writer == leases.run_id:
                    log.info(f"{lake.uri(key)}: replacing this run's own earlier write (a retried step)")
                else:
                    log.warning(_stale(lake, key, writer, lease))
            expect = current.etag if current is not None else None
        except ObjectChanged:
            raise
        except LakeError as failed:
            try:
                leases.check(day, force=True)
            except LeaseLost as lost:
                raise LeaseLost(f"{lost} (Its write of {lake.uri(key)} failed: {failed})", day, lost.holder, lost.why) from failed
            raise
    else:
        raise LakeError(f"could not store {lake.uri(key)}: {MAX_REPLACEMENTS} stale writes of other runs replaced in a row; run this again.")
    lease.versions[key] = written.etag
    try:
        leases.check(day)
    except LeaseLost as lost:
        holder = lost.holder.get("run_id", "?")
        raise LeaseLost(
            f"run {leases.run_id}'s write of {lake.uri(key)} landed after its lease of {day} lapsed: a stale write, which run {holder} "
            f"replaces; nothing of this run is kept for {day}: {lost.why or lost}.",
            day,
            lost.holder,
            lost.why,
        ) from None
    return written
