"""The Dagster objects of one collection, built from the same bodies as the environment's collection.

For a :class:`~tweet_assets.components.TweetCollection` named ``<name>``:

- assets ``[<name>, raw_tweets]`` → ``[<name>, clean_tweets]`` → ``[<name>, tweets]`` in Dagit group
  ``<name>``, stored at ``<lake>/<name>/raw_tweets/dt=…``, ``<lake>/<name>/clean_tweets/dt=…``,
  ``<lake>/<name>/tweets/dt=…`` (the builders of ``defs/pipeline/assets.py``; ``raw_tweets`` in the
  shared ``x_api`` pool);
- the asset checks of ``defs/pipeline/checks.py`` and ``published_ids_not_in_ledger``, on the
  collection's assets and partitions; a partition freshness check on ``[<name>, tweets]`` and its
  sensor ``<name>_freshness_sensor``;
- ``<name>_daily_job`` and ``<name>_daily_schedule`` (the collection's ``schedule`` cron, UTC,
  default ``15 0 * * *``, stopped by default), ``<name>_replay_archive_sensor`` for a replay collection;
- the resource ``source__<name>`` (tweet_assets.components.sources).

Shared with every collection (not built here): the lake and IO manager, the compliance job and ledger
(tweet_assets.defs.compliance.assets removes a deleted post from every collection), the stream consumer.
"""

from __future__ import annotations

import warnings

from dagster import (
    AssetCheckSeverity,
    AssetChecksDefinition,
    AssetSelection,
    DailyPartitionsDefinition,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    Definitions,
    SupersessionWarning,
    asset_check,
    RunRequest,
    SkipReason,
    schedule,
    build_sensor_for_freshness_checks,
    build_time_partition_freshness_checks,
    define_asset_job,
)

from tweet_assets.components.sources import source_resource
from tweet_assets.defs.compliance import assets as compliance
from tweet_assets.defs.pipeline import assets as pipeline
from tweet_assets.defs.pipeline import checks
from tweet_assets.defs.pipeline import freshness
from tweet_assets.defs.pipeline.layout import PipelineLayout
from tweet_assets.defs.pipeline.partition_checks import own_output
from tweet_assets.defs.replay import sensor as replay
from tweet_assets.partitions import DAY_FORMAT, start_date

DEFAULT_CRON = "15 0 * * *"
#: The environment's checks, rebuilt for each collection (their bodies find the checked asset in their context).
PIPELINE_CHECKS = ("ids_unique_and_not_null", "created_at_in_partition", "published_schema_matches", "raw_posts_match_api_count")


def layout_of(collection) -> PipelineLayout:
    """The :class:`PipelineLayout` of ``collection``: its name, partitions from ``start_date``, warehouse table and table format."""
    partitions = DailyPartitionsDefinition(start_date=collection.start_date or start_date(), timezone="UTC", fmt=DAY_FORMAT)
    extra = {"tweet_assets/source": collection.source_kind}
    formats = {"table_format": collection.table_format} if collection.table_format else {}  # else the deployment's
    return PipelineLayout(name=collection.name, partitions_def=partitions, warehouse_table=collection.table or collection.name, extra_metadata=extra, **formats)


def rebuild_check(check: AssetChecksDefinition, layout: PipelineLayout) -> AssetChecksDefinition:
    """``check`` (one ``@asset_check`` of the environment's collection) on ``layout``'s asset of the
    same name and partitions: the same function, description and blocking."""
    spec = next(iter(check.check_specs))
    fn = check.node_def.compute_fn.decorated_fn  # the decorated function itself (Dagster's DecoratedOpFunction)
    target = layout.key(spec.asset_key.path[-1])
    upstream = {name: key for name, key in check.keys_by_input_name.items() if key != spec.asset_key}
    from dagster import AssetIn

    rebuilt = asset_check(
        asset=target,
        name=spec.name,
        blocking=spec.blocking,
        description=spec.description,
        partitions_def=layout.partitions_def if spec.partitions_def is not None else None,
        additional_ins={name: AssetIn(key=layout.key(key.path[-1])) for name, key in upstream.items()} or None,
    )(fn)
    return own_output(rebuilt) if spec.blocking else rebuilt  # one job snapshot in every process (partition_checks.own_output)


def daily_schedule(job, layout: PipelineLayout, cron: str):
    """``<name>_daily_schedule``: at each tick of ``cron`` (UTC), a run of the last complete day
    (the partition that ended before the tick; Dagster's ``build_schedule_from_partitioned_job``
    takes no cron of its own for a daily-partitioned job). Stopped by default."""

    @schedule(
        name=f"{layout.group}_daily_schedule",
        cron_schedule=cron,
        job=job,
        execution_timezone="UTC",
        default_status=DefaultScheduleStatus.STOPPED,
        description=f"{layout.group}: the last complete UTC day at '{cron}' (UTC).",
    )
    def _schedule(context):
        day = layout.partitions_def.get_last_partition_key(current_time=context.scheduled_execution_time)
        if day is None:
            return SkipReason(f"no complete day yet: the collection starts on {layout.partitions_def.start:%Y-%m-%d}")
        return RunRequest(run_key=day, partition_key=day)

    return _schedule


def collection_defs(collection) -> Definitions:
    """Every Dagster object of ``collection`` (see the module docstring)."""
    layout = layout_of(collection)
    name = collection.name
    assets = [pipeline.raw_tweets_asset(layout), pipeline.clean_tweets_asset(layout), pipeline.s3_parquet_asset(layout)]
    published = assets[-1]
    asset_checks = [rebuild_check(getattr(checks, c), layout) for c in PIPELINE_CHECKS]
    asset_checks.append(rebuild_check(compliance.published_ids_not_in_ledger, layout))
    with warnings.catch_warnings():  # "superseded" in Dagster 1.13: see defs/pipeline/freshness.py for why these
        warnings.simplefilter("ignore", SupersessionWarning)
        freshness_checks = list(
            build_time_partition_freshness_checks(assets=[published], deadline_cron=freshness.DEADLINE_CRON, timezone="UTC", severity=AssetCheckSeverity.WARN)
        )
        sensors = [
            build_sensor_for_freshness_checks(
                freshness_checks=freshness_checks,
                minimum_interval_seconds=freshness.SENSOR_INTERVAL_S,
                name=f"{name}_freshness_sensor",
                default_status=DefaultSensorStatus.STOPPED,
            )
        ]
    job = define_asset_job(
        layout.job_name,
        selection=AssetSelection.assets(*assets) - AssetSelection.checks(*freshness_checks),
        description=f"{name}: raw_tweets → clean_tweets → tweets for the selected day(s).",
    )
    schedule = daily_schedule(job, layout, collection.schedule or DEFAULT_CRON)
    if collection.source_kind == "replay":
        sensors.append(
            replay.replay_sensor(
                name=f"{name}_replay_archive_sensor",
                job_name=layout.job_name,
                source_key=layout.source_key,
                first_day=collection.start_date,
                setting=f"replay.path in the YAML of collection {name}",
            )
        )
    return Definitions(
        assets=assets,
        asset_checks=[*asset_checks, *freshness_checks],
        jobs=[job],
        schedules=[schedule],
        sensors=sensors,
        resources={layout.source_key: source_resource(collection)},
    )
