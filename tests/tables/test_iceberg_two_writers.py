"""Two writers on one Iceberg table (point 5), each a real process (tests/tables/iceberg_writer.py)
against the embedded SQLite catalog and against Glue (moto's Glue and S3 on 127.0.0.1); the
interleaving forced with held events (a process prints where it stands and waits for GO), never
with time. And botocore's Stubber on the Glue client: UpdateTable carries the VersionId GetTable
read, and a ConcurrentModificationException is retried with the table read again (moto accepts any
VersionId, so only the requests can show it)."""

from __future__ import annotations

import copy
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.stub import ANY, Stubber

from tests.tables.rows import day_rows, rows
from tweet_assets.lake.leases import DayLeases
from tweet_assets.lake.store import open_lake
from tweet_assets.tables.iceberg import IcebergTable
from tweet_assets.tables.maintenance import parquet_ids

REPO = Path(__file__).resolve().parents[2]
EVENT_TIMEOUT_S = 120  # a bound on each wait for a child's event (it takes seconds), not a pause


class Writer:
    """One writer process; its stdout lines arrive on a queue (read by a thread), so each wait has a deadline."""

    def __init__(self, spec: dict, env: dict):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.tables.iceberg_writer", json.dumps(spec)],
            cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.lines: queue.Queue = queue.Queue()
        self.seen: list[str] = []
        self.stderr: list[str] = []
        threading.Thread(target=self._read, args=(self.proc.stdout, self.lines), daemon=True).start()
        threading.Thread(target=self._read, args=(self.proc.stderr, None), daemon=True).start()

    def _read(self, stream, into) -> None:
        for line in stream:
            (into.put(line.rstrip("\n")) if into is not None else self.stderr.append(line))
        if into is not None:
            into.put(None)

    def expect(self, prefix: str) -> str:
        deadline = time.monotonic() + EVENT_TIMEOUT_S
        while True:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {prefix!r} within {EVENT_TIMEOUT_S}s; saw {self.seen}; stderr {''.join(self.stderr)[-2000:]}") from None
            if line is None:
                raise AssertionError(f"exited ({self.proc.wait()}) before {prefix!r}; saw {self.seen}; stderr {''.join(self.stderr)[-2000:]}")
            self.seen.append(line)
            if line.startswith(prefix):
                return line[len(prefix):].strip()

    def go(self) -> None:
        self.proc.stdin.write("GO\n")
        self.proc.stdin.flush()

    def finish(self) -> int:
        code = self.proc.wait(timeout=EVENT_TIMEOUT_S)
        return code


@pytest.fixture(params=["sqlite", "glue"])
def backend(request, tmp_path, monkeypatch):
    """``(lake URL, environment for the writers)``: a local lake with the embedded catalog, or an S3
    lake on moto with a Glue catalog named ``prod`` (a fresh database)."""
    return _backend(request.param, request, tmp_path, monkeypatch)


@pytest.fixture
def glue_backend(request, tmp_path, monkeypatch):
    return _backend("glue", request, tmp_path, monkeypatch)


def _backend(kind: str, request, tmp_path, monkeypatch) -> tuple[str, dict]:
    for key in list(os.environ):
        if key.startswith("PYICEBERG_"):
            monkeypatch.delenv(key)
    monkeypatch.delenv("TWEET_ASSETS_ICEBERG_CATALOG", raising=False)
    monkeypatch.delenv("TWEET_ASSETS_GLUE_DATABASE", raising=False)
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    if kind == "sqlite":
        return str(tmp_path / "lake"), dict(os.environ)
    s3_lake = request.getfixturevalue("s3_lake")  # moto's server on 127.0.0.1, AWS_* set
    database = f"db_{uuid.uuid4().hex[:8]}"
    boto3.client("glue").create_database(DatabaseInput={"Name": database})
    monkeypatch.setenv("PYICEBERG_CATALOG__PROD__TYPE", "glue")
    monkeypatch.setenv("TWEET_ASSETS_ICEBERG_CATALOG", "prod")
    monkeypatch.setenv("TWEET_ASSETS_GLUE_DATABASE", database)
    return s3_lake, dict(os.environ)


