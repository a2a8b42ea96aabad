"""s3_parquet publishes clean_tweets' object as it is (an S3 server-side copy) when its footer shows
the published schema and sorted rows, and rewrites it otherwise (objects from older versions)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dagster import AssetKey

from tests.helpers import resources, run
from tweet_assets.lake.lineage import lineage_key
from tweet_assets.lake.values import StoredTable
from tweet_assets.lake.store import LakeError, LocalLake
from tweet_assets.lake.parquet import SORTED_BY, is_sorted_by
from tweet_assets.schema import PUBLISHED_SCHEMA
from tweet_assets.sources import ReplaySource

DAY = "2021-06-26"  # 500 posts in the recorded twarc2 files
CLEAN = f"clean_tweets/dt={DAY}/part-00000.parquet"
PUBLISHED = f"tweets/dt={DAY}/part-00000.parquet"


def _materializations(result, asset: str) -> list:
    return [e for e in result.get_asset_materialization_events() if e.asset_key == AssetKey(asset)]


def test_sorted_clean_object_is_copied_server_side_then_an_unsorted_one_is_rewritten(x_api_v2, s3_lake, instance):
    res = resources(s3_lake, ReplaySource(path=str(x_api_v2)))
    lake = res["lake"].lake()
    result = run(res, DAY, instance=instance)
    clean = lake.read_bytes(CLEAN)
    assert lake.read_bytes(PUBLISHED) == clean  # the same object, not re-encoded
    footer = StoredTable(lake, PUBLISHED, lake.uri(PUBLISHED)).metadata()
    assert footer.num_rows == 500 and is_sorted_by(footer, SORTED_BY)
    assert footer.schema.to_arrow_schema().equals(PUBLISHED_SCHEMA, check_metadata=False)
    assert _materializations(result, "s3_parquet")[0].materialization.metadata["rows"].value == 500

    # an object written by an older version: rows reversed, no sorting_columns in its footer
    rows = pq.read_table(pa.BufferReader(clean))
    reversed_rows = rows.take(pa.array(range(rows.num_rows - 1, -1, -1)))
    sink = pa.BufferOutputStream()
    pq.write_table(reversed_rows, sink)
    lake.put_bytes(CLEAN, sink.getvalue().to_pybytes())
    lake.put_bytes(lineage_key(DAY), b"{}")  # an older version recorded no lineage (tweet_assets.lake.lineage)
    assert not is_sorted_by(StoredTable(lake, CLEAN, lake.uri(CLEAN)).metadata())

    run(res, DAY, instance=instance, selection=[AssetKey("s3_parquet")])
    published = lake.read_bytes(PUBLISHED)
    assert published != lake.read_bytes(CLEAN)
    table = pq.read_table(pa.BufferReader(published))
    assert table.equals(rows)  # sorted again, same rows, published types
    assert is_sorted_by(pq.read_metadata(pa.BufferReader(published)))


def test_footer_of_something_that_is_not_parquet_says_so(tmp_path):
    lake = LocalLake(str(tmp_path))
    lake.put_bytes(CLEAN, b"{}\n" * 10)
    with pytest.raises(LakeError, match="not a Parquet file.*rematerialize"):
        StoredTable(lake, CLEAN, lake.uri(CLEAN)).metadata()
    with pytest.raises(LakeError, match="materialize the upstream asset"):
        lake.copy("clean_tweets/dt=2020-01-01/part-00000.parquet", PUBLISHED)


def test_footer_longer_than_the_first_ranged_read(tmp_path):
    lake = LocalLake(str(tmp_path))
    table = pa.table({f"column_{i}": pa.array([i], pa.int64()) for i in range(2_000)})  # a big footer
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    lake.put_bytes("x/part.parquet", sink.getvalue().to_pybytes())
    footer = StoredTable(lake, "x/part.parquet", "x").metadata()
    assert footer.num_columns == 2_000 and footer.serialized_size > 1 << 16
