"""``TweetCollection``: one search, set of accounts, stream rule set, archive or sample, as its own
assets, checks, job, schedule and sensors (Dagster Components: a ``Component`` with a ``Resolvable``
model, instantiated from YAML under ``defs/``).

``tweet_assets/defs/<collection>/defs.yaml``::

    type: tweet_assets.TweetCollection
    attributes:
      name: brand                      # [a-z][a-z0-9_]*: key prefix, Dagit group, lake folder
      search:                          # exactly one of search, timelines, stream, replay, sample
        query: '"acme" -is:retweet'
        full_archive: false            # /2/tweets/search/all for days older than 7 days (Pro/Enterprise)
        context_annotations: true
      start_date: "2026-11-01"         # first daily partition (default TWEET_ASSETS_START_DATE)
      schedule: "15 0 * * *"           # cron (UTC) of <name>_daily_schedule, stopped by default
      table: acme_mentions             # warehouse table name (default: the collection's name)
      max_posts_per_run: 50000         # search/timelines: a run expected to read more is refused (default TWEET_ASSETS_MAX_POSTS_PER_RUN)
      table_format: iceberg            # hive or iceberg (default TWEET_ASSETS_TABLE_FORMAT, else hive)

The other sources: ``timelines: {accounts: [nasa, esa]}``, ``stream: {rules: [{value: ..., tag: ...}]}``,
``replay: {path: /data/archive}``, ``sample: {posts_per_day: 200}``. Secrets are never in the YAML:
``X_BEARER_TOKEN`` (…) stay environment variables, read as ``EnvVar``.

What it yields is described in :mod:`tweet_assets.components.factory`; ``dg check yaml`` validates
the attributes against this model (an unknown or misspelt attribute is an error naming the file,
line and attribute: the model forbids extra keys, as every Dagster ``Resolvable`` does).
"""


import re
from dataclasses import dataclass
from datetime import datetime

from dagster import Component, ComponentLoadContext, Definitions, Resolvable
from dagster.components import Scaffolder, ScaffoldRequest, scaffold_with
from dagster.components.component_scaffolding import scaffold_component

from tweet_assets.components.sources import SOURCE_ATTRIBUTES
from tweet_assets.defs.pipeline.layout import COLLECTION_NAME
from tweet_assets.tables import check_format

#: A collection's name: a key prefix, a Dagit group, a lake folder and a SQL identifier at once.
NAME_PATTERN = COLLECTION_NAME
#: Names taken by the environment's collection's lake folders and the shared objects.
RESERVED_NAMES = {"tweets", "raw_tweets", "clean_tweets", "raw_stream", "compliance", "compliance_ledger", "s3_parquet"}


class CollectionError(ValueError):
    """A collection's YAML is wrong; the message names the collection, the attribute and the fix."""


@dataclass
class SearchSettings(Resolvable):
    """Recent (or full-archive) search: ``GET /2/tweets/search/recent`` / ``/search/all``."""

    query: str
    full_archive: bool = False
    context_annotations: bool = True


@dataclass
class TimelinesSettings(Resolvable):
    """The posts of these accounts (usernames or numeric ids): ``GET /2/users/:id/tweets``."""

    accounts: list[str]


@dataclass
class StreamRule(Resolvable):
    """A filtered-stream rule; its tag is stored as ``tweet_assets:<collection>:<tag>``."""

    value: str
    tag: str | None = None


@dataclass
class StreamSettings(Resolvable):
    """Filtered-stream rules; the one consumer (``tweet-assets stream``) serves every collection's."""

    rules: list[StreamRule]


@dataclass
class ReplaySettings(Resolvable):
    """A twarc2 JSON-lines file or directory (absolute, or relative to the working directory)."""

    path: str


@dataclass
class SampleSettings(Resolvable):
    """Generated posts (no credentials): ``posts_per_day`` per UTC day."""

    posts_per_day: int = 200


