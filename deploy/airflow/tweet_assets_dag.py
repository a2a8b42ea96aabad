"""Airflow DAG that materializes the tweet_assets Dagster assets, one task per asset and UTC day.

For teams that already schedule with Airflow (3.x). Each run covers one data interval of a
``CronDataIntervalTimetable("0 0 * * *", "UTC")``: the run that starts at 00:00 UTC on day D+1
materializes partition D (its ``data_interval_start``), the day that has just ended. (A plain
``schedule="@daily"`` is a ``CronTriggerTimetable`` on Airflow 3, whose run at 00:00 has ``ds`` = the
day that has just *started*: a partition Dagster does not have yet.) A run without a data interval
(``airflow dags trigger`` without ``-l/--logical-date``, or the REST API with ``"logical_date": null``:
Airflow 3 leaves its logical date and data interval NULL) materializes the day that ended before
its ``run_after`` time, i.e. triggered on day D it loads D-1 (:func:`run_day`). The tasks mirror the
asset graph ``raw_tweets -> clean_tweets -> s3_parquet`` and retry with exponential backoff.

In both modes each task runs ``tweets_daily_job`` (tweet_assets/defs/pipeline/jobs.py) for one
asset with the job's checks of that asset: never the WARN freshness check of ``s3_parquet``, which
the job leaves out (it judges "yesterday" on its own sensor; inside a catch-up day's run it fails
because later days are not there yet). Which checks those are, Dagster says (they depend on the
source: ``raw_posts_match_api_count`` exists only for the X API), so nothing here lists them.

Retries (Airflow 3.3.2, ``TaskInstance.next_retry_datetime`` in airflow/models/taskinstance.py):
with ``retry_delay`` = 5 min and ``retry_exponential_backoff`` = 2, the delay before retry n (try
number n) is ``b + h % b`` seconds where ``b = ceil(300 * 2 ** (n - 1))`` and ``h`` is a SHA-1 hash
of dag id, task id, logical date and try number: a fixed per-task offset in ``[0, b)``, so the
delays fall in [5, 10), [10, 20) and [20, 40) minutes for retries 1-3, each capped at
``max_retry_delay`` = 1 h (and at ``[core] max_task_retry_delay``, 24 h). A cleared task keeps
counting its try number up, so its retries start at the longer delays.

Concurrency: ``raw_tweets`` (the only task that calls the X API) runs for one day at a time across
all runs of the DAG, scheduled, manual and backfill alike (``max_active_tis_per_dag``,
``TWEET_ASSETS_AIRFLOW_X_API_TASKS``, default 1): an ``airflow backfill create`` without
``--max-active-runs 1`` (its default is 10 and overrides the DAG's ``max_active_runs``) starts several
days at once, and their ``raw_tweets`` tasks then queue in Airflow as their steps would in Dagster's
``x_api`` pool.

Catchup is off unless ``TWEET_ASSETS_AIRFLOW_CATCHUP=1``: enabling the DAG runs the last complete
day only. Backfill a range explicitly with ``airflow backfill create --dag-id tweet_assets_daily
--from-date ... --to-date ...``. With the ``x_api`` source in search mode, a day the access tier
cannot reach (older than the 7 days recent search covers, without ``X_FULL_ARCHIVE=1``: the rule of
``tweet_assets.sources.x_api``) is *skipped* before any Dagster run, with the reason in the task log,
instead of failing (and retrying) once per day.

Two ways to run the assets:

- **CLI** (default; no Dagster webserver needed). Each task runs the project's CLI from the
  project's environment (``TWEET_ASSETS_PYTHON -m tweet_assets.cli materialize``, which runs
  ``tweets_daily_job`` for the asset and day: :func:`materialize_command`) with the same
  ``DAGSTER_HOME`` as the Dagster services, so every run is recorded there and shows in Dagit, and
  the instance's ``x_api`` pool limit holds across Airflow and Dagster. Nothing here imports Dagster.
- **Dagster webserver** (``TWEET_ASSETS_DAGSTER_URL`` set). Each task is a dagster-airlift
  ``BaseMaterializeAssetsOperator`` (``dagster-airlift[in-airflow]``, Dagster's own operator for
  triggering assets from Airflow): it launches a run of the asset for the partition through the
  webserver's GraphQL API and waits for it (following Dagster's automatic run retries), so the
  Dagster daemon's run queue and the service's own environment apply.

Settings (environment of the Airflow scheduler/workers, read when the DAG file is parsed; the
access-tier check also reads ``TWEET_ASSETS_ENV_FILE`` when the task runs):

==================================  ==============================================================
``TWEET_ASSETS_PYTHON``             the project's interpreter (default /opt/tweet_assets/venv/bin/python)
``TWEET_ASSETS_DAGSTER_HOME``       DAGSTER_HOME for the runs (default: $DAGSTER_HOME, else /var/lib/dagster)
``TWEET_ASSETS_LAUNCHER``           optional command put before the CLI, e.g. the EC2 install's
                                    /opt/tweet_assets/bin/tweet-assets-run (reads the X token from SSM)
``TWEET_ASSETS_ENV_FILE``           optional KEY=value file loaded into each task's environment, e.g.
                                    /etc/tweet_assets/tweet_assets.env (lake URL, source, region)
``TWEET_ASSETS_DAGSTER_URL``        optional: launch through this webserver, e.g. http://127.0.0.1:3000
``TWEET_ASSETS_DAGSTER_POLL_SECONDS``  how often to poll a launched run's status (default 5)
``TWEET_ASSETS_AIRFLOW_START_DATE`` first logical date, YYYY-MM-DD (default 2024-01-01)
``TWEET_ASSETS_AIRFLOW_CATCHUP``    1/true/yes: schedule every interval since the start date (default off)
``TWEET_ASSETS_AIRFLOW_RETRIES``    retries per task (default 3; delays in [5, 10), [10, 20), [20, 40) min, at most 1 h)
``TWEET_ASSETS_AIRFLOW_MAX_ACTIVE_RUNS``  DAG runs at once (default 1; a backfill has its own ``--max-active-runs``)
``TWEET_ASSETS_AIRFLOW_X_API_TASKS``  ``raw_tweets`` tasks at once across all runs (default 1, as the ``x_api`` pool)
==================================  ==============================================================
Everything else the pipeline reads (``TWEET_ASSETS_LAKE_URL``, ``TWEET_ASSETS_SOURCE``, ``X_QUERY``,
``X_FULL_ARCHIVE``, ``AWS_*``) is passed through from the worker's environment (or the env file).
"""

