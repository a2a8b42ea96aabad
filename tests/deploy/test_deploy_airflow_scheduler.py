"""The DAG as operators run it, on Airflow 3.3.2's own components (issue #32): api-server,
dag-processor and scheduler as separate processes started by deploy/airflow/run-airflow.sh with
deploy/airflow/airflow.env (LocalExecutor, SQLite, 127.0.0.1), in the Airflow venv
test_deploy_airflow.py builds, the tasks in CLI mode against a temp DAGSTER_HOME (the deploy's
dagster.yaml on SQLite) and a local lake with the sample source.

One scenario, run once for the module (start date today, so enabling the DAG schedules nothing):
- `airflow dags trigger tweet_assets_daily` as an operator types it (no -l: logical date and data
  interval NULL on 3.3.2);
- `airflow backfill create` of two days with `--max-active-runs 2` (days at once).
The tests then read Airflow's metadata DB, the task logs, the Dagster runs and the listening sockets.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import date, datetime, timedelta, timezone

import pytest
from airflow_services import LOOPBACK_HEX, AirflowServices, listening_sockets
from deploy_helpers import clean_env, require_project
from test_deploy_airflow import (
    ASSETS,
    CLEAN_CHECKS,
    DAGS,
    airflow_python,
    assert_one_run_per_asset,
    dagster_home,
    dagster_runs,
    today_utc,
)

pytestmark = pytest.mark.slow

DAG_ID = "tweet_assets_daily"
FINISHED = ("success", "failed")
#: What Dagster prints when DAGSTER_HOME holds no dagster.yaml, and its telemetry banner.
DEFAULT_INSTANCE_NOTICES = ("No dagster instance configuration file", "we collect usage statistics")


def parse_db_time(value: str | None) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def scheduled(tmp_path_factory) -> dict:
    require_project()
    python = airflow_python()
    root = tmp_path_factory.mktemp("airflow_scheduler")
    home = root / "airflow_home"
    home.mkdir()
    dhome = dagster_home(root)
    today = today_utc()
    backfill_days = [(today - timedelta(days=n)).isoformat() for n in (3, 2)]
    env = clean_env(
        AIRFLOW_HOME=str(home), AIRFLOW__CORE__DAGS_FOLDER=str(DAGS), AIRFLOW__CORE__UNIT_TEST_MODE="False",
        TWEET_ASSETS_PYTHON=sys.executable, TWEET_ASSETS_AIRFLOW_RETRIES="0",
        TWEET_ASSETS_AIRFLOW_START_DATE=today.isoformat(),  # enabling the DAG schedules no run now
        TWEET_ASSETS_DAGSTER_HOME=str(dhome), TWEET_ASSETS_LAKE_URL=str(root / "lake"),
        TWEET_ASSETS_SAMPLE_POSTS="20", PYTHONUNBUFFERED="1",
        # the tasks' Execution API calls wait for SQLite's write lock on a loaded machine (seen: 40 s
        # for PATCH .../run); the default 5 s timeout then fails the task before it starts
        AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT="300",
    )
    migrate = subprocess.run([str(python), "-m", "airflow", "db", "migrate"], env={**env, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"},
                             cwd=str(home), capture_output=True, text=True, timeout=600)
    assert migrate.returncode == 0, migrate.stdout[-2000:] + migrate.stderr[-2000:]
    services = AirflowServices(python, env, home)
    try:
        # the runs are created before the scheduler starts: SQLite has one writer at a time
        services.start(("api-server", "dag-processor"))
        services.wait(lambda: services.query("select dag_id from dag where dag_id = ?", DAG_ID), "the DAG parsed by the dag-processor")
        services.airflow("dags", "unpause", DAG_ID)
        services.airflow("dags", "trigger", DAG_ID)  # what deploy/README.md tells an operator to type
        services.airflow("backfill", "create", "--dag-id", DAG_ID, "--from-date", backfill_days[0], "--to-date", backfill_days[-1],
                         "--max-active-runs", "2")
        services.start(("scheduler",))

        def all_finished():
            # the manual run and the backfill's (a run scheduled at a midnight the test crosses is left aside)
            runs = services.query("select run_id, run_type, state from dag_run where dag_id = ? and run_type != 'scheduled'", DAG_ID)
            return runs if len(runs) == 3 and all(state in FINISHED for *_, state in runs) else None

        services.wait(all_finished, "the manual run and the two backfill runs finished")
        runs = {
            row[0]: dict(zip(("run_id", "run_type", "state", "logical_date", "data_interval_start", "run_after"), row))
            for row in services.query(
                "select run_id, run_type, state, logical_date, data_interval_start, run_after from dag_run where dag_id = ? and run_type != 'scheduled'", DAG_ID
            )
        }
        tis = [
            dict(zip(("run_id", "task_id", "state", "start_date", "end_date", "try_number"), row))
            for row in services.query("select run_id, task_id, state, start_date, end_date, try_number from task_instance where dag_id = ?", DAG_ID)
            if row[0] in runs
        ]
        logs = {(ti["run_id"], ti["task_id"]): services.task_log(ti["run_id"], ti["task_id"]) for ti in tis}
        sockets = listening_sockets(services.pids())
        port, tail = services.port, services.log_tail()
    finally:
        services.stop()
    return {
        "runs": runs, "tis": tis, "logs": logs, "sockets": sockets, "port": port, "log_tail": tail,
        # the Dagster runs of the manual and backfill days (not of a run scheduled at a crossed midnight)
        "dagster": [r for r in dagster_runs(dhome) if r["partition"] in {*backfill_days, manual_day(runs)}], "backfill_days": backfill_days,
    }


def manual_day(runs: dict) -> str:
    (run,) = [r for r in runs.values() if r["run_type"] == "manual"]
    return (parse_db_time(run["run_after"]).astimezone(timezone.utc).date() - timedelta(days=1)).isoformat()


def manual_run(scheduled) -> dict:
    (run,) = [r for r in scheduled["runs"].values() if r["run_type"] == "manual"]
    return run


def test_a_manual_trigger_without_a_logical_date_loads_the_day_that_ended_before_its_run_after(scheduled):
    """#32.1: `airflow dags trigger` (no -l) makes a run with NULL logical date and data interval on
    3.3.2; the DAG materializes the day that ended before its run_after time (the old DAG failed
    rendering `{{ data_interval_start | ds }}` and retried)."""
    run = manual_run(scheduled)
    assert run["logical_date"] is None and run["data_interval_start"] is None, run  # Airflow's own trigger path
    tis = {ti["task_id"]: ti for ti in scheduled["tis"] if ti["run_id"] == run["run_id"]}
    assert (run["state"], {t: ti["state"] for t, ti in tis.items()}) == ("success", {a: "success" for a in ASSETS}), (
        {k: v[-2000:] for k, v in scheduled["logs"].items() if k[0] == run["run_id"]}, scheduled["log_tail"]
    )
    day = (parse_db_time(run["run_after"]).astimezone(timezone.utc).date() - timedelta(days=1)).isoformat()
    assert_one_run_per_asset([r for r in scheduled["dagster"] if r["partition"] == day], day)
    raw_log = scheduled["logs"][(run["run_id"], "raw_tweets")]
    assert f"has no data interval (triggered without -l/--logical-date): partition {day}" in raw_log


def test_a_backfill_of_days_at_once_runs_raw_tweets_one_day_at_a_time(scheduled):
    """#32.2: a backfill with --max-active-runs 2 runs both days at once (each its own data interval),
    but the X API caller raw_tweets never runs for two days at the same time (the old DAG let both
    days' raw_tweets call the X API at once, contending beyond the x_api pool)."""
    backfill = sorted((r for r in scheduled["runs"].values() if r["run_type"] == "backfill"), key=lambda r: r["data_interval_start"])
    assert [parse_db_time(r["data_interval_start"]).date().isoformat() for r in backfill] == scheduled["backfill_days"]
    assert {r["state"] for r in backfill} == {"success"}, scheduled["log_tail"]
    for day in scheduled["backfill_days"]:
        assert_one_run_per_asset([r for r in scheduled["dagster"] if r["partition"] == day], day)
    raw = sorted(
        (parse_db_time(ti["start_date"]), parse_db_time(ti["end_date"]))
        for ti in scheduled["tis"] if ti["task_id"] == "raw_tweets"
    )
    assert len(raw) == 3
    for (_, end), (next_start, _) in zip(raw, raw[1:]):
        assert end <= next_start, raw  # one raw_tweets at a time, across the manual run and the backfill
    # and the runs did overlap: the two backfill days were active at once (their own max-active-runs)
    spans = [
        (min(parse_db_time(ti["start_date"]) for ti in tis), max(parse_db_time(ti["end_date"]) for ti in tis))
        for tis in ([ti for ti in scheduled["tis"] if ti["run_id"] == r["run_id"]] for r in backfill)
    ]
    assert spans[0][0] < spans[1][1] and spans[1][0] < spans[0][1], spans


def test_no_run_executes_the_freshness_check(scheduled):
    """#32.4: the WARN freshness check of s3_parquet (its own sensor's) is never in a per-day run."""
    runs = scheduled["dagster"]
    assert len(runs) == 9, runs
    assert not [r for r in runs if any("freshness" in check for check in r["checks"])], runs
    for run in runs:
        if run["assets"] == ["clean_tweets"]:
            assert CLEAN_CHECKS <= set(run["checks"]), run
        if run["assets"] == ["s3_parquet"]:
            assert "published_schema_matches" in run["checks"], run


def test_airflow_as_deployed_listens_on_loopback_only(scheduled):
    """#32.5: every listening TCP socket of the three components' process groups (the api-server,
    and no LocalExecutor log server on 0.0.0.0/[::]:8793) is on 127.0.0.1."""
    sockets = scheduled["sockets"]
    assert (LOOPBACK_HEX, scheduled["port"]) in sockets, sockets
    assert {address for address, _ in sockets} == {LOOPBACK_HEX}, sockets
    assert not [s for s in sockets if s[1] == 8793], sockets


def test_task_logs_carry_no_default_instance_notice(scheduled):
    """#32.6: the CLI-mode tasks run on the deploy's dagster.yaml: no "no dagster.yaml" notice and no
    telemetry banner in any task log."""
    assert scheduled["logs"] and all(scheduled["logs"].values())
    for key, text in scheduled["logs"].items():
        for notice in DEFAULT_INSTANCE_NOTICES:
            assert notice not in text, (key, notice)
