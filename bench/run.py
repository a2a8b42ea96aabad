"""Side-by-side benchmark: this project against twarc-csv, the tutorials' pandas way, and the
parse floor, each tool as its own process, repeated; prints a table and writes bench/out/results.md.

Usage:
    python bench/run.py                 # 100k real posts, the 365-day backfill; 3 runs each
    python bench/run.py --big           # also the 1M-post corpora and the 1M-post day through Dagster
    python bench/run.py --runs 5 --only floor,project

Each figure is the median of --runs runs, the tools of a corpus taking turns (A B C, A B C, ...) so
that a machine speeding up or slowing down moves them alike: wall seconds, CPU seconds (user+sys), peak RSS of the
process (from os.wait4's rusage, like /usr/bin/time -v), posts/s, output bytes and the rows the tool
wrote (CSV records or Parquet rows), so a tool that drops posts shows it. twarc-csv 0.7.2
runs in its own virtualenv with pandas<3 (it fails on pandas 3), created on first use under the
cache directory. Corpora are built once by bench/corpus.py, outside the repo.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from corpus import CACHE, real_corpus, sample_corpus  # noqa: E402

PY = sys.executable
TWARC_VENV = CACHE / "twarc-venv"

FLOOR_ORJSON = """
import sys, orjson
n = 0
with open(sys.argv[1], 'rb') as f:
    for line in f:
        page = orjson.loads(line)
        d = page.get('data')
        n += len(d) if isinstance(d, list) else 1
print(n)
"""
FLOOR_PYARROW = """
import sys, pyarrow.json as pj
t = pj.read_json(sys.argv[1], read_options=pj.ReadOptions(block_size=4 << 20))
print(t.num_rows)
"""
TUTORIAL = """
import sys, json, pandas as pd
frames = []
with open(sys.argv[1]) as f:
    for line in f:
        page = json.loads(line)
        frames.append(pd.json_normalize(page.get('data') or []))
pd.concat(frames).to_csv(sys.argv[2], index=False)
"""
BACKFILL = """
import os, sys, time
os.environ.update(TWEET_ASSETS_SOURCE='sample', TWEET_ASSETS_SAMPLE_POSTS=sys.argv[2], TWEET_ASSETS_LAKE_URL=sys.argv[1], TWEET_ASSETS_START_DATE='2023-01-01')
from dagster import DagsterInstance, materialize
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG as E, ASSET_PARTITION_RANGE_START_TAG as S
from tweet_assets.definitions import defs
from tweet_assets.settings import resources_from_env
from tweet_assets.defs.pipeline import assets
from tweet_assets.partitions import daily_partitions
keys = daily_partitions.get_partition_keys()
keys = [k for k in keys if '2023-01-01' <= k <= '2023-12-31'][: int(sys.argv[4])]
res = resources_from_env()
with DagsterInstance.ephemeral() as inst:
    a = [assets.raw_tweets, assets.clean_tweets, assets.s3_parquet]
    if sys.argv[3] == 'single':
        assert materialize(a, resources=res, instance=inst, tags={S: keys[0], E: keys[-1]}).success
    else:
        for k in keys:
            assert materialize(a, resources=res, instance=inst, partition_key=k).success
print(len(keys))
"""
BACKFILL_DAGSTER_ONLY = """
import os, sys
os.environ.update(TWEET_ASSETS_SOURCE='sample', TWEET_ASSETS_START_DATE='2023-01-01')
from dagster import AssetIn, DagsterInstance, IOManager, asset, materialize
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG as E, ASSET_PARTITION_RANGE_START_TAG as S
from tweet_assets.defs.pipeline.assets import SINGLE_RUN
from tweet_assets.partitions import daily_partitions
class Nothing(IOManager):
    def handle_output(self, context, obj): pass
    def load_input(self, context): return {k: None for k in context.asset_partition_keys}
def noop(name, upstream):
    @asset(name=name, partitions_def=daily_partitions, backfill_policy=SINGLE_RUN, ins={u: AssetIn(u) for u in upstream})
    def body(context, **_):
        return {k: None for k in context.partition_keys}
    return body
