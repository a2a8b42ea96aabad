"""The interleavings of #36 with two real runs, each a process of its own (tests/lake/fencing_run.py),
the pause forced deterministically: run A stops itself (SIGSTOP) at a chosen point, or its requests
are held in the tests' S3 proxy (tests/s3_fault_proxy.py); the driver waits, by the storage's clock,
until A's lease has lapsed (A runs with a 2 s TTL), lets run B take the day over, and resumes A
(SIGCONT, or the proxy's release) at the chosen moment. Nothing waits on a sleep of a guessed length.

Used by tests/defs/test_concurrency.py, and by ``python -m tests.lake.fencing_run measure`` for the
figures (posts in and published per run) before and after fencing.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DAY = "2024-03-05"
A_POSTS, B_POSTS = 50, 80
A_SEED, B_SEED = 7, 8
A_TTL_S = "2"
BOUND_S = 300  # every wait is for a condition; this only stops a broken case hanging


def until(condition, what: str, bound: float = BOUND_S) -> None:
    deadline = time.monotonic() + bound
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting for {what} after {bound} s")
        time.sleep(0.02)


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


@dataclass
class Place:
    """Where a case runs: the lake URL, the S3 endpoint (None: a local lake), the shared DAGSTER_HOME."""

    lake: str
    endpoint: str | None
    home: str
    #: PYTHONPATH of the code the runs execute (default: this checkout; FENCING_RUNS_CODE=<an older
    #: tree> runs the same cases against it, to watch them fail there)
    code: str = field(default_factory=lambda: os.environ.get("FENCING_RUNS_CODE", ""))

    def open(self):
        from tweet_assets.lake.store import open_lake

        if self.endpoint is None:
            return open_lake(self.lake)
        import boto3

        return open_lake(self.lake, lambda: boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1"))


@dataclass
class Run:
    """One run of the day in a process of its own."""

    name: str
    place: Place
    posts: int
    seed: int
    stop: str | None = None
    endpoint: str | None = None  # another endpoint for this run (the holding proxy)
    env: dict = field(default_factory=dict)
    select: str = ""
    proc: subprocess.Popen | None = None
    outcome: dict | None = None

    def start(self) -> "Run":
        self.marker = os.path.join(self.place.home, f"stopped-{self.name}-{uuid.uuid4().hex[:6]}")
        args = [sys.executable, "-m", "tests.lake.fencing_run", "--lake", self.place.lake, "--posts", str(self.posts), "--seed", str(self.seed), "--day", DAY, "--marker", self.marker]
        if self.stop:
            args += ["--stop", self.stop]
        endpoint = self.endpoint or self.place.endpoint
        if endpoint:
            args += ["--endpoint", endpoint]
        if self.select:
            args += ["--select", self.select]
        env = {**os.environ, "TWEET_ASSETS_START_DATE": "2006-03-21", "DAGSTER_HOME": self.place.home, **self.env}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (self.place.code, str(REPO)) if p)
        if endpoint:
            env["AWS_ENDPOINT_URL"] = endpoint
        # the code under test first: `python -m` puts the working directory before PYTHONPATH
        self.proc = subprocess.Popen(args, cwd=self.place.code or str(REPO), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        return self

    def stopped(self) -> None:
        """Wait until the process has stopped itself at its stop point."""
        until(lambda: (os.path.exists(self.marker) and _state(self.proc.pid) == "T") or self.proc.poll() is not None, f"run {self.name} to reach {self.stop}")
        if self.proc.poll() is not None:
            raise AssertionError(f"run {self.name} ended before {self.stop}: {self.proc.stderr.read()[-3000:]}")

    def resume(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)

    def result(self) -> dict:
        out, err = self.proc.communicate(timeout=BOUND_S)
        lines = [line for line in out.splitlines() if line.startswith("{")]
        if not lines:
            raise AssertionError(f"run {self.name} printed no result (exit {self.proc.returncode}): {err[-3000:]}")
        self.outcome = json.loads(lines[-1])
        return self.outcome

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)


def lapsed(place: Place) -> bool:
    """Run A's lease of the day has lapsed, as a taker judges it (the storage's clock)."""
    import orjson

    from tweet_assets.lake.leases import DayLeases, lease_key

    lake = place.open()
    read = lake.read_record(lease_key(DAY))
    return read.data is not None and DayLeases(lake, "observer", "x")._dead(orjson.loads(read.data), read)


def _bytes(place: Place, key: str) -> bytes | None:
    lake = place.open()
    return lake.read_bytes(key) if lake.size(key) is not None else None


def ids_in(place: Place, table: str) -> list[int]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = _bytes(place, f"{table}/dt={DAY}/part-00000.parquet")
    return [] if data is None else pq.read_table(pa.BufferReader(data), columns=["id"]).column("id").to_pylist()


def raw_ids(place: Place) -> list[int]:
    data = _bytes(place, f"raw_tweets/dt={DAY}/part-00000.jsonl.gz")
    if data is None:
        return []
    return [int(p["id"]) for line in gzip.decompress(data).splitlines() if line.strip() for p in (json.loads(line).get("data") or [])]


def source_ids(posts: int, seed: int) -> set[int]:
    from tweet_assets.sources.sample import SampleSource

    return {int(p["id"]) for page in SampleSource(posts_per_day=posts, seed=seed).day_pages(DAY) for p in (json.loads(page.body).get("data") or [])}


def figures(place: Place) -> dict:
    """What the lake holds for the day, counted by reading its objects, and whose posts they are."""
    a, b = source_ids(A_POSTS, A_SEED), source_ids(B_POSTS, B_SEED)
    out = {}
    for zone, found in (("raw", raw_ids(place)), ("clean", ids_in(place, "clean_tweets")), ("published", ids_in(place, "tweets"))):
        found = set(found)
        out[zone] = len(found)
        out[f"{zone}_is"] = "B" if found == b else "A" if found == a else "mixed/none"
    out["b_posts_lost"] = len(b - set(ids_in(place, "tweets")))
    out["record_rows"] = latest_published_row_count(place)
    return out


def latest_published_row_count(place: Place) -> int | None:
    from dagster import AssetKey, AssetRecordsFilter, DagsterInstance
    from dagster._core.instance.ref import InstanceRef

    with DagsterInstance.from_ref(InstanceRef.from_dir(place.home)) as instance:
        records = instance.fetch_materializations(AssetRecordsFilter(asset_key=AssetKey("s3_parquet"), asset_partitions=[DAY]), limit=1).records
        return records[0].asset_materialization.metadata["dagster/row_count"].value if records else None


# --- the cases -------------------------------------------------------------------------------------

A_ENV = {"TWEET_ASSETS_LEASE_TTL_S": A_TTL_S}


def case(place: Place, name: str, proxy=None) -> dict:
    """Run one interleaving; returns the runs' outcomes and the day's figures afterwards.

    - ``1``: A's raw write, held past its lease, is sent after B stored its raw object (B then goes on);
    - ``1b``: A's raw write is sent after B took the day over but before B's own raw write;
    - ``2``: A's raw write is sent after B finished the day and released it;
    - ``2-fetch``: A stopped during its fetch until B finished the day;
    - ``3``: (S3, ``proxy`` holding A's CreateMultipartUpload of its raw object) as 2, a multipart upload;
    - ``8``: A stopped at s3_parquet's copy, after reading its clean object's footer, until B finished;
    - ``8b``: as 8, but B materializes raw_tweets and clean_tweets only (nothing published by B).
    With ``proxy``, A's pause is its requests held in the proxy (A's endpoint) instead of SIGSTOP.
    """
    stop = {"1": "raw-write", "1b": "raw-write", "2": "raw-write", "2-fetch": "fetch", "3": None, "8": "copy", "8b": "copy"}[name]
    a = Run("A", place, A_POSTS, A_SEED, stop=None if proxy is not None else stop, env=dict(A_ENV), endpoint=proxy.url if proxy is not None else None)
    b_stop = {"1": "after-raw", "1b": "raw-write"}.get(name)
    b = Run("B", place, B_POSTS, B_SEED, stop=b_stop, select="raw_tweets,clean_tweets" if name == "8b" else "")
    try:
        a.start()
        if proxy is not None:
            until(lambda: proxy.held.is_set() or a.proc.poll() is not None, "run A's request to be held")
            assert proxy.held.is_set(), a.proc.stderr.read()[-3000:]
        else:
            a.stopped()
        until(lambda: lapsed(place), "run A's lease to lapse by the storage's clock")
        b.start()
        if b_stop:
            b.stopped()
        else:
            b.result()
        if proxy is not None:
            proxy.release()
        else:
            a.resume()
        a.result()
        if b_stop:
            b.resume()
            b.result()
    finally:
        a.kill()
        b.kill()
    return {"A": a.outcome, "B": b.outcome, **figures(place)}


def _summary(name: str, out: dict) -> str:
    a, b = out["A"], out["B"]
    return (
        f"case {name:8} A: {A_POSTS} posts in, {'SUCCESS' if a['success'] else 'FAILED '}  B: {B_POSTS} posts in, {'SUCCESS' if b['success'] else 'FAILED '}  "
        f"lake: raw {out['raw']} ({out['raw_is']}), clean {out['clean']} ({out['clean_is']}), published {out['published']} ({out['published_is']}); "
        f"B's posts missing from the published day: {out['b_posts_lost']}; latest s3_parquet record: dagster/row_count {out['record_rows']}"
    )


def measure(argv: list[str]) -> int:
    """``[--s3] [--code PATH] [cases...]``: run the cases on a fresh lake each and print one line per case."""
    use_s3 = "--s3" in argv
    code = argv[argv.index("--code") + 1] if "--code" in argv else ""
    names = [a for a in argv if a in ("1", "1b", "2", "2-fetch", "8", "8b")] or ["1", "2", "2-fetch"]
    server = None
    if use_s3:
        from moto.server import ThreadedMotoServer

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1", AWS_REGION="us-east-1")
    try:
        for name in names:
            home = tempfile.mkdtemp(prefix="fencing-home-")
            if use_s3:
                import boto3

                bucket = f"fence-{uuid.uuid4().hex[:10]}"
                boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
                place = Place(f"s3://{bucket}/lake", endpoint, home, code)
            else:
                place = Place(os.path.join(home, "lake"), None, home, code)
            out = case(place, name)
            print(_summary(name, out), flush=True)
            for run in ("A", "B"):
                if not out[run]["success"]:
                    print(f"    {run} failed: {out[run]['failure'][:600]}")
    finally:
        if server is not None:
            server.stop()
    return 0
