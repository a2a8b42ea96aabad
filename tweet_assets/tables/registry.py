"""The table formats by name (``TWEET_ASSETS_TABLE_FORMAT``, a collection's ``table_format:``) and
the one function that opens a collection's published table in its format."""

from __future__ import annotations

from tweet_assets.lake.store import Lake
from tweet_assets.schema import DEFAULT_TABLE
from tweet_assets.tables import FORMATS, check_format
from tweet_assets.tables.base import PublishedTable
from tweet_assets.tables.hive import HiveTable
from tweet_assets.tables.iceberg import IcebergTable

#: name → class; a new format is a module with a :class:`PublishedTable` subclass, added here.
REGISTRY: dict[str, type[PublishedTable]] = {"hive": HiveTable, "iceberg": IcebergTable}
assert tuple(REGISTRY) == FORMATS


def open_table(fmt: str, lake: Lake, table: str = "tweets", name: str = DEFAULT_TABLE, database: str | None = None, catalog: str | None = None, create: bool = True) -> PublishedTable:
    """The published table of lake folder ``table`` in format ``fmt``: Hive's objects, or the
    Iceberg table ``database.name`` in catalog ``catalog`` (default ``TWEET_ASSETS_ICEBERG_CATALOG``).

    Raises:
        ValueError: unknown format; CatalogError: the Iceberg catalog cannot be used (one line each).
    """
    fmt = check_format(fmt, "table format")
    if fmt == "iceberg":
        return IcebergTable.open(lake, table, name, database, catalog, create=create)
    return HiveTable(lake, table)
