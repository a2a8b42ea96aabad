"""No secret ever leaves: canary values for the X bearer token, the AWS keys and a proxy password
go through whole runs (live source on recorded HTTP, S3 on moto, a real on-disk Dagster instance),
on the successful path and on the failing ones (401 from the API, S3 unreachable, proxy
unreachable, a failed `tweet-assets demo` in its own process). Every output is then searched for
them: events, run storage, compute logs, objects written, the final error with its causes, and
everything the process wrote to stdout and stderr.
"""

from __future__ import annotations

import gzip
import os
import socket
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import boto3
import pytest
import responses
from dagster import instance_for_test

from tests.helpers import resources, run
from tests.x.test_x_api import CHAIN_URL, Clock, _chain, _serve_chain
from tweet_assets.sources import x_api
from tweet_assets.sources.x_api import XApiSource

USAGE_URL = "https://api.x.com/2/usage/tweets"

TOKEN = "AAAAAAAAcanaryBearerToken7f3e9d1c5b"
AWS_KEY = "AKIACANARYACCESSKEY1"
AWS_SECRET = "canarySecretAccessKey/7f3e9d1c5b+0123456789"
PROXY_PASSWORD = "canaryProxyPassw0rd9e8d"
CANARIES = (TOKEN, AWS_KEY, AWS_SECRET, PROXY_PASSWORD)
REPO = Path(__file__).resolve().parents[1]


def _dead_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def _error_texts(result) -> list[str]:
    """Every step failure's error, with its whole cause/context chain, as Dagster stores it."""
    texts = []
    for event in result.all_events:
        error = getattr(event.event_specific_data, "error", None)
        while error is not None:
            texts.append(error.to_string())
            texts.append(error.message)
            error = error.cause or error.context
    return texts


def _outputs(result, instance, home: Path, capfd) -> list[str]:
    texts = [str(event) for event in result.all_events]
    texts += [str(record) for record in instance.all_logs(result.run_id)]
    texts.append(str(instance.get_run_by_id(result.run_id)))
    texts += _error_texts(result)
    out, err = capfd.readouterr()  # everything this process wrote to fds 1 and 2 during the run
    texts += [out, err]
    for path in home.rglob("*"):
        if path.is_file():
            texts.append(path.read_bytes().decode("utf-8", errors="replace"))
    return texts


def _assert_no_canary(texts: list[str]) -> None:
    for canary in CANARIES:
        leaks = [t[max(0, t.find(canary) - 100) : t.find(canary) + 100] for t in texts if canary in t]
        assert leaks == [], f"{canary[:8]}… leaked into {len(leaks)} output(s): {leaks[:2]}"


@pytest.fixture
def canary_env(monkeypatch, moto_server):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AWS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("X_BEARER_TOKEN", TOKEN)
    monkeypatch.setenv("X_QUERY", "blacklivesmatter")
    monkeypatch.setattr("tests.x.test_x_api.SECRET", TOKEN)  # the recorder checks the Authorization header
    clock = Clock(datetime(2021, 6, 27, 12, tzinfo=timezone.utc))
    monkeypatch.setattr(x_api, "_utcnow", clock.now)
    monkeypatch.setattr(x_api, "_sleep", clock.sleep)
    return moto_server


@responses.activate
def test_canary_secrets_appear_nowhere(x_api_v2, canary_env, tmp_path, capfd):
    moto_server = canary_env
    responses.add_passthru(moto_server)
    pages = _chain(x_api_v2)
    callback, _ = _serve_chain(pages, faults=[(503, {})])
    responses.add_callback(responses.GET, CHAIN_URL, callback=callback)
    responses.add(responses.GET, USAGE_URL, json={"data": {"project_usage": "0"}})  # the budget guard's read: no cap (enterprise), so the failing counts refuse nothing

    s3 = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")
    s3.create_bucket(Bucket="canary-bucket")
    source = XApiSource.from_env({"X_BEARER_TOKEN": TOKEN, "X_QUERY": "blacklivesmatter"})
    home = tmp_path / "home"
    home.mkdir()
    with instance_for_test(temp_dir=str(home)) as instance:
        result = run(resources("s3://canary-bucket/lake", source), "2021-06-26", instance=instance)
        assert result.success
        texts = _outputs(result, instance, home, capfd)
    for obj in s3.list_objects_v2(Bucket="canary-bucket")["Contents"]:
        body = s3.get_object(Bucket="canary-bucket", Key=obj["Key"])["Body"].read()
        if obj["Key"].endswith(".gz"):
            body = gzip.decompress(body)
        texts.append(body.decode("utf-8", errors="replace"))
    assert len(texts) > 50
    _assert_no_canary(texts)


