"""A column declared in schema.py is built by a flattening stage (issue #26 point 6): ``conform()``
nulls a published column that no stage builds, so a column added to the schema and forgotten in
flatten.py would be published all-null without this test."""

from __future__ import annotations

from tests.helpers import post_page_files
from tweet_assets.schema import COLUMN_NAMES
from tweet_assets.transform import flatten
from tweet_assets.transform.pages import decode_pages


def built_columns(batch) -> set[str]:
    """The columns flatten_batch's stages build for ``batch`` (before conform)."""
    rows, _ = flatten.quarantine(flatten.posts(batch.table, batch.days))
    table = batch.table
    plan = flatten.own_fields(rows.lazy())
    for stage in (flatten.referenced_posts, flatten.users, flatten.attachments, flatten.retrieval):
        plan = stage(plan, table)
    return set(flatten.ids(plan).collect_schema().names())


def test_every_published_column_is_built_by_a_stage(x_api_v2):
    built: set[str] = set()
    for path in post_page_files(x_api_v2):
        lines = [line for line in path.read_bytes().splitlines() if line.strip()]
        batch = decode_pages(lines, [f"{path.name}:{i + 1}" for i in range(len(lines))])
        if batch.table.num_rows:
            built |= built_columns(batch)
    missing = [c for c in COLUMN_NAMES if c not in built and c not in flatten.ALWAYS_NULL]
    assert missing == [], (
        f"schema.py declares {missing} but no stage of tweet_assets/transform/flatten.py builds them: "
        "add them to a stage, or to flatten.ALWAYS_NULL with the reason"
    )
    assert not set(flatten.ALWAYS_NULL) - set(COLUMN_NAMES), "ALWAYS_NULL names a column schema.py does not declare"
    assert not set(flatten.ALWAYS_NULL) & built, "a column in ALWAYS_NULL is built after all"