keys = [k for k in daily_partitions.get_partition_keys() if '2023-01-01' <= k <= '2023-12-31'][: int(sys.argv[1])]
a = [noop('raw_tweets', []), noop('clean_tweets', ['raw_tweets']), noop('s3_parquet', ['clean_tweets'])]
with DagsterInstance.ephemeral() as inst:
    assert materialize(a, resources={'io_manager': Nothing()}, instance=inst, tags={S: keys[0], E: keys[-1]}).success
"""
DAY = """
import os, sys
os.environ.update(TWEET_ASSETS_SOURCE='sample', TWEET_ASSETS_SAMPLE_POSTS=sys.argv[2], TWEET_ASSETS_LAKE_URL=sys.argv[1], TWEET_ASSETS_START_DATE='2023-01-01')
from dagster import DagsterInstance, materialize
from tweet_assets.settings import resources_from_env
from tweet_assets.defs.pipeline import assets
with DagsterInstance.ephemeral() as inst:
    assert materialize([assets.raw_tweets, assets.clean_tweets, assets.s3_parquet], resources=resources_from_env(), instance=inst, partition_key='2024-01-01').success
"""


def run_once(cmd: list[str], out: str | None = None, env: dict | None = None, stdout: str | None = None, timeout: float | None = None) -> tuple[float, float, int]:
    """Run ``cmd`` once (``out`` removed first): ``(wall s, CPU s user+sys, peak RSS bytes)``.
    ``stdout``: a file for the command's standard output (default: discarded). ``timeout``: seconds
    after which the command is killed (its process group) and ``subprocess.TimeoutExpired`` raised.

    Raises:
        RuntimeError: the command exited non-zero (with the end of its stderr).
    """
    if out and os.path.exists(out):
        shutil.rmtree(out) if os.path.isdir(out) else os.remove(out)
    with tempfile.TemporaryFile() as log:  # a file, not a pipe: a chatty tool must not block
        started = time.perf_counter()
        sink = open(stdout, "wb") if stdout else subprocess.DEVNULL
        proc = subprocess.Popen(cmd, stdout=sink, stderr=log, env={**os.environ, **(env or {})}, start_new_session=timeout is not None)
        if timeout is not None:
            deadline = started + timeout
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if time.perf_counter() > deadline:
                    os.killpg(proc.pid, 9)
                    os.wait4(proc.pid, 0)
                    raise subprocess.TimeoutExpired(cmd, timeout)
                time.sleep(1)
        else:
            _, status, usage = os.wait4(proc.pid, 0)
        if stdout:
            sink.close()
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        err = log.read().decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])}… exited {proc.returncode}: {err[-1500:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024


def summarize(samples: list[tuple[float, float, int]], posts: int, out: str | None) -> dict:
    """Medians of wall, CPU and peak RSS over runs; posts/s from the median wall; output size and rows."""
    walls = [w for w, _, _ in samples]
    wall = statistics.median(walls)
    return {
        "posts": posts,
        "rows": rows_out(out),
        "wall": wall,
        "cpu": statistics.median(c for _, c, _ in samples),
        "rss": statistics.median(r for _, _, r in samples),
        "posts_s": posts / wall if posts else 0,
        "out_bytes": _size(out) if out else 0,
        "walls": walls,
    }


def measure(cmd: list[str], runs: int, posts: int, out: str | None = None, env: dict | None = None) -> dict:
    """Run ``cmd`` ``runs`` times in a row; see :func:`summarize`."""
    return summarize([run_once(cmd, out, env) for _ in range(runs)], posts, out)


def measure_interleaved(tools: list[tuple], runs: int, posts: int) -> list[tuple[str, dict]]:
    """Run every tool once per round, ``runs`` rounds (A B C, A B C, ...), so a machine that speeds
    up or slows down during the benchmark moves every tool alike and the ratios stay put.

    ``tools``: ``(name, cmd, out, env)``. A tool that fails is reported, left out of later rounds
    and of the result; the others go on.
    """
    samples: dict[str, list] = {name: [] for name, *_ in tools}
    failed: set[str] = set()
    for round_no in range(1, runs + 1):
        for name, cmd, out, env in tools:
            if name in failed:
                continue
            print(f"   [{round_no}/{runs}] {name}…", file=sys.stderr, flush=True)
            try:
                samples[name].append(run_once(cmd, out, env))
            except Exception as exc:  # report and go on: one tool failing must not hide the others
                print(f"   {name} failed: {exc}", file=sys.stderr)
                failed.add(name)
    return [(name, summarize(samples[name], posts, out)) for name, cmd, out, env in tools if name not in failed]


def rows_out(path: str | None) -> int | None:
    """Rows a tool wrote: CSV records (header excluded; quoted newlines handled) or Parquet rows."""
    if not path or not Path(path).is_file():
        return None
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq

        return pq.read_metadata(path).num_rows
    import csv

    csv.field_size_limit(1 << 30)
    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        return max(sum(1 for _ in csv.reader(handle)) - 1, 0)


def _size(path: str) -> int:
    p = Path(path)
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.exists() else 0


def _zlib6_size(path: Path) -> int:
    """Bytes of ``path``'s content recompressed as gzip by zlib at level 6 (gzip's default), so the
    size ratio does not depend on the landing zone's choice of compressor."""
    import zlib

    from isal import igzip

    out = zlib.compressobj(6, zlib.DEFLATED, 31)
    size = 0
    with igzip.open(path, "rb") as handle:
        while block := handle.read(16 << 20):
            size += len(out.compress(block))
    return size + len(out.flush())


