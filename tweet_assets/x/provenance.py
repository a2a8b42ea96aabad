"""twarc2's retrieval record, appended to every landed page as its last key::

    "__twarc": {"url": "<request URL, no credentials>", "version": "tweet_assets <version>",
                "retrieved_at": "2026-11-29T21:30:00.123Z"}   # ISO 8601 UTC, milliseconds

(DocNow/twarc ``client2.py``, ``_ensure_flattened``/``_append_metadata``), so the landing zone is
a twarc2 archive that ``twarc2``, ``twarc-csv`` and this project's replay read.
"""

from __future__ import annotations

from datetime import datetime, timezone

import orjson

from tweet_assets import __version__

VERSION = f"tweet_assets {__version__}"


def iso_ms(moment: datetime) -> str:
    """``moment`` as ISO 8601 UTC with milliseconds and ``Z`` (``2026-11-29T21:30:00.123Z``)."""
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def twarc_record(url: str, retrieved_at: datetime) -> dict:
    """The ``__twarc`` record: ``url`` (already free of credentials), this package's version,
    ``retrieved_at`` (:func:`iso_ms`)."""
    return {"url": url, "version": VERSION, "retrieved_at": iso_ms(retrieved_at)}


def append_twarc(body: bytes, record: dict) -> bytes:
    """``body`` (a JSON object's bytes) with ``"__twarc": record`` appended as its last key; the
    bytes before it are kept as received (no re-serialisation)."""
    body = body.strip()
    inner = body[1:-1]
    return b"{" + inner + (b"," if inner.strip() else b"") + b'"__twarc":' + orjson.dumps(record) + b"}"
