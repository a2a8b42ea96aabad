"""Batch compliance end to end on real recorded posts: a loopback double of the X API v2 compliance
endpoints (tests/compliance_double.py) with its signed upload/download URLs on moto's S3, the lake
on moto's S3 too; result rows in the recorded shape (twarc-csv-test-data/tweets_compliance.jsonl).
"""

import gzip
import json
import logging
from collections import Counter
from typing import Iterator
from datetime import datetime

import pytest
import pyarrow as pa
from dagster import AssetKey, AssetRecordsFilter, AssetSelection, materialize

from tests.compliance_double import ComplianceDouble
from tests.helpers import ALL, resources, run
from tweet_assets.defs.pipeline import assets
from tweet_assets.defs.pipeline import checks
from tweet_assets.compliance.ledger import LEDGER_SCHEMA, merge_ledger, parse_results, read_ledger, write_ledger
from tweet_assets.compliance.api import ComplianceApi, ComplianceError
from tweet_assets.defs.compliance.assets import compliance_ledger, ledger_ids_published, no_published_id_in_ledger, published_ids_not_in_ledger
from tweet_assets.lake.io_manager import LakeIOManager
from tweet_assets.lake.values import StoredTable
from tweet_assets.sources import ReplaySource

DAY = "2021-06-26"  # twarc-network-test-data/tweets.jsonl: 500 posts in 5 pages
TOKEN = "AAAAAAAAAAAAAAAAAAAAAcomplianceTestBearer0123456789xyz"


def _templates(x_api_v2) -> list[dict]:
    path = x_api_v2 / "twarc-csv-test-data" / "tweets_compliance.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_parse_results_recorded_rows(x_api_v2):
    """The recorded result file: a blank first line, redacted_at present on one row only."""
    from datetime import timezone

    body = (x_api_v2 / "twarc-csv-test-data" / "tweets_compliance.jsonl").read_bytes()
    checked = datetime(2026, 11, 29, 12, tzinfo=timezone.utc)
    table = parse_results(body, checked, "job-1")
    assert table.schema.equals(LEDGER_SCHEMA)
    rows = table.to_pylist()
    assert [r["id"] for r in rows] == [1170025343920402432, 1170147183095664640]
    assert [r["reason"] for r in rows] == ["protected", "deactivated"]
    assert rows[0]["redacted_at"] is None and rows[1]["redacted_at"].isoformat() == "2021-08-17T17:26:15.788000+00:00"
    assert rows[1]["created_at"].isoformat() == "2019-09-07T01:30:03.390000+00:00"
    assert all(r["checked_at"] == checked for r in rows)
    with pytest.raises(ComplianceError, match="line 2"):  # a row is never dropped silently
        parse_results(b'{"id":"1","action":"delete"}\n{"action":"delete","reason":"deleted"}\n', checked, "job-2")


def _raw_text(lake) -> bytes:
    return gzip.decompress(lake.read_bytes(LakeIOManager.key("raw_tweets", "jsonl.gz", DAY)))


def _ids(lake, table: str) -> list[int]:
    key = LakeIOManager.key(table, "parquet", DAY)
    return StoredTable(lake, key, lake.uri(key)).read(["id"]).column("id").to_pylist()


