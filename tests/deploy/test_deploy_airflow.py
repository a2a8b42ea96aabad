"""deploy/airflow/tweet_assets_dag.py, in an Airflow 3.3.2 venv of its own (built from
deploy/airflow/requirements.txt on first use and cached in ~/.cache/tweet_assets/airflow-venv, or
$TWEET_ASSETS_AIRFLOW_VENV; a changed requirements file updates the cached venv):
- the DagBag imports it with no errors, its tasks mirror Dagster's asset graph, its timetable is a
  daily data-interval one, catchup is off unless asked for and the start date comes from the environment;
- `dag.test()` at TODAY's logical date (real clock) materializes the day that has just ended (not the
  day that started) through Dagster's CLI into a moto S3 lake, recorded in the temp DAGSTER_HOME;
- a day the X API access tier cannot reach is skipped with the reason, no Dagster run launched; the
  DAG's rule is checked at its boundaries (fixed and real clock) and against the x_api source's constant;
- with TWEET_ASSETS_DAGSTER_URL set, the tasks are dagster-airlift operators that launch the runs
  through a Dagster webserver (the daemon dequeuing them) for the day that ended before a past logical date.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import date, datetime, timedelta, timezone
from datetime import time as dt_time
from pathlib import Path

import pytest
import requests
from deploy_helpers import DEPLOY, HERE, REPO, clean_env, free_port, require_project, sqlite_instance_yaml, venv_bin
from tests.helpers import is_bookkeeping

VENV = Path(os.environ.get("TWEET_ASSETS_AIRFLOW_VENV", Path.home() / ".cache" / "tweet_assets" / "airflow-venv"))
DAGS = DEPLOY / "airflow"
#: What the Airflow side installs (apache-airflow, dagster-airlift[in-airflow]), pinned.
REQUIREMENTS = DAGS / "requirements.txt"
RUNNER = HERE / "airflow_runner.py"
ASSETS = ("raw_tweets", "clean_tweets", "s3_parquet")
#: The blocking checks of clean_tweets (tweet_assets/defs/pipeline/checks.py): they must run in either mode.
CLEAN_CHECKS = {"ids_unique_and_not_null", "created_at_in_partition"}
#: A past logical date and the day its data interval covers (the day that ended at that midnight).
PAST_LOGICAL, PAST_DAY = "2024-01-02T00:00:00", "2024-01-01"


def airflow_python() -> Path:
    """The Airflow venv's python, built from REQUIREMENTS (skips if pip cannot install them).

    The venv is keyed on a hash of the requirements file: a cached venv from older requirements
    gets `pip install -r` again (adding or re-pinning packages) before its marker is renewed.
    """
    python = VENV / "bin" / "python"
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()[:16]
    marker = VENV / f".requirements-{digest}"
    if marker.exists():
        return python
    VENV.parent.mkdir(parents=True, exist_ok=True)
    with open(VENV.parent / ".airflow-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():
            return python
        if not python.exists():
            base = getattr(sys, "_base_executable", sys.executable)
            subprocess.run([base, "-m", "venv", "--clear", str(VENV)], check=True, timeout=300)
        proc = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "-r", str(REQUIREMENTS)],
            capture_output=True, text=True, timeout=1500,
        )
        if proc.returncode != 0:
            tail = [line for line in proc.stderr.splitlines() if not line.startswith("WARNING: Location")][-5:]
            pytest.skip(f"pip could not install {REQUIREMENTS.name} into {VENV}: {tail}")
        for old in VENV.glob(".requirements-*"):
            old.unlink()
        marker.write_text(REQUIREMENTS.read_text())
    return python


@pytest.fixture(scope="module")
def airflow(tmp_path_factory):
    """(python, env) for Airflow commands with a migrated SQLite metadata DB in a temp AIRFLOW_HOME."""
    python = airflow_python()
    home = tmp_path_factory.mktemp("airflow_home")
    env = clean_env(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(DAGS),
        AIRFLOW__CORE__UNIT_TEST_MODE="False",
        TWEET_ASSETS_PYTHON=sys.executable,
        TWEET_ASSETS_AIRFLOW_RETRIES="0",
    )
    proc = subprocess.run([str(python), "-m", "airflow", "db", "migrate"], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert (home / "airflow.db").exists()
    return python, env


def run_runner(airflow, *args, timeout=900, **env) -> dict:
    """The runner's JSON result; its Airflow log (stdout) is under the key "log"."""
    python, base_env = airflow
    proc = subprocess.run(
        [str(python), str(RUNNER), args[0], str(DAGS), *args[1:]],
        env={**base_env, **env}, capture_output=True, text=True, timeout=timeout, cwd=base_env["AIRFLOW_HOME"],
    )
    assert proc.returncode == 0, (proc.stdout[-4000:], proc.stderr[-4000:])
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["log"] = proc.stdout
    return result


