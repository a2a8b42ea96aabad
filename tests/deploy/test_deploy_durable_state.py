"""deploy/dagster.yaml against a real PostgreSQL server (tests/postgres_server.py: TLS and a
password, as RDS) and moto S3 for the compute logs, with dagster-webserver and dagster-daemon as
the two systemd services run them. One test, one database, two service starts (they are slow):

- A backfill's runs and materializations, and the schedule's state, survive a restart of both
  services onto a brand-new, empty ``DAGSTER_HOME`` (the instance replaced): they live in
  PostgreSQL. The steps' stdout/stderr are in the S3 bucket and read back through the webserver.
- SIGTERM to the daemon's process group (``systemctl restart dagster-daemon``) while
  ``raw_tweets`` holds the ``x_api`` pool slot: the run fails, the slot is freed, and the next
  run starts (claims the slot).
- That run's worker killed hard (SIGKILL: systemd after its stop timeout, the OOM killer) while
  holding the slot: the run is marked failed but keeps the slot; run monitoring
  (``free_slots_after_run_end_seconds``) frees it and the run queued behind it succeeds.
  Without that setting the slot is never freed (checked by hand: the wait below times out).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import uuid

import boto3
import pytest
import yaml
from dagster_services import DagsterServices, wait_for
from deploy_helpers import DEPLOY, clean_env, require_project, venv_bin

pytestmark = pytest.mark.slow

DAGSTER_YAML = DEPLOY / "dagster.yaml"
ASSETS = ("raw_tweets", "clean_tweets", "s3_parquet")
DAYS = ["2024-01-02", "2024-01-03", "2024-01-04"]
COMPUTE_LOG_PREFIX = "tweet_assets/dagster/compute_logs"

LAUNCH_BACKFILL = """
mutation ($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message stack } } }
"""
BACKFILL = """
query ($id: String!) { partitionBackfillOrError(backfillId: $id) { __typename
  ... on PartitionBackfill { id status numPartitions partitionNames } } }
"""
RUNS = """
query ($filter: RunsFilter) { runsOrError(filter: $filter) { __typename
  ... on Runs { results { runId status tags { key value } } } } }
"""
MATERIALIZATIONS = """
query ($key: AssetKeyInput!) { assetOrError(assetKey: $key) { __typename
  ... on Asset { assetMaterializations { partition runId } } } }
"""
PARTITION_STATS = """
query ($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) { __typename
  ... on AssetNode { partitionStats { numMaterialized numFailed } } } }
"""
SCHEDULE = """
query ($selector: ScheduleSelector!) { scheduleOrError(scheduleSelector: $selector) { __typename
  ... on Schedule { name scheduleState { status } } } }
"""
START_SCHEDULE = """
mutation ($selector: ScheduleSelector!) { startSchedule(scheduleSelector: $selector) { __typename
  ... on ScheduleStateResult { scheduleState { status } } ... on PythonError { message } } }
