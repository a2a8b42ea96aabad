"""deploy/ec2/user-data.sh: shellcheck passes; its install steps run for real into a scratch prefix
(twice: as on Ubuntu 24.04, then as on Amazon Linux 2023, with their os-release files and stub
package managers that record their command lines; the second run changes nothing); unsupported
distributions and Pythons older than 3.11 are refused before anything is installed; the dagster-webserver command taken from the generated
unit's ExecStart serves the code location on a loopback port and lists the three assets over
GraphQL; and the launcher reads the X token from SSM (moto) with the region from an IMDSv2-only
metadata stub.
"""

from __future__ import annotations

import hashlib
import json
import http.server
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from deploy_helpers import DEPLOY, REPO, clean_env, free_port, require_project, venv_bin

USER_DATA = DEPLOY / "ec2" / "user-data.sh"
ASSETS = {"raw_tweets", "clean_tweets", "s3_parquet"}
ASSETS_QUERY = "query { assetNodes { assetKey { path } } }"
#: An X search query with what an env file must keep literal: spaces, double quotes, $ (cashtags).
X_QUERY = '"climate change" ($TSLA OR #energy) lang:en -is:retweet'

WEBSERVER_START_TIMEOUT_S = 150


def shellcheck(*paths) -> subprocess.CompletedProcess:
    return subprocess.run([venv_bin("shellcheck"), "--shell=bash", *map(str, paths)], capture_output=True, text=True, timeout=120)


def test_shellcheck_reports_nothing_on_the_deploy_scripts():
    proc = shellcheck(USER_DATA, DEPLOY / "iam" / "render-policies.sh")
    assert proc.returncode == 0 and proc.stdout == "", proc.stdout


def test_shellcheck_catches_a_bad_script(tmp_path):
    """Control: the same shellcheck run flags an unquoted variable, so the pass above means something."""
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/usr/bin/env bash\nrm -rf $1/tmp\n")
    proc = shellcheck(bad)
    assert proc.returncode != 0 and "SC2086" in proc.stdout


def embedded(name: str) -> str:
    text = USER_DATA.read_text()
    match = re.search(rf"<<'{name}'\n(.*?)^{name}$", text, flags=re.S | re.M)
    assert match, f"no <<'{name}' heredoc in user-data.sh"
    return match.group(1)


def test_user_data_carries_the_same_dagster_yaml_as_deploy():
    assert embedded("DAGSTER_YAML") == (DEPLOY / "dagster.yaml").read_text()


def test_user_data_pins_what_it_installs_and_holds_no_secret():
    text = USER_DATA.read_text()
    ref = re.search(r'^TWEET_ASSETS_GIT_REF="\$\{TWEET_ASSETS_GIT_REF:-([^}]*)\}"', text, flags=re.M)
    assert ref and ref.group(1) not in ("", "main", "master", "HEAD"), "the default git ref must be a tag or a commit"
    # the token is only ever assigned from the SSM fetch, never from a literal
    assignments = re.findall(r"X_BEARER_TOKEN=(.*)", text)
    assert assignments and all(a.startswith('"\\$(') for a in assignments), assignments


# ------------------------------------------------------------------------------------------------
# The real install into a scratch prefix

#: /etc/os-release of the supported distributions (os-release(5); as the AMIs ship them) and of
#: two that must be refused.
OS_RELEASES = {
    "ubuntu-24.04": 'NAME="Ubuntu"\nVERSION_ID="24.04"\nID=ubuntu\nID_LIKE=debian\nVERSION_CODENAME=noble\n',
    "al2023": 'NAME="Amazon Linux"\nVERSION="2023"\nID="amzn"\nID_LIKE="fedora"\nVERSION_ID="2023"\nPLATFORM_ID="platform:al2023"\n',
    "ubuntu-22.04": 'NAME="Ubuntu"\nVERSION_ID="22.04"\nID=ubuntu\nID_LIKE=debian\nVERSION_CODENAME=jammy\n',
    "al2": 'NAME="Amazon Linux"\nVERSION="2"\nID="amzn"\nID_LIKE="centos rhel fedora"\nVERSION_ID="2"\n',
    "debian-12": 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nVERSION_ID="12"\nID=debian\n',
}
#: Stub package managers: they record their command line (one line per call) and succeed.
STUB = '#!/bin/sh\nprintf "%s\\n" "$(basename "$0") $*" >> "$STUB_LOG"\n'


