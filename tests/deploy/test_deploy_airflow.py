"""deploy/airflow/tweet_assets_dag.py, in an Airflow 3.3.2 venv of its own (created on first use
and cached in ~/.cache/tweet_assets/airflow-venv, or $TWEET_ASSETS_AIRFLOW_VENV):
- the DagBag imports it with no errors, and its tasks mirror Dagster's asset graph;
- after `airflow db migrate` on SQLite in a temp AIRFLOW_HOME, `dag.test()` for one logical date
  materializes the three assets through Dagster's CLI into a moto S3 lake, the runs are recorded in
  the temp DAGSTER_HOME, and the Parquet is there afterwards;
- with TWEET_ASSETS_DAGSTER_URL set, the same DAG launches the runs through a Dagster webserver
  (with the daemon dequeuing them) and waits for them.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests
from deploy_helpers import DEPLOY, HERE, REPO, clean_env, free_port, require_project, venv_bin

AIRFLOW_VERSION = "3.3.2"
VENV = Path(os.environ.get("TWEET_ASSETS_AIRFLOW_VENV", Path.home() / ".cache" / "tweet_assets" / "airflow-venv"))
DAGS = DEPLOY / "airflow"
RUNNER = HERE / "airflow_runner.py"
ASSETS = ("raw_tweets", "clean_tweets", "s3_parquet")
DAY = "2024-01-02"


def airflow_python() -> Path:
    """The Airflow venv's python, creating the venv once (skips if pip cannot install Airflow)."""
    python = VENV / "bin" / "python"
    marker = VENV / f".installed-apache-airflow-{AIRFLOW_VERSION}"
    if marker.exists():
        return python
    VENV.parent.mkdir(parents=True, exist_ok=True)
    with open(VENV.parent / ".airflow-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():
            return python
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", "--clear", str(VENV)], check=True, timeout=300)
        proc = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", f"apache-airflow=={AIRFLOW_VERSION}"],
            capture_output=True, text=True, timeout=1500,
        )
        if proc.returncode != 0:
            tail = [line for line in proc.stderr.splitlines() if not line.startswith("WARNING: Location")][-5:]
            pytest.skip(f"pip could not install apache-airflow=={AIRFLOW_VERSION} into {VENV}: {tail}")
        marker.write_text(AIRFLOW_VERSION)
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
    python, base_env = airflow
    proc = subprocess.run(
        [str(python), str(RUNNER), args[0], str(DAGS), *args[1:]],
        env={**base_env, **env}, capture_output=True, text=True, timeout=timeout, cwd=base_env["AIRFLOW_HOME"],
    )
    assert proc.returncode == 0, (proc.stdout[-4000:], proc.stderr[-4000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def dagster_asset_graph() -> dict[str, list[str]]:
    """{asset: [upstream assets]} as Dagster itself resolves the code location."""
    code = (
        "import json\nfrom tweet_assets.definitions import defs\n"
        "g = defs.resolve_asset_graph()\n"
        "print(json.dumps({k.to_user_string(): sorted(p.to_user_string() for p in g.get(k).parent_keys) for k in g.materializable_asset_keys}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=clean_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_dagbag_imports_the_dag_and_its_tasks_mirror_the_asset_graph(airflow):
    require_project()
    result = run_runner(airflow, "dagbag", TWEET_ASSETS_DAGSTER_HOME="/srv/dagster")
    assert result["import_errors"] == {}
    assert result["dag_ids"] == ["tweet_assets_daily"]
    dag = result["dag"]
    assert dag["catchup"] is True and dag["max_active_runs"] == 1
    assert "1 day" in dag["schedule"] or "@daily" in dag["schedule"] or "0 0 * * *" in dag["schedule"], dag["schedule"]
    tasks = dag["tasks"]
    assert {task: spec["upstream"] for task, spec in tasks.items()} == dagster_asset_graph()
    for asset, spec in tasks.items():
        assert spec["operator"] == "BashOperator"
        assert spec["retries"] == 0  # TWEET_ASSETS_AIRFLOW_RETRIES=0 in this environment
        assert spec["retry_exponential_backoff"] == 2.0 and spec["max_retry_delay_s"] == 3600
        assert spec["env"] == {"DAGSTER_HOME": "/srv/dagster"}
        command = spec["bash_command"]
        assert command.startswith(f"exec {sys.executable} -m dagster asset materialize -m tweet_assets.definitions")
        assert command.endswith(f"--select {asset} --partition {{{{ ds }}}}")
    # default retries when unset
    python, env = airflow
    defaults = run_runner((python, {k: v for k, v in env.items() if k != "TWEET_ASSETS_AIRFLOW_RETRIES"}), "dagbag")
    assert {spec["retries"] for spec in defaults["dag"]["tasks"].values()} == {3}


def dagster_runs(home: Path) -> list[dict]:
    """The runs recorded in DAGSTER_HOME: status, partition and materialized assets."""
    code = (
        "import json\nfrom dagster import DagsterInstance, DagsterEventType, EventRecordsFilter\n"
        "i = DagsterInstance.get()\nout = []\n"
        "for r in i.get_runs():\n"
        "    mats = i.get_records_for_run(r.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION).records\n"
        "    out.append({'status': r.status.value, 'partition': r.tags.get('dagster/partition'),"
        " 'assets': sorted(e.event_log_entry.asset_materialization.asset_key.to_user_string() for e in mats)})\n"
        "print(json.dumps(out))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=clean_env(DAGSTER_HOME=str(home)), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def dagster_home(tmp_path) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((DEPLOY / "dagster.yaml").read_text())
    return home


@pytest.mark.slow
def test_dag_test_materializes_the_day_into_moto_s3_through_the_dagster_cli(airflow, tmp_path):
    require_project()
    import boto3
    import pyarrow.parquet as pq
    from moto.server import ThreadedMotoServer

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
            airflow, "test", DAY,
            TWEET_ASSETS_DAGSTER_HOME=str(home), TWEET_ASSETS_LAKE_URL=f"s3://{bucket}/lake",
            TWEET_ASSETS_SAMPLE_POSTS="20", **aws,
        )
        assert result == {"state": "success", "tasks": {a: "success" for a in ASSETS}}
        keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))
        assert keys == [
            f"lake/clean_tweets/dt={DAY}/part-00000.parquet",
            f"lake/raw_tweets/dt={DAY}/part-00000.jsonl.gz",
            f"lake/tweets/dt={DAY}/part-00000.parquet",
        ]
        local = tmp_path / "tweets.parquet"
        s3.download_file(bucket, f"lake/tweets/dt={DAY}/part-00000.parquet", str(local))
        assert pq.read_table(local).num_rows > 0
    finally:
        server.stop()
    runs = dagster_runs(home)
    assert sorted((r["status"], r["partition"], tuple(r["assets"])) for r in runs) == sorted(
        ("SUCCESS", DAY, (asset,)) for asset in ASSETS
    )


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
def test_dag_launches_through_the_dagster_webserver_when_configured(airflow, tmp_path):
    require_project()
    home = dagster_home(tmp_path)
    lake = tmp_path / "lake"
    port = free_port()
    env = clean_env(DAGSTER_HOME=str(home), TWEET_ASSETS_LAKE_URL=str(lake), TWEET_ASSETS_SAMPLE_POSTS="20")
    workspace = ["--workspace", str(REPO / "workspace.yaml")]
    # create the instance's SQLite storage once, before two processes would race to migrate it
    subprocess.run([venv_bin("dagster"), "instance", "migrate"], env=env, cwd=str(home), check=True, capture_output=True, timeout=120)
    web = start([venv_bin("dagster-webserver"), "--host", "127.0.0.1", "--port", str(port), *workspace], env, tmp_path / "web.log", home)
    daemon = start([venv_bin("dagster-daemon"), "run", *workspace], env, tmp_path / "daemon.log", home)
    try:
        url = f"http://127.0.0.1:{port}"
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
            airflow, "test", DAY, TWEET_ASSETS_DAGSTER_URL=url, TWEET_ASSETS_DAGSTER_HOME=str(home), TWEET_ASSETS_DAGSTER_POLL_SECONDS="1"
        )
        assert result == {"state": "success", "tasks": {a: "success" for a in ASSETS}}, (tmp_path / "daemon.log").read_text()[-3000:]
    finally:
        stop(daemon)
        stop(web)
    assert (lake / "tweets" / f"dt={DAY}" / "part-00000.parquet").exists()
    runs = dagster_runs(home)
    assert sorted((r["status"], r["partition"], tuple(r["assets"])) for r in runs) == sorted(
        ("SUCCESS", DAY, (asset,)) for asset in ASSETS
    )
