"""Spend follows intent (#38): the posts a run will read, planned against X's post cap before its
first post request, and what happens when the cap runs out anyway.

X meters the v2 API by **posts read** (``GET /2/usage/tweets``: ``project_cap`` per month,
``project_usage`` so far); past the cap it answers ``429 usage-capped`` until ``cap_reset_day``.

1. **Plan** (:class:`SpendPlan`): a source that reads posts from X says, before reading any, how
   many each day of the run should hold (the counts endpoints, ``granularity=day``) and what the
   usage endpoint reports. Timelines have no counts endpoint: their plan says what it cannot know.
2. **Refuse** (:func:`refusal`): a run whose expected posts exceed ``TWEET_ASSETS_MAX_POSTS_PER_RUN``
   (a collection's ``max_posts_per_run:``), or the cap left minus ``TWEET_ASSETS_CAP_RESERVE``
   (percent of the cap, default 10) minus what other running runs reserved, fails before its first
   post request, in one line naming the numbers, the heaviest days and the setting to change. With
   no cap reported (an enterprise project) only the per-run limit applies, said once in the log.
3. **Reserve** (:class:`~tweet_assets.sources.cap_ledger.CapLedger`): the check and the run's
   reservation are one conditional read-modify-write of the lake's ledger, released when the run's
   fetch ends (:class:`RunBudget`'s exit). The usage is read again inside that step, after the
   ledger was read: a run whose reservation is gone from the ledger read its posts before it
   released, so that reading counts them (a run deciding on a reading older than another run's
   release would count neither its reservation nor its reads); a release between the read and the
   write changes the ledger, so the write loses and the decision is made again.
4. **A cap hit mid-run** (:meth:`RunBudget.landed`): the days the run finished keep their pages (the
   IO manager stores them and records their materializations, its partial-write rule); the day in
   progress, and any after it, are :class:`NotLanded`: storing one fails the step naming that day
   and when the cap resets, so no day is published half-full and the next run starts it again.

``posts_read`` (what the cap was charged for) is recorded per day by the source beside ``posts``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timezone
from typing import Callable, Iterator, Mapping

from tweet_assets import config
from tweet_assets.lake.store import Lake, LakeError
from tweet_assets.lake.values import NotLanded, RawDay, SpooledPages
from tweet_assets.sources.base import SourcePage
from tweet_assets.sources.cap_ledger import CapLedger, Reservation
from tweet_assets.x.problems import UsageCapExceeded, XApiError
from tweet_assets.x.usage import Usage

MAX_POSTS_ENV = "TWEET_ASSETS_MAX_POSTS_PER_RUN"
CAP_RESERVE_ENV = "TWEET_ASSETS_CAP_RESERVE"
#: How many of the heaviest days a refusal names.
HEAVIEST = 3


class BudgetRefused(XApiError):
    """A run refused before its first post request: it would read more posts than a limit allows.
    The message is one line: the numbers, the heaviest days, the setting to change."""


@dataclass(frozen=True)
class SpendPlan:
    """What a run of ``first``…``last`` (``YYYY-MM-DD``, UTC) will read from X.

    Attributes:
        expected: posts per day from the counts endpoints; None when the source cannot count
            (timelines; counts without an app-only bearer token).
        usage: the project's usage (``GET /2/usage/tweets``), or None when it could not be read.
        unknown: what could not be known, one phrase each (said by ``plan`` and logged by the guard).
        endpoints: the counts endpoints asked.
        usage_error: why the usage request failed (after retries, or past the run's rate-limit
            ceiling; not a 403), one line; None when it did not fail.
        counts_error: why the counts requests failed (likewise), one line; None when they did not.
    """

    first: str
    last: str
    expected: Mapping[str, int] | None
    usage: Usage | None = None
    unknown: tuple[str, ...] = ()
    endpoints: tuple[str, ...] = ()
    usage_error: str | None = None
    counts_error: str | None = None

    @property
    def total(self) -> int | None:
        """Expected posts over the run's days (None when unknown)."""
        return None if self.expected is None else sum(self.expected.values())

    def heaviest(self, n: int = HEAVIEST) -> list[tuple[str, int]]:
        """The ``n`` days expected to hold the most posts, most first (days with none left out)."""
        return sorted(((d, p) for d, p in (self.expected or {}).items() if p), key=lambda item: (-item[1], item[0]))[:n]

    @property
    def days(self) -> str:
        return self.first if self.first == self.last else f"{self.first}…{self.last}"