def distro(tmp: Path, name: str) -> dict[str, str]:
    """Environment for a run "on" ``name``: its os-release file, stub apt-get/dnf first on PATH,
    and python3/python3.11 there pointing at this Python (the distribution's Python 3.11+)."""
    tmp.mkdir(parents=True, exist_ok=True)
    release = tmp / f"os-release-{name}"
    release.write_text(OS_RELEASES[name])
    stubs = tmp / "stub-bin"
    if not stubs.exists():
        stubs.mkdir()
        for tool in ("apt-get", "dnf"):
            (stubs / tool).write_text(STUB)
            (stubs / tool).chmod(0o755)
        base = getattr(sys, "_base_executable", sys.executable)
        for python in ("python3", "python3.11"):
            (stubs / python).symlink_to(base)
    return {"OS_RELEASE": str(release), "PATH": f"{stubs}:{os.environ['PATH']}", "STUB_LOG": str(tmp / f"packages-{name}.log"), "PYTHON": ""}


def package_calls(env: dict[str, str]) -> list[str]:
    log = Path(env["STUB_LOG"])
    return log.read_text().splitlines() if log.exists() else []


def run_user_data(root: Path, **extra) -> subprocess.CompletedProcess:
    settings = dict(
        TWEET_ASSETS_ROOT=str(root),
        NO_SYSTEMD="1",
        SKIP_PACKAGES="1",
        TWEET_ASSETS_PIP_SPEC=str(REPO),
        TWEET_ASSETS_SOURCE="sample",
        X_BEARER_TOKEN_PARAMETER="",
        TWEET_ASSETS_LAKE_URL=str(root / "lake"),
        TWEET_ASSETS_START_DATE="2024-01-01",
        X_QUERY=X_QUERY,
        TWEET_ASSETS_ECS_CLUSTER="tweet-assets",  # one of deploy/ecs/dagster.yaml's settings
        PYTHON=getattr(sys, "_base_executable", sys.executable),
    )
    env = {k: v for k, v in clean_env(**{**settings, **extra}).items() if v != "" or k.startswith(("X_", "TWEET_", "DAGSTER_"))}
    return subprocess.run(["bash", str(USER_DATA)], env=env, capture_output=True, text=True, timeout=900)


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every installed file outside the venv and the SQLite databases."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and not rel.startswith("opt/tweet_assets/venv/") and not rel.endswith(".db") and "/storage/" not in rel:
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def test_settings_that_an_env_file_cannot_hold_are_refused_before_installing(tmp_path):
    proc = run_user_data(tmp_path / "root", X_QUERY="it's")
    assert proc.returncode != 0 and "single quote" in proc.stderr
    proc = run_user_data(tmp_path / "root", DAGSTER_WEBSERVER_PORT="3000; rm -rf /")
    assert proc.returncode != 0 and "DAGSTER_WEBSERVER_PORT" in proc.stderr
    assert not (tmp_path / "root" / "opt").exists()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"TWEET_ASSETS_TABLE_FORMAT": "delta"}, "TWEET_ASSETS_TABLE_FORMAT must be hive or iceberg, got 'delta'"),
        ({"TWEET_ASSETS_TABLE_FORMAT": "iceberg", "TWEET_ASSETS_GLUE_DATABASE": "tweets_db"}, "needs an s3:// TWEET_ASSETS_LAKE_URL"),
        ({"TWEET_ASSETS_TABLE_FORMAT": "iceberg", "TWEET_ASSETS_LAKE_URL": "s3://lake/tweet_assets"}, "needs TWEET_ASSETS_GLUE_DATABASE"),
        ({"TWEET_ASSETS_TABLE_FORMAT": "iceberg", "TWEET_ASSETS_LAKE_URL": "s3://lake/tweet_assets", "TWEET_ASSETS_GLUE_DATABASE": "Tweets-DB"}, "got 'Tweets-DB'"),
    ],
    ids=["unknown format", "iceberg on a local lake", "iceberg without a Glue database", "iceberg with a bad Glue name"],
)
def test_table_format_settings_are_refused_before_installing(tmp_path, settings, message):
    proc = run_user_data(tmp_path / "root", **settings)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr
    assert not (tmp_path / "root" / "opt").exists()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("ubuntu-22.04", "Ubuntu 22.04 is not supported"),
        ("al2", "Amazon Linux 2 is not supported"),
        ("debian-12", "'debian 12' is not supported"),
    ],
)
def test_unsupported_distributions_are_refused_before_installing(tmp_path, name, message):
    env = distro(tmp_path, name)
    proc = run_user_data(tmp_path / "root", SKIP_PACKAGES="0", **env)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr
    assert package_calls(env) == [] and not (tmp_path / "root" / "opt").exists()


