"""deploy/ecs/stream-*.json: the filtered-stream consumer as an ECS service, checked against the
ECS API itself (botocore's model, and moto's ECS on 127.0.0.1) and against the consumer's rules."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from tweet_assets.stream.rules import load_rules

REPO = Path(__file__).resolve().parents[2]
ECS = REPO / "deploy" / "ecs"


def _load(name: str) -> dict:
    return json.loads((ECS / name).read_text())


def test_files_are_valid_ecs_api_input():
    import botocore.session
    from botocore.validate import ParamValidator

    model = botocore.session.get_session().get_service_model("ecs")
    for name, operation in (("stream-task-definition.json", "RegisterTaskDefinition"), ("stream-service.json", "CreateService")):
        report = ParamValidator().validate(_load(name), model.operation_model(operation).input_shape)
        assert not report.has_errors(), f"{name}: {report.generate_report()}"


def test_one_connection_at_a_time_and_a_durable_spool():
    task, service = _load("stream-task-definition.json"), _load("stream-service.json")
    assert service["desiredCount"] == 1
    # a deployment never runs the old and the new task together: X allows one stream connection
    assert service["deploymentConfiguration"]["maximumPercent"] == 100
    (container,) = task["containerDefinitions"]
    assert container["command"] == ["tweet-assets", "stream"]
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["tweet-assets"] == "tweet_assets.cli:main"
    env = {e["name"]: e["value"] for e in container["environment"]}
    assert "X_BEARER_TOKEN" not in env  # a secret, from SSM
    assert [s["name"] for s in container["secrets"]] == ["X_BEARER_TOKEN"] and ":parameter/" in container["secrets"][0]["valueFrom"]
    (mount,) = container["mountPoints"]
    assert mount["containerPath"] == env["TWEET_ASSETS_STREAM_SPOOL_DIR"]
    (volume,) = [v for v in task["volumes"] if v["name"] == mount["sourceVolume"]]
    assert "efsVolumeConfiguration" in volume  # survives the task: spools left by a crash are published by the next task
    assert container["stopTimeout"] >= 30
    assert load_rules(env["TWEET_ASSETS_STREAM_RULES"])


@pytest.mark.slow
def test_moto_registers_the_task_and_creates_the_service(aws_env):
    import boto3

    ecs = boto3.client("ecs", endpoint_url=aws_env, region_name="us-east-1")
    service = _load("stream-service.json")
    ec2 = boto3.client("ec2", endpoint_url=aws_env, region_name="us-east-1")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="stream", Description="stream", VpcId=vpc)["GroupId"]
    service["networkConfiguration"]["awsvpcConfiguration"].update(subnets=[subnet], securityGroups=[group])  # the placeholders, made real
    ecs.create_cluster(clusterName=service["cluster"])
    registered = ecs.register_task_definition(**_load("stream-task-definition.json"))["taskDefinition"]
    assert registered["family"] == "tweet-assets-stream"
    created = ecs.create_service(**service)["service"]
    assert created["desiredCount"] == 1 and created["serviceName"] == "tweet-assets-stream"