@dataclass(frozen=True)
class Limits:
    """A run's limits: ``max_posts`` (None: no per-run limit) and the setting that set it
    (``setting``, named in a refusal), and the cap reserve in percent of the cap."""

    max_posts: int | None = None
    setting: str = MAX_POSTS_ENV
    reserve_percent: float = field(default_factory=lambda: config.NUMBERS[CAP_RESERVE_ENV].default)


@dataclass(frozen=True)
class Room:
    """The cap's room for one run, in posts: ``cap`` − ``used`` − ``reserve`` − ``reserved``
    (other running runs) = ``left``; ``others`` are those runs."""

    cap: int
    used: int
    reserve: int
    reserved: int
    left: int
    others: tuple[Reservation, ...] = ()


def room(usage: Usage | None, reserve_percent: float, others: list[Reservation] | tuple = ()) -> Room | None:
    """The :class:`Room` the cap leaves, or None when the API reported no cap (or no usage)."""
    if usage is None or usage.project_cap is None or usage.project_usage is None:
        return None
    reserve = math.ceil(usage.project_cap * reserve_percent / 100)
    reserved = sum(r.posts for r in others)
    return Room(usage.project_cap, usage.project_usage, reserve, reserved, usage.project_cap - usage.project_usage - reserve - reserved, tuple(others))


def _weighs(plan: SpendPlan) -> str:
    heavy = plan.heaviest()
    return ("; heaviest days " + ", ".join(f"{d} ({p:,})" for d, p in heavy)) if heavy else ""


def refusal(plan: SpendPlan, limits: Limits, others: list[Reservation] | tuple = (), today: date | None = None) -> str | None:
    """Why a run of ``plan`` may not start (one line), or None when it may.

    Refused when its expected posts exceed ``limits.max_posts``, or the cap's :func:`room` (the cap
    left, minus the reserve and ``others``' reservations); a run of unknown size (timelines, an
    access level without the counts endpoints) only when the cap has no room at all. A run
    expecting no post is never refused. Refused too when a request the check needs failed
    (:func:`_unchecked`): the usage request, or the counts requests under a per-run limit or a cap.
    """
    today = today or datetime.now(timezone.utc).date()
    unchecked = _unchecked(plan, limits)
    if unchecked:
        return unchecked
    total = plan.total
    if total is not None and limits.max_posts is not None and total > limits.max_posts:
        return (
            f"refused before any post was read: {plan.days} is expected to hold {total:,} posts (counts endpoints), more than "
            f"{limits.setting}={limits.max_posts:,}{_weighs(plan)}. Run fewer days at a time "
            f"(TWEET_ASSETS_BACKFILL_PARTITIONS_PER_RUN), or raise {limits.setting}."
        )
    space = room(plan.usage, limits.reserve_percent, others)
    if space is None or total == 0:
        return None
    if total is None and space.left > 0:
        return None
    if total is not None and total <= space.left:
        return None
    held = f", {space.reserved:,} reserved by {'; '.join(r.describe() for r in space.others)}" if space.others else ""
    need = f"is expected to hold {total:,} posts (counts endpoints)" if total is not None else "reads an unknown number of posts (no counts endpoint)"
    return (
        f"refused before any post was read: {plan.days} {need}, more than the cap leaves: project cap {space.cap:,}, used {space.used:,}, "
        f"reserve {space.reserve:,} ({CAP_RESERVE_ENV}={limits.reserve_percent:g}%){held}: {max(space.left, 0):,} left{_weighs(plan)}; "
        f"{plan.usage.resets(today)}. Wait for the reset{' or for those runs to end' if space.others else ''}, run fewer days, or lower {CAP_RESERVE_ENV}."
    )


def _unchecked(plan: SpendPlan, limits: Limits) -> str | None:
    """The refusal of a run whose limits cannot be checked because a request failed: the usage
    request (a cap may apply: every project but an enterprise one has one), or the counts requests
    when a per-run limit is set or the usage reports a cap. None otherwise."""
    cap_applies = plan.usage_error is not None or room(plan.usage, limits.reserve_percent) is not None
    uncounted = plan.counts_error is not None and (limits.max_posts is not None or cap_applies)
    if plan.usage_error is None and not uncounted:
        return None
    counts = f"could not be counted ({plan.counts_error})" if uncounted else ""
    cap = f"the project's post cap could not be read ({plan.usage_error})" if plan.usage_error is not None else ""
    why = f"{counts} and {cap}" if counts and cap else (counts or f": {cap}")
    checks = ([f"{limits.setting}={limits.max_posts:,}"] if uncounted and limits.max_posts is not None else []) + (["the cap left"] if cap_applies else [])
    return (
        f"refused before any post was read: {plan.days}{'' if why.startswith(':') else ' '}{why}, so {' and '.join(checks)} cannot be checked. "
        f"Run again when the X API answers (tweet-assets plan --from {plan.first} --to {plan.last} shows it)."
    )


