"""A sparse multi-year archive built from the shared real recordings (issue #17's shape).

The real twarc2 pages of ``bench/corpus.py``'s ``REAL_FILES`` (2,088 posts over 70 days) are
replicated :data:`REPLICAS` times (5 → 10,440 posts): every numeric id string shifted per replica
(the same shift for a post, its author, its includes and references, as ``real_corpus`` does), and
every ``created_at`` day moved to one of :data:`TARGET_DAYS` days spread over 15 years
(2006-03-21 … 2021-07-02), the time of day kept. A (replica, original day) pair always maps to the
same target day, so a post and the copies of it in other pages' ``includes`` move together, and a
page that spanned two days still spans two (it is split by the replay source). Target days come in
bursts (a few days within a week or two, as a user's timeline or a topic over a decade does).

Usage: ``python bench/sparse_corpus.py`` prints the path (cached in ``~/.cache/tweet_assets/bench``).
"""

from __future__ import annotations

import json
import random
import re
import sys
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import CACHE, ID, REAL_FILES, SHARED  # noqa: E402

REPLICAS = 5
TARGET_DAYS = 140
FIRST, LAST = date(2006, 3, 21), date(2021, 7, 2)
BURST_DAYS = 4  # target days per burst
BURST_SPAN = 12  # a burst's days lie within this many days
CREATED = re.compile(rb'"created_at":\s*"(\d{4}-\d{2}-\d{2})T')
VERSION = 1


def target_days(seed: int = 17) -> list[str]:
    """:data:`TARGET_DAYS` distinct ``YYYY-MM-DD`` days in bursts over FIRST … LAST (deterministic)."""
    rng = random.Random(seed)
    span = (LAST - FIRST).days
    days: set[date] = {FIRST, LAST}
    while len(days) < TARGET_DAYS:
        start = FIRST + timedelta(days=rng.randrange(span - BURST_SPAN))
        for offset in rng.sample(range(BURST_SPAN), BURST_DAYS):
            if len(days) < TARGET_DAYS:
                days.add(start + timedelta(days=offset))
    return sorted(d.isoformat() for d in days)


def sparse_corpus() -> Path:
    """Build (once) and return ``sparse-v<VERSION>.jsonl`` in the bench cache."""
    out = CACHE / f"sparse-v{VERSION}.jsonl"
    if out.exists():
        return out
    if not SHARED.is_dir():
        sys.exit(f"recorded data not found at {SHARED}; set TWEET_ASSETS_SHARED_DATA")
    lines = [line for name in REAL_FILES for line in (SHARED / name).read_bytes().splitlines() if line.strip()]
    post_days = sorted({post["created_at"][:10] for line in lines for post in _posts(json.loads(line))})
    targets = target_days()
    rng = random.Random(18)
    # every (replica, day) pair gets a target day; every target day gets at least one pair
    pairs = [(r, d) for r in range(REPLICAS) for d in post_days]
    rng.shuffle(pairs)
    mapping = {pair: targets[i % len(targets)] for i, pair in enumerate(pairs)}
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    with open(tmp, "wb") as handle:
        for replica in range(REPLICAS):
            shift = replica * 10**16
            for line in lines:
                if replica:
                    line = ID.sub(lambda m: b'"%d"' % (int(m.group(1)) + shift), line)
                line = CREATED.sub(lambda m: _moved(m, mapping, replica), line)
                handle.write(line)
                handle.write(b"\n")
    tmp.rename(out)
    print(f"built {out} ({REPLICAS} replicas of {len(lines)} pages, {len(set(mapping.values()))} target days)", file=sys.stderr)
    return out


def _posts(page: dict) -> list[dict]:
    data = page.get("data") or []
    return [data] if isinstance(data, dict) else data


def _moved(match: re.Match, mapping: dict, replica: int) -> bytes:
    """A ``created_at`` with its day moved (a user's ``created_at`` on no post's day is kept)."""
    day = mapping.get((replica, match.group(1).decode()))
    return match.group(0).replace(match.group(1), day.encode()) if day else match.group(0)


if __name__ == "__main__":
    print(sparse_corpus())
