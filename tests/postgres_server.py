"""A real PostgreSQL server for the tests: Debian's ``postgresql`` binaries (``.ci/run`` installs
the package), a throw-away cluster in a temp directory, listening on 127.0.0.1 only, on a free port.

Like RDS with ``rds.force_ssl``, the server accepts TCP clients over TLS only (``hostssl`` lines,
a self-signed certificate made here with ``cryptography``) and with a password (SCRAM-SHA-256), so
the production ``deploy/dagster.yaml`` (``sslmode: require``, password from the environment) is
tested as it is. As root (CI), ``initdb`` and ``pg_ctl`` run as the ``postgres`` system user,
which PostgreSQL requires. Durability is traded for speed (``fsync=off``): a test cluster.

Use the session fixture ``postgres_server`` (tests/conftest.py); each test takes its own database
with :meth:`PostgresServer.create_database`.
"""

from __future__ import annotations

import datetime
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

START_TIMEOUT_S = 60


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries here (the message says how to install them)."""


def find_bindir() -> Path:
    """The directory holding ``initdb``/``pg_ctl``: ``$TWEET_ASSETS_PG_BINDIR``, Debian's newest
    ``/usr/lib/postgresql/<major>/bin``, else ``PATH``.

    Raises:
        PostgresUnavailable: none found.
    """
    configured = os.environ.get("TWEET_ASSETS_PG_BINDIR")
    candidates = [configured] if configured else []
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0, reverse=True)
    found = shutil.which("initdb")
    if found:
        candidates.append(str(Path(found).resolve().parent))
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    raise PostgresUnavailable(
        "PostgreSQL server binaries (initdb, pg_ctl) not found: `apt-get install postgresql` "
        "(.ci/run does), or set TWEET_ASSETS_PG_BINDIR"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _self_signed_certificate(directory: Path) -> None:
    """``server.crt``/``server.key`` (RSA 2048, CN=127.0.0.1, one day) in ``directory``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256())
    )
    (directory / "server.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path = directory / "server.key"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()))
    key_path.chmod(0o600)


@dataclass
class PostgresServer:
    """One throw-away cluster; ``user``/``password`` is its superuser (TCP: TLS + SCRAM only)."""

    root: Path
    bindir: Path
    port: int = 0
    host: str = "127.0.0.1"
    user: str = "tweet_assets_test"
    password: str = ""

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        return self.root / "postgres.log"

    def _as_server_user(self, args: list[str]) -> list[str]:
        """PostgreSQL refuses to run as root: run its tools as ``postgres`` there."""
        if os.geteuid() != 0:
            return args
        # runuser lives in /usr/sbin (util-linux), which a non-login PATH may lack
        runuser = shutil.which("runuser") or shutil.which("runuser", path="/usr/sbin:/sbin")
        if runuser is None:
            pytest.skip("running as root and util-linux's runuser is not installed: PostgreSQL refuses to run as root")
        return [runuser, "-u", "postgres", "--", *args]

    def _run(self, args: list[str], timeout: float = START_TIMEOUT_S) -> None:
        proc = subprocess.run(self._as_server_user(args), capture_output=True, text=True, timeout=timeout, cwd=str(self.root))
        if proc.returncode != 0:
            log = self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
            raise RuntimeError(f"{' '.join(args[:2])} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}\n{log}")

    def start(self) -> "PostgresServer":
        self.password = secrets.token_urlsafe(16)
        self.port = _free_port()
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        if os.geteuid() == 0:
            server_user = pwd.getpwnam("postgres")
            for path in (self.root, pwfile):
                os.chown(path, server_user.pw_uid, server_user.pw_gid)
        self._run([str(self.bindir / "initdb"), "-D", str(self.data), "-U", self.user, f"--pwfile={pwfile}",
                   "--auth-local=scram-sha-256", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8"])
        pwfile.unlink()
        # TCP clients only over TLS (as RDS with rds.force_ssl=1), loopback only
        (self.data / "pg_hba.conf").write_text(
            "local all all scram-sha-256\n"
            "hostssl all all 127.0.0.1/32 scram-sha-256\n"
        )
        _self_signed_certificate(self.data)
        if os.geteuid() == 0:
            server_user = pwd.getpwnam("postgres")
            for name in ("pg_hba.conf", "server.crt", "server.key"):
                os.chown(self.data / name, server_user.pw_uid, server_user.pw_gid)
        options = " ".join([
            "-c listen_addresses=127.0.0.1", f"-c port={self.port}", f"-c unix_socket_directories={self.root}",
            "-c ssl=on", "-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off",
            "-c max_connections=200",
        ])
        self._run([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log_path), "-o", options, "-w", "-t", str(START_TIMEOUT_S), "start"])
        return self

    def stop(self) -> None:
        if self.data.exists():
            try:
                self._run([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"], timeout=60)
            except (RuntimeError, subprocess.TimeoutExpired):
                pass
        shutil.rmtree(self.root, ignore_errors=True)

    def connect(self, dbname: str = "postgres", **kwargs):
        """A psycopg2 connection over TLS (``sslmode=require``) as the superuser."""
        import psycopg2

        return psycopg2.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                                dbname=dbname, sslmode="require", **kwargs)

    def create_database(self, name: str) -> str:
        """``CREATE DATABASE name`` (dropped first if it exists); returns ``name``."""
        conn = self.connect()
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return name

    def dagster_env(self, db_name: str) -> dict[str, str]:
        """The ``DAGSTER_PG_*`` variables ``deploy/dagster.yaml`` reads, for ``db_name``."""
        return {
            "DAGSTER_PG_HOST": self.host,
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_DB": db_name,
            "DAGSTER_PG_USERNAME": self.user,
            "DAGSTER_PG_PASSWORD": self.password,
        }


def start_postgres() -> PostgresServer:
    """Start a server in a fresh temp directory (readable by ``postgres`` when run as root).

    Raises:
        PostgresUnavailable: no server binaries; RuntimeError: initdb or start failed.
    """
    bindir = find_bindir()
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise PostgresUnavailable("running as root and there is no `postgres` system user to run the server as") from None
    root = Path(tempfile.mkdtemp(prefix="tweet_assets_pg_"))
    server = PostgresServer(root=root, bindir=bindir)
    try:
        return server.start()
    except BaseException:
        server.stop()
        raise
