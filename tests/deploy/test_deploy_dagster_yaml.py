"""deploy/dagster.yaml: Dagster's own CLI loads it in a temp DAGSTER_HOME, its commented Postgres
and S3 compute-log blocks are valid when uncommented, and the x_api pool limit really holds back a
second raw_tweets step started through the CLI (the path the Airflow DAG uses)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time

import pytest
import yaml
from deploy_helpers import DEPLOY, clean_env, require_project, venv_bin

DAGSTER_YAML = DEPLOY / "dagster.yaml"


def home_with(tmp_path, text: str | None = None):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(DAGSTER_YAML.read_text() if text is None else text)
    return home


def uncomment(block: str) -> str:
    """dagster.yaml with the ``# --- BEGIN block`` ... ``# --- END block`` lines uncommented."""
    text = DAGSTER_YAML.read_text()
    match = re.search(rf"^# --- BEGIN {block}\b.*?\n(.*?)^# --- END {block}$", text, flags=re.S | re.M)
    assert match, f"no BEGIN/END {block} block in dagster.yaml"
    body = match.group(1)
    # prose comment lines come first; the YAML starts at the first top-level "# key:" line
    lines, started = [], False
    for line in body.splitlines():
        candidate = line[2:] if line.startswith("# ") else line
        started = started or re.match(r"^[a-z_]+:\s*$", candidate) is not None
        lines.append(candidate if started else line)
    return text.replace(body, "\n".join(lines) + "\n")


def dagster(*args, home, timeout=120, **env):
    return subprocess.run(
        [venv_bin("dagster"), *args], env=clean_env(DAGSTER_HOME=str(home), **env),
        capture_output=True, text=True, timeout=timeout, cwd=str(home),
    )


def test_dagster_instance_info_loads_the_production_yaml(tmp_path):
    home = home_with(tmp_path)
    proc = dagster("instance", "info", home=home)
    assert proc.returncode == 0, proc.stderr
    info = proc.stdout
    assert f"$DAGSTER_HOME: {home}" in info
    assert "run_storage: SqliteRunStorage" in info and "schedule_storage: SqliteScheduleStorage" in info
    config = yaml.safe_load(info.split("Instance configuration:")[1].split("Storage schema state:")[0].split("\n", 2)[2])
    assert config["concurrency"] == {"runs": {"max_concurrent_runs": 2}, "pools": {"default_limit": 1, "granularity": "op"}}
    assert config["telemetry"] == {"enabled": False}
    # the SQLite files are created inside DAGSTER_HOME, nowhere else
    assert (home / "history" / "runs.db").exists()
    assert (home / "schedules" / "schedules.db").exists()


