"""deploy/iam: parliament lints the rendered policies, and a policy evaluator shows that the
pipeline's real AWS calls (recorded from a run of tweets_daily_job against moto) are allowed while
other prefixes, buckets, parameters and actions are denied.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from deploy_helpers import DEPLOY, HERE, clean_env, require_project, venv_bin
from iam_eval import Request, is_allowed, request_for_call, requests_for_call

REGION = "eu-west-1"
ACCOUNT = "123456789012"
BUCKET = "example-tweets-lake"
PREFIX = "lake/v1"
KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
PARAM = "/tweet_assets/x_bearer_token"
PARAM_ARN = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/tweet_assets/x_bearer_token"
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{KEY_ID}"
PLACEHOLDER_ENV = {
    "LAKE_BUCKET": BUCKET,
    "LAKE_PREFIX": PREFIX,
    "REGION": REGION,
    "ACCOUNT_ID": ACCOUNT,
    "KMS_KEY_ID": KEY_ID,
    "ATHENA_WORKGROUP": "analysts",
    "GLUE_DATABASE": "tweets_db",
    "RESULTS_BUCKET": "example-athena-results",
    "RESULTS_PREFIX": "tweet_assets",
}


def render(tmp_path, **overrides) -> dict[str, dict]:
    env = clean_env(**{**PLACEHOLDER_ENV, **overrides})
    out = tmp_path / "rendered"
    subprocess.run(["bash", str(DEPLOY / "iam" / "render-policies.sh"), str(out)], env=env, check=True, timeout=60)
    return {p.name: json.loads(p.read_text()) for p in sorted(out.glob("*.json"))}


def parliament(policy: dict) -> list[str]:
    """parliament's findings for ``policy`` (--string: its --file needs a TTY)."""
    proc = subprocess.run(
        [venv_bin("parliament"), "--string", json.dumps(policy)], capture_output=True, text=True, timeout=120
    )
    findings = [line for line in proc.stdout.splitlines() if line.strip()]
    assert proc.returncode == (1 if findings else 0), proc.stderr
    return findings


@pytest.fixture
def rendered(tmp_path):
    return render(tmp_path)


def test_templates_are_json_with_only_documented_placeholders():
    for name in ("policy.json", "trust-policy.json", "athena-reader-policy.json", "glue-catalog-policy.json"):
        text = (DEPLOY / "iam" / name).read_text()
        json.loads(text)
        assert "*\"" not in text.replace("/*\"", ""), f"{name}: a bare * action or resource"


def test_render_fills_every_placeholder_and_handles_a_lake_at_the_bucket_root(tmp_path, rendered):
    policy = rendered["policy.json"]
    resources = json.dumps(policy)
    assert f"arn:aws:s3:::{BUCKET}/{PREFIX}/tweets/*" in resources
    assert PARAM_ARN in resources and KEY_ARN in resources
    root = render(tmp_path / "root", LAKE_PREFIX="")["policy.json"]
    assert f"arn:aws:s3:::{BUCKET}/tweets/*" in json.dumps(root)
    assert is_allowed(root, Request("s3:PutObject", f"arn:aws:s3:::{BUCKET}/tweets/dt=2024-01-01/part-00000.parquet"))
    assert is_allowed(root, Request("s3:ListBucket", f"arn:aws:s3:::{BUCKET}", {"s3:prefix": "tweets/"}))
    assert not is_allowed(root, Request("s3:ListBucket", f"arn:aws:s3:::{BUCKET}", {"s3:prefix": ""}))
    # a missing placeholder value is an error, not a policy with LAKE_BUCKET in it
    env = clean_env(**{k: v for k, v in PLACEHOLDER_ENV.items() if k != "ACCOUNT_ID"})
    proc = subprocess.run(
        ["bash", str(DEPLOY / "iam" / "render-policies.sh"), str(tmp_path / "bad")], env=env, capture_output=True, text=True
    )
    assert proc.returncode != 0 and "ACCOUNT_ID" in proc.stderr


def test_parliament_reports_nothing_on_the_identity_policies(rendered):
    assert parliament(rendered["policy.json"]) == []
    assert parliament(rendered["athena-reader-policy.json"]) == []
    assert parliament(rendered["glue-catalog-policy.json"]) == []


