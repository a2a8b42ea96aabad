"""One real run of a day in a process of its own, which can stop itself (SIGSTOP) at a chosen
point, for the tests of #36 (tests/defs/test_concurrency.py) and its measurement (``main``).

``python -m tests.lake.fencing_run --lake URL --posts N --seed S --day D [--stop POINT] --marker FILE``
materializes raw_tweets → clean_tweets → s3_parquet (or ``--select``) for day D from the sample
source, against the Dagster instance of ``$DAGSTER_HOME`` (shared by the runs of a test), and prints
one JSON line: ``{"run_id", "success", "failure"}``. With ``--stop``, the process writes its pid to
FILE and stops itself (SIGSTOP: every thread, its lease heartbeat included) the first time it
reaches POINT; the test resumes it with SIGCONT:

- ``fetch``: after the source's first page of the day (the issue's local case 2: A stopped during its fetch);
- ``raw-write``: its raw object's write about to be sent (its lease checked, its expected version read);
- ``after-raw``: just after storing its raw object, before clean_tweets;
- ``copy``: s3_parquet's copy of the clean object about to be sent (its footer already read).

It runs against this checkout's code and against the code before fencing (``PYTHONPATH`` of an older
tree: the stop points are patched where each has them), so the same cases measure both.

``python -m tests.lake.fencing_run measure [--s3]`` runs the issue's cases 1 and 2 (run A 50 posts,
run B 80) on the local lake or moto S3 and prints posts in and published per run.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys

STOPS = ("fetch", "raw-write", "after-raw", "copy")


def _stop_here(marker: str) -> None:
    with open(marker + ".tmp", "w") as out:
        out.write(str(os.getpid()))
    os.replace(marker + ".tmp", marker)
    os.kill(os.getpid(), signal.SIGSTOP)


def _install_stop(point: str, marker: str) -> None:
    """Patch the process to stop itself once at ``point`` (see the module doc)."""
    from tweet_assets.lake.io_manager import LakeIOManager

    done = []

    def once():
        if not done:
            done.append(True)
            _stop_here(marker)

    if point == "fetch":
        from tweet_assets.sources.sample import SampleSource

        real_pages = SampleSource.day_pages

        def day_pages(self, day):
            for page in real_pages(self, day):
                yield page
                once()  # the first page is spooled; the next one is being fetched

        SampleSource.day_pages = day_pages
        return
    if point == "after-raw":
        real_output = LakeIOManager.handle_output

        def handle_output(self, context, obj):
            real_output(self, context, obj)
            if self._table(context.definition_metadata, context.asset_key)[0].endswith("raw_tweets"):
                once()

        LakeIOManager.handle_output = handle_output
        return
    table = "raw_tweets/" if point == "raw-write" else "tweets/"
    try:  # the fenced code: just before the conditional write is sent
        from tweet_assets.lake import fencing
    except ImportError:  # the code before fencing: its IO manager's write, after its lease check
        real_write = LakeIOManager._write

        def _write(self, lake, key, fmt, value):
            if key.startswith(table):
                once()
            return real_write(self, lake, key, fmt, value)

        LakeIOManager._write = _write
        return
    real_store = fencing.store

    def store(lake, leases, day, key, write, log=None):
        if key.startswith(table):
            def stopping(expect, meta):
                once()
                return write(expect, meta)

            return real_store(lake, leases, day, key, stopping, log)
        return real_store(lake, leases, day, key, write, log)

    fencing.store = store


def _innermost(error) -> str:
    """The message of the first error under Dagster's wrappers of a step failure (an IO manager's
    error is wrapped in DagsterExecutionHandleOutputError)."""
    while error.cls_name and error.cls_name.startswith("Dagster") and getattr(error, "cause", None) is not None:
        error = error.cause
    return error.message.strip()


def run_once(args) -> dict:
    from dagster import DagsterInstance

    from tests.helpers import resources, run
    from tweet_assets.sources.sample import SampleSource

    if args.stop:
        _install_stop(args.stop, args.marker)
    if os.environ.get("FENCING_TEST_MULTIPART_BYTES"):  # a small object as a multipart upload (case 3)
        from tweet_assets.lake.store import S3Lake

        S3Lake.MULTIPART_THRESHOLD = int(os.environ["FENCING_TEST_MULTIPART_BYTES"])
    env = {"AWS_ENDPOINT_URL": args.endpoint} if args.endpoint else None
    res = resources(args.lake, SampleSource(posts_per_day=args.posts, seed=args.seed), env=env)
    with DagsterInstance.get() as instance:
        result = run(res, args.day, instance=instance, selection=args.select.split(",") if args.select else None, raise_on_error=False)
        failure = "\n".join(_innermost(e.event_specific_data.error) for e in result.all_events if e.is_step_failure)
        warnings = [e.user_message for e in instance.all_logs(result.run_id) if e.level >= 30 and "stale write" in (e.user_message or "")]
    return {"run_id": result.run_id, "success": result.success, "failure": failure, "warnings": warnings}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lake", required=True)
    parser.add_argument("--endpoint", default="")
    parser.add_argument("--posts", type=int, required=True)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--day", default="2024-03-05")
    parser.add_argument("--stop", choices=STOPS)
    parser.add_argument("--marker", default="")
    parser.add_argument("--select", default="")
    args = parser.parse_args(argv)
    print(json.dumps(run_once(args)), flush=True)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["measure"]:
        from tests.lake.fencing_cases import measure

        sys.exit(measure(sys.argv[2:]))
    sys.exit(main())