def _lake(url: str):
    return open_lake(url, lambda: boto3.client("s3"))


def _table(url: str) -> IcebergTable:
    return IcebergTable.open(_lake(url), "tweets", "tweets")


def _ids(url: str) -> list[int]:
    return sorted(_table(url).load().scan(selected_fields=("id",)).to_arrow().column("id").to_pylist())


@pytest.mark.slow
def test_two_runs_of_different_days_both_land(backend):
    url, env = backend
    _table(url).publish({"2024-05-01": day_rows(rows("2024-05-01", [1]))}, "seed")
    a = Writer({"mode": "publish", "lake": url, "run_id": "run-a", "days": {"2024-05-02": [21, 22]}, "hold": ["commit"]}, env)
    a.expect("HELD commit")  # A has written its files and planned on the table as it was
    b = Writer({"mode": "publish", "lake": url, "run_id": "run-b", "days": {"2024-05-03": [31]}}, env)
    b_snapshot = int(b.expect("COMMITTED").split()[0])
    assert b.finish() == 0
    a.go()
    a_snapshot, attempts = (int(v) for v in a.expect("COMMITTED").split())
    assert a.finish() == 0
    # A's commit lost the race (its base was no longer the table's head), was retried with the table
    # reloaded (pyiceberg's retry on CommitFailedException) and landed on top of B's snapshot
    assert "Commit failed due to a concurrent update, retrying" in "".join(a.stderr) and attempts == 1
    table = _table(url).load()
    assert table.snapshot_by_id(a_snapshot).parent_snapshot_id == b_snapshot
    assert _ids(url) == [1, 21, 22, 31]


@pytest.mark.slow
def test_two_runs_of_one_day_the_second_is_refused_naming_the_first(backend):
    url, env = backend
    a = Writer({"mode": "publish", "lake": url, "run_id": "run-a", "days": {"2024-05-02": [1]}, "hold": ["leased"]}, env)
    a.expect("HELD leased")
    b = Writer({"mode": "publish", "lake": url, "run_id": "run-b", "days": {"2024-05-02": [2]}}, env)
    refused = b.expect("REFUSED")
    assert b.finish() == 3
    assert "2024-05-02 is being written by Dagster run run-a" in refused and "run run-b (raw_tweets) writes nothing for 2024-05-02" in refused
    a.go()
    a.expect("COMMITTED")
    assert a.finish() == 0 and _ids(url) == [1]


@pytest.mark.slow
def test_a_run_paused_past_its_lease_commits_nothing(backend):
    url, env = backend
    _table(url).publish({"2024-05-02": day_rows(rows("2024-05-02", [1]))}, "seed")
    a = Writer({"mode": "publish", "lake": url, "run_id": "run-a", "days": {"2024-05-02": [2]}, "hold": ["commit"]}, {**env, "TWEET_ASSETS_LEASE_TTL_S": "2"})
    a.expect("HELD commit")
    # A is paused (SIGSTOP: its lease heartbeat too); once its lease has lapsed by the storage's clock
    # (host clocks do not decide expiry: tweet_assets.lake.leases), B takes the day over
    os.kill(a.proc.pid, signal.SIGSTOP)
    lake = _lake(url)
    deadline = time.monotonic() + EVENT_TIMEOUT_S
    while not DayLeases(lake, "observer", "x")._dead(json.loads((read := lake.read_record("clean_tweets/_leases/dt=2024-05-02.json")).data), read):
        assert time.monotonic() < deadline, "run A's lease never lapsed"
        time.sleep(0.05)
    DayLeases(lake, "run-b", "raw_tweets").acquire(["2024-05-02"])
    os.kill(a.proc.pid, signal.SIGCONT)
    a.go()
    refused = a.expect("REFUSED")
    assert a.finish() == 3 and "run run-a lost its lease of 2024-05-02 to run run-b" in refused
    assert _ids(url) == [1] and len(_table(url).load().snapshots()) == 1
    # A's data file for its lost commit is gone again: the table location holds the seed's file only
    assert sorted(parquet_ids(_table(url).load()).column("id").to_pylist()) == [1]


