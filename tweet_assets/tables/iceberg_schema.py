"""The Iceberg table's schema, partitioning and sort order, all from :mod:`tweet_assets.schema`.

One column list: the Iceberg schema is ``schema.PUBLISHED_SCHEMA`` with every timestamp in
microseconds (:func:`iceberg_arrow_schema`; Iceberg's ``timestamptz`` is microseconds, UTC: Iceberg
spec, "Primitive types"; pyiceberg-core's ``day`` transform refuses a millisecond timestamp).
Field ids are the table's: assigned once when the table is created (:func:`new_table_schema`), kept
for every existing column forever after; a column added to ``schema.py`` gets the next id at the
next commit through pyiceberg's ``update_schema().union_by_name`` (:func:`evolution`), so files
written before it still read (the new column reads as null there). A change Iceberg cannot make
(``string`` → ``bigint``, a required column made optional...) is refused naming the column
(:class:`SchemaChangeRefused`); Iceberg's allowed type changes are ``int`` → ``long``, ``float`` →
``double`` and widening a decimal (Iceberg spec, "Schema evolution").
"""

from __future__ import annotations

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import ValidationError
from pyiceberg.io.pyarrow import schema_to_pyarrow
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema, assign_fresh_schema_ids
from pyiceberg.table.sorting import NullOrder, SortDirection, SortField, SortOrder
from pyiceberg.transforms import DayTransform, IdentityTransform

from tweet_assets.lake.parquet import SORTED_BY
from tweet_assets import schema as published

#: The partition field: ``day(created_at)``, named as Spark and Athena name it.
PARTITION_SOURCE = "created_at"
PARTITION_NAME = "created_at_day"
#: Iceberg's first partition field id (Iceberg spec: partition field ids start at 1000).
PARTITION_FIELD_ID = 1000


class SchemaChangeRefused(ValueError):
    """``schema.py`` changed a column in a way Iceberg cannot evolve; the message names the column."""


def _microseconds(typ: pa.DataType) -> pa.DataType:
    if pa.types.is_timestamp(typ):
        return pa.timestamp("us", tz=typ.tz)
    if pa.types.is_list(typ) or pa.types.is_large_list(typ):
        return pa.list_(pa.field(typ.value_field.name, _microseconds(typ.value_type), typ.value_field.nullable))
    if pa.types.is_struct(typ):
        return pa.struct([pa.field(f.name, _microseconds(f.type), f.nullable) for f in typ])
    return typ


def iceberg_arrow_schema(schema: pa.Schema | None = None) -> pa.Schema:
    """``schema`` (default: the published columns, ``tweet_assets.schema.PUBLISHED_SCHEMA`` as it is
    when called) with every timestamp, nested ones included, in microseconds
    (``timestamp[us, tz=UTC]``): what the Iceberg table stores. Same names, order and nullability."""
    schema = published.PUBLISHED_SCHEMA if schema is None else schema
    return pa.schema([pa.field(f.name, _microseconds(f.type), f.nullable) for f in schema])


def _conform(typ: pa.DataType, current) -> pa.DataType:
    from pyiceberg.types import ListType, StructType, TimestampType

    if pa.types.is_timestamp(typ) and isinstance(current, TimestampType):
        return pa.timestamp(typ.unit)  # the table's timestamp without time zone: UTC wall-clock values
    if (pa.types.is_list(typ) or pa.types.is_large_list(typ)) and isinstance(current, ListType):
        return pa.list_(pa.field(typ.value_field.name, _conform(typ.value_type, current.element_type), typ.value_field.nullable))
    if pa.types.is_struct(typ) and isinstance(current, StructType):
        names = {f.name: f.field_type for f in current.fields}
        return pa.struct([pa.field(f.name, _conform(f.type, names[f.name]) if f.name in names else f.type, f.nullable) for f in typ])
    return typ


def conform(target: pa.Schema, current: Schema) -> pa.Schema:
    """``target`` with the timestamps the table ``current`` holds **without** time zone (a table
    created from Athena, whose Iceberg DDL has no ``timestamptz``) written the same way: the UTC
    wall-clock values, so such a table takes the pipeline's rows instead of refusing a
    ``timestamp → timestamptz`` change. Every other column as ``target`` says."""
    names = {f.name: f.field_type for f in current.fields}
    return pa.schema([pa.field(f.name, _conform(f.type, names[f.name]) if f.name in names else f.type, f.nullable) for f in target])