def test_parliament_catches_a_too_broad_policy(rendered):
    """Control: the same linter run flags a wildcard policy, so an empty report above means something."""
    broad = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    assert parliament(broad)


def test_no_wildcard_actions_and_no_star_resource(rendered):
    for name in ("policy.json", "athena-reader-policy.json", "glue-catalog-policy.json"):
        for statement in rendered[name]["Statement"]:
            actions = [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
            resources = [statement["Resource"]] if isinstance(statement["Resource"], str) else statement["Resource"]
            assert all("*" not in a for a in actions), (name, actions)
            assert "*" not in resources, (name, resources)
            assert statement["Effect"] == "Allow"


def test_trust_policy_lets_only_ec2_assume_the_role(rendered):
    trust = rendered["trust-policy.json"]
    (statement,) = trust["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Principal"] == {"Service": "ec2.amazonaws.com"}
    assert statement["Action"] == "sts:AssumeRole"
    # parliament lints identity policies only: on a trust policy its one finding is the (correctly)
    # missing Resource, which also shows it parsed the action as a real one
    findings = parliament(trust)
    assert len(findings) == 1 and "neither Resource nor NotResource" in findings[0], findings


@pytest.fixture(scope="module")
def pipeline_calls(tmp_path_factory):
    """Every AWS call of two runs of tweets_daily_job for one day on an s3:// lake (moto, in
    process), plus a multipart upload and a listing of each table through the lake."""
    require_project()
    env = clean_env(
        TWEET_ASSETS_LAKE_URL=f"s3://{BUCKET}/{PREFIX}",
        TWEET_ASSETS_START_DATE="2024-01-01",  # the sample source reaches back 30 days by default
        AWS_DEFAULT_REGION=REGION,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        DAGSTER_HOME=str(tmp_path_factory.mktemp("dagster_home")),
        TMPDIR=str(tmp_path_factory.mktemp("tmp")),
    )
    proc = subprocess.run(
        [sys.executable, str(HERE / "record_aws_calls.py"), "2024-01-01"],
        env=env, capture_output=True, text=True, timeout=300, cwd=env["TMPDIR"],
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def test_policy_allows_every_call_the_pipeline_makes(rendered, pipeline_calls):
    policy = rendered["policy.json"]
    operations = {c["operation"] for c in pipeline_calls}
    # the run really exercised writes, reads, multipart and listing; and no deletes (the policy
    # grants none: a rerun overwrites with PutObject)
    assert {"PutObject", "GetObject", "HeadObject", "CreateMultipartUpload", "UploadPart",
            "CompleteMultipartUpload", "ListObjectsV2"} <= operations, operations
    assert not {"DeleteObject", "DeleteObjects"} & operations, operations
    keys = {c["params"].get("Key") for c in pipeline_calls if c["operation"] == "PutObject"}
    checks = {k for k in keys if k.startswith(f"{PREFIX}/_tweet_assets_check/")}
    # the filtered-stream consumer's segment and its health and rules records (record_aws_calls)
    stream = {k for k in keys if k.startswith(f"{PREFIX}/raw_stream/")}
    assert {f"{PREFIX}/raw_stream/_consumer/health.json", f"{PREFIX}/raw_stream/_consumer/rules.json"} < stream
    assert any(k.startswith(f"{PREFIX}/raw_stream/dt=2024-01-01/") and k.endswith(".jsonl.gz") for k in stream), stream
    # the day's lease and lineage records (conditional PUTs under clean_tweets/, which the policy covers)
    bookkeeping = {f"{PREFIX}/clean_tweets/_leases/dt=2024-01-01.json", f"{PREFIX}/clean_tweets/_lineage/dt=2024-01-01.json"}
    assert bookkeeping <= keys
    assert keys - checks - stream - bookkeeping == {
        f"{PREFIX}/raw_tweets/dt=2024-01-01/part-00000.jsonl.gz",
        f"{PREFIX}/clean_tweets/dt=2024-01-01/part-00000.parquet",
    }
    # raw_tweets' write check (each run, before the source is read) overwrites one fixed key; and
    # each store first looks for incomplete uploads an interrupted run left at its keys
    assert checks == {f"{PREFIX}/_tweet_assets_check/write-check"}
    assert "ListMultipartUploads" in operations
    # the published object is a server-side copy of clean_tweets' object: UploadPartCopy inside a
    # multipart upload completed conditionally (docs/concurrency.md), never CopyObject
    copies = {(c["params"]["CopySource"], c["params"]["Key"]) for c in pipeline_calls if c["operation"] in ("CopyObject", "UploadPartCopy")}
    assert "CopyObject" not in operations
    assert copies == {(f"{BUCKET}/{PREFIX}/clean_tweets/dt=2024-01-01/part-00000.parquet", f"{PREFIX}/tweets/dt=2024-01-01/part-00000.parquet")}
    denied = [
        str(request)
        for call in pipeline_calls
        for request in requests_for_call(call["service"], call["operation"], call["params"], region=REGION, account=ACCOUNT)
        if not is_allowed(policy, request)
    ]
    assert denied == []


def test_policy_allows_reading_the_token_through_ssm_only(rendered):
    policy = rendered["policy.json"]
    assert is_allowed(policy, request_for_call("ssm", "GetParameter", {"Name": PARAM}, region=REGION, account=ACCOUNT))
    via_ssm = {"kms:ViaService": f"ssm.{REGION}.amazonaws.com", "kms:EncryptionContext:PARAMETER_ARN": PARAM_ARN}
    assert is_allowed(policy, Request("kms:Decrypt", KEY_ARN, via_ssm))
    assert not is_allowed(policy, Request("kms:Decrypt", KEY_ARN, {}))
    assert not is_allowed(policy, Request("kms:Decrypt", KEY_ARN, {**via_ssm, "kms:ViaService": f"s3.{REGION}.amazonaws.com"}))
    assert not is_allowed(
        policy, Request("kms:Decrypt", KEY_ARN, {**via_ssm, "kms:EncryptionContext:PARAMETER_ARN": PARAM_ARN + "_other"})
    )


@pytest.mark.parametrize(
    "request_",
    [
        # another prefix in the same bucket, a sibling that shares the name's start, the parent
        Request("s3:PutObject", f"arn:aws:s3:::{BUCKET}/other/tweets/dt=2024-01-01/part-00000.parquet"),
        Request("s3:GetObject", f"arn:aws:s3:::{BUCKET}/{PREFIX}/tweets_private/x.parquet"),
        Request("s3:PutObject", f"arn:aws:s3:::{BUCKET}/{PREFIX}/dagster/compute_logs/x.out"),
        Request("s3:DeleteObject", f"arn:aws:s3:::{BUCKET}/{PREFIX}"),
        # nothing deletes lake objects (a rerun overwrites with PutObject)
        Request("s3:DeleteObject", f"arn:aws:s3:::{BUCKET}/{PREFIX}/tweets/dt=2024-01-01/part-00000.parquet"),
        Request("s3:DeleteObject", f"arn:aws:s3:::{BUCKET}/tweet_assets/dagster/compute_logs/run/x.out"),
        # compute logs: only their prefix, only the compute log bucket
        Request("s3:PutObject", f"arn:aws:s3:::{BUCKET}/tweet_assets/dagster/other/x.out"),
        Request("s3:GetObject", f"arn:aws:s3:::other-bucket/tweet_assets/dagster/compute_logs/x.out"),
        Request("s3:ListBucket", f"arn:aws:s3:::{BUCKET}", {"s3:prefix": "tweet_assets/dagster/"}),
        # the Dagster database password is readable through SSM only, like the token
        Request("kms:Decrypt", KEY_ARN, {"kms:ViaService": f"ssm.{REGION}.amazonaws.com", "kms:EncryptionContext:PARAMETER_ARN": f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/tweet_assets/other"}),
        # no lake KMS key in the pipeline policy (lake-kms-policy.json adds it when the bucket uses SSE-KMS)
        Request("kms:GenerateDataKey", KEY_ARN, {"kms:ViaService": f"s3.{REGION}.amazonaws.com"}),
        # the write check: one fixed key, written, never read or deleted, only under the lake
        Request("s3:GetObject", f"arn:aws:s3:::{BUCKET}/{PREFIX}/_tweet_assets_check/write-check"),
        Request("s3:DeleteObject", f"arn:aws:s3:::{BUCKET}/{PREFIX}/_tweet_assets_check/write-check"),
        Request("s3:PutObject", f"arn:aws:s3:::{BUCKET}/{PREFIX}/_tweet_assets_check/other"),
        Request("s3:PutObject", f"arn:aws:s3:::{BUCKET}/_tweet_assets_check/write-check"),
        Request("s3:ListBucketMultipartUploads", "arn:aws:s3:::other-bucket"),
        # another bucket with the same keys
        Request("s3:PutObject", f"arn:aws:s3:::other-bucket/{PREFIX}/tweets/dt=2024-01-01/part-00000.parquet"),
        Request("s3:GetObject", f"arn:aws:s3:::{BUCKET}-2/{PREFIX}/raw_tweets/dt=2024-01-01/part-00000.jsonl.gz"),
        # listing the whole bucket, another prefix, or another bucket
        Request("s3:ListBucket", f"arn:aws:s3:::{BUCKET}", {"s3:prefix": ""}),
        Request("s3:ListBucket", f"arn:aws:s3:::{BUCKET}", {"s3:prefix": "other/"}),
        Request("s3:ListBucket", f"arn:aws:s3:::{BUCKET}", {}),
        Request("s3:ListBucket", "arn:aws:s3:::other-bucket", {"s3:prefix": f"{PREFIX}/tweets/"}),
        # actions the pipeline never needs
        Request("s3:PutObjectAcl", f"arn:aws:s3:::{BUCKET}/{PREFIX}/tweets/dt=2024-01-01/part-00000.parquet"),
        Request("s3:PutBucketPolicy", f"arn:aws:s3:::{BUCKET}"),
        Request("s3:DeleteBucket", f"arn:aws:s3:::{BUCKET}"),
        Request("ssm:GetParameter", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/tweet_assets/other"),
        Request("ssm:GetParametersByPath", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/tweet_assets"),
        Request("ssm:PutParameter", PARAM_ARN),
        Request("kms:Encrypt", KEY_ARN, {"kms:ViaService": f"ssm.{REGION}.amazonaws.com"}),
        Request("kms:Decrypt", f"arn:aws:kms:{REGION}:{ACCOUNT}:key/another-key", {"kms:ViaService": f"ssm.{REGION}.amazonaws.com", "kms:EncryptionContext:PARAMETER_ARN": PARAM_ARN}),
        Request("iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/anything"),
    ],
    ids=str,
)
def test_policy_denies_everything_else(rendered, request_):
    assert not is_allowed(rendered["policy.json"], request_)


def test_athena_reader_can_query_the_table_and_nothing_more(rendered):
    policy = rendered["athena-reader-policy.json"]
    wg = f"arn:aws:athena:{REGION}:{ACCOUNT}:workgroup/analysts"
    table_obj = f"arn:aws:s3:::{BUCKET}/{PREFIX}/tweets/dt=2024-01-01/part-00000.parquet"
    results = "arn:aws:s3:::example-athena-results/tweet_assets/query-id.csv"
    allowed = [
        Request("athena:StartQueryExecution", wg),
        Request("athena:GetQueryResults", wg),
        Request("glue:GetTable", f"arn:aws:glue:{REGION}:{ACCOUNT}:table/tweets_db/tweets"),
        Request("glue:GetDatabase", f"arn:aws:glue:{REGION}:{ACCOUNT}:database/tweets_db"),
        Request("s3:GetObject", table_obj),
        Request("s3:ListBucket", f"arn:aws:s3:::{BUCKET}", {"s3:prefix": f"{PREFIX}/tweets/dt=2024-01-01/"}),
        Request("s3:GetBucketLocation", "arn:aws:s3:::example-athena-results"),
        Request("s3:PutObject", results),
        Request("s3:GetObject", results),
    ]
    denied = [
        Request("athena:StartQueryExecution", f"arn:aws:athena:{REGION}:{ACCOUNT}:workgroup/primary"),
        Request("glue:GetTable", f"arn:aws:glue:{REGION}:{ACCOUNT}:table/tweets_db/other"),
        Request("glue:DeleteTable", f"arn:aws:glue:{REGION}:{ACCOUNT}:table/tweets_db/tweets"),
        Request("s3:GetObject", f"arn:aws:s3:::{BUCKET}/{PREFIX}/raw_tweets/dt=2024-01-01/part-00000.jsonl.gz"),
        Request("s3:PutObject", table_obj),
        Request("s3:ListBucket", f"arn:aws:s3:::{BUCKET}", {"s3:prefix": f"{PREFIX}/raw_tweets/"}),
        Request("s3:PutObject", "arn:aws:s3:::example-athena-results/elsewhere/x.csv"),
    ]
    assert [str(r) for r in allowed if not is_allowed(policy, r)] == []
    assert [str(r) for r in denied if is_allowed(policy, r)] == []


def test_evaluator_refuses_what_it_cannot_model():
    """The evaluator must not silently pass a policy feature it ignores."""
    with pytest.raises(NotImplementedError):
        is_allowed({"Statement": [{"Effect": "Allow", "NotAction": "s3:*", "Resource": "*"}]}, Request("s3:GetObject", "x"))
    with pytest.raises(NotImplementedError):
        is_allowed(
            {"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*", "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}]},
            Request("s3:GetObject", "x"),
        )
    # explicit deny wins over an allow
    policy = {"Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"},
        {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/secret/*"},
    ]}
    assert is_allowed(policy, Request("s3:GetObject", "arn:aws:s3:::b/ok"))
    assert not is_allowed(policy, Request("s3:GetObject", "arn:aws:s3:::b/secret/x"))


def test_a_copy_needs_read_on_the_source_and_write_on_the_target(rendered):
    policy = rendered["policy.json"]
    inside = requests_for_call(
        "s3", "CopyObject",
        {"Bucket": BUCKET, "Key": f"{PREFIX}/tweets/dt=2024-01-01/part-00000.parquet", "CopySource": f"{BUCKET}/{PREFIX}/clean_tweets/dt=2024-01-01/part-00000.parquet"},
        region=REGION, account=ACCOUNT,
    )
    assert [r.action for r in inside] == ["s3:GetObject", "s3:PutObject"] and all(is_allowed(policy, r) for r in inside)
    from_elsewhere = requests_for_call(
        "s3", "CopyObject",
        {"Bucket": BUCKET, "Key": f"{PREFIX}/tweets/dt=2024-01-01/part-00000.parquet", "CopySource": "someone-elses-bucket/secrets.parquet"},
        region=REGION, account=ACCOUNT,
    )
    assert not is_allowed(policy, from_elsewhere[0]) and is_allowed(policy, from_elsewhere[1])


@pytest.fixture
def glue_calls(aws_env, monkeypatch):
    """Every Glue call of `tweet-assets catalog` against moto: create the table, update it after a
    column is added, store two days as partitions (GetDatabase, GetTable, CreateTable, UpdateTable,
    BatchCreatePartition)."""
    import boto3
    import pyarrow as pa

    from tweet_assets.schema import COLUMNS, Column
    from tweet_assets.warehouses.glue import GlueCatalogResource

    calls = []
    real = GlueCatalogResource.get_client

    def recording(self):
        client = real(self)
        client.meta.events.register(
            "provide-client-params.glue.*", lambda params, model, **_: calls.append({"operation": model.name, "params": dict(params)})
        )
        return client

    monkeypatch.setattr(GlueCatalogResource, "get_client", recording)
    boto3.client("glue", endpoint_url=aws_env, region_name="us-east-1").create_database(DatabaseInput={"Name": "tweets_db"})
    glue = GlueCatalogResource(database="tweets_db", table="tweets", region_name="us-east-1", endpoint_url=aws_env)
    location = f"s3://{BUCKET}/{PREFIX}/tweets/"
    assert glue.upsert_table(location, "2006-03-21").action == "created"
    added = Column("iam_test_column", pa.string(), "A column added by the IAM test.", "tweet.id")
    assert glue.upsert_table(location, "2006-03-21", columns=(*COLUMNS, added)).action == "updated"
    assert glue.register_partitions(location, ["2024-01-01", "2024-01-02"]) == (2, 0)
    return calls


@pytest.mark.slow
def test_glue_catalog_policy_allows_the_upsert_and_nothing_more(rendered, glue_calls):
    policy = rendered["glue-catalog-policy.json"]
    assert {c["operation"] for c in glue_calls} == {"GetDatabase", "GetTable", "CreateTable", "UpdateTable", "BatchCreatePartition"}
    requests = [r for c in glue_calls for r in requests_for_call("glue", c["operation"], c["params"], region=REGION, account=ACCOUNT)]
    assert [str(r) for r in requests if not is_allowed(policy, r)] == []
    base = f"arn:aws:glue:{REGION}:{ACCOUNT}"
    denied = [
        Request("glue:DeleteTable", f"{base}:table/tweets_db/tweets"),
        Request("glue:CreateDatabase", f"{base}:database/tweets_db"),
        Request("glue:BatchCreatePartition", f"{base}:table/tweets_db/other"),
        Request("glue:BatchDeletePartition", f"{base}:table/tweets_db/tweets"),
        Request("glue:UpdatePartition", f"{base}:table/tweets_db/tweets"),
        Request("glue:UpdateTable", f"{base}:table/tweets_db/other"),
        Request("glue:CreateTable", f"{base}:table/other_db/tweets"),
        Request("glue:GetTable", f"{base}:database/other_db"),
        Request("glue:UpdateTable", f"arn:aws:glue:us-east-1:{ACCOUNT}:table/tweets_db/tweets"),
        Request("glue:UpdateTable", f"arn:aws:glue:{REGION}:999999999999:table/tweets_db/tweets"),
        Request("s3:GetObject", f"arn:aws:s3:::{BUCKET}/{PREFIX}/tweets/dt=2024-01-01/part-00000.parquet"),
    ]
    assert [str(r) for r in denied if is_allowed(policy, r)] == []
    # a table call needs the catalog, the database and the table: losing any one of them denies it
    create = requests_for_call("glue", "CreateTable", {"DatabaseName": "tweets_db", "TableInput": {"Name": "tweets"}}, region=REGION, account=ACCOUNT)
    assert [r.resource for r in create] == [f"{base}:catalog", f"{base}:database/tweets_db", f"{base}:table/tweets_db/tweets"]
    for dropped in policy["Statement"][0]["Resource"]:
        narrower = {"Statement": [{**s, "Resource": [r for r in s["Resource"] if r != dropped]} for s in policy["Statement"]]}
        assert not all(is_allowed(narrower, r) for r in create), dropped


def test_glue_policy_is_rendered_only_for_a_lowercase_glue_database(tmp_path):
    assert "glue-catalog-policy.json" not in render(tmp_path / "none", GLUE_DATABASE="", ATHENA_WORKGROUP="")
    custom = render(tmp_path / "custom", GLUE_TABLE="posts")["glue-catalog-policy.json"]
    assert f"arn:aws:glue:{REGION}:{ACCOUNT}:table/tweets_db/posts" in custom["Statement"][0]["Resource"]
    env = clean_env(**{**PLACEHOLDER_ENV, "GLUE_DATABASE": "Tweets-DB"})
    proc = subprocess.run(["bash", str(DEPLOY / "iam" / "render-policies.sh"), str(tmp_path / "bad")], env=env, capture_output=True, text=True)
    assert proc.returncode != 0 and "GLUE_DATABASE" in proc.stderr


# ------------------------------------------------------------------------------------------------
# issue #16: no DeleteObject, the Dagster database password and compute logs, SSE-KMS lakes, and
# Session Manager without AmazonSSMManagedInstanceCore

PG_PARAM_ARN = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/tweet_assets/dagster_pg_password"
LAKE_KEY_ID = "abcd1234-0000-4000-8000-1234567890ab"
LAKE_KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{LAKE_KEY_ID}"


def test_no_code_deletes_lake_objects_so_none_is_granted(rendered):
    """s3:DeleteObject is not granted, and nothing in the package calls a delete (grep, as the
    issue asks; the Lake.delete helper was removed with the grant)."""
    from deploy_helpers import REPO

    proc = subprocess.run(
        ["grep", "-rnE", r"delete_objects?\(|\.delete\(|def delete\(|\"DeleteObjects?\"", str(REPO / "tweet_assets")],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 1 and proc.stdout == "", proc.stdout
    actions = {a for s in rendered["policy.json"]["Statement"] for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert not any(a.lower().startswith("s3:delete") for a in actions), actions
    # AbortMultipartUpload stays: boto3's managed upload aborts a failed multipart upload
    assert "s3:AbortMultipartUpload" in actions


def test_policy_allows_the_dagster_database_password_and_compute_logs(tmp_path, rendered):
    policy = rendered["policy.json"]
    assert is_allowed(policy, request_for_call("ssm", "GetParameter", {"Name": "/tweet_assets/dagster_pg_password"}, region=REGION, account=ACCOUNT))
    assert is_allowed(policy, Request("kms:Decrypt", KEY_ARN, {"kms:ViaService": f"ssm.{REGION}.amazonaws.com", "kms:EncryptionContext:PARAMETER_ARN": PG_PARAM_ARN}))
    # S3ComputeLogManager (deploy/dagster.yaml, prefix tweet_assets/dagster/compute_logs) in the lake bucket by default
    key = "tweet_assets/dagster/compute_logs/storage/run-id/compute_logs/raw_tweets.out"
    for operation in ("PutObject", "GetObject", "HeadObject", "CreateMultipartUpload", "AbortMultipartUpload"):
        assert is_allowed(policy, request_for_call("s3", operation, {"Bucket": BUCKET, "Key": key}, region=REGION, account=ACCOUNT)), operation
    assert is_allowed(policy, request_for_call("s3", "ListObjectsV2", {"Bucket": BUCKET, "Prefix": "tweet_assets/dagster/compute_logs/storage/run-id/"}, region=REGION, account=ACCOUNT))
    # or a bucket of their own, and other parameter names
    other = render(tmp_path / "other", COMPUTE_LOG_BUCKET="example-logs", PG_PASSWORD_PARAMETER="/prod/dagster/pg", SSM_PARAMETER="/prod/x")["policy.json"]
    assert is_allowed(other, Request("s3:PutObject", f"arn:aws:s3:::example-logs/{key}"))
    assert not is_allowed(other, Request("s3:PutObject", f"arn:aws:s3:::{BUCKET}/{key}"))
    assert is_allowed(other, Request("ssm:GetParameter", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/prod/dagster/pg"))
    assert is_allowed(other, Request("ssm:GetParameter", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/prod/x"))
    assert not is_allowed(other, Request("ssm:GetParameter", PG_PARAM_ARN))


def test_lake_kms_policy_only_when_a_lake_key_is_given_and_only_through_s3(tmp_path, rendered):
    assert "lake-kms-policy.json" not in rendered
    kms = render(tmp_path / "kms", LAKE_KMS_KEY_ID=LAKE_KEY_ID)["lake-kms-policy.json"]
    assert parliament(kms) == []
    via_s3 = {"kms:ViaService": f"s3.{REGION}.amazonaws.com"}
    # SSE-KMS: PutObject needs GenerateDataKey, GetObject needs Decrypt; the encryption context is
    # the object's ARN, or the bucket's with an S3 Bucket Key (S3 user guide, "UsingKMSEncryption")
    for action in ("kms:GenerateDataKey", "kms:Decrypt"):
        for context in (f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/{PREFIX}/tweets/dt=2024-01-01/part-00000.parquet"):
            assert is_allowed(kms, Request(action, LAKE_KEY_ARN, {**via_s3, "kms:EncryptionContext:aws:s3:arn": context})), (action, context)
    denied = [
        Request("kms:Decrypt", LAKE_KEY_ARN, {"kms:EncryptionContext:aws:s3:arn": f"arn:aws:s3:::{BUCKET}"}),  # not via S3
        Request("kms:Decrypt", LAKE_KEY_ARN, {**via_s3, "kms:EncryptionContext:aws:s3:arn": "arn:aws:s3:::other-bucket/x"}),
        Request("kms:Decrypt", KEY_ARN, {**via_s3, "kms:EncryptionContext:aws:s3:arn": f"arn:aws:s3:::{BUCKET}"}),  # another key
        Request("kms:Encrypt", LAKE_KEY_ARN, {**via_s3, "kms:EncryptionContext:aws:s3:arn": f"arn:aws:s3:::{BUCKET}"}),
    ]
    assert [str(r) for r in denied if is_allowed(kms, r)] == []


def test_session_manager_policy_grants_no_parameter_read(rendered):
    """AmazonSSMManagedInstanceCore allows ssm:GetParameter(s) on every parameter; the policy used
    instead has Session Manager's own actions only, so the instance still reads one parameter."""
    sessions = rendered["session-manager-policy.json"]
    assert parliament(sessions) == []
    instance = f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/i-0123456789abcdef0"
    for request in (
        Request("ssm:UpdateInstanceInformation", instance),
        *(Request(f"ssmmessages:{a}", "*") for a in ("CreateControlChannel", "CreateDataChannel", "OpenControlChannel", "OpenDataChannel")),
    ):
        assert is_allowed(sessions, request), str(request)
    for action in ("ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath", "ssm:SendCommand", "s3:GetObject", "kms:Decrypt"):
        for resource in ("*", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/tweet_assets/other", instance):
            assert not is_allowed(sessions, Request(action, resource)), (action, resource)
    # the resource "*" is only where the action has no resource type (ssmmessages)
    for statement in sessions["Statement"]:
        if statement["Resource"] == "*":
            assert all(a.startswith("ssmmessages:") for a in statement["Action"]), statement
    combined = {"Statement": rendered["policy.json"]["Statement"] + sessions["Statement"]}
    assert not is_allowed(combined, Request("ssm:GetParameter", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/tweet_assets/other"))


def test_ecs_launcher_policy_runs_one_family_in_one_cluster(tmp_path):
    """What dagster-aws's EcsRunLauncher calls (describe/register_task_definition, run_task with
    tags, describe_tasks, stop_task, logs get_log_events; PassRole of the task roles), and no more."""
    rendered = render(tmp_path, ECS_CLUSTER="tweet-assets", ECS_TASK_ROLE="run-task", ECS_EXECUTION_ROLE="run-exec")
    policy = rendered["ecs-launcher-policy.json"]
    assert parliament(policy) == []
    base = f"arn:aws:ecs:{REGION}:{ACCOUNT}"
    cluster = {"ecs:cluster": f"{base}:cluster/tweet-assets"}
    task = f"{base}:task/tweet-assets/0123456789abcdef"
    allowed = [
        Request("ecs:RunTask", f"{base}:task-definition/tweet-assets-run:7", cluster),
        # deploy/ecs/dagster.yaml: the launcher registers "<prefix>_<hashes>" families and runs them
        Request("ecs:RegisterTaskDefinition", f"{base}:task-definition/tweet-assets_5f2c_91ab_77d0:1"),
        Request("ecs:RunTask", f"{base}:task-definition/tweet-assets_5f2c_91ab_77d0:1", cluster),
        Request("ecs:TagResource", task, {"ecs:CreateAction": "RunTask"}),
        Request("ecs:DescribeTasks", task),
        Request("ecs:StopTask", task),
        Request("ecs:DescribeTaskDefinition", "*"),
        Request("iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/run-task", {"iam:PassedToService": "ecs-tasks.amazonaws.com"}),
        Request("logs:GetLogEvents", f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/tweet_assets:log-stream:run/run/0123"),
    ]
    denied = [
        Request("ecs:RunTask", f"{base}:task-definition/other-family:1", cluster),
        Request("ecs:RunTask", f"{base}:task-definition/tweet-assets-run:7", {"ecs:cluster": f"{base}:cluster/other"}),
        Request("ecs:TagResource", task, {"ecs:CreateAction": "TagResource"}),
        Request("ecs:StopTask", f"{base}:task/other/0123"),
        Request("ecs:RegisterTaskDefinition", f"{base}:task-definition/other_5f2c:1"),
        Request("ecs:RunTask", f"{base}:task-definition/tweet-assets-other:1", cluster),
        Request("iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/run-task", {"iam:PassedToService": "ec2.amazonaws.com"}),
        Request("iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/admin", {"iam:PassedToService": "ecs-tasks.amazonaws.com"}),
    ]
    assert [str(r) for r in allowed if not is_allowed(policy, r)] == []
    assert [str(r) for r in denied if is_allowed(policy, r)] == []
    assert "ecs-launcher-policy.json" not in render(tmp_path / "none")
