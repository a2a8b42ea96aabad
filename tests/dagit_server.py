"""A real ``dg dev`` (``dagster dev``'s webserver + daemon, as ``make dagit`` starts them) on a free loopback port, for the Dagit tests.

It runs the project's ``workspace.yaml`` with a temporary ``DAGSTER_HOME`` (telemetry off), a
temporary local lake, the ``sample`` source at 50 posts a day and partitions from 2024-01-01, in a
process group of its own that :meth:`DagitServer.stop` ends whole (webserver, daemon, code server
and any run workers), so no server outlives the test module.

Use: ``server = start_dagit(tmp_path_factory.mktemp("dagit"))`` in a module-scoped fixture, and
``server.stop()`` after it; the GraphQL helpers below are shared by both Dagit test modules.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
START_DATE = "2024-01-01"
SAMPLE_POSTS = 50
ASSETS = ("raw_tweets", "clean_tweets", "s3_parquet")
#: How long ``dagster dev`` may take to answer with the code location loaded (2 cores, cold imports).
START_TIMEOUT_S = 150

LOCATION_STATUS = """
query { workspaceOrError { __typename ... on Workspace { locationEntries { name
  loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""


def post_graphql(url: str, query: str, variables: dict | None = None, timeout: float = 30) -> dict:
    """POST a GraphQL query to ``<url>/graphql``; returns ``data``, raising on transport or GraphQL errors."""
    resp = requests.post(f"{url}/graphql", json={"query": query, "variables": variables or {}}, timeout=timeout)
    resp.raise_for_status()
    body = resp.json()
    if body.get("errors"):
        raise AssertionError(f"GraphQL errors: {body['errors']}")
    return body["data"]


def log_tail(path: Path, chars: int = 4000) -> str:
    """The last ``chars`` characters of a server's log file, or ``(no log)``."""
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


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


def stop_process_group(proc: subprocess.Popen, grace_s: float = 20) -> None:
    """As ``systemctl stop`` with KillMode=control-group: SIGTERM to every process of ``proc``'s
    group (started with ``start_new_session``), wait until all are gone, SIGKILL what is left after
    ``grace_s`` (TimeoutStopSec): children (daemon, code server, run workers) may outlive the parent."""
    try:
        pgid = os.getpgid(proc.pid)
    except ProcessLookupError:
        pgid = None
    if pgid is not None:
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            proc.poll()  # reap the main process so it does not count as alive
            if not live_members(pgid):
                break
            time.sleep(0.2)
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=10)


def wait_until_location_loaded(graphql, proc: subprocess.Popen, log_tail, what: str) -> None:
    """Poll Dagit's GraphQL until every code location is LOADED (``graphql(query, timeout=)``
    returns the ``data``); raise if ``proc`` exits, a location failed to load, or
    ``START_TIMEOUT_S`` passes, with ``log_tail()`` in the message. Used by this server and by
    tests/deploy/dagster_services.py."""
    deadline = time.monotonic() + START_TIMEOUT_S
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{log_tail()}")
        try:
            entries = graphql(LOCATION_STATUS, timeout=5)["workspaceOrError"]["locationEntries"]
            last = repr(entries)
            if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                errors = [e for e in entries if e["locationOrLoadError"]["__typename"] == "PythonError"]
                if errors:
                    raise RuntimeError(f"code location failed to load: {errors}")
                return
        except (requests.RequestException, ValueError, KeyError) as exc:
            last = repr(exc)
        time.sleep(1)
    raise TimeoutError(f"{what} did not load the code location in {START_TIMEOUT_S}s ({last}):\n{log_tail()}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def dagster_executable(name: str = "dagster") -> str:
    exe = Path(sys.executable).with_name(name)
    return str(exe) if exe.exists() else name


@dataclass
class DagitServer:
    root: Path
    port: int = 0
    proc: subprocess.Popen | None = None
    env: dict = field(default_factory=dict)
    #: the dg project it runs in (a copy of the checkout, with PYTHONPATH in ``extra_env``, for
    #: tests that add objects under defs/) and what the environment adds or overrides
    project: Path = REPO
    extra_env: dict = field(default_factory=dict)

    @property
    def home(self) -> Path:
        return self.root / "dagster_home"

    @property
    def lake(self) -> Path:
        return self.root / "lake"

    @property
    def log_path(self) -> Path:
        return self.root / "dagster-dev.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def parquet(self, day: str) -> Path:
        """Where ``s3_parquet`` writes ``day`` (the published Hive layout)."""
        return self.lake / "tweets" / f"dt={day}" / "part-00000.parquet"

    def log_tail(self, chars: int = 4000) -> str:
        return log_tail(self.log_path, chars)

    def graphql(self, query: str, variables: dict | None = None, timeout: float = 30) -> dict:
        """POST a GraphQL query; returns ``data``, raising on transport or GraphQL errors."""
        return post_graphql(self.url, query, variables, timeout)

    def start(self) -> "DagitServer":
        self.home.mkdir(parents=True, exist_ok=True)
        self.lake.mkdir(parents=True, exist_ok=True)
        # No telemetry, and no first-visit "Join the Dagster community" dialog (it covered buttons
        # the browser tests click: dagster/_core/instance settings `nux.enabled`).
        (self.home / "dagster.yaml").write_text("telemetry:\n  enabled: false\nnux:\n  enabled: false\n")
        self.port = free_port()
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("TWEET_ASSETS_", "DAGSTER_"))},
            "DAGSTER_HOME": str(self.home),
            "TWEET_ASSETS_LAKE_URL": str(self.lake),
            "TWEET_ASSETS_SOURCE": "sample",
            "TWEET_ASSETS_SAMPLE_POSTS": str(SAMPLE_POSTS),
            "TWEET_ASSETS_START_DATE": START_DATE,
            "DAGSTER_DISABLE_TELEMETRY": "1",
            "PYTHONUNBUFFERED": "1",
            # `dg dev` runs in the project's virtual environment (the one `make dagit` sets up)
            "VIRTUAL_ENV": str(Path(sys.executable).parent.parent),
            **self.extra_env,
        }
        # create the instance's SQLite storage once, before the webserver and daemon race to migrate it
        subprocess.run([dagster_executable(), "instance", "migrate"], cwd=self.project, env=self.env, check=True, capture_output=True, timeout=120)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                # what `make dagit` runs: dg dev on the project ([tool.dg] in pyproject.toml)
                [dagster_executable("dg"), "dev", "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=self.project,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group, ended whole in stop()
            )
        try:
            self._wait_until_loaded()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_loaded(self) -> None:
        wait_until_location_loaded(self.graphql, self.proc, self.log_tail, "dg dev")

    def stop(self) -> None:
        """End the whole process group: SIGTERM, then SIGKILL what is left after 20 s."""
        if self.proc is None:
            return
        stop_process_group(self.proc, 20)
        self.proc = None


def start_dagit(root: Path) -> DagitServer:
    return DagitServer(root=Path(root)).start()


# --- GraphQL used by both tests -----------------------------------------------------------------

BACKFILL_STATUS = """
query ($id: String!) { partitionBackfillOrError(backfillId: $id) { __typename
  ... on PartitionBackfill { id status numPartitions partitionNames isAssetBackfill
    error { message } }
  ... on PythonError { message } } }
"""

ASSET_MATERIALIZATIONS = """
query ($key: AssetKeyInput!, $partitions: [String!]) { assetOrError(assetKey: $key) { __typename
  ... on Asset { assetMaterializations(partitions: $partitions) { partition runId
    metadataEntries { label __typename
      ... on IntMetadataEntry { intValue } ... on FloatMetadataEntry { floatValue }
      ... on TextMetadataEntry { text } ... on PathMetadataEntry { path } } } } } }
"""

CHECK_EXECUTIONS = """
query ($key: AssetKeyInput!, $name: String!) { assetCheckExecutions(assetKey: $key, checkName: $name, limit: 20) {
  status partition evaluation { success } } }
"""

FINISHED = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


def wait_for_backfill(server: DagitServer, backfill_id: str, timeout: float = 150) -> dict:
    """Poll the backfill until it is finished; returns its last ``PartitionBackfill``."""
    deadline = time.monotonic() + timeout
    state = {}
    while time.monotonic() < deadline:
        state = server.graphql(BACKFILL_STATUS, {"id": backfill_id})["partitionBackfillOrError"]
        if state.get("status") in FINISHED:
            return state
        time.sleep(2)
    raise TimeoutError(f"backfill {backfill_id} not finished in {timeout}s: {state}\n{server.log_tail()}")


def materializations(server: DagitServer, asset: str, partitions: list[str]) -> dict[str, dict]:
    """``{partition: {label: value}}`` of the latest materialization of each partition."""
    data = server.graphql(ASSET_MATERIALIZATIONS, {"key": {"path": [asset]}, "partitions": partitions})["assetOrError"]
    assert data["__typename"] == "Asset", data
    out: dict[str, dict] = {}
    for event in data["assetMaterializations"]:  # newest first
        if event["partition"] in out:
            continue
        values = {"_run_id": event["runId"]}
        for entry in event["metadataEntries"]:
            for key in ("intValue", "floatValue", "text", "path"):
                if key in entry:
                    values[entry["label"]] = entry[key]
        out[event["partition"]] = values
    return out


def check_executions(server: DagitServer, asset: str, check: str) -> list[dict]:
    return server.graphql(CHECK_EXECUTIONS, {"key": {"path": [asset]}, "name": check})["assetCheckExecutions"]
