"""Compliance on an Iceberg table: the ledger's posts leave the table and the storage.

:func:`remove_posts` does, for one collection's Iceberg table:

1. finds the affected days: those whose rows hold a ledger id or retweet one, and those the ledger's
   ``created_at`` names that the table holds (as the Hive path does);
2. holds their day leases, waiting for a run writing one of them (a backfill) to finish
   (``TWEET_ASSETS_LEASE_WAIT_S``): what that run commits is then the table the delete reads; the
   affected days are found again once held (that run may have committed a retweet of a removed
   post on another day), until no new one appears;
3. removes the posts and their retweets from every affected day in **one commit** (row-level
   copy-on-write deletes, :meth:`~tweet_assets.tables.iceberg.IcebergTable.remove_ids`), and runs
   ``per_day`` for each (the clean and raw zones, rewritten as today) while the leases are held;
4. expires every snapshot older than ``TWEET_ASSETS_ICEBERG_SNAPSHOT_RETENTION`` and deletes the
   files only they reached, then sweeps orphans older than ``TWEET_ASSETS_ICEBERG_ORPHAN_GRACE_S``
   (:mod:`.maintenance`): with the default retention (0 h) no file holding a removed post is left.
   The sweep keeps the unreferenced files a live writer may still commit (a day whose lease a run
   holds: a backfill's files written before its one commit); they hold no removed post that the
   table could show (``clean_tweets`` drops ledger posts), and a later sweep removes them if they
   stay unreferenced.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

import pyarrow as pa

from tweet_assets.lake.leases import DayLeases
from tweet_assets.tables.base import Removal
from tweet_assets.tables.iceberg import IcebergTable, renew_leases
from tweet_assets.tables.maintenance import Expiry, Sweep, expire_snapshots, remove_orphan_files


@dataclass
class PostsRemoved:
    """What :func:`remove_posts` did: the affected days, the removal (ids by day, files rewritten),
    the expiry and the orphan sweep (files deleted)."""

    days: list[str] = field(default_factory=list)
    removal: Removal = field(default_factory=Removal)
    expiry: Expiry = field(default_factory=Expiry)
    sweep: Sweep = field(default_factory=Sweep)

    @property
    def files_deleted(self) -> int:
        """Files physically deleted: those only expired snapshots reached, and orphans."""
        return self.expiry.deleted + self.sweep.deleted


def remove_posts(
    table: IcebergTable,
    ids: pa.Array,
    named_days: Iterable[str],
    leases: DayLeases,
    wait_s: float,
    per_day: Callable[[str], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> PostsRemoved:
    """Remove the posts ``ids`` (int64) and their retweets from ``table`` and from storage (see
    the module docstring); ``named_days``: the days the ledger's ``created_at`` names.

    Raises:
        LeaseConflict: a run kept an affected day longer than ``wait_s``.
        TableCommitError: the delete lost to other writers every time.
    """
    out = PostsRemoved()
    named = set(named_days)
    held: set[str] = set()
    deadline = leases.clock() + wait_s  # one wait for every pass: they do not add up
    try:
        # hold the affected days, then look again: a run that held one may have committed the
        # posts (or retweets of them) on days not affected before; until no new day appears
        while True:
            affected = set(table.days_holding(ids)) | (named & set(table.days()))
            if affected <= held:
                break
            leases.acquire(sorted(affected - held), wait_s=max(0.0, deadline - leases.clock()))
            held |= affected
        out.days = sorted(held)
        if out.days:
            out.removal = table.remove_ids(ids, out.days, before_commit=lambda: renew_leases(leases, out.days), log=log, run_id=leases.run_id)
            for day in out.days:
                if per_day is not None:
                    per_day(day)
    finally:
        leases.release(sorted(held))
    loaded = table.load()
    if loaded is not None:
        loaded, out.expiry = expire_snapshots(loaded)
        out.sweep = remove_orphan_files(loaded, leases=leases)
    return out
