"""Airflow 3.3.2's own components for the DAG tests: api-server, dag-processor and scheduler as three
processes, each started by deploy/airflow/run-airflow.sh with the settings of deploy/airflow/airflow.env
(port and JWT secret replaced for the test), LocalExecutor on the SQLite metadata DB of a temp
AIRFLOW_HOME, all on 127.0.0.1.

The tests read the metadata DB directly (``sqlite3``, read-only) to follow runs and task instances,
and act through Airflow's CLI (``airflow dags unpause``, ``dags trigger``, ``backfill create``).
Waits are bounded by progress: :meth:`AirflowServices.wait` gives up only when nothing (no task
instance state, no run state) has changed for ``stall_s`` seconds.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
from deploy_helpers import DEPLOY, free_port

from tests.dagit_server import log_tail, stop_process_group

AIRFLOW_DIR = DEPLOY / "airflow"
RUN_AIRFLOW = AIRFLOW_DIR / "run-airflow.sh"
SETTINGS = AIRFLOW_DIR / "airflow.env"
COMPONENTS = ("api-server", "dag-processor", "scheduler")
#: The listening address of 127.0.0.1 as /proc/net/tcp writes it.
LOOPBACK_HEX = "0100007F"


def deploy_settings(port: int, jwt_secret: str) -> dict[str, str]:
    """deploy/airflow/airflow.env as a dict, with the api-server's port 8080 replaced by ``port`` and
    the (empty) JWT secret by ``jwt_secret``."""
    settings = {}
    for line in SETTINGS.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings[key] = value.replace(":8080", f":{port}") if key != "AIRFLOW__API__PORT" else str(port)
    assert settings["AIRFLOW__API_AUTH__JWT_SECRET"] == "", "airflow.env must not ship a secret"
    settings["AIRFLOW__API_AUTH__JWT_SECRET"] = jwt_secret
    return settings


def listening_sockets(pids: set[int]) -> set[tuple[str, int]]:
    """(hex local address, port) of every TCP socket in LISTEN state that one of ``pids`` holds
    (socket inodes from /proc/PID/fd, matched in /proc/net/tcp and tcp6)."""
    inodes = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if target.startswith("socket:["):
                    inodes.add(target[len("socket:["):-1])
        except OSError:
            continue
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            local, state, inode = cols[1], cols[3], cols[9]
            if state == "0A" and inode in inodes:
                address, port = local.split(":")
                found.add((address, int(port, 16)))
    return found


def process_group(pgid: int) -> set[int]:
    """The pids whose process group is ``pgid`` (from /proc/PID/stat)."""
    pids = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:
                pids.add(int(entry))
    return pids


@dataclass
class AirflowServices:
    python: Path
    env: dict
    home: Path
    port: int = 0
    procs: dict = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def configure(self) -> None:
        self.port = free_port()
        bin_dir = str(self.python.parent)
        self.env = {
            **self.env, **deploy_settings(self.port, secrets.token_hex(32)),
            "AIRFLOW_BIN": f"{bin_dir}/airflow", "PATH": f"{bin_dir}:{self.env.get('PATH', os.defpath)}",
        }

    def start(self, components=COMPONENTS) -> "AirflowServices":
        """Start ``components`` (the api-server first, waiting for its health endpoint)."""
        if not self.port:
            self.configure()
        for component in components:
            with open(self.home / f"{component}.log", "ab") as log:
                self.procs[component] = subprocess.Popen(
                    [str(RUN_AIRFLOW), component], env=self.env, cwd=str(self.home), stdout=log,
                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                )
        if "api-server" in components:
            self.wait(lambda: self._healthy(), "the api-server's /api/v2/monitor/health", stall_s=240)
        return self

    def _healthy(self) -> bool:
        try:
            return requests.get(f"{self.url}/api/v2/monitor/health", timeout=10).ok
        except requests.RequestException:
            return False

    def stop(self) -> None:
        for proc in self.procs.values():
            stop_process_group(proc, 30)
        self.procs.clear()

    def log_tail(self) -> str:
        return "\n".join(f"--- {c}:\n{log_tail(self.home / f'{c}.log', 3000)}" for c in COMPONENTS)

    def pids(self) -> set[int]:
        return set().union(*(process_group(p.pid) for p in self.procs.values()))

    def airflow(self, *args: str, timeout: float = 300, attempts: int = 3) -> str:
        """An Airflow CLI command; again (up to ``attempts``) when SQLite answered "database is locked"
        (its transaction was rolled back: another component held the write lock)."""
        for attempt in range(attempts):
            proc = subprocess.run([str(self.python), "-m", "airflow", *args], env=self.env, cwd=str(self.home),
                                  capture_output=True, text=True, timeout=timeout)
            if proc.returncode == 0 or "database is locked" not in proc.stderr or attempt == attempts - 1:
                break
        assert proc.returncode == 0, (args, proc.stdout[-3000:], proc.stderr[-3000:])
        return proc.stdout

    def query(self, sql: str, *params) -> list[tuple]:
        with sqlite3.connect(f"file:{self.home / 'airflow.db'}?mode=ro", uri=True, timeout=30) as db:
            return db.execute(sql, params).fetchall()

    def snapshot(self) -> tuple:
        """What progress means here: every run's and task instance's state and try number."""
        runs = self.query("select run_id, state from dag_run order by run_id")
        tis = self.query("select run_id, task_id, state, try_number from task_instance order by run_id, task_id")
        return tuple(runs), tuple(tis)

    def wait(self, predicate, what: str, stall_s: float = 600, every: float = 2):
        """``predicate()``'s first truthy value; TimeoutError when the DB shows no progress for
        ``stall_s`` (the deadline moves on at each change), or a component has exited."""
        last, deadline = None, time.monotonic() + stall_s
        while True:
            for component, proc in self.procs.items():
                assert proc.poll() is None, f"{component} exited ({proc.returncode}) waiting for {what}\n{self.log_tail()}"
            value = predicate()
            if value:
                return value
            try:
                now = self.snapshot()
            except sqlite3.Error:
                now = last
            if now != last:
                last, deadline = now, time.monotonic() + stall_s
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: no progress in {stall_s}s (last: {last!r})\n{self.log_tail()}")
            time.sleep(every)

    def task_log(self, run_id: str, task_id: str) -> str:
        """The task's log files (all tries) under AIRFLOW_HOME/logs."""
        folder = self.home / "logs" / "dag_id=tweet_assets_daily" / f"run_id={run_id}" / f"task_id={task_id}"
        return "\n".join(p.read_text(errors="replace") for p in sorted(folder.glob("**/*.log")))