def plan_report(plan: SpendPlan, limits: Limits, others: list[Reservation] | tuple = (), today: date | None = None) -> dict:
    """``tweet-assets plan``'s answer as plain data (its ``--json``): the days' expected posts,
    the total, the cap, the usage, other runs' reservations, the reserve, what the run would leave,
    when the cap resets, what could not be known, and the refusal a run would get (or None).

    Keys: ``first``, ``last``, ``days`` (``[{day, expected_posts}]``, empty when unknown),
    ``total`` (int or None), ``counts_endpoints``, ``project_cap``, ``project_usage``,
    ``percent_used``, ``reserve`` (posts) and ``reserve_percent``, ``reserved_by_running_runs``
    (``[{run_id, collection, posts, first, last}]``), ``left_after_run`` (posts, None when unknown),
    ``cap_resets_on`` (``YYYY-MM-DD`` or None), ``cap_reset_day``, ``max_posts_per_run`` and its
    ``max_posts_setting``, ``unknown`` (phrases), ``usage_error`` and ``counts_error`` (why those
    requests failed, or None), ``refused`` (one line or None).
    """
    today = today or datetime.now(timezone.utc).date()
    usage = plan.usage or Usage()
    space = room(plan.usage, limits.reserve_percent, others)
    reset = usage.reset_date(today)
    total = plan.total
    return {
        "first": plan.first,
        "last": plan.last,
        "days": [{"day": d, "expected_posts": n} for d, n in sorted((plan.expected or {}).items())],
        "total": total,
        "counts_endpoints": list(plan.endpoints),
        "project_cap": usage.project_cap,
        "project_usage": usage.project_usage,
        "percent_used": None if usage.percent_used is None else round(usage.percent_used, 2),
        "reserve": space.reserve if space else None,
        "reserve_percent": limits.reserve_percent,
        "reserved_by_running_runs": [{"run_id": r.run_id, "collection": r.collection, "posts": r.posts, "first": r.first, "last": r.last} for r in others],
        "left_after_run": (space.left - total) if space is not None and total is not None else None,
        "cap_resets_on": reset.isoformat() if reset else None,
        "cap_reset_day": usage.cap_reset_day,
        "max_posts_per_run": limits.max_posts,
        "max_posts_setting": limits.setting,
        "unknown": list(plan.unknown),
        "usage_error": plan.usage_error,
        "counts_error": plan.counts_error,
        "refused": refusal(plan, limits, others, today),
    }