class TweetCollectionScaffolder(Scaffolder):
    """``dg scaffold defs tweet_assets.TweetCollection <name>``: a ``defs.yaml`` for a sample
    collection named after its folder, to edit (swap ``sample`` for ``search`` …)."""

    def scaffold(self, request: ScaffoldRequest) -> None:
        name = request.target_path.name
        scaffold_component(
            request,
            {"name": name, "sample": {"posts_per_day": 200}, "start_date": datetime.now().strftime("%Y-%m-01"), "schedule": "15 0 * * *"},
        )


@scaffold_with(TweetCollectionScaffolder)
@dataclass
class TweetCollection(Component, Resolvable):
    """One collection: its own ``[<name>, raw_tweets|clean_tweets|tweets]`` assets, group, checks,
    ``<name>_daily_job``, ``<name>_daily_schedule`` (stopped), sensors and lake folder ``<name>/``.

    Raises (when the code location loads, ``dg check defs``):
        CollectionError: a bad name, not exactly one source, a bad ``start_date`` or ``schedule``.
    """

    name: str
    search: SearchSettings | None = None
    timelines: TimelinesSettings | None = None
    stream: StreamSettings | None = None
    replay: ReplaySettings | None = None
    sample: SampleSettings | None = None
    start_date: str | None = None
    schedule: str | None = None
    table: str | None = None
    max_posts_per_run: int | None = None
    table_format: str | None = None

    def __post_init__(self) -> None:
        if not NAME_PATTERN.fullmatch(self.name or ""):
            raise CollectionError(f"collection name {self.name!r}: use lower-case letters, digits and _ (a letter first, at most 63), e.g. brand_mentions.")
        if self.name in RESERVED_NAMES:
            raise CollectionError(f"collection name {self.name!r} is taken by the environment's collection or a shared object: choose another.")
        sources = [a for a in SOURCE_ATTRIBUTES if getattr(self, a) is not None]
        if len(sources) != 1:
            given = ", ".join(sources) or "none"
            raise CollectionError(f"collection {self.name!r}: set exactly one of {', '.join(SOURCE_ATTRIBUTES)} (given: {given}).")
        if self.start_date is not None:
            try:
                datetime.strptime(str(self.start_date), "%Y-%m-%d")
            except ValueError:
                raise CollectionError(f"collection {self.name!r}: start_date {self.start_date!r} is not YYYY-MM-DD.") from None
            self.start_date = str(self.start_date)
        if self.schedule is not None:
            from dagster._utils.schedules import is_valid_cron_string

            if not is_valid_cron_string(self.schedule):
                raise CollectionError(f"collection {self.name!r}: schedule {self.schedule!r} is not a cron string (e.g. '15 0 * * *', UTC).")
        if self.table is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,127}", self.table):
            raise CollectionError(f"collection {self.name!r}: table {self.table!r} is not a SQL identifier (letters, digits, _).")
        if self.max_posts_per_run is not None and (isinstance(self.max_posts_per_run, bool) or not isinstance(self.max_posts_per_run, int) or self.max_posts_per_run < 1):
            raise CollectionError(f"collection {self.name!r}: max_posts_per_run {self.max_posts_per_run!r} is not a whole number of posts >= 1.")
        if self.table_format is not None:
            try:
                self.table_format = check_format(self.table_format, f"collection {self.name!r}: table_format")
            except ValueError as exc:
                raise CollectionError(str(exc)) from None
        if self.search is not None and not self.search.query.strip():
            raise CollectionError(f"collection {self.name!r}: search.query is empty.")
        if self.timelines is not None and not [a for a in self.timelines.accounts if a.strip()]:
            raise CollectionError(f"collection {self.name!r}: timelines.accounts is empty.")
        if self.stream is not None and not self.stream.rules:
            raise CollectionError(f"collection {self.name!r}: stream.rules is empty.")

    @property
    def source_kind(self) -> str:
        """``search``, ``timelines``, ``stream``, ``replay`` or ``sample``."""
        return next(a for a in SOURCE_ATTRIBUTES if getattr(self, a) is not None)

    def build_defs(self, context: ComponentLoadContext) -> Definitions:
        from tweet_assets.components.factory import collection_defs

        return collection_defs(self)
