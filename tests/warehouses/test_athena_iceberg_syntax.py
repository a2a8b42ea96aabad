"""The Athena Iceberg DDL follows Athena's documented syntax for Iceberg tables (Athena User Guide,
"Create Iceberg tables")::

    CREATE TABLE [db_name.]table_name (col_name data_type [COMMENT col_comment] [, ...] )
      [PARTITIONED BY (col_name | transform, ... )]
      LOCATION 's3://amzn-s3-demo-bucket/your-folder/'
      TBLPROPERTIES ( 'table_type' ='ICEBERG' [, property_name=property_value] )

Unlike the Hive ``CREATE EXTERNAL TABLE`` (whose syntax has ``[COMMENT table_comment]``), there is
no table-level ``COMMENT`` clause: sqlglot parsing one proves nothing about Athena. Column comments
are documented and kept."""

from __future__ import annotations

import re

from tweet_assets.warehouses import ddl

LOCATION = "s3://b/p/tweets/"


def _clauses(text: str) -> list[str]:
    """The statement's clauses after its column list, by their leading keywords."""
    statement = "\n".join(line for line in text.splitlines() if not line.startswith("--"))
    depth, end = 0, None
    for i, ch in enumerate(statement):  # the column list's closing parenthesis (comments hold none unbalanced)
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                end = i
                break
    tail = statement[end + 1 :]
    return re.findall(r"^(PARTITIONED BY|LOCATION|TBLPROPERTIES|COMMENT|STORED AS|ROW FORMAT|WITH)\b", tail, flags=re.MULTILINE)


def test_the_athena_iceberg_ddl_has_only_the_documented_clauses_in_order():
    text = ddl("athena", LOCATION, table_format="iceberg")
    assert text.count("CREATE TABLE ") == 1 and "CREATE EXTERNAL TABLE" not in text  # EXTERNAL: "not supported for table type ICEBERG"
    assert _clauses(text) == ["PARTITIONED BY", "LOCATION", "TBLPROPERTIES"]
    assert re.search(r"TBLPROPERTIES \(\s*'table_type'='ICEBERG'", text)
    assert text.count(" COMMENT '") == text.count("\n  `")  # every column keeps its comment


def test_the_hive_ddl_keeps_its_documented_table_comment():
    assert "COMMENT" in _clauses(ddl("athena", LOCATION))
