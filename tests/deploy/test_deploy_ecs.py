"""deploy/ecs/: a backfill launched through the instance reaches ECS as RegisterTaskDefinition and
RunTask calls, against moto's ECS on 127.0.0.1 (the session's moto server), with the storage on the
real PostgreSQL test server and dagster-webserver + dagster-daemon as on the host.

With ``TWEET_ASSETS_BACKFILL_PARTITIONS_PER_RUN=2`` a 5-day backfill of the three assets becomes
3 runs (2 + 2 + 1 days), each launched by dagster-aws's ``EcsRunLauncher`` as one Fargate task of
one task definition registered once: the project's image, the container ``run``, the roles, the
log group, the SSM secrets by ARN (their values never in a call), the settings copied from the
daemon's environment, and the run's ``dagster api execute_run`` command as the container override.
The run queue bounds the fan-out: the third task is started only when the first two have ended
(here: marked canceled through Dagster): ``max_concurrent_runs: 2``, and the
``x_api`` pool, which dequeues no run starting with ``raw_tweets`` while another is still starting.
moto does not run the containers: the runs are launched, not executed, here.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid

import boto3
import pytest
import yaml
from dagster._grpc.types import ExecuteRunArgs
from dagster._serdes import deserialize_value
from dagster_services import DagsterServices, wait_for
from deploy_helpers import DEPLOY, clean_env, require_project, venv_bin

pytestmark = pytest.mark.slow

ECS_DIR = DEPLOY / "ecs"
ACCOUNT = "123456789012"
REGION = "us-east-1"
IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/tweet-assets:2026-11-29"
SUBNETS = "subnet-0a1b2c3d,subnet-0e4f5a6b"
SECURITY_GROUPS = "sg-0123abcd"
ASSETS = ("raw_tweets", "clean_tweets", "s3_parquet")
DAYS = ("2024-01-02", "2024-01-06")
RUN_RANGES = [("2024-01-02", "2024-01-03"), ("2024-01-04", "2024-01-05"), ("2024-01-06", "2024-01-06")]
ECS_ENV = {
    "TWEET_ASSETS_ECS_EXECUTION_ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/tweet-assets-ecs-execution",
    "TWEET_ASSETS_ECS_TASK_ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/tweet-assets",
    "TWEET_ASSETS_ECS_LOG_GROUP": "/tweet_assets/runs",
    "TWEET_ASSETS_ECS_X_TOKEN_PARAMETER_ARN": f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/tweet_assets/x_bearer_token",
    "TWEET_ASSETS_ECS_PG_PASSWORD_PARAMETER_ARN": f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/tweet_assets/dagster_pg_password",
}

#: What deploy/ec2/user-data.sh writes for TWEET_ASSETS_TABLE_FORMAT=iceberg (the daemon's environment).
ICEBERG_ENV = {
    "TWEET_ASSETS_TABLE_FORMAT": "iceberg",
    "TWEET_ASSETS_ICEBERG_CATALOG": "glue",
    "TWEET_ASSETS_GLUE_DATABASE": "tweets_db",
    "PYICEBERG_CATALOG__GLUE__TYPE": "glue",
}

LAUNCH_BACKFILL = """
mutation ($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message stack } } }
"""
TERMINATE = """
mutation ($runId: String!) { terminateRun(runId: $runId, terminatePolicy: MARK_AS_CANCELED_IMMEDIATELY) { __typename
  ... on TerminateRunFailure { message } ... on PythonError { message } } }
"""
RUNS = """
query ($filter: RunsFilter) { runsOrError(filter: $filter) { __typename
  ... on Runs { results { runId status tags { key value } } } } }
