"""Replay the sparse multi-year corpus (bench/sparse_corpus.py) end to end through Dagster (#17).

Rows (one run each; the machine is shared, so wall times are noisy):

- ``before``: the README's way, one ``dagster asset materialize --partition-range`` over the
  archive's span; ``--before-days N`` limits it to the span's first N days (a full 5,583-day range
  took 47 minutes in the issue) and the row says so;
- ``after``: ``tweet-assets replay CORPUS`` (only the archive's days, nearby days in one run);
- ``dagster``: Dagster alone for the same runs: ``bench/dagster_floor.py`` over the ranges
  ``tweet-assets replay`` plans for the corpus (the pipeline's shape, bodies that return at once):
  the part of ``after`` no change to the project's code can remove.

Each is its own process with a fresh ``DAGSTER_HOME`` and local lake; figures: wall and CPU
seconds, peak RSS (``os.wait4``), runs and partitions materialized, objects and bytes per table.

    python bench/replay_sparse.py [--before-days 365] [--only before,after,dagster] [--profile]

``--code DIR`` runs ``before`` with an older checkout's package (``git archive <commit>
tweet_assets | tar -x -C DIR``). ``--profile`` runs ``after`` under pyinstrument (``pip install pyinstrument`` in the venv first)
and writes ``bench/out/replay_sparse_profile.txt``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from sparse_corpus import sparse_corpus  # noqa: E402

BIN = Path(sys.executable).parent
OUT = HERE / "out"


def _measure(argv: list[str], env: dict, cwd: str | None = None) -> tuple[float, float, int, str]:
    """(wall s, CPU s, peak RSS bytes, output tail) of one process."""
    started = time.monotonic()
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = proc.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    if status != 0:
        sys.exit(f"{argv[0]} failed ({status}):\n{out[-3000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024, out


def _lake_figures(lake: Path) -> dict:
    objects: Counter = Counter()
    size: Counter = Counter()
    empty: Counter = Counter()
    for path in lake.rglob("*"):
        parts = path.relative_to(lake).parts
        if path.is_file() and not any(part.startswith(("_", ".")) for part in parts):  # not the lake's bookkeeping (leases, lineage, locks)
            table = parts[0]
            objects[table] += 1
            size[table] += path.stat().st_size
    return {"objects": dict(objects), "bytes": dict(size), "empty": dict(empty)}


def _runs(home: Path) -> tuple[int, int]:
    """(runs, partitions materialized of s3_parquet) recorded in the instance at ``home``."""
    code = (
        "from dagster import DagsterInstance, AssetKey;"
        "i=DagsterInstance.get();"
        "print(len(i.get_run_records()), len(i.get_materialized_partitions(AssetKey('s3_parquet'))))"
    )
    out = subprocess.run([str(BIN / "python"), "-c", code], env={**os.environ, "DAGSTER_HOME": str(home)}, capture_output=True, text=True, check=True)
    runs, parts = out.stdout.split()
    return int(runs), int(parts)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before-days", type=int, default=365, help="days of the span the 'before' range covers (0: the whole span)")
    parser.add_argument("--only", default="before,after,dagster")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--code", help="a checkout's directory to run the 'before' row with (e.g. git archive <commit> tweet_assets | tar -x -C DIR)")
    args = parser.parse_args()
    corpus = sparse_corpus()
    first, last = date(2006, 3, 21), date(2021, 7, 2)
    rows = []
    for mode in args.only.split(","):
        work = Path(tempfile.mkdtemp(prefix=f"replay-sparse-{mode}-"))
        home, lake = work / "home", work / "lake"
        home.mkdir()
        env = {**os.environ, "DAGSTER_HOME": str(home), "TWEET_ASSETS_LAKE_URL": str(lake), "TWEET_ASSETS_SOURCE": "replay", "TWEET_ASSETS_REPLAY_DIR": str(corpus)}
        if mode == "dagster":
            from tweet_assets.sources.replay_plan import archive_days, plan_runs

            runs = plan_runs(archive_days(str(corpus)), first_day=first.isoformat())
            argv = [str(BIN / "python"), str(HERE / "dagster_floor.py"), *(f"{r.start}…{r.end}" for r in runs)]
            label = f"Dagster alone: the same {len(runs)} runs, bodies that return at once (bench/dagster_floor.py)"
        elif mode == "before":
            end = last if not args.before_days else first + timedelta(days=args.before_days - 1)
            argv = [str(BIN / "dagster"), "asset", "materialize", "-m", "tweet_assets.definitions", "--select", "raw_tweets,clean_tweets,s3_parquet", "--partition-range", f"{first}...{end}"]
            label = f"before: one --partition-range {first}...{end} ({(end - first).days + 1:,} days)"
        else:
            argv = [str(BIN / "tweet-assets"), "replay", str(corpus)]
            if args.profile:
                OUT.mkdir(exist_ok=True)
                argv = [str(BIN / "python"), "-m", "pyinstrument", "-o", str(OUT / "replay_sparse_profile.txt"), str(BIN / "tweet-assets"), "replay", str(corpus)]
            label = "after: tweet-assets replay (the archive's days only)"
        cwd = None
        if mode == "before" and args.code:  # that checkout's package, ahead of the editable install
            env["PYTHONPATH"], cwd = args.code, args.code
            label += f" [code: {args.code}]"
        wall, cpu, rss, out = _measure(argv, env, cwd)
        if mode == "dagster":
            counts = dict(item.split("=") for item in out.split()[-3:])
            runs, parts, figures = int(counts["runs"]), int(counts["partitions"]), {"objects": {}, "bytes": {}}
        else:
            runs, parts = _runs(home)
            figures = _lake_figures(lake)
        rows.append((label, wall, cpu, rss, runs, parts, figures))
        print(out[-1500:], file=sys.stderr)
    lines = [
        "| row | wall s | CPU s | peak RSS MB | runs | partitions (s3_parquet) | objects raw/clean/tweets | bytes tweets |",
        "|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    for label, wall, cpu, rss, runs, parts, f in rows:
        o, b = f["objects"], f["bytes"]
        lines.append(
            f"| {label} | {wall:.1f} | {cpu:.1f} | {rss / 1e6:.0f} | {runs} | {parts:,} | "
            f"{o.get('raw_tweets', 0)}/{o.get('clean_tweets', 0)}/{o.get('tweets', 0)} | {b.get('tweets', 0):,} |"
        )
    after = next((r for r in rows if r[0].startswith("after")), None)
    alone = next((r for r in rows if r[0].startswith("Dagster alone")), None)
    if after:
        lines.append(f"\nTarget (#31 point 4): the replay under 15 s on a quiet machine: {after[1]:.1f} s ({'met' if after[1] < 15 else 'NOT met'})")
    if after and alone:
        lines.append(f"Dagster alone for the same runs: {alone[1]:.1f} s wall, {alone[2]:.1f} CPU-s; the project's own share: {after[1] - alone[1]:.1f} s wall, {after[2] - alone[2]:.1f} CPU-s")
    print("\n".join(lines))
    OUT.mkdir(exist_ok=True)
    (OUT / "replay_sparse.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