def today_utc() -> date:
    """Today's UTC date from the real clock (the tests' "today", 2026-11-29 when written)."""
    return datetime.now(timezone.utc).date()


def dagster_asset_graph() -> dict[str, list[str]]:
    """{asset: [upstream assets]} as Dagster itself resolves the code location, without the
    ``compliance`` group (``compliance_ledger`` runs on its own weekly job, not in the daily DAG)."""
    code = (
        "import json\nfrom tweet_assets.definitions import defs\n"
        "g = defs.resolve_asset_graph()\n"
        "print(json.dumps({k.to_user_string(): sorted(p.to_user_string() for p in g.get(k).parent_keys) for k in g.materializable_asset_keys if g.get(k).group_name != 'compliance'}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=clean_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def dagster_job_checks() -> dict[str, list[str]]:
    """{asset: [check names]} of the checks tweets_daily_job runs with each asset, as Dagster resolves
    the job (the freshness check of s3_parquet is left out by the job's selection)."""
    code = (
        "import json\nfrom tweet_assets.definitions import defs\n"
        "job = defs.resolve_job_def('tweets_daily_job')\nout = {}\n"
        "for key in sorted(job.asset_layer.asset_graph.asset_check_keys, key=lambda k: k.name):\n"
        "    out.setdefault(key.asset_key.to_user_string(), []).append(key.name)\n"
        "print(json.dumps(out))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=clean_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def described(airflow) -> dict:
    """The DagBag's view of the DAG in the default (CLI) mode, TWEET_ASSETS_DAGSTER_HOME=/srv/dagster."""
    return run_runner(airflow, "dagbag", TWEET_ASSETS_DAGSTER_HOME="/srv/dagster")


@pytest.mark.slow
def test_dagbag_imports_the_dag_and_its_tasks_mirror_the_asset_graph(described):
    require_project()
    result = described
    assert result["import_errors"] == {}
    assert result["dag_ids"] == ["tweet_assets_daily"]
    dag = result["dag"]
    assert dag["max_active_runs"] == 1
    tasks = dag["tasks"]
    assert {task: spec["upstream"] for task, spec in tasks.items()} == dagster_asset_graph()
    for asset, spec in tasks.items():
        assert spec["operator"] == "BashOperator"
        assert spec["retries"] == 0  # TWEET_ASSETS_AIRFLOW_RETRIES=0 in this environment
        assert spec["retry_exponential_backoff"] == 2.0 and spec["max_retry_delay_s"] == 3600
        assert spec["env"] == {"DAGSTER_HOME": "/srv/dagster"}
        command = spec["bash_command"]
        assert command.startswith(f"exec {sys.executable} -m tweet_assets.cli materialize")  # tweets_daily_job, not the implicit asset job (#32.4)
        # the partition: the run's day (data interval start, or the day before run_after), not the logical date (#15.8, #32.1)
        assert command.endswith(f"--select {asset} --partition {{{{ tweet_assets_day(dag_run) }}}}"), command
    # the access-tier check runs once per run, before the first asset (#15.9); the instance check before each (#32.6)
    assert {a: s["pre_execute"] for a, s in tasks.items()} == {
        "raw_tweets": "skip_unreachable_day", "clean_tweets": "check_dagster_instance", "s3_parquet": "check_dagster_instance"
    }
    # the X API caller runs for one day at a time across runs, backfills included (#32.2)
    assert {a: s["max_active_tis_per_dag"] for a, s in tasks.items()} == {"raw_tweets": 1, "clean_tweets": None, "s3_parquet": None}


@pytest.mark.slow
def test_schedule_is_a_daily_data_interval_and_catchup_is_off_unless_asked(airflow, described):
    """#15.8/#15.9: a data-interval timetable (a run at 00:00 covers the day that ended); catchup off
    by default (no ~1,000 runs from 2024-01-01 on enabling); start date and catchup from the environment."""
    default = described["dag"]
    assert default["timetable"] == "CronDataIntervalTimetable", default["schedule"]
    assert "0 0 * * *" in default["schedule"] and "UTC" in default["schedule"], default["schedule"]
    assert default["catchup"] is False
    assert default["start_date"] == "2024-01-01T00:00:00+00:00"
    start = (today_utc() - timedelta(days=6)).isoformat()
    python, env = airflow
    no_retries_set = {k: v for k, v in env.items() if k != "TWEET_ASSETS_AIRFLOW_RETRIES"}
    asked = run_runner((python, no_retries_set), "dagbag", TWEET_ASSETS_AIRFLOW_START_DATE=start, TWEET_ASSETS_AIRFLOW_CATCHUP="1")
    assert asked["dag"]["catchup"] is True and asked["dag"]["start_date"] == f"{start}T00:00:00+00:00"
    assert {spec["retries"] for spec in asked["dag"]["tasks"].values()} == {3}  # the default when unset


def dagster_runs(home: Path) -> list[dict]:
    """The runs recorded in DAGSTER_HOME: status, partition, materialized assets, checks, airlift tags."""
    code = (
        "import json\nfrom dagster import DagsterInstance, DagsterEventType\n"
        "i = DagsterInstance.get()\nout = []\n"
        "for r in i.get_runs():\n"
        "    ev = lambda t: [e.event_log_entry.dagster_event.event_specific_data for e in i.get_records_for_run(r.run_id, of_type=t).records]\n"
        "    out.append({'status': r.status.value, 'partition': r.tags.get('dagster/partition'), 'job': r.job_name,"
        " 'assets': sorted(m.materialization.asset_key.to_user_string() for m in ev(DagsterEventType.ASSET_MATERIALIZATION)),"
        " 'checks': sorted(c.check_name for c in ev(DagsterEventType.ASSET_CHECK_EVALUATION)),"
        " 'airlift': {k.split('/')[-1]: v for k, v in r.tags.items() if k.startswith('dagster-airlift/')}})\n"
        "print(json.dumps(out))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=clean_env(DAGSTER_HOME=str(home)), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def dagster_home(tmp_path) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    # the production instance, on SQLite with local compute logs (the DAG is under test, not the storage)
    (home / "dagster.yaml").write_text(sqlite_instance_yaml((DEPLOY / "dagster.yaml").read_text()))
    return home


def assert_one_run_per_asset(runs: list[dict], day: str) -> None:
    assert sorted((r["status"], r["partition"], tuple(r["assets"])) for r in runs) == sorted(
        ("SUCCESS", day, (asset,)) for asset in ASSETS
    ), runs
    clean = next(r for r in runs if r["assets"] == ["clean_tweets"])
    assert CLEAN_CHECKS <= set(clean["checks"]), clean


@pytest.mark.slow
def test_dag_test_at_todays_logical_date_materializes_the_day_that_ended_through_the_dagster_cli(airflow, tmp_path):
    """#15.8 at today's date (real clock): the run at today 00:00 UTC materializes yesterday, which
    Dagster has as a partition (the old `@daily` CronTriggerTimetable asked for today: rejected)."""
    require_project()
    import boto3
    import pyarrow.parquet as pq
    from moto.server import ThreadedMotoServer

    today = today_utc()
    day = (today - timedelta(days=1)).isoformat()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        bucket = f"airflow-{uuid.uuid4().hex[:10]}"
        aws = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint}
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
        s3.create_bucket(Bucket=bucket)
        home = dagster_home(tmp_path)
        result = run_runner(
            airflow, "test", f"{today.isoformat()}T00:00:00",
            TWEET_ASSETS_DAGSTER_HOME=str(home), TWEET_ASSETS_LAKE_URL=f"s3://{bucket}/lake",
            TWEET_ASSETS_SAMPLE_POSTS="20", **aws,
        )
        assert (result["state"], result["tasks"]) == ("success", {a: "success" for a in ASSETS}), result["log"][-3000:]
        assert result["data_interval"] == [f"{day}T00:00:00+00:00", f"{today.isoformat()}T00:00:00+00:00"]
        keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))
        # the day's objects (the lake also keeps its own write-check object outside the partitions,
        # and the day's lease and lineage records under clean_tweets/_leases, _lineage)
        assert [key for key in keys if "/dt=" in key and not is_bookkeeping(key)] == [
            f"lake/clean_tweets/dt={day}/part-00000.parquet",
            f"lake/raw_tweets/dt={day}/part-00000.jsonl.gz",
            f"lake/tweets/dt={day}/part-00000.parquet",
        ]
        local = tmp_path / "tweets.parquet"
        s3.download_file(bucket, f"lake/tweets/dt={day}/part-00000.parquet", str(local))
        assert pq.read_table(local).num_rows > 0
    finally:
        server.stop()
    assert_one_run_per_asset(dagster_runs(home), day)


