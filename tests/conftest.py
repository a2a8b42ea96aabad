"""Shared fixtures: the recorded X API v2 data in ../shared/x-api-v2, a moto S3 server on
loopback, a PostgreSQL server on loopback (session-wide), and a helper that materializes the assets with test resources (as Dagster's
project_fully_featured does).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The recorded data runs from 2010 on and the tests pick fixed days: pin the first partition to the
# documented default (without it, the sample source's partitions start 30 days ago: partitions.py).
os.environ.setdefault("TWEET_ASSETS_START_DATE", "2006-03-21")
SHARED = Path(os.environ.get("TWEET_ASSETS_SHARED_DATA", REPO.parent / "shared" / "x-api-v2"))


if os.environ.get("TWEET_ASSETS_HYPOTHESIS_PROFILE") == "mutation":
    # `make mutation`: each mutant needs only to fail, not a minimal example; a fixed seed makes
    # a mutant's verdict the same on every run (hypothesis profiles, "settings" in its docs)
    from hypothesis import Phase, settings

    settings.register_profile("mutation", phases=[Phase.explicit, Phase.generate], database=None, derandomize=True)
    settings.load_profile("mutation")


def shared_dir() -> Path:
    """The recorded API data folder, or skip the test saying why."""
    if not SHARED.is_dir():
        pytest.skip(f"recorded X API v2 data not found at {SHARED} (set TWEET_ASSETS_SHARED_DATA to the x-api-v2 folder)")
    return SHARED


@pytest.fixture(scope="session")
def x_api_v2() -> Path:
    return shared_dir()


@pytest.fixture(scope="session")
def moto_server():
    """A moto S3 server on 127.0.0.1, on a free port, for the whole session."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server (tests/postgres_server.py) on 127.0.0.1, TLS + password, for the
    whole session; skips saying why when the server binaries are not installed."""
    from tests.postgres_server import PostgresUnavailable, start_postgres

    try:
        server = start_postgres()
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))
    yield server
    server.stop()


@pytest.fixture
def aws_env(monkeypatch, moto_server):
    """Fake credentials (moto accepts any) and the moto endpoint in the standard AWS variables."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": moto_server,
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return moto_server


@pytest.fixture
def s3_lake(aws_env):
    """A fresh bucket on the moto server; returns ``s3://<bucket>/lake``."""
    import boto3

    bucket = f"test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=aws_env, region_name="us-east-1").create_bucket(Bucket=bucket)
    return f"s3://{bucket}/lake"


@pytest.fixture
def instance():
    """An ephemeral Dagster instance (in memory)."""
    from dagster import DagsterInstance

    with DagsterInstance.ephemeral() as inst:
        yield inst


@pytest.fixture(scope="session")
def x_api_double():
    """A loopback double of the X API v2 on 127.0.0.1 (tests/x_api_double.py), one per session;
    tests take it through a function fixture that calls ``reset()``."""
    from tests.x_api_double import XApiDouble

    with XApiDouble() as double:
        yield double


#: The longest test files (pytest --durations on 2 cores, 2026-12-02), run first: under pytest-xdist's
#: ``--dist loadfile`` (make test) a worker takes whole files in collection order, so the long ones
#: starting first keeps the two workers busy to the end instead of one finishing a long file alone.
#: A stale list costs balance only, never a test.
LONG_FILES_FIRST = (
    "tests/deploy/test_deploy_durable_state.py",
    "tests/deploy/test_deploy_airflow_scheduler.py",
    "tests/deploy/test_deploy_ec2.py",
    "tests/defs/test_collections.py",
    "tests/deploy/test_deploy_airflow.py",
    "tests/defs/test_graphql_backfill.py",
    "tests/defs/test_dagit_browser.py",
    "tests/deploy/test_deploy_ecs.py",
    "tests/deploy/test_deploy_container.py",
)


def pytest_collection_modifyitems(config, items):
    """The files of :data:`LONG_FILES_FIRST` first, in that order; every file's own order kept."""
    rank = {path: i for i, path in enumerate(LONG_FILES_FIRST)}
    root = Path(str(config.rootpath))

    def key(item):
        try:
            relative = Path(str(item.path)).relative_to(root).as_posix()
        except ValueError:
            relative = str(item.path)
        return rank.get(relative, len(rank))

    items.sort(key=key)  # stable: the order inside each file and among the other files is kept
