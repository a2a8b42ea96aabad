"""Names that go into generated DDL (#27 point 12): a database, schema or table name that is not a
plain identifier is refused with one clear line, in every dialect and from the CLI; the DDL of the
default names is unchanged (byte-identical to the deploy/ scripts checked elsewhere)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tweet_assets.warehouses import DIALECTS, ddl
from tweet_assets.warehouses import athena, glue, redshift, snowflake

HOSTILE = ["tweets (x int); DROP TABLE sales; --", "t`x", 'a"b', "a b", "x.y", "1tweets", "", "tweets\n", "twéets", "a" * 128]
LOCATION = "s3://bucket/tweet_assets/tweets/"


@pytest.mark.parametrize("name", HOSTILE)
@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_hostile_table_or_database_name_is_refused_in_every_dialect(dialect, name):
    with pytest.raises(ValueError, match="invalid table name"):
        ddl(dialect, LOCATION, table=name)
    with pytest.raises(ValueError, match="invalid database name"):
        ddl(dialect, LOCATION, database=name)


@pytest.mark.parametrize("name", HOSTILE)
def test_each_dialect_module_refuses_it_too(name):
    with pytest.raises(ValueError):
        athena.create_table_ddl(LOCATION, table=name)
    with pytest.raises(ValueError):
        athena.create_table_ddl(LOCATION, database=name)
    with pytest.raises(ValueError):
        redshift.statements(LOCATION, schema=name)
    with pytest.raises(ValueError):
        snowflake.statements(LOCATION, stage=name)
    with pytest.raises(ValueError):
        glue.table_input(LOCATION, table=name)


def test_plain_identifiers_pass_and_the_default_ddl_is_unchanged():
    from tweet_assets.warehouses.names import identifier

    for name in ("tweets", "Tweets_2024", "_x", "a" * 127):
        assert identifier(name) == name
    text = ddl("athena", LOCATION, table="my_tweets", database="lake_db")
    assert "`lake_db`.`my_tweets`" in text


@pytest.mark.slow
def test_the_cli_exits_non_zero_with_one_clear_line():
    for dialect in DIALECTS:
        proc = subprocess.run(
            [sys.executable, "-m", "tweet_assets.cli", "ddl", "--dialect", dialect, "--table", "tweets (x int); DROP TABLE sales; --"],
            capture_output=True,
            text=True,
        )
        assert proc.returncode != 0 and proc.stdout == "", (dialect, proc.stdout)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "invalid table name 'tweets (x int); DROP TABLE sales; --'" in lines[0]
