"""Running the code location's jobs from the command line: in process, recorded in the Dagster
instance at ``DAGSTER_HOME`` (so Dagit shows the runs), quiet unless ``--verbose``.

Every command that runs a job (``demo``, ``materialize``, ``replay``) goes through :func:`execute`.
"""

from __future__ import annotations

import os

from tweet_assets.cli.output import print_warnings

#: Dagster's console logger off below ERROR: the event log stays in DAGSTER_HOME (Dagit shows it);
#: ``--verbose`` prints it as well (Dagster docs, "Loggers": ``loggers.console.config.log_level``).
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
SILENT_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}

#: What the commands write to a new ``DAGSTER_HOME`` (as deploy/dagster.yaml: no telemetry).
DAGSTER_YAML = "# written by tweet-assets on first use (deploy/dagster.yaml is the production one)\ntelemetry:\n  enabled: false\n"


def ensure_dagster_home() -> str:
    """``DAGSTER_HOME`` (default ``./.dagster_home``), created, with a ``dagster.yaml`` (telemetry off)
    written when absent, so Dagster never warns "No dagster instance configuration file"."""
    home = os.environ.setdefault("DAGSTER_HOME", os.path.abspath(".dagster_home"))
    os.makedirs(home, exist_ok=True)
    config = os.path.join(home, "dagster.yaml")
    if not os.path.exists(config):
        with open(config, "w") as out:
            out.write(DAGSTER_YAML)
    return home


def daily_job(job=None):
    """``job``, or the code location's ``tweets_daily_job`` (a collection passes its own)."""
    if job is not None:
        return job
    from tweet_assets.definitions import defs

    return defs.resolve_job_def("tweets_daily_job")


def execute(job, instance, *, verbose: bool = False, quiet_config=QUIET_RUN_CONFIG, **kwargs):
    """One in-process run of ``job`` in ``instance``: Dagster's console log only with ``verbose``;
    ``kwargs`` go to ``execute_in_process`` (``tags``, ``partition_key``, ``raise_on_error``).
    Returns the ``ExecuteInProcessResult``."""
    return job.execute_in_process(instance=instance, run_config={} if verbose else quiet_config, **kwargs)


def run_job(start: str, end: str, verbose: bool = False, job=None):
    """Run ``tweets_daily_job`` for partitions ``start…end`` (inclusive) as one run, in process,
    recorded in the Dagster instance at ``DAGSTER_HOME`` (so Dagit shows it).

    Returns the ``ExecuteInProcessResult``. Raises ``dagster.DagsterError`` subclasses on failure.
    """
    from dagster import DagsterInstance
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    job = daily_job(job)  # or a collection's (--collection)
    with DagsterInstance.get() as instance:
        result = execute(job, instance, verbose=verbose, tags={ASSET_PARTITION_RANGE_START_TAG: start, ASSET_PARTITION_RANGE_END_TAG: end})
        print_warnings(instance, [result.run_id])
        return result


def materialize_day(day: str, select: list[str] | None = None, verbose: bool = False, job=None):
    """Run ``tweets_daily_job`` (or a collection's job) for partition ``day`` (``YYYY-MM-DD``, UTC), in
    process, recorded in the Dagster instance at ``DAGSTER_HOME``: the assets named in ``select``
    (asset keys as ``raw_tweets`` or ``<collection>/raw_tweets``; default all of the job's) with the
    job's checks of them. The job leaves out the WARN freshness check of ``s3_parquet`` (it judges
    "yesterday" on its own sensor), which Dagster's ``dagster asset materialize`` (the implicit asset
    job: every check of the asset) would run.

    Returns the ``ExecuteInProcessResult`` (``raise_on_error=False``: a failed step is
    ``result.success == False``, its error in the run's event log).

    Raises:
        LookupError: a name in ``select`` is not an asset of the job (the message lists the job's).
    """
    from dagster import DagsterInstance

    job = daily_job(job)
    keys = {key.to_user_string(): key for key in job.asset_layer.executable_asset_keys}
    selection = None
    if select:
        selection = []
        for name in select:
            matches = [key for text, key in keys.items() if text == name or text.rsplit("/", 1)[-1] == name]
            if len(matches) != 1:
                raise LookupError(f"{name!r} is not an asset of {job.name}: choose from {', '.join(sorted(keys))}")
            selection.append(matches[0])
    if selection:  # the job's own checks of the selected assets (a subset by assets alone gets every check of them)
        chosen = set(selection)
        checks = {key for key in job.asset_layer.asset_graph.asset_check_keys if key.asset_key in chosen}
        job = job.get_subset(asset_selection=chosen, asset_check_selection=checks)
    with DagsterInstance.get() as instance:
        # a failure is printed by the caller, in one line
        result = execute(job, instance, verbose=verbose, quiet_config=SILENT_RUN_CONFIG, partition_key=day, raise_on_error=False)
        if result.success:  # a failed run's own lines ("Execution of step ... failed") say less than its error
            print_warnings(instance, [result.run_id])
        return result