X_API_SEARCH = {"TWEET_ASSETS_SOURCE": "x_api", "X_QUERY": "from:XDevelopers", "X_FULL_ARCHIVE": "0"}


@pytest.mark.slow
def test_a_day_recent_search_cannot_reach_is_skipped_with_the_reason(airflow, tmp_path):
    """#15.9: x_api search without full-archive access, a past logical date: the run is skipped with a
    message naming the day, the 7-day limit and X_FULL_ARCHIVE, before any Dagster run (the old DAG
    ran Dagster, which failed, and retried, once per day of the catchup)."""
    home = dagster_home(tmp_path)
    # X_BEARER_TOKEN: a placeholder (the source needs one set); no request is ever sent
    result = run_runner(airflow, "test", PAST_LOGICAL, TWEET_ASSETS_DAGSTER_HOME=str(home), X_BEARER_TOKEN="placeholder", **X_API_SEARCH)
    assert (result["state"], result["tasks"]) == ("success", {a: "skipped" for a in ASSETS}), result["log"][-3000:]
    skipped = [line for line in result["log"].splitlines() if "Skipping task" in line]
    assert len(skipped) == 1, result["log"][-3000:]
    assert f"partition {PAST_DAY} is older than the 7 days X API v2 recent search covers" in skipped[0]
    assert "X_FULL_ARCHIVE=1" in skipped[0] and "placeholder" not in result["log"]
    assert sorted(p.name for p in home.iterdir()) == ["dagster.yaml"]  # no Dagster process touched the instance


