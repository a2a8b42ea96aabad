"""The numeric settings: every ``TWEET_ASSETS_*`` / ``X_*`` variable that holds a number, declared
once here with its default, unit and range, read and checked the same way everywhere.

A value is refused when it is not a plain decimal number, not finite (``nan``, ``inf``), or outside
its range; the error is one line naming the variable, the value and what to set. :func:`check`
validates every numeric variable set in the environment at once, before any run (the code location's
load, the CLI), so a wrong value never reaches the middle of a run.

Declare a new numeric setting by adding one :class:`Number` to :data:`NUMBERS`, then read it with
:func:`number`. Rules between settings (:func:`check`'s ``RULES``) are checked too, e.g. the lease
heartbeat runs well inside the lease's lifetime.

This module is the bottom layer: it imports nothing of the project.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from typing import Callable, Mapping

_DECIMAL = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")
_INTEGER = re.compile(r"[+-]?[0-9]+")


class SettingError(ValueError):
    """A setting that would fail a run: one line naming the variable, its value and what to set."""


@dataclass(frozen=True)
class Number:
    """One numeric setting.

    Attributes:
        env: the environment variable.
        default: the value when unset or empty (None: "not set" is meaningful, e.g. no limit).
        unit: what the number counts (``seconds``, ``days``, ``posts``...), shown in errors.
        low, high: the inclusive range; ``low_open`` makes ``low`` exclusive (``> 0``).
        integer: whole numbers only (ASCII digits: ``"²".isdigit()`` is true, ``int("²")`` fails).
        help: one phrase saying what it sets (docs/configuration.md has the long form).
    """

    env: str
    default: float | int | None
    unit: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    integer: bool = False
    help: str = ""

    def allowed(self) -> str:
        """The accepted values in words, e.g. ``a number of seconds > 0``."""
        kind = f"a whole number of {self.unit}" if self.integer else f"a number of {self.unit}"
        bounds = []
        if self.low is not None:
            bounds.append(f"{'>' if self.low_open else '>='} {_plain(self.low)}")
        if self.high is not None:
            bounds.append(f"<= {_plain(self.high)}")
        return kind + (" " + " and ".join(bounds) if bounds else "")

    def parse(self, text: str) -> float | int:
        """``text`` as this setting's number.

        Raises:
            SettingError: not a plain finite number, not whole when it must be, or out of range.
        """
        default = "" if self.default is None else f" (default {_plain(self.default)})"
        wrong = SettingError(f"{self.env}={text!r}: set it to {self.allowed()}{default}, or unset it.")
        if not (_INTEGER if self.integer else _DECIMAL).fullmatch(text):
            raise wrong
        value: float | int = int(text) if self.integer else float(text)
        if not math.isfinite(value):
            raise wrong
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            raise wrong
        if self.high is not None and value > self.high:
            raise wrong
        return value

    def read(self, env: Mapping[str, str] | None = None) -> float | int | None:
        """The setting's value in ``env`` (default ``os.environ``), or its default when unset/empty.

        Raises:
            SettingError: the value is set and wrong (:meth:`parse`).
        """
        env = os.environ if env is None else env
        text = (env.get(self.env) or "").strip()
        return self.default if not text else self.parse(text)


def _plain(value: float | int) -> str:
    """``value`` as a user can set it: whole numbers in plain digits (``10000000``, never ``1e+07``,
    which the whole-number parser refuses), others as ``repr`` gives them (``0.5``)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


