"""Replay a sparse archive from Dagit: ``replay_archive_sensor`` requests the runs of
:func:`tweet_assets.sources.replay_plan.plan_runs` for the archive at ``TWEET_ASSETS_REPLAY_DIR``.

It exists only with ``TWEET_ASSETS_SOURCE=replay`` (:func:`replay`). Turn it on in Dagit
(Automation → ``replay_archive_sensor``; stopped by default, as Dagster's sensors are): at its next tick it reads the archive's days
(:meth:`ReplaySource.days`) and requests one ``tweets_daily_job`` run per planned range, each a
single-run backfill of that partition range (Dagster's partition-range tags), tagged
``tweet_assets/replay=archive``. The run key is the range and its post count, so a range is
requested once, and again only when the archive gained posts in it (files added). The days between
the ranges are never requested: they stay unmaterialized (unknown) in Dagit. Turn it off when the
archive is done; the daemon (``dagster dev`` runs one) launches the runs.

Sensor ticks have a time limit (Dagster's default 60 s): reading the days of ~10k posts takes a
few seconds; for an archive of millions of posts use ``tweet-assets replay PATH`` instead.
"""

from __future__ import annotations

import os

from dagster import Definitions, DefaultSensorStatus, RunRequest, SensorEvaluationContext, SensorResult, SkipReason, definitions, sensor
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from tweet_assets.partitions import start_date
from tweet_assets.sources.replay_plan import DEFAULT_MAX_GAP_DAYS, DEFAULT_MAX_RUN_DAYS, archive_days, describe_plan, plan_runs
from tweet_assets.sources.base import PostSource
from tweet_assets.defs.pipeline.layout import with_resource_key

#: Seconds between two readings of the archive.
SENSOR_INTERVAL_S = 300
REPLAY_TAG = "tweet_assets/replay"


def replay_sensor(name: str = "replay_archive_sensor", job_name: str = "tweets_daily_job", source_key: str = "source", first_day: str | None = None, setting: str = "TWEET_ASSETS_SOURCE=replay and TWEET_ASSETS_REPLAY_DIR"):
    """The replay sensor of one collection: ``name`` requests runs of ``job_name`` for the archive
    of the replay source bound at ``source_key``, none before ``first_day`` (default: ``start_date()``)."""

    sensor_def = sensor(
        job_name=job_name,
        name=name,
        minimum_interval_seconds=SENSOR_INTERVAL_S,
        default_status=DefaultSensorStatus.STOPPED,
        description=(
            f"Replays the twarc2 archive of the replay source ({setting}): one run per range of "
            f"nearby days with posts (gaps up to {DEFAULT_MAX_GAP_DAYS} days), each requested once; the other days stay unmaterialized."
        ),
    )

    def replay_archive(context: SensorEvaluationContext, source: PostSource):
        return replay_archive_runs(context, source, first_day or start_date(), setting)

    return sensor_def(with_resource_key(replay_archive, "source", source_key))


def replay_archive_runs(context: SensorEvaluationContext, source: PostSource, first_day: str, setting: str = "TWEET_ASSETS_SOURCE=replay and TWEET_ASSETS_REPLAY_DIR"):
    """Request the planned runs of the replay source's archive; skip (saying why) for other sources.

    Returns a :class:`SensorResult` of ``RunRequest`` s (run key ``replay <start>...<end> <posts>``)
    or a :class:`SkipReason`.
    """
    path = getattr(source, "path", None)
    if source.source_name != "replay" or not path:
        return SkipReason(f"the source is {source.source_name!r}: set {setting} to replay an archive")
    try:
        days = archive_days(path, context.log)
        runs = plan_runs(days, max_gap_days=DEFAULT_MAX_GAP_DAYS, max_run_days=DEFAULT_MAX_RUN_DAYS, first_day=first_day)
    except (FileNotFoundError, ValueError) as exc:
        return SkipReason(str(exc))
    context.log.info(f"{path}: {describe_plan(days, runs)}")
    return SensorResult(
        run_requests=[
            RunRequest(
                run_key=f"replay {r.start}...{r.end} {r.posts}",
                tags={ASSET_PARTITION_RANGE_START_TAG: r.start, ASSET_PARTITION_RANGE_END_TAG: r.end, REPLAY_TAG: "archive"},
            )
            for r in runs
        ]
    )


replay_archive_sensor = replay_sensor()


def replay_configured(env: dict | None = None) -> bool:
    """True when the environment's source is a replay (``TWEET_ASSETS_SOURCE=replay``)."""
    env = os.environ if env is None else env
    return env.get("TWEET_ASSETS_SOURCE", "").strip().lower() == "replay"


@definitions
def replay() -> Definitions:
    """``replay_archive_sensor`` when the source is a replay (:func:`replay_configured`), else
    nothing: a sensor that could only ever skip ("the source is 'sample'") was listed on every
    pipeline asset of a deployment without a replay (issue #39 point 3), as ``raw_stream`` once was."""
    return Definitions(sensors=[replay_archive_sensor]) if replay_configured() else Definitions()
