"""Build the benchmark corpora once, cached outside the repo (default ~/.cache/tweet_assets/bench).

- ``real-<N>.jsonl``: the real twarc2 pages in ../shared/x-api-v2 (the files the issue names),
  replicated until N posts, every numeric id string shifted per replica (same shift for a post, its
  author and its includes) so nothing deduplicates away and every join still matches.
- ``sample-<N>-<version>.jsonl``: the ``sample`` source's pages for one day at N posts; the version
  is a hash of the generator's source file, so a changed generator never reuses a stale corpus.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path

CACHE = Path(os.environ.get("TWEET_ASSETS_BENCH_CACHE", Path.home() / ".cache" / "tweet_assets" / "bench"))
SHARED = Path(os.environ.get("TWEET_ASSETS_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "x-api-v2"))
REAL_FILES = [
    "twarc-network-test-data/tweets.jsonl",
    "twarc-hashtags-test-data/tweets1.jsonl",
    "twarc-edits-test-data/tweets.jsonl",
    "twarc-csv-test-data/noflat.jsonl",
    "twarc-csv-test-data/kpop.jsonl",
    "twarc-csv-test-data/brexit.jsonl",
    "twarc-csv-test-data/entities_test.jsonl",
    "twarc-csv-test-data/withheld.jsonl",
    "twarc-csv-test-data/media_policy_violation_off.jsonl",
]
ID = re.compile(rb'"(\d{5,19})"')


def real_corpus(posts: int) -> Path:
    """The real pages replicated to at least ``posts`` posts; returns the cached path."""
    import orjson

    out = CACHE / f"real-{posts}.jsonl"
    if out.exists():
        return out
    if not SHARED.is_dir():
        sys.exit(f"recorded data not found at {SHARED}; set TWEET_ASSETS_SHARED_DATA")
    lines = []
    per_copy = 0
    for name in REAL_FILES:
        for line in (SHARED / name).read_bytes().splitlines():
            if line.strip():
                lines.append(line)
                data = orjson.loads(line).get("data") or []
                per_copy += len(data)
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    written = replica = 0
    with open(tmp, "wb") as handle:
        while written < posts:
            shift = replica * 10**16
            for line in lines:
                handle.write(ID.sub(lambda m: b'"%d"' % (int(m.group(1)) + shift), line) if replica else line)
                handle.write(b"\n")
            written += per_copy
            replica += 1
    tmp.rename(out)
    print(f"built {out} ({written:,} posts, {replica} replicas of {per_copy:,}, {out.stat().st_size / 1e6:.0f} MB)", file=sys.stderr)
    return out


def sample_corpus(posts: int, day: str = "2024-01-01") -> Path:
    """The sample source's pages for one day at ``posts`` posts; returns the cached path."""
    from tweet_assets.partitions import day_window
    from tweet_assets.sources import SampleSource

    import hashlib

    from tweet_assets.sources import sample

    # the generator's own source is in the name: a changed generator builds a new corpus
    version = hashlib.sha256(Path(sample.__file__).read_bytes()).hexdigest()[:8]
    out = CACHE / f"sample-{posts}-{version}.jsonl"
    if out.exists():
        return out
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    with open(tmp, "wb") as handle:
        for page in SampleSource(posts_per_day=posts).pages(*day_window(day), logging.getLogger("bench")):
            handle.write(page.body + b"\n")
    tmp.rename(out)
    return out


if __name__ == "__main__":
    print(real_corpus(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000))