@responses.activate
def test_canaries_absent_when_the_api_answers_401(canary_env, tmp_path, capfd):
    responses.add_passthru(canary_env)
    # the API's 401 body as documented; a server that echoes the credential back (some proxies do)
    for url in (USAGE_URL, CHAIN_URL):  # the budget guard's usage read is the first to be refused
        responses.add(responses.GET, url, status=401, json={"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": f"Unauthorized: Bearer {TOKEN}"})
    boto3.client("s3", endpoint_url=canary_env, region_name="us-east-1").create_bucket(Bucket="canary-401")
    source = XApiSource.from_env({"X_BEARER_TOKEN": TOKEN, "X_QUERY": "q"})
    home = tmp_path / "home"
    home.mkdir()
    with instance_for_test(temp_dir=str(home)) as instance:
        result = run(resources("s3://canary-401/lake", source), "2021-06-26", instance=instance, raise_on_error=False)
        assert not result.success
        texts = _outputs(result, instance, home, capfd)
    final = "\n".join(_error_texts(result))
    assert "401 Unauthorized" in final and "X_BEARER_TOKEN" in final  # the failure names the variable…
    _assert_no_canary(texts)  # …never its value, nor what the server echoed


def test_canaries_absent_when_s3_and_the_proxy_are_unreachable(canary_env, tmp_path, capfd, monkeypatch):
    """The lake's endpoint is down (the run fails at the write check), then the proxy in front of
    the X API is down (the run fails after its retries): both errors name what was unreachable,
    the proxy without its password."""
    dead_s3 = f"http://127.0.0.1:{_dead_port()}"
    proxy_port = _dead_port()
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    source = XApiSource.from_env({"X_BEARER_TOKEN": TOKEN, "X_QUERY": "q"})
    home = tmp_path / "home"
    home.mkdir()
    texts = []
    with instance_for_test(temp_dir=str(home)) as instance:
        down = run(resources("s3://canary-down/lake", source, env={"AWS_ENDPOINT_URL": dead_s3}), "2021-06-26", instance=instance, raise_on_error=False)
        assert not down.success
        texts += _outputs(down, instance, home, capfd)
        assert "cannot reach the endpoint" in "\n".join(_error_texts(down)) and dead_s3 in "\n".join(_error_texts(down))

        monkeypatch.setenv("HTTPS_PROXY", f"http://tweet:{PROXY_PASSWORD}@127.0.0.1:{proxy_port}")
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")  # S3 (moto) is reached directly
        boto3.client("s3", endpoint_url=canary_env, region_name="us-east-1").create_bucket(Bucket="canary-proxy")
        proxied = run(resources("s3://canary-proxy/lake", source), "2021-06-26", instance=instance, raise_on_error=False)
        assert not proxied.success
        texts += _outputs(proxied, instance, home, capfd)
    final = "\n".join(_error_texts(proxied))
    assert f"cannot reach the HTTP(S) proxy http://127.0.0.1:{proxy_port}" in final and "HTTPS_PROXY" in final
    _assert_no_canary(texts)


DEMO = """
import sys
from tweet_assets.sources import x_api
x_api._sleep = lambda seconds: None  # the retries' backoff, not waited
from tweet_assets.cli import main
sys.exit(main(["demo", "--start", "2021-06-26", "--end", "2021-06-26"]))
"""


@pytest.mark.slow
def test_a_failed_demo_prints_no_canary_on_stdout_or_stderr(tmp_path):
    """`tweet-assets demo` with the live source behind an unreachable proxy, in its own process:
    every byte it writes to stdout and stderr is searched."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWEET_ASSETS_", "DAGSTER_", "AWS_", "X_"))}
    env.update(
        TWEET_ASSETS_SOURCE="x_api", X_BEARER_TOKEN=TOKEN, X_QUERY="q", X_FULL_ARCHIVE="1",
        AWS_ACCESS_KEY_ID=AWS_KEY, AWS_SECRET_ACCESS_KEY=AWS_SECRET,
        HTTPS_PROXY=f"http://tweet:{PROXY_PASSWORD}@127.0.0.1:{_dead_port()}",
        TWEET_ASSETS_LAKE_URL=str(tmp_path / "lake"), DAGSTER_HOME=str(tmp_path / "home"),
    )
    os.makedirs(env["DAGSTER_HOME"])
    out = subprocess.run([sys.executable, "-c", DEMO], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 1, out.stderr[-2000:]
    assert "the run failed: " in out.stderr and "cannot reach the HTTP(S) proxy http://127.0.0.1:" in out.stderr
    assert len(out.stdout) + len(out.stderr) > 1000  # the run's log was printed, and searched
    _assert_no_canary([out.stdout, out.stderr])


def test_resource_config_holds_env_var_names_not_values():
    source = XApiSource.from_env({"X_BEARER_TOKEN": TOKEN, "X_QUERY": "q"})
    from dagster import EnvVar

    assert isinstance(source.bearer_token, EnvVar) or source.bearer_token == EnvVar("X_BEARER_TOKEN")
    assert TOKEN not in repr(source) and TOKEN not in str(source.describe())
