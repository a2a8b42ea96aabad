"""The Iceberg catalog, chosen by name through pyiceberg's own configuration.

``TWEET_ASSETS_ICEBERG_CATALOG=<name>`` names a catalog configured the way every pyiceberg user
configures one (pyiceberg docs, "Configuration"): ``catalog: <name>: {type: glue|rest|sql, ...}`` in
``.pyiceberg.yaml`` (looked up in ``$PYICEBERG_HOME``, ``~`` and the working directory), or
``PYICEBERG_CATALOG__<NAME>__TYPE=glue`` and its siblings in the environment. Glue registers the
table so that Athena reads it (``table_type=ICEBERG``); REST serves S3 Tables, Polaris and the like;
nothing here is specific to either.

Unset, a **local** lake gets the embedded catalog: a SQLite ``SqlCatalog`` in
``<lake>/_iceberg_catalog.sqlite`` (the ``_`` keeps it out of Hive-style readings), created on first
use, so ``make demo`` needs nothing else. A SQLite catalog (the embedded one or a configured
``sqlite:`` one) with an ``s3://`` lake is refused: every writer, on every machine, must commit
through the one catalog that knows the table's current metadata, and a SQLite file is one machine's.
"""

from __future__ import annotations

import os

from pyiceberg.catalog import Catalog, load_catalog
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.utils.config import Config

from tweet_assets.lake.store import Lake, LocalLake, S3Lake

CATALOG_ENV = "TWEET_ASSETS_ICEBERG_CATALOG"
#: The namespace of the Iceberg tables: the Glue database of the Hive table (default ``default``).
DATABASE_ENV = "TWEET_ASSETS_GLUE_DATABASE"
#: The embedded catalog's file in a local lake's root, and its name.
EMBEDDED_FILE = "_iceberg_catalog.sqlite"
EMBEDDED_NAME = "tweet_assets"


class CatalogError(ValueError):
    """The Iceberg catalog cannot be used as configured; one line saying what to set."""


def catalog_name(env=None) -> str:
    """``TWEET_ASSETS_ICEBERG_CATALOG`` (stripped), ``""`` when unset: the embedded catalog."""
    env = os.environ if env is None else env
    return (env.get(CATALOG_ENV) or "").strip()


def database_name(env=None) -> str:
    """The Iceberg tables' namespace: ``TWEET_ASSETS_GLUE_DATABASE`` (the Hive table's Glue database) or ``default``."""
    from tweet_assets.schema import DEFAULT_DATABASE

    env = os.environ if env is None else env
    return (env.get(DATABASE_ENV) or "").strip() or DEFAULT_DATABASE


def _is_sqlite(conf: dict) -> bool:
    kind = str(conf.get("type") or "").lower()
    uri = str(conf.get("uri") or "").lower()
    return kind in ("in-memory", "in_memory") or (kind in ("", "sql") and uri.startswith("sqlite"))


def _refuse_sqlite(lake: Lake, what: str) -> None:
    if isinstance(lake, S3Lake):
        raise CatalogError(
            f"{what} cannot serve the s3:// lake {lake.url}: a SQLite file is one machine's, and every writer (each run, each "
            f"machine, the compliance job) must commit through the one catalog that holds the table's current metadata. Configure "
            f"a Glue or REST catalog in .pyiceberg.yaml or PYICEBERG_CATALOG__<NAME>__TYPE=glue and set {CATALOG_ENV}=<NAME>."
        )


def embedded_path(lake: Lake) -> str | None:
    """The embedded catalog's SQLite file of a local lake (None for an S3 lake)."""
    return os.path.join(lake.root, EMBEDDED_FILE) if isinstance(lake, LocalLake) else None


def open_catalog(lake: Lake, name: str | None = None, create: bool = True) -> Catalog | None:
    """The catalog named ``name`` (default ``TWEET_ASSETS_ICEBERG_CATALOG``), or the embedded
    SQLite catalog of a local ``lake`` when unset. The configuration is read when called (a
    variable set after pyiceberg was imported counts). An S3 FileIO without an ``s3.endpoint`` of its
    own gets the lake's endpoint (``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``) and region
    (``AWS_REGION``), as the lake does.

    ``create=False``: None instead of creating the embedded catalog's file when it does not exist
    yet (a reader must not leave a catalog behind).

    Raises:
        CatalogError: ``name`` is configured nowhere, or a SQLite catalog with an ``s3://`` lake.
    """
    name = catalog_name() if name is None else name.strip()
    if not name:
        _refuse_sqlite(lake, f"the embedded SQLite catalog ({CATALOG_ENV} unset)")
        path = embedded_path(lake)
        if not create and not os.path.exists(path):
            return None
        os.makedirs(lake.root, exist_ok=True)
        return SqlCatalog(EMBEDDED_NAME, uri=f"sqlite:///{path}", warehouse=f"file://{lake.root}")
    conf = Config().get_catalog_config(name)  # read now: pyiceberg's own copy is taken when it is imported
    if conf is None:
        raise CatalogError(
            f"{CATALOG_ENV}={name!r}: pyiceberg knows no catalog of that name (no catalog.{name.lower()} in .pyiceberg.yaml under "
            f"$PYICEBERG_HOME, ~ or the working directory, no PYICEBERG_CATALOG__{name.upper()}__TYPE): configure it there, "
            f"or unset {CATALOG_ENV} to use the embedded SQLite catalog of a local lake."
        )
    conf = dict(conf)
    if _is_sqlite(conf):
        _refuse_sqlite(lake, f"{CATALOG_ENV}={name!r} (a SQLite catalog, uri {conf.get('uri')!r})")
    if isinstance(lake, S3Lake):  # the lake's own endpoint and region, unless the catalog names its own
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if endpoint and "s3.endpoint" not in conf:
            conf["s3.endpoint"] = endpoint
        if region and "s3.region" not in conf:
            conf["s3.region"] = region  # pyiceberg otherwise asks S3 for the bucket's region
    return load_catalog(name, **conf)