def test_instance_uses_the_queued_coordinator_and_the_pool_settings(tmp_path):
    home = home_with(tmp_path)
    code = (
        "from dagster import DagsterInstance\n"
        "i = DagsterInstance.get()\n"
        "c = i.get_concurrency_config()\n"
        "print(type(i.run_coordinator).__name__, c.pool_config.default_pool_limit, c.pool_config.pool_granularity.value,"
        " c.run_queue_config.max_concurrent_runs, type(i.compute_log_manager).__name__)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=clean_env(DAGSTER_HOME=str(home)), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["QueuedRunCoordinator", "1", "op", "2", "LocalComputeLogManager"]


def test_a_broken_yaml_is_rejected(tmp_path):
    """Control: the same command fails on a bad concurrency block, so a pass above means something."""
    bad = DAGSTER_YAML.read_text().replace("granularity: op", "granularity: sometimes")
    proc = dagster("instance", "info", home=home_with(tmp_path, bad))
    assert proc.returncode != 0
    assert "granularity" in (proc.stdout + proc.stderr)


def test_commented_postgres_block_is_valid_config(tmp_path):
    text = uncomment("postgres")
    text = re.sub(r"^storage:\n  sqlite:\n    base_dir:\n      env: DAGSTER_HOME\n", "", text, count=1, flags=re.M)
    parsed = yaml.safe_load(text)
    assert parsed["storage"]["postgres"]["postgres_db"]["params"] == {"sslmode": "require"}
    home = home_with(tmp_path, text)
    code = (
        "import sys\nfrom dagster._core.instance.config import dagster_instance_config\n"
        "cfg, _ = dagster_instance_config(sys.argv[1])\nprint(sorted(cfg['storage']['postgres']['postgres_db']))\n"
    )
    env = clean_env(DAGSTER_PG_HOST="db.example.internal", DAGSTER_PG_DB="dagster", DAGSTER_PG_USERNAME="dagster", DAGSTER_PG_PASSWORD="x")
    proc = subprocess.run([sys.executable, "-c", code, str(home)], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "hostname" in proc.stdout and "password" in proc.stdout


def test_commented_s3_compute_log_block_loads(tmp_path):
    text = uncomment("s3_compute_logs")
    assert yaml.safe_load(text)["compute_logs"]["class"] == "S3ComputeLogManager"
    home = home_with(tmp_path, text)
    code = "from dagster import DagsterInstance\nm = DagsterInstance.get().compute_log_manager\nprint(type(m).__name__, m._s3_bucket, m._s3_prefix)\n"
    env = clean_env(
        DAGSTER_HOME=str(home), TWEET_ASSETS_COMPUTE_LOG_BUCKET="example-logs", AWS_REGION="eu-west-1",
        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_ENDPOINT_URL="http://127.0.0.1:9",
    )
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["S3ComputeLogManager", "example-logs", "tweet_assets/dagster/compute_logs"]


@pytest.mark.slow
def test_x_api_pool_limit_blocks_a_second_raw_tweets_step(tmp_path):
    """With the production yaml (default_limit 1), while another run holds the x_api slot a CLI
    materialization of raw_tweets waits ("blocked by limit for pool x_api") and writes nothing;
    once the slot is freed it completes."""
    require_project()
    home = home_with(tmp_path)
    lake = tmp_path / "lake"
    env = dict(TWEET_ASSETS_LAKE_URL=str(lake), TWEET_ASSETS_SAMPLE_POSTS="20")
    holder = subprocess.run(
        [sys.executable, "-c",
         "from dagster import DagsterInstance\n"
         "i = DagsterInstance.get()\n"
         "i.event_log_storage.initialize_concurrency_limit_to_default('x_api')\n"
         "r = i.event_log_storage.claim_concurrency_slot('x_api', 'other-run', 'raw_tweets')\n"
         "print(r.is_claimed, i.event_log_storage.get_concurrency_info('x_api').slot_count)\n"],
        env=clean_env(DAGSTER_HOME=str(home)), capture_output=True, text=True, timeout=120,
    )
    assert holder.returncode == 0, holder.stderr
    assert holder.stdout.split() == ["True", "1"]

    cmd = [venv_bin("dagster"), "asset", "materialize", "-m", "tweet_assets.definitions", "--select", "raw_tweets", "--partition", "2024-01-01"]
    log = tmp_path / "materialize.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, env=clean_env(DAGSTER_HOME=str(home), **env), stdout=out, stderr=subprocess.STDOUT, cwd=str(tmp_path))
    try:
        deadline = time.monotonic() + 120
        while "blocked by limit for pool x_api" not in log.read_text():
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the step was never blocked"
            time.sleep(0.5)
        time.sleep(2)
        assert proc.poll() is None
        assert not list(lake.rglob("*.jsonl.gz"))
        freed = subprocess.run(
            [sys.executable, "-c", "from dagster import DagsterInstance\nDagsterInstance.get().event_log_storage.free_concurrency_slots_for_run('other-run')\n"],
            env=clean_env(DAGSTER_HOME=str(home)), capture_output=True, text=True, timeout=120,
        )
        assert freed.returncode == 0, freed.stderr
        assert proc.wait(timeout=180) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (lake / "raw_tweets" / "dt=2024-01-01" / "part-00000.jsonl.gz").exists()
    shutil.rmtree(home, ignore_errors=True)
