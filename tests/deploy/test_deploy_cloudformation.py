"""deploy/cloudformation/tweet-assets.yaml: cfn-lint is clean; checkov (from a venv of its own)
fails nothing and every skip is justified in the file; and the template is created by moto's
CloudFormation on 127.0.0.1, twice (SSE-S3 without ECS; SSE-KMS with ECS), with assertions on
what it made: the roles' policies equal deploy/iam/*.json rendered by render-policies.sh with the
stack's names (the single source), the bucket's encryption, RDS, the instance's profile, IMDSv2
and user data, the ECS cluster and run task definition, the log group.

moto's CloudFormation does not apply a bucket's versioning, public access block, lifecycle rules
or bucket policy (nor create AWS::S3::BucketPolicy): those are asserted on the parsed template.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from deploy_helpers import DEPLOY, clean_env, venv_bin

TEMPLATE = DEPLOY / "cloudformation" / "tweet-assets.yaml"
USER_DATA = DEPLOY / "ec2" / "user-data.sh"
CHECKOV_VERSION = "3.3.30"
CHECKOV_VENV = Path(os.environ.get("TWEET_ASSETS_CHECKOV_VENV", Path.home() / ".cache" / "tweet_assets" / "checkov-venv"))
REGION = "eu-west-1"
ACCOUNT = "123456789012"  # moto's default account
PARAMETER_KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
LAKE_KEY_ID = "abcd1234-0000-4000-8000-1234567890ab"
IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/tweet-assets:0.1.0"


def template() -> dict:
    from cfnlint.decode import decode_str

    parsed, errors = decode_str(TEMPLATE.read_text())
    assert not errors, errors
    return parsed


def cfn_lint(*paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run([venv_bin("cfn-lint"), "--format", "parseable", *map(str, paths)], capture_output=True, text=True, timeout=300)


def test_cfn_lint_reports_nothing_and_catches_a_bad_template(tmp_path):
    """One cfn-lint run: nothing on the template; on a control template, a wrong property and a
    deprecated engine version."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "Resources:\n  Db:\n    Type: AWS::RDS::DBInstance\n    Properties:\n      Engine: postgres\n"
        "      EngineVersion: '9.6'\n      DBInstanceClass: db.t4g.small\n      Encrypted: true\n"
    )
    proc = cfn_lint(TEMPLATE, bad)
    ours = [line for line in proc.stdout.splitlines() if "tweet-assets.yaml" in line]
    assert ours == [], proc.stdout + proc.stderr
    control = [line for line in proc.stdout.splitlines() if "bad.yaml" in line]
    assert any("Encrypted" in line for line in control) and any("9.6" in line for line in control), proc.stdout


# ------------------------------------------------------------------------------------------------
# checkov, in a venv of its own (its pins conflict with the project's stack)


