"""``tweet-assets demo``: materialize a range of days through the real job (``raw_tweets →
clean_tweets → s3_parquet`` and its checks, one single-run backfill) into the lake configured by the
environment (default: the ``sample`` source into ``./lake``), then read the published table back the
way Athena would, as hive-partitioned Parquet, with DuckDB, and print it."""

from __future__ import annotations

import argparse
import glob
import os
import sys
import time

from tweet_assets.cli.checks import check_days, collection_job, default_range
from tweet_assets.cli.output import first_lines, run_failures, table
from tweet_assets.cli.runs import ensure_dagster_home, evaluate_checks, left_out_checks, own_job, run_job
from tweet_assets.schema import DEFAULT_TABLE
from tweet_assets.tables import table_format

NAME = "demo"
#: The environment variables the command reads (its --help lists them; ``materialize`` reads the same).
ENV = [
    "TWEET_ASSETS_SOURCE (sample|replay|x_api|stream; default sample)", "TWEET_ASSETS_LAKE_URL (s3://bucket/prefix or a directory; default ./lake)",
    "TWEET_ASSETS_SAMPLE_POSTS (posts/day of the sample; 200)", "TWEET_ASSETS_REPLAY_DIR (for replay)", "TWEET_ASSETS_START_DATE (first partition; default: what the source reaches)",
    "TWEET_ASSETS_TABLE_FORMAT (hive|iceberg; default hive), TWEET_ASSETS_ICEBERG_CATALOG (default: the embedded SQLite catalog of a local lake)",
    "DAGSTER_HOME (the Dagster instance; default ./.dagster_home)", "X_BEARER_TOKEN, X_QUERY, X_ACCOUNTS, X_FULL_ARCHIVE (x_api)", "AWS_REGION, AWS_ENDPOINT_URL, AWS_PROFILE (an s3:// lake)",
]

#: What read_back says for a table without objects: every day so far without posts stores none.
NO_ROWS = "the published table has no rows yet (a day without posts stores no object)"


def add_parser(sub, formatter, epilog) -> argparse.ArgumentParser:
    start, end = default_range()
    demo = sub.add_parser(NAME, help="materialize a range of days into the lake and read the table back",
                          description="Materialize raw_tweets → clean_tweets → s3_parquet (and their checks) for a range of days as one run, recorded in DAGSTER_HOME, then print the published table as Athena reads it.",
                          epilog=epilog(ENV), formatter_class=formatter)
    demo.add_argument("--start", default=start, help=f"first day, YYYY-MM-DD (default {start})")
    demo.add_argument("--end", default=end, help=f"last day, inclusive (default {end})")
    demo.add_argument("--collection", metavar="NAME", help="act on this collection (default: the environment's, tweets)")
    demo.add_argument("-v", "--verbose", action="store_true", help="also print Dagster's event log (always stored in DAGSTER_HOME; Dagit shows it)")
    return demo


