"""One day of N real-shaped posts through Dagster (``raw_tweets → clean_tweets → s3_parquet``) into a
local lake, the pages generated as a stream at run time (never stored but by the pipeline itself).

Usage: python bench/huge.py LAKE_DIR POSTS [DAY]

The pages are the real twarc2 pages of ``bench/corpus.py``'s ``REAL_FILES`` replicated until
``POSTS`` posts, every numeric id string shifted per replica (``replica × 10**15``: same shift for a
post, its author and its includes, so joins still match and nothing deduplicates away) and every
``created_at`` date moved to ``DAY`` (the time of day kept), so every post belongs to the day.
Prints, on stdout, ``generated=<posts> published=<Parquet rows> unique_ids=<distinct ids>``: the
published figures are counted here by reading the lake's ``tweets/`` Parquet, not from the
pipeline's counters.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from datetime import datetime
from pathlib import Path
from typing import Iterator

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from corpus import REAL_FILES, SHARED  # noqa: E402

ID = re.compile(rb'"(\d{5,19})"')
CREATED = re.compile(rb'"created_at": ?"(\d{4}-\d{2}-\d{2})T')
SHIFT = 10**15  # 9,000 replicas stay within int64 (ids here are < 1.6e18)


def templates() -> list[tuple[list[bytes], list[int], int]]:
    """Each real page split around its ids: ``(text parts, ids, posts in data)``."""
    import orjson

    out = []
    for name in REAL_FILES:
        for line in (SHARED / name).read_bytes().splitlines():
            if not line.strip():
                continue
            data = orjson.loads(line).get("data") or []
            parts, ids, at = [], [], 0
            for match in ID.finditer(line):
                parts.append(line[at : match.start(1)])
                ids.append(int(match.group(1)))
                at = match.end(1)
            parts.append(line[at:])
            out.append((parts, ids, len(data) if isinstance(data, list) else 1))
    return out


def real_shaped_pages(posts: int, day: str) -> Iterator[tuple[bytes, int]]:
    """``(page body, posts in it)`` until at least ``posts`` posts, created on ``day``."""
    pages = templates()
    moved = b'"created_at":"' + day.encode() + b"T"
    written = replica = 0
    while written < posts:
        shift = replica * SHIFT
        for parts, ids, n in pages:
            pieces = [parts[0]]
            for number, part in zip(ids, parts[1:]):
                pieces.append(b"%d" % (number + shift))
                pieces.append(part)
            yield CREATED.sub(moved, b"".join(pieces)), n
            written += n
            if written >= posts:
                return
        replica += 1


def source_class():
    from tweet_assets.sources.base import PostSource, SourcePage

    class RealShaped(PostSource):
        """The bench's source: :func:`real_shaped_pages` for one day."""

        posts: int
        day: str

        @property
        def source_name(self) -> str:
            return "real-shaped"

        def pages(self, start: datetime, end: datetime, log: logging.Logger) -> Iterator[SourcePage]:
            if start.strftime("%Y-%m-%d") > self.day or end.strftime("%Y-%m-%d") <= self.day:
                return
            for number, (body, n) in enumerate(real_shaped_pages(self.posts, self.day), start=1):
                yield SourcePage(self.day, body, f"real-shaped:{number}", posts=n)

    return RealShaped


def count_published(lake: Path) -> tuple[int, int]:
    """``(rows, distinct ids)`` of every Parquet file under ``lake/tweets``."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    rows = 0
    ids = []
    for path in sorted((lake / "tweets").rglob("*.parquet")):
        column = pq.read_table(path, columns=["id"]).column("id")
        rows += len(column)
        ids.append(column)
    import pyarrow as pa

    distinct = len(pc.unique(pa.chunked_array([c for col in ids for c in col.chunks], type=pa.int64()))) if rows else 0
    return rows, distinct


def main() -> int:
    lake, posts = Path(sys.argv[1]), int(sys.argv[2])
    day = sys.argv[3] if len(sys.argv) > 3 else "2024-01-01"
    os.environ.update(TWEET_ASSETS_SOURCE="sample", TWEET_ASSETS_LAKE_URL=str(lake), TWEET_ASSETS_START_DATE=min(day, "2023-01-01"))  # the sample source starts 30 days back
    from dagster import DagsterInstance, materialize

    from tweet_assets.defs.pipeline import assets
    from tweet_assets.settings import resources_from_env

    generated = sum(n for _, n in real_shaped_pages(posts, day)) if os.environ.get("BENCH_COUNT_FIRST") else None
    resources = {**resources_from_env(), "source": source_class()(posts=posts, day=day)}
    with DagsterInstance.ephemeral() as instance:
        assert materialize([assets.raw_tweets, assets.clean_tweets, assets.s3_parquet], resources=resources, instance=instance, partition_key=day).success
    if generated is None:  # the generator is deterministic: count what it yields, without the pipeline
        generated = _count_generated(posts)
    rows, distinct = count_published(lake)
    print(f"generated={generated} published={rows} unique_ids={distinct}")
    return 0


def _count_generated(posts: int) -> int:
    written = 0
    pages = templates()
    while written < posts:
        for _, _, n in pages:
            written += n
            if written >= posts:
                return written
    return written


if __name__ == "__main__":
    sys.exit(main())
