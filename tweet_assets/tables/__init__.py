"""The published table's formats behind one interface: publish a run's days, remove ids, read a
day back, describe (:class:`tweet_assets.tables.base.PublishedTable`).

==============  ===================================================================================
``hive``        today's files: ``<lake>/tweets/dt=YYYY-MM-DD/part-00000.parquet``, one object per day
                written by the lake IO manager, Athena's partition projection (:mod:`.hive`)
``iceberg``     an Apache Iceberg v2 table through pyiceberg: a catalog chosen by name, one commit
                per run, row-level deletes, snapshot expiry (:mod:`.iceberg`, :mod:`.catalogs`,
                :mod:`.maintenance`)
==============  ===================================================================================

A deployment chooses with ``TWEET_ASSETS_TABLE_FORMAT=hive|iceberg`` (default ``hive``), a
collection with ``table_format:`` in its YAML (default: the deployment's). The registry of
formats is :mod:`.registry`.
"""

from __future__ import annotations

import os

FORMAT_ENV = "TWEET_ASSETS_TABLE_FORMAT"
#: The table formats, the default first.
FORMATS: tuple[str, ...] = ("hive", "iceberg")
DEFAULT_FORMAT = FORMATS[0]


def check_format(name: str, where: str = FORMAT_ENV) -> str:
    """``name`` lower-cased when it is one of :data:`FORMATS`.

    Raises:
        ValueError: any other name (one line naming ``where`` and the choices).
    """
    value = (name or "").strip().lower()
    if value not in FORMATS:
        raise ValueError(f"{where}={name!r}: use one of {', '.join(FORMATS)} (default {DEFAULT_FORMAT}).")
    return value


def table_format(env=None) -> str:
    """The deployment's table format: ``TWEET_ASSETS_TABLE_FORMAT`` or ``hive``.

    Raises:
        ValueError: an unknown format (one line naming the variable).
    """
    env = os.environ if env is None else env
    value = (env.get(FORMAT_ENV) or "").strip()
    return check_format(value) if value else DEFAULT_FORMAT
