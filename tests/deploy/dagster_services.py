"""``dagster-webserver`` and ``dagster-daemon`` as two separate processes, as the systemd units
run them, with a given ``dagster.yaml`` and environment, for the durable-state and ECS tests.

Each service runs in a process group of its own (what a systemd unit's control group is to
``systemctl stop``): :meth:`Service.stop` sends SIGTERM to the group, as systemd does, then
SIGKILL after a grace period, so no server outlives a test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
from deploy_helpers import REPO, free_port, venv_bin

from tests.dagit_server import wait_until_location_loaded



def live_members(pgid: int) -> list[int]:
    """Pids of the processes of group ``pgid`` that are not zombies (from /proc/*/stat)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(stat.parent.name))
    return pids


@dataclass
class Service:
    name: str
    args: list[str]
    env: dict
    log_path: Path
    proc: subprocess.Popen | None = None

    def start(self) -> "Service":
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.args, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        return self

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def signal_group(self, sig: int) -> None:
        """Send ``sig`` to the service's whole process group (daemon, code server, run workers)."""
        try:
            os.killpg(os.getpgid(self.proc.pid), sig)
        except ProcessLookupError:
            pass

    def stop(self, grace_s: float = 20) -> None:
        """As ``systemctl stop`` with KillMode=control-group: SIGTERM to every process of the
        group, wait until all are gone, SIGKILL what is left after ``grace_s`` (TimeoutStopSec)."""
        if self.proc is None:
            return
        try:
            pgid = os.getpgid(self.proc.pid)
        except ProcessLookupError:
            pgid = None
        if pgid is not None:
            self.signal_group(signal.SIGTERM)
            deadline = time.monotonic() + grace_s
            while time.monotonic() < deadline:
                self.proc.poll()  # reap the main process so it does not count as alive
                if not live_members(pgid):
                    break
                time.sleep(0.2)
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=10)
        self.proc = None


@dataclass
class DagsterServices:
    """The webserver (127.0.0.1, free port) and the daemon over one ``DAGSTER_HOME``."""

    home: Path
    env: dict
    port: int = 0
    webserver: Service | None = None
    daemon: Service | None = None
    logs: Path = field(default=None)

    def __post_init__(self):
        self.logs = self.logs or self.home.parent

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start_daemon(self) -> Service:
        self.daemon = Service("daemon", [venv_bin("dagster-daemon"), "run", "-w", "workspace.yaml"],
                              self.env, self.logs / "daemon.log").start()
        return self.daemon

    def start_webserver(self) -> Service:
        self.port = free_port()
        self.webserver = Service("webserver", [venv_bin("dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(self.port)],
                                 self.env, self.logs / "webserver.log").start()
        self._wait_until_loaded()
        return self.webserver

    def start(self) -> "DagsterServices":
        self.start_daemon()
        self.start_webserver()
        return self

    def stop(self) -> None:
        for service in (self.webserver, self.daemon):
            if service is not None:
                service.stop()

    def log_tail(self) -> str:
        return "\n".join(f"--- {s.name}:\n{s.log_tail()}" for s in (self.webserver, self.daemon) if s is not None)

    def graphql(self, query: str, variables: dict | None = None, timeout: float = 60) -> dict:
        resp = requests.post(f"{self.url}/graphql", json={"query": query, "variables": variables or {}}, timeout=timeout)
        resp.raise_for_status()
        body = resp.json()
        if body.get("errors"):
            raise AssertionError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    def _wait_until_loaded(self) -> None:
        wait_until_location_loaded(self.graphql, self.webserver.proc, self.log_tail, "dagster-webserver")


def wait_for(predicate, timeout: float, what: str, services: DagsterServices | None = None, every: float = 1.0):
    """Poll ``predicate()`` until it returns something truthy; returns it, or raises TimeoutError."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"{what} not reached in {timeout}s (last: {value!r})\n{services.log_tail() if services else ''}")
