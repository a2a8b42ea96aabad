"""The daily UTC partitions every asset shares, and the time window of a partition.

Rule: a partition ``YYYY-MM-DD`` holds the posts whose ``created_at`` lies in
``[YYYY-MM-DDT00:00:00Z, next day 00:00:00Z)``, the X API v2 ``start_time`` (inclusive) /
``end_time`` (exclusive) convention of the search and timeline endpoints.
"""

from __future__ import annotations

import os
from datetime import date, datetime, timedelta, timezone

from dagster import BackfillPolicy, DailyPartitionsDefinition

from tweet_assets import config

#: The first post on Twitter (2006-03-21): the first partition of the sources that can reach any
#: day (the full-archive search, timelines, a replay: every archive, the recorded data from 2010 on,
#: fits), and the first day of every DDL's partition projection range unless the variable is set.
DEFAULT_START_DATE = "2006-03-21"
START_DATE_ENV = "TWEET_ASSETS_START_DATE"
BACKFILL_PARTITIONS_PER_RUN_ENV = "TWEET_ASSETS_BACKFILL_PARTITIONS_PER_RUN"
DAY_FORMAT = "%Y-%m-%d"
#: The ``sample`` source's window: it makes up posts for any day; 30 days is enough for a demo
#: and keeps Dagit's "% filled" and the backfill dialog about days one would pick.
SAMPLE_WINDOW_DAYS = 30
#: The recent search (GET /2/tweets/search/recent) and the filtered stream reach back 7 days
#: (X API v2 docs, "Search Posts": recent search covers the last seven days).
RECENT_SEARCH_DAYS = 7


def default_start_date(env: dict | None = None, today: date | None = None) -> str:
    """The first partition day the configured source can reach (``YYYY-MM-DD``, UTC), by
    ``TWEET_ASSETS_SOURCE``:

    ===========================================  ====================================
    ``sample`` (default)                         today - ``SAMPLE_WINDOW_DAYS`` (30)
    ``x_api`` search, recent (``X_QUERY``)         today - ``RECENT_SEARCH_DAYS`` (7)
    ``stream``                                   today - ``RECENT_SEARCH_DAYS`` (7)
    ``x_api`` with ``X_FULL_ARCHIVE=1``, or timelines (``X_ACCOUNTS`` only)   ``DEFAULT_START_DATE``
    ``replay`` (any archive)                      ``DEFAULT_START_DATE`` (2006-03-21)
    ===========================================  ====================================

    A window relative to today moves with it: set ``TWEET_ASSETS_START_DATE`` to pin the first day
    (production: the day you started collecting).
    """
    env = os.environ if env is None else env
    today = today or datetime.now(timezone.utc).date()
    source = (env.get("TWEET_ASSETS_SOURCE") or "sample").strip().lower() or "sample"
    if source == "sample":
        return (today - timedelta(days=SAMPLE_WINDOW_DAYS)).strftime(DAY_FORMAT)
    if source == "stream":
        return (today - timedelta(days=RECENT_SEARCH_DAYS)).strftime(DAY_FORMAT)
    if source == "x_api":
        full_archive = (env.get("X_FULL_ARCHIVE") or "").strip().lower() in ("1", "true", "yes")
        timelines = bool((env.get("X_ACCOUNTS") or "").strip()) and not (env.get("X_QUERY") or "").strip()
        if not full_archive and not timelines:
            return (today - timedelta(days=RECENT_SEARCH_DAYS)).strftime(DAY_FORMAT)
    return DEFAULT_START_DATE


def _explicit_start_date(env) -> str | None:
    value = (env.get(START_DATE_ENV) or "").strip()
    if not value:
        return None
    try:
        parsed = datetime.strptime(value, DAY_FORMAT).date()
    except ValueError:
        raise ValueError(f"{START_DATE_ENV}={value!r} is not a date: set it to the first day to partition, as YYYY-MM-DD, or unset it for the source's default.") from None
    if parsed > datetime.now(timezone.utc).date():
        raise ValueError(f"{START_DATE_ENV}={value!r} is in the future: set it to a past day (YYYY-MM-DD), or unset it for the source's default.")
    return value


def start_date(env: dict | None = None) -> str:
    """The first partition day (``YYYY-MM-DD``): ``TWEET_ASSETS_START_DATE``, or what the configured
    source can reach (:func:`default_start_date`).

    Raises:
        ValueError: the variable is set but is not a ``YYYY-MM-DD`` date, or is in the future.
    """
    env = os.environ if env is None else env
    return _explicit_start_date(env) or default_start_date(env)


def projection_start_date(env: dict | None = None) -> str:
    """The first ``dt`` of a warehouse's partition projection range (DDL, Glue):
    ``TWEET_ASSETS_START_DATE`` or ``DEFAULT_START_DATE``, never a moving window (a projection
    range that starts early costs nothing; one that moves would change the table daily).

    Raises:
        ValueError: as :func:`start_date`.
    """
    env = os.environ if env is None else env
    return _explicit_start_date(env) or DEFAULT_START_DATE


def backfill_policy_from_env(env: dict | None = None) -> BackfillPolicy:
    """The assets' backfill policy: how many daily partitions one run of a backfill holds.

    ``TWEET_ASSETS_BACKFILL_PARTITIONS_PER_RUN`` unset or empty: ``BackfillPolicy.single_run()``,
    a backfill of any range is one run (the default: Dagster's per-run overhead is paid once).
    ``N`` (a whole number >= 1): ``BackfillPolicy.multi_run(N)``, a backfill of ``D`` days becomes
    ``ceil(D / N)`` runs of at most ``N`` consecutive days each, which the run queue
    (``max_concurrent_runs``) and the ``x_api`` pool then bound; with the ECS run launcher each run
    is one ECS task (deploy/ecs/). Rule: Dagster's ``BackfillPolicy`` (``multi_run(max_partitions_per_run)``).

    Raises:
        ValueError: the variable is set but is not a whole number >= 1.
    """
    env = os.environ if env is None else env
    per_run = config.number(BACKFILL_PARTITIONS_PER_RUN_ENV, env)
    return BackfillPolicy.single_run() if per_run is None else BackfillPolicy.multi_run(per_run)


_DAILY: dict[str, DailyPartitionsDefinition] = {}


def __getattr__(name: str):
    """``daily_partitions``: the daily UTC partitions from :func:`start_date`, built on first use
    (PEP 562), so a command that sets ``TWEET_ASSETS_SOURCE`` (``tweet-assets replay``) before
    loading the code location gets its source's start date. Every asset shares the one object."""
    if name == "daily_partitions":
        if "daily" not in _DAILY:
            _DAILY["daily"] = DailyPartitionsDefinition(start_date=start_date(), timezone="UTC", fmt=DAY_FORMAT)
        return _DAILY["daily"]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def day_window(day: str) -> tuple[datetime, datetime]:
    """The UTC window ``[start, end)`` of partition ``day`` (``YYYY-MM-DD``), as aware datetimes."""
    start = datetime.strptime(day, DAY_FORMAT).replace(tzinfo=timezone.utc)
    return start, start + timedelta(days=1)


def days_in_window(start: datetime, end: datetime) -> list[str]:
    """Partition keys (``YYYY-MM-DD``) of the UTC days in ``[start, end)``; both ends on 00:00Z."""
    day = start.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    days = []
    while day < end:
        days.append(day.strftime(DAY_FORMAT))
        day += timedelta(days=1)
    return days