@pytest.mark.slow
def test_a_run_without_a_data_interval_takes_the_day_that_ended_before_its_run_after(airflow):
    """#32.1, both modes' rule (run_day; the real trigger path is in test_deploy_airflow_scheduler.py):
    no data interval (`airflow dags trigger` without -l on 3.3.2) -> the UTC day before run_after's
    UTC day; a data interval -> its start."""
    assert run_runner(airflow, "gate", "[]")["run_days"] == ["2026-11-30", "2026-11-30", "2026-11-29", "2026-11-20"]


@pytest.mark.slow
def test_cli_mode_without_the_instance_configuration_fails_at_once_naming_it(airflow, tmp_path):
    """#32.6: a DAGSTER_HOME without dagster.yaml fails the first task before Dagster runs (no "No
    dagster instance configuration file" notice, no telemetry banner, nothing written there), with
    a line naming the file and the settings; AirflowFailException: not retried."""
    home = tmp_path / "no_instance"
    home.mkdir()
    result = run_runner(airflow, "test", PAST_LOGICAL, TWEET_ASSETS_DAGSTER_HOME=str(home), TWEET_ASSETS_AIRFLOW_RETRIES="2")
    assert (result["state"], result["tasks"]["raw_tweets"]) == ("failed", "failed"), result["log"][-3000:]
    assert f"no Dagster instance configuration at '{home}/dagster.yaml': set TWEET_ASSETS_DAGSTER_HOME" in result["log"]
    assert "No dagster instance configuration file" not in result["log"] and "we collect usage statistics" not in result["log"]
    assert "up_for_retry" not in result["log"].lower().replace(" ", "_"), result["log"][-3000:]
    assert list(home.iterdir()) == []


