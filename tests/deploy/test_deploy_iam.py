"""deploy/iam: parliament lints the rendered policies, and a policy evaluator shows that the
pipeline's real AWS calls (recorded from a run of tweets_daily_job against moto) are allowed while
other prefixes, buckets, parameters and actions are denied.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from deploy_helpers import DEPLOY, HERE, clean_env, require_project, venv_bin
from iam_eval import Request, is_allowed, request_for_call, requests_for_answer, requests_for_call

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
    # the first run of a day reads its lease and lineage records before they exist: S3 answers those
    # reads 404 only to a role that may list the bucket, else 403, which the lake takes as a denial
    missing = [c for c in pipeline_calls if c["operation"] in ("GetObject", "HeadObject") and c["status"] == 404]
    assert {c["params"]["Key"] for c in missing} >= bookkeeping, missing
    denied = [
        str(request)
        for call in pipeline_calls
        for request in (*requests_for_call(call["service"], call["operation"], call["params"], region=REGION, account=ACCOUNT),
                        *requests_for_answer(call["service"], call["operation"], call["params"], call["status"]))
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
        # the pipeline policy deletes nothing (a rerun overwrites with PutObject; the Iceberg
        # table's deletes are iceberg-policy.json's)
        Request("s3:DeleteObject", f"arn:aws:s3:::{BUCKET}/{PREFIX}/tweets/dt=2024-01-01/part-00000.parquet"),
        Request("s3:DeleteObject", f"arn:aws:s3:::{BUCKET}/{PREFIX}/tweets/data/created_at_day=2024-01-01/00000-0-a.parquet"),
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
        # listing the whole bucket, another prefix, or another bucket (a ListBucket with no s3:prefix
        # key at all is allowed: S3 judges a missing key's 404 that way, see the pipeline test)
        Request("s3:ListBucket", f"arn:aws:s3:::{BUCKET}", {"s3:prefix": ""}),
        Request("s3:ListBucket", f"arn:aws:s3:::{BUCKET}", {"s3:prefix": "other/"}),
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


#: Every way the package could delete a lake object: boto3's delete_object(s), a pyiceberg FileIO's
#: or Transaction's delete, a pyarrow filesystem's delete_file/delete_dir(_contents), a Lake.delete.
DELETE_CALLS = r"delete_objects?\(|\.delete\(|def delete\(|\"DeleteObjects?\"|\.delete_file\(|\.delete_dir(_contents)?\("
#: Where the package deletes, and what: the Iceberg table's own files only (issue #37).
ICEBERG_DELETERS = {
    "tweet_assets/tables/iceberg.py": "a run's uncommitted data files (table.io.delete) and row-level deletes (tx.delete)",
    "tweet_assets/tables/maintenance.py": "files only expired snapshots reached (table.io.delete) and orphans (fs.delete_file)",
}


def test_deletes_only_in_the_iceberg_code_and_granted_only_by_the_iceberg_policy(tmp_path, rendered):
    """The Hive path and the lake zones delete nothing: a grep of the package finds deletes only
    in tweet_assets/tables/'s Iceberg modules (snapshot expiry, the orphan sweep, a run's
    uncommitted files, row-level deletes), none in tables/hive.py, lake/, compliance/ or the
    stream. And of every policy render-policies.sh writes, only iceberg-policy.json grants a delete:
    s3:DeleteObject, on the table's data/ and metadata/ folders and nothing else."""
    from deploy_helpers import REPO

    proc = subprocess.run(["grep", "-rnE", DELETE_CALLS, str(REPO / "tweet_assets")], capture_output=True, text=True, timeout=60)
    assert proc.returncode in (0, 1), proc.stderr
    hits: dict[str, list[str]] = {}
    for line in proc.stdout.splitlines():
        path, _, text = line.partition(":")
        hits.setdefault(str(Path(path).relative_to(REPO)), []).append(text)
    assert set(hits) == set(ICEBERG_DELETERS), {k: v for k, v in hits.items() if k not in ICEBERG_DELETERS}
    assert all(path.startswith("tweet_assets/tables/") and path != "tweet_assets/tables/hive.py" for path in hits)
    # every policy, with every optional one rendered (KMS, ECS, Athena, Glue, Iceberg)
    everything = {
        **rendered,
        **render(tmp_path / "all", TABLE_FORMAT="iceberg", LAKE_KMS_KEY_ID=LAKE_KEY_ID, ECS_CLUSTER="c", ECS_TASK_ROLE="t", ECS_EXECUTION_ROLE="e"),
    }
    assert {"policy.json", "iceberg-policy.json", "glue-catalog-policy.json", "athena-reader-policy.json", "lake-kms-policy.json", "ecs-launcher-policy.json"} <= set(everything)
    granting = {
        name: [(a, sorted(_as_list(s["Resource"]))) for s in policy["Statement"] for a in _as_list(s.get("Action", [])) if a.lower().startswith("s3:delete")]
        for name, policy in everything.items()
    }
    assert {name for name, grants in granting.items() if grants} == {"iceberg-policy.json"}, granting
    assert granting["iceberg-policy.json"] == [
        ("s3:DeleteObject", [f"arn:aws:s3:::{BUCKET}/{PREFIX}/tweets/data/*", f"arn:aws:s3:::{BUCKET}/{PREFIX}/tweets/metadata/*"])
    ]
    actions = {a for s in rendered["policy.json"]["Statement"] for a in _as_list(s["Action"])}
    # AbortMultipartUpload stays: boto3's managed upload aborts a failed multipart upload
    assert "s3:AbortMultipartUpload" in actions