from __future__ import annotations

import logging
import os
import shlex
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, CronDataIntervalTimetable
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

DAG_ID = "tweet_assets_daily"
#: The Dagster job both modes run (tweet_assets/defs/pipeline/jobs.py; its checks, no freshness check).
JOB_NAME = "tweets_daily_job"
#: The Dagster asset graph: each asset and the assets it reads (tests check this against Dagster).
ASSET_GRAPH = {"raw_tweets": [], "clean_tweets": ["raw_tweets"], "s3_parquet": ["clean_tweets"]}
#: Webserver mode: the checks of each asset that ``JOB_NAME`` runs (Dagster's GraphQL API: an asset
#: check's ``jobNames``), asked before each launch.
JOB_CHECKS_QUERY = """
query TweetAssetsJobChecks($assetKeys: [AssetKeyInput!]) {
  assetNodes(assetKeys: $assetKeys) {
    assetKey { path }
    assetChecksOrError {
      __typename
      ... on AssetChecks { checks { name jobNames } }
    }
  }
}
"""
DAY_FORMAT = "%Y-%m-%d"
#: The Jinja name of :func:`run_day` in the DAG's ``user_defined_macros``.
DAY_MACRO = "tweet_assets_day"
#: The Dagster partition key of a run (Jinja, rendered by Airflow): :func:`run_day` of its DagRun.
PARTITION_TEMPLATE = "{{ %s(dag_run) }}" % DAY_MACRO
#: X API v2 recent search covers the last 7 days (GET /2/tweets/search/recent, X API v2 docs).
#: tweet_assets.sources.x_api fetches a search day by recent search only if its 00:00Z is at least
#: RECENT_SEARCH_MARGIN newer than now - 7 days, and refuses older days unless X_FULL_ARCHIVE is set;
#: the DAG applies the same rule (tests compare the two).
RECENT_SEARCH_DAYS = 7
RECENT_SEARCH_MARGIN = timedelta(minutes=15)
TRUE_VALUES = ("1", "true", "yes")
LOG = logging.getLogger("airflow.task")


