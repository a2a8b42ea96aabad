"""A writer process for the two-writer tests (``python -m tests.tables.iceberg_writer '<json>'``).

It does what a run does to the Iceberg table, with the engine's own code: ``publish`` takes the
days' leases (as raw_tweets does), writes and commits the days (renewing the leases from storage
before each commit attempt, as s3_parquet does) and releases them; ``comply`` removes ids as the
compliance job does (:func:`tweet_assets.tables.removal.remove_posts`, waiting for a held day).

The parent forces the interleaving with events, never with time: the process prints one line per
event on stdout (``LEASED``, ``HELD <point>``, ``WAITING <day>``, ``COMMITTED <snapshot> <attempts>``,
``REMOVED <json>``, ``REFUSED <message>``) and, at each point named in ``hold``, waits for a ``GO``
line on stdin. pyiceberg's own log (its commit retries) goes to stderr.

The spec: ``{"mode", "lake", "run_id", "days": {day: [ids]}, "retweets": {id: retweeted_id},
"ids": [...], "hold": ["leased", "commit"]}``.
"""

from __future__ import annotations

import json
import logging
import os
import sys


def main() -> int:
    spec = json.loads(sys.argv[1])
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(name)s %(levelname)s %(message)s")
    import pyarrow as pa

    from tests.tables.rows import rows
    from tweet_assets.lake import leases as leases_module
    from tweet_assets.lake.leases import DayLeases, LeaseConflict, LeaseLost
    from tweet_assets.lake.store import open_lake
    from tweet_assets.tables.iceberg import IcebergTable, renew_leases
    from tweet_assets.tables.removal import remove_posts

    def say(line: str) -> None:
        print(line, flush=True)

    def hold(point: str) -> None:
        if point in spec.get("hold", []):
            say(f"HELD {point}")
            answer = sys.stdin.readline().strip()
            if answer != "GO":
                raise SystemExit(f"expected GO at {point}, got {answer!r}")

    def s3_client():
        import boto3

        return boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL"))

    lake = open_lake(spec["lake"], s3_client)
    table = IcebergTable.open(lake, "tweets", "tweets")
    run_id = spec["run_id"]
    if spec["mode"] == "publish":
        days = sorted(spec["days"])
        leases = DayLeases(lake, run_id, "raw_tweets")
        try:
            leases.acquire(days)
        except LeaseConflict as exc:
            say(f"REFUSED {exc}")
            return 3
        say("LEASED")
        hold("leased")
        retweets = {int(k): v for k, v in spec.get("retweets", {}).items()}

        def before_commit() -> None:  # paused here, then the leases are renewed from storage (a lost one refuses the commit)
            hold("commit")
            renew_leases(leases, days)

        try:
            commit = table.publish({day: (lambda d=day: iter([rows(d, spec["days"][d], retweets)])) for day in days}, run_id, before_commit=before_commit)
        except (LeaseConflict, LeaseLost) as exc:  # LeaseLost: its lease lapsed and another run took the day
            say(f"REFUSED {exc}")
            return 3
        leases.release(days)
        say(f"COMMITTED {commit.snapshot_id} {commit.attempts}")
        return 0
    if spec["mode"] == "comply":
        announced = []
        original = leases_module._sleep

        def waiting(seconds: float) -> None:  # the taker polls a held lease: say so once, then wait as it would
            if not announced:
                announced.append(True)
                say("WAITING")
            original(min(seconds, 0.05))

        leases_module._sleep = waiting
        done = remove_posts(table, pa.array(spec["ids"], pa.int64()), [], DayLeases(lake, run_id, "compliance_job delete"), wait_s=300)
        say("REMOVED " + json.dumps({"days": done.days, "removed": done.removal.removed_ids, "files_deleted": done.files_deleted}))
        return 0
    raise SystemExit(f"unknown mode {spec['mode']!r}")


if __name__ == "__main__":
    sys.exit(main())