"""
CAPTURED_LOGS = """
query ($logKey: [String!]!) { capturedLogs(logKey: $logKey) { stdout stderr } }
"""
SCHEDULE_SELECTOR = {"repositoryLocationName": "tweet_assets", "repositoryName": "__repository__", "scheduleName": "tweets_daily_schedule"}
FINISHED = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


def production_yaml(**run_monitoring) -> str:
    """deploy/dagster.yaml as it is, or with some run_monitoring values changed (timings)."""
    text = DAGSTER_YAML.read_text()
    if not run_monitoring:
        return text
    config = yaml.safe_load(text)
    config["run_monitoring"].update(run_monitoring)
    return yaml.safe_dump(config, sort_keys=False)


@pytest.fixture
def compute_log_bucket(moto_server):
    bucket = f"logs-{uuid.uuid4().hex[:12]}"
    s3(moto_server).create_bucket(Bucket=bucket)
    return bucket


def s3(endpoint):
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")


def service_env(home, postgres_server, db, moto_server, bucket, lake, **extra) -> dict:
    return clean_env(
        DAGSTER_HOME=str(home), **postgres_server.dagster_env(db),
        TWEET_ASSETS_COMPUTE_LOG_BUCKET=bucket, AWS_REGION="us-east-1", AWS_DEFAULT_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_ENDPOINT_URL=moto_server,
        TWEET_ASSETS_LAKE_URL=str(lake), TWEET_ASSETS_SOURCE="sample", TWEET_ASSETS_START_DATE="2024-01-01",
        TWEET_ASSETS_SAMPLE_POSTS="20", DAGSTER_DISABLE_TELEMETRY="1", PYTHONUNBUFFERED="1", **extra,
    )


def new_home(path, text: str):
    """A brand-new DAGSTER_HOME holding only dagster.yaml (what a replacement instance has)."""
    path.mkdir(parents=True)
    (path / "dagster.yaml").write_text(text)
    return path


def migrate(env):
    """``dagster instance migrate``: creates the schema once, before two services race to."""
    proc = subprocess.run([venv_bin("dagster"), "instance", "migrate"], env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def launch_backfill(services, days, assets=ASSETS, title="durable") -> str:
    params = {"partitionsByAssets": [{"assetKey": {"path": [a]}, "partitions": {"range": {"start": days[0], "end": days[-1]}}} for a in assets],
              "title": title}
    result = services.graphql(LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
    assert result["__typename"] == "LaunchBackfillSuccess", result
    return result["backfillId"]


def backfill_state(services, backfill_id) -> dict:
    return services.graphql(BACKFILL, {"id": backfill_id})["partitionBackfillOrError"]


def backfill_runs(services, backfill_id) -> dict[str, str]:
    data = services.graphql(RUNS, {"filter": {"tags": [{"key": "dagster/backfill", "value": backfill_id}]}})["runsOrError"]
    return {run["runId"]: run["status"] for run in data["results"]}


def materialized(services, asset) -> dict[str, str]:
    events = services.graphql(MATERIALIZATIONS, {"key": {"path": [asset]}})["assetOrError"]["assetMaterializations"]
    return {e["partition"]: e["runId"] for e in events}


def compute_log_keys(endpoint, bucket) -> list[str]:
    pages = s3(endpoint).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=COMPUTE_LOG_PREFIX + "/")
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


CONCURRENCY = """
query { instance { concurrencyLimit(concurrencyKey: "x_api") { slotCount claimedSlots { runId stepKey } pendingSteps { runId stepKey } } } }
"""
RUN_STATUS = """
query ($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status } } }
"""
#: posts per day of the sample source in the second half: raw_tweets of one day then takes
#: seconds, long enough to send SIGTERM while it holds the x_api slot
SLOW_POSTS = "100000"
#: run monitoring timings of the second half (production: 60 s / 120 s)
MONITORING = {"poll_interval_seconds": 2, "free_slots_after_run_end_seconds": 10}


FINISHED_RUN = {"SUCCESS", "FAILURE", "CANCELED"}
RUN_LOGS = """
query ($runId: ID!) { logsForRun(runId: $runId) { __typename
  ... on EventConnection { events { __typename ... on MessageEvent { message } } } } }
