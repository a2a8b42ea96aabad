"""deploy/container: the Dockerfile lints clean with hadolint, and its one install step
(deploy/container/install.sh) run in a fresh virtualenv exactly as the Dockerfile RUNs it yields a
venv whose `dagster api grpc` command (the image's CMD) serves the three assets over gRPC.

What this cannot do here (no container daemon, no base image): build the image, pull the base
image, check the non-root user at run time. The Dockerfile's shape is checked statically instead.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from deploy_helpers import DEPLOY, REPO, clean_env, free_port, venv_bin

CONTAINER = DEPLOY / "container"
DOCKERFILE = CONTAINER / "Dockerfile"
ASSETS = {"raw_tweets", "clean_tweets", "s3_parquet"}
GRPC_START_TIMEOUT_S = 120


def hadolint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [venv_bin("hadolint"), "--no-color", str(path)], capture_output=True, text=True, timeout=60
    )


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's (INSTRUCTION, arguments) pairs, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_hadolint_reports_nothing_on_the_dockerfile():
    proc = hadolint(DOCKERFILE)
    assert proc.returncode == 0 and proc.stdout == "", proc.stdout + proc.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path):
    """Control: the same run flags an unpinned base image and an unpinned pip install."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install dagster\n")
    proc = hadolint(bad)
    assert proc.returncode != 0 and "DL3007" in proc.stdout and "DL3013" in proc.stdout


def test_dockerfile_is_slim_pinned_non_root_and_serves_grpc():
    steps = instructions()
    args = {rest.split("=", 1)[0]: rest.split("=", 1)[1] for word, rest in steps if word == "ARG" and "=" in rest}
    image = args["PYTHON_IMAGE"]
    match = re.fullmatch(r"python:3\.(\d+)\.(\d+)-slim-[a-z]+", image)
    assert match and int(match.group(1)) >= 11, f"base image must be a pinned slim Python 3.11+ tag: {image}"
    assert [rest for word, rest in steps if word == "FROM"] == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE}"]
    # the only install step is the script the test below runs, into the venv the final stage copies
    runs = [rest for word, rest in steps if word == "RUN"]
    assert "bash deploy/container/install.sh /src /opt/tweet_assets/venv" in runs
    assert not any("pip " in run for run in runs), runs
    (user,) = [rest for word, rest in steps if word == "USER"]
    assert user.split(":")[0] not in ("root", "0"), user
    # the last USER comes after every RUN of the final stage: the server never runs as root
    final = steps[max(i for i, (word, _) in enumerate(steps) if word == "FROM"):]
    assert max(i for i, (w, _) in enumerate(final) if w == "RUN") < next(i for i, (w, _) in enumerate(final) if w == "USER")
    # CMD (not ENTRYPOINT: the ECS run launcher replaces the command with `dagster api execute_run`)
    assert not any(word == "ENTRYPOINT" for word, _ in steps)
    (cmd,) = [json.loads(rest) for word, rest in steps if word == "CMD"]
    assert cmd[:3] == ["dagster", "api", "grpc"] and cmd[cmd.index("--module-name") + 1] == "tweet_assets.definitions"
    # the build context filter lets in what the COPY lines name
    ignore = (CONTAINER / "Dockerfile.dockerignore").read_text()
    for word, rest in steps:
        if word == "COPY" and not rest.startswith("--from"):
            for source in rest.split()[:-1]:
                assert f"!{source}" in ignore or f"!{source}/**" in ignore, source


def test_constraints_pin_the_projects_stack():
    pins = dict(
        line.split("==", 1)
        for line in (CONTAINER / "constraints.txt").read_text().splitlines()
        if line and not line.startswith("#")
    )
    pyproject = (REPO / "pyproject.toml").read_text()
    for name in ("dagster", "dagster-webserver", "dagster-graphql", "dagster-aws"):
        declared = re.search(rf'"{name}==([^"]+)"', pyproject).group(1)
        assert pins[name] == declared, (name, pins[name], declared)