def twarc_python() -> str | None:
    """The twarc-csv virtualenv's python (created on first use), or None if it cannot be installed."""
    python = TWARC_VENV / "bin" / "python"
    if not python.exists():
        print("installing twarc, twarc-csv and pandas<3 in their own virtualenv (first run only)…", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(TWARC_VENV)], check=True)
        done = subprocess.run([str(python), "-m", "pip", "install", "-q", "twarc", "twarc-csv==0.7.2", "pandas<3"], capture_output=True, text=True)
        if done.returncode != 0:
            print(f"could not install twarc-csv: {done.stderr[-500:]}", file=sys.stderr)
            shutil.rmtree(TWARC_VENV, ignore_errors=True)
            return None
    return str(python)


def count_posts(path: Path) -> int:
    import orjson

    n = 0
    with open(path, "rb") as handle:
        for line in handle:
            data = orjson.loads(line).get("data")
            n += len(data) if isinstance(data, list) else 1
    return n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--big", action="store_true", help="add the 1M-post corpora and the 1M-post Dagster day")
    parser.add_argument("--only", default="", help="comma-separated groups: floor,twarc,tutorial,project,dagster,backfill")
    parser.add_argument("--days", type=int, default=365, help="days of the sample backfill")
    parser.add_argument("--single-only", action="store_true", help="the backfill as one single run only (not also one run per partition)")
    parser.add_argument("--huge", action="store_true", help="one day of 1M and one of 10M real-shaped posts through Dagster (bench/huge.py)")
    parser.add_argument("--huge-posts", type=int, default=10_000_000, help="posts of the --huge day (default 10M)")
    parser.add_argument("--huge-timeout", type=float, default=4 * 3600, help="seconds after which the --huge day is stopped and reported as such")
    args = parser.parse_args()
    only = set(filter(None, args.only.split(",")))
    want = lambda group: not only or group in only  # noqa: E731
    tmp = Path(tempfile.mkdtemp(prefix="tweet-assets-bench-"))
    rows: list[tuple[str, str, dict]] = []
    corpora = [("real 100k", real_corpus(100_000))]
    if args.big:
        corpora += [("real 1M", real_corpus(1_000_000)), ("sample 1M", sample_corpus(1_000_000))]
    else:
        corpora += [("sample 100k", sample_corpus(100_000))]

    twarc = twarc_python() if (want("twarc") or want("tutorial")) else None
    for name, path in corpora:
        posts = count_posts(path)
        print(f"== {name}: {path} ({posts:,} posts, {path.stat().st_size / 1e6:.0f} MB)", file=sys.stderr, flush=True)
        runs = args.runs if posts <= 200_000 else 1

        tools: list[tuple] = []
        if want("floor"):
            tools.append(("floor: orjson per line", [PY, "-c", FLOOR_ORJSON, str(path)], None, None))
            tools.append(("floor: pyarrow.json.read_json", [PY, "-c", FLOOR_PYARROW, str(path)], None, None))
        if twarc and want("twarc") and posts <= 200_000:
            tools.append(("twarc-csv 0.7.2", [str(Path(twarc).parent / "twarc2"), "--bearer-token", "x", "csv", str(path), str(tmp / "twarc.csv")], str(tmp / "twarc.csv"), None))
        if twarc and want("tutorial"):
            tools.append(("pandas json_normalize → CSV", [twarc, "-c", TUTORIAL, str(path), str(tmp / "tutorial.csv")], str(tmp / "tutorial.csv"), None))
        if want("project"):
            tools.append(("tweet_assets flatten → Parquet", [PY, str(HERE / "flatten_file.py"), str(path), str(tmp / "project.parquet")], str(tmp / "project.parquet"), None))
        rows += [(name, tool, m) for tool, m in measure_interleaved(tools, runs, posts)]
    if want("dagster"):
        for posts in (100_000, 1_000_000) if args.big else (100_000,):
            print(f"== one {posts:,}-post day through Dagster (sample source, local lake)", file=sys.stderr, flush=True)
            lake = tmp / f"lake-day-{posts}"
            rows.append((f"sample day {posts // 1000}k", "raw_tweets → clean_tweets → s3_parquet", measure([PY, "-c", DAY, str(lake), str(posts)], 1, posts, str(lake))))
            raw = lake / "raw_tweets" / "dt=2024-01-01" / "part-00000.jsonl.gz"
            rows[-1][2]["sizes"] = {
                "published": _size(str(lake / "tweets")),
                "raw_gz": raw.stat().st_size,
                "raw_zlib6": _zlib6_size(raw),
            }
    targets: list[str] = []
    if args.huge:
        huge = {}
        for posts in (1_000_000, args.huge_posts):
            lake = Path(tempfile.mkdtemp(prefix=f"tweet-assets-huge-{posts}-", dir="/tmp"))
            cmd = [PY, str(HERE / "huge.py"), str(lake), str(posts)]
            print(f"== one day of {posts:,} real-shaped posts through Dagster (bench/huge.py, lake {lake})", file=sys.stderr, flush=True)
            try:
                wall, cpu, rss = run_once(cmd, stdout=str(lake / "counts.txt"), timeout=args.huge_timeout if posts > 1_000_000 else None)
                counts = dict(item.split("=") for item in (lake / "counts.txt").read_text().split())
                huge[posts] = (wall, cpu, rss, {k: int(v) for k, v in counts.items()})
            except subprocess.TimeoutExpired:
                huge[posts] = None
                targets.append(f"- {posts:,}-post day: stopped after --huge-timeout {args.huge_timeout:.0f} s (`{' '.join(cmd)}`)")
            shutil.rmtree(lake, ignore_errors=True)
        for posts, got in huge.items():
            if got is None:
                continue
            wall, cpu, rss, c = got
            once = c["published"] == c["generated"] == c["unique_ids"]
            line = (
                f"- {posts:,}-post day (`python bench/huge.py LAKE {posts}`): {wall:.0f} s wall, {cpu:.0f} CPU-s, peak RSS {rss / 1e9:.2f} GB"
                f" (target ≤ 2 GB: {'met' if rss <= 2e9 else 'NOT met'}); generated {c['generated']:,} posts, Parquet rows {c['published']:,},"
                f" distinct ids {c['unique_ids']:,} (every post once: {'yes' if once else 'NO'})"
            )
            if posts != 1_000_000 and huge.get(1_000_000):
                ratio = wall / huge[1_000_000][0]
                line += f"; {ratio:.1f}× the 1M day's wall time for {posts / 1e6:.0f}× the posts (target ≤ 11×: {'met' if ratio <= 11 * posts / 1e7 else 'NOT met'})"
            targets.append(line)
    if want("backfill"):
        print(f"== {args.days}-day backfill of the sample source at 1,000 posts/day", file=sys.stderr, flush=True)
        # Dagster's own cost of such a run: the same three assets and partitions, doing nothing
        rows.append((f"backfill {args.days} days", "single run, assets doing nothing (Dagster alone)", measure([PY, "-c", BACKFILL_DAGSTER_ONLY, str(args.days)], 1, 0)))
        for mode in ("single",) if args.single_only else ("single", "per-partition"):
            rows.append((f"backfill {args.days} days", f"{mode} run(s)", measure([PY, "-c", BACKFILL, str(tmp / f"lake-{mode}"), "1000", mode, str(args.days)], 1, 1000 * args.days, str(tmp / f"lake-{mode}"))))

    nothing = next((m for c, t, m in rows if t.startswith("single run, assets doing nothing")), None)
    single = next((m for c, t, m in rows if t == "single run(s)"), None)
    if nothing and single:
        own = single["wall"] - nothing["wall"]
        targets.append(
            f"- {args.days}-day single-run backfill (`python bench/run.py --only backfill`): total {single['wall']:.1f} s; Dagster's own share"
            f" (the row \"assets doing nothing\") {nothing['wall']:.1f} s; the project's own share (total minus that) {own:.1f} s"
            f" (target: ≤ Dagster's: {'met' if own <= nothing['wall'] else 'NOT met'})"
        )
    report = render(rows)
    if targets:
        report += "\n\nTargets (issue #31):\n" + "\n".join(targets)
    print(report)
    out_dir = HERE / "out"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "results.md").write_text(report + "\n")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


