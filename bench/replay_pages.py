"""What the replay source lands from an archive: pages, posts, API errors and raw bytes.

    python bench/replay_pages.py [ARCHIVE]      # default: ../shared/x-api-v2 (every day)

Prints, for the whole archive replayed over every day: pages landed, posts, ``api_errors`` as the
source reports them and as ``clean_tweets`` counts them from the landed pages, the ``errors``
entries really in the archive's pages of posts (counted here with the json module), the landed raw
bytes (uncompressed, and gzip level 6), and the time the source took. Run it on an older checkout
(``PYTHONPATH=<checkout>``) for a before/after comparison.
"""

from __future__ import annotations

import gzip
import json
import logging
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from tweet_assets.transform.flatten import flatten_days
from tweet_assets.sources import ReplaySource

SHARED = Path(__file__).resolve().parents[2] / "shared" / "x-api-v2"


def real_errors(root: Path) -> int:
    """``errors`` entries of the archive's pages that hold posts (json module only)."""
    total = 0
    for path in sorted(root.rglob("*.jsonl")) if root.is_dir() else [root]:
        for line in path.read_bytes().splitlines():
            try:
                page = json.loads(line)
            except ValueError:
                continue
            if isinstance(page, dict) and isinstance(page.get("data"), (list, dict)):
                items = page["data"] if isinstance(page["data"], list) else [page["data"]]
                if any(isinstance(p, dict) and "text" in p for p in items) or not items:
                    total += len(page.get("errors") or [])
            elif isinstance(page, dict) and page.get("errors") and "data" not in page:
                total += len(page["errors"])
    return total


def main() -> None:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else SHARED
    log = logging.getLogger("replay_pages")
    log.addHandler(logging.NullHandler())
    log.propagate = False
    window = (datetime(2006, 3, 21, tzinfo=timezone.utc), datetime(2030, 1, 1, tzinfo=timezone.utc))
    started = time.perf_counter()
    pages = list(ReplaySource(path=str(root)).pages(*window, log))
    seconds = time.perf_counter() - started
    pages.sort(key=lambda p: p.day)  # grouped by day, landing order kept within a day
    days = flatten_days((p.day, f"{p.day}:{i}", p.body) for i, p in enumerate(pages))
    clean_errors = sum(result.stats["api_errors"] for result in days.values())
    raw = b"\n".join(p.body for p in pages)
    print(f"archive: {root}")
    print(f"pages landed: {len(pages):,} over {len({p.day for p in pages}):,} days; posts: {sum(p.posts for p in pages):,}")
    print(f"api_errors reported by the source: {sum(p.api_errors for p in pages):,}; counted by clean_tweets: {clean_errors:,}; "
          f"errors entries in the archive: {real_errors(root):,}")
    print(f"raw bytes landed: {len(raw):,} (gzip -6: {len(gzip.compress(raw, 6)):,}); source time {seconds:.2f} s")


if __name__ == "__main__":
    main()
