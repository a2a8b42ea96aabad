"""Run inside the Airflow venv by test_deploy_airflow.py (never imported by pytest's interpreter).

    python airflow_runner.py dagbag DAGS_FOLDER          -> JSON: import errors and the DAG's shape
    python airflow_runner.py test DAGS_FOLDER YYYY-MM-DD -> JSON: dag.test() run and task states

The last line of stdout is the JSON result; everything before it is Airflow's own logging.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone


def load(folder: str):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=folder)


def describe(folder: str) -> dict:
    bag = load(folder)
    out = {"import_errors": {k: str(v) for k, v in bag.import_errors.items()}, "dag_ids": sorted(bag.dags)}
    dag = bag.dags.get("tweet_assets_daily")
    if dag is not None:
        out["dag"] = {
            "schedule": str(dag.schedule),
            "catchup": dag.catchup,
            "max_active_runs": dag.max_active_runs,
            "start_date": dag.start_date.isoformat() if dag.start_date else None,
            "tasks": {
                t.task_id: {
                    "upstream": sorted(t.upstream_task_ids),
                    "operator": type(t).__name__,
                    "retries": t.retries,
                    "retry_delay_s": t.retry_delay.total_seconds(),
                    "retry_exponential_backoff": float(t.retry_exponential_backoff),
                    "max_retry_delay_s": t.max_retry_delay.total_seconds() if t.max_retry_delay else None,
                    "bash_command": getattr(t, "bash_command", None),
                    "env": getattr(t, "env", None),
                }
                for t in dag.tasks
            },
        }
    return out


def run(folder: str, day: str) -> dict:
    bag = load(folder)
    assert not bag.import_errors, bag.import_errors
    dag = bag.dags["tweet_assets_daily"]
    logical = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=timezone.utc)
    dag_run = dag.test(logical_date=logical)
    states = {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in dag_run.get_task_instances()}
    return {"state": str(getattr(dag_run.state, "value", dag_run.state)), "tasks": states}


if __name__ == "__main__":
    command, folder, *rest = sys.argv[1:]
    result = describe(folder) if command == "dagbag" else run(folder, rest[0])
    print("\n" + json.dumps(result))
