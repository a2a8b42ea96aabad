"""Arrow → warehouse type names: one walk over the published schema's Arrow types, one table of
names per engine, so every dialect maps the same types the same way and refuses the same ones.

The published schema (:mod:`tweet_assets.schema`) uses only these Arrow types: ``string``,
``int64``, ``int32``, ``float64``, ``bool``, ``timestamp("ms", tz="UTC")`` (the table's time rule:
milliseconds, UTC), and ``list``/``struct`` of them. Anything else (unsigned ints, other timestamp
units or zones, maps, …) raises ``TypeError`` in every dialect, nested ones included.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa


@dataclass(frozen=True)
class EngineTypes:
    """One engine's names for the published schema's Arrow types.

    ``array`` gets the element's engine type and returns the list type; ``struct`` gets
    ``[(field name, engine type), …]`` and returns the struct type (engines with untyped
    semi-structured columns, as Snowflake's ``ARRAY``/``OBJECT``, ignore their argument).
    """

    engine: str
    string: str
    int64: str
    int32: str
    float64: str
    boolean: str
    timestamp_ms_utc: str
    array: Callable[[str], str]
    struct: Callable[[list[tuple[str, str]]], str]

    def of(self, typ: pa.DataType) -> str:
        """The engine's type for ``typ``.

        Raises:
            TypeError: ``typ`` (or a type nested in it) has no equivalent here.
        """
        if pa.types.is_string(typ) or pa.types.is_large_string(typ):
            return self.string
        if pa.types.is_int64(typ):
            return self.int64
        if pa.types.is_int32(typ):
            return self.int32
        if pa.types.is_float64(typ):
            return self.float64
        if pa.types.is_boolean(typ):
            return self.boolean
        if pa.types.is_timestamp(typ) and typ.unit == "ms" and typ.tz == "UTC":
            return self.timestamp_ms_utc
        if pa.types.is_list(typ) or pa.types.is_large_list(typ):
            return self.array(self.of(typ.value_type))
        if pa.types.is_struct(typ):
            return self.struct([(f.name, self.of(f.type)) for f in typ])
        raise TypeError(f"Arrow type {typ} has no {self.engine} equivalent in this table")
