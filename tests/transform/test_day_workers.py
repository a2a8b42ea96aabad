"""day_workers: a run's days flattened on threads give what one thread gives, day by day.

The recorded pages are replayed per UTC day (the replay source splits them as it would for a
backfill), then flattened on two threads and on one; every day's rows must be equal.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from datetime import datetime, timezone

import pytest
from polars.testing import assert_frame_equal

from tweet_assets.transform.day_workers import PARALLEL_MAX_DAY_BYTES, day_groups, flatten_days_in_threads
from tweet_assets.sources.replay import ReplaySource


def test_day_groups_are_contiguous_and_balanced_by_stored_bytes():
    assert day_groups({"a": 5, "b": 5, "c": 10}, 2) == [["a", "b"], ["c"]]
    assert day_groups({"a": 10, "b": 1, "c": 1, "d": 8}, 2) == [["a"], ["b", "c", "d"]]
    sizes = {f"d{n:03}": 1_000 + n for n in range(365)}
    groups = day_groups(sizes, 2)
    assert [d for g in groups for d in g] == list(sizes)  # every day once, in order
    assert len(groups) == 2 and abs(sum(sizes[d] for d in groups[0]) - sum(sizes[d] for d in groups[1])) < 3_000
    assert day_groups(sizes, 1) == [list(sizes)]
    assert day_groups({"only": 5}, 2) == [["only"]]
    assert day_groups({}, 2) == []
    assert day_groups({"a": None, "b": None}, 2) == [["a"], ["b"]]  # unknown sizes count as equal
    # one busy day: everything on one thread, so memory stays that of one day
    assert day_groups({"a": 5, "b": PARALLEL_MAX_DAY_BYTES + 1, "c": 5}, 2) == [["a", "b", "c"]]


def _replayed_days(x_api_v2) -> dict[str, list[tuple[str, bytes]]]:
    source = ReplaySource(path=str(x_api_v2 / "twarc-csv-test-data"))
    days: dict[str, list[tuple[str, bytes]]] = defaultdict(list)
    start, end = datetime(2006, 1, 1, tzinfo=timezone.utc), datetime(2030, 1, 1, tzinfo=timezone.utc)
    for page in source.pages(start, end, logging.getLogger("test")):
        days[page.day].append((page.location, page.body))
    return dict(sorted(days.items()))


def test_threads_give_each_day_the_rows_one_thread_gives(x_api_v2):
    days = _replayed_days(x_api_v2)
    assert len(days) > 20, "the recorded pages should span many days"
    pages = {day: (lambda day=day: iter(days[day])) for day in days}
    sizes = {day: sum(len(body) for _, body in days[day]) for day in days}
    threads: dict[str, set] = defaultdict(set)

    def handle(day, result):
        threads[day].add(threading.current_thread().name)
        frame = result.frame
        result.close()
        return frame, result.stats, len(result.quarantined)

    serial = dict(flatten_days_in_threads(pages, sizes, handle, workers=1))
    assert {name for names in threads.values() for name in names} == {threading.current_thread().name}  # the caller's
    threads.clear()
    parallel = dict(flatten_days_in_threads(pages, sizes, handle, workers=2))
    assert len({name for names in threads.values() for name in names}) == 2
    assert list(serial) == list(days)
    assert sorted(parallel) == list(days)
    assert sum(frame.height for frame, _, _ in serial.values()) > 1_000
    for day in days:
        assert_frame_equal(parallel[day][0], serial[day][0])
        assert parallel[day][1:] == serial[day][1:], day


def test_a_worker_error_reaches_the_caller(x_api_v2):
    days = _replayed_days(x_api_v2)
    names = list(days)
    failing = names[len(names) // 4]  # in the first thread's block
    handled: list[str] = []

    def handle(day, result):
        result.close()
        if day == failing:
            raise OSError(f"disk full while writing {day}")
        handled.append(day)
        return day

    pages = {day: (lambda day=day: iter(days[day])) for day in days}
    with pytest.raises(OSError, match=f"disk full while writing {failing}"):
        for _ in flatten_days_in_threads(pages, {d: 1 for d in days}, handle, workers=2, poll_s=0.05):
            pass
    assert failing not in handled


def test_progress_is_reported_on_the_callers_thread(x_api_v2):
    days = _replayed_days(x_api_v2)
    calls: list[tuple[int, int, str]] = []
    slow = threading.Event()

    def handle(day, result):
        slow.wait(0.01)  # long enough for the caller to poll between days
        result.close()
        return result.height

    pages = {day: (lambda day=day: iter(days[day])) for day in days}
    progress = lambda p, r: calls.append((p, r, threading.current_thread().name))  # noqa: E731
    rows = sum(dict(flatten_days_in_threads(pages, {d: 1 for d in days}, handle, workers=2, progress=progress, poll_s=0.001)).values())
    assert calls and {name for _, _, name in calls} == {threading.current_thread().name}
    assert [c[:2] for c in calls] == sorted(c[:2] for c in calls)  # totals only grow
    assert 0 < calls[-1][0] <= sum(len(p) for p in days.values()) and rows > 0
