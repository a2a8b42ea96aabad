"""The commands users type: the README's `make demo`, Dagster's CLI on the code location, the DDL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LOCATION_NAME = "tweet_assets"  # workspace.yaml, [tool.dg.project]: the code location Dagit shows


def _env(tmp_path, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWEET_ASSETS_", "DAGSTER_"))}
    env.update(DAGSTER_HOME=str(tmp_path / "home"), TWEET_ASSETS_LAKE_URL=str(tmp_path / "lake"), **extra)
    os.makedirs(env["DAGSTER_HOME"], exist_ok=True)
    return env


@pytest.mark.slow
def test_readme_demo_command(tmp_path):
    """`make demo` (the README's first command) materializes 3 days and prints the table."""
    venv = Path(sys.prefix)
    if (venv / ".installed").exists():
        cmd = ["make", "-s", "-C", str(REPO), "demo", f"VENV={venv}"]
    else:  # running outside the Makefile's venv: the same command make runs
        cmd = [sys.executable, "-m", "tweet_assets.cli", "demo"]
    out = subprocess.run(cmd, cwd=REPO, env=_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "succeeded" in out.stdout and "read back as Athena reads it" in out.stdout
    days = sorted(p.name for p in (tmp_path / "lake" / "tweets").iterdir())
    assert len(days) == 3 and all(d.startswith("dt=") for d in days)
    for day in days:
        assert f"{day[3:]} | 200" in out.stdout  # 200 posts per day, per partition, in the printed table


@pytest.mark.slow
def test_dagster_cli_validate_and_partition_range(tmp_path):
    env = _env(tmp_path, TWEET_ASSETS_SAMPLE_POSTS="30", TWEET_ASSETS_START_DATE="2024-01-01")
    # from the checkout without -m: pyproject's [tool.dagster] names the module and the code location
    # (`-m tweet_assets.definitions` names the location after the module and contradicts [tool.dg.project]: #39.4)
    validate = subprocess.run([str(BIN / "dagster"), "definitions", "validate"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert validate.returncode == 0, validate.stderr[-2000:]
    assert "Validation successful for code location tweet_assets." in validate.stdout + validate.stderr, validate.stdout[-2000:]
    assert "does not match" not in validate.stdout + validate.stderr, validate.stdout[-2000:]
    run = subprocess.run(
        # docs/assets.md's command: dg launch (dagster asset materialize is superseded, and needs -m)
        [str(BIN / "dg"), "launch", "--assets", "raw_tweets,clean_tweets,s3_parquet", "--partition-range", "2024-03-01...2024-03-03"],
        cwd=REPO, env={**env, "VIRTUAL_ENV": str(BIN.parent)}, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "RUN_SUCCESS" in run.stderr + run.stdout
    assert "does not match" not in run.stdout + run.stderr and "Warning" not in run.stdout + run.stderr, run.stderr[-2000:]
    for day in ("2024-03-01", "2024-03-02", "2024-03-03"):
        assert (tmp_path / "lake" / "tweets" / f"dt={day}" / "part-00000.parquet").is_file()


def test_ddl_command_prints_projection(tmp_path):
    out = subprocess.run([sys.executable, "-m", "tweet_assets.cli", "ddl", "--location", "s3://b/p/tweets"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "LOCATION 's3://b/p/tweets/'" in out.stdout and "'projection.dt.type'='date'" in out.stdout


def test_demo_rejects_bad_dates(tmp_path):
    out = subprocess.run([sys.executable, "-m", "tweet_assets.cli", "demo", "--start", "2024-13-01"], capture_output=True, text=True, env=_env(tmp_path), timeout=60)
    assert out.returncode == 2 and "is not a YYYY-MM-DD day" in out.stderr


def test_demo_before_the_start_date_or_after_yesterday_names_the_setting(monkeypatch, capsys):
    from tweet_assets import cli

    monkeypatch.setenv("TWEET_ASSETS_START_DATE", "2024-01-01")
    monkeypatch.setattr(cli, "run_job", lambda *a: pytest.fail("the job must not start"))
    with pytest.raises(SystemExit) as early:
        cli.main(["demo", "--start", "2023-12-30", "--end", "2024-01-02"])
    err = capsys.readouterr().err
    assert early.value.code == 2 and "2023-12-30 is before the first daily partition, 2024-01-01 (TWEET_ASSETS_START_DATE)" in err
    assert len(err.splitlines()) <= 3
    with pytest.raises(SystemExit) as late:
        cli.main(["demo", "--start", "2024-01-02", "--end", "2999-01-01"])
    assert late.value.code == 2 and "after the last complete UTC day" in capsys.readouterr().err


def test_a_failed_check_run_fails_the_demo(tmp_path, monkeypatch, capsys):
    """The demo's materialization succeeds but its check-only run (s3_parquet's freshness_check,
    left out of the job) fails: the demo says so on stderr and exits 1. It exited 0 before. The
    runs are stand-ins (the exit status is what is tested; the real runs are in the slow tests)."""
    from types import SimpleNamespace

    from tweet_assets import cli
    from tweet_assets.cli import demo

    for key, value in _env(tmp_path).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("TWEET_ASSETS_SOURCE", raising=False)
    run = SimpleNamespace(success=True, run_id="run-1", job_def=None)
    monkeypatch.setattr(demo, "run_job", lambda *args, **kwargs: run)
    monkeypatch.setattr(demo, "left_out_checks", lambda job: {"freshness_check"})
    checked = SimpleNamespace(success=False, run_id="check-run-1", all_events=[], get_asset_check_evaluations=lambda: [])
    monkeypatch.setattr(demo, "evaluate_checks", lambda checks, verbose=False: checked)
    monkeypatch.setattr(demo, "read_back", lambda lake_url: "(the table)")
    assert cli.main(["demo"]) == 1
    out, err = capsys.readouterr()
    assert "the check run check-run-1 failed" in err and "(the table)" in out
    checked.success = True
    assert cli.main(["demo"]) == 0


@pytest.mark.slow
def test_a_failed_demo_run_ends_with_one_readable_error_not_a_traceback(tmp_path, moto_server):
    env = _env(tmp_path, AWS_ENDPOINT_URL=moto_server, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_REGION="us-east-1")
    env["TWEET_ASSETS_LAKE_URL"] = "s3://no-such-demo-bucket/lake"
    out = subprocess.run([sys.executable, "-m", "tweet_assets.cli", "demo"], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 1
    tail = out.stderr.strip().splitlines()[-2:]
    assert tail[0].startswith("the run failed: ") and "s3://no-such-demo-bucket/lake/_tweet_assets_check/" in out.stderr and "NoSuchBucket" in out.stderr
    assert "DAGSTER_HOME" in tail[1] or str(tmp_path / "home") in tail[1]
    assert "Traceback" not in out.stderr.split("the run failed: ")[-1]


def test_make_dagit_on_a_fresh_clone_creates_dagster_home(tmp_path):
    """`make dagit` right after cloning: DAGSTER_HOME (.dagster_home) does not exist yet, and
    `dg dev` refuses a missing DAGSTER_HOME. A stand-in `dg` (in a stand-in venv whose setup is
    done) records what it was given, so nothing is installed or served. The new home gets a
    dagster.yaml with telemetry off (no "No dagster instance configuration file" warning)."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / ".installed").touch()
    probe = venv / "bin" / "dg"
    probe.write_text('#!/bin/sh\ntest -d "$DAGSTER_HOME" && echo "home ok: $DAGSTER_HOME $*"\n')
    probe.chmod(0o755)
    home = tmp_path / "fresh" / ".dagster_home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_")}
    env["DAGSTER_HOME"] = str(home)
    out = subprocess.run(["make", "-s", "-C", str(REPO), "dagit", f"VENV={venv}"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"home ok: {home} dev --host 127.0.0.1 --port 3000" and home.is_dir()
    assert (home / "dagster.yaml").read_text() == "telemetry:\n  enabled: false\n"
    (home / "dagster.yaml").write_text("# mine\n")  # an existing one is kept
    subprocess.run(["make", "-s", "-C", str(REPO), "dagit", f"VENV={venv}"], env=env, capture_output=True, text=True, timeout=60, check=True)
    assert (home / "dagster.yaml").read_text() == "# mine\n"


def test_make_ddl_prints_only_sql(tmp_path):
    """`make ddl > x.sql`: the recipe is not echoed, the first line is SQL."""
    venv = Path(sys.prefix)
    if not (venv / ".installed").exists():
        pytest.skip("needs the Makefile's venv (make setup)")
    out = subprocess.run(["make", "-C", str(REPO), "--no-print-directory", "ddl", f"VENV={venv}"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("CREATE EXTERNAL TABLE"), out.stdout[:200]


@pytest.mark.parametrize(
    ("argv", "env", "says"),
    [
        (["demo"], {"TWEET_ASSETS_START_DATE": "2024-13-01"}, "tweet-assets demo: TWEET_ASSETS_START_DATE='2024-13-01' is not a date"),
        (["demo"], {"TWEET_ASSETS_SOURCE": "replay", "TWEET_ASSETS_REPLAY_DIR": "/no/such/archive"}, "TWEET_ASSETS_REPLAY_DIR='/no/such/archive' does not exist"),
        (["demo"], {"TWEET_ASSETS_SOURCE": "bogus"}, "TWEET_ASSETS_SOURCE='bogus' is not a source"),
        (["demo"], {"TWEET_ASSETS_SAMPLE_POSTS": "many"}, "TWEET_ASSETS_SAMPLE_POSTS='many'"),
        (["demo"], {"TWEET_ASSETS_LAKE_URL": "s3:/bad"}, "TWEET_ASSETS_LAKE_URL='s3:/bad' is not s3://BUCKET/prefix nor a directory"),
        (["ddl", "--location", "not-a-url"], {}, "tweet-assets ddl: error: --location 'not-a-url' is not an S3 URL"),
        (["demo", "--start", "yesterday"], {}, "tweet-assets demo: error: --start 'yesterday' is not a YYYY-MM-DD day"),
        (["replay", "/no/such/archive"], {}, "tweet-assets replay: error: /no/such/archive: no such file or directory"),
    ],
)
def test_each_bad_setting_is_one_line_before_any_run(tmp_path, argv, env, says):
    environment = {**_env(tmp_path), **env}
    out = subprocess.run([sys.executable, "-m", "tweet_assets.cli", *argv], cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = [l for l in out.stderr.splitlines() if not l.startswith(("usage:", " "))]
    assert len(lines) == 1 and says in lines[0], out.stderr
    if "error:" in says:  # argparse errors show the subcommand's usage, not the top-level one
        assert out.stderr.startswith(f"usage: tweet-assets {argv[0]} ")
    assert "Traceback" not in out.stderr and out.stdout == ""
    assert not (tmp_path / "home" / "history").exists() and not list(tmp_path.glob("s3:*"))  # no run recorded, nothing written


def test_every_command_has_help_naming_its_variables():
    from tweet_assets.cli import build_parser

    parser = build_parser()
    for name, command in parser._tweet_assets_subparsers.items():
        text = command.format_help()
        assert command.description and "environment variables read:" in text, name
        for action in command._actions:
            assert action.help, (name, action.dest)
    assert "TWEET_ASSETS_SOURCE" in parser._tweet_assets_subparsers["demo"].format_help()
    assert "X_BEARER_TOKEN" in parser._tweet_assets_subparsers["stream"].format_help()


@pytest.mark.slow
def test_demo_output_is_one_line_per_run_and_ends_with_the_next_step(tmp_path):
    env = _env(tmp_path, TWEET_ASSETS_SAMPLE_POSTS="20")
    out = subprocess.run([sys.executable, "-m", "tweet_assets.cli", "demo"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout + out.stderr
    assert "DEBUG" not in text and " - dagster - " not in text  # Dagster's event log only with --verbose
    lines = out.stdout.splitlines()
    assert lines[0].startswith("tweet-assets demo: materializing raw_tweets → clean_tweets → s3_parquet for ") and "lake lake" not in lines[0]
    assert len([l for l in lines if l.startswith("run ") and " succeeded in " in l]) == 1  # one line for the one run
    assert lines[-1].startswith("next: make dagit")
    assert (tmp_path / "home" / "dagster.yaml").read_text().endswith("telemetry:\n  enabled: false\n")
    assert "No dagster instance configuration file" not in text
    assert "Warning" not in text, text[-3000:]  # #39.4: no warning of ours (nor of the libraries we call)
    # #39.1: the run is the code location's tweets_daily_job as Dagit files it; #39.2: then the check the
    # job leaves out (freshness_check, on its own sensor in production) is evaluated once, in its own run
    assert "s3_parquet freshness_check: passed: " in out.stdout, out.stdout
    runs = _run_records(env["DAGSTER_HOME"])
    assert [(r["job"], r["origin"], "freshness_check" in r["checks"]) for r in runs] == [
        ("tweets_daily_job", f"{LOCATION_NAME}/__repository__", False),
        ("__ASSET_JOB", f"{LOCATION_NAME}/__repository__", True),
    ], runs
    assert {"ids_unique_and_not_null", "published_schema_matches"} <= set(runs[0]["checks"]) and runs[1]["checks"] == ["freshness_check"], runs
    assert runs[1]["assets"] == []  # the check alone: nothing materialized again


@pytest.mark.slow
def test_replay_prints_one_line_per_run_into_its_own_lake(tmp_path, x_api_v2):
    """`tweet-assets replay` on a recorded archive: the plan, one progress line per run, a summary
    and the next step; no Dagster event log; the posts land in ./replay-lake, not the demo's ./lake."""
    env = _env(tmp_path)
    del env["TWEET_ASSETS_LAKE_URL"]
    out = subprocess.run([sys.executable, "-m", "tweet_assets.cli", "replay", str(x_api_v2 / "twarc-network-test-data")], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "DEBUG" not in out.stdout + out.stderr and " - dagster - " not in out.stdout + out.stderr
    lines = [l for l in out.stdout.splitlines() if l.strip()]
    assert lines[0].startswith("tweet-assets replay: ") and lines[0].endswith("lake replay-lake")
    assert len([l for l in lines if l.startswith("[1/1] ") and ": ok in " in l]) == 1
    assert lines[-2].startswith("1 of 1 run(s) succeeded") and lines[-1].startswith("next: make dagit")
    assert (tmp_path / "replay-lake" / "tweets" / "dt=2021-06-26" / "part-00000.parquet").is_file() and not (tmp_path / "lake").exists()
    assert [(r["job"], r["origin"]) for r in _run_records(env["DAGSTER_HOME"])] == [("tweets_daily_job", f"{LOCATION_NAME}/__repository__")]  # #39.1


def test_the_runs_warnings_are_printed_once_however_many_runs_repeat_them():
    """#29 point 8: a replay of N runs over one damaged archive logs the same warning in each run;
    the summary (cli.run_warnings, read from the real event log) names it once, in first-seen
    order, and leaves INFO/DEBUG lines out."""
    from dagster import DagsterInstance, job, op

    from tweet_assets.cli import run_warnings

    @op
    def reads_a_damaged_archive(context):
        context.log.info("read 100 posts")
        context.log.warning("archive.jsonl: line 7 is not JSON (quarantined)\ntraceback-like detail")
        context.log.warning("2021-06-12: 1 post without created_at")

    @job
    def replay_like():
        reads_a_damaged_archive()

    with DagsterInstance.ephemeral() as instance:
        run_ids = [replay_like.execute_in_process(instance=instance).run_id for _ in range(4)]
        assert run_warnings(instance, run_ids) == ["archive.jsonl: line 7 is not JSON (quarantined)", "2021-06-12: 1 post without created_at"]


def _run_records(home: str) -> list[dict]:
    """Each run in the instance at ``home``: job, partition tag, assets materialized, checks
    evaluated, and the code location it is filed under (``location/repository``, None without one)."""
    from dagster import DagsterEventType, DagsterInstance

    with DagsterInstance.from_config(home) as instance:
        runs = []
        for run in reversed(instance.get_runs()):
            events = [e.dagster_event for e in instance.all_logs(run.run_id) if e.dagster_event]
            runs.append({
                "job": run.job_name,
                "partition": run.tags.get("dagster/partition"),
                "assets": sorted(e.event_specific_data.materialization.asset_key.to_user_string() for e in events if e.event_type == DagsterEventType.ASSET_MATERIALIZATION),
                "checks": sorted(e.event_specific_data.check_name for e in events if e.event_type == DagsterEventType.ASSET_CHECK_EVALUATION),
                "origin": f"{origin.location_name}/{origin.repository_origin.repository_name}" if (origin := run.remote_job_origin) else None,
                # what Dagit compares with the loaded job's (a subset's lineage names the whole job's)
                "snapshot": getattr(instance.get_job_snapshot(run.job_snapshot_id).lineage_snapshot, "parent_snapshot_id", None) or run.job_snapshot_id,
            })
        return runs


@pytest.mark.slow
def test_materialize_runs_the_jobs_checks_of_each_asset_never_the_freshness_check(tmp_path):
    """#32.4: `tweet-assets materialize --select ASSET --partition DAY` (what the Airflow DAG's CLI-mode
    tasks run) is a run of tweets_daily_job with the job's checks of the asset, as Dagster resolves the
    job; `dagster asset materialize` (the implicit asset job) would add s3_parquet's freshness check."""
    from tweet_assets.definitions import defs

    home = tmp_path / "home"
    env = _env(tmp_path, TWEET_ASSETS_SAMPLE_POSTS="20", TWEET_ASSETS_START_DATE="2024-01-01")
    day = "2024-02-01"
    out = []
    for asset in ("raw_tweets", "clean_tweets", "s3_parquet"):
        done = subprocess.run([sys.executable, "-m", "tweet_assets.cli", "materialize", "--select", asset, "--partition", day], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0 and done.stderr == "", done.stderr[-3000:]
        out += done.stdout.splitlines()
    assert len(out) == 3 and all(line.startswith("run ") and f"of tweets_daily_job for {day}) succeeded in " in line for line in out), out
    job = defs.resolve_job_def("tweets_daily_job")
    job_checks = {}
    for key in job.asset_layer.asset_graph.asset_check_keys:
        job_checks.setdefault(key.asset_key.to_user_string(), []).append(key.name)
    runs = _run_records(str(home))
    assert [(r["job"], r["partition"], r["assets"]) for r in runs] == [("tweets_daily_job", day, [a]) for a in ("raw_tweets", "clean_tweets", "s3_parquet")]
    assert {r["assets"][0]: r["checks"] for r in runs} == {a: sorted(job_checks.get(a, [])) for a in ("raw_tweets", "clean_tweets", "s3_parquet")}
    assert {"ids_unique_and_not_null", "published_schema_matches"} <= {c for r in runs for c in r["checks"]}
    assert not [c for r in runs for c in r["checks"] if "freshness" in c], runs
    assert (tmp_path / "lake" / "tweets" / f"dt={day}" / "part-00000.parquet").exists()
    # #39.1: runs of the code location's job as Dagit files them (the Airflow DAG's CLI mode runs these):
    # location tweet_assets, its repository, and a subset's parent snapshot is the whole job's, the same for all
    assert [r["origin"] for r in runs] == [f"{LOCATION_NAME}/__repository__"] * 3, runs
    assert len({r["snapshot"] for r in runs}) == 1, runs


@pytest.mark.slow
def test_materialize_fails_with_the_failed_step_named_and_refuses_what_is_not_an_asset_or_a_day(tmp_path):
    env = _env(tmp_path, TWEET_ASSETS_SAMPLE_POSTS="20", TWEET_ASSETS_START_DATE="2024-01-01")
    command = [sys.executable, "-m", "tweet_assets.cli", "materialize"]
    # clean_tweets of a day whose raw_tweets was never landed: the step fails, exit status 1
    done = subprocess.run([*command, "--select", "clean_tweets", "--partition", "2024-02-02"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr[-3000:]
    failed = [line for line in done.stderr.splitlines() if line.startswith("failed: ")]
    assert len(failed) == 1 and failed[0].startswith("failed: clean_tweets: ") and "2024-02-02" in failed[0], done.stderr
    assert done.stderr.splitlines()[-1].endswith(f"failed; its log is in the Dagster instance at {tmp_path / 'home'} (Dagit → Runs)"), done.stderr
    assert "Traceback" not in done.stderr
    for argv, says in (
        (["--select", "raw_tweets,tweets_table", "--partition", "2024-02-02"], "'tweets_table' is not an asset of tweets_daily_job: choose from clean_tweets, raw_tweets, s3_parquet"),
        (["--partition", "02/02/2024"], "--partition '02/02/2024' is not a YYYY-MM-DD day"),
        (["--partition", "2099-01-01"], "--partition 2099-01-01 is after the last complete UTC day, "),
        (["--partition", "2023-12-31"], "--partition 2023-12-31 is before the first daily partition, 2024-01-01 (TWEET_ASSETS_START_DATE)"),
    ):
        done = subprocess.run([*command, *argv], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 2 and says in done.stderr, (argv, done.stderr)


SNAPSHOT_ID = """
from dagster import DagsterInstance
from tweet_assets.cli.runs import code_location
with DagsterInstance.ephemeral() as instance, code_location(instance) as location:
    print(location.get_repository("__repository__").get_full_job("tweets_daily_job").identifying_job_snapshot_id)
"""


@pytest.mark.slow
def test_the_job_snapshot_is_the_same_in_every_process(tmp_path):
    """#39.1: Dagit's code server and the command line compute tweets_daily_job's snapshot in two
    processes; Dagit warns "may be a different version" on a CLI run when they differ. Python's hash
    seed once decided the order of clean_tweets' two blocking checks (both outputs named `result`):
    seeds 1 and 8 gave two snapshot ids (partition_checks.own_output)."""
    env = _env(tmp_path, TWEET_ASSETS_START_DATE="2024-01-01")
    ids = set()
    for seed in ("1", "8", "9"):
        out = subprocess.run([sys.executable, "-c", SNAPSHOT_ID], env={**env, "PYTHONHASHSEED": seed}, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-3000:]
        ids.add(out.stdout.split()[-1])
    assert len(ids) == 1, ids


@pytest.mark.slow
def test_setup_prints_no_warning_of_ours(tmp_path):
    """#39.4: `make demo`'s set-up, as the Makefile runs it (a fresh venv, pip upgraded, this
    checkout installed editable through setuptools in an isolated build) prints no `Warning`: not
    setuptools' "`project.license` as a TOML table is deprecated" (an SPDX string now). The
    dependencies are left out (--no-deps): prebuilt wheels, the build of our own project is what
    warned. The demo's own output is checked in test_demo_output_is_one_line_per_run_...."""
    import venv

    venv.create(tmp_path / "venv", with_pip=True)
    pip = [str(tmp_path / "venv" / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    upgrade = subprocess.run([*pip, "install", "-U", "pip"], capture_output=True, text=True, timeout=300)
    assert upgrade.returncode == 0, upgrade.stderr[-2000:]
    # a copy of the checkout's sources (the build writes egg-info beside pyproject.toml)
    project = tmp_path / "project"
    project.mkdir()
    for name in ("pyproject.toml", "README.md", "tweet_assets"):
        source = REPO / name
        (subprocess.run(["cp", "-r", str(source), str(project / name)], check=True) if source.is_dir() else (project / name).write_bytes(source.read_bytes()))
    out = subprocess.run([*pip, "install", "--no-deps", "-e", "."], cwd=project, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Warning" not in out.stdout + out.stderr, (out.stdout + out.stderr)[-3000:]