class RunBudget:
    """One run's spending: its plan, its reservation in the ledger (None when nothing was reserved),
    and the cap hit that stopped it, if one did.

    Use it as a context manager around the fetch (its exit releases the reservation, however the
    fetch ends: a generator's ``finally`` would wait for the generator to be collected), :meth:`pages`
    around the source's pages and :meth:`landed` on the run's spooled days.
    """

    def __init__(self, plan: SpendPlan | None = None, ledger: CapLedger | None = None, reservation: Reservation | None = None):
        self.plan, self.ledger, self.reservation = plan, ledger, reservation
        self.capped: UsageCapExceeded | None = None

    def __enter__(self) -> "RunBudget":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.release()
        except LakeError:
            if exc is None:
                raise
            # the fetch's own error is the one to report; the reservation is dead anyway once Dagster
            # marks the run finished (or at its expiry): never hide the first error behind this one

    def pages(self, pages: Iterator[SourcePage]) -> Iterator[SourcePage]:
        """``pages`` as they come, the reservation renewed on the way and released at their end;
        a ``usage-capped`` refusal ends them (kept in :attr:`capped` for :meth:`landed`)."""
        try:
            for page in pages:
                if self.reservation is not None and self.ledger is not None:
                    self.reservation = self.ledger.renew(self.reservation)
                yield page
        except UsageCapExceeded as exc:
            self.capped = exc
        finally:
            self.release()

    def release(self) -> None:
        """Release the run's reservation (once)."""
        if self.reservation is not None and self.ledger is not None:
            reservation, self.reservation = self.reservation, None
            self.ledger.release(reservation.run_id)

    def landed(self, spooled: dict[str, SpooledPages]) -> dict[str, RawDay]:
        """The run's days to store: all of ``spooled`` when no cap was hit; otherwise the days
        before the day in progress as they are, that day and the later ones as :class:`NotLanded`
        (all days when the source cannot tell which were finished: timelines)."""
        if self.capped is None:
            return spooled
        day = getattr(self.capped, "day", None)
        days = sorted(spooled)
        cut = [d for d in days if day is None or d >= day]
        kept = [d for d in days if d not in cut]
        usage = self.plan.usage if self.plan is not None else None
        reset = usage.resets(datetime.now(timezone.utc).date()) if usage is not None else "see the developer portal's usage page for when the cap resets"
        stopped = f"{cut[0]}…{cut[-1]}" if len(cut) > 1 else cut[0]
        error = UsageCapExceeded(
            f"{stopped} not landed: the project's monthly post cap ran out while {day or 'the run'} was read ({self.capped}); {reset}. "
            + (f"The days before it ({kept[0]}…{kept[-1]}) are landed. " if kept else "")
            + f"Run {stopped} again after the reset (tweet-assets plan shows what it will read)."
        )
        return {d: (NotLanded(spooled[d].path, error) if d in cut else spooled[d]) for d in days}


def guard_run(
    source, lake: Lake, *, run_id: str, collection: str, start: datetime, end: datetime, log: logging.Logger,
    run_finished: Callable[[str], bool] | None = None, today: date | None = None,
) -> RunBudget:
    """Before the run's first post request: plan it (``source.spend_plan``), refuse it if it would
    overrun (:func:`refusal`, against the other runs' reservations read in the same conditional
    write), and reserve its expected posts in the lake's ledger.

    Returns the run's :class:`RunBudget` (a plain one for sources that read no posts from X).

    Raises:
        BudgetRefused: the run would overrun a limit, or a request the check needs failed (one line).
        XApiError: a day the access cannot serve.
        LakeError: the ledger cannot be read or written.
    """
    plan = source.spend_plan(start, end, log)
    if plan is None:
        return RunBudget()
    limits = source.spend_limits()
    for phrase in plan.unknown:
        log.info(phrase)
    if plan.counts_error is not None and plan.usage_error is None and room(plan.usage, limits.reserve_percent) is None and limits.max_posts is None:
        log.warning(f"{plan.days} could not be counted ({plan.counts_error}); no per-run limit and no post cap to check it against: the run goes on")
    space = room(plan.usage, limits.reserve_percent)
    if space is None:
        log.info(f"no post cap reported by GET /2/usage/tweets (an enterprise project?): only the per-run limit applies ({limits.setting}={limits.max_posts if limits.max_posts is not None else 'unset'})")
    total = plan.total
    if total is not None:
        log.info(f"{plan.days}: {total:,} posts expected (counts endpoints)" + (f"; the cap leaves {space.left:,} after the {limits.reserve_percent:g}% reserve" if space else ""))
    problem = refusal(plan, limits, (), today)  # others' reservations and a newer usage reading (same month) only take room away
    if problem:
        raise BudgetRefused(problem)
    if space is None:  # nothing shared to reserve
        return RunBudget(plan)
    ledger = CapLedger(lake, run_finished)
    wanted = Reservation(run_id, collection, total or 0, plan.first, plan.last)
    decided = [plan]

    def decide(others: list[Reservation]) -> str | None:
        # the usage read again now, after the ledger was read: a run that released its reservation
        # before that read had read its posts before it released, so this reading counts them
        decided[0] = _usage_again(source, plan, log)
        return refusal(decided[0], limits, others, today)

    reservation, problem = ledger.reserve(wanted, decide)
    if problem:
        raise BudgetRefused(problem)
    return RunBudget(decided[0], ledger, reservation)


def _usage_again(source, plan: SpendPlan, log: logging.Logger) -> SpendPlan:
    """``plan`` with the project's usage read again (``source.usage``), or with ``usage_error``
    when that read failed (the run is then refused: the cap left cannot be checked)."""
    try:
        return replace(plan, usage=source.usage(log))
    except XApiError as exc:
        return replace(plan, usage=None, usage_error=" ".join(str(exc).split()))