"""


def render(tmp_path, **env) -> str:
    out = tmp_path / "dagster.yaml"
    proc = subprocess.run([str(ECS_DIR / "render-dagster-yaml.sh"), str(out)], env=clean_env(**env), capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return out.read_text()


def test_render_fills_the_networking_and_refuses_bad_ids(tmp_path):
    text = render(tmp_path, TWEET_ASSETS_ECS_SUBNETS=SUBNETS, TWEET_ASSETS_ECS_SECURITY_GROUPS=SECURITY_GROUPS)
    network = yaml.safe_load(text)["run_launcher"]["config"]["run_task_kwargs"]["networkConfiguration"]["awsvpcConfiguration"]
    assert network == {"subnets": SUBNETS.split(","), "securityGroups": [SECURITY_GROUPS], "assignPublicIp": "DISABLED"}
    for bad in ({"TWEET_ASSETS_ECS_SECURITY_GROUPS": SECURITY_GROUPS},
                {"TWEET_ASSETS_ECS_SUBNETS": "subnet-0a1b]; rm", "TWEET_ASSETS_ECS_SECURITY_GROUPS": SECURITY_GROUPS},
                {"TWEET_ASSETS_ECS_SUBNETS": SUBNETS, "TWEET_ASSETS_ECS_SECURITY_GROUPS": "subnet-0a1b"}):
        out = tmp_path / "bad.yaml"
        proc = subprocess.run([str(ECS_DIR / "render-dagster-yaml.sh"), str(out)], env=clean_env(**bad), capture_output=True, text=True, timeout=30)
        assert proc.returncode == 2 and "render-dagster-yaml.sh: set TWEET_ASSETS_ECS_" in proc.stderr
        assert not out.exists()


def test_shellcheck_is_clean():
    proc = subprocess.run([venv_bin("shellcheck"), str(ECS_DIR / "render-dagster-yaml.sh")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout


def test_ecs_yaml_is_the_production_yaml_plus_the_ecs_run_launcher(tmp_path):
    ecs = yaml.safe_load(render(tmp_path, TWEET_ASSETS_ECS_SUBNETS=SUBNETS, TWEET_ASSETS_ECS_SECURITY_GROUPS=SECURITY_GROUPS))
    launcher = ecs.pop("run_launcher")
    assert ecs == yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    assert (launcher["module"], launcher["class"]) == ("dagster_aws.ecs", "EcsRunLauncher")


def test_the_run_tasks_get_every_table_format_setting_user_data_writes():
    """The EcsRunLauncher copies env_vars from the daemon's environment (refusing an unset one):
    each table-format setting deploy/ec2/user-data.sh writes is copied, so a run task publishes the
    format of the code location that launched it (test_deploy_ec2 checks that a Hive install's env
    file holds each copied name too); the catalog's type is a constant of the file."""
    launcher = yaml.safe_load((DEPLOY / "ecs" / "dagster.yaml").read_text())["run_launcher"]["config"]
    copied = dict(v.split("=", 1) if "=" in v else (v, None) for v in launcher["env_vars"])
    script = (DEPLOY / "ec2" / "user-data.sh").read_text()
    written = set(re.findall(r"^\s*setting ((?:TWEET_ASSETS_(?:TABLE_FORMAT|GLUE_DATABASE|ICEBERG_CATALOG)|PYICEBERG_\w+)) ", script, flags=re.M))
    assert written == set(ICEBERG_ENV), written
    assert {name: copied.get(name, "missing") for name in ICEBERG_ENV} == {
        "TWEET_ASSETS_TABLE_FORMAT": None, "TWEET_ASSETS_ICEBERG_CATALOG": None, "TWEET_ASSETS_GLUE_DATABASE": None, "PYICEBERG_CATALOG__GLUE__TYPE": "glue",
    }


@pytest.fixture
def moto_runs_fargate_tasks_without_container_memory(monkeypatch):
    """moto 5.2 answers RunTask with a 500 (TypeError in ``_calculate_task_resource_requirements``)
    when a container definition has no container-level ``memory``, which ECS accepts on Fargate
    (cpu and memory are task-level there, as dagster-aws registers them). The session's moto
    server runs in this process: count the missing value as the task's memory for that one
    computation, which moto uses only to place tasks on EC2 container instances."""
    from moto.ecs import models

    original = models.EC2ContainerServiceBackend._calculate_task_resource_requirements

    def tolerant(task_definition):
        try:
            return original(task_definition)
        except TypeError:
            return {"CPU": 0, "MEMORY": int(task_definition.memory or 0), "PORTS": [], "PORTS_UDP": []}

    monkeypatch.setattr(models.EC2ContainerServiceBackend, "_calculate_task_resource_requirements", staticmethod(tolerant))


