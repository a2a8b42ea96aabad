"""Where one collection's pipeline lives: its asset keys, Dagit group, lake tables, source resource
key and partitions (:class:`PipelineLayout`); the builders of ``assets.py`` and ``checks.py`` take one.

The environment's collection (:data:`ENVIRONMENT`, no collection YAML needed) keeps the keys and
paths the project always had::

    raw_tweets, clean_tweets, s3_parquet        <lake>/raw_tweets/dt=…, <lake>/clean_tweets/dt=…, <lake>/tweets/dt=…

A collection ``<name>`` (tweet_assets.components.TweetCollection) gets its own::

    [<name>, raw_tweets], [<name>, clean_tweets], [<name>, tweets]
    <lake>/<name>/raw_tweets/dt=…, <lake>/<name>/clean_tweets/dt=…, <lake>/<name>/tweets/dt=…

The one IO manager writes there from each asset's ``lake/table`` metadata (tweet_assets.lake.io_manager);
what stays shared: the ``x_api`` pool, the compliance ledger (``clean_tweets/_compliance_ledger``), the lake.
"""

from __future__ import annotations

import functools
import inspect
import re
import typing
from dataclasses import dataclass, field
from typing import Callable

from dagster import AssetKey, PartitionsDefinition

from tweet_assets.partitions import daily_partitions
from tweet_assets.tables import table_format

#: Metadata key naming an asset's collection (every collection asset carries it).
COLLECTION_METADATA = "tweet_assets/collection"
#: A collection's name (tweet_assets.components.TweetCollection checks it).
COLLECTION_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
#: The environment's collection: its name in docs, CLI and stream rule tags.
ENVIRONMENT_NAME = "tweets"


@dataclass(frozen=True)
class PipelineLayout:
    """One collection's names. ``name`` None: the environment's collection (unprefixed keys).

    Attributes:
        name: the collection (``[a-z][a-z0-9_]*``), or None for the environment's.
        partitions_def: the collection's daily UTC partitions (its ``start_date``).
        warehouse_table: the table name in every warehouse's DDL (default: the collection's name).
        table_format: ``hive`` or ``iceberg`` (default ``TWEET_ASSETS_TABLE_FORMAT``; tweet_assets.tables).
    """

    name: str | None = None
    partitions_def: PartitionsDefinition = daily_partitions
    warehouse_table: str = ENVIRONMENT_NAME
    extra_metadata: dict = field(default_factory=dict)
    table_format: str = field(default_factory=table_format)

    @property
    def key_prefix(self) -> list[str] | None:
        return [self.name] if self.name else None

    @property
    def group(self) -> str:
        return self.name or ENVIRONMENT_NAME

    @property
    def source_key(self) -> str:
        """The resource key of the collection's source: ``source`` or ``source__<name>``."""
        return f"source__{self.name}" if self.name else "source"

    @property
    def published_name(self) -> str:
        return "tweets" if self.name else "s3_parquet"

    @property
    def lake_prefix(self) -> str:
        """``""`` or ``"<name>/"``: the collection's folder in the lake."""
        return f"{self.name}/" if self.name else ""

    @property
    def job_name(self) -> str:
        return f"{self.name}_daily_job" if self.name else "tweets_daily_job"

    @property
    def metadata(self) -> dict:
        """Definition metadata every asset of the collection carries (none for the environment's)."""
        return {COLLECTION_METADATA: self.name, **self.extra_metadata} if self.name else {}

    def key(self, asset: str) -> AssetKey:
        """The key of ``asset`` (``raw_tweets``, ``clean_tweets`` or the published name) here."""
        if asset == "s3_parquet":
            asset = self.published_name
        return AssetKey([*(self.key_prefix or []), asset])

    def table(self, table: str) -> str:
        """The lake folder of ``table`` (``raw_tweets``, ``clean_tweets``, ``tweets``, ``raw_stream``)."""
        return f"{self.lake_prefix}{table}"


ENVIRONMENT = PipelineLayout()


def with_resource_key(fn: Callable, param: str, resource_key: str) -> Callable:
    """``fn`` with its parameter ``param`` renamed ``resource_key`` in its signature, so that
    Dagster binds the resource of that key (e.g. ``source__<collection>``) where ``fn`` takes
    ``param``; ``fn`` itself when the two are the same. Dagster reads a function's resources from
    its parameters' names and annotations (``inspect.signature``)."""
    if param == resource_key:
        return fn
    hints = typing.get_type_hints(fn)  # resolved in fn's module: string annotations would be read in this one
    signature = inspect.signature(fn)
    parameters = [
        p.replace(name=resource_key if p.name == param else p.name, annotation=hints.get(p.name, p.annotation)) for p in signature.parameters.values()
    ]

    @functools.wraps(fn)
    def renamed(*args, **kwargs):
        kwargs[param] = kwargs.pop(resource_key)
        return fn(*args, **kwargs)

    renamed.__signature__ = signature.replace(parameters=parameters)
    annotations = dict(hints)
    if param in annotations:
        annotations[resource_key] = annotations.pop(param)
    renamed.__annotations__ = annotations
    del renamed.__wrapped__  # inspect.signature would follow it back to the old name
    return renamed


def lake_table(key: AssetKey) -> str:
    """The lake folder of a pipeline asset: ``tweets`` for ``s3_parquet``, else its key's path
    (``raw_tweets``, ``<collection>/tweets`` …), which is what its ``lake/table`` metadata says."""
    return "tweets" if key == AssetKey("s3_parquet") else "/".join(key.path)


def asset_metadata(context, key: AssetKey) -> dict:
    """The definition metadata of asset ``key`` as the running job knows it (a check's job holds the
    checked asset; ``context``: an asset or asset check execution context); ``{}`` when unknown."""
    op_context = getattr(context, "op_execution_context", context)
    graph = op_context.job_def.asset_layer.asset_graph
    return dict(graph.get(key).metadata or {}) if graph.has(key) else {}


def checked_asset(context) -> tuple[AssetKey, str]:
    """The asset an asset check runs on (``context``: an ``AssetCheckExecutionContext``) and its
    lake table (:func:`lake_table`), so one check body serves every collection."""
    key = context.check_specs[0].asset_key
    return key, lake_table(key)


@dataclass(frozen=True)
class PublishedCollection:
    """A collection's published asset as compliance sees it: its key, its lake folder (``""`` for
    the environment's) and its filtered-stream segments' prefix inside that folder, if any."""

    key: AssetKey
    prefix: str
    stream_prefix: str | None


def published_collections(instance, environment_stream: bool = False) -> list[PublishedCollection]:
    """The environment's collection (``s3_parquet``; its stream segments when ``environment_stream``)
    and every collection that has published in this Dagster ``instance`` (an asset
    ``[<collection>, tweets]`` in its catalog), sorted by name. A collection's stream segments
    (``<collection>/raw_stream/``) are always included: a folder without any costs one listing per day."""
    found = [PublishedCollection(AssetKey("s3_parquet"), "", "raw_stream" if environment_stream else None)]
    for key in sorted(instance.get_asset_keys(), key=lambda k: k.to_user_string()):
        if len(key.path) == 2 and key.path[1] == "tweets" and COLLECTION_NAME.fullmatch(key.path[0]):
            found.append(PublishedCollection(key, key.path[0], "raw_stream"))
    return found
