"""Rows to publish in the table tests, without Dagster (the writer processes import this alone)."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from tweet_assets.schema import PUBLISHED_SCHEMA


def rows(day: str, ids: list[int], retweets: dict[int, int] | None = None, texts: dict[int, str] | None = None) -> pa.Table:
    """A day's rows in the published schema: ``ids`` one second apart from midnight UTC, ``retweets``
    ``{id: retweeted_id}``, ``texts`` ``{id: text}`` (default ``post <id>``)."""
    start = dt.datetime.fromisoformat(day).replace(tzinfo=dt.timezone.utc)
    data: dict[str, list] = {f.name: [None] * len(ids) for f in PUBLISHED_SCHEMA}
    data["id"] = list(ids)
    data["created_at"] = [start + dt.timedelta(seconds=i) for i in range(len(ids))]
    data["text"] = [(texts or {}).get(i, f"post {i}") for i in ids]
    data["author_id"] = [7] * len(ids)
    data["retweeted_id"] = [(retweets or {}).get(i) for i in ids]
    data["is_retweet"] = [i in (retweets or {}) for i in ids]
    return pa.table(data, schema=PUBLISHED_SCHEMA)


def day_rows(table: pa.Table):
    """A ``DayRows`` callable for ``table``."""
    return lambda: iter([table])