@pytest.mark.slow
def test_compliance_beside_a_backfill_both_land_and_no_deleted_id_comes_back(backend):
    url, env = backend
    _table(url).publish(
        {"2024-05-01": day_rows(rows("2024-05-01", [1, 2])), "2024-05-02": day_rows(rows("2024-05-02", [3, 4, 5])), "2024-05-03": day_rows(rows("2024-05-03", [6]))}, "seed"
    )
    # the backfill re-lands the three days, post 5 and a retweet of it (10) among them, and pauses before its commit
    backfill = Writer(
        {"mode": "publish", "lake": url, "run_id": "backfill", "days": {"2024-05-01": [1, 2, 7], "2024-05-02": [3, 5, 8], "2024-05-03": [6, 9, 10]}, "retweets": {"10": 5}, "hold": ["commit"]},
        env,
    )
    backfill.expect("HELD commit")
    comply = Writer({"mode": "comply", "lake": url, "run_id": "compliance", "ids": [5]}, env)
    comply.expect("WAITING")  # compliance found post 5 on 2024-05-02 and waits for the backfill's lease
    backfill.go()
    backfill.expect("COMMITTED")
    assert backfill.finish() == 0
    removed = json.loads(comply.expect("REMOVED"))
    assert comply.finish() == 0
    # both landed: the backfill's rows, without post 5 and its retweet, which the compliance removed from what the backfill committed
    assert removed["removed"] == {"2024-05-02": [5], "2024-05-03": [10]} and removed["files_deleted"] >= 3
    assert _ids(url) == [1, 2, 3, 6, 7, 8, 9]
    # no deleted id in any Parquet file under the table location (the seed's and the backfill's old files are gone)
    stored = parquet_ids(_table(url).load())
    assert 5 not in stored.column("id").to_pylist() and 5 not in stored.column("retweeted_id").to_pylist()
    assert len(_table(url).load().snapshots()) == 1


def test_glue_update_table_carries_the_version_id_it_read(glue_backend):
    """Glue's optimistic lock (Iceberg AWS docs, "Optimistic locking"): UpdateTable's VersionId is
    the one GetTable returned; after a ConcurrentModificationException the table is read again and
    the retry carries the new VersionId."""
    url, env = glue_backend
    table = _table(url)
    table.publish({"2024-05-01": day_rows(rows("2024-05-01", [1]))}, "seed")
    database = env["TWEET_ASSETS_GLUE_DATABASE"]
    real = boto3.client("glue").get_table(DatabaseName=database, Name="tweets")
    real.pop("ResponseMetadata", None)

    def version(v: str) -> dict:
        answer = copy.deepcopy(real)
        answer["Table"]["VersionId"] = v
        return answer

    where = {"DatabaseName": database, "Name": "tweets"}
    plain_database = {"Database": {"Name": database}}  # not an S3 Tables database: pyiceberg asks before each metadata write
    table = _table(url)
    stubber = Stubber(table.catalog.glue)
    stubber.add_response("get_table", version("17"), where)  # the table loaded for the publish
    stubber.add_response("get_table", version("17"), where)  # and again once its data files are written
    stubber.add_response("get_table", version("17"), where)  # the commit reads the current version
    stubber.add_response("get_database", plain_database, {"Name": database})
    stubber.add_client_error("update_table", "ConcurrentModificationException", "another writer", expected_params={"DatabaseName": database, "TableInput": ANY, "SkipArchive": ANY, "VersionId": "17"})
    stubber.add_response("get_table", version("18"), where)  # pyiceberg reloads the table after the lost commit
    stubber.add_response("get_table", version("18"), where)  # and the retried commit reads the version again
    stubber.add_response("get_database", plain_database, {"Name": database})
    stubber.add_response("update_table", {}, {"DatabaseName": database, "TableInput": ANY, "SkipArchive": ANY, "VersionId": "18"})
    with stubber:
        table.publish({"2024-05-02": day_rows(rows("2024-05-02", [2]))}, "run-1")
    stubber.assert_no_pending_responses()
