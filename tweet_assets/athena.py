"""Moved to :mod:`tweet_assets.warehouses.athena` (one module per warehouse dialect); this name
keeps old imports working."""

from .warehouses.athena import (  # noqa: F401
    DEFAULT_DATABASE,
    DEFAULT_TABLE,
    athena_type,
    create_table_ddl,
    table_properties,
)
