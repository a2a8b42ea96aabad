"""What Dagit shows of the published table (#39 point 3): column descriptions render as written,
long nested types fit the column table with the full type still there, kind tags follow the lake."""

from __future__ import annotations

import html
import re

from markdown_it import MarkdownIt  # CommonMark, as Dagit's Markdown renderer (rich depends on it)

from tweet_assets.schema import COLUMNS
from tweet_assets.warehouses.athena import SHORT_TYPE_CHARS, athena_type, dagster_table_schema


def rendered_text(markdown: str) -> str:
    """The text a CommonMark renderer shows for ``markdown`` (tags dropped, entities decoded)."""
    return html.unescape(re.sub(r"<[^>]+>", "", MarkdownIt("commonmark").render(markdown))).strip()


def test_every_column_description_renders_as_written():
    described = {c.name: c for c in dagster_table_schema().columns}
    text = described["text"].description
    # the case the issue found: "&amp; &lt; &gt;" read as "& < >", saying the opposite
    assert rendered_text(text) .startswith("Full text with &amp; &lt; &gt; unescaped")
    for column in COLUMNS:
        shown = rendered_text(described[column.name].description.split("\n\nType: ")[0])
        assert shown == column.description, column.name  # `__twarc.url` is not bold, `[west, …]` not a link


def test_long_nested_types_are_short_in_the_table_and_whole_in_the_description():
    described = {c.name: c for c in dagster_table_schema().columns}
    shortened = 0
    for column in COLUMNS:
        full, shown = athena_type(column.type), described[column.name].type
        assert len(shown) <= SHORT_TYPE_CHARS + 1, (column.name, shown)
        if shown != full:
            shortened += 1
            assert shown.startswith(full.split("<", 1)[0] + "<") and ":" not in shown, shown  # field names only
            code = re.search(r"Type: `([^`]+)`$", described[column.name].description).group(1)
            assert code.replace(", ", ",") == full, column.name
    assert shortened >= 4  # media, url_entities, context_annotations, annotations, ...


def test_the_s3_kind_tag_only_on_an_s3_lake(monkeypatch):
    from tweet_assets.defs.pipeline.assets import s3_parquet_asset

    monkeypatch.setenv("TWEET_ASSETS_LAKE_URL", "lake")
    local = s3_parquet_asset()
    monkeypatch.setenv("TWEET_ASSETS_LAKE_URL", "s3://bucket/prefix")
    on_s3 = s3_parquet_asset()

    def kinds(assets_def):
        return {k.split("/", 2)[-1] for k in assets_def.specs_by_key[assets_def.key].tags if k.startswith("dagster/kind/")}

    assert kinds(local) == {"parquet", "athena"}
    assert kinds(on_s3) == {"parquet", "athena", "s3"}


def test_the_iceberg_tables_kind_tags_follow_the_lake_too(monkeypatch):
    from tweet_assets.defs.pipeline.assets import iceberg_asset
    from tweet_assets.defs.pipeline.layout import PipelineLayout

    def kinds(assets_def):
        return {k.split("/", 2)[-1] for k in assets_def.specs_by_key[assets_def.key].tags if k.startswith("dagster/kind/")}

    monkeypatch.setenv("TWEET_ASSETS_LAKE_URL", "lake")
    assert kinds(iceberg_asset(PipelineLayout(table_format="iceberg"))) == {"iceberg", "parquet"}
    monkeypatch.setenv("TWEET_ASSETS_LAKE_URL", "s3://bucket/prefix")
    assert kinds(iceberg_asset(PipelineLayout(table_format="iceberg"))) == {"iceberg", "parquet", "s3"}
