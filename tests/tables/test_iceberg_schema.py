"""One column list (point 3): the Iceberg schema from schema.py with field ids fixed at creation, a
column added to schema.py added at the next commit through update_schema (older snapshots still
read), a change Iceberg cannot make refused naming the column; timestamps in µs UTC."""

from __future__ import annotations

import pyarrow as pa
import pytest

from tests.tables.iceberg_helpers import day_rows, rows
from tweet_assets import schema as published
from tweet_assets.lake.store import open_lake
from tweet_assets.tables import pyiceberg_fixes
from tweet_assets.tables.iceberg import IcebergTable
from tweet_assets.tables.iceberg_schema import SchemaChangeRefused, iceberg_arrow_schema, new_table_schema


@pytest.fixture
def table(tmp_path, monkeypatch):
    monkeypatch.delenv("TWEET_ASSETS_ICEBERG_CATALOG", raising=False)
    monkeypatch.delenv("TWEET_ASSETS_GLUE_DATABASE", raising=False)
    return IcebergTable.open(open_lake(str(tmp_path / "lake")), "tweets", "tweets")


def test_new_table_schema_numbers_schema_py_columns_in_order():
    schema = new_table_schema()
    assert [f.name for f in schema.fields] == list(published.COLUMN_NAMES)
    assert [f.field_id for f in schema.fields] == list(range(1, len(published.COLUMNS) + 1))
    assert str(schema.find_field("created_at").field_type) == "timestamptz" and schema.find_field("created_at").required
    timestamps = [f.name for f in iceberg_arrow_schema() if pa.types.is_timestamp(f.type)]
    assert timestamps and all(iceberg_arrow_schema().field(n).type == pa.timestamp("us", tz="UTC") for n in timestamps)


def _with_column(schema: pa.Schema, field: pa.Field) -> pa.Schema:
    return schema.append(field)


def test_a_column_added_to_schema_py_is_added_at_the_next_commit(table, monkeypatch):
    table.publish({"2024-01-01": day_rows(rows("2024-01-01", [1, 2]))}, "run-1")
    first = table.load()
    old_snapshot, old_ids = first.current_snapshot().snapshot_id, {f.name: f.field_id for f in first.schema().fields}
    # schema.py gains a column (appended) and a field inside a nested struct
    rules = published.PUBLISHED_SCHEMA.field("matching_rules")
    nested = pa.list_(pa.struct([*rules.type.value_type, pa.field("source", pa.string())]))
    widened = published.PUBLISHED_SCHEMA.set(published.PUBLISHED_SCHEMA.get_field_index("matching_rules"), pa.field("matching_rules", nested))
    widened = _with_column(widened, pa.field("community_id", pa.int64()))
    monkeypatch.setattr(published, "PUBLISHED_SCHEMA", widened)
    day = rows("2024-01-02", [3]).cast(published.PUBLISHED_SCHEMA.remove(len(widened) - 1).set(widened.get_field_index("matching_rules"), pa.field("matching_rules", nested)))
    day = day.append_column("community_id", pa.array([42], pa.int64()))
    commit = table.publish({"2024-01-02": day_rows(day)}, "run-2")
    assert commit.columns_added == ["community_id", "matching_rules.element.source"]
    loaded = table.load()
    assert len(loaded.snapshots()) == 2  # the schema change and the data in one commit
    assert {f.name: f.field_id for f in loaded.schema().fields if f.name in old_ids} == old_ids  # existing ids kept
    assert loaded.schema().find_field("community_id").field_id > first.schema().highest_field_id  # new ids only
    assert "source" in [f.name for f in loaded.schema().find_field("matching_rules").field_type.element_field.field_type.fields]
    now = {r["id"]: r["community_id"] for r in loaded.scan(selected_fields=("id", "community_id")).to_arrow().to_pylist()}
    assert now == {1: None, 2: None, 3: 42}
    # the older snapshot still reads, with its own schema
    before = loaded.scan(snapshot_id=old_snapshot).to_arrow()
    assert sorted(before.column("id").to_pylist()) == [1, 2]


