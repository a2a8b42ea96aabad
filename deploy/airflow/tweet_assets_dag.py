"""Airflow DAG that materializes the tweet_assets Dagster assets, one task per asset and day.

For teams that already schedule with Airflow (3.x). Each run is the UTC day ``{{ ds }}``; catchup
is on, so enabling the DAG (or ``airflow backfill create --dag-id tweet_assets_daily --from-date
... --to-date ...``) backfills a date range one day per DAG run. The tasks mirror the asset graph
``raw_tweets -> clean_tweets -> s3_parquet`` and retry with exponential backoff.

Airflow's and Dagster's dependencies stay apart: nothing here imports Dagster. Each task runs
Dagster's own CLI from the project's environment (``TWEET_ASSETS_PYTHON -m dagster asset
materialize``) with the same ``DAGSTER_HOME`` as the Dagster services, so every run is recorded
there and shows in Dagit, and the instance's ``x_api`` pool limit holds across Airflow and Dagster.
If ``TWEET_ASSETS_DAGSTER_URL`` is set, the tasks instead launch the runs through that Dagster
webserver's GraphQL API and wait for them (as dagster-airlift's materialize operator does), so the
Dagster daemon's run queue applies.

Settings (environment of the Airflow scheduler/workers, read when the DAG file is parsed):

==================================  ==============================================================
``TWEET_ASSETS_PYTHON``             the project's interpreter (default /opt/tweet_assets/venv/bin/python)
``TWEET_ASSETS_DAGSTER_HOME``       DAGSTER_HOME for the runs (default: $DAGSTER_HOME, else /var/lib/dagster)
``TWEET_ASSETS_LAUNCHER``           optional command put before the CLI, e.g. the EC2 install's
                                    /opt/tweet_assets/bin/tweet-assets-run (reads the X token from SSM)
``TWEET_ASSETS_ENV_FILE``           optional KEY=value file loaded into each task's environment, e.g.
                                    /etc/tweet_assets/tweet_assets.env (lake URL, source, region)
``TWEET_ASSETS_DAGSTER_URL``        optional: launch through this webserver, e.g. http://127.0.0.1:3000
``TWEET_ASSETS_DAGSTER_POLL_SECONDS``  how often to poll a launched run's status (default 5)
``TWEET_ASSETS_AIRFLOW_START_DATE`` first logical date (default 2024-01-01)
``TWEET_ASSETS_AIRFLOW_RETRIES``    retries per task (default 3; delays 5, 10, 20 min, at most 1 h)
``TWEET_ASSETS_AIRFLOW_MAX_ACTIVE_RUNS``  DAG runs at once (default 1)
==================================  ==============================================================
Everything else the pipeline reads (``TWEET_ASSETS_LAKE_URL``, ``TWEET_ASSETS_SOURCE``, ``AWS_*``)
is passed through from the worker's environment (or the env file).
"""

from __future__ import annotations

import json
import os
import shlex
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone

from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG

DAG_ID = "tweet_assets_daily"
CODE_LOCATION_MODULE = "tweet_assets.definitions"
CODE_LOCATION_NAME = "tweet_assets"
JOB_NAME = "tweets_daily_job"
#: The Dagster asset graph: each asset and the assets it reads (tests check this against Dagster).
ASSET_GRAPH = {"raw_tweets": [], "clean_tweets": ["raw_tweets"], "s3_parquet": ["clean_tweets"]}
TERMINAL_FAILURES = {"FAILURE", "CANCELED"}


def _setting(name: str, default: str) -> str:
    return os.environ.get(name, "").strip() or default


PYTHON = _setting("TWEET_ASSETS_PYTHON", "/opt/tweet_assets/venv/bin/python")
DAGSTER_HOME = _setting("TWEET_ASSETS_DAGSTER_HOME", _setting("DAGSTER_HOME", "/var/lib/dagster"))
LAUNCHER = _setting("TWEET_ASSETS_LAUNCHER", "")
ENV_FILE = _setting("TWEET_ASSETS_ENV_FILE", "")
DAGSTER_URL = _setting("TWEET_ASSETS_DAGSTER_URL", "").rstrip("/")
START_DATE = datetime.strptime(_setting("TWEET_ASSETS_AIRFLOW_START_DATE", "2024-01-01"), "%Y-%m-%d").replace(tzinfo=timezone.utc)
RETRIES = int(_setting("TWEET_ASSETS_AIRFLOW_RETRIES", "3"))
MAX_ACTIVE_RUNS = int(_setting("TWEET_ASSETS_AIRFLOW_MAX_ACTIVE_RUNS", "1"))
POLL_SECONDS = float(_setting("TWEET_ASSETS_DAGSTER_POLL_SECONDS", "5"))


