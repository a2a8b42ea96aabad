"""Run inside the Airflow venv by test_deploy_airflow.py (never imported by pytest's interpreter).

    python airflow_runner.py dagbag DAGS_FOLDER             -> JSON: import errors and the DAG's shape
    python airflow_runner.py test DAGS_FOLDER LOGICAL_DATE  -> JSON: dag.test() run, data interval, task states
    python airflow_runner.py gate DAGS_FOLDER CASES_JSON    -> JSON: the DAG's access-tier answer per case
    python airflow_runner.py retries DAGS_FOLDER COUNT      -> JSON: Airflow's own retry delays (s) per task and try

The last line of stdout is the JSON result; everything before it is Airflow's own logging.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

DAG_ID = "tweet_assets_daily"
#: (data_interval_start or None, run_after) of DagRuns, for the DAG's run_day (its partition).
RUN_DAY_CASES = [
    (None, "2026-12-01T00:00:00+00:00"),
    (None, "2026-12-01T23:59:59+00:00"),
    (None, "2026-12-01T01:30:00+02:00"),  # 2026-11-30T23:30Z
    ("2026-11-20T00:00:00+00:00", "2026-12-01T12:00:00+00:00"),
]


def load(folder: str):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=folder)


def describe(folder: str) -> dict:
    bag = load(folder)
    out = {"import_errors": {k: str(v) for k, v in bag.import_errors.items()}, "dag_ids": sorted(bag.dags)}
    dag = bag.dags.get(DAG_ID)
    if dag is not None:
        out["dag"] = {
            "schedule": str(dag.schedule),
            "timetable": type(dag.timetable).__name__,
            "catchup": dag.catchup,
            "max_active_runs": dag.max_active_runs,
            "start_date": dag.start_date.isoformat() if dag.start_date else None,
            "tasks": {
                t.task_id: {
                    "upstream": sorted(t.upstream_task_ids),
                    "operator": type(t).__name__,
                    "bases": [f"{c.__module__}.{c.__qualname__}" for c in type(t).__mro__],
                    "retries": t.retries,
                    "retry_delay_s": t.retry_delay.total_seconds(),
                    "retry_exponential_backoff": float(t.retry_exponential_backoff),
                    "max_retry_delay_s": t.max_retry_delay.total_seconds() if t.max_retry_delay else None,
                    "bash_command": getattr(t, "bash_command", None),
                    "env": getattr(t, "env", None),
                    "asset_key_paths": [list(p) for p in getattr(t, "asset_key_paths", [])] or None,
                    "pre_execute": getattr(t._pre_execute_hook, "__name__", None),
                    "max_active_tis_per_dag": t.max_active_tis_per_dag,
                }
                for t in dag.tasks
            },
        }
    return out


def run(folder: str, logical_date: str) -> dict:
    bag = load(folder)
    assert not bag.import_errors, bag.import_errors
    dag = bag.dags[DAG_ID]
    logical = datetime.fromisoformat(logical_date).replace(tzinfo=timezone.utc)
    dag_run = dag.test(logical_date=logical)
    states = {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in dag_run.get_task_instances()}
    return {
        "state": str(getattr(dag_run.state, "value", dag_run.state)),
        "data_interval": [dag_run.data_interval_start.isoformat(), dag_run.data_interval_end.isoformat()],
        "tasks": states,
    }


def import_dag_file(folder: str):
    path = Path(folder) / "tweet_assets_dag.py"
    spec = importlib.util.spec_from_file_location("tweet_assets_dag_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def gate(folder: str, cases: str) -> dict:
    """Import the DAG file as a module and ask its ``unreachable_reason`` about each case; then
    import it again with an invalid start date and report the error."""
    module = import_dag_file(folder)
    answers = [
        module.unreachable_reason(case["day"], case["env"], datetime.fromisoformat(case["now"]))
        for case in json.loads(cases)
    ]
    from types import SimpleNamespace

    run_days = [
        module.run_day(SimpleNamespace(data_interval_start=datetime.fromisoformat(start) if start else None, run_after=datetime.fromisoformat(after)))
        for start, after in RUN_DAY_CASES
    ]
    os.environ["TWEET_ASSETS_AIRFLOW_START_DATE"] = "29/11/2026"
    try:
        import_dag_file(folder)
        bad_start_date = None
    except ValueError as error:
        bad_start_date = str(error)
    return {"recent_search_days": module.RECENT_SEARCH_DAYS, "answers": answers, "bad_start_date": bad_start_date,
            "run_days": run_days}


def retries(folder: str, count: str) -> dict:
    """The delay Airflow itself computes before each retry (``TaskInstance.next_retry_datetime``,
    airflow/models/taskinstance.py) for each task of the DAG, tries 1..5, over ``count`` logical dates
    (the per-task offset hashes dag id, task id, logical date and try number): {task: {try: [s, ...]}}."""
    from datetime import timedelta
    from types import SimpleNamespace

    from airflow.models.taskinstance import TaskInstance

    bag = load(folder)
    dag = bag.dags[DAG_ID]
    end = datetime(2026, 11, 30, tzinfo=timezone.utc)
    out = {}
    for task in dag.tasks:
        per_try = {}
        for try_number in range(1, 6):
            delays = []
            for n in range(int(count)):
                # next_retry_datetime reads only these attributes of the task instance (and self.task's
                # retry_delay, retry_exponential_backoff, max_retry_delay)
                ti = SimpleNamespace(
                    retry_delay_override=None, task=task, try_number=try_number, dag_id=dag.dag_id, task_id=task.task_id,
                    logical_date=end + timedelta(days=n), end_date=end, log=None,
                )
                delays.append((TaskInstance.next_retry_datetime(ti) - end).total_seconds())
            per_try[try_number] = delays
        out[task.task_id] = per_try
    return out


if __name__ == "__main__":
    command, folder, *rest = sys.argv[1:]
    if command == "dagbag":
        result = describe(folder)
    elif command == "gate":
        result = gate(folder, rest[0])
    elif command == "retries":
        result = retries(folder, rest[0])
    else:
        result = run(folder, rest[0])
    print("\n" + json.dumps(result))