def test_a_change_iceberg_cannot_make_is_refused_naming_the_column(table, monkeypatch):
    table.publish({"2024-01-01": day_rows(rows("2024-01-01", [1]))}, "run-1")
    changed = published.PUBLISHED_SCHEMA.set(published.PUBLISHED_SCHEMA.get_field_index("lang"), pa.field("lang", pa.int64()))
    monkeypatch.setattr(published, "PUBLISHED_SCHEMA", changed)
    with pytest.raises(SchemaChangeRefused) as refused:
        table.publish({"2024-01-02": day_rows(rows("2024-01-02", [2]).drop_columns(["lang"]).append_column("lang", pa.array([7], pa.int64())))}, "run-2")
    message = str(refused.value)
    assert "lang: string -> long" in message and "keep lang's type in tweet_assets/schema.py" in message and "\n" not in message
    assert len(table.load().snapshots()) == 1


def test_pyiceberg_needs_the_null_list_fix(table):
    """pyiceberg 0.12 reads a null list<struct> as []: the fix is still needed, and it works (when
    this fails on the unpatched read, pyiceberg keeps nulls and tables/pyiceberg_fixes.py can go)."""
    media = pa.array([None, [{"media_key": "3_1"}]], type=published.PUBLISHED_SCHEMA.field("media").type)
    day = rows("2024-01-01", [1, 2])
    table.publish({"2024-01-01": day_rows(day.set_column(day.schema.get_field_index("media"), "media", media))}, "run-1")
    pyiceberg_fixes.uninstall()
    try:
        unpatched = table.load().scan(selected_fields=("id", "media")).to_arrow().sort_by("id").column("media").to_pylist()
    finally:
        pyiceberg_fixes.install()
    assert unpatched[0] == []
    patched = table.load().scan(selected_fields=("id", "media")).to_arrow().sort_by("id").column("media").to_pylist()
    assert patched[0] is None and patched[1][0]["media_key"] == "3_1"


def _without_zone(typ: pa.DataType) -> pa.DataType:
    if pa.types.is_timestamp(typ):
        return pa.timestamp(typ.unit)
    if pa.types.is_list(typ):
        return pa.list_(_without_zone(typ.value_type))
    if pa.types.is_struct(typ):
        return pa.struct([pa.field(f.name, _without_zone(f.type), f.nullable) for f in typ])
    return typ


def test_a_table_created_from_athena_with_timestamps_without_zone_takes_the_rows(table):
    """Athena's Iceberg DDL has only ``timestamp`` (no zone): such a table takes the pipeline's
    rows as UTC wall-clock values, and every reading agrees with the published rows at ms."""
    from tweet_assets.tables.iceberg import TABLE_PROPERTIES
    from tweet_assets.tables.iceberg_schema import partition_spec, sort_order

    athena_like = new_table_schema(pa.schema([pa.field(f.name, _without_zone(f.type), f.nullable) for f in published.PUBLISHED_SCHEMA]))
    assert str(athena_like.find_field("created_at").field_type) == "timestamp"
    table.catalog.create_namespace("default")
    table.catalog.create_table(table.identifier, schema=athena_like, location=table.location, partition_spec=partition_spec(athena_like), sort_order=sort_order(athena_like), properties=TABLE_PROPERTIES)
    sent = rows("2024-01-01", [1, 2])
    commit = table.publish({"2024-01-01": day_rows(sent), "2024-01-02": day_rows(rows("2024-01-02", [3]))}, "run-1")
    assert commit.columns_added == [] and table.days() == ["2024-01-01", "2024-01-02"]
    got = table.read_day("2024-01-01", ["id", "created_at"])
    assert got.schema.field("created_at").type == pa.timestamp("us")
    assert [t.isoformat() for t in got.column("created_at").to_pylist()] == [t.replace(tzinfo=None).isoformat() for t in sent.column("created_at").to_pylist()]
    assert table.remove_ids(pa.array([2], pa.int64())).removed_ids == {"2024-01-01": [2]}
