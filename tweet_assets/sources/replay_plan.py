"""Replay a sparse archive: materialize only the days it holds, nearby days grouped into one run.

A research archive (a user's timeline over years, a topic search over a decade) has posts on a few
hundred days of a span of thousands. One ``--partition-range`` over the span plans and records
three materializations for every calendar day, almost all of them empty. Here the archive's days
are read first (:meth:`ReplaySource.days`: posts per UTC day, no page built), then grouped into
runs of nearby days (:func:`plan_runs`): each run is one single-run backfill of a contiguous
partition range, ``raw_tweets → clean_tweets → s3_parquet`` and their checks, recorded in the
Dagster instance (Dagit shows every run with its range). Days between two runs stay
unmaterialized: Dagster shows them as missing (unknown), not as empty. Days inside a run that hold
no post are materialized as empty days (0 rows, no object stored: :mod:`tweet_assets.lake.empty_days`).

Grouping trades Dagster's fixed cost of a run (creating, planning, launching: about a second here)
against its cost per partition in a run (three materializations and their planned events, ~7 ms
each, bench/README.md): a gap of up to :data:`DEFAULT_MAX_GAP_DAYS` empty days joins two runs.

Entry points: ``tweet-assets replay PATH`` (:func:`replay_archive`, in process, progress printed),
and in Dagit the sensor ``replay_archive_sensor`` (:mod:`tweet_assets.defs.replay.sensor`), which
requests the same runs for the archive at ``TWEET_ASSETS_REPLAY_DIR``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import date
from typing import Callable, Mapping

from tweet_assets.partitions import DAY_FORMAT

#: Empty days allowed between two days with posts in one run (a larger gap starts a new run).
DEFAULT_MAX_GAP_DAYS = 14
#: At most this many partitions in one run (a run's memory and event log stay bounded).
DEFAULT_MAX_RUN_DAYS = 366


@dataclass(frozen=True)
class RunRange:
    """One planned run: the partitions ``start…end`` (inclusive, ``YYYY-MM-DD``, UTC), of which
    ``days_with_posts`` hold ``posts`` posts (as the replay source counts them)."""

    start: str
    end: str
    days_with_posts: int
    posts: int

    @property
    def partitions(self) -> int:
        """Calendar days in the range (partitions the run materializes)."""
        return (date.fromisoformat(self.end) - date.fromisoformat(self.start)).days + 1

    def __str__(self) -> str:
        return f"{self.start}…{self.end}"


def plan_runs(days: Mapping[str, int], max_gap_days: int = DEFAULT_MAX_GAP_DAYS, max_run_days: int = DEFAULT_MAX_RUN_DAYS, first_day: str | None = None) -> list[RunRange]:
    """Group days with posts (``{YYYY-MM-DD: posts}``; days with 0 posts are ignored) into runs.

    Two consecutive days with posts share a run when at most ``max_gap_days`` days without posts
    lie between them and the run stays within ``max_run_days`` partitions. Days before
    ``first_day`` (the first partition) cannot be materialized.

    Raises:
        ValueError: a key is not a ``YYYY-MM-DD`` day, a day precedes ``first_day``, or
            ``max_gap_days`` < 0 / ``max_run_days`` < 1.
    """
    if max_gap_days < 0 or max_run_days < 1:
        raise ValueError(f"max_gap_days must be >= 0 and max_run_days >= 1 (got {max_gap_days}, {max_run_days})")
    found = []
    for key, posts in days.items():
        if not posts:
            continue
        try:
            day = date.fromisoformat(key)
        except (TypeError, ValueError):
            raise ValueError(f"{key!r} is not a YYYY-MM-DD day") from None
        if first_day is not None and key < first_day:
            raise ValueError(f"the archive has posts on {key}, before the first partition {first_day}: set TWEET_ASSETS_START_DATE to {key} or earlier")
        found.append((day, posts))
    found.sort()
    runs: list[RunRange] = []
    group: list[tuple[date, int]] = []
    for day, posts in found:
        if group and ((day - group[-1][0]).days - 1 > max_gap_days or (day - group[0][0]).days + 1 > max_run_days):
            runs.append(_run(group))
            group = []
        group.append((day, posts))
    if group:
        runs.append(_run(group))
    return runs


def _run(group: list[tuple[date, int]]) -> RunRange:
    return RunRange(group[0][0].strftime(DAY_FORMAT), group[-1][0].strftime(DAY_FORMAT), len(group), sum(p for _, p in group))


def archive_days(path: str, log: logging.Logger | None = None) -> dict[str, int]:
    """Posts per UTC day of the twarc2 archive at ``path`` (:meth:`ReplaySource.days`).

    Raises:
        FileNotFoundError: no archive at ``path``.
        ValueError: no line of the archive has a readable ``created_at`` (nothing to date a run by).
    """
    from tweet_assets.sources.replay import ReplaySource

    days = ReplaySource(path=path).days(log or logging.getLogger(__name__))
    if None in days:
        raise ValueError(f"{path}: no page of the archive has a dated post; replay it with --partition-range for the days you choose")
    return dict(days)


@dataclass(frozen=True)
class RunOutcome:
    """What one planned run did: its range, Dagster run id, success, wall seconds."""

    range: RunRange
    run_id: str
    success: bool
    seconds: float


def replay_archive(
    runs: list[RunRange],
    execute: Callable[[RunRange], object],
    progress: Callable[[str], None] = print,
    stop_on_failure: bool = True,
) -> list[RunOutcome]:
    """Run each planned range with ``execute(range)`` (returns Dagster's result: ``run_id``,
    ``success``), printing progress through ``progress``: per run its range, days, posts, time,
    and the totals so far. Stops after the first failed run unless ``stop_on_failure`` is false
    (the ranges not run stay unmaterialized; rerun the command: ranges are independent)."""
    outcomes: list[RunOutcome] = []
    total_posts = sum(r.posts for r in runs)
    done_posts = 0
    started = time.monotonic()
    for number, planned in enumerate(runs, start=1):
        began = time.monotonic()
        result = execute(planned)
        outcome = RunOutcome(planned, getattr(result, "run_id", ""), bool(getattr(result, "success", False)), time.monotonic() - began)
        outcomes.append(outcome)
        done_posts += planned.posts if outcome.success else 0
        progress(
            f"[{number}/{len(runs)}] {planned} ({planned.partitions} partition(s), {planned.days_with_posts} with posts, "
            f"{planned.posts:,} posts): {'ok' if outcome.success else 'FAILED'} in {outcome.seconds:.1f}s, run {outcome.run_id}; "
            f"{done_posts:,} of {total_posts:,} posts in {time.monotonic() - started:.0f}s"
        )
        if not outcome.success and stop_on_failure:
            break
    return outcomes


def execute_range(job, instance) -> Callable[[RunRange], object]:
    """``execute`` for :func:`replay_archive`: ``job`` (a resolved asset job, e.g.
    ``tweets_daily_job``) executed in process over the range as one run (Dagster's partition-range
    tags, as a single-run backfill), recorded in ``instance``; failures are returned, not raised."""
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    def execute(planned: RunRange):
        return job.execute_in_process(
            instance=instance,
            tags={ASSET_PARTITION_RANGE_START_TAG: planned.start, ASSET_PARTITION_RANGE_END_TAG: planned.end, "tweet_assets/replay": "archive"},
            raise_on_error=False,
        )

    return execute


def describe_plan(days: Mapping[str, int], runs: list[RunRange]) -> str:
    """One line: days with posts, posts, span, runs and partitions they materialize."""
    with_posts = sorted(d for d, n in days.items() if n)
    if not with_posts:
        return "the archive holds no dated post: nothing to replay"
    span = (date.fromisoformat(with_posts[-1]) - date.fromisoformat(with_posts[0])).days + 1
    partitions = sum(r.partitions for r in runs)
    return (
        f"{sum(days.values()):,} posts on {len(with_posts)} day(s) over {span:,} days ({with_posts[0]}…{with_posts[-1]}): "
        f"{len(runs)} run(s) materializing {partitions:,} partition(s), {partitions - len(with_posts):,} of them empty; "
        f"the other {span - partitions:,} days stay unmaterialized"
    )