def test_a_python_older_than_3_11_is_refused(tmp_path):
    """The distribution's packages installed, its Python must still be 3.11+ (a 3.10 here)."""
    env = distro(tmp_path, "ubuntu-24.04")
    old = tmp_path / "python3.10"
    old.write_text("#!/bin/sh\nexit 1\n")  # sys.version_info < (3, 11): the check exits 1
    old.chmod(0o755)
    proc = run_user_data(tmp_path / "root", SKIP_PACKAGES="0", **{**env, "PYTHON": str(old)})
    assert proc.returncode != 0 and "older than Python 3.11" in proc.stderr, proc.stderr
    assert not (tmp_path / "root" / "opt" / "tweet_assets" / "venv").exists()


@pytest.fixture(scope="module")
def installed(tmp_path_factory, postgres_server):
    """user-data.sh run for real twice into one scratch prefix: first as on Ubuntu 24.04, then as
    on Amazon Linux 2023 (each with its os-release and package manager stubs, PYTHON unset so the
    script picks the distribution's own). Dagster's storage (deploy/dagster.yaml) is a database on
    the tests' real PostgreSQL server; its password is given in the script's environment (on an
    instance the launcher reads it from SSM), so `dagster instance migrate` creates the schema there."""
    require_project()
    root = tmp_path_factory.mktemp("ec2-root")
    stubs = tmp_path_factory.mktemp("distros")
    ubuntu, al2023 = distro(stubs, "ubuntu-24.04"), distro(stubs, "al2023")
    pg = postgres_server.dagster_env(postgres_server.create_database("ec2_user_data"))
    storage = {**pg, "DAGSTER_PG_PASSWORD_PARAMETER": "", "AWS_REGION": "eu-west-1", "TWEET_ASSETS_COMPUTE_LOG_BUCKET": "scratch-compute-logs"}
    started = time.monotonic()
    first = run_user_data(root, SKIP_PACKAGES="0", **ubuntu, **storage)
    assert first.returncode == 0, first.stderr[-4000:]
    first_s = time.monotonic() - started
    before = snapshot(root)
    second = run_user_data(root, SKIP_PACKAGES="0", **al2023, **storage)
    assert second.returncode == 0, second.stderr[-4000:]
    print(f"user-data.sh: first run {first_s:.0f}s, second {time.monotonic() - started - first_s:.0f}s")
    return {"root": root, "first": first, "second": second, "before": before, "pg": pg, "postgres": postgres_server,
            "packages": {"ubuntu-24.04": package_calls(ubuntu), "al2023": package_calls(al2023)}}


