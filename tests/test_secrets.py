"""No secret ever leaves: canary values for the X bearer token and the AWS keys go through a whole
run (live source on recorded HTTP, S3 on moto, a real on-disk Dagster instance), then every output
is searched for them: event log, run storage, compute logs, objects written, and resource config.
"""

from __future__ import annotations

from datetime import datetime, timezone
import boto3
import responses
from dagster import instance_for_test

from tests.helpers import resources, run
from tests.test_x_api import CHAIN_URL, Clock, _chain, _serve_chain
from tweet_assets.sources import x_api
from tweet_assets.sources.x_api import XApiSource

TOKEN = "AAAAAAAAcanaryBearerToken7f3e9d1c5b"
AWS_KEY = "AKIACANARYACCESSKEY1"
AWS_SECRET = "canarySecretAccessKey/7f3e9d1c5b+0123456789"
CANARIES = (TOKEN, AWS_KEY, AWS_SECRET)


@responses.activate
def test_canary_secrets_appear_nowhere(x_api_v2, moto_server, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AWS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("X_BEARER_TOKEN", TOKEN)
    monkeypatch.setenv("X_QUERY", "blacklivesmatter")
    responses.add_passthru(moto_server)
    pages = _chain(x_api_v2)
    callback, _ = _serve_chain(pages, faults=[(503, {})])
    responses.add_callback(responses.GET, CHAIN_URL, callback=callback)
    clock = Clock(datetime(2021, 6, 27, 12, tzinfo=timezone.utc))
    monkeypatch.setattr(x_api, "_utcnow", clock.now)
    monkeypatch.setattr(x_api, "_sleep", clock.sleep)
    monkeypatch.setattr("tests.test_x_api.SECRET", TOKEN)  # the recorder checks the Authorization header

    s3 = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")
    s3.create_bucket(Bucket="canary-bucket")
    source = XApiSource.from_env({"X_BEARER_TOKEN": TOKEN, "X_QUERY": "blacklivesmatter"})
    home = tmp_path / "home"
    home.mkdir()
    with instance_for_test(temp_dir=str(home)) as instance:
        result = run(resources("s3://canary-bucket/lake", source), "2021-06-26", instance=instance)
        assert result.success
        texts = [str(event) for event in result.all_events]
        texts += [str(record) for record in instance.all_logs(result.run_id)]
        texts.append(str(instance.get_run_by_id(result.run_id)))
    for path in home.rglob("*"):
        if path.is_file():
            texts.append(path.read_bytes().decode("utf-8", errors="replace"))
    for obj in s3.list_objects_v2(Bucket="canary-bucket")["Contents"]:
        body = s3.get_object(Bucket="canary-bucket", Key=obj["Key"])["Body"].read()
        if obj["Key"].endswith(".gz"):
            import gzip

            body = gzip.decompress(body)
        texts.append(body.decode("utf-8", errors="replace"))
    assert len(texts) > 50
    for canary in CANARIES:
        leaks = [t[:200] for t in texts if canary in t]
        assert leaks == [], f"{canary[:8]}… leaked into {len(leaks)} output(s)"


def test_resource_config_holds_env_var_names_not_values():
    source = XApiSource.from_env({"X_BEARER_TOKEN": TOKEN, "X_QUERY": "q"})
    from dagster import EnvVar

    assert isinstance(source.bearer_token, EnvVar) or source.bearer_token == EnvVar("X_BEARER_TOKEN")
    assert TOKEN not in repr(source) and TOKEN not in str(source.describe())
