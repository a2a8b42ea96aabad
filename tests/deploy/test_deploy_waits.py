"""dagster_services.wait_for bounded by progress (#27.17): a slow but moving daemon is waited for,
a stuck one is not. On a fake clock (time.sleep advances it), so the load of the machine is no factor."""

from __future__ import annotations

import pytest

import dagster_services
from dagster_services import wait_for


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(dagster_services, "time", fake)
    return fake


def test_a_wait_with_progress_outlasts_its_timeout_while_the_snapshot_changes(clock):
    # the "daemon" changes state every 200 s and is done at 1,000 s: more than 3 times the 300 s
    # timeout in all, never 300 s without a change (the old wall-time wait gave up at 300 s)
    done = wait_for(lambda: "done" if clock.now >= 1000 else None, 300, "done", every=2, progress=lambda: clock.now // 200)
    assert done == "done" and clock.now >= 1000


def test_a_wait_without_progress_gives_up_after_its_timeout(clock):
    with pytest.raises(TimeoutError, match="not reached in 300s without progress"):
        wait_for(lambda: None, 300, "never", every=2, progress=lambda: "stuck")
    assert 300 <= clock.now <= 302


def test_a_wait_without_a_progress_snapshot_keeps_its_wall_time_bound(clock):
    with pytest.raises(TimeoutError):
        wait_for(lambda: None, 30, "never", every=2)
    assert 30 <= clock.now <= 32