def materialize_command(asset: str) -> str:
    """The bash command of one task (``{{ ds }}`` is rendered by Airflow)."""
    parts = []
    if ENV_FILE:
        parts.append(f"set -a && . {shlex.quote(ENV_FILE)} && set +a &&")
    parts.append("exec")
    if LAUNCHER:
        parts.append(shlex.quote(LAUNCHER))
    parts += [shlex.quote(PYTHON), "-m", "dagster", "asset", "materialize", "-m", CODE_LOCATION_MODULE]
    parts += ["--select", asset, "--partition", "{{ ds }}"]
    return " ".join(parts)


# --- launching through a Dagster webserver (GraphQL), like dagster-airlift's operator -------------
LAUNCH_RUN = """
mutation LaunchRun($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on PipelineNotFoundError { message }
    ... on UnauthorizedError { message }
  }
}
"""
RUN_STATUS = """
query RunStatus($runId: ID!) {
  runOrError(runId: $runId) { __typename ... on Run { status } ... on PythonError { message } }
}
"""


def _graphql(url: str, query: str, variables: dict) -> dict:
    request = urllib.request.Request(
        f"{url}/graphql",
        data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        body = json.load(response)
    if body.get("errors"):
        raise RuntimeError(f"Dagster GraphQL error at {url}: {body['errors']}")
    return body["data"]


def launch_and_wait(asset: str, ds: str, url: str = "", poll_seconds: float = 0) -> str:
    """Launch ``asset`` for partition ``ds`` through the Dagster webserver and wait for the run.

    Returns the run id; raises if the launch is refused or the run does not succeed.
    """
    url = url or DAGSTER_URL
    poll_seconds = poll_seconds or POLL_SECONDS
    params = {
        "selector": {
            "repositoryLocationName": CODE_LOCATION_NAME,
            "repositoryName": "__repository__",
            "jobName": JOB_NAME,
            "assetSelection": [{"path": [asset]}],
        },
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": ds}, {"key": "airflow/dag_id", "value": DAG_ID}]},
        "runConfigData": {},
    }
    launched = _graphql(url, LAUNCH_RUN, {"executionParams": params})["launchRun"]
    if launched["__typename"] != "LaunchRunSuccess":
        raise RuntimeError(f"Dagster refused to launch {asset} for {ds}: {launched}")
    run_id = launched["run"]["runId"]
    print(f"launched Dagster run {run_id} ({asset}, partition {ds}) at {url}/runs/{run_id}")
    while True:
        result = _graphql(url, RUN_STATUS, {"runId": run_id})["runOrError"]
        if result["__typename"] != "Run":
            raise RuntimeError(f"Dagster run {run_id}: {result}")
        status = result["status"]
        if status == "SUCCESS":
            return run_id
        if status in TERMINAL_FAILURES:
            raise RuntimeError(f"Dagster run {run_id} ({asset}, {ds}) ended {status}: see {url}/runs/{run_id}")
        time.sleep(poll_seconds)


def _task(asset: str):
    if DAGSTER_URL:
        return PythonOperator(
            task_id=asset,
            python_callable=launch_and_wait,
            op_kwargs={"asset": asset, "ds": "{{ ds }}"},
        )
    return BashOperator(
        task_id=asset,
        bash_command=materialize_command(asset),
        env={"DAGSTER_HOME": DAGSTER_HOME},
        append_env=True,
        cwd=DAGSTER_HOME if os.path.isdir(DAGSTER_HOME) else None,
    )


with DAG(
    dag_id=DAG_ID,
    description="Materialize the tweet_assets Dagster assets for each UTC day",
    schedule="@daily",
    start_date=START_DATE,
    catchup=True,
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
    doc_md=__doc__,
) as dag:
    tasks = {asset: _task(asset) for asset in ASSET_GRAPH}
    for asset, upstream in ASSET_GRAPH.items():
        for parent in upstream:
            tasks[parent] >> tasks[asset]