@pytest.mark.slow
def test_retry_delays_are_airflows_exponential_backoff_with_a_per_task_offset(airflow):
    """#32.3: Airflow 3.3.2 computes the delay before retry n as b + hash % b, b = 300 s * 2^(n-1)
    (TaskInstance.next_retry_datetime), capped at max_retry_delay 1 h: [5, 10), [10, 20), [20, 40)
    minutes, then 1 h; the DAG's docstring and deploy/README.md say so (not "5, 10, 20 minutes")."""
    delays = run_runner(airflow, "retries", "40")
    delays.pop("log")
    for task, per_try in delays.items():
        for try_number, seconds in per_try.items():
            base = 300 * 2 ** (int(try_number) - 1)
            assert all(min(base, 3600) <= s <= min(2 * base - 1, 3600) for s in seconds), (task, try_number, seconds)
        assert len(set(per_try["1"])) > 1, per_try  # an offset that varies with the task instance
    text = " ".join((DAGS / "tweet_assets_dag.py").read_text().split())
    readme = " ".join((DEPLOY / "README.md").read_text().split())
    for doc in (text, readme):
        assert "[5, 10), [10, 20) and [20, 40) minutes" in doc
        assert "next_retry_datetime" in doc
    assert "5, 10, 20 min" not in text and "5, 10, 20 minutes" not in readme


def x_api_source_refuses(day: str, now: datetime, full_archive: bool) -> bool:
    """Whether the x_api source (search mode) refuses ``day`` at ``now`` for lack of full-archive access.

    Asks the source itself through its public ``pages()``: a refused day raises before any request;
    an accepted one goes on to a request, here to a closed loopback port (no retries), which fails
    with a different error.
    """
    import logging

    from tweet_assets.sources.x_api import XApiError, XApiSource

    source = XApiSource(
        bearer_token="placeholder", mode="search", query="from:XDevelopers", full_archive=full_archive,
        base_url=f"http://127.0.0.1:{free_port()}", max_retries=0,
    ).with_clock(lambda seconds: None, lambda: now)
    start = datetime.fromisoformat(day).replace(tzinfo=timezone.utc)
    try:
        next(iter(source.pages(start, start + timedelta(days=1), logging.getLogger("test"))))
    except XApiError as error:
        return "older than the 7 days recent search covers" in str(error)
    return False


@pytest.mark.slow
def test_access_tier_rule_at_its_boundaries_is_the_x_api_sources_rule(airflow):
    """#15.9: the DAG skips exactly the search days the x_api source refuses without X_FULL_ARCHIVE
    (day start < now - 7 d + 15 min), at fixed instants around the boundary and at today's clock, and
    never timelines, full-archive access or other sources."""
    require_project()
    boundary = datetime(2026, 11, 28, 23, 45, tzinfo=timezone.utc)  # now - 7 d + 15 min = 2026-11-22T00:00Z
    now = datetime.now(timezone.utc)
    # at today's clock: the first day the rule lets through, and the day before it. Not "today - 6 d":
    # from 23:45 UTC on, that day's start is before now - 7 d + 15 min too (seen failing at 23:5x)
    limit = now - timedelta(days=7) + timedelta(minutes=15)
    first = limit.date() if limit.timetz() == dt_time(0, tzinfo=timezone.utc) else limit.date() + timedelta(days=1)
    search_cases = [
        ("2026-11-22", boundary, True),
        ("2026-11-22", boundary + timedelta(seconds=1), False),
        ("2026-11-21", boundary, False),
        ("2026-11-23", boundary + timedelta(seconds=1), True),
        ("2026-11-22", datetime(2026, 11, 29, tzinfo=timezone.utc), False),  # the scheduled run's midnight
        (first.isoformat(), now, True),
        ((first - timedelta(days=1)).isoformat(), now, False),
    ]
    full = {**X_API_SEARCH, "X_FULL_ARCHIVE": "1"}
    timeline = {"TWEET_ASSETS_SOURCE": "x_api", "X_ACCOUNTS": "XDevelopers,TwitterDev"}
    other_cases = [
        ({**X_API_SEARCH, "X_ACCOUNTS": "XDevelopers"}, False),  # a query wins: search
        (full, True),
        ({**full, "X_FULL_ARCHIVE": "yes"}, True),
        (timeline, True),
        ({"TWEET_ASSETS_SOURCE": "sample"}, True),
        ({}, True),
    ]
    cases = [(d, X_API_SEARCH, n.isoformat()) for d, n, _ in search_cases]
    cases += [(PAST_DAY, env, now.isoformat()) for env, _ in other_cases]
    result = run_runner(airflow, "gate", json.dumps([{"day": d, "env": e, "now": n} for d, e, n in cases]))
    reachable = [answer is None for answer in result["answers"]]
    assert reachable == [ok for *_, ok in search_cases] + [ok for _, ok in other_cases], list(zip(cases, result["answers"]))
    # the source itself draws the line at the same place (with and without full-archive access)
    source_reachable = [not x_api_source_refuses(d, n, full_archive=False) for d, n, _ in search_cases]
    assert source_reachable == reachable[: len(search_cases)]
    assert not any(x_api_source_refuses(d, n, full_archive=True) for d, n, _ in search_cases)
    assert result["bad_start_date"] == "TWEET_ASSETS_AIRFLOW_START_DATE='29/11/2026' is not a date: set it as YYYY-MM-DD (UTC)."