@pytest.fixture(scope="module")
def image_venv(tmp_path_factory):
    """install.sh run as the Dockerfile runs it (bash, SRC, VENV), into a fresh virtualenv."""
    venv = tmp_path_factory.mktemp("image") / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    started = time.monotonic()
    proc = subprocess.run(
        ["bash", str(CONTAINER / "install.sh"), str(REPO), str(venv)],
        env=clean_env(PYTHON=base, PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONDONTWRITEBYTECODE="1"),
        capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    print(f"install.sh: {time.monotonic() - started:.0f}s")
    return venv


@pytest.mark.slow
def test_install_sh_pins_every_distribution(image_venv):
    """Everything the image installs is pinned by constraints.txt (a new dependency must be locked:
    run deploy/container/lock.sh), and the pins were honoured."""
    freeze = subprocess.run(
        [str(image_venv / "bin/python"), "-m", "pip", "freeze", "--exclude", "tweet_assets"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout.split()
    pins = {line.lower() for line in (CONTAINER / "constraints.txt").read_text().splitlines() if "==" in line}
    unpinned = [line for line in freeze if line.lower() not in pins]
    assert unpinned == [], f"not pinned in deploy/container/constraints.txt (run deploy/container/lock.sh): {unpinned}"
    version = subprocess.run(
        [str(image_venv / "bin/python"), "-m", "pip", "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert version.startswith("pip " + re.search(r'pip_version="([^"]+)"', (CONTAINER / "install.sh").read_text()).group(1) + " ")


def test_install_sh_refuses_python_older_than_3_11(tmp_path):
    old = tmp_path / "python3"
    old.write_text("#!/bin/sh\necho 'Python 3.10.12'\nexit 1\n")
    old.chmod(0o755)
    proc = subprocess.run(
        ["bash", str(CONTAINER / "install.sh"), str(REPO), str(tmp_path / "venv")],
        env=clean_env(PYTHON=str(old)), capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode != 0 and "3.11" in proc.stderr and not (tmp_path / "venv").exists()


@pytest.mark.slow
def test_the_images_cmd_serves_the_code_location_over_grpc(image_venv, tmp_path):
    """The Dockerfile's CMD, from the installed venv's bin/ (the image's PATH), on a loopback port;
    the gRPC health check passes and the server lists the three assets."""
    (cmd,) = [json.loads(rest) for word, rest in instructions() if word == "CMD"]
    port = free_port()
    argv = [str(image_venv / "bin" / cmd[0]), *cmd[1:]]
    argv[argv.index("--host") + 1] = "127.0.0.1"
    argv[argv.index("--port") + 1] = str(port)
    env = clean_env(PATH=f"{image_venv / 'bin'}:{os.environ['PATH']}", TWEET_ASSETS_SOURCE="sample",
                    TWEET_ASSETS_LAKE_URL=str(tmp_path / "lake"), DAGSTER_HOME=str(tmp_path))
    log = tmp_path / "grpc.log"
    with open(log, "w") as out:
        server = subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + GRPC_START_TIMEOUT_S
        while True:
            assert server.poll() is None, log.read_text()[-3000:]
            health = subprocess.run(
                [str(image_venv / "bin/dagster"), "api", "grpc-health-check", "--port", str(port)],
                env=env, capture_output=True, text=True, timeout=60,
            )
            if health.returncode == 0:
                break
            assert time.monotonic() < deadline, f"no healthy gRPC server in {GRPC_START_TIMEOUT_S}s:\n{log.read_text()[-3000:]}"
            time.sleep(1)
        listing = subprocess.run(
            [str(image_venv / "bin/python"), "-c", LIST_ASSETS, str(port)],
            env=env, capture_output=True, text=True, timeout=120,
        )
        assert listing.returncode == 0, listing.stderr[-3000:]
        assert ASSETS <= set(listing.stdout.split()), listing.stdout  # (other assets, e.g. raw_stream, may sit beside them)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


# Loads the code location from the gRPC server as dagster-webserver does, prints its asset keys.
LIST_ASSETS = """
import sys
from dagster import DagsterInstance
from dagster._core.remote_origin import GrpcServerCodeLocationOrigin

origin = GrpcServerCodeLocationOrigin(host="127.0.0.1", port=int(sys.argv[1]), location_name="tweet_assets")
with DagsterInstance.ephemeral() as instance, origin.create_location(instance) as location:
    for repository in location.get_repositories().values():
        for node in repository.get_asset_node_snaps():
            print(node.asset_key.to_user_string())
"""
