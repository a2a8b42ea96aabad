"""The project's post cap and what it has read: ``GET /2/usage/tweets`` (``getUsage``), read the
same way whichever spec's shapes the API answers in.

X's contract (OpenAPI specs 2.159 and 2.167, ``../shared/x-api-v2/openapi/``): app-only bearer
token; ``days`` 1-90 (default 7) and ``usage.fields``, any of ``cap_reset_day``,
``daily_client_app_usage``, ``daily_project_usage``, ``project_cap``, ``project_id``,
``project_usage``. 2.159 gives ``project_cap``/``project_usage`` and daily ``usage`` as integers,
2.167 as strings (X's own example: ``"project_cap": "5000000000"``); every field may be missing (an
enterprise project reports no cap). ``daily_project_usage.usage`` is a list of ``{date, usage}``,
``date`` an ISO 8601 date-time.

``cap_reset_day``: X's example answer is ``10`` and users read it as the day of the month the cap
resets (the developer portal's "resets on the 10th"); spec 2.159's description says "number of days
left". This module reads it as the day of the month (:meth:`Usage.reset_date`), the reading that
agrees with X's example and the portal.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import date

#: The fields asked for (``daily_client_app_usage`` is per app: the cap is the project's).
USAGE_FIELDS = ("cap_reset_day", "daily_project_usage", "project_cap", "project_id", "project_usage")
#: Days of daily usage asked for (the spec allows 1-90): what ``x_api_usage`` plots.
USAGE_DAYS = 30
ENDPOINT = "GET /2/usage/tweets"
ROUTE = "/2/usage/tweets"


def usage_params(days: int = USAGE_DAYS) -> dict[str, str]:
    """The query of ``GET /2/usage/tweets``: ``days`` (1-90) and ``usage.fields``."""
    if not 1 <= days <= 90:
        raise ValueError(f"days={days}: GET /2/usage/tweets takes 1 to 90 days")
    return {"days": str(days), "usage.fields": ",".join(USAGE_FIELDS)}


@dataclass(frozen=True)
class Usage:
    """The project's usage as the API reported it.

    Attributes:
        project_cap: posts the project may read per month; None when not reported (enterprise).
        project_usage: posts read since the cap last reset; None when not reported.
        cap_reset_day: the day of the month (1-31) the cap resets; None when not reported.
        project_id: the project's id (a string of digits), or None.
        daily: ``(YYYY-MM-DD, posts read that UTC day)``, oldest first.
    """

    project_cap: int | None = None
    project_usage: int | None = None
    cap_reset_day: int | None = None
    project_id: str | None = None
    daily: tuple[tuple[str, int], ...] = field(default_factory=tuple)

    @property
    def left(self) -> int | None:
        """Posts the cap has left (negative once exceeded); None without a cap or usage."""
        if self.project_cap is None or self.project_usage is None:
            return None
        return self.project_cap - self.project_usage

    @property
    def percent_used(self) -> float | None:
        """``project_usage`` as a percentage of ``project_cap`` (None without both, or a 0 cap)."""
        if not self.project_cap or self.project_usage is None:
            return None
        return 100.0 * self.project_usage / self.project_cap

    def reset_date(self, today: date) -> date | None:
        """The next day the cap resets, on or after tomorrow: day ``cap_reset_day`` of this month if
        still ahead, else of next month; in a month shorter than ``cap_reset_day``, its last day
        (so on that last day the next reset is next month's). None when not reported."""
        if not self.cap_reset_day:
            return None

        def in_month(year: int, month: int) -> date:
            return date(year, month, min(self.cap_reset_day, calendar.monthrange(year, month)[1]))

        reset = in_month(today.year, today.month)
        if reset <= today:
            reset = in_month(today.year + 1, 1) if today.month == 12 else in_month(today.year, today.month + 1)
        return reset

    def days_to_reset(self, today: date) -> int | None:
        """Whole days from ``today`` to :meth:`reset_date` (None when not reported)."""
        reset = self.reset_date(today)
        return None if reset is None else (reset - today).days

    def resets(self, today: date) -> str:
        """``"the cap resets on 2026-12-10 (cap_reset_day 10)"``, or that the API did not say."""
        reset = self.reset_date(today)
        if reset is None:
            return "the API did not say when the cap resets (no cap_reset_day; see the developer portal's usage page)"
        return f"the cap resets on {reset:%Y-%m-%d} (cap_reset_day {self.cap_reset_day})"

    def last_days(self, days: int) -> int:
        """Posts read over the last ``days`` entries of :attr:`daily`."""
        return sum(n for _, n in self.daily[-days:])


def _number(value, name: str) -> int | None:
    """An integer or a string of digits (2.167) as int; None when absent.

    Raises:
        ValueError: any other value, naming the field.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{ENDPOINT}: {name} is {value!r}, not a number")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isascii() and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    raise ValueError(f"{ENDPOINT}: {name} is {value!r}, not a whole number")


def parse_usage(body) -> Usage:
    """The :class:`Usage` of a ``GET /2/usage/tweets`` answer (its parsed JSON), in either spec's
    shapes; a missing field is None (or no daily entry).

    Raises:
        ValueError: the answer has no ``data`` object, or a field holds something else than a
            number (the message names it).
    """
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        raise ValueError(f"{ENDPOINT}: the answer has no data object (keys: {sorted(body) if isinstance(body, dict) else type(body).__name__})")
    project = data.get("daily_project_usage")
    entries = project.get("usage") if isinstance(project, dict) else None
    daily = []
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("date"), str) and len(entry["date"]) >= 10:
            daily.append((entry["date"][:10], _number(entry.get("usage"), "daily_project_usage.usage[].usage") or 0))
    project_id = data.get("project_id")
    return Usage(
        project_cap=_number(data.get("project_cap"), "project_cap"),
        project_usage=_number(data.get("project_usage"), "project_usage"),
        cap_reset_day=_number(data.get("cap_reset_day"), "cap_reset_day"),
        project_id=str(project_id) if project_id is not None else None,
        daily=tuple(sorted(daily)),
    )
