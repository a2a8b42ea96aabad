"""Helpers shared by the deploy/ tests (a plain module: conftest.py files are not importable)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
HERE = Path(__file__).resolve().parent

if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


def venv_bin(name: str) -> str:
    """A console script of the interpreter running the tests (its venv's bin/), else from PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        pytest.skip(f"{name} is not installed (pip install -e '.[test]')")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def require_project() -> None:
    """Skip when the tweet_assets code location cannot be imported (the core is not installed)."""
    probe = subprocess.run(
        [sys.executable, "-c", "import tweet_assets.definitions"], capture_output=True, text=True, timeout=300
    )
    if probe.returncode != 0:
        pytest.skip(f"tweet_assets.definitions does not import here: {probe.stderr.strip().splitlines()[-1:]}")


def clean_env(**extra: str) -> dict:
    """os.environ without settings that would leak into a deploy test, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TWEET_ASSETS_", "DAGSTER_", "AIRFLOW_", "AWS_", "X_BEARER"))
    }
    env.update(extra)
    return env


def sqlite_instance_yaml(text: str) -> str:
    """A production ``dagster.yaml`` with its storage swapped for SQLite files in ``DAGSTER_HOME``
    and its compute logs kept local: for tests about something else than the instance's storage
    (the Airflow DAG) that run without the PostgreSQL server and the S3 compute-log bucket."""
    import yaml

    config = yaml.safe_load(text)
    config["storage"] = {"sqlite": {"base_dir": {"env": "DAGSTER_HOME"}}}
    config.pop("compute_logs", None)
    return yaml.safe_dump(config, sort_keys=False)