def start(argv, env, log: Path, cwd: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen(argv, env=env, cwd=str(cwd), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.slow
def test_dag_launches_through_the_dagster_webserver_with_dagster_airlift(airflow, tmp_path):
    """#15.10 (and #15.8 at a past date): with TWEET_ASSETS_DAGSTER_URL the tasks are dagster-airlift
    BaseMaterializeAssetsOperators; `dag.test()` at 2024-01-02 launches one run per asset for
    2024-01-01 through a real webserver + daemon, tagged with the Airflow DAG, run and task."""
    require_project()
    home = dagster_home(tmp_path)
    lake = tmp_path / "lake"
    port = free_port()
    env = clean_env(DAGSTER_HOME=str(home), TWEET_ASSETS_LAKE_URL=str(lake), TWEET_ASSETS_SAMPLE_POSTS="20", TWEET_ASSETS_START_DATE="2024-01-01")
    workspace = ["--workspace", str(REPO / "workspace.yaml")]
    # create the instance's SQLite storage once, before two processes would race to migrate it
    subprocess.run([venv_bin("dagster"), "instance", "migrate"], env=env, cwd=str(home), check=True, capture_output=True, timeout=120)
    web = start([venv_bin("dagster-webserver"), "--host", "127.0.0.1", "--port", str(port), *workspace], env, tmp_path / "web.log", home)
    daemon = start([venv_bin("dagster-daemon"), "run", *workspace], env, tmp_path / "daemon.log", home)
    url = f"http://127.0.0.1:{port}"
    try:
        described = run_runner(airflow, "dagbag", TWEET_ASSETS_DAGSTER_URL=url)
        assert described["import_errors"] == {}
        for asset, spec in described["dag"]["tasks"].items():
            assert "dagster_airlift.in_airflow.materialize_assets_operator.BaseMaterializeAssetsOperator" in spec["bases"], spec
            assert spec["asset_key_paths"] == [[asset]]
        deadline = time.monotonic() + 150
        while True:
            assert web.poll() is None, (tmp_path / "web.log").read_text()[-3000:]
            try:
                if requests.get(f"{url}/server_info", timeout=5).ok:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "webserver did not start"
            time.sleep(1)
        result = run_runner(
            airflow, "test", PAST_LOGICAL, TWEET_ASSETS_DAGSTER_URL=url, TWEET_ASSETS_DAGSTER_HOME=str(home), TWEET_ASSETS_DAGSTER_POLL_SECONDS="1"
        )
        assert (result["state"], result["tasks"]) == ("success", {a: "success" for a in ASSETS}), (
            result["log"][-3000:], (tmp_path / "daemon.log").read_text()[-3000:]
        )
        # the log names the job launched (#32.6): airlift's own line and ours, never __ASSET_JOB
        assert f"of tweets_daily_job for partition {PAST_DAY}: {url}/runs/" in result["log"]
        assert "'tweets_daily_job')" in result["log"] and "__ASSET_JOB" not in result["log"], result["log"][-3000:]
    finally:
        stop(daemon)
        stop(web)
    assert (lake / "tweets" / f"dt={PAST_DAY}" / "part-00000.parquet").exists()
    runs = dagster_runs(home)
    assert_one_run_per_asset(runs, PAST_DAY)
    assert sorted(r["airlift"]["airflow-task-id"] for r in runs) == sorted(ASSETS)
    assert {r["airlift"]["airflow-dag-id"] for r in runs} == {"tweet_assets_daily"}
    assert {r["job"] for r in runs} == {"tweets_daily_job"}
    # the job's checks of each asset, as Dagster resolves tweets_daily_job, never the freshness check (#32.4)
    job_checks = dagster_job_checks()
    assert not [c for checks in job_checks.values() for c in checks if "freshness" in c], job_checks
    assert {r["assets"][0]: r["checks"] for r in runs} == {a: sorted(job_checks.get(a, [])) for a in ASSETS}, runs
    assert not [r for r in runs if any("freshness" in check for check in r["checks"])], runs