def _setting(name: str, default: str) -> str:
    return os.environ.get(name, "").strip() or default


def _start_date(value: str) -> datetime:
    try:
        return datetime.strptime(value, DAY_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        raise ValueError(f"TWEET_ASSETS_AIRFLOW_START_DATE={value!r} is not a date: set it as YYYY-MM-DD (UTC).") from None


PYTHON = _setting("TWEET_ASSETS_PYTHON", "/opt/tweet_assets/venv/bin/python")
DAGSTER_HOME = _setting("TWEET_ASSETS_DAGSTER_HOME", _setting("DAGSTER_HOME", "/var/lib/dagster"))
LAUNCHER = _setting("TWEET_ASSETS_LAUNCHER", "")
ENV_FILE = _setting("TWEET_ASSETS_ENV_FILE", "")
DAGSTER_URL = _setting("TWEET_ASSETS_DAGSTER_URL", "").rstrip("/")
START_DATE = _start_date(_setting("TWEET_ASSETS_AIRFLOW_START_DATE", "2024-01-01"))
CATCHUP = _setting("TWEET_ASSETS_AIRFLOW_CATCHUP", "0").lower() in TRUE_VALUES
RETRIES = int(_setting("TWEET_ASSETS_AIRFLOW_RETRIES", "3"))
MAX_ACTIVE_RUNS = int(_setting("TWEET_ASSETS_AIRFLOW_MAX_ACTIVE_RUNS", "1"))
X_API_TASKS = int(_setting("TWEET_ASSETS_AIRFLOW_X_API_TASKS", "1"))
POLL_SECONDS = float(_setting("TWEET_ASSETS_DAGSTER_POLL_SECONDS", "5"))


def materialize_command(asset: str) -> str:
    """The bash command of one CLI-mode task (:data:`PARTITION_TEMPLATE` rendered by Airflow).

    ``python -m tweet_assets.cli materialize --select ASSET --partition DAY``: ``tweets_daily_job``
    for the asset and day with the job's checks of the asset, recorded in ``DAGSTER_HOME``; exit
    status 1 when a step fails (the task fails and retries). Not ``dagster asset materialize``:
    Dagster's implicit asset job runs every check of the asset, the freshness check included; nor
    ``dagster job execute -j tweets_daily_job -o OPS``: an op-selected run hands s3_parquet its
    input as a list, not the IO manager's dict of days.
    """
    parts = []
    if ENV_FILE:
        parts.append(f"set -a && . {shlex.quote(ENV_FILE)} && set +a &&")
    parts.append("exec")
    if LAUNCHER:
        parts.append(shlex.quote(LAUNCHER))
    parts += [shlex.quote(PYTHON), "-m", "tweet_assets.cli", "materialize", "--select", asset, "--partition", PARTITION_TEMPLATE]
    return " ".join(parts)


def run_day(dag_run) -> str:
    """The Dagster partition key of a DagRun: a UTC ``YYYY-MM-DD`` day.

    ``data_interval_start`` when the run has a data interval (scheduled runs, backfills, and manual
    runs given ``-l/--logical-date``). Otherwise (Airflow 3's ``airflow dags trigger`` without a
    logical date, the REST API with ``"logical_date": null``: logical date and data interval NULL)
    the day that ended before the run's ``run_after`` time: a run triggered at any time on day D
    loads D-1, the last complete day, as the schedule's run at D 00:00 does.

    Not ``logical_date``: on Airflow 3 a manual or ``dag.test()`` run keeps the trigger time as its
    logical date, while its data interval is the last complete day.
    """
    start = getattr(dag_run, "data_interval_start", None)
    if start is not None:
        return start.astimezone(timezone.utc).strftime(DAY_FORMAT)
    ran_after = dag_run.run_after.astimezone(timezone.utc)
    return (ran_after.date() - timedelta(days=1)).strftime(DAY_FORMAT)


def partition_key(context: Mapping) -> str:
    """The run's Dagster partition key: :func:`run_day` of the task's DagRun."""
    return run_day(context["dag_run"])


def read_env_file(path: str) -> dict[str, str]:
    """``KEY=value`` lines of a shell env file (``#`` comments, optional ``export``, quotes stripped).

    Raises:
        OSError: the file cannot be read (the CLI tasks would fail on it too).
    """
    values = {}
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            line = line.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            key, value = line.removeprefix("export ").split("=", 1)
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            values[key.strip()] = value
    return values


def unreachable_reason(day: str, env: Mapping[str, str], now: datetime) -> str | None:
    """Why the configured source's access tier cannot fetch partition ``day`` at ``now``, or None.

    Only the ``x_api`` source in search mode has a date limit: recent search (GET
    /2/tweets/search/recent) covers the last 7 days, so a day whose start (00:00 UTC) is not at least
    15 minutes newer than ``now`` - 7 days needs full-archive search (GET /2/tweets/search/all,
    Pro/Enterprise access), enabled by ``X_FULL_ARCHIVE=1``. This is the rule
    ``tweet_assets.sources.x_api`` applies (mode: timelines when ``X_ACCOUNTS`` is set and ``X_QUERY``
    is not, else search).

    Args:
        day: the partition key, ``YYYY-MM-DD`` (UTC).
        env: the task's environment (worker environment plus ``TWEET_ASSETS_ENV_FILE``).
        now: the current time, timezone-aware.
    """
    if env.get("TWEET_ASSETS_SOURCE", "").strip().lower() != "x_api":
        return None
    accounts = [a for a in env.get("X_ACCOUNTS", "").split(",") if a.strip()]
    if accounts and not env.get("X_QUERY", "").strip():
        return None  # timelines: no date limit here (the 3,200 most recent posts of each account)
    if env.get("X_FULL_ARCHIVE", "").strip().lower() in TRUE_VALUES:
        return None
    day_start = datetime.strptime(day, DAY_FORMAT).replace(tzinfo=timezone.utc)
    if day_start >= now - timedelta(days=RECENT_SEARCH_DAYS) + RECENT_SEARCH_MARGIN:
        return None
    return (
        f"partition {day} is older than the {RECENT_SEARCH_DAYS} days X API v2 recent search covers "
        f"(GET /2/tweets/search/recent, now {now:%Y-%m-%dT%H:%MZ}): skipped, no Dagster run launched. "
        "Full-archive search (GET /2/tweets/search/all) needs Pro or Enterprise access: if your project has "
        "it, set X_FULL_ARCHIVE=1 for the workers and the Dagster services; otherwise backfill only the last "
        f"{RECENT_SEARCH_DAYS} days."
    )


def task_env() -> dict[str, str]:
    """The environment a CLI-mode task's command sees: the worker's, ``DAGSTER_HOME`` from the DAG,
    then ``TWEET_ASSETS_ENV_FILE`` (``set -a; . file``: its values win)."""
    env = {**os.environ, "DAGSTER_HOME": DAGSTER_HOME}
    if ENV_FILE:
        env.update(read_env_file(ENV_FILE))
    return env


def require_dagster_instance(env: Mapping[str, str]) -> None:
    """CLI mode: the task's ``DAGSTER_HOME`` must hold the instance configuration the deploy installs.

    Without ``$DAGSTER_HOME/dagster.yaml`` Dagster would run on a default instance (its "No dagster
    instance configuration file" notice and the telemetry banner in the task log): the run would not
    show in Dagit, the ``x_api`` pool would not hold.

    Raises:
        AirflowFailException: naming the missing file and the settings to fix; no retry (a retry
            would find the same configuration).
    """
    home = env.get("DAGSTER_HOME", "")
    config = os.path.join(home, "dagster.yaml")
    if not home or not os.path.isfile(config):
        raise AirflowFailException(
            f"no Dagster instance configuration at {config!r}: set TWEET_ASSETS_DAGSTER_HOME (or DAGSTER_HOME "
            "in TWEET_ASSETS_ENV_FILE) to the DAGSTER_HOME of the Dagster services, which holds deploy/dagster.yaml "
            "(on the EC2 host: /var/lib/dagster), for the Airflow dag-processor and workers."
        )


def skip_unreachable_day(context: Mapping) -> None:
    """``pre_execute`` hook of the first task: skip the run's day if the access tier cannot reach it.

    Also logs the day the run loads and why (its data interval, or the day before its run-after time).

    Raises:
        AirflowSkipException: with :func:`unreachable_reason`'s message; the downstream tasks are then
            skipped too (trigger rule ``all_success``), so the run ends without failures or retries.
        AirflowFailException: CLI mode without the instance configuration (:func:`require_dagster_instance`).
    """
    dag_run = context["dag_run"]
    day = partition_key(context)
    if getattr(dag_run, "data_interval_start", None) is None:
        LOG.info(f"tweet_assets: run {dag_run.run_id} has no data interval (triggered without -l/--logical-date): "
                 f"partition {day}, the day that ended before its run_after {dag_run.run_after.isoformat()}")
    else:
        LOG.info(f"tweet_assets: partition {day}, the start of the run's data interval")
    env = task_env()
    if not DAGSTER_URL:
        require_dagster_instance(env)
    reason = unreachable_reason(day, env, datetime.now(timezone.utc))
    if reason:
        raise AirflowSkipException(reason)


def check_dagster_instance(context: Mapping) -> None:
    """``pre_execute`` hook of the later CLI-mode tasks (:func:`require_dagster_instance`)."""
    require_dagster_instance(task_env())


def dagster_operator_class():
    """The dagster-airlift operator that launches one asset's run through ``TWEET_ASSETS_DAGSTER_URL``.

    ``BaseMaterializeAssetsOperator`` (dagster-airlift[in-airflow] 0.29.27) finds the asset's node over
    GraphQL, launches the run with the ``dagster/partition`` tag and the ``dagster-airlift/airflow-*``
    tags, and polls it to the end, following Dagster's automatic retries. Here: a plain session, the
    URL from the environment, the partition from :func:`run_day`, and the run launched as
    ``tweets_daily_job`` with the job's checks of the asset, asked of Dagster (airlift's own
    choice, the implicit asset job with no checks, would skip the blocking checks of
    ``clean_tweets``; with Dagster's default check selection it would add the freshness check).

    Raises:
        ImportError: dagster-airlift is not installed in the Airflow environment (a DAG import error).
    """
    try:
        import requests
        from dagster_airlift.in_airflow.materialize_assets_operator import BaseMaterializeAssetsOperator
    except ImportError as error:
        raise ImportError(
            f"TWEET_ASSETS_DAGSTER_URL is set, which needs dagster-airlift in Airflow's environment: "
            f"pip install 'dagster-airlift[in-airflow]==0.29.27' (deploy/airflow/requirements.txt). {error}"
        ) from error

    class MaterializeTweetAssetsOperator(BaseMaterializeAssetsOperator):
        """Materializes ``asset_key_paths`` for the run's day through the Dagster webserver."""

        def get_dagster_session(self, context):
            return requests.Session()

        def get_dagster_url(self, context) -> str:
            return DAGSTER_URL

        def get_partition_key(self, context, partitioning_info) -> str:
            day = partition_key(context)
            if day not in partitioning_info.partition_keys:
                raise ValueError(
                    f"partition {day} (the run's day) is not a partition of the Dagster assets at "
                    f"{DAGSTER_URL}: check TWEET_ASSETS_START_DATE of the Dagster services (first partition)."
                )
            return day

        def get_all_asset_nodes(self, session, dagster_url, context):
            # airlift logs the whole answer ("Got response ..."): keep each node's tweets_daily_job
            # only, so the task log names no job this DAG does not launch (__ASSET_JOB among them)
            return [
                {**node, "jobs": [job for job in node["jobs"] if job["name"] == JOB_NAME]}
                for node in super().get_all_asset_nodes(session, dagster_url, context)
            ]

        def filter_asset_nodes(self, context, asset_nodes):
            # airlift launches the first job named __ASSET_JOB* among an asset node's jobs (and logs
            # that name); get_all_asset_nodes kept only tweets_daily_job, so the run launched and
            # airlift's "Triggering run for (location, repository, job)" line are tweets_daily_job.
            nodes = list(super().filter_asset_nodes(context, asset_nodes))
            for node in nodes:
                if not node["jobs"]:
                    raise ValueError(
                        f"asset {'/'.join(node['assetKey']['path'])} is not in the Dagster job {JOB_NAME} at "
                        f"{DAGSTER_URL}: deploy the tweet_assets code location this DAG was written for."
                    )
            return nodes

        def job_checks(self, session, dagster_url, paths: list) -> list[dict]:
            """The checks of the assets at ``paths`` that ``JOB_NAME`` runs, as Dagster's GraphQL API
            lists them: ``[{"assetKey": {"path": [...]}, "name": ...}]``."""
            response = session.post(
                f"{dagster_url}/graphql",
                json={"query": JOB_CHECKS_QUERY, "variables": {"assetKeys": [{"path": path} for path in paths]}},
                timeout=60,
            )
            checks = []
            for node in self.get_valid_graphql_response(response, "assetNodes"):
                answer = node["assetChecksOrError"]
                if answer["__typename"] != "AssetChecks":
                    raise ValueError(f"Dagster at {dagster_url} could not list the checks of {node['assetKey']['path']}: {answer['__typename']}")
                checks += [
                    {"assetKey": {"path": node["assetKey"]["path"]}, "name": check["name"]}
                    for check in answer["checks"]
                    if JOB_NAME in check["jobNames"]
                ]
            return checks

        def launch_dagster_run(self, context, session, dagster_url, execution_params) -> str:
            # airlift asks for assetCheckSelection=[] (no checks: clean_tweets' blocking checks would
            # not gate s3_parquet); Dagster's default (no selection) would add every check of the
            # asset, the freshness check too. Select the job's checks of the asset, as Dagster has them.
            selector = execution_params["selector"]
            checks = self.job_checks(session, dagster_url, [entry["path"] for entry in selector["assetSelection"]])
            execution_params = {**execution_params, "selector": {**selector, "assetCheckSelection": checks}}
            run_id = super().launch_dagster_run(context, session, dagster_url, execution_params)
            tags = {tag["key"]: tag["value"] for tag in execution_params["executionMetadata"]["tags"]}
            self.log.info(
                "launched Dagster run %s of %s for partition %s: %s/runs/%s",
                run_id, selector["pipelineName"], tags.get("dagster/partition"), dagster_url, run_id,
            )
            return run_id

    return MaterializeTweetAssetsOperator


def _task(asset: str):
    first = not ASSET_GRAPH[asset]
    # the X API caller: one day at a time across all runs (backfills included), as the x_api pool
    limits = {"max_active_tis_per_dag": X_API_TASKS} if first else {}
    if DAGSTER_URL:
        return dagster_operator_class()(
            task_id=asset,
            asset_key_paths=[asset],
            dagster_run_status_poll_interval=POLL_SECONDS,
            pre_execute=skip_unreachable_day if first else None,
            **limits,
        )
    return BashOperator(
        task_id=asset,
        bash_command=materialize_command(asset),
        env={"DAGSTER_HOME": DAGSTER_HOME},
        append_env=True,
        cwd=DAGSTER_HOME if os.path.isdir(DAGSTER_HOME) else None,
        pre_execute=skip_unreachable_day if first else check_dagster_instance,
        **limits,
    )


with DAG(
    dag_id=DAG_ID,
    description="Materialize the tweet_assets Dagster assets for each UTC day that has ended",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=START_DATE,
    catchup=CATCHUP,
    max_active_runs=MAX_ACTIVE_RUNS,
    default_args={
        "owner": "tweet_assets",
        "retries": RETRIES,
        "retry_delay": timedelta(minutes=5),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(hours=1),
        "execution_timeout": timedelta(hours=6),
    },
    tags=["tweet_assets", "dagster"],
    user_defined_macros={DAY_MACRO: run_day},
    doc_md=__doc__,
) as dag:
    tasks = {asset: _task(asset) for asset in ASSET_GRAPH}
    for asset, upstream in ASSET_GRAPH.items():
        for parent in upstream:
            tasks[parent] >> tasks[asset]
