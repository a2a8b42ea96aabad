"""Reading it back (point 7): `TWEET_ASSETS_TABLE_FORMAT=iceberg make demo` on a fresh lake
materializes 3 days into the embedded catalog's table and prints it read through pyiceberg into
DuckDB; the table reads through pyiceberg's scan and polars.scan_iceberg."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tables.iceberg_helpers import read_both
from tweet_assets.lake.store import open_lake
from tweet_assets.tables.iceberg import IcebergTable

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_make_demo_with_iceberg(tmp_path, monkeypatch):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWEET_ASSETS_", "DAGSTER_", "PYICEBERG_"))}
    env.update(DAGSTER_HOME=str(tmp_path / "home"), TWEET_ASSETS_LAKE_URL=str(tmp_path / "lake"), TWEET_ASSETS_TABLE_FORMAT="iceberg")
    os.makedirs(env["DAGSTER_HOME"])
    venv = Path(sys.prefix)
    cmd = ["make", "-s", "-C", str(REPO), "demo", f"VENV={venv}"] if (venv / ".installed").exists() else [sys.executable, "-m", "tweet_assets.cli", "demo"]
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "the published Iceberg table default.tweets (catalog embedded, snapshot " in out.stdout and "read back through pyiceberg into DuckDB" in out.stdout
    assert not list((tmp_path / "lake" / "tweets").glob("dt=*"))  # no Hive objects
    for name in ("TWEET_ASSETS_ICEBERG_CATALOG", "TWEET_ASSETS_GLUE_DATABASE"):
        monkeypatch.delenv(name, raising=False)
    table = IcebergTable.open(open_lake(str(tmp_path / "lake")), "tweets", "tweets")
    days = table.days()
    assert len(days) == 3 and all(f"{day} | 200" in out.stdout for day in days)
    scanned, frame = read_both(table.load())
    assert scanned.num_rows == frame.height == 600 and len(table.load().snapshots()) == 1
