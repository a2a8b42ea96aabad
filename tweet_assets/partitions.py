"""The daily UTC partitions every asset shares, and the time window of a partition.

Rule: a partition ``YYYY-MM-DD`` holds the posts whose ``created_at`` lies in
``[YYYY-MM-DDT00:00:00Z, next day 00:00:00Z)``, the X API v2 ``start_time`` (inclusive) /
``end_time`` (exclusive) convention of the search and timeline endpoints.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

from dagster import BackfillPolicy, DailyPartitionsDefinition

#: First day of the partitions when ``TWEET_ASSETS_START_DATE`` is not set: the day of the first
#: post on Twitter (2006-03-21), so every archive, including the recorded data from 2010 on, fits.
DEFAULT_START_DATE = "2006-03-21"
START_DATE_ENV = "TWEET_ASSETS_START_DATE"
BACKFILL_PARTITIONS_PER_RUN_ENV = "TWEET_ASSETS_BACKFILL_PARTITIONS_PER_RUN"
DAY_FORMAT = "%Y-%m-%d"


def start_date() -> str:
    """The first partition day (``YYYY-MM-DD``), from ``TWEET_ASSETS_START_DATE`` or the default.

    Raises:
        ValueError: the variable is set but is not a ``YYYY-MM-DD`` date.
    """
    value = os.environ.get(START_DATE_ENV, "").strip() or DEFAULT_START_DATE
    try:
        datetime.strptime(value, DAY_FORMAT)
    except ValueError:
        raise ValueError(
            f"{START_DATE_ENV}={value!r} is not a date: set it to the first day to partition, "
            f"as YYYY-MM-DD (default {DEFAULT_START_DATE})."
        ) from None
    return value


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
    value = (env.get(BACKFILL_PARTITIONS_PER_RUN_ENV) or "").strip()
    if not value:
        return BackfillPolicy.single_run()
    if not value.isdigit() or int(value) < 1:
        raise ValueError(
            f"{BACKFILL_PARTITIONS_PER_RUN_ENV}={value!r} is not a number of partitions: set it to a "
            "whole number >= 1 (days per run of a backfill), or unset it for one run per backfill."
        )
    return BackfillPolicy.multi_run(int(value))


daily_partitions = DailyPartitionsDefinition(start_date=start_date(), timezone="UTC", fmt=DAY_FORMAT)


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
