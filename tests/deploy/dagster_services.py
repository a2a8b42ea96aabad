"""``dagster-webserver`` and ``dagster-daemon`` as two separate processes, as the systemd units
run them, with a given ``dagster.yaml`` and environment, for the durable-state and ECS tests.

Each service runs in a process group of its own (what a systemd unit's control group is to
``systemctl stop``): :meth:`Service.stop` sends SIGTERM to the group, as systemd does, then
SIGKILL after a grace period, so no server outlives a test.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from deploy_helpers import REPO, free_port, venv_bin

from tests.dagit_server import log_tail, post_graphql, stop_process_group, wait_until_location_loaded



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
        return log_tail(self.log_path, chars)

    def stop(self, grace_s: float = 20) -> None:
        """As ``systemctl stop`` with KillMode=control-group (tests.dagit_server.stop_process_group)."""
        if self.proc is None:
            return
        stop_process_group(self.proc, grace_s)
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
        return post_graphql(self.url, query, variables, timeout)

    def _wait_until_loaded(self) -> None:
        wait_until_location_loaded(self.graphql, self.webserver.proc, self.log_tail, "dagster-webserver")


def wait_for(predicate, timeout: float, what: str, services: DagsterServices | None = None, every: float = 1.0, progress=None):
    """Poll ``predicate()`` until it returns something truthy; returns it, or raises TimeoutError.

    With ``progress`` (a callable returning a comparable snapshot, e.g. the runs' statuses), the
    wait is bounded by progress, not wall time: ``timeout`` is the longest stretch without a change
    of ``progress()``, and the deadline moves on at each change (a loaded machine is slower, not stuck).
    """
    deadline = time.monotonic() + timeout
    value = None
    seen = progress() if progress else None
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
        if progress:
            now = progress()
            if now != seen:
                seen, deadline = now, time.monotonic() + timeout
    stalled = f" without progress (last: {seen!r})" if progress else ""
    raise TimeoutError(f"{what} not reached in {timeout}s{stalled} (last: {value!r})\n{services.log_tail() if services else ''}")