def _record_s3_calls(monkeypatch, bucket: str) -> list[dict]:
    """Record the S3 calls made on ``bucket`` (operation and str params) from now until undo."""
    import botocore.client

    calls: list[dict] = []
    original = botocore.client.BaseClient._make_api_call

    def recording(self, operation, params):
        if params.get("Bucket") == bucket:
            calls.append({"operation": operation, "params": {k: v for k, v in params.items() if isinstance(v, str)}})
        return original(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", recording)
    return calls


def _denied_by_pipeline_policy(calls: list[dict], bucket: str, tmp_path) -> list[str]:
    """The calls deploy/iam/policy.json (rendered for this bucket, prefix ``lake``) would deny."""
    import subprocess
    import sys

    from tests.conftest import REPO

    sys.path.insert(0, str(REPO / "tests" / "deploy"))
    from deploy_helpers import clean_env
    from iam_eval import is_allowed, requests_for_call

    placeholders = {"LAKE_BUCKET": bucket, "LAKE_PREFIX": "lake", "REGION": "us-east-1", "ACCOUNT_ID": "123456789012", "KMS_KEY_ID": "k",
                    "ATHENA_WORKGROUP": "w", "GLUE_DATABASE": "tweets_db", "RESULTS_BUCKET": "r", "RESULTS_PREFIX": "p"}
    subprocess.run(["bash", str(REPO / "deploy" / "iam" / "render-policies.sh"), str(tmp_path / "iam")], env=clean_env(**placeholders), check=True, timeout=60)
    policy = json.loads((tmp_path / "iam" / "policy.json").read_text())
    return [
        str(request)
        for call in calls
        for request in requests_for_call("s3", call["operation"], call["params"], region="us-east-1", account="123456789012")
        if not is_allowed(policy, request)
    ]


@pytest.mark.slow
def test_compliance_job_removes_deleted_posts_everywhere(x_api_v2, s3_lake, aws_env, instance, caplog, capfd, tmp_path):
    caplog.set_level(logging.DEBUG)
    path = x_api_v2 / "twarc-network-test-data" / "tweets.jsonl"
    res = resources(s3_lake, ReplaySource(path=str(path)))
    assert run(res, DAY, instance=instance).success
    lake = res["lake"].lake()
    raw = _raw_text(lake)
    pages = [json.loads(line) for line in raw.splitlines()]
    # two real posts named nowhere else in the day's pages (not quoted, retweeted or replied to)
    alone = [p for page in pages for p in page["data"] if raw.count(f'"{p["id"]}"'.encode()) == 1]
    gone = alone[:2]
    assert len(gone) == 2 and len(_ids(lake, "tweets")) == 500
    templates = _templates(x_api_v2)  # reasons "protected" and "deactivated", in the recorded shape
    bucket = s3_lake[5:].split("/")[0]
    patch = pytest.MonkeyPatch()  # its own: undoing it leaves aws_env's settings in place
    lake_calls = _record_s3_calls(patch, bucket)
    with ComplianceDouble(aws_env, TOKEN, in_progress_polls=2) as double:
        double.affected = {p["id"]: dict(t, created_at=p["created_at"]) for p, t in zip(gone, templates)}
        api = ComplianceApi(bearer_token=TOKEN, base_url=double.url, poll_interval_s=0.02)
        result = materialize(
            [compliance_ledger, no_published_id_in_ledger],
            resources={"lake": res["lake"], "compliance_api": api},
            instance=instance,
            run_config={"ops": {"compliance_ledger": {"config": {"first_day": DAY, "last_day": DAY, "ids_per_job": 200}}}},
        )
    assert result.success
    patch.undo()
    assert double.violations == []
    # every lake call of the compliance run is allowed by the pipeline policy (deploy/iam), and none deletes
    assert {"ListObjectsV2", "GetObject", "PutObject"} <= {c["operation"] for c in lake_calls}
    assert not [c for c in lake_calls if "Delete" in c["operation"]]
    assert _denied_by_pipeline_policy(lake_calls, bucket, tmp_path) == []
    # jobs of at most 200 ids, one at a time, each polled through in_progress to complete; the
    # 500 published ids and the ids they reference (retweeted, quoted, replied to) uploaded once
    # each, one per line
    referenced = {r["id"] for page in pages for p in page["data"] for r in p.get("referenced_tweets", [])}
    submitted = {str(p["id"]) for page in pages for p in page["data"]} | referenced
    jobs = -(-len(submitted) // 200)
    assert [s for s in double.seen if s[0] == "POST"] == [("POST", "/2/compliance/jobs", "Bearer")] * jobs
    assert len([s for s in double.seen if s[0] == "GET"]) >= 3 * jobs
    uploads = [u.decode().splitlines() for u in double.uploads.values()]
    assert [len(u) for u in uploads] == [200] * (jobs - 1) + [len(submitted) - 200 * (jobs - 1)]
    assert sorted(i for u in uploads for i in u) == sorted(submitted)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "in_progress" in logged and "complete" in logged

    gone_ids = {int(p["id"]) for p in gone}
    # published and clean: 498 rows, the two gone
    for table in ("tweets", "clean_tweets"):
        ids = _ids(lake, table)
        assert len(ids) == 498 and not gone_ids & set(ids), table
    # raw: the two posts' ids (and so their objects) are nowhere in the day's pages any more
    raw_after = _raw_text(lake)
    assert all(raw_after.count(f'"{i}"'.encode()) == 0 for i in gone_ids)
    pages_after = [json.loads(line) for line in raw_after.splitlines()]
    assert len(pages_after) == 5 and sum(len(p["data"]) for p in pages_after) == 498
    # the ledger: ids and compliance facts only
    ledger = read_ledger(lake)
    assert ledger.schema.names == LEDGER_SCHEMA.names and "text" not in ledger.schema.names
    rows = {r["id"]: r for r in ledger.to_pylist()}
    assert set(rows) == gone_ids
    assert sorted(r["reason"] for r in rows.values()) == ["deactivated", "protected"]
    for post in gone:
        assert rows[int(post["id"])]["created_at"] == datetime.fromisoformat(post["created_at"].replace("Z", "+00:00"))
    # metadata: the day's s3_parquet rewrite, posts removed by reason; the ledger's own counts
    mats = instance.fetch_materializations(AssetRecordsFilter(asset_key=AssetKey("s3_parquet"), asset_partitions=[DAY]), limit=1).records
    meta = mats[0].asset_materialization.metadata
    assert meta["compliance_removed_by_reason"].value == {"protected": 1, "deactivated": 1}
    assert meta["dagster/row_count"].value == 498
    by_key = {m.asset_key: m for m in result.asset_materializations_for_node("compliance_ledger")}
    assert set(by_key) == {AssetKey("compliance_ledger"), AssetKey("s3_parquet")}
    own = by_key[AssetKey("compliance_ledger")].metadata
    assert own["ids_checked"].value == len(submitted) and own["new_ledger_rows"].value == 2
    assert own["removed_by_reason"].value == {"protected": 1, "deactivated": 1}
    assert {e.check_name: e.passed for e in result.get_asset_check_evaluations()} == {"no_published_id_in_ledger": True}

    # recompute from raw: clean_tweets + s3_parquet only
    again = materialize(
        [*ALL, published_ids_not_in_ledger],
        resources=res,
        instance=instance,
        partition_key=DAY,
        selection=[assets.clean_tweets, assets.s3_parquet, checks.ids_unique_and_not_null, checks.created_at_in_partition, checks.published_schema_matches, published_ids_not_in_ledger],
    )
    assert again.success and len(_ids(lake, "tweets")) == 498
    assert {e.check_name: e.passed for e in again.get_asset_check_evaluations()}["published_ids_not_in_ledger"] is True
    # a replay that lands the deleted posts in raw again: clean_tweets applies the ledger
    replayed = run(res, DAY, instance=instance)
    assert replayed.success
    assert not gone_ids & set(_ids(lake, "tweets")) and len(_ids(lake, "tweets")) == 498
    assert replayed.asset_materializations_for_node("clean_tweets")[0].metadata["compliance_removed"].value == 2
    assert ledger_ids_published(lake, [DAY]) == {}

    # the check fails when a ledger id is published (a ledger row added for a published post)
    published = _ids(lake, "tweets")[0]
    extra = ledger.slice(0, 1).set_column(0, "id", pa.array([published], pa.int64()))
    write_ledger(lake, merge_ledger(ledger, extra))
    checked = materialize(
        [compliance_ledger, no_published_id_in_ledger],
        resources={"lake": res["lake"], "compliance_api": ComplianceApi()},
        instance=instance,
        selection=AssetSelection.checks(no_published_id_in_ledger),
    )
    (evaluation,) = checked.get_asset_check_evaluations()
    assert not evaluation.passed and evaluation.metadata["published_ledger_ids_by_day"].value == {DAY: 1}
    # and the daily check on s3_parquet, when the day is published again from a clean_tweets
    # computed before that ledger row
    daily = materialize([*ALL, published_ids_not_in_ledger], resources=res, instance=instance, partition_key=DAY, selection=[assets.s3_parquet, published_ids_not_in_ledger])
    (evaluation,) = [e for e in daily.get_asset_check_evaluations() if e.check_name == "published_ids_not_in_ledger"]
    assert not evaluation.passed and evaluation.metadata["published_ledger_ids_by_day"].value == {DAY: 1}

    # the bearer token is in no log line, captured output or stored event
    out, err = capfd.readouterr()
    events = "\n".join(str(e) for e in instance.all_logs(result.run_id))
    for text in (logged, "\n".join(r.getMessage() for r in caplog.records), out, err, events):
        assert TOKEN not in text and TOKEN[-12:] not in text


@pytest.mark.slow
def test_compliance_job_failures_are_clear_and_keep_the_token_out(aws_env, caplog):
    """A job that ends ``failed``, one still ``in_progress`` past max_wait_s, and a wrong token:
    each a ComplianceError naming the step, none with the token in it."""
    caplog.set_level(logging.DEBUG)
    log = logging.getLogger("test_compliance")
    ids = [1408876745718108161, 1408876788839763968]
    with ComplianceDouble(aws_env, TOKEN, in_progress_polls=1) as double:
        api = ComplianceApi(bearer_token=TOKEN, base_url=double.url, poll_interval_s=0.01, max_wait_s=3)
        double.outcome = "failed"
        with pytest.raises(ComplianceError, match="ended failed") as failed:
            api.check(ids, "failing", log)
        double.in_progress_polls = 10_000
        slow = ComplianceApi(bearer_token=TOKEN, base_url=double.url, poll_interval_s=0.01, max_wait_s=0.2)
        with pytest.raises(ComplianceError, match="still in_progress") as waited:
            slow.check(ids, "slow", log)
        wrong = ComplianceApi(bearer_token=TOKEN[::-1], base_url=double.url)
        with pytest.raises(ComplianceError, match="HTTP 401") as refused:
            wrong.create("refused")
        with pytest.raises(ComplianceError, match="X_BEARER_TOKEN"):
            ComplianceApi(base_url=double.url).create("no token")
    assert double.violations == ["create with a wrong bearer token"]
    texts = [str(failed.value), str(waited.value), str(refused.value), caplog.text]
    assert "in_progress" in caplog.text  # the polled status is logged
    for text in texts:
        assert TOKEN not in text and TOKEN[::-1] not in text and TOKEN[-12:] not in text


def test_remove_from_day_drops_stream_messages_and_keeps_other_lines_byte_for_byte(x_api_v2, tmp_path):
    """Real filtered-stream messages (7 and a truncated line) as a landed raw_stream segment and
    as the day's raw_tweets object: the message of one ledger post goes from both; every other
    line, the unreadable one included, stays byte for byte; without the stream prefix the
    segment is left alone."""
    from tweet_assets.compliance.rewrite import remove_from_day
    from tweet_assets.lake.values import PageSpool
    from tweet_assets.lake.store import LocalLake

    day = "2021-04-01"
    lines = (x_api_v2 / "twarc-csv-test-data" / "streaming_output_with_error.jsonl").read_bytes().splitlines()
    gone = json.loads(lines[1])["data"]["id"]
    lake = LocalLake(str(tmp_path / "lake"))
    keys = [LakeIOManager.key("raw_tweets", "jsonl.gz", day), f"raw_stream/dt={day}/20210401T155000Z-20210401T155500Z.jsonl.gz"]
    for key in keys:
        spool = PageSpool(str(tmp_path), "segment")
        for line in lines:
            spool.write(line)
        lake.put_file(key, spool.close().path)

    def landed(key):
        return gzip.decompress(lake.read_bytes(key)).splitlines()

    ids = pa.array([int(gone)], pa.int64())
    alone = remove_from_day(lake, day, ids)
    assert alone.raw_objects_rewritten == keys[:1] and landed(keys[1]) == lines
    both = remove_from_day(lake, day, ids, stream_prefix="raw_stream")
    assert both.raw_objects_rewritten == keys[1:] and both.raw_posts == 1  # raw_tweets was done already
    for key in keys:
        assert landed(key) == lines[:1] + lines[2:], key
        assert gone.encode() not in gzip.decompress(lake.read_bytes(key))


def _strings(node) -> Iterator[str]:
    """Every string value in a parsed JSON document."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


def _post_objects(node) -> Iterator[dict]:
    """Every object in a parsed JSON document that has an ``id`` and is not a bare reference
    (``referenced_tweets`` entries are ``{"type", "id"}``)."""
    if isinstance(node, dict):
        if "id" in node and set(node) != {"type", "id"}:
            yield node
        for value in node.values():
            yield from _post_objects(value)
    elif isinstance(node, list):
        for value in node:
            yield from _post_objects(value)


def _raw_documents(lake) -> list:
    """Every line of every raw object in the lake (raw_tweets and raw_stream), parsed."""
    keys = [k for prefix in ("raw_tweets/", "raw_stream/") for k in lake.list(prefix) if k.endswith(".jsonl.gz")]
    assert keys
    return [json.loads(line) for key in keys for line in gzip.decompress(lake.read_bytes(key)).splitlines()]


@pytest.mark.slow
def test_compliance_job_removes_referenced_copies_and_retweets(x_api_v2, s3_lake, aws_env, instance):
    """A retweeted and a quoted post that are published nowhere (each only in includes.tweets of
    the page of the one post referencing it) are reported deleted: their ids are submitted (as the
    published rows' retweeted_id / quoted_id), they enter the ledger, no raw object holds their
    object or text any more, the retweet's row and raw post go (X removes retweets of a deleted
    post), the quote's row stays with its quoted_id; a recompute from raw and a replay that lands
    the day's pages again bring nothing back."""
    path = x_api_v2 / "twarc-network-test-data" / "tweets.jsonl"
    res = resources(s3_lake, ReplaySource(path=str(path)))
    assert run(res, DAY, instance=instance).success
    lake = res["lake"].lake()
    pages = [json.loads(line) for line in _raw_text(lake).splitlines()]
    posts = [p for page in pages for p in page["data"]]
    published = {p["id"] for p in posts}
    originals = {t["id"]: t for page in pages for t in page["includes"]["tweets"]}
    referrers = Counter(r["id"] for p in posts for r in p.get("referenced_tweets", []))
    strings = [s for page in pages for s in _strings(page)]

    def only_in_includes(kind: str) -> tuple[dict, str]:
        """The first post of ``kind`` whose referenced post is not published, was created on
        another day (so only the reference names this day to rewrite), is referenced by it alone,
        and whose text is in no other post's string than its own and the referrer's."""
        for post in posts:
            for ref in post.get("referenced_tweets", []):
                rid = ref["id"]
                other_day = rid in originals and originals[rid]["created_at"][:10] != DAY
                if ref["type"] == kind and rid not in published and other_day and referrers[rid] == 1:
                    text = originals[rid]["text"]
                    if sum(text in s for s in strings) == (2 if kind == "retweeted" and text in post["text"] else 1):
                        return post, rid
        raise AssertionError(f"no {kind} post with its original only in includes")

    retweet, retweeted = only_in_includes("retweeted")
    quote, quoted = only_in_includes("quoted")
    deleted = {retweeted, quoted}
    texts = [originals[retweeted]["text"], originals[quoted]["text"], retweet["text"]]
    before = _ids(lake, "tweets")
    assert len(before) == 500 and not {int(i) for i in deleted} & set(before)
    with ComplianceDouble(aws_env, TOKEN, in_progress_polls=0) as double:
        double.affected = {i: dict(t, created_at=originals[i]["created_at"]) for i, t in zip(sorted(deleted), _templates(x_api_v2))}
        api = ComplianceApi(bearer_token=TOKEN, base_url=double.url, poll_interval_s=0.01)
        result = materialize(
            [compliance_ledger, no_published_id_in_ledger],
            resources={"lake": res["lake"], "compliance_api": api},
            instance=instance,
            run_config={"ops": {"compliance_ledger": {"config": {"first_day": DAY, "last_day": DAY}}}},
        )
    assert result.success and double.violations == []
    (upload,) = [u.decode().splitlines() for u in double.uploads.values()]
    assert len(upload) == len(set(upload)) and deleted <= set(upload) and published <= set(upload)
    assert {r["id"] for r in read_ledger(lake).to_pylist()} == {int(i) for i in deleted}

    def nothing_of_them_in_raw():
        documents = _raw_documents(lake)
        held = [o["id"] for d in documents for o in _post_objects(d) if str(o["id"]) in deleted | {retweet["id"]}]
        assert held == []
        assert not [t for t in texts for s in (s for d in documents for s in _strings(d)) if t in s]

    def retweet_gone_quote_kept():
        for table in ("tweets", "clean_tweets"):
            ids = _ids(lake, table)
            assert int(retweet["id"]) not in ids and int(quote["id"]) in ids and len(ids) == 499, table
        key = LakeIOManager.key("tweets", "parquet", DAY)
        row = StoredTable(lake, key, lake.uri(key)).read(["id", "quoted_id"]).to_pylist()
        assert {r["id"]: r["quoted_id"] for r in row}[int(quote["id"])] == int(quoted)

    nothing_of_them_in_raw()
    retweet_gone_quote_kept()
    own = {m.asset_key: m for m in result.asset_materializations_for_node("compliance_ledger")}[AssetKey("compliance_ledger")].metadata
    assert own["removed_by_reason"].value == {"retweet_of_removed_post": 1}
    # recompute from raw, then a replay that lands the day's pages (the deleted posts with them) again
    again = materialize([*ALL], resources=res, instance=instance, partition_key=DAY, selection=[assets.clean_tweets, assets.s3_parquet])
    assert again.success
    nothing_of_them_in_raw()
    retweet_gone_quote_kept()
    key = LakeIOManager.key("tweets", "parquet", DAY)
    recomputed = {r["id"]: r for r in StoredTable(lake, key, lake.uri(key)).read(["id", "quoted_user_id", "quoted_username"]).to_pylist()}
    assert recomputed[int(quote["id"])]["quoted_user_id"] is None and recomputed[int(quote["id"])]["quoted_username"] is None
    replayed = run(res, DAY, instance=instance)
    assert replayed.success
    assert replayed.asset_materializations_for_node("clean_tweets")[0].metadata["compliance_removed"].value == 1
    retweet_gone_quote_kept()


def test_a_post_named_raw_page_loses_the_removed_post_from_data_and_includes_posts(x_api_v2, tmp_path):
    """Pages land as received (#28), so a raw page may be in spec 2.167's names: the removed post
    leaves ``data`` and ``includes.posts``, and a repost of it (``referenced_posts``) goes too."""
    import gzip

    from tests.x.test_vocabulary import in_post_names
    from tweet_assets.compliance.rewrite import remove_from_day
    from tweet_assets.lake.store import LocalLake

    page = json.loads((x_api_v2 / "twarc-network-test-data" / "tweets.jsonl").read_text().splitlines()[0])
    included = page["includes"]["tweets"][0]["id"]
    retweet = next(p for p in page["data"] if any(r["type"] == "retweeted" for r in p.get("referenced_tweets", [])))
    original = next(r["id"] for r in retweet["referenced_tweets"] if r["type"] == "retweeted")
    posted = in_post_names(json.loads(json.dumps(page)))
    assert "posts" in posted["includes"] and "tweets" not in posted["includes"]
    lake = LocalLake(str(tmp_path))
    day = "2021-06-26"
    key = f"raw_tweets/dt={day}/part-00000.jsonl.gz"
    path = tmp_path / key  # the raw zone's object, as the IO manager lays it out
    path.parent.mkdir(parents=True)
    path.write_bytes(gzip.compress(json.dumps(posted).encode() + b"\n"))
    remove_from_day(lake, day, pa.array([int(included), int(original)], pa.int64()))
    out = json.loads(gzip.decompress((tmp_path / key).read_bytes()))
    assert included not in {p["id"] for p in out["includes"]["posts"]} and original not in {p["id"] for p in out["includes"]["posts"]}
    assert retweet["id"] not in {p["id"] for p in out["data"]}
    assert len(out["data"]) < len(posted["data"])


def test_review4_a_compliance_rewrite_whose_lease_was_taken_over_records_no_lineage(tmp_path, instance, monkeypatch):
    """The compliance job rewrites a day under its lease, then refreshes the day's lineage. Paused
    between the two past its lease (its cached lease still inside its renewal point), with run-b
    having taken the day and recorded its own entry: the refresh must not overwrite run-b's entry."""
    from types import SimpleNamespace

    from tweet_assets.defs.compliance import assets as compliance_assets
    from tweet_assets.lake import lineage
    from tweet_assets.lake.leases import DayLeases, LeaseLost, forget_run
    from tweet_assets.lake.store import LocalLake
    from tweet_assets.sources import SampleSource

    day = "2024-03-05"
    root = str(tmp_path / "lake")
    assert run(resources(root, SampleSource(posts_per_day=20)), day, instance=instance).success
    lake = LocalLake(root)
    published = StoredTable(lake, f"tweets/dt={day}/part-00000.parquet", "").read(["id", "created_at"])
    ledger = pa.table(
        {"id": published.column("id").slice(0, 2), "action": ["delete"] * 2, "reason": ["deleted"] * 2, "created_at": published.column("created_at").slice(0, 2).cast(LEDGER_SCHEMA.field("created_at").type),
         "redacted_at": pa.nulls(2, LEDGER_SCHEMA.field("redacted_at").type), "checked_at": [datetime(2024, 4, 1)] * 2, "job_id": ["j"] * 2},
        schema=LEDGER_SCHEMA,
    )
    real = compliance_assets.remove_from_day

    def remove_from_day(store, d, ids, stream_prefix=None, leases=None):
        removal = real(store, d, ids, stream_prefix, leases)  # run-c's fenced rewrites; then it pauses past its lease
        b = DayLeases(store, "run-b", "raw_tweets", run_finished=lambda r: r == leases.run_id)
        b.acquire([d])
        lineage.record(store, d, "tweets", {"key": f"tweets/dt={d}/part-00000.parquet", "etag": "run-b's", "run_id": "run-b", "read": {}})
        return removal

    monkeypatch.setattr(compliance_assets, "remove_from_day", remove_from_day)
    context = SimpleNamespace(run=SimpleNamespace(run_id="run-c"), instance=instance, log=logging.getLogger("test"), log_event=lambda event: None)
    try:
        with pytest.raises(LeaseLost, match="to run run-b"):
            compliance_assets._remove(context, lake, [day], ledger, None)
    finally:
        forget_run("run-c")
        forget_run("run-b")
    entry = lineage.read_lineage(lake, day)["tweets"]
    assert entry["run_id"] == "run-b" and "rewritten_by" not in entry


@pytest.mark.parametrize("failure", ["mid-stream", "changed at open"])
def test_review8_a_raw_rewrite_that_fails_reading_leaves_no_temporary(tmp_path, monkeypatch, failure):
    """The raw rewrite spools the kept pages to a compliance-raw-* directory: a read that fails
    (a LakeError mid-stream; ObjectChanged at open, retried MAX_CONFLICTS times) leaves none behind,
    and no spool file open."""
    import tempfile

    from tweet_assets.compliance import rewrite
    from tweet_assets.lake.store import LakeError, LocalLake, ObjectChanged

    spool_root = tmp_path / "tmp"
    spool_root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool_root))
    lake = LocalLake(str(tmp_path / "lake"))
    key = "raw_tweets/dt=2024-03-05/part-00000.jsonl.gz"
    lake.put_bytes(key, gzip.compress(b'{"data": [{"id": "1"}]}\n{"data": [{"id": "2"}]}\n'))

    def lines(self):
        if failure == "changed at open":
            raise ObjectChanged("replaced")
        yield f"{self.uri}:1", b'{"data": [{"id": "1"}]}'
        raise LakeError("connection reset while reading")

    monkeypatch.setattr(rewrite.StoredPages, "lines", lines)
    with pytest.raises(LakeError):
        rewrite._rewrite_pages(lake, key, {"1"}, "2024-03-05")
    assert list(spool_root.iterdir()) == []