HOUR = 3600.0
#: Every numeric setting, by variable name. Units are in the names where the name says them (``_S``:
#: seconds, ``_MIN``: minutes, ``_MB``: MiB, ``_DAYS``: days).
NUMBERS: dict[str, Number] = {
    n.env: n
    for n in (
        # leases (tweet_assets/lake/leases.py, docs/concurrency.md)
        Number("TWEET_ASSETS_LEASE_TTL_S", 6 * HOUR, "seconds", low=0, low_open=True, high=7 * 24 * HOUR, help="how long a day's lease lives without renewal"),
        Number("TWEET_ASSETS_LEASE_WAIT_S", HOUR, "seconds", low=0, high=7 * 24 * HOUR, help="how long the compliance job waits for a day's live lease"),
        Number("TWEET_ASSETS_LEASE_HEARTBEAT_S", None, "seconds", low=0, low_open=True, high=7 * 24 * HOUR / 3, help="how often a run renews its day leases (unset: a sixth of the TTL)"),
        Number("TWEET_ASSETS_TEMPORARY_GRACE_S", HOUR, "seconds", low=0, high=30 * 24 * HOUR, help="age after which a temporary left at a key this run writes is removed"),
        # sources and partitions
        Number("TWEET_ASSETS_SAMPLE_POSTS", 200, "posts per day", low=0, high=10_000_000, integer=True, help="posts per day of the sample source"),
        Number("TWEET_ASSETS_BACKFILL_PARTITIONS_PER_RUN", None, "partitions", low=1, high=100_000, integer=True, help="days per run of a backfill (unset: one run)"),
        # Dagster housekeeping
        Number("TWEET_ASSETS_RUN_RETENTION_DAYS", 90, "days", low=1, high=36_500, integer=True, help="days a finished run without materializations is kept"),
        # the filtered stream (tweet_assets/stream/service.py, tweet_assets/defs/stream/days.py)
        Number("TWEET_ASSETS_STREAM_SEGMENT_SECONDS", 300.0, "seconds", low=0, low_open=True, high=24 * HOUR, help="age at which a stream segment is closed"),
        Number("TWEET_ASSETS_STREAM_SEGMENT_MB", 16.0, "MiB", low=0, low_open=True, high=5 * 1024, help="size at which a stream segment is closed"),
        Number("TWEET_ASSETS_STREAM_STALL_S", 90.0, "seconds", low=0, low_open=True, high=HOUR, help="silence (no keep-alive) after which the stream reconnects"),
        Number("TWEET_ASSETS_STREAM_GRACE_MIN", 15.0, "minutes", low=0, high=24 * 60, help="wait after a UTC day ends before its stream day is materialized"),
        Number("TWEET_ASSETS_STREAM_MAX_SILENCE_MIN", 15.0, "minutes", low=0, low_open=True, high=7 * 24 * 60, help="silence after which the consumer counts as down"),
        # X API calls that end (tweet_assets/x/session.py, tweet_assets/x/retry.py, docs/x-api.md)
        Number("X_HTTP_DEADLINE_S", 120.0, "seconds", low=0, low_open=True, high=HOUR, help="total time of one X API request: connect, headers and body"),
        Number("TWEET_ASSETS_MAX_PAGES_PER_DAY", 10_000, "pages", low=1, high=10_000_000, integer=True, help="pages of one day (search) or one account (timelines) past which the run fails"),
        Number("TWEET_ASSETS_MAX_RATE_LIMIT_WAIT_S", HOUR, "seconds", low=0, high=7 * 24 * HOUR, help="rate-limit waits one run may sleep in total before it fails"),
        # spend follows intent (tweet_assets/sources/budget.py, docs/x-api.md "Budget")
        Number("TWEET_ASSETS_MAX_POSTS_PER_RUN", None, "posts", low=1, high=10**12, integer=True, help="a run expected to read more posts is refused before it reads any (unset: no per-run limit)"),
        Number("TWEET_ASSETS_CAP_RESERVE", 10.0, "percent of the monthly post cap", low=0, high=100, help="share of the post cap no run may plan to use"),
        # Iceberg tables (tweet_assets/tables/, docs/warehouses.md)
        Number("TWEET_ASSETS_ICEBERG_COMMIT_ATTEMPTS", 5, "attempts", low=1, high=100, integer=True, help="plans of one Iceberg commit before giving up, each after pyiceberg's own 4 retries"),
        Number("TWEET_ASSETS_ICEBERG_SNAPSHOT_RETENTION", 0.0, "hours", low=0, high=10 * 365 * 24, help="age past which compliance and maintenance expire an Iceberg snapshot (its unreferenced files deleted)"),
        Number("TWEET_ASSETS_ICEBERG_ORPHAN_GRACE_S", HOUR, "seconds", low=60, high=30 * 24 * HOUR, help="age after which a file under an Iceberg table that no snapshot references is removed"),
    )
}