def render(rows) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    lines = [
        f"Measured {stamp} on {os.cpu_count()} cores, {mem:.0f} GiB RAM, Python {platform.python_version()} ({platform.machine()}); `python bench/run.py {' '.join(sys.argv[1:])}`",
        "",
        "| corpus | tool | wall s | CPU s | peak RSS MB | posts/s | output MB | rows out | vs twarc-csv | vs floor |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for corpus in dict.fromkeys(r[0] for r in rows):
        group = [r for r in rows if r[0] == corpus]
        twarc = next((m["posts_s"] for _, t, m in group if t.startswith("twarc-csv")), None)
        floor = max((m["posts_s"] for _, t, m in group if t.startswith("floor")), default=None)
        for _, tool, m in group:
            vs_twarc = f"{m['posts_s'] / twarc:.1f}×" if twarc and m["posts_s"] else ""
            vs_floor = f"{m['posts_s'] / floor:.2f}" if floor and m["posts_s"] and not tool.startswith("floor") else ""
            lines.append(
                f"| {corpus} | {tool} | {m['wall']:.2f} | {m['cpu']:.2f} | {m['rss'] / 1e6:.0f} | {m['posts_s']:,.0f} | {m['out_bytes'] / 1e6:.1f} | {'' if m.get('rows') is None else format(m['rows'], ',')} | {vs_twarc} | {vs_floor} |"
            )
    short = [
        f"- {corpus}, {tool}: wrote {m['rows']:,} rows for {m['posts']:,} posts"
        for corpus, tool, m in rows
        if m.get("rows") is not None and m["posts"] and m["rows"] < m["posts"] and not tool.startswith("raw_tweets")
    ]
    if short:
        lines += ["", "Rows missing from a tool's output (its own log says why; twarc-csv skips a whole batch when a post has a field it has no column for):", *short]
    days = {r[0]: r[2] for r in rows if r[1].startswith("raw_tweets")}
    if days:
        lines += [
            "",
            "| one day | peak RSS MB | published Parquet MB | raw pages gzip MB (as stored: ISA-L level 2) | published / raw | raw recompressed by zlib -6 MB | published / that |",
            "|---|---|---|---|---|---|---|",
        ]
        for corpus, m in days.items():
            z = m["sizes"]
            lines.append(
                f"| {corpus} | {m['rss'] / 1e6:.0f} | {z['published'] / 1e6:.1f} | {z['raw_gz'] / 1e6:.1f} | {z['published'] / max(z['raw_gz'], 1):.2f} | {z['raw_zlib6'] / 1e6:.1f} | {z['published'] / max(z['raw_zlib6'], 1):.2f} |"
            )
        if len(days) == 2:
            small, big = days.values()
            lines.append(f"\nPeak RSS of the 1M-post day / the 100k-post day: {big['rss'] / small['rss']:.2f}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
