"""The cost of publishing a run's days as Hive objects and as one Iceberg commit, side by side.

Usage:
    python bench/table_formats.py                  # 1 day and a 30-day single-run backfill, 2,000 posts/day, 3 runs, local lake
    python bench/table_formats.py --s3             # the same on moto's S3 (and Glue for Iceberg) on 127.0.0.1
    python bench/table_formats.py --posts 500 --days 10 --runs 5

The sample source's days are landed and flattened once (``raw_tweets → clean_tweets``); then each
run materializes only the published asset over the same ``clean_tweets``, the Hive one (the lake IO
manager copies each day's object: a server-side copy on S3) and the Iceberg one (data files written
with µs timestamps, then one commit), for one day and for the whole range as one single-run backfill,
the formats taking turns. Figures, median of ``--runs``: the published step's own duration (Dagster's
STEP_SUCCESS ``duration_ms``: loading clean_tweets, leases, writing, metadata), and for Iceberg the
commit alone (the catalog transaction: manifests, manifest list, metadata JSON, the catalog's
compare-and-swap) and the snapshots and files it made. Prints a table and writes
``bench/out/table_formats.md``. A script that prints figures, not a timed test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
os.environ.setdefault("TWEET_ASSETS_START_DATE", "2006-03-21")
#: Dagster's console log at ERROR, as the CLI's quiet default.
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def _commit_timer():
    """Wrap IcebergTable._commit to record each commit's seconds (the catalog transaction alone)."""
    from tweet_assets.tables import iceberg

    spent: list[float] = []
    original = iceberg.IcebergTable._commit

    def timed(self, *args, **kwargs):
        began = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            spent.append(time.perf_counter() - began)

    iceberg.IcebergTable._commit = timed
    return spent


def _step_seconds(result, node: str) -> float:
    for event in result.all_events:
        if event.event_type_value == "STEP_SUCCESS" and event.step_key == node:
            return event.event_specific_data.duration_ms / 1000
    raise RuntimeError(f"no STEP_SUCCESS for {node}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=2000, help="posts per day of the sample source (default 2000)")
    parser.add_argument("--days", type=int, default=30, help="days of the backfill (default 30)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each case, median reported (default 3)")
    parser.add_argument("--s3", action="store_true", help="an S3 lake and a Glue catalog on moto's server (127.0.0.1)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="tweet_assets-bench-formats-"))
    os.environ["DAGSTER_HOME"] = str(work / "home")
    (work / "home").mkdir()
    (work / "home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    for key in [k for k in os.environ if k.startswith("PYICEBERG_")] + ["TWEET_ASSETS_ICEBERG_CATALOG", "TWEET_ASSETS_GLUE_DATABASE"]:
        os.environ.pop(key, None)
    server = None
    if args.s3:
        import boto3
        import logging

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": f"http://{host}:{port}"})
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        boto3.client("s3").create_bucket(Bucket=bucket)
        boto3.client("glue").create_database(DatabaseInput={"Name": "bench"})
        os.environ.update({"PYICEBERG_CATALOG__BENCH__TYPE": "glue", "TWEET_ASSETS_ICEBERG_CATALOG": "bench", "TWEET_ASSETS_GLUE_DATABASE": "bench"})
        lake_url = f"s3://{bucket}/lake"
    else:
        lake_url = str(work / "lake")
    os.environ["TWEET_ASSETS_LAKE_URL"] = lake_url

    from dagster import DagsterInstance, materialize
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    from tweet_assets.defs.pipeline import assets
    from tweet_assets.defs.pipeline.layout import PipelineLayout
    from tweet_assets.lake.io_manager import LakeIOManager
    from tweet_assets.settings import lake_from_env
    from tweet_assets.sources.sample import SampleSource
    from tweet_assets.tables.iceberg import IcebergTable

    spent = _commit_timer()
    hive = assets.s3_parquet_asset(PipelineLayout(table_format="hive"))
    ice = assets.s3_parquet_asset(PipelineLayout(table_format="iceberg"))
    first = date(2024, 1, 1)
    last = first + timedelta(days=args.days - 1)
    lake = lake_from_env()
    resources = {"source": SampleSource(posts_per_day=args.posts), "lake": lake, "io_manager": LakeIOManager(location=lake)}
    ranges = {"1 day": (first.isoformat(), first.isoformat()), f"{args.days}-day backfill": (first.isoformat(), last.isoformat())}

    def tags(start: str, end: str) -> dict:
        return {ASSET_PARTITION_RANGE_START_TAG: start, ASSET_PARTITION_RANGE_END_TAG: end}

    rows: dict[tuple[str, str], dict[str, list]] = {}
    with DagsterInstance.get() as instance:
        began = time.perf_counter()
        landed = materialize([assets.raw_tweets, assets.clean_tweets], resources=resources, instance=instance, tags=tags(first.isoformat(), last.isoformat()), run_config=QUIET)
        assert landed.success
        print(f"landed and flattened {args.days} day(s) × {args.posts:,} posts in {time.perf_counter() - began:.1f}s into {lake_url}", flush=True)
        for run in range(args.runs):
            for case, (start, end) in ranges.items():
                order = (("hive", hive), ("iceberg", ice)) if run % 2 == 0 else (("iceberg", ice), ("hive", hive))
                for name, published in order:
                    before = len(spent)
                    result = materialize([assets.raw_tweets, assets.clean_tweets, published], resources=resources, instance=instance, selection=[published], tags=tags(start, end), run_config=QUIET)
                    assert result.success
                    cell = rows.setdefault((case, name), {"step": [], "commit": [], "snapshots": []})
                    cell["step"].append(_step_seconds(result, "s3_parquet"))
                    cell["commit"].append(sum(spent[before:]))
                    cell["snapshots"].append(len(spent) - before)
        table = IcebergTable.open(lake.lake(), "tweets", "tweets").load()
        files = sum(1 for _ in table.scan().plan_files())
    if server is not None:
        server.stop()
    med = lambda values: statistics.median(values)  # noqa: E731
    lines = [
        f"Publishing {args.posts:,} posts/day, {'S3 + Glue on moto (127.0.0.1)' if args.s3 else 'local lake, embedded SQLite catalog'}, median of {args.runs} run(s) each, formats alternating",
        "",
        "| case | Hive: s3_parquet step | Iceberg: s3_parquet step | Iceberg/Hive | Iceberg commit alone | Iceberg commits per run |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for case in ranges:
        h, i = rows[(case, "hive")], rows[(case, "iceberg")]
        lines.append(
            f"| {case} | {med(h['step']):.2f} s | {med(i['step']):.2f} s | {med(i['step']) / med(h['step']):.1f}x | {med(i['commit']) * 1000:.0f} ms | {med(i['snapshots']):.0f} |"
        )
    lines += ["", f"the Iceberg table after the runs: {len(table.snapshots())} snapshot(s), {files} live data file(s) (one per day)"]
    text = "\n".join(lines)
    print("\n" + text)
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    (out / "table_formats.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