def ecs(endpoint):
    return boto3.client("ecs", endpoint_url=endpoint, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")


def test_a_backfill_reaches_ecs_as_one_task_definition_and_a_run_task_per_run_of_n_days(
    tmp_path, postgres_server, moto_server, moto_runs_fargate_tasks_without_container_memory
):
    require_project()
    cluster = f"tweet-assets-{uuid.uuid4().hex[:8]}"
    ecs(moto_server).create_cluster(clusterName=cluster)
    bucket = f"logs-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_server, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing").create_bucket(Bucket=bucket)
    # moto checks that RunTask's subnets and security groups exist, as ECS does
    ec2 = boto3.client("ec2", endpoint_url=moto_server, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})  # as Fargate's awsvpc needs
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.20.{n}.0/24")["Subnet"]["SubnetId"] for n in (1, 2)]
    group = ec2.create_security_group(GroupName=f"runs-{uuid.uuid4().hex[:6]}", Description="run tasks", VpcId=vpc)["GroupId"]
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(render(tmp_path, TWEET_ASSETS_ECS_SUBNETS=",".join(subnets), TWEET_ASSETS_ECS_SECURITY_GROUPS=group))
    db = postgres_server.create_database("dagster_ecs")
    env = clean_env(
        DAGSTER_HOME=str(home), **postgres_server.dagster_env(db), **ECS_ENV,
        TWEET_ASSETS_ECS_CLUSTER=cluster, DAGSTER_CURRENT_IMAGE=IMAGE,
        TWEET_ASSETS_COMPUTE_LOG_BUCKET=bucket, AWS_REGION=REGION, AWS_DEFAULT_REGION=REGION,
        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_ENDPOINT_URL=moto_server,
        TWEET_ASSETS_LAKE_URL="s3://lake-bucket/tweet_assets", TWEET_ASSETS_SOURCE="x_api", X_QUERY="#dagster -is:retweet",
        X_BEARER_TOKEN="not-used-by-the-daemon", TWEET_ASSETS_START_DATE="2024-01-01",
        TWEET_ASSETS_BACKFILL_PARTITIONS_PER_RUN="2", DAGSTER_DISABLE_TELEMETRY="1", PYTHONUNBUFFERED="1",
        **ICEBERG_ENV,
    )
    proc = subprocess.run([venv_bin("dagster"), "instance", "migrate"], env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # the x_api pool's limit set before the backfill (as deploy/README says to), at 2 so that both
    # queue slots can fill. Left to default_limit (1), the queue daemon's first pass over a new pool
    # reads the pool's limit before it creates it (Dagster 1.13.27, queued_run_coordinator_daemon:
    # get_concurrency_keys, then GlobalOpConcurrencyLimitsCounter initializes the default), so that
    # pass dequeues every run it sees and the next passes block on the pool: two tasks when the
    # backfill daemon had created two runs by then, one task for good otherwise (a STARTING run holds
    # its root step's slot, and moto's tasks never start). Seen in CI under load: 1 task, 2 queued.
    proc = subprocess.run([venv_bin("dagster"), "instance", "concurrency", "set", "x_api", "2"], env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    services = DagsterServices(home=home, env=env)
    try:
        services.start()
        params = {"partitionsByAssets": [{"assetKey": {"path": [a]}, "partitions": {"range": {"start": DAYS[0], "end": DAYS[1]}}} for a in ASSETS],
                  "title": "ecs fan-out"}
        result = services.graphql(LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
        assert result["__typename"] == "LaunchBackfillSuccess", result
        backfill_id = result["backfillId"]

        def runs_now():
            data = services.graphql(RUNS, {"filter": {"tags": [{"key": "dagster/backfill", "value": backfill_id}]}})["runsOrError"]["results"]
            return [{"id": r["runId"], "status": r["status"], **{t["key"]: t["value"] for t in r["tags"]}} for r in data]

        def launched(count):
            runs = runs_now()
            return runs if len(runs) == len(RUN_RANGES) and sum("ecs/task_arn" in r for r in runs) == count else None

        def daemon_progress():
            # what the daemon has done so far: the backfill's runs, their statuses and ECS tasks. The
            # waits below are bounded by this (300 s without a change), not by wall time: on a loaded
            # machine the daemon is slower (#27.17: 300 s of wall time ran out at load 5-8).
            return sorted((r["status"], "ecs/task_arn" in r) for r in runs_now())

        # the run queue bounds the fan-out: two tasks, the third run waits (max_concurrent_runs: 2,
        # and the x_api pool's 2 slots: a run whose first step needs the pool is not dequeued while
        # the slots are counted for runs still starting)
        runs = wait_for(lambda: launched(2), 300, "two runs launched on ECS", services, every=2, progress=daemon_progress)
        time.sleep(5)
        runs = runs_now()
        assert sorted(r["status"] for r in runs if "ecs/task_arn" not in r) == ["QUEUED"], runs
        assert len(ecs(moto_server).list_tasks(cluster=cluster)["taskArns"]) == 2
        # the two tasks end (here: marked canceled through Dagster; they are STARTING, since moto runs
        # no container, and Dagster only asks the launcher to StopTask a STARTED run): the third starts
        started = [r for r in runs if "ecs/task_arn" in r]
        for run in started:
            stopped = services.graphql(TERMINATE, {"runId": run["id"]})["terminateRun"]
            assert stopped["__typename"] == "TerminateRunSuccess", stopped
        runs = wait_for(lambda: launched(3), 300, "the third run launched on ECS", services, every=2, progress=daemon_progress)
        client = ecs(moto_server)
        task_arns = client.list_tasks(cluster=cluster)["taskArns"]
        tasks = client.describe_tasks(cluster=cluster, tasks=task_arns, include=["TAGS"])["tasks"]
        # ListTaskDefinitions' familyPrefix is a whole family name (AWS API reference): take the
        # family the tasks run, then every revision registered in it
        (family,) = {t["taskDefinitionArn"].split("/")[-1].rsplit(":", 1)[0] for t in tasks}
        families = client.list_task_definitions(familyPrefix=family)["taskDefinitionArns"]
    finally:
        services.stop()

    # --- the runs: N=2 days each, in order, each with the ECS task that runs it
    ranges = sorted((r["dagster/asset_partition_range_start"], r["dagster/asset_partition_range_end"]) for r in runs)
    assert ranges == RUN_RANGES
    assert sorted(r["ecs/task_arn"] for r in runs) == sorted(task_arns)
    assert len(tasks) == 3

    # --- RegisterTaskDefinition: once, reused by the later runs
    assert family.startswith("tweet-assets_")  # task_definition_prefix, then Dagster's hashes
    assert len(families) == 1, families  # registered once, reused for the later runs
    definition = client.describe_task_definition(taskDefinition=families[0])["taskDefinition"]
    assert definition["family"] == family
    assert definition["requiresCompatibilities"] == ["FARGATE"] and definition["networkMode"] == "awsvpc"
    assert (definition["cpu"], definition["memory"]) == ("2048", "8192")
    assert definition["executionRoleArn"] == ECS_ENV["TWEET_ASSETS_ECS_EXECUTION_ROLE_ARN"]
    assert definition["taskRoleArn"] == ECS_ENV["TWEET_ASSETS_ECS_TASK_ROLE_ARN"]
    (container,) = definition["containerDefinitions"]
    assert (container["name"], container["image"]) == ("run", IMAGE)
    assert container["logConfiguration"]["logDriver"] == "awslogs"
    assert container["logConfiguration"]["options"]["awslogs-group"] == "/tweet_assets/runs"
    assert sorted(container["secrets"], key=lambda s: s["name"]) == [
        {"name": "DAGSTER_PG_PASSWORD", "valueFrom": ECS_ENV["TWEET_ASSETS_ECS_PG_PASSWORD_PARAMETER_ARN"]},
        {"name": "X_BEARER_TOKEN", "valueFrom": ECS_ENV["TWEET_ASSETS_ECS_X_TOKEN_PARAMETER_ARN"]},
    ]
    environment = {e["name"]: e["value"] for e in container["environment"]}
    for name in ("DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_DB", "DAGSTER_PG_USERNAME", "TWEET_ASSETS_LAKE_URL",
                 "TWEET_ASSETS_COMPUTE_LOG_BUCKET", "TWEET_ASSETS_BACKFILL_PARTITIONS_PER_RUN", "X_QUERY"):
        assert environment[name] == env[name], name
    assert "DAGSTER_PG_PASSWORD" not in environment and "X_BEARER_TOKEN" not in environment
    # the table format reaches the run task: it publishes to the same Iceberg table in Glue as the
    # code location that launched it (issue #37)
    assert {name: environment.get(name) for name in ICEBERG_ENV} == ICEBERG_ENV

    # --- RunTask: Fargate in the cluster (lastStatus aside, moto keeps each call's request), the run's command as the override of the container "run"
    run_ids = {r["id"] for r in runs}
    for task in tasks:
        assert task["clusterArn"].endswith(f"/{cluster}")
        assert task["taskDefinitionArn"] == families[0]
        assert task["launchType"] == "FARGATE"
        eni = {d["name"]: d["value"] for a in task.get("attachments", []) for d in a.get("details", [])}
        assert eni.get("subnetId") in subnets, task.get("attachments")
        (override,) = task["overrides"]["containerOverrides"]
        assert override["name"] == "run"
        assert (override["cpu"], override["memory"]) == (2048, 8192)  # run_resources
        assert task["overrides"]["ephemeralStorage"] == {"sizeInGiB": 50}
        command = override["command"]
        assert command[:3] == ["dagster", "api", "execute_run"]
        args = deserialize_value(command[3], ExecuteRunArgs)  # as the run worker in the container reads it
        assert args.run_id in run_ids
        origin = args.job_origin.repository_origin  # where the task loads the code: the image's own package
        assert origin.code_pointer.module == "tweet_assets.definitions" and origin.container_image == IMAGE
        assert args.instance_ref is not None  # the task reads the same storage (dagster.yaml, {"env": ...})
        assert postgres_server.password not in json.dumps(task, default=str)
        tags = {t["key"]: t["value"] for t in task["tags"]}
        assert tags["dagster/run_id"] == args.run_id and tags["project"] == "tweet_assets"
        assert tags["dagster/backfill"] == runs[0]["dagster/backfill"]
    assert {deserialize_value(t["overrides"]["containerOverrides"][0]["command"][3], ExecuteRunArgs).run_id for t in tasks} == run_ids