def zoned(current: Schema) -> bool:
    """Whether the table's ``created_at`` is ``timestamptz`` (the pipeline's tables) rather than ``timestamp``."""
    from pyiceberg.types import TimestamptzType

    return isinstance(current.find_field(PARTITION_SOURCE).field_type, TimestamptzType)


def new_table_schema(schema: pa.Schema | None = None) -> Schema:
    """The Iceberg schema of a new table: :func:`iceberg_arrow_schema` with fresh field ids (the
    top-level columns 1..N in ``schema.py``'s order, then the nested fields), ``id`` and
    ``created_at`` required."""
    return assign_fresh_schema_ids(Catalog._convert_schema_if_needed(iceberg_arrow_schema(schema)))


def partition_spec(schema: Schema) -> PartitionSpec:
    """``day(created_at)`` as ``created_at_day``: one partition per UTC day, as the Hive table's ``dt``."""
    source = schema.find_field(PARTITION_SOURCE).field_id
    return PartitionSpec(PartitionField(source_id=source, field_id=PARTITION_FIELD_ID, transform=DayTransform(), name=PARTITION_NAME))


def sort_order(schema: Schema) -> SortOrder:
    """The columns ``lake.parquet.SORTED_BY`` names (``created_at``, ``id``, ascending, nulls last):
    the order every day's rows are written in."""
    fields = [
        SortField(
            source_id=schema.find_field(name).field_id,
            transform=IdentityTransform(),
            direction=SortDirection.ASC if direction == "ascending" else SortDirection.DESC,
            null_order=NullOrder.NULLS_LAST,
        )
        for name, direction in SORTED_BY
    ]
    return SortOrder(*fields)


def evolution(table, target: pa.Schema | None = None) -> Schema | None:
    """The schema pyiceberg ``table`` must have for ``target`` (default: :func:`iceberg_arrow_schema`),
    or None when it already holds every column of it: ``update_schema().union_by_name(target)``
    planned, not committed. New columns and nested fields get new ids; existing ones keep theirs; a
    column ``schema.py`` no longer declares stays in the table (written as null), so older snapshots
    read as before.

    Raises:
        SchemaChangeRefused: a column's type or nullability changed in a way Iceberg cannot evolve.
    """
    update = table.transaction().update_schema()
    try:
        update.union_by_name(conform(target or iceberg_arrow_schema(), table.schema()))
        evolved = update._apply()  # the planned schema (pyiceberg applies the same at commit)
    except ValidationError as exc:
        raise SchemaChangeRefused(refusal(exc)) from None
    return None if evolved.as_struct() == table.schema().as_struct() else evolved


def refusal(exc: Exception) -> str:
    """One line for an evolution pyiceberg refused (``Cannot change column type: text: string -> long``)."""
    said = str(exc).strip().rstrip(".")
    column = said.rsplit(": ", 2)[-2] if said.count(": ") >= 2 else "a column"
    return (
        f"the Iceberg table cannot take schema.py's columns: {said}. Iceberg evolves a column only to a wider type "
        f"(int→long, float→double, a wider decimal) or by adding it: keep {column}'s type in tweet_assets/schema.py "
        "and add a column under a new name instead (Iceberg spec, 'Schema evolution')."
    )


def file_schema(schema: Schema) -> pa.Schema:
    """The Arrow schema of the data files written for ``schema``: its columns with their field ids
    (``PARQUET:field_id``), so readers resolve columns by id, never by name or position."""
    return schema_to_pyarrow(schema, include_field_ids=True)


def to_file_schema(chunk: pa.Table, target: pa.Schema) -> pa.Table:
    """``chunk`` (published columns, any timestamp unit) as ``target`` (:func:`file_schema`): each
    column cast by name (milliseconds → microseconds is exact), a column of the table that
    ``chunk`` lacks (one ``schema.py`` no longer declares) filled with nulls.

    Raises:
        ValueError: a required column is missing from ``chunk``.
    """
    columns = []
    for field in target:
        if field.name in chunk.column_names:
            columns.append(chunk.column(field.name).cast(field.type))
        elif field.nullable:
            columns.append(pa.nulls(chunk.num_rows, field.type))
        else:
            raise ValueError(f"required column {field.name} is missing from the rows to write")
    return pa.Table.from_arrays(columns, schema=target)