def run(args, command: argparse.ArgumentParser) -> int:
    check_days(command, NAME, ("--start", args.start), ("--end", args.end), args.collection)
    home = ensure_dagster_home()
    lake_url = os.environ.get("TWEET_ASSETS_LAKE_URL", "").strip() or "lake"
    source = os.environ.get("TWEET_ASSETS_SOURCE", "sample")
    print(f"tweet-assets demo: materializing raw_tweets → clean_tweets → s3_parquet for {args.start}…{args.end} (source {source}, into {lake_url}, DAGSTER_HOME {home})", flush=True)
    started = time.monotonic()
    try:
        job, collection = collection_job(args.collection) if args.collection else (None, None)
        result = run_job(args.start, args.end, verbose=args.verbose, job=own_job(job) if job is not None else None)
    except Exception as exc:  # noqa: BLE001 - a failed step: one readable line, the whole log is in Dagit
        print(f"the run failed: {type(exc).__name__}: {first_lines(str(exc))}", file=sys.stderr)
        print(f"the full log is in the Dagster instance at {home} (make dagit → Runs)", file=sys.stderr)
        return 1
    if not result.success:
        print(f"the run failed; its log is in the Dagster instance at {home} (make dagit → Runs)", file=sys.stderr)
        return 1
    print(f"run {result.run_id} succeeded in {time.monotonic() - started:.1f}s")
    # the checks the job leaves out (s3_parquet's freshness_check, on its own sensor in production),
    # evaluated once here so that Dagit reads every check of the demo's assets evaluated (#39.2)
    checked = evaluate_checks(left_out_checks(result.job_def), verbose=args.verbose)
    for evaluation in checked.get_asset_check_evaluations() if checked else ():
        outcome = "passed" if evaluation.passed else f"FAILED ({evaluation.severity.value})"
        print(f"{evaluation.asset_key.to_user_string()} {evaluation.check_name}: {outcome}: {first_lines(evaluation.description or '', 1)}")
    status = 0
    if checked is not None and not checked.success:  # the table is still shown; the exit status says it failed
        print(f"the check run {checked.run_id} failed: {'; '.join(run_failures(checked)) or f'its log is in the Dagster instance at {home}'}", file=sys.stderr)
        status = 1
    print()
    if (getattr(collection, "table_format", None) or table_format()) == "iceberg":  # tweet_assets.tables
        name = (collection.table or collection.name) if collection else (os.environ.get("TWEET_ASSETS_GLUE_TABLE", "").strip() or DEFAULT_TABLE)
        text, described = read_back_iceberg(lake_url, f"{args.collection}/tweets" if args.collection else "tweets", name)
        print(f"the published Iceberg table {described}, read back through pyiceberg into DuckDB:\n")
        print(text)
        print("\nthe command itself: . .venv/bin/activate, then tweet-assets --help (README.md, docs/)")
        print("next: make dagit (each partition's snapshot in its materialization); query: docs/warehouses.md (pyiceberg, polars.scan_iceberg, Athena)")
        return status
    print("the published table, read back as Athena reads it (hive-partitioned Parquet, DuckDB):\n")
    print(read_back(f"{lake_url.rstrip('/')}/{args.collection}" if args.collection else lake_url))  # a collection's folder holds its tweets/
    print("\nthe command itself: . .venv/bin/activate, then tweet-assets --help (README.md, docs/)")
    print(f"next: make dagit (Dagit on http://127.0.0.1:3000: the run, each day's checks, the lineage); query: duckdb -c \"SELECT count(*) FROM read_parquet('{lake_url}/tweets/dt=*/*.parquet', hive_partitioning=true)\"")
    return status


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
    return _summary(con, limit)


def read_back_iceberg(lake_url: str, table_path: str = "tweets", name: str = DEFAULT_TABLE, limit: int = 5) -> tuple[str, str]:
    """Read the Iceberg table of lake folder ``table_path`` through pyiceberg's scan into DuckDB
    (``dt``: the UTC day of ``created_at``) and summarize it as :func:`read_back` does; returns
    ``(text, "<database>.<table> (catalog …, snapshot …)")``."""
    import duckdb
    import pyarrow as pa

    from tweet_assets.settings import lake_from_env
    from tweet_assets.tables.iceberg import IcebergTable

    published = IcebergTable.open(lake_from_env({**os.environ, "TWEET_ASSETS_LAKE_URL": lake_url}).lake(), table_path, name)
    loaded = published.load()
    described = f"{published.qualified_name} (catalog {published.catalog_label}, snapshot {loaded.current_snapshot().snapshot_id if loaded and loaded.current_snapshot() else 'none'})"
    if loaded is None or loaded.current_snapshot() is None:
        return NO_ROWS, described
    rows = loaded.scan().to_arrow()
    if not rows.num_rows:
        return NO_ROWS, described
    rows = rows.append_column("dt", rows.column("created_at").cast(pa.date32()))  # the UTC day (the timestamps are UTC)
    con = duckdb.connect()
    con.register("tweets", rows)
    return _summary(con, limit), described


def _summary(con, limit: int) -> str:
    """Posts per day and the newest posts of the view ``tweets`` (with a ``dt`` column)."""
    out = []
    per_day = con.execute(
        "SELECT dt, count(*) AS posts, count(DISTINCT author_id) AS authors, "
        "sum(CASE WHEN is_retweet THEN 1 ELSE 0 END) AS retweets, "
        "sum(coalesce(len(hashtags), 0)) AS hashtags, min(created_at) AS first, max(created_at) AS last "
        "FROM tweets GROUP BY dt ORDER BY dt"
    )
    out.append(table(per_day.description, per_day.fetchall()))
    sample = con.execute(
        f"SELECT dt, id, created_at, author_username, left(replace(text, chr(10), ' '), 60) AS text, "
        f"like_count, hashtags FROM tweets ORDER BY created_at DESC LIMIT {int(limit)}"
    )
    out.append(table(sample.description, sample.fetchall()))
    return "\n\n".join(out)