def _as_list(value) -> list:
    return [value] if isinstance(value, str) else list(value)


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


# ------------------------------------------------------------------------------------------------
# issue #37: the Iceberg table format (iceberg-policy.json, with TABLE_FORMAT=iceberg)

GLUE = f"arn:aws:glue:{REGION}:{ACCOUNT}"
ICEBERG_GLUE_OPERATIONS = {"GetDatabase", "CreateDatabase", "GetTable", "GetTables", "CreateTable", "UpdateTable"}


@pytest.fixture
def rendered_iceberg(tmp_path):
    return render(tmp_path, TABLE_FORMAT="iceberg")


def iceberg_deployment(rendered: dict) -> dict:
    """What an Iceberg deployment's role carries: the pipeline policy and the Iceberg policy."""
    return {"Version": "2012-10-17", "Statement": rendered["policy.json"]["Statement"] + rendered["iceberg-policy.json"]["Statement"]}


@pytest.fixture(scope="module")
def iceberg_calls(tmp_path_factory):
    """Every request moto's S3 and Glue server (127.0.0.1) received from the Iceberg deployment's
    work (record_iceberg_calls.py: three runs of tweets_daily_job publishing two days, compliance_job
    deleting two posts with expiry, iceberg_maintenance_job, the orphan sweep)."""
    require_project()
    home = tmp_path_factory.mktemp("home")
    env = clean_env(
        TWEET_ASSETS_LAKE_URL=f"s3://{BUCKET}/{PREFIX}",
        TWEET_ASSETS_START_DATE="2024-01-01",
        TWEET_ASSETS_TABLE_FORMAT="iceberg",
        TWEET_ASSETS_ICEBERG_CATALOG="glue",
        PYICEBERG_CATALOG__GLUE__TYPE="glue",
        TWEET_ASSETS_GLUE_DATABASE="tweets_db",
        PYICEBERG_HOME=str(home),
        HOME=str(home),
        AWS_DEFAULT_REGION=REGION,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        DAGSTER_HOME=str(tmp_path_factory.mktemp("dagster_home")),
        TMPDIR=str(tmp_path_factory.mktemp("tmp")),
    )
    env = {k: v for k, v in env.items() if not k.startswith("PYICEBERG_") or k in ("PYICEBERG_HOME", "PYICEBERG_CATALOG__GLUE__TYPE")}
    proc = subprocess.run(
        [sys.executable, str(HERE / "record_iceberg_calls.py"), "2024-01-01"],
        env=env, capture_output=True, text=True, timeout=600, cwd=env["TMPDIR"],
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def _requests(calls) -> list[Request]:
    """Each call's own requests, and what the answer it relied on needs: a 404 for a missing key
    (pyarrow's S3 filesystem probes each commit's new metadata file first, create(overwrite=False),
    and raises on the 403 S3 gives a caller that may not list; the lake reads a day's first lease)."""
    return [
        r
        for c in calls
        for r in (*requests_for_call(c["service"], c["operation"], c["params"], region=REGION, account=ACCOUNT),
                  *requests_for_answer(c["service"], c["operation"], c["params"], c["status"]))
    ]


def test_iceberg_policy_is_rendered_only_for_an_iceberg_deployment(tmp_path, rendered, rendered_iceberg):
    assert "iceberg-policy.json" not in rendered
    # and the Hive catalog's policy only for a Hive deployment (an Iceberg one has no glue_table asset)
    assert "glue-catalog-policy.json" in rendered and "glue-catalog-policy.json" not in render(tmp_path / "iceberg", TABLE_FORMAT="iceberg")
    assert "iceberg-policy.json" not in render(tmp_path / "hive", TABLE_FORMAT="hive")
    assert parliament(rendered_iceberg["iceberg-policy.json"]) == []
    for statement in rendered_iceberg["iceberg-policy.json"]["Statement"]:
        assert statement["Effect"] == "Allow" and "Condition" not in statement
        assert all("*" not in a for a in _as_list(statement["Action"])), statement
        assert all(r != "*" and not r.endswith(("/", ":::" + BUCKET + "/*")) for r in _as_list(statement["Resource"])), statement
    # a lake at the bucket's root, another table name
    root = {s["Sid"]: s for s in render(tmp_path / "root", TABLE_FORMAT="iceberg", LAKE_PREFIX="", GLUE_TABLE="posts")["iceberg-policy.json"]["Statement"]}
    assert root["DeleteIcebergFilesNoLiveSnapshotReaches"]["Resource"] == [f"arn:aws:s3:::{BUCKET}/tweets/data/*", f"arn:aws:s3:::{BUCKET}/tweets/metadata/*"]
    assert f"{GLUE}:table/tweets_db/posts" in root["ReadAndCommitTheIcebergTableInGlue"]["Resource"]
    # refusals name what to set
    for values, says in (({"TABLE_FORMAT": "iceberg", "GLUE_DATABASE": "", "ATHENA_WORKGROUP": ""}, "GLUE_DATABASE"), ({"TABLE_FORMAT": "delta"}, "TABLE_FORMAT must be hive or iceberg")):
        env = clean_env(**{**PLACEHOLDER_ENV, **values})
        proc = subprocess.run(["bash", str(DEPLOY / "iam" / "render-policies.sh"), str(tmp_path / "bad")], env=env, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2 and says in proc.stderr, proc.stderr


@pytest.mark.slow
def test_iceberg_deployment_allows_every_call_its_code_makes(rendered, rendered_iceberg, iceberg_calls):
    """Publish, compliance delete with expiry, maintenance and the orphan sweep, on moto's S3 and
    Glue: every request is allowed by the pipeline policy plus the Iceberg policy; every delete is
    under the table's data/ or metadata/ folder; the Hive deployment's policy alone denies each
    delete and each Glue call."""
    policy = iceberg_deployment(rendered_iceberg)
    by_phase: dict[str, set[str]] = {}
    for call in iceberg_calls:
        by_phase.setdefault(call["phase"], set()).add(call["operation"])
    # the recording really covers each phase's work
    assert set(by_phase) == {"publish", "compliance", "maintenance", "orphans"}, by_phase
    assert {"CreateDatabase", "CreateTable", "UpdateTable", "PutObject", "CompleteMultipartUpload"} <= by_phase["publish"]
    assert {"DeleteObject", "UpdateTable", "GetTables", "ListObjectsV2"} <= by_phase["compliance"]
    assert {"DeleteObject", "UpdateTable", "GetTables", "ListObjectsV2"} <= by_phase["maintenance"]
    assert "DeleteObject" in by_phase["orphans"]
    assert not any(op.startswith("UNKNOWN") for ops in by_phase.values() for op in ops), by_phase
    glue = {c["operation"] for c in iceberg_calls if c["service"] == "glue"}
    assert glue == ICEBERG_GLUE_OPERATIONS, glue
    # the deletes: the Iceberg table's own files, never raw, clean, leases, lineage or a Hive object
    deleted = [c["params"]["Key"] for c in iceberg_calls if c["operation"] in ("DeleteObject", "DeleteObjects")]
    assert deleted and all(k.startswith((f"{PREFIX}/tweets/data/", f"{PREFIX}/tweets/metadata/")) for k in deleted), deleted
    assert any(k.endswith(".parquet") and "/data/created_at_day=2024-01-01/" in k for k in deleted)  # the rewritten day's old data file
    assert any(k.endswith(".avro") for k in deleted)  # manifests and manifest lists of expired snapshots
    requests = _requests(iceberg_calls)
    assert [str(r) for r in requests if not is_allowed(policy, r)] == []
    # each commit first probes its new metadata file (pyarrow: HeadObject, 404): S3 answers 404, not
    # the 403 pyarrow would raise, only to a role that may list the bucket
    probes = [c["params"]["Key"] for c in iceberg_calls if c["client"] == "pyarrow" and c["status"] == 404]
    assert probes and all(k.startswith(f"{PREFIX}/tweets/metadata/") and k.endswith(".metadata.json") for k in probes), probes
    # GetTables answers only the tables the role may GetTables on: the one table
    assert is_allowed(policy, Request("glue:GetTables", f"{GLUE}:table/tweets_db/tweets"))
    assert not is_allowed(policy, Request("glue:GetTables", f"{GLUE}:table/tweets_db/other"))
    # the Hive deployment's policy (policy.json, without iceberg-policy.json) grants none of it
    hive = rendered["policy.json"]
    extra = [r for r in requests if r.action == "s3:DeleteObject" or r.action.startswith("glue:")]
    assert extra and not any(is_allowed(hive, r) for r in extra)
    # and every other S3 call is the pipeline policy's already (the 404 probes' listing too: the Hive
    # pipeline's first run of a day reads its lease and lineage before they exist)
    assert [str(r) for r in requests if r.action.startswith("s3:") and r not in extra and not is_allowed(hive, r)] == []


@pytest.mark.slow
def test_every_grant_of_the_iceberg_policy_is_needed(rendered_iceberg, iceberg_calls):
    """Least privilege both ways: dropping any one action or any one resource of iceberg-policy.json
    denies a call the Iceberg code made (e.g. UpdateTable: every commit; metadata/*: snapshot expiry)."""
    requests = _requests(iceberg_calls)
    iceberg = rendered_iceberg["iceberg-policy.json"]
    pipeline = rendered_iceberg["policy.json"]["Statement"]
    assert all(is_allowed(iceberg_deployment(rendered_iceberg), r) for r in requests)
    for i, statement in enumerate(iceberg["Statement"]):
        for field in ("Action", "Resource"):
            for dropped in _as_list(statement[field]):
                narrower = [dict(s) for s in iceberg["Statement"]]
                narrower[i][field] = [v for v in _as_list(statement[field]) if v != dropped]
                policy = {"Statement": pipeline + [s for s in narrower if s[field]]}
                assert not all(is_allowed(policy, r) for r in requests), f"{statement['Sid']}: {dropped} is granted but never used"


@pytest.mark.parametrize(
    "request_",
    [
        # deletes outside the Iceberg table's two folders: the lake zones, the day leases and
        # lineage, the compliance ledger, the Hive objects, the table's root, a sibling folder
        Request("s3:DeleteObject", f"arn:aws:s3:::{BUCKET}/{PREFIX}/raw_tweets/dt=2024-01-01/part-00000.jsonl.gz"),
        Request("s3:DeleteObject", f"arn:aws:s3:::{BUCKET}/{PREFIX}/raw_stream/dt=2024-01-01/segment.jsonl.gz"),
        Request("s3:DeleteObject", f"arn:aws:s3:::{BUCKET}/{PREFIX}/clean_tweets/dt=2024-01-01/part-00000.parquet"),
        Request("s3:DeleteObject", f"arn:aws:s3:::{BUCKET}/{PREFIX}/clean_tweets/_leases/dt=2024-01-01.json"),
        Request("s3:DeleteObject", f"arn:aws:s3:::{BUCKET}/{PREFIX}/clean_tweets/_lineage/dt=2024-01-01.json"),
        Request("s3:DeleteObject", f"arn:aws:s3:::{BUCKET}/{PREFIX}/clean_tweets/_compliance_ledger/part-00000.parquet"),
        Request("s3:DeleteObject", f"arn:aws:s3:::{BUCKET}/{PREFIX}/tweets/dt=2024-01-01/part-00000.parquet"),
        Request("s3:DeleteObject", f"arn:aws:s3:::{BUCKET}/{PREFIX}/tweets/data"),
        Request("s3:DeleteObject", f"arn:aws:s3:::{BUCKET}/{PREFIX}/tweets/database/x.parquet"),
        Request("s3:DeleteObject", f"arn:aws:s3:::{BUCKET}/{PREFIX}/_tweet_assets_check/write-check"),
        Request("s3:DeleteObject", f"arn:aws:s3:::{BUCKET}/tweets/data/x.parquet"),
        Request("s3:DeleteObject", f"arn:aws:s3:::other-bucket/{PREFIX}/tweets/data/x.parquet"),
        Request("s3:DeleteObject", f"arn:aws:s3:::{BUCKET}/tweet_assets/dagster/compute_logs/run/x.out"),
        # listing: the whole bucket, another prefix, a sibling of the table's folder, another bucket
        # (a request without s3:prefix, as S3 judges a missing key's 404, is the one allowed)
        Request("s3:ListBucket", f"arn:aws:s3:::{BUCKET}", {"s3:prefix": ""}),
        Request("s3:ListBucket", f"arn:aws:s3:::{BUCKET}", {"s3:prefix": "other/"}),
        Request("s3:ListBucket", f"arn:aws:s3:::{BUCKET}", {"s3:prefix": f"{PREFIX}/tweets_private/"}),
        Request("s3:ListBucket", "arn:aws:s3:::other-bucket", {}),
        # a version's permanent deletion (the lifecycle rule expires noncurrent versions), bucket settings
        Request("s3:DeleteObjectVersion", f"arn:aws:s3:::{BUCKET}/{PREFIX}/tweets/data/created_at_day=2024-01-01/a.parquet"),
        Request("s3:PutLifecycleConfiguration", f"arn:aws:s3:::{BUCKET}"),
        Request("s3:PutBucketVersioning", f"arn:aws:s3:::{BUCKET}"),
        # Glue: no drop, no other table or database, no other region or account
        Request("glue:DeleteTable", f"{GLUE}:table/tweets_db/tweets"),
        Request("glue:DeleteDatabase", f"{GLUE}:database/tweets_db"),
        Request("glue:UpdateDatabase", f"{GLUE}:database/tweets_db"),
        Request("glue:UpdateTable", f"{GLUE}:table/tweets_db/other"),
        Request("glue:GetTable", f"{GLUE}:table/tweets_db/other"),
        Request("glue:GetTables", f"{GLUE}:table/tweets_db/other"),
        Request("glue:CreateTable", f"{GLUE}:table/other_db/tweets"),
        Request("glue:CreateDatabase", f"{GLUE}:database/other_db"),
        Request("glue:CreateTable", f"{GLUE}:database/other_db"),
        Request("glue:BatchCreatePartition", f"{GLUE}:table/tweets_db/tweets"),
        Request("glue:DeleteTableVersion", f"{GLUE}:table/tweets_db/tweets"),
        Request("glue:UpdateTable", f"arn:aws:glue:us-east-1:{ACCOUNT}:table/tweets_db/tweets"),
        Request("glue:UpdateTable", f"arn:aws:glue:{REGION}:999999999999:table/tweets_db/tweets"),
    ],
    ids=str,
)
def test_iceberg_deployment_denies_everything_else(rendered_iceberg, request_):
    assert not is_allowed(iceberg_deployment(rendered_iceberg), request_)


# --- the recorder names each HTTP request by its operation as botocore serializes it (the S3 and
# Glue APIs' own request shapes), so the policy is judged on the operations really made

S3_SHAPES = {
    "GetObject": {"Key": "lake/v1/tweets/metadata/00001-a.metadata.json"},
    "HeadObject": {"Key": "lake/v1/tweets/data/created_at_day=2024-01-01/a b+c.parquet"},
    "PutObject": {"Key": "lake/v1/tweets/metadata/", "Body": b""},
    "DeleteObject": {"Key": "lake/v1/tweets/data/created_at_day=2024-01-01/a.parquet"},
    "DeleteObjects": {"Delete": {"Objects": [{"Key": "lake/v1/tweets/data/a.parquet"}, {"Key": "lake/v1/tweets/metadata/b.avro"}]}},
    "ListObjectsV2": {"Prefix": "lake/v1/tweets/metadata/", "Delimiter": "/"},
    "ListObjects": {"Prefix": "lake/v1/tweets/"},
    "ListMultipartUploads": {"Prefix": "lake/v1/clean_tweets/"},
    "HeadBucket": {},
    "GetBucketLocation": {},
    "CreateMultipartUpload": {"Key": "lake/v1/tweets/data/a.parquet"},
    "UploadPart": {"Key": "lake/v1/tweets/data/a.parquet", "UploadId": "u", "PartNumber": 1, "Body": b"x"},
    "UploadPartCopy": {"Key": "lake/v1/tweets/dt=2024-01-01/part-00000.parquet", "UploadId": "u", "PartNumber": 1, "CopySource": f"{BUCKET}/lake/v1/clean_tweets/dt=2024-01-01/part-00000.parquet"},
    "CompleteMultipartUpload": {"Key": "lake/v1/tweets/data/a.parquet", "UploadId": "u", "MultipartUpload": {"Parts": [{"ETag": "e", "PartNumber": 1}]}},
    "AbortMultipartUpload": {"Key": "lake/v1/tweets/data/a.parquet", "UploadId": "u"},
    "CopyObject": {"Key": "lake/v1/tweets/a", "CopySource": f"{BUCKET}/lake/v1/clean_tweets/a"},
    "ListParts": {"Key": "lake/v1/tweets/data/a.parquet", "UploadId": "u"},
}
GLUE_SHAPES = {
    "GetDatabase": {"Name": "tweets_db"},
    "CreateDatabase": {"DatabaseInput": {"Name": "tweets_db"}},
    "GetTable": {"DatabaseName": "tweets_db", "Name": "tweets"},
    "GetTables": {"DatabaseName": "tweets_db"},
    "CreateTable": {"DatabaseName": "tweets_db", "TableInput": {"Name": "tweets"}},
    "UpdateTable": {"DatabaseName": "tweets_db", "TableInput": {"Name": "tweets"}, "VersionId": "3"},
}


class _Sent(Exception):
    pass


def _as_sent(service: str, operation: str, params: dict) -> dict:
    """The HTTP request botocore serializes for ``operation``, in moto's recorder's shape."""
    import base64

    import boto3
    from botocore import xform_name

    client = boto3.client(service, region_name=REGION, endpoint_url="http://127.0.0.1:9", aws_access_key_id="testing", aws_secret_access_key="testing")
    seen = {}

    def capture(request, **_):
        body = request.body if isinstance(request.body, bytes) else (request.body or "").encode() if isinstance(request.body, str) else b""
        headers = {k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
        seen.update(method=request.method, url=request.url, headers=headers, body=base64.b64encode(body).decode(), body_encoded=True)
        raise _Sent

    client.meta.events.register("before-send", capture)
    with pytest.raises(_Sent):
        getattr(client, xform_name(operation))(**({"Bucket": BUCKET} if service == "s3" else {}), **params)
    return seen


@pytest.mark.parametrize("service,name", [*(("s3", n) for n in S3_SHAPES), *(("glue", n) for n in GLUE_SHAPES)])
def test_the_recorder_names_each_request_as_botocore_serializes_it(service, name):
    from record_iceberg_calls import operation

    params = (S3_SHAPES if service == "s3" else GLUE_SHAPES)[name]
    call = operation(_as_sent(service, name, params))
    assert (call["service"], call["operation"]) == (service, name)
    if service == "s3":
        assert call["params"]["Bucket"] == BUCKET
        assert call["params"].get("Key") == params.get("Key")
        assert call["params"].get("Prefix") == params.get("Prefix")
        assert call["params"].get("CopySource") == params.get("CopySource")
        if name == "DeleteObjects":
            assert call["params"]["Keys"] == [o["Key"] for o in params["Delete"]["Objects"]]
