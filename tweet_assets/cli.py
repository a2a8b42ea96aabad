"""tweet-assets: the commands of the tweet_assets pipeline (demo, ddl, catalog, replay, stream, materialize).

``demo`` materializes a range of days through the real job (``raw_tweets → clean_tweets →
s3_parquet`` and its checks, one single-run backfill) into the lake configured by the environment
(default: the ``sample`` source into ``./lake``), then reads the published table back the way Athena
would, as hive-partitioned Parquet, with DuckDB, and prints it.

``ddl`` prints the DDL for a table location: Athena's ``CREATE EXTERNAL TABLE`` (default), or with
``--dialect redshift`` / ``--dialect snowflake`` the Redshift Spectrum or Snowflake setup.
``catalog`` registers (creates or updates) the table in the AWS Glue Data Catalog.
``replay PATH`` replays a twarc2 archive, materializing only the days it holds, nearby days grouped
into one run each (:mod:`tweet_assets.sources.replay_plan`), with a progress bar.
``stream`` runs the filtered-stream consumer (:mod:`tweet_assets.stream.service`: its variables).
``materialize --partition DAY`` runs ``tweets_daily_job`` for one day, optionally for some of its
assets only (``--select``), with the job's checks of them and never the freshness check: what the
Airflow DAG's tasks run (deploy/airflow/tweet_assets_dag.py).

Output: one line per run, warnings once, a summary; Dagster's event log with ``--verbose`` (and
always in ``DAGSTER_HOME``, where Dagit shows it). A wrong setting is one line, before any run.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import time
from datetime import datetime, timedelta, timezone

from tweet_assets import config
from tweet_assets.warehouses import DIALECTS
from tweet_assets.warehouses import ddl as warehouse_ddl
from tweet_assets.schema import DEFAULT_DATABASE, DEFAULT_TABLE
import tweet_assets.partitions as partitions  # the module: daily_partitions is built on first use, after the source is set
from tweet_assets.partitions import DAY_FORMAT, START_DATE_ENV, projection_start_date, start_date
from tweet_assets.sources.replay_plan import DEFAULT_MAX_GAP_DAYS, DEFAULT_MAX_RUN_DAYS


def _default_range(days: int = 3) -> tuple[str, str]:
    yesterday = datetime.now(timezone.utc).date() - timedelta(days=1)
    return (yesterday - timedelta(days=days - 1)).strftime(DAY_FORMAT), yesterday.strftime(DAY_FORMAT)


#: Dagster's console logger off below ERROR: the event log stays in DAGSTER_HOME (Dagit shows it);
#: ``--verbose`` prints it as well (Dagster docs, "Loggers": ``loggers.console.config.log_level``).
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
SILENT_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}

#: What ``demo`` and ``replay`` write to a new ``DAGSTER_HOME`` (as deploy/dagster.yaml: no telemetry).
DAGSTER_YAML = "# written by tweet-assets on first use (deploy/dagster.yaml is the production one)\ntelemetry:\n  enabled: false\n"

#: The environment variables each command reads (its --help lists them).
ENV_HELP = {
    "demo": ["TWEET_ASSETS_SOURCE (sample|replay|x_api|stream; default sample)", "TWEET_ASSETS_LAKE_URL (s3://bucket/prefix or a directory; default ./lake)",
             "TWEET_ASSETS_SAMPLE_POSTS (posts/day of the sample; 200)", "TWEET_ASSETS_REPLAY_DIR (for replay)", "TWEET_ASSETS_START_DATE (first partition; default: what the source reaches)",
             "DAGSTER_HOME (the Dagster instance; default ./.dagster_home)", "X_BEARER_TOKEN, X_QUERY, X_ACCOUNTS, X_FULL_ARCHIVE (x_api)", "AWS_REGION, AWS_ENDPOINT_URL, AWS_PROFILE (an s3:// lake)"],
    "ddl": ["TWEET_ASSETS_START_DATE (default of --first-day; else 2006-03-21)"],
    "catalog": ["TWEET_ASSETS_START_DATE (default of --first-day)", "AWS_REGION / AWS_DEFAULT_REGION, AWS_ENDPOINT_URL_GLUE / AWS_ENDPOINT_URL, AWS_PROFILE"],
    "replay": ["TWEET_ASSETS_LAKE_URL (default ./replay-lake: apart from the demo's ./lake)", "TWEET_ASSETS_START_DATE (first partition; default 2006-03-21)",
               "DAGSTER_HOME (default ./.dagster_home)", "AWS_REGION, AWS_ENDPOINT_URL, AWS_PROFILE (an s3:// lake)"],
    "stream": ["X_BEARER_TOKEN (app-only)", "TWEET_ASSETS_LAKE_URL", "TWEET_ASSETS_STREAM_RULES (JSON [{value, tag}] or @file)", "TWEET_ASSETS_STREAM_RULE_PREFIX, _PRUNE_FOREIGN, _SPOOL_DIR,",
               "  _SEGMENT_SECONDS, _SEGMENT_MB, _FSYNC, _STALL_S (tweet_assets/stream/service.py)"],
}

#: The replay's default lake, apart from the demo's ``./lake`` (synthetic and real posts never mix).
REPLAY_LAKE = "replay-lake"


class SettingError(ValueError):
    """A setting (variable or option) that would fail a run: one line saying what to set."""


def check_lake_url(url: str) -> str:
    """``url`` if it is ``s3://bucket[/prefix]`` or a plain directory path; a value that looks like a
    URL with another or a malformed scheme (``s3:/x``, ``gs://x``, ``file:x``) is refused rather than
    taken as a directory name inside the checkout.

    Raises:
        SettingError: naming ``TWEET_ASSETS_LAKE_URL`` and the accepted forms.
    """
    import re

    if url.startswith("s3://"):
        if not url[5:].split("/", 1)[0]:
            raise SettingError(f"TWEET_ASSETS_LAKE_URL={url!r} has no bucket: use s3://BUCKET/prefix")
        return url
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", url):
        raise SettingError(f"TWEET_ASSETS_LAKE_URL={url!r} is not s3://BUCKET/prefix nor a directory: fix the scheme (s3://) or give a local path")
    return url


def check_settings(command: str) -> None:
    """Everything a run reads from the environment, checked before it starts: the start date, the
    source (name, post count, replay directory, X settings), the lake URL.

    Raises:
        SettingError: the first wrong setting, in one line.
    """
    from tweet_assets.settings import lake_from_env, source_from_env

    try:
        config.check()
        start_date()
        source = source_from_env()
    except ValueError as exc:
        raise SettingError(str(exc)) from None
    if getattr(source, "source_name", "") == "replay":
        path = os.environ.get("TWEET_ASSETS_REPLAY_DIR", "").strip()
        if not os.path.exists(os.path.expanduser(path)):
            raise SettingError(f"TWEET_ASSETS_REPLAY_DIR={path!r} does not exist: point it at a twarc2 JSON-lines file or directory")
    check_lake_url(lake_from_env().url)


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


def run_warnings(instance, run_ids: list[str], limit: int = 20) -> list[str]:
    """The WARNING-or-worse messages of the runs' event logs, each once, in first-seen order."""
    import logging

    seen: dict[str, None] = {}
    for run_id in run_ids:
        for entry in instance.all_logs(run_id):
            if entry.level >= logging.WARNING and entry.user_message:
                seen.setdefault(entry.user_message.strip().splitlines()[0][:300], None)
    return list(seen)[:limit]


def run_job(start: str, end: str, verbose: bool = False, job=None):
    """Run ``tweets_daily_job`` for partitions ``start…end`` (inclusive) as one run, in process,
    recorded in the Dagster instance at ``DAGSTER_HOME`` (so Dagit shows it).

    Returns the ``ExecuteInProcessResult``. Raises ``dagster.DagsterError`` subclasses on failure.
    """
    from dagster import DagsterInstance
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    from tweet_assets.definitions import defs

    job = job or defs.resolve_job_def("tweets_daily_job")  # or a collection's (--collection)
    with DagsterInstance.get() as instance:
        result = job.execute_in_process(
            instance=instance,
            run_config={} if verbose else QUIET_RUN_CONFIG,
            tags={ASSET_PARTITION_RANGE_START_TAG: start, ASSET_PARTITION_RANGE_END_TAG: end},
        )
        for line in run_warnings(instance, [result.run_id]):
            print(f"warning: {line}", file=sys.stderr)
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

    from tweet_assets.definitions import defs

    job = job or defs.resolve_job_def("tweets_daily_job")
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
        result = job.execute_in_process(
            instance=instance,
            partition_key=day,
            run_config={} if verbose else SILENT_RUN_CONFIG,  # a failure is printed by the caller, in one line
            raise_on_error=False,
        )
        if result.success:  # a failed run's own lines ("Execution of step ... failed") say less than its error
            for line in run_warnings(instance, [result.run_id]):
                print(f"warning: {line}", file=sys.stderr)
        return result


def _run_failures(result) -> list[str]:
    """``step: first line of its error`` for each failed step of a run (a check that failed is in
    its asset check evaluation, not here)."""
    failures = []
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE" and event.event_specific_data and event.event_specific_data.error:
            error = event.event_specific_data.error
            while error.cause is not None:  # Dagster's wrapper ("Error occurred while loading input ...") → the cause
                error = error.cause
            failures.append(f"{event.step_key}: {_first_lines(error.message.strip(), 1)}")
    return failures


def _check_days(command, name: str, first_option: tuple[str, str], last_option: tuple[str, str], collection: str | None = None) -> None:
    """Before any run: the days of ``(option, value)`` are ``YYYY-MM-DD``, in order, the settings
    are right (:func:`check_settings`), and the days are daily partitions (from
    ``TWEET_ASSETS_START_DATE`` or the source's first day, or a collection's ``start_date``, to the
    last complete UTC day). Each problem is one line and exit status 2 (argparse's ``error``)."""
    (start_flag, start), (end_flag, end) = first_option, last_option
    for flag, value in (first_option, last_option):
        try:
            datetime.strptime(value, DAY_FORMAT)
        except ValueError:
            command.error(f"{flag} {value!r} is not a YYYY-MM-DD day")
    if start > end:
        command.error(f"{start_flag} {start} is after {end_flag} {end}")
    try:
        check_settings(name)
    except SettingError as exc:
        command.exit(2, f"tweet-assets {name}: {exc}\n")
    if collection:  # the collection's own partitions (its defs.yaml's start_date)
        try:
            days = _collection_job(collection)[0].partitions_def
        except LookupError as exc:
            command.error(str(exc))
        first, last, setting = days.start.strftime(DAY_FORMAT), days.get_last_partition_key(), f"start_date of collection {collection}"
    else:
        first, last, setting = start_date(), partitions.daily_partitions.get_last_partition_key(), START_DATE_ENV
    if start < first:
        command.error(
            f"{start_flag} {start} is before the first daily partition, {first} ({setting}): "
            f"pick a later day, or set {setting} to an earlier first day"
        )
    if last is None or end > last:
        command.error(f"{end_flag} {end} is after the last complete UTC day, {last}: a day's partition exists once the day has ended")


def _materialize(args, command) -> int:
    _check_days(command, "materialize", ("--partition", args.partition), ("--partition", args.partition), args.collection)
    home = ensure_dagster_home()
    select = [name.strip() for name in args.select.split(",") if name.strip()] if args.select else None
    started = time.monotonic()
    try:
        job = _collection_job(args.collection)[0] if args.collection else None
        result = materialize_day(args.partition, select, verbose=args.verbose, job=job)
    except LookupError as exc:
        command.error(str(exc))
    checks = sorted(e.check_name for e in result.get_asset_check_evaluations())
    failed_checks = sorted(e.check_name for e in result.get_asset_check_evaluations() if not e.passed)
    what = f"{', '.join(select) if select else 'every asset'} of {result.job_def.name} for {args.partition}"
    if not result.success:
        for line in _run_failures(result):
            print(f"failed: {line}", file=sys.stderr)
        print(f"run {result.run_id} ({what}) failed; its log is in the Dagster instance at {home} (Dagit → Runs)", file=sys.stderr)
        return 1
    print(f"run {result.run_id} ({what}) succeeded in {time.monotonic() - started:.1f}s; checks: {', '.join(checks) or 'none'}"
          + (f"; failed (WARN): {', '.join(failed_checks)}" if failed_checks else ""))
    return 0


#: What read_back says for a table without objects: every day so far without posts stores none.
NO_ROWS = "the published table has no rows yet (a day without posts stores no object)"


def read_back(lake_url: str, limit: int = 5) -> str:
    """Query the published table as Athena would see it (hive partitions, ``dt`` from the path)
    with DuckDB on a local lake, or pyarrow's S3 filesystem for an ``s3://`` lake. Returns text.
    """
    import duckdb

    con = duckdb.connect()
    if lake_url.startswith("s3://"):
        import pyarrow.dataset as ds
        import pyarrow.fs as pafs

        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        fs = pafs.S3FileSystem(endpoint_override=endpoint, region=os.environ.get("AWS_REGION", "us-east-1"))
        dataset = ds.dataset(lake_url[5:].rstrip("/") + "/tweets", filesystem=fs, format="parquet", partitioning="hive")
        if not dataset.files:
            return NO_ROWS
        con.register("tweets", dataset.to_table())
    else:
        pattern = os.path.join(os.path.abspath(lake_url), "tweets", "*", "*.parquet")
        if not glob.glob(pattern):
            return NO_ROWS
        con.execute(f"CREATE VIEW tweets AS SELECT * FROM read_parquet('{pattern}', hive_partitioning=true)")
    out = []
    per_day = con.execute(
        "SELECT dt, count(*) AS posts, count(DISTINCT author_id) AS authors, "
        "sum(CASE WHEN is_retweet THEN 1 ELSE 0 END) AS retweets, "
        "sum(coalesce(len(hashtags), 0)) AS hashtags, min(created_at) AS first, max(created_at) AS last "
        "FROM tweets GROUP BY dt ORDER BY dt"
    )
    out.append(_table(per_day.description, per_day.fetchall()))
    sample = con.execute(
        f"SELECT dt, id, created_at, author_username, left(replace(text, chr(10), ' '), 60) AS text, "
        f"like_count, hashtags FROM tweets ORDER BY created_at DESC LIMIT {int(limit)}"
    )
    out.append(_table(sample.description, sample.fetchall()))
    return "\n\n".join(out)


def _table(description, rows) -> str:
    headers = [d[0] for d in description]
    cells = [[str(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    line = lambda values: " | ".join(v.ljust(w) for v, w in zip(values, widths))  # noqa: E731
    return "\n".join([line(headers), "-+-".join("-" * w for w in widths), *(line(r) for r in cells)])


def _days(parser: argparse.ArgumentParser, spec: str) -> list[str]:
    """``START...END`` (or one day) → every UTC day from START to END inclusive, ``YYYY-MM-DD``."""
    start, _, end = spec.partition("...")
    try:
        first = datetime.strptime(start, DAY_FORMAT).date()
        last = datetime.strptime(end or start, DAY_FORMAT).date()
    except ValueError:
        parser.error(f"--days {spec!r}: use START...END with YYYY-MM-DD days")
    if first > last:
        parser.error(f"--days {spec!r}: START is after END")
    return [(first + timedelta(days=n)).strftime(DAY_FORMAT) for n in range((last - first).days + 1)]


def _catalog(args, days: list[str]) -> int:
    """Upsert the Glue table (AWS settings from the standard variables), then store ``days`` as its
    partitions; print what was done."""
    import json

    from tweet_assets.warehouses.glue import CatalogError, GlueCatalogResource, table_input

    if args.dry_run:
        print(json.dumps({"DatabaseName": args.database, "TableInput": table_input(args.location, args.table, args.first_day)}, indent=2))
        return 0
    glue = GlueCatalogResource(
        database=args.database,
        table=args.table,
        region_name=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None,
        endpoint_url=os.environ.get("AWS_ENDPOINT_URL_GLUE") or os.environ.get("AWS_ENDPOINT_URL") or None,
    )
    try:
        result = glue.upsert_table(args.location, first_day=args.first_day)
        created, existing = glue.register_partitions(args.location, days) if days else (0, 0)
    except CatalogError as exc:
        print(f"tweet-assets catalog: {exc}", file=sys.stderr)
        return 1
    detail = ", ".join(f"{k} {list(v)}" for k, v in (("added", result.added), ("removed", result.removed), ("retyped", result.retyped), ("also changed", result.other_changes)) if v and result.action == "updated")
    print(f"Glue table {result.database}.{result.table}: {result.action}" + (f" ({detail})" if detail else ""))
    if days:
        print(f"partitions: {created} created, {existing} already there")
    return 0


def _stream_collections(only: str | None = None) -> dict:
    """``{collection: [(value, tag)]}`` of the stream collections (tweet_assets/defs/*/defs.yaml), or of ``only``."""
    from tweet_assets.components.lookup import collection_yamls, find_collection

    found = {}
    for name in [only] if only else collection_yamls():
        collection = find_collection(name)
        if collection.stream is not None:
            found[name] = [(r.value, r.tag) for r in collection.stream.rules]
    if only and not found:
        raise ValueError(f"collection {only!r} has no stream rules: --collection names a collection with a stream: source")
    return found


def _stream(collection: str | None = None) -> int:
    """Run the filtered-stream consumer; a configuration or access problem is one clear line."""
    import logging

    from tweet_assets.lake.store import LakeError
    from tweet_assets.stream.reconnect import FatalStreamError
    from tweet_assets.stream.service import run

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return run(collections=_stream_collections(collection))
    except (FatalStreamError, LakeError, ValueError, LookupError) as exc:  # RulesError is a ValueError
        print(f"tweet-assets stream: {exc}", file=sys.stderr)
        return 2


def _first_lines(text: str, lines: int = 6) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()][:lines]
    return "\n".join(kept)


def _replay(args, parser) -> int:
    """Plan the archive's runs, print the plan, then run them (unless ``--plan-only``) with a rich
    progress bar, one line per run, the runs' warnings once and a summary at the end."""
    import logging

    from tweet_assets.sources.replay_plan import archive_days, describe_plan, plan_runs, replay_archive

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    path = os.path.abspath(os.path.expanduser(args.path))
    if not os.path.exists(path):
        parser.error(f"{args.path}: no such file or directory (a twarc2 JSON-lines file, plain or gzip, or a directory of them)")
    # the code location reads its source from the environment (tweet_assets.settings), before it loads
    os.environ["TWEET_ASSETS_SOURCE"] = "replay"
    os.environ["TWEET_ASSETS_REPLAY_DIR"] = path
    os.environ["TWEET_ASSETS_LAKE_URL"] = os.environ.get("TWEET_ASSETS_LAKE_URL", "").strip() or REPLAY_LAKE
    try:
        check_settings("replay")
        collection_job = _collection_job(args.collection, path) if args.collection else None  # (job, collection)
        days = archive_days(path)
        runs = plan_runs(days, max_gap_days=args.max_gap_days, max_run_days=args.max_run_days, first_day=(collection_job and collection_job[1].start_date) or start_date())
    except (FileNotFoundError, ValueError, LookupError) as exc:
        parser.exit(2, f"tweet-assets replay: {exc}\n")
    print(f"tweet-assets replay: {path}: {describe_plan(days, runs)}; lake {os.environ['TWEET_ASSETS_LAKE_URL']}", flush=True)
    if args.plan_only:
        for planned in runs:
            print(f"{planned}  {planned.partitions:>4} partition(s)  {planned.days_with_posts:>4} with posts  {planned.posts:>8,} posts")
        return 0
    home = ensure_dagster_home()
    from dagster import DagsterInstance
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from tweet_assets.definitions import defs

    job = collection_job[0] if collection_job else defs.resolve_job_def("tweets_daily_job")
    started = time.monotonic()
    with DagsterInstance.get() as instance, Progress(TextColumn("replay"), BarColumn(), MofNCompleteColumn(), TextColumn("runs"), TimeElapsedColumn(), transient=True) as bar:
        task = bar.add_task("runs", total=len(runs))

        def execute(planned):
            return job.execute_in_process(
                instance=instance,
                run_config={} if args.verbose else QUIET_RUN_CONFIG,
                tags={ASSET_PARTITION_RANGE_START_TAG: planned.start, ASSET_PARTITION_RANGE_END_TAG: planned.end, "tweet_assets/replay": "archive"},
                raise_on_error=False,
            )

        def progress(line: str) -> None:
            bar.console.print(line, highlight=False, soft_wrap=True)
            bar.advance(task)

        outcomes = replay_archive(runs, execute, progress=progress)
        warned = run_warnings(instance, [o.run_id for o in outcomes if o.run_id])
    for line in warned:
        print(f"warning: {line}", file=sys.stderr)
    failed = [o for o in outcomes if not o.success]
    print(f"{len(outcomes) - len(failed)} of {len(runs)} run(s) succeeded in {time.monotonic() - started:.1f}s (lake {os.environ['TWEET_ASSETS_LAKE_URL']}, DAGSTER_HOME {home})")
    print("next: make dagit (Dagit on http://127.0.0.1:3000 shows these runs; the lake is queried as in README.md)")
    return 1 if failed or len(outcomes) < len(runs) else 0


def _epilog(command: str) -> str:
    return "environment variables read:\n" + "\n".join(f"  {line}" for line in ENV_HELP[command])


def _collection_job(name: str, replay_path: str | None = None):
    """``(<name>_daily_job, the TweetCollection)`` (tweet_assets.components.lookup); LookupError names the collections there are."""
    from tweet_assets.components.lookup import collection_job

    return collection_job(name, replay_path)


def _collection_ddl_defaults(args) -> None:
    """``ddl --collection NAME``: the collection's table name, lake folder and first day where not given."""
    from tweet_assets.components.lookup import find_collection

    collection = find_collection(args.collection)
    if args.location == DEFAULT_LOCATION:
        args.location = DEFAULT_LOCATION.replace("/tweets/", f"/{collection.name}/tweets/")
    if args.table == DEFAULT_TABLE:
        args.table = collection.table or collection.name
    if args.first_day is None and collection.start_date:
        args.first_day = collection.start_date


DEFAULT_LOCATION = "s3://YOUR-BUCKET/tweet_assets/tweets/"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: ``tweet-assets {demo,ddl,catalog,replay,stream}``, each with its help,
    its options' help and the environment variables it reads (``--help``)."""
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(prog="tweet-assets", description=__doc__.split("\n\n")[0].split(": ", 1)[1], formatter_class=formatter,
                                     epilog="Run `tweet-assets COMMAND --help` for a command's options and variables. Docs: README.md, docs/.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    start, end = _default_range()
    demo = sub.add_parser("demo", help="materialize a range of days into the lake and read the table back",
                          description="Materialize raw_tweets → clean_tweets → s3_parquet (and their checks) for a range of days as one run, recorded in DAGSTER_HOME, then print the published table as Athena reads it.",
                          epilog=_epilog("demo"), formatter_class=formatter)
    demo.add_argument("--start", default=start, help=f"first day, YYYY-MM-DD (default {start})")
    demo.add_argument("--end", default=end, help=f"last day, inclusive (default {end})")
    ddl = sub.add_parser("ddl", help="print the DDL of a warehouse (Athena by default, Redshift Spectrum, Snowflake)",
                         description="Print the CREATE statements for the published table at --location (SQL only on stdout: `tweet-assets ddl > table.sql`).",
                         epilog=_epilog("ddl"), formatter_class=formatter)
    catalog = sub.add_parser("catalog", help="create or update the table in the AWS Glue Data Catalog",
                             description="Create or update the table in the AWS Glue Data Catalog (partition projection on dt), optionally storing partitions.",
                             epilog=_epilog("catalog"), formatter_class=formatter)
    for command in (ddl, catalog):
        command.add_argument("--location", default=DEFAULT_LOCATION, help="the table's S3 prefix, s3://BUCKET/…/tweets/ (default a placeholder)")
        command.add_argument("--table", default=DEFAULT_TABLE, help=f"the table's name (default {DEFAULT_TABLE})")
        command.add_argument("--database", default=DEFAULT_DATABASE, help=f"the Glue database (Redshift: the external schema's; default {DEFAULT_DATABASE})")
        command.add_argument("--first-day", default=None, help="first dt of the partition projection range, YYYY-MM-DD (default TWEET_ASSETS_START_DATE or 2006-03-21)")
    ddl.add_argument("--dialect", choices=DIALECTS, default="athena", help="the warehouse (default athena)")
    ddl.add_argument("--iam-role", help="redshift: the IAM_ROLE ARN; snowflake: the STORAGE_AWS_ROLE_ARN (placeholders if unset)")
    ddl.add_argument("--days", help="redshift: add the partitions of these days, START...END (YYYY-MM-DD, inclusive)")
    catalog.add_argument("--days", help="also store these days as Glue partitions (for Redshift Spectrum, EMR), START...END")
    catalog.add_argument("--dry-run", action="store_true", help="print the Glue TableInput as JSON, call nothing")
    replay = sub.add_parser("replay", help="replay a twarc2 archive: materialize only the days it holds, nearby days in one run",
                            description="Replay a twarc2 archive into the lake (default ./replay-lake, apart from the demo's ./lake): the days it holds, nearby days grouped into one run each, with a progress bar.",
                            epilog=_epilog("replay"), formatter_class=formatter)
    replay.add_argument("path", help="a twarc2 JSON-lines file (plain or gzip) or a directory of them")
    replay.add_argument("--max-gap-days", type=int, default=DEFAULT_MAX_GAP_DAYS, help=f"empty days allowed inside one run (default {DEFAULT_MAX_GAP_DAYS})")
    replay.add_argument("--max-run-days", type=int, default=DEFAULT_MAX_RUN_DAYS, help=f"partitions per run at most (default {DEFAULT_MAX_RUN_DAYS})")
    replay.add_argument("--plan-only", action="store_true", help="print the runs, materialize nothing")
    stream = sub.add_parser("stream", help="land the X API v2 filtered stream in the lake until stopped",
                            description="Run the filtered-stream consumer: sync the rules, land posts as 5-minute gzip JSON-lines segments under raw_stream/, reconnect with backoff, until stopped (SIGTERM/Ctrl-C). See docs/stream.md.",
                            epilog=_epilog("stream"), formatter_class=formatter)
    for command in (demo, ddl, replay, stream):  # a collection of tweet_assets/defs/<name>/defs.yaml (docs/collections.md)
        command.add_argument("--collection", metavar="NAME", help="act on this collection (default: the environment's, tweets)")
    for command in (demo, replay):
        command.add_argument("-v", "--verbose", action="store_true", help="also print Dagster's event log (always stored in DAGSTER_HOME; Dagit shows it)")
    materialize = sub.add_parser("materialize", help="run tweets_daily_job for one day: some or all of its assets, with the job's checks",
                                 description="Run tweets_daily_job for one partition (UTC day) in process, recorded in DAGSTER_HOME: the assets of --select (default all) with the job's checks of them, never the freshness check (`dagster asset materialize` would add it). What the Airflow DAG's tasks run.",
                                 epilog=_epilog("demo"), formatter_class=formatter)
    materialize.add_argument("--partition", required=True, help="the day, YYYY-MM-DD (UTC)")
    materialize.add_argument("--select", help="comma-separated assets of the job (default all: raw_tweets,clean_tweets,s3_parquet)")
    materialize.add_argument("--collection", metavar="NAME", help="run this collection's job (default: the environment's, tweets)")
    materialize.add_argument("-v", "--verbose", action="store_true", help="also print Dagster's event log (always stored in DAGSTER_HOME; Dagit shows it)")
    parser._tweet_assets_subparsers = {"demo": demo, "ddl": ddl, "catalog": catalog, "replay": replay, "stream": stream, "materialize": materialize}  # noqa: SLF001
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    command = parser._tweet_assets_subparsers[args.command]  # noqa: SLF001 - errors show the subcommand's usage

    if args.command == "stream":
        return _stream(args.collection)
    if args.command == "replay":
        return _replay(args, command)
    if args.command == "materialize":
        return _materialize(args, command)

    if args.command == "ddl" and args.collection:
        try:
            _collection_ddl_defaults(args)
        except LookupError as exc:
            command.error(str(exc))
    if args.command in ("ddl", "catalog"):
        if not args.location.startswith("s3://") or not args.location[5:].split("/", 1)[0]:
            command.error(f"--location {args.location!r} is not an S3 URL: use s3://BUCKET/prefix/tweets/")
        try:
            args.first_day = args.first_day or projection_start_date()
            datetime.strptime(args.first_day, DAY_FORMAT)
        except ValueError as exc:
            command.error(str(exc) if START_DATE_ENV in str(exc) else f"--first-day {args.first_day!r} is not a YYYY-MM-DD day")
        # names go into SQL: refused unless plain identifiers (warehouses/names.py)
        from tweet_assets.warehouses.names import identifier

        try:
            identifier(args.table, "table"), identifier(args.database, "database")
        except ValueError as exc:
            print(f"tweet-assets {args.command}: {exc}", file=sys.stderr)
            return 2
    if args.command == "ddl":
        days = _days(command, args.days) if args.days else ()
        print(warehouse_ddl(args.dialect, args.location, table=args.table, database=args.database, first_day=args.first_day, iam_role=args.iam_role, days=days), end="")
        return 0
    if args.command == "catalog":
        return _catalog(args, _days(command, args.days) if args.days else [])

    _check_days(command, "demo", ("--start", args.start), ("--end", args.end), args.collection)
    home = ensure_dagster_home()
    lake_url = os.environ.get("TWEET_ASSETS_LAKE_URL", "").strip() or "lake"
    source = os.environ.get("TWEET_ASSETS_SOURCE", "sample")
    print(f"tweet-assets demo: materializing raw_tweets → clean_tweets → s3_parquet for {args.start}…{args.end} (source {source}, into {lake_url}, DAGSTER_HOME {home})", flush=True)
    started = time.monotonic()
    try:
        result = run_job(args.start, args.end, verbose=args.verbose, job=_collection_job(args.collection)[0] if args.collection else None)
    except Exception as exc:  # noqa: BLE001 - a failed step: one readable line, the whole log is in Dagit
        print(f"the run failed: {type(exc).__name__}: {_first_lines(str(exc))}", file=sys.stderr)
        print(f"the full log is in the Dagster instance at {home} (make dagit → Runs)", file=sys.stderr)
        return 1
    if not result.success:
        print(f"the run failed; its log is in the Dagster instance at {home} (make dagit → Runs)", file=sys.stderr)
        return 1
    print(f"run {result.run_id} succeeded in {time.monotonic() - started:.1f}s\n")
    print("the published table, read back as Athena reads it (hive-partitioned Parquet, DuckDB):\n")
    print(read_back(f"{lake_url.rstrip('/')}/{args.collection}" if args.collection else lake_url))  # a collection's folder holds its tweets/
    print("\nthe command itself: . .venv/bin/activate, then tweet-assets --help (README.md, docs/)")
    print(f"next: make dagit (Dagit on http://127.0.0.1:3000: the run, each day's checks, the lineage); query: duckdb -c \"SELECT count(*) FROM read_parquet('{lake_url}/tweets/dt=*/*.parquet', hive_partitioning=true)\"")
    return 0


if __name__ == "__main__":
    sys.exit(main())
