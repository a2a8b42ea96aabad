"""This project's flattening alone: a JSON-lines file of API pages → one Parquet file.

Usage: python bench/flatten_file.py IN.jsonl OUT.parquet
Prints rows, quarantined and seconds on stderr. No window (every post kept), dedup by id.
Rows are written as the assets write them: a day's sorted chunks, one Parquet row group each.
"""

import sys
import time

from tweet_assets.transform.flatten import flatten_day
from tweet_assets.lake.parquet import write_parquet
from tweet_assets.schema import PUBLISHED_SCHEMA


def lines(path):
    with open(path, "rb", buffering=4 << 20) as handle:  # pages are long lines: read big blocks
        for number, line in enumerate(handle, start=1):
            line = line[:-1] if line.endswith(b"\n") else line
            if line:
                yield f"{path}:{number}", line


if __name__ == "__main__":
    started = time.perf_counter()
    out = flatten_day(lines(sys.argv[1]))
    rows = write_parquet(out.arrow_chunks(), sys.argv[2], PUBLISHED_SCHEMA)
    print(f"rows={rows} quarantined={len(out.quarantined)} seconds={time.perf_counter() - started:.2f}", file=sys.stderr)