@pytest.mark.slow
def test_each_distribution_gets_its_package_manager_and_python(installed):
    """Ubuntu 24.04: apt-get, waiting for the dpkg lock that cloud-init and unattended-upgrades hold
    at first boot (apt.conf(5) DPkg::Lock::Timeout), python3 (3.12). Amazon Linux 2023: dnf and
    python3.11 (its python3 is 3.9)."""
    apt, dnf = installed["packages"]["ubuntu-24.04"], installed["packages"]["al2023"]
    assert [c.split()[:3] for c in apt] == [["apt-get", "-o", "DPkg::Lock::Timeout=600"]] * 2, apt
    assert apt[0].split()[3] == "update" and apt[1].split()[3] == "install"
    assert {"python3", "python3-venv", "git", "ca-certificates"} <= set(apt[1].split())
    assert len(dnf) == 1 and dnf[0].split()[:2] == ["dnf", "install"] and {"python3.11", "git"} <= set(dnf[0].split()), dnf
    assert "distribution: ubuntu 24.04 (apt, python3)" in installed["first"].stderr
    assert "distribution: amzn 2023 (dnf, python3.11)" in installed["second"].stderr


def unit(root: Path, name: str) -> dict[str, list[str]]:
    """A systemd unit's [Service] (and other) settings: {key: [values]}."""
    settings: dict[str, list[str]] = {}
    for line in (root / "etc/systemd/system" / name).read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


def environment_file(path: Path) -> dict[str, str]:
    """The file as systemd's EnvironmentFile= reads it; every line must be KEY='literal value'."""
    env = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            match = re.fullmatch(r"([A-Z_][A-Z0-9_]*)='([^']*)'", line)
            assert match, f"not a KEY='value' line: {line!r}"
            env[match.group(1)] = match.group(2)
    return env