def number(name: str, env: Mapping[str, str] | None = None) -> float | int | None:
    """The value of the numeric setting ``name`` (a key of :data:`NUMBERS`) in ``env`` (default
    ``os.environ``).

    Raises:
        SettingError: the value is set and wrong.
        KeyError: ``name`` is not declared in :data:`NUMBERS` (a programming error).
    """
    return NUMBERS[name].read(env)


def http_timeout(text: str) -> tuple[float, float]:
    """``X_HTTP_TIMEOUT``'s ``connect,read`` seconds, both finite and > 0 (e.g. twarc's ``3.05,31``).

    Raises:
        SettingError: not two such numbers, in one line naming the variable.
    """
    parts = [p.strip() for p in text.split(",")]
    if len(parts) == 2 and all(_DECIMAL.fullmatch(p) for p in parts):
        connect, read = float(parts[0]), float(parts[1])
        if all(math.isfinite(v) and v > 0 for v in (connect, read)):
            return connect, read
    raise SettingError(f"X_HTTP_TIMEOUT={text!r}: set it to connect,read seconds, two numbers > 0, e.g. 3.05,31 (twarc's), or unset it.")


def _http_timeouts(env: Mapping[str, str]) -> str | None:
    """X_HTTP_TIMEOUT is two positive numbers, and the total deadline leaves room after connecting."""
    text = (env.get("X_HTTP_TIMEOUT") or "").strip()
    if not text:
        return None
    try:
        connect, _ = http_timeout(text)
    except SettingError as exc:
        return str(exc)
    deadline = number("X_HTTP_DEADLINE_S", env)
    if deadline <= connect:
        return f"X_HTTP_DEADLINE_S={deadline:g} is not more than X_HTTP_TIMEOUT's connect timeout ({connect:g} s): every request would fail; raise X_HTTP_DEADLINE_S."
    return None


#: Rules between settings: ``env -> error message or None``, checked by :func:`check` after each
#: setting on its own passed.
RULES: list[Callable[[Mapping[str, str]], str | None]] = [_http_timeouts]


def heartbeat_s(env: Mapping[str, str] | None = None) -> float:
    """Seconds between two renewals of a run's day leases: ``TWEET_ASSETS_LEASE_HEARTBEAT_S``, or
    a sixth of ``TWEET_ASSETS_LEASE_TTL_S`` when unset (6 h: every hour; a 3 s test TTL: every 0.5 s)."""
    beat = number("TWEET_ASSETS_LEASE_HEARTBEAT_S", env)
    return float(beat) if beat is not None else float(number("TWEET_ASSETS_LEASE_TTL_S", env)) / 6


def _heartbeat_inside_ttl(env: Mapping[str, str]) -> str | None:
    """The lease heartbeat runs well inside the lease's lifetime: at most a third of the TTL, so a
    renewal can fail twice and be late and the lease still stands (docs/concurrency.md)."""
    beat, ttl = number("TWEET_ASSETS_LEASE_HEARTBEAT_S", env), number("TWEET_ASSETS_LEASE_TTL_S", env)
    if beat is not None and beat * 3 > ttl:
        return (
            f"TWEET_ASSETS_LEASE_HEARTBEAT_S={beat:g} is not well inside TWEET_ASSETS_LEASE_TTL_S={ttl:g}: set it to at most "
            f"a third of the TTL ({ttl / 3:g} s), or unset it (a sixth of the TTL)."
        )
    return None


RULES.append(_heartbeat_inside_ttl)


def check(env: Mapping[str, str] | None = None) -> None:
    """Every numeric setting set in ``env`` (default ``os.environ``), and every rule between them.

    Raises:
        SettingError: the first wrong setting, in one line.
    """
    env = os.environ if env is None else env
    for setting in NUMBERS.values():
        setting.read(env)
    for rule in RULES:
        problem = rule(env)
        if problem:
            raise SettingError(problem)
