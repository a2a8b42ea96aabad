"""deploy/dagster.yaml: Dagster's own CLI loads it in a temp DAGSTER_HOME against the real
PostgreSQL test server (TLS + password, as RDS) and moto S3, every storage is PostgreSQL and
nothing is written to DAGSTER_HOME, the queued coordinator, pool, run-monitoring, retention and
S3 compute-log settings are in force, a missing setting fails naming the variable, and the
x_api pool limit really holds back a second raw_tweets step started through the CLI (the path the
Airflow DAG uses). The restart and SIGTERM behaviour is in test_deploy_durable_state.py."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid

import boto3
import pytest
import yaml
from deploy_helpers import DEPLOY, clean_env, require_project, venv_bin

DAGSTER_YAML = DEPLOY / "dagster.yaml"


def home_with(tmp_path, text: str | None = None):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(DAGSTER_YAML.read_text() if text is None else text)
    return home


@pytest.fixture
def instance_env(tmp_path, postgres_server, moto_server):
    """DAGSTER_PG_* for a fresh database on the test server, a compute-log bucket on moto."""
    db = postgres_server.create_database(f"yaml_{uuid.uuid4().hex[:8]}")
    bucket = f"logs-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1", aws_access_key_id="testing",
                 aws_secret_access_key="testing").create_bucket(Bucket=bucket)
    return dict(
        **postgres_server.dagster_env(db), TWEET_ASSETS_COMPUTE_LOG_BUCKET=bucket, AWS_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_ENDPOINT_URL=moto_server,
    )


def dagster(*args, home, timeout=120, **env):
    return subprocess.run(
        [venv_bin("dagster"), *args], env=clean_env(DAGSTER_HOME=str(home), **env),
        capture_output=True, text=True, timeout=timeout, cwd=str(home),
    )


def test_dagster_instance_info_loads_the_production_yaml_on_postgres(tmp_path, instance_env):
    home = home_with(tmp_path)
    proc = dagster("instance", "info", home=home, **instance_env)
    assert proc.returncode == 0, proc.stderr
    info = proc.stdout
    assert f"$DAGSTER_HOME: {home}" in info
    for line in ("run_storage: PostgresRunStorage", "event_log_storage: PostgresEventLogStorage",
                 "schedule_storage: PostgresScheduleStorage"):
        assert line in info, info
    assert instance_env["DAGSTER_PG_PASSWORD"] not in info  # shown as {env: ...}, never resolved
    config = yaml.safe_load(info.split("Instance configuration:")[1].split("Storage schema state:")[0].split("\n", 2)[2])
    assert config["concurrency"] == {"runs": {"max_concurrent_runs": 2}, "pools": {"default_limit": 1, "granularity": "op"}}
    assert config["telemetry"] == {"enabled": False}
    # no SQLite files: every store is in PostgreSQL
    assert not (home / "history").exists() and not (home / "schedules").exists()


def test_instance_settings_in_force(tmp_path, instance_env):
    """Queued coordinator, pool limits, run monitoring (slots freed after a run ends), tick
    retention and the S3 compute-log manager, as the instance reads them."""
    home = home_with(tmp_path)
    code = (
        "import json\nfrom dagster import DagsterInstance\n"
        "from dagster._core.definitions.run_request import InstigatorType\n"
        "i = DagsterInstance.get()\n"
        "c = i.get_concurrency_config()\n"
        "m = i.compute_log_manager\n"
        "print(json.dumps({'coordinator': type(i.run_coordinator).__name__, 'pool_limit': c.pool_config.default_pool_limit,"
        " 'granularity': c.pool_config.pool_granularity.value, 'max_runs': c.run_queue_config.max_concurrent_runs,"
        " 'storage': type(i.run_storage).__name__, 'monitoring': i.run_monitoring_enabled,"
        " 'free_slots_s': i.run_monitoring_settings.get('free_slots_after_run_end_seconds'),"
        " 'schedule_ticks': {k.value: v for k, v in i.get_tick_retention_settings(InstigatorType.SCHEDULE).items()},"
        " 'sensor_ticks': {k.value: v for k, v in i.get_tick_retention_settings(InstigatorType.SENSOR).items()},"
        " 'logs': [type(m).__name__, m._s3_bucket, m._s3_prefix, m.upload_interval]}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=clean_env(DAGSTER_HOME=str(home), **instance_env), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got == {
        "coordinator": "QueuedRunCoordinator", "pool_limit": 1, "granularity": "op", "max_runs": 2,
        "storage": "PostgresRunStorage", "monitoring": True, "free_slots_s": 120,
        "schedule_ticks": {"STARTED": 90, "SKIPPED": 90, "SUCCESS": 90, "FAILURE": 90},
        "sensor_ticks": {"STARTED": -1, "SKIPPED": 7, "SUCCESS": 30, "FAILURE": 30},
        "logs": ["S3ComputeLogManager", instance_env["TWEET_ASSETS_COMPUTE_LOG_BUCKET"], "tweet_assets/dagster/compute_logs", 30],
    }


def test_a_broken_yaml_is_rejected(tmp_path, instance_env):
    """Control: the same command fails on a bad concurrency block, so a pass above means something."""
    bad = DAGSTER_YAML.read_text().replace("granularity: op", "granularity: sometimes")
    proc = dagster("instance", "info", home=home_with(tmp_path, bad), **instance_env)
    assert proc.returncode != 0
    assert "granularity" in (proc.stdout + proc.stderr)


@pytest.mark.parametrize("missing", ["DAGSTER_PG_HOST", "DAGSTER_PG_PASSWORD", "TWEET_ASSETS_COMPUTE_LOG_BUCKET"])
def test_a_missing_setting_fails_naming_the_variable(tmp_path, instance_env, missing):
    env = {k: v for k, v in instance_env.items() if k != missing}
    code = "from dagster import DagsterInstance\ni = DagsterInstance.get()\ni.get_runs(limit=1)\ni.compute_log_manager\n"
    proc = subprocess.run([sys.executable, "-c", code], env=clean_env(DAGSTER_HOME=str(home_with(tmp_path)), **env),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert missing in (proc.stdout + proc.stderr)
    assert instance_env["DAGSTER_PG_PASSWORD"] not in (proc.stdout + proc.stderr)


def test_a_plain_tcp_connection_is_refused_so_sslmode_require_is_what_connects(tmp_path, instance_env):
    """The test server accepts TLS only (as RDS with rds.force_ssl): the yaml without its
    ``sslmode: require`` cannot connect, so the setting is what makes the passing tests pass."""
    text = DAGSTER_YAML.read_text().replace("sslmode: require", "sslmode: disable")
    proc = dagster("instance", "info", home=home_with(tmp_path, text), **instance_env)
    assert proc.returncode != 0
    assert "no pg_hba.conf entry" in (proc.stdout + proc.stderr)


@pytest.mark.slow
def test_x_api_pool_limit_blocks_a_second_raw_tweets_step(tmp_path, instance_env):
    """With the production yaml (default_limit 1), while another run holds the x_api slot a CLI
    materialization of raw_tweets waits ("blocked by limit for pool x_api") and writes nothing;
    once the slot is freed it completes."""
    require_project()
    home = home_with(tmp_path)
    lake = tmp_path / "lake"
    env = dict(instance_env, TWEET_ASSETS_LAKE_URL=str(lake), TWEET_ASSETS_SAMPLE_POSTS="20", TWEET_ASSETS_START_DATE="2024-01-01")
    holder = subprocess.run(
        [sys.executable, "-c",
         "from dagster import DagsterInstance\n"
         "i = DagsterInstance.get()\n"
         "i.event_log_storage.initialize_concurrency_limit_to_default('x_api')\n"
         "r = i.event_log_storage.claim_concurrency_slot('x_api', 'other-run', 'raw_tweets')\n"
         "print(r.is_claimed, i.event_log_storage.get_concurrency_info('x_api').slot_count)\n"],
        env=clean_env(DAGSTER_HOME=str(home), **instance_env), capture_output=True, text=True, timeout=120,
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
            env=clean_env(DAGSTER_HOME=str(home), **instance_env), capture_output=True, text=True, timeout=120,
        )
        assert freed.returncode == 0, freed.stderr
        assert proc.wait(timeout=180) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (lake / "raw_tweets" / "dt=2024-01-01" / "part-00000.jsonl.gz").exists()
    shutil.rmtree(home, ignore_errors=True)