def checkov_bin() -> Path:
    checkov = CHECKOV_VENV / "bin" / "checkov"
    marker = CHECKOV_VENV / f".installed-checkov-{CHECKOV_VERSION}"
    if marker.exists():
        return checkov
    CHECKOV_VENV.parent.mkdir(parents=True, exist_ok=True)
    with open(CHECKOV_VENV.parent / ".checkov-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():
            return checkov
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", "--clear", str(CHECKOV_VENV)], check=True, timeout=300)
        proc = subprocess.run(
            [str(CHECKOV_VENV / "bin/python"), "-m", "pip", "install", "--quiet", f"checkov=={CHECKOV_VERSION}"],
            capture_output=True, text=True, timeout=1500,
        )
        if proc.returncode != 0:
            tail = [line for line in proc.stderr.splitlines() if not line.startswith("WARNING: Location")][-5:]
            pytest.skip(f"pip could not install checkov=={CHECKOV_VERSION} into {CHECKOV_VENV}: {tail}")
        marker.write_text(CHECKOV_VERSION)
    return checkov


BAD_BUCKET = """Resources:
  Bucket:
    Type: AWS::S3::Bucket
    Properties:
      BucketName: an-open-bucket
"""


@pytest.mark.slow
def test_checkov_fails_nothing_and_flags_a_bad_bucket(tmp_path):
    """One checkov run over the template and a control bucket with nothing configured: the
    template has no failed check; the control fails versioning, encryption, public access block."""
    (tmp_path / "bad.yaml").write_text(BAD_BUCKET)
    # checkov scans str() of the parsed UserData, which carries the file's path as given: CKV_AWS_46
    # (secrets in user data) flagged this template at one checkout path and passed it at every other
    # tried (checkov 3.3.30). Scan a copy by a relative name, so the result never depends on where
    # the checkout is.
    shutil.copy(TEMPLATE, tmp_path / TEMPLATE.name)
    proc = subprocess.run(
        [str(checkov_bin()), "--framework", "cloudformation", "--output", "json", "--skip-download",
         "-f", TEMPLATE.name, "-f", "bad.yaml"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
        env=clean_env(BC_SKIP_MAPPING="TRUE", CHECKOV_RUN_SCA_PACKAGE_SCAN_V2="false"),
    )
    report = json.loads(proc.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [c for r in reports for c in r["results"]["failed_checks"]]
    passed = [c for r in reports for c in r["results"]["passed_checks"]]
    skipped = [c for r in reports for c in r["results"]["skipped_checks"]]
    ours = [f"{c['check_id']} {c['resource']}" for c in failed if c["file_path"].endswith("tweet-assets.yaml")]
    assert ours == [], ours
    assert len([c for c in passed if c["file_path"].endswith("tweet-assets.yaml")]) >= 40
    control = {c["check_id"] for c in failed if c["file_path"].endswith("bad.yaml")}
    assert {"CKV_AWS_21", "CKV_AWS_53"} <= control, control  # versioning, public access block
    # the skips declared (with their reasons) in the template are exactly the checks checkov skipped:
    # none is stale (a check that would pass, or does not exist for CloudFormation)
    declared = {(name, s["id"]) for name, r in template()["Resources"].items() for s in (r.get("Metadata", {}).get("checkov", {}).get("skip") or [])}
    assert {(c["resource"].split(".")[-1], c["check_id"]) for c in skipped} == declared


def test_every_checkov_skip_is_justified_in_the_file():
    skips = [
        (name, skip)
        for name, resource in template()["Resources"].items()
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]
    assert skips
    for name, skip in skips:
        assert re.fullmatch(r"CKV2?_AWS_\d+", skip["id"]), (name, skip)
        assert len(skip.get("comment", "").split()) >= 8, f"{name} {skip['id']}: say why it is skipped"


# ------------------------------------------------------------------------------------------------
# The bucket's settings that moto's CloudFormation does not apply, on the parsed template


def test_lake_bucket_is_encrypted_versioned_private_tls_only_and_has_lifecycle_rules():
    resources = template()["Resources"]
    bucket = resources["LakeBucket"]
    assert bucket["DeletionPolicy"] == "Retain"
    props = bucket["Properties"]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["PublicAccessBlockConfiguration"] == dict.fromkeys(
        ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"), True
    )
    assert props["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    rules = {rule["Id"]: rule for rule in props["LifecycleConfiguration"]["Rules"]}
    assert all(rule["Status"] == "Enabled" for rule in rules.values())
    raw = rules["raw-zone-to-infrequent-access"]
    assert raw["Prefix"] == {"Fn::Sub": "${LakePrefix}/raw_tweets/"}
    assert raw["Transitions"] == [{"StorageClass": "STANDARD_IA", "TransitionInDays": {"Ref": "RawInfrequentAccessDays"}}]
    # issue #22: incomplete multipart uploads are aborted, bucket-wide (no prefix or filter)
    abort = rules["abort-incomplete-multipart-uploads"]
    assert abort["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    assert "Prefix" not in abort and "Filter" not in abort
    # Dagster's compute logs expire (the retention Dagster itself does not do)
    assert rules["compute-logs-expire"]["Prefix"] == "tweet_assets/dagster/compute_logs/"
    assert rules["noncurrent-versions-expire"]["NoncurrentVersionExpiration"] == {"NoncurrentDays": {"Ref": "NoncurrentVersionDays"}}
    (deny,) = resources["LakeBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny" and deny["Principal"] == "*" and deny["Action"] == "s3:*"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert deny["Resource"] == [{"Fn::GetAtt": ["LakeBucket", "Arn"]}, {"Fn::Sub": "${LakeBucket.Arn}/*"}]


def test_the_compute_log_prefix_is_the_one_deploy_dagster_yaml_uses():
    yaml_text = (DEPLOY / "dagster.yaml").read_text()
    match = re.search(r"^\s*prefix: (\S+)", yaml_text, flags=re.M)
    if not match:
        pytest.skip("deploy/dagster.yaml has no S3 compute log prefix")
    assert f"{match.group(1)}/" == "tweet_assets/dagster/compute_logs/"


# ------------------------------------------------------------------------------------------------
# Created in moto's CloudFormation on 127.0.0.1


@pytest.fixture(scope="module")
def aws():
    """A moto server on loopback and a boto3 client factory for it."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"

    def client(service):
        return boto3.client(service, region_name=REGION, endpoint_url=url, aws_access_key_id="testing", aws_secret_access_key="testing")

    yield client
    server.stop()


def render_policies(tmp_path: Path, **values) -> dict[str, dict]:
    env = clean_env(REGION=REGION, ACCOUNT_ID=ACCOUNT, KMS_KEY_ID=PARAMETER_KEY_ID, **values)
    out = tmp_path / "rendered"
    subprocess.run(["bash", str(DEPLOY / "iam" / "render-policies.sh"), str(out)], env=env, check=True, timeout=60, capture_output=True)
    return {p.name: json.loads(p.read_text()) for p in sorted(out.glob("*.json"))}


def create_stack(aws, name: str, **parameters) -> dict[str, dict]:
    ec2, ssm, cfn = aws("ec2"), aws("ssm"), aws("cloudformation")
    vpc = ec2.create_vpc(CidrBlock="10.16.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.16.{i}.0/24", AvailabilityZone=f"{REGION}{zone}")["Subnet"]["SubnetId"]
        for i, zone in enumerate("ab")
    ]
    for parameter, value in (("/tweet_assets/x_bearer_token", "token"), ("/tweet_assets/dagster_pg_password", "pg-password-1")):
        ssm.put_parameter(Name=parameter, Value=value, Type="SecureString", Overwrite=True)
    values = {
        "LakeBucketName": f"{name}-lake",
        "LakePrefix": "lake/v1",
        "ParameterKmsKeyId": PARAMETER_KEY_ID,
        "VpcId": vpc,
        "InstanceSubnetId": subnets[0],
        "DatabaseSubnetIds": ",".join(subnets),
        "ImageId": "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64",
        "GitUrl": "https://git.example.org/tweet_assets.git",
        "GitRef": "v0.1.0",
        "XQuery": '"climate change" lang:en -is:retweet',
        **parameters,
    }
    cfn.create_stack(
        StackName=name, TemplateBody=TEMPLATE.read_text(), Capabilities=["CAPABILITY_IAM"],
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()],
    )
    stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
    resources = {
        r["LogicalResourceId"]: r for r in cfn.list_stack_resources(StackName=name)["StackResourceSummaries"]
    }
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    return {"resources": resources, "outputs": outputs, "values": values, "subnets": subnets}


def physical(stack, logical: str) -> str:
    return stack["resources"][logical]["PhysicalResourceId"]


def managed_policy_document(iam, arn: str) -> dict:
    version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    document = iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]
    return json.loads(document) if isinstance(document, str) else document


def inline_policies(iam, role: str) -> dict[str, dict]:
    out = {}
    for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
        document = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
        out[name] = json.loads(document) if isinstance(document, str) else document
    return out


@pytest.mark.slow
def test_stack_with_sse_s3_and_no_ecs(aws, tmp_path):
    stack = create_stack(aws, "plain")
    s3, iam = aws("s3"), aws("iam")
    bucket = physical(stack, "LakeBucket")
    assert bucket == "plain-lake"
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    rendered = render_policies(tmp_path, LAKE_BUCKET=bucket, LAKE_PREFIX="lake/v1")
    role = physical(stack, "InstanceRole")
    attached = iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]
    assert [managed_policy_document(iam, p["PolicyArn"]) for p in attached] == [rendered["policy.json"]]
    assert inline_policies(iam, role) == {"tweet-assets-session-manager": rendered["session-manager-policy.json"]}
    assert "EcsCluster" not in stack["resources"] and "LakeKmsPolicy" not in stack["resources"]
    # without Session Manager the role has the pipeline policy only: no AmazonSSMManagedInstanceCore
    bare = create_stack(aws, "bare", EnableSessionManager="false")
    bare_role = physical(bare, "InstanceRole")
    assert inline_policies(iam, bare_role) == {}
    assert [p["PolicyName"] for p in iam.list_attached_role_policies(RoleName=bare_role)["AttachedPolicies"]] == [
        physical(bare, "PipelinePolicy").rsplit("/", 1)[-1]
    ]


@pytest.fixture(scope="module")
def full_stack(aws):
    return create_stack(aws, "full", LakeKmsKeyId=LAKE_KEY_ID, ContainerImage=IMAGE)


@pytest.mark.slow
def test_roles_carry_exactly_the_rendered_policies(aws, full_stack, tmp_path):
    iam = aws("iam")
    stack = full_stack
    bucket = physical(stack, "LakeBucket")
    cluster = physical(stack, "EcsCluster").rsplit("/", 1)[-1]
    task_role, execution_role = physical(stack, "RunTaskRole"), physical(stack, "RunTaskExecutionRole")
    log_group = physical(stack, "LogGroup")
    rendered = render_policies(
        tmp_path, LAKE_BUCKET=bucket, LAKE_PREFIX="lake/v1", LAKE_KMS_KEY_ID=LAKE_KEY_ID, ECS_CLUSTER=cluster,
        ECS_TASK_ROLE=task_role, ECS_EXECUTION_ROLE=execution_role, LOG_GROUP=log_group,
    )
    role = physical(stack, "InstanceRole")
    # the pipeline policy (deploy/iam/policy.json) and the lake key's, attached to both roles
    expected_managed = sorted([rendered["policy.json"], rendered["lake-kms-policy.json"]], key=json.dumps)
    for name in (role, task_role):
        attached = iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]
        assert sorted((managed_policy_document(iam, p["PolicyArn"]) for p in attached), key=json.dumps) == expected_managed, name
    assert inline_policies(iam, role) == {
        "tweet-assets-session-manager": rendered["session-manager-policy.json"],
        "tweet-assets-ecs-launcher": rendered["ecs-launcher-policy.json"],
    }
    assert inline_policies(iam, task_role) == {}
    trust = iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    assert trust == rendered["trust-policy.json"]
    # the instance profile holds that role
    profiles = iam.list_instance_profiles_for_role(RoleName=role)["InstanceProfiles"]
    assert [p["InstanceProfileName"] for p in profiles] == [physical(stack, "InstanceProfile")]


@pytest.mark.slow
def test_bucket_database_instance_ecs_and_log_group(aws, full_stack):
    stack = full_stack
    s3, rds, ec2, ecs, logs = aws("s3"), aws("rds"), aws("ec2"), aws("ecs"), aws("logs")
    bucket = physical(stack, "LakeBucket")
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms", "KMSMasterKeyID": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{LAKE_KEY_ID}"
    }
    assert stack["outputs"]["LakeUrl"] == f"s3://{bucket}/lake/v1"

    (db,) = rds.describe_db_instances(DBInstanceIdentifier=physical(stack, "Database"))["DBInstances"]
    assert db["Engine"] == "postgres" and db["DBName"] == "dagster" and db["MasterUsername"] == "dagster"
    assert db["StorageEncrypted"] is True and db["PubliclyAccessible"] is False
    # (moto's CloudFormation drops DeletionProtection: read from the template)
    assert template()["Resources"]["Database"]["Properties"]["DeletionProtection"] is True
    assert db["Endpoint"]["Port"] == 5432 and db["BackupRetentionPeriod"] == 7

    instance_id = physical(stack, "Instance")
    (reservation,) = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    (instance,) = reservation["Instances"]
    assert instance["IamInstanceProfile"]["Arn"].endswith("/" + physical(stack, "InstanceProfile"))
    # IMDSv2 only (moto's CloudFormation drops MetadataOptions: read from the template)
    assert template()["Resources"]["Instance"]["Properties"]["MetadataOptions"]["HttpTokens"] == "required"
    assert instance["SubnetId"] == stack["values"]["InstanceSubnetId"]
    user_data = base64.b64decode(ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")["UserData"]["Value"]).decode()
    exports = dict(re.findall(r"^export (\w+)='([^']*)'$", user_data, flags=re.M))
    assert exports["TWEET_ASSETS_LAKE_URL"] == f"s3://{bucket}/lake/v1"
    assert exports["DAGSTER_PG_HOST"] == db["Endpoint"]["Address"] and exports["DAGSTER_PG_PORT"] == "5432"
    assert exports["X_QUERY"] == stack["values"]["XQuery"] and exports["TWEET_ASSETS_GIT_REF"] == "v0.1.0"
    # deploy/ecs/dagster.yaml's settings, from this stack
    assert exports["TWEET_ASSETS_ECS_CLUSTER"] == physical(stack, "EcsCluster")
    assert exports["TWEET_ASSETS_ECS_TASK_ROLE_ARN"].endswith(":role/" + physical(stack, "RunTaskRole"))
    assert exports["TWEET_ASSETS_ECS_EXECUTION_ROLE_ARN"].endswith(":role/" + physical(stack, "RunTaskExecutionRole"))
    assert exports["TWEET_ASSETS_ECS_LOG_GROUP"] == physical(stack, "LogGroup") and exports["DAGSTER_CURRENT_IMAGE"] == IMAGE
    assert exports["TWEET_ASSETS_ECS_PG_PASSWORD_PARAMETER_ARN"] == f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/tweet_assets/dagster_pg_password"
    # the table format: Hive by default, no Glue database (that would add the glue_table assets)
    assert (exports["TWEET_ASSETS_TABLE_FORMAT"], exports["TWEET_ASSETS_GLUE_DATABASE"]) == ("hive", "")
    assert "IcebergPolicy" not in stack["resources"] and "IcebergTable" not in stack["outputs"]
    ecs_yaml = DEPLOY / "ecs" / "dagster.yaml"
    if ecs_yaml.exists():
        wanted = set(re.findall(r"env: (TWEET_ASSETS_ECS_\w+)", ecs_yaml.read_text()))
        assert wanted <= set(exports), wanted - set(exports)
    # every setting the bootstrap exports is one deploy/ec2/user-data.sh reads, and no secret is in it
    script = USER_DATA.read_text()
    for name in exports:
        assert re.search(rf'^{name}="\$\{{{name}[:-]', script, flags=re.M) or re.search(rf"ECS_SETTINGS=\([^)]*\b{name}\b", script), f"user-data.sh does not read {name}"
    assert "pg-password-1" not in user_data and "token" not in exports.values()
    assert user_data.rstrip().endswith('exec bash "$src/deploy/ec2/user-data.sh"')
    assert "DPkg::Lock::Timeout=" in user_data
    bootstrap = Path(os.environ.get("TMPDIR", "/tmp")) / f"bootstrap-{os.getpid()}.sh"
    bootstrap.write_text(user_data)
    try:
        check = subprocess.run([venv_bin("shellcheck"), "--shell=bash", str(bootstrap)], capture_output=True, text=True, timeout=60)
    finally:
        bootstrap.unlink()
    assert check.returncode == 0, check.stdout

    cluster = physical(stack, "EcsCluster")
    assert ecs.describe_clusters(clusters=[cluster])["clusters"][0]["status"] == "ACTIVE"
    assert stack["outputs"]["EcsClusterName"] == cluster
    task = ecs.describe_task_definition(taskDefinition=stack["outputs"]["RunTaskDefinitionArn"])["taskDefinition"]
    assert task["family"] == "tweet-assets-run"
    # (moto's CloudFormation drops these task definition properties: read from the template)
    props = template()["Resources"]["RunTaskDefinition"]["Properties"]
    assert props["NetworkMode"] == "awsvpc" and props["RequiresCompatibilities"] == ["FARGATE"]
    assert props["TaskRoleArn"] == {"Fn::GetAtt": ["RunTaskRole", "Arn"]}
    assert props["ExecutionRoleArn"] == {"Fn::GetAtt": ["RunTaskExecutionRole", "Arn"]}
    (container,) = task["containerDefinitions"]
    assert container["name"] == "run" and container["image"] == IMAGE and container["user"] == "10001:10001"
    # (an !If's AWS::NoValue in a list: CloudFormation drops the item, moto keeps it as null)
    env = {e["name"]: e["value"] for e in container["environment"] if e is not None}
    assert env["DAGSTER_PG_HOST"] == db["Endpoint"]["Address"] and env["TWEET_ASSETS_LAKE_URL"] == f"s3://{bucket}/lake/v1"
    assert env["TWEET_ASSETS_TABLE_FORMAT"] == "hive" and not {"TWEET_ASSETS_ICEBERG_CATALOG", "TWEET_ASSETS_GLUE_DATABASE"} & set(env)
    assert {s["name"]: s["valueFrom"] for s in container["secrets"]} == {
        "X_BEARER_TOKEN": f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/tweet_assets/x_bearer_token",
        "DAGSTER_PG_PASSWORD": f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/tweet_assets/dagster_pg_password",
    }
    assert container["logConfiguration"]["options"]["awslogs-group"] == physical(stack, "LogGroup")
    # the task's default command is the image's CMD (deploy/container/Dockerfile)
    dockerfile_cmd = json.loads(re.search(r"^CMD (\[.*\])$", (DEPLOY / "container" / "Dockerfile").read_text(), flags=re.M).group(1))
    assert container["command"] == dockerfile_cmd

    (group,) = logs.describe_log_groups(logGroupNamePrefix=physical(stack, "LogGroup"))["logGroups"]
    assert group["retentionInDays"] == 365


# ------------------------------------------------------------------------------------------------
# issue #37: TableFormat=iceberg


@pytest.mark.slow
def test_iceberg_stack_attaches_the_iceberg_policy_to_both_roles_and_configures_the_glue_catalog(aws, tmp_path):
    """TableFormat=iceberg: the instance role and the run task role (every job runs as one of them:
    the daily runs, compliance_job, iceberg_maintenance_job) carry exactly policy.json and
    iceberg-policy.json rendered for the stack's names; the instance's user data and the run task
    definition set the format, the catalog named glue (PYICEBERG_CATALOG__GLUE__TYPE=glue) and the
    database."""
    stack = create_stack(aws, "ice", TableFormat="iceberg", GlueDatabaseName="tweets_db", ContainerImage=IMAGE)
    iam, ec2, ecs = aws("iam"), aws("ec2"), aws("ecs")
    bucket = physical(stack, "LakeBucket")
    rendered = render_policies(tmp_path, LAKE_BUCKET=bucket, LAKE_PREFIX="lake/v1", TABLE_FORMAT="iceberg", GLUE_DATABASE="tweets_db")
    expected = sorted([rendered["policy.json"], rendered["iceberg-policy.json"]], key=json.dumps)
    for role in (physical(stack, "InstanceRole"), physical(stack, "RunTaskRole")):
        attached = iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]
        assert sorted((managed_policy_document(iam, p["PolicyArn"]) for p in attached), key=json.dumps) == expected, role
    user_data = base64.b64decode(ec2.describe_instance_attribute(InstanceId=physical(stack, "Instance"), Attribute="userData")["UserData"]["Value"]).decode()
    exports = dict(re.findall(r"^export (\w+)='([^']*)'$", user_data, flags=re.M))
    assert (exports["TWEET_ASSETS_TABLE_FORMAT"], exports["TWEET_ASSETS_GLUE_DATABASE"]) == ("iceberg", "tweets_db")
    task = ecs.describe_task_definition(taskDefinition=stack["outputs"]["RunTaskDefinitionArn"])["taskDefinition"]
    (container,) = task["containerDefinitions"]
    env = {e["name"]: e["value"] for e in container["environment"]}
    assert {k: env.get(k) for k in ("TWEET_ASSETS_TABLE_FORMAT", "TWEET_ASSETS_ICEBERG_CATALOG", "PYICEBERG_CATALOG__GLUE__TYPE", "TWEET_ASSETS_GLUE_DATABASE")} == {
        "TWEET_ASSETS_TABLE_FORMAT": "iceberg", "TWEET_ASSETS_ICEBERG_CATALOG": "glue", "PYICEBERG_CATALOG__GLUE__TYPE": "glue", "TWEET_ASSETS_GLUE_DATABASE": "tweets_db",
    }
    assert stack["outputs"]["IcebergTable"] == f"tweets_db.tweets at s3://{bucket}/lake/v1/tweets"


def test_the_iceberg_policy_in_the_template_is_the_rendered_file(tmp_path):
    """Without moto: the template's IcebergPolicy, its !Sub values filled with a stack's names, is
    iceberg-policy.json rendered with the same names (the slow test above checks the created stack)."""
    names = {"LakeBucket": "some-lake", "LakePrefix": "lake/v1", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "GlueDatabaseName": "tweets_db"}

    def filled(value):
        if isinstance(value, dict) and set(value) == {"Fn::Sub"}:
            return re.sub(r"\$\{([^}]+)\}", lambda m: names[m.group(1)], value["Fn::Sub"])
        if isinstance(value, list):
            return [filled(v) for v in value]
        if isinstance(value, dict):
            return {k: filled(v) for k, v in value.items()}
        return value

    document = filled(template()["Resources"]["IcebergPolicy"]["Properties"]["PolicyDocument"])
    rendered = render_policies(tmp_path, LAKE_BUCKET="some-lake", LAKE_PREFIX="lake/v1", TABLE_FORMAT="iceberg", GLUE_DATABASE="tweets_db")
    assert document == rendered["iceberg-policy.json"]