@pytest.mark.slow
def test_install_writes_units_config_and_instance(installed):
    root = installed["root"]
    for name, binary in (("dagster-webserver.service", "dagster-webserver"), ("dagster-daemon.service", "dagster-daemon")):
        settings = unit(root, name)
        assert settings["User"] == ["dagster"] and settings["Group"] == ["dagster"]
        assert settings["Restart"] == ["on-failure"]
        assert settings["StandardOutput"] == ["journal"] and settings["StandardError"] == ["journal"]
        assert settings["NoNewPrivileges"] == ["true"]
        assert settings["WantedBy"] == ["multi-user.target"]
        (exec_start,) = settings["ExecStart"]
        argv = shlex.split(exec_start)
        assert argv[0] == f"{root}/opt/tweet_assets/bin/tweet-assets-run"
        assert argv[1] == f"{root}/opt/tweet_assets/venv/bin/{binary}"
        assert "X_BEARER_TOKEN" not in (root / "etc/systemd/system" / name).read_text().replace("X_BEARER_TOKEN_PARAMETER", "")
    web = shlex.split(unit(root, "dagster-webserver.service")["ExecStart"][0])
    assert web[web.index("--host") + 1] == "127.0.0.1"
    env = environment_file(root / "etc/tweet_assets/tweet_assets.env")
    assert env["DAGSTER_HOME"] == f"{root}/var/lib/dagster"
    assert env["AWS_EC2_METADATA_V1_DISABLED"] == "true"
    assert "X_BEARER_TOKEN" not in env
    assert env["X_QUERY"] == X_QUERY
    # the ECS shape's settings are passed on when given, and only then
    assert env["TWEET_ASSETS_ECS_CLUSTER"] == "tweet-assets" and "DAGSTER_CURRENT_IMAGE" not in env
    # the table format (issue #37): Hive by default; the names the ECS launcher copies are written empty
    assert (env["TWEET_ASSETS_TABLE_FORMAT"], env["TWEET_ASSETS_ICEBERG_CATALOG"], env["TWEET_ASSETS_GLUE_DATABASE"]) == ("hive", "", "")
    assert not any(k.startswith("PYICEBERG_") for k in env)
    # a shell sourcing the same file (the Airflow DAG's TWEET_ASSETS_ENV_FILE) reads the same value
    sourced = subprocess.run(
        ["bash", "-c", 'set -a; . "$1"; printf %s "$X_QUERY"', "-", str(root / "etc/tweet_assets/tweet_assets.env")],
        env=clean_env(), capture_output=True, text=True, timeout=30,
    )
    assert sourced.returncode == 0 and sourced.stdout == X_QUERY, sourced.stderr
    assert (root / "var/lib/dagster/dagster.yaml").read_text() == (DEPLOY / "dagster.yaml").read_text()
    # the storage is the PostgreSQL database (migrated there), not SQLite files in DAGSTER_HOME
    assert not (root / "var/lib/dagster/history").exists()
    assert env["DAGSTER_PG_DB"] == "ec2_user_data" and "DAGSTER_PG_PASSWORD" not in env
    conn = installed["postgres"].connect(dbname="ec2_user_data")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM information_schema.tables WHERE table_name IN ('runs', 'event_logs', 'jobs')")
            assert cur.fetchone()[0] == 3
    finally:
        conn.close()
    # the x_api pool limit was set in the new instance
    proc = subprocess.run(
        [str(root / "opt/tweet_assets/venv/bin/dagster"), "instance", "concurrency", "get", "x_api"],
        env=clean_env(**env, DAGSTER_PG_PASSWORD=installed["pg"]["DAGSTER_PG_PASSWORD"]), capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert '"x_api": 0 / 1 slots occupied' in proc.stdout
    # the generated launcher is clean bash too
    check = shellcheck(root / "opt/tweet_assets/bin/tweet-assets-run")
    assert check.returncode == 0, check.stdout


@pytest.mark.slow
def test_second_run_changes_nothing(installed):
    assert snapshot(installed["root"]) == installed["before"]
    assert "wrote " not in installed["second"].stderr, installed["second"].stderr[-2000:]


@pytest.mark.slow
def test_generated_units_pass_systemd_analyze_verify(installed):
    analyze = "/usr/bin/systemd-analyze"
    if not os.path.exists(analyze):
        pytest.skip("systemd-analyze not installed (apt-get install systemd)")
    units = [str(installed["root"] / "etc/systemd/system" / n) for n in ("dagster-webserver.service", "dagster-daemon.service")]
    proc = subprocess.run([analyze, "verify", *units], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "dagster-" not in proc.stderr, proc.stderr


def expand_systemd(command: str, env: dict[str, str]) -> list[str]:
    """ExecStart's ${VAR} and $VAR replaced from the unit's environment, as systemd does."""
    expanded = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env[m.group(1) or m.group(2)], command)
    return shlex.split(expanded)


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a TCP socket listening on ``port`` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


@pytest.mark.slow
def test_webserver_from_the_unit_serves_the_three_assets_on_loopback(installed, tmp_path):
    root = installed["root"]
    settings = unit(root, "dagster-webserver.service")
    env = environment_file(Path(settings["EnvironmentFile"][0]))
    port = free_port()
    env["DAGSTER_WEBSERVER_PORT"] = str(port)
    env["DAGSTER_PG_PASSWORD"] = installed["pg"]["DAGSTER_PG_PASSWORD"]  # what the launcher reads from SSM
    argv = expand_systemd(settings["ExecStart"][0], env)
    log = tmp_path / "webserver.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            argv, env=clean_env(**env), cwd=settings["WorkingDirectory"][0],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}/graphql"
        deadline = time.monotonic() + WEBSERVER_START_TIMEOUT_S
        answer = None
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                response = requests.post(url, json={"query": ASSETS_QUERY}, timeout=10)
                if response.status_code == 200 and response.json().get("data", {}).get("assetNodes"):
                    answer = response.json()
                    break
            except requests.RequestException:
                pass
            time.sleep(1)
        assert answer, f"no answer from {url} in {WEBSERVER_START_TIMEOUT_S}s:\n{log.read_text()[-3000:]}"
        keys = {"/".join(node["assetKey"]["path"]) for node in answer["data"]["assetNodes"]}
        assert ASSETS <= keys, keys  # the pipeline (other assets, e.g. raw_stream, may sit beside it)
        # bound to the IPv4 loopback only (0100007F is 127.0.0.1 in /proc/net/tcp)
        assert listening_addresses(port) == {"0100007F"}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# ------------------------------------------------------------------------------------------------
# The launcher: X token from SSM, region from IMDSv2


class _Imds(http.server.BaseHTTPRequestHandler):
    """An IMDSv2-only metadata stub: a GET without a session token gets 401, as with HttpTokens=required."""

    token = "stub-session-token"
    region = "eu-central-1"
    seen: list = []

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_PUT(self):
        self.seen.append(("PUT", self.path, self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")))
        if self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
            self._reply(200, self.token)
        else:
            self._reply(400, "")

    def do_GET(self):
        self.seen.append(("GET", self.path, self.headers.get("X-aws-ec2-metadata-token")))
        if self.headers.get("X-aws-ec2-metadata-token") != self.token:
            self._reply(401, "")
        elif self.path == "/latest/meta-data/placement/region":
            self._reply(200, self.region)
        else:
            self._reply(404, "")

    def _reply(self, status, body):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def imds():
    _Imds.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Imds)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Imds.seen
    server.shutdown()
    server.server_close()


@pytest.fixture
def moto_ssm():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


SHOW_TOKEN_DIGEST = (
    "import hashlib, os; print(hashlib.sha256(os.environ['X_BEARER_TOKEN'].encode()).hexdigest(), os.environ['AWS_REGION'], os.environ['AWS_DEFAULT_REGION'])"
)


@pytest.mark.slow
def test_launcher_reads_the_token_from_ssm_with_the_region_from_imdsv2(installed, imds, moto_ssm):
    import boto3

    root = installed["root"]
    endpoint, seen = imds
    secret = "test-bearer-" + os.urandom(8).hex()
    ssm = boto3.client("ssm", region_name=_Imds.region, endpoint_url=moto_ssm, aws_access_key_id="testing", aws_secret_access_key="testing")
    ssm.put_parameter(Name="/tweet_assets/x_bearer_token", Value=secret, Type="SecureString")
    env = clean_env(
        X_BEARER_TOKEN_PARAMETER="/tweet_assets/x_bearer_token",
        AWS_EC2_METADATA_SERVICE_ENDPOINT=endpoint,
        AWS_ENDPOINT_URL=moto_ssm,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
    )
    launcher = str(root / "opt/tweet_assets/bin/tweet-assets-run")
    proc = subprocess.run([launcher, sys.executable, "-c", SHOW_TOKEN_DIGEST], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    # boto3's default region too (AWS_DEFAULT_REGION: pyiceberg's GlueCatalog is given none)
    assert proc.stdout.split() == [hashlib.sha256(secret.encode()).hexdigest(), _Imds.region, _Imds.region]
    assert secret not in proc.stdout + proc.stderr
    # IMDSv2: a session token first, and no metadata read without it
    assert seen[0][:2] == ("PUT", "/latest/api/token")
    assert all(token == _Imds.token for method, _, token in seen if method == "GET")

    # and the Dagster database password (deploy/dagster.yaml's DAGSTER_PG_PASSWORD) the same way
    password = "test-pg-" + os.urandom(8).hex()
    ssm.put_parameter(Name="/tweet_assets/dagster_pg_password", Value=password, Type="SecureString")
    proc = subprocess.run(
        [launcher, sys.executable, "-c", "import hashlib, os; print(hashlib.sha256(os.environ['DAGSTER_PG_PASSWORD'].encode()).hexdigest())"],
        env={**env, "DAGSTER_PG_PASSWORD_PARAMETER": "/tweet_assets/dagster_pg_password"}, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [hashlib.sha256(password.encode()).hexdigest()]
    assert password not in proc.stdout + proc.stderr

    # the code location loads its x_api source with the token the launcher fetched
    python = str(root / "opt/tweet_assets/venv/bin/python")
    loads = subprocess.run(
        [launcher, python, "-c", "import tweet_assets.settings as s; print(type(s.source_from_env()).__name__)"],
        env={**env, "TWEET_ASSETS_SOURCE": "x_api", "X_QUERY": X_QUERY, "TWEET_ASSETS_LAKE_URL": str(root / "lake")},
        capture_output=True, text=True, timeout=300,
    )
    assert loads.returncode == 0, loads.stderr[-2000:]
    assert loads.stdout.strip().splitlines()[-1] == "XApiSource"
    assert secret not in loads.stdout + loads.stderr

    # a parameter that does not exist (or is in another region) stops the service before it starts
    proc = subprocess.run(
        [launcher, sys.executable, "-c", "print('service started')"],
        env={**env, "X_BEARER_TOKEN_PARAMETER": "/tweet_assets/missing"}, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode != 0 and "service started" not in proc.stdout
    assert "/tweet_assets/missing" in proc.stderr and "ssm:GetParameter" in proc.stderr
    # a plain String parameter is refused: the token must be stored encrypted
    ssm.put_parameter(Name="/tweet_assets/plain", Value=secret, Type="String")
    proc = subprocess.run(
        [launcher, sys.executable, "-c", "print('service started')"],
        env={**env, "X_BEARER_TOKEN_PARAMETER": "/tweet_assets/plain"}, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode != 0 and "SecureString" in proc.stderr and secret not in proc.stderr


@pytest.mark.slow
def test_launcher_without_a_parameter_starts_the_service_without_a_token(installed):
    launcher = str(installed["root"] / "opt/tweet_assets/bin/tweet-assets-run")
    proc = subprocess.run(
        [launcher, sys.executable, "-c", "import os; print('X_BEARER_TOKEN' in os.environ)"],
        env=clean_env(X_BEARER_TOKEN_PARAMETER=""), capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "False", proc.stderr


def test_readme_gives_dagster_home_access_to_the_user_not_the_group():
    """UMask=0027 and a 0750 DAGSTER_HOME leave the dagster group read-only there, so the README
    must not offer group membership as a way for the Airflow worker to write it."""
    script = USER_DATA.read_text()
    assert "UMask=0027" in script and 'chmod 0750 "$dagster_home"' in script
    readme = (DEPLOY / "README.md").read_text()
    assert "or in the `dagster` group" not in readme
    assert "run it as the `dagster` user" in readme


# --- filtered stream unit (issue #19; owner: stream) ----------------------------------------------
@pytest.mark.slow
def test_stream_unit_runs_the_consumer_through_the_launcher_and_stops_gracefully(installed):
    root = installed["root"]
    settings = unit(root, "tweet-assets-stream.service")
    argv = shlex.split(settings["ExecStart"][0])
    assert argv == [f"{root}/opt/tweet_assets/bin/tweet-assets-run", f"{root}/opt/tweet_assets/venv/bin/tweet-assets", "stream"]
    assert os.access(argv[1], os.X_OK)  # the installed console script
    assert settings["Restart"] == ["always"] and settings["KillSignal"] == ["SIGTERM"]
    assert int(settings["TimeoutStopSec"][0]) >= 30  # time to publish the open spools
    assert settings["EnvironmentFile"] == [f"{root}/etc/tweet_assets/tweet_assets.env", f"{root}/etc/tweet_assets/stream.env"]
    env = environment_file(root / "etc/tweet_assets/stream.env")
    assert env["TWEET_ASSETS_STREAM_SPOOL_DIR"] == f"{root}/var/lib/tweet_assets/stream_spool"
    assert (root / "var/lib/tweet_assets/stream_spool").is_dir()
    assert "X_BEARER_TOKEN=" not in (root / "etc/systemd/system/tweet-assets-stream.service").read_text()
    analyze = "/usr/bin/systemd-analyze"
    if os.path.exists(analyze):
        proc = subprocess.run([analyze, "verify", str(root / "etc/systemd/system/tweet-assets-stream.service")], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0 and "tweet-assets-stream" not in proc.stderr, proc.stdout + proc.stderr


@pytest.mark.slow
def test_an_iceberg_install_configures_the_glue_catalog_for_every_service(tmp_path, postgres_server):
    """TWEET_ASSETS_TABLE_FORMAT=iceberg: the env file names pyiceberg's catalog "glue" and configures
    it (PYICEBERG_CATALOG__GLUE__TYPE=glue), with the database; the installed code location, loaded
    with that file as the services load it, opens a pyiceberg GlueCatalog for the s3:// lake (no
    SQLite refusal) and has the compliance and Iceberg maintenance jobs (iceberg-policy.json is what
    they need: deploy/README.md, "Iceberg")."""
    require_project()
    root = tmp_path / "root"
    pg = postgres_server.dagster_env(postgres_server.create_database("ec2_iceberg"))
    proc = run_user_data(
        root, TWEET_ASSETS_TABLE_FORMAT="iceberg", TWEET_ASSETS_GLUE_DATABASE="tweets_db", TWEET_ASSETS_LAKE_URL="s3://scratch-lake/tweet_assets",
        **pg, DAGSTER_PG_PASSWORD_PARAMETER="", AWS_REGION="eu-west-1", TWEET_ASSETS_COMPUTE_LOG_BUCKET="scratch-compute-logs",
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    env = environment_file(root / "etc/tweet_assets/tweet_assets.env")
    assert {k: env.get(k) for k in ("TWEET_ASSETS_TABLE_FORMAT", "TWEET_ASSETS_ICEBERG_CATALOG", "PYICEBERG_CATALOG__GLUE__TYPE", "TWEET_ASSETS_GLUE_DATABASE")} == {
        "TWEET_ASSETS_TABLE_FORMAT": "iceberg", "TWEET_ASSETS_ICEBERG_CATALOG": "glue", "PYICEBERG_CATALOG__GLUE__TYPE": "glue", "TWEET_ASSETS_GLUE_DATABASE": "tweets_db",
    }
    probe = (
        "import json\n"
        "from tweet_assets.settings import lake_from_env\n"
        "from tweet_assets.tables.catalogs import open_catalog, database_name\n"
        "from tweet_assets.definitions import defs\n"
        "catalog = open_catalog(lake_from_env().lake())\n"
        "print(json.dumps({'catalog': type(catalog).__name__, 'name': catalog.name, 'database': database_name(), 'region': catalog.glue.meta.region_name,\n"
        "                  'jobs': sorted(j.name for j in defs.resolve_all_job_defs())}))\n"
    )
    home = tmp_path / "home"
    home.mkdir()
    # through the services' launcher: boto3's default region (the Glue client is given none) is AWS_REGION's
    out = subprocess.run(
        [str(root / "opt/tweet_assets/bin/tweet-assets-run"), str(root / "opt/tweet_assets/venv/bin/python"), "-c", probe],
        env={**clean_env(**env, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing"), "HOME": str(home), "PYICEBERG_HOME": str(home)},
        capture_output=True, text=True, timeout=300, cwd=home,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert (seen["catalog"], seen["name"], seen["database"], seen["region"]) == ("GlueCatalog", "glue", "tweets_db", "eu-west-1")
    assert {"compliance_job", "iceberg_maintenance_job", "tweets_daily_job"} <= set(seen["jobs"]), seen["jobs"]
