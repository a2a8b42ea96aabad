"""Moving an existing lake (point 8): `tweet-assets iceberg import` loads the published Hive days
into the Iceberg table, prints posts in and committed per day, and is idempotent."""

from __future__ import annotations

import polars as pl
import pytest

from tests.helpers import resources, run
from tests.tables.iceberg_helpers import read_both
from tweet_assets.cli.main import main
from tweet_assets.lake.leases import DayLeases
from tweet_assets.lake.store import open_lake
from tweet_assets.sources.sample import SampleSource
from tweet_assets.tables.hive import HiveTable
from tweet_assets.tables.iceberg import IcebergTable


@pytest.fixture
def hive_lake(tmp_path, monkeypatch, instance):
    for name in ("TWEET_ASSETS_ICEBERG_CATALOG", "TWEET_ASSETS_GLUE_DATABASE", "TWEET_ASSETS_GLUE_TABLE"):
        monkeypatch.delenv(name, raising=False)
    url = str(tmp_path / "lake")
    monkeypatch.setenv("TWEET_ASSETS_LAKE_URL", url)
    assert run(resources(url, SampleSource(posts_per_day=25)), "2024-07-01", "2024-07-03", instance=instance).success
    return url


def _as_ms(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns([pl.col(c).dt.cast_time_unit("ms") for c, t in frame.schema.items() if isinstance(t, pl.Datetime)])


def test_import_loads_every_hive_day_and_run_twice_leaves_the_same_table(hive_lake, capsys):
    assert main(["iceberg", "import", "--days-per-commit", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("tweet-assets iceberg import: 3 Hive day(s) 2024-07-01…2024-07-03") and "default.tweets (catalog embedded)" in out[0]
    assert [line.split(" (snapshot")[0] for line in out[1:4]] == [f"2024-07-0{d}: 25 posts in, 25 committed" for d in (1, 2, 3)]
    assert out[4] == "imported 3 day(s): 75 posts in, 75 committed, 0 day(s) unchanged"
    lake = open_lake(hive_lake)
    table = IcebergTable.open(lake, "tweets", "tweets")
    assert len(table.load().snapshots()) == 2  # commits of 2 days, then 1
    scanned, frame = read_both(table.load())
    hive = pl.concat([pl.from_arrow(HiveTable(lake).read_day(d)) for d in ("2024-07-01", "2024-07-02", "2024-07-03")]).sort("id")
    assert _as_ms(pl.from_arrow(scanned)).equals(hive, null_equal=True) and _as_ms(frame).equals(hive, null_equal=True)
    snapshot = table.load().current_snapshot().snapshot_id
    # again: every day already holds the same rows, nothing is committed
    assert main(["iceberg", "import"]) == 0
    again = capsys.readouterr().out.splitlines()
    assert again[1:4] == [f"2024-07-0{d}: 25 posts in, unchanged (already in the table)" for d in (1, 2, 3)]
    assert table.load().current_snapshot().snapshot_id == snapshot
    # a day changed in Hive (republished with other posts) is replaced, the others are left alone
    assert run(resources(hive_lake, SampleSource(posts_per_day=10, seed=3)), "2024-07-02").success
    assert main(["iceberg", "import", "--from", "2024-07-02", "--to", "2024-07-03"]) == 0
    third = capsys.readouterr().out.splitlines()
    assert third[1].startswith("2024-07-02: 10 posts in, 10 committed") and third[2] == "2024-07-03: 25 posts in, unchanged (already in the table)"
    assert len(read_both(table.load())[0]) == 60


def test_import_refuses_a_day_a_run_is_writing(hive_lake, capsys):
    DayLeases(open_lake(hive_lake), "backfill-run", "raw_tweets").acquire(["2024-07-02"])
    assert main(["iceberg", "import"]) == 1
    err = capsys.readouterr().err
    assert "2024-07-02 is being written by Dagster run backfill-run" in err
    assert IcebergTable.open(open_lake(hive_lake), "tweets", "tweets").days() == []  # the commit of 01..02 (30 days per commit) wrote nothing


def test_import_option_errors(hive_lake, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["iceberg", "import", "--from", "2024-07-03", "--to", "2024-07-01"])
    assert stopped.value.code == 2 and "--from 2024-07-03 is after --to 2024-07-01" in capsys.readouterr().err
