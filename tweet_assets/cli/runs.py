"""Running the code location's jobs from the command line: in process, recorded in the Dagster
instance at ``DAGSTER_HOME`` as runs of the code location's own job (so Dagit files them under the
job, on its Overview timeline, and re-executes them as its own), quiet unless ``--verbose``.

Every command that runs a job (``demo``, ``materialize``, ``replay``) goes through :func:`execute`.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path

from tweet_assets.cli.output import print_warnings

#: Dagster's console logger off below ERROR: the event log stays in DAGSTER_HOME (Dagit shows it);
#: ``--verbose`` prints it as well (Dagster docs, "Loggers": ``loggers.console.config.log_level``).
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
SILENT_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}

#: What the commands write to a new ``DAGSTER_HOME`` (as deploy/dagster.yaml: no telemetry).
DAGSTER_YAML = "# written by tweet-assets on first use (deploy/dagster.yaml is the production one)\ntelemetry:\n  enabled: false\n"

#: The code location's name: ``[tool.dg.project] code_location_name`` and ``workspace.yaml``'s
#: ``location_name``, the name Dagit files runs under (tests/test_cli.py checks they agree).
LOCATION_NAME = "tweet_assets"
#: The module Dagit loads the code location from (``[tool.dg.project] code_location_target_module``).
LOCATION_MODULE = "tweet_assets.definitions"
#: The repository of a module-level ``Definitions`` (Dagster's ``SINGLETON_REPOSITORY_NAME``).
REPOSITORY_NAME = "__repository__"
#: The checkout (or install) root: the code location's working directory, as Dagit's.
PROJECT_ROOT = Path(__file__).resolve().parents[2]


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


def own_job(job):
    """The code location's job named as ``job`` when it has one (a collection under ``defs/`` has
    ``<name>_daily_job`` there too), else ``job`` itself: what :func:`execute` records as a run of
    the code location."""
    from tweet_assets.definitions import defs

    repository = defs.get_repository_def()
    return repository.get_job(job.name) if repository.has_job(job.name) else job


@contextmanager
def code_location(instance):
    """The code location as Dagit loads it (module ``tweet_assets.definitions``, location
    ``tweet_assets``, repository ``__repository__``), loaded in this process: its remote jobs carry
    the snapshot Dagit shows and the origin Dagit files runs under. Rule: Dagster's own
    ``dagster job launch`` (``dagster/_cli/job.py``, ``_create_run``) builds a run from a
    workspace's ``CodeLocation`` the same way; ``InProcessCodeLocationOrigin`` is such a location
    without a gRPC server. Yields an ``InProcessCodeLocation``."""
    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

    origin = InProcessCodeLocationOrigin(
        loadable_target_origin=LoadableTargetOrigin(executable_path=sys.executable, module_name=LOCATION_MODULE, working_directory=str(PROJECT_ROOT)),
        location_name=LOCATION_NAME,
    )
    with origin.create_location(instance) as location:
        yield location


def is_location_job(job) -> bool:
    """Whether ``job`` (a ``JobDefinition``) is the code location's own job, the one Dagit shows;
    a job built here (a collection replaying another archive) is not."""
    from tweet_assets.definitions import defs

    repository = defs.get_repository_def()
    return repository.has_job(job.name) and repository.get_job(job.name) is job


def execute(job, instance, *, verbose: bool = False, quiet_config=QUIET_RUN_CONFIG, tags=None, partition_key=None,
            raise_on_error: bool = True, asset_selection=None, asset_check_selection=None, location=None):
    """One in-process run of ``job`` (a ``JobDefinition``) in ``instance``.

    The code location's own job (:func:`is_location_job`) is recorded as Dagit records its own
    launches: the job snapshot Dagit loads and the remote origin naming location ``tweet_assets``
    and repository ``__repository__`` (``instance.create_run``), then executed here by Dagster's
    ``execute_run`` on the code location's in-process executor: no daemon, no run launcher. So
    Dagit's Overview timeline lists the run under its job and "Re-execute" launches the same job
    without a version warning. ``asset_selection`` (asset keys) and ``asset_check_selection``
    (check keys) run a subset, recorded as Dagit records one (its parent snapshot is the whole job).
    ``location``: a :func:`code_location` already loaded (one per command; else one is loaded).

    Another job (built here) runs through ``execute_in_process`` as before: Dagit has no job to
    file it under. Dagster's console log only with ``verbose``; ``tags`` and ``partition_key`` (a
    day, ``YYYY-MM-DD``) are the run's.

    Returns Dagster's ``ExecutionResult`` (``success``, ``run_id``, ``all_events``,
    ``get_asset_check_evaluations()``, ``job_def``). Raises on a failed step unless
    ``raise_on_error=False``."""
    run_config = {} if verbose else quiet_config
    if not is_location_job(job):
        if asset_selection is not None or asset_check_selection is not None:
            job = job.get_subset(asset_selection=set(asset_selection or ()), asset_check_selection=set(asset_check_selection) if asset_check_selection is not None else None)
        return job.execute_in_process(instance=instance, run_config=run_config, tags=tags, partition_key=partition_key, raise_on_error=raise_on_error)
    if location is None:
        with code_location(instance) as loaded:
            return _execute_location_job(job, instance, loaded, run_config, tags, partition_key, raise_on_error, asset_selection, asset_check_selection)
    return _execute_location_job(job, instance, location, run_config, tags, partition_key, raise_on_error, asset_selection, asset_check_selection)


def _execute_location_job(job, instance, location, run_config, tags, partition_key, raise_on_error, asset_selection, asset_check_selection):
    """Create the run as ``dagster job launch`` does (``_create_run``: the remote job's snapshot,
    its execution plan's, both origins), then ``execute_run`` it in this process."""
    from dagster._core.definitions.selector import JobSubsetSelector
    from dagster._core.execution.api import execute_run
    from dagster._core.execution.execute_in_process import merge_run_tags

    repository = location.get_repository(REPOSITORY_NAME)
    remote_job = location.get_job(
        JobSubsetSelector(location_name=location.name, repository_name=REPOSITORY_NAME, job_name=job.name, op_selection=None,
                          asset_selection=asset_selection, asset_check_selection=asset_check_selection)
    )
    plan = location.get_execution_plan(remote_job, run_config, step_keys_to_execute=None, known_state=None, instance=instance)
    # the job's tags, the partition's (validated against the job's partitions) and the caller's
    run_tags = merge_run_tags(job_def=job, partition_key=partition_key, tags=tags, asset_selection=list(asset_selection) if asset_selection else None,
                              instance=instance, run_config=run_config)
    run = instance.create_run(
        job_name=job.name,
        run_id=None,
        run_config=run_config,
        status=None,
        tags=run_tags,
        root_run_id=None,
        parent_run_id=None,
        step_keys_to_execute=plan.execution_plan_snapshot.step_keys_to_execute,
        execution_plan_snapshot=plan.execution_plan_snapshot,
        job_snapshot=remote_job.job_snapshot,
        parent_job_snapshot=remote_job.parent_job_snapshot,
        asset_selection=remote_job.asset_selection,
        asset_check_selection=remote_job.asset_check_selection,
        resolved_op_selection=remote_job.resolved_op_selection,
        op_selection=None,
        remote_job_origin=remote_job.get_remote_origin(),
        job_code_origin=remote_job.get_python_origin(),
        asset_graph=repository.asset_graph,
    )
    return execute_run(location.get_reconstructable_job(REPOSITORY_NAME, job.name), run, instance, raise_on_error=raise_on_error)


def run_job(start: str, end: str, verbose: bool = False, job=None):
    """Run ``tweets_daily_job`` for partitions ``start…end`` (inclusive) as one run, in process,
    recorded in the Dagster instance at ``DAGSTER_HOME`` as a run of the code location's job.

    Returns the ``ExecutionResult``. Raises ``dagster.DagsterError`` subclasses on failure.
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
    process, recorded in the Dagster instance at ``DAGSTER_HOME`` as a run of the code location's
    job: the assets named in ``select`` (asset keys as ``raw_tweets`` or ``<collection>/raw_tweets``;
    default all of the job's) with the job's checks of them. The job leaves out the WARN freshness
    check of ``s3_parquet`` (it judges "yesterday" on its own sensor), which Dagster's ``dagster
    asset materialize`` (the implicit asset job: every check of the asset) would run.

    Returns the ``ExecutionResult`` (``raise_on_error=False``: a failed step is
    ``result.success == False``, its error in the run's event log).

    Raises:
        LookupError: a name in ``select`` is not an asset of the job (the message lists the job's).
    """
    from dagster import DagsterInstance

    job = daily_job(job)
    keys = {key.to_user_string(): key for key in job.asset_layer.executable_asset_keys}
    selection = checks = None
    if select:
        selection = []
        for name in select:
            matches = [key for text, key in keys.items() if text == name or text.rsplit("/", 1)[-1] == name]
            if len(matches) != 1:
                raise LookupError(f"{name!r} is not an asset of {job.name}: choose from {', '.join(sorted(keys))}")
            selection.append(matches[0])
        # the job's own checks of the selected assets (a subset by assets alone gets every check of them)
        checks = {key for key in job.asset_layer.asset_graph.asset_check_keys if key.asset_key in set(selection)}
    with DagsterInstance.get() as instance:
        # a failure is printed by the caller, in one line
        result = execute(job, instance, verbose=verbose, quiet_config=SILENT_RUN_CONFIG, partition_key=day, raise_on_error=False,
                         asset_selection=selection, asset_check_selection=checks)
        if result.success:  # a failed run's own lines ("Execution of step ... failed") say less than its error
            print_warnings(instance, [result.run_id])
        return result


def left_out_checks(job) -> set:
    """The checks of ``job``'s assets that the job leaves out (``s3_parquet``'s ``freshness_check``:
    it judges "yesterday", not the run's days), as the code location defines them: a set of
    ``AssetCheckKey``; empty for a job that is not the code location's."""
    if not is_location_job(job):
        return set()
    from tweet_assets.definitions import defs

    graph = defs.get_repository_def().asset_graph
    assets = set(job.asset_layer.executable_asset_keys)
    return {key for key in graph.asset_check_keys if key.asset_key in assets} - set(job.asset_layer.asset_graph.asset_check_keys)


def evaluate_checks(checks: set, verbose: bool = False):
    """Evaluate ``checks`` (``AssetCheckKey`` s of the code location) and nothing else as one run of
    the code location's implicit asset job, as Dagit's "Execute" on a check does (an empty asset
    selection), recorded in the Dagster instance at ``DAGSTER_HOME``. A failed WARN check is a
    successful run with a failed evaluation.

    Returns the ``ExecutionResult``, or None when ``checks`` is empty."""
    if not checks:
        return None
    from dagster import DagsterInstance
    from dagster._core.definitions.assets.job.asset_job import IMPLICIT_ASSET_JOB_NAME

    from tweet_assets.definitions import defs

    job = defs.get_repository_def().get_job(IMPLICIT_ASSET_JOB_NAME)
    with DagsterInstance.get() as instance:
        result = execute(job, instance, verbose=verbose, asset_selection=set(), asset_check_selection=set(checks), raise_on_error=False)
        print_warnings(instance, [result.run_id])
        return result