"""


def run_status(services, run_id) -> str:
    return services.graphql(RUN_STATUS, {"id": run_id})["runOrError"]["status"]


def run_worker_pid(services, run_id) -> int:
    """The pid of the process executing the run (its "Started process for run (pid: N)." event)."""
    for event in services.graphql(RUN_LOGS, {"runId": run_id})["logsForRun"]["events"]:
        match = re.match(r"Started process for run \(pid: (\d+)\)", event.get("message") or "")
        if match:
            return int(match.group(1))
    raise AssertionError(f"no run worker pid in the events of {run_id}")


def x_api_slots(services) -> dict:
    return services.graphql(CONCURRENCY)["instance"]["concurrencyLimit"]


def test_state_survives_a_restart_on_a_new_instance_and_a_killed_daemon_frees_the_x_api_slot(
    tmp_path, postgres_server, moto_server, compute_log_bucket
):
    require_project()
    db = postgres_server.create_database("dagster_durable")
    lake = tmp_path / "lake"
    home = new_home(tmp_path / "home-1", production_yaml())
    env = service_env(home, postgres_server, db, moto_server, compute_log_bucket, lake)
    migrate(env)
    services = DagsterServices(home=home, env=env)
    try:
        services.start()
        backfill_id = launch_backfill(services, DAYS)
        state = wait_for(lambda: (s := backfill_state(services, backfill_id)).get("status") in FINISHED and s, 420,
                         "the backfill to finish", services, every=2)
        assert state["status"] == "COMPLETED_SUCCESS", services.log_tail()
        started = services.graphql(START_SCHEDULE, {"selector": SCHEDULE_SELECTOR})["startSchedule"]
        assert started["scheduleState"]["status"] == "RUNNING", started
        runs_before = backfill_runs(services, backfill_id)
        assert len(runs_before) == 1 and set(runs_before.values()) == {"SUCCESS"}  # single-run backfill policy
        before = {asset: materialized(services, asset) for asset in ASSETS}
        assert all(set(before[a]) == set(DAYS) for a in ASSETS), before
    finally:
        services.stop()

    # the instance is replaced: nothing of the first DAGSTER_HOME is left, only the database
    shutil.rmtree(home)
    home2 = new_home(tmp_path / "home-2", production_yaml(**MONITORING))
    env2 = {**env, "DAGSTER_HOME": str(home2), "TWEET_ASSETS_SAMPLE_POSTS": SLOW_POSTS}
    services = DagsterServices(home=home2, env=env2, logs=tmp_path)
    try:
        services.start()
        assert backfill_state(services, backfill_id) == {**state}
        assert backfill_runs(services, backfill_id) == runs_before
        assert {asset: materialized(services, asset) for asset in ASSETS} == before
        stats = services.graphql(PARTITION_STATS, {"key": {"path": ["s3_parquet"]}})["assetNodeOrError"]["partitionStats"]
        assert stats == {"numMaterialized": 3, "numFailed": 0}
        schedule = services.graphql(SCHEDULE, {"selector": SCHEDULE_SELECTOR})["scheduleOrError"]
        assert schedule["scheduleState"]["status"] == "RUNNING"
        # the steps' stdout/stderr were uploaded to S3 and the new webserver reads them from there
        (run_id,) = runs_before
        keys = [k for k in compute_log_keys(moto_server, compute_log_bucket) if f"/storage/{run_id}/" in k]
        assert any(k.endswith(".err") for k in keys), keys
        err_key = next(k for k in keys if k.endswith(".err"))
        log_key = err_key[len(COMPUTE_LOG_PREFIX + "/storage/"):-len(".err")].split("/")
        body = s3(moto_server).get_object(Bucket=compute_log_bucket, Key=err_key)["Body"].read().decode()
        captured = services.graphql(CAPTURED_LOGS, {"logKey": log_key})["capturedLogs"]
        assert body and captured["stderr"] == body

        # --- 1. systemctl restart dagster-daemon (SIGTERM to its whole group) while raw_tweets
        # holds the x_api slot: the run fails, its slot is freed, and the next run starts (2.)
        killed = launch_backfill(services, ["2024-02-01"], assets=("raw_tweets",), title="daemon restarted")
        holder = wait_for(lambda: x_api_slots(services)["claimedSlots"], 300, "raw_tweets to claim the x_api slot", services, every=0.5)
        (run_a,) = backfill_runs(services, killed)
        assert holder == [{"runId": run_a, "stepKey": "raw_tweets"}]
        services.daemon.stop(grace_s=90)  # SIGTERM to the group, SIGKILL after 90 s (systemd's TimeoutStopSec)
        services.start_daemon()
        wait_for(lambda: run_status(services, run_a) in FINISHED_RUN, 120, "the interrupted run to end", services)
        assert run_status(services, run_a) == "FAILURE"
        # freed by the interrupted run itself (seen every time here), else by run monitoring
        wait_for(lambda: x_api_slots(services)["claimedSlots"] == [], 60, "the interrupted run's slot to be freed", services, every=0.5)

        # --- 2. the next run starts and claims the slot; its run worker is then killed hard (what
        # systemd's SIGKILL after the stop timeout, or the OOM killer, does) while raw_tweets holds
        # the slot: the code server marks the run failed, but nothing in the dead process frees the
        # slot. Run monitoring frees it free_slots_after_run_end_seconds after the run ended, and the
        # run queued behind it runs.
        crashed = launch_backfill(services, ["2024-02-03"], assets=("raw_tweets",), title="worker killed")
        holder = wait_for(lambda: x_api_slots(services)["claimedSlots"], 300, "the next run to claim the x_api slot", services, every=0.5)
        (run_c,) = backfill_runs(services, crashed)
        assert holder == [{"runId": run_c, "stepKey": "raw_tweets"}]
        os.kill(run_worker_pid(services, run_c), signal.SIGKILL)
        queued = launch_backfill(services, ["2024-02-04"], assets=("raw_tweets",), title="behind the killed run")
        wait_for(lambda: run_status(services, run_c) == "FAILURE", 120, "the killed run to be marked failed", services, every=0.5)
        # the failure mode: a finished run still holding the pool slot
        assert [s["runId"] for s in x_api_slots(services)["claimedSlots"]] == [run_c]
        # freed by the monitoring daemon (Dagster 1.13 logs no "Freed ... slots" line for it: the
        # storage's free_concurrency_slots_for_run returns None); nothing else frees a finished run's slot
        wait_for(lambda: x_api_slots(services)["claimedSlots"] == [], 120, "run monitoring to free the slot", services, every=0.5)
        (run_d,) = wait_for(lambda: backfill_runs(services, queued), 300, "the queued run to be created", services)
        wait_for(lambda: run_status(services, run_d) in FINISHED_RUN, 300, "the queued run to finish", services)
        assert run_status(services, run_d) == "SUCCESS", services.log_tail()
        assert x_api_slots(services)["claimedSlots"] == []
    finally:
        services.stop()
