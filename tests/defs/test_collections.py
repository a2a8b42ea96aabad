"""Collections (issue #30): ``TweetCollection`` components side by side in one code location.

Two collections from their YAML (``tweet_assets/defs/<name>/defs.yaml``, loaded as dg loads them):
``brand``, a search against the loopback X API double (tests/x_api_double.py), and ``archive``,
a replay of a shared recording; each in its own key prefix, Dagit group and lake folder, next to
the environment's collection (today's keys). Shared: one lake and IO manager, one compliance ledger.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest
import yaml
from dagster import AssetKey, AssetRecordsFilter, Definitions, materialize
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from pydantic import ValidationError

from tests import x_api_double as xd
from tests.helpers import is_bookkeeping
from tweet_assets.compliance.api import ComplianceApi
from tweet_assets.components import TweetCollection
from tweet_assets.components.collection import CollectionError
from tweet_assets.defs.compliance import assets as compliance
from tweet_assets.lake.io_manager import LakeIOManager
from tweet_assets.lake.values import StoredTable
from tweet_assets.settings import lake_from_env

ARCHIVE = "twarc-network-test-data/tweets.jsonl"  # 500 posts on 2021-06-26, 5 pages
ARCHIVE_DAY = "2021-06-26"
TOKEN = "AAAAAAAAAAAAAAAAAAAAAcollectionsTestBearer0123456789xyz"


def _yesterday() -> str:
    return (datetime.now(timezone.utc) - timedelta(days=1)).strftime("%Y-%m-%d")


def _recorded_pages(x_api_v2: Path) -> list[dict]:
    pages = [orjson.loads(line) for line in (x_api_v2 / ARCHIVE).read_bytes().splitlines()]
    for page in pages:
        page.pop("__twarc", None)
    return pages


def _write_collection(root: Path, name: str, **attributes) -> Path:
    path = root / "defs" / name / "defs.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump({"type": "tweet_assets.TweetCollection", "attributes": {"name": name, **attributes}}, sort_keys=False))
    return path


def _load(path: Path) -> TweetCollection:
    """The component of a ``defs.yaml`` (its ``type`` checked, its ``attributes`` validated by the model)."""
    document = yaml.safe_load(path.read_text())
    assert document["type"] == "tweet_assets.TweetCollection"
    return TweetCollection.from_attributes_dict(attributes=document["attributes"])


def _code_location(lake_url: str, *yaml_paths: Path, compliance_api: ComplianceApi | None = None) -> Definitions:
    """The shared objects (lake, IO manager, compliance) and each collection's, from its YAML."""
    lake = lake_from_env({**os.environ, "TWEET_ASSETS_LAKE_URL": lake_url})
    shared = Definitions(
        assets=[compliance.compliance_ledger],
        asset_checks=[compliance.no_published_id_in_ledger],
        jobs=[compliance.compliance_job],
        resources={"lake": lake, "io_manager": LakeIOManager(location=lake), "compliance_api": compliance_api or ComplianceApi()},
    )
    collections = [_load(p).build_defs(None) for p in yaml_paths]
    return Definitions.merge(shared, *collections)


def _run(defs: Definitions, job: str, instance, day: str, end: str | None = None):
    tags = {ASSET_PARTITION_RANGE_START_TAG: day, ASSET_PARTITION_RANGE_END_TAG: end} if end else None
    return defs.resolve_job_def(job).execute_in_process(instance=instance, partition_key=None if end else day, tags=tags)


def _files(root: Path) -> dict[str, tuple[int, int, str]]:
    """``{relative path: (size, mtime_ns, sha256)}`` of every file under ``root``."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not is_bookkeeping(p.relative_to(root).as_posix()):
            st = p.stat()
            out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
    return out


def _project_copy(tmp_path: Path, *yaml_paths: Path) -> Path:
    """A copy of the project (pyproject.toml, workspace.yaml, tweet_assets/) at ``tmp_path/project``
    with each ``defs/<name>/defs.yaml`` of ``yaml_paths`` under its ``tweet_assets/defs/``, as a user
    adds a collection to the checkout; run it with ``PYTHONPATH`` set to the copy."""
    import shutil

    repo = Path(__file__).resolve().parents[2]
    project = tmp_path / "project"
    project.mkdir()
    for name in ("pyproject.toml", "workspace.yaml"):
        shutil.copy(repo / name, project)
    shutil.copytree(repo / "tweet_assets", project / "tweet_assets", ignore=shutil.ignore_patterns("__pycache__"))
    for path in yaml_paths:
        (project / "tweet_assets" / "defs" / path.parent.name).mkdir()
        shutil.copy(path, project / "tweet_assets" / "defs" / path.parent.name / "defs.yaml")
    return project


def _ids(lake_root: Path, table: str, day: str) -> list[int]:
    lake = lake_from_env({"TWEET_ASSETS_LAKE_URL": str(lake_root)}).lake()
    key = LakeIOManager.key(table, "parquet", day)
    return StoredTable(lake, key, lake.uri(key)).read(["id"]).column("id").to_pylist()


@pytest.fixture
def two_collections(tmp_path, x_api_v2, x_api_double, monkeypatch):
    """``brand`` (search, yesterday's posts served by the X API double: the archive's 500 posts,
    re-dated) and ``archive`` (replay of the same recording), their YAML under ``tmp_path/defs``."""
    x_api_double.reset()
    pages = _recorded_pages(x_api_v2)
    day = datetime.strptime(_yesterday(), "%Y-%m-%d").replace(tzinfo=timezone.utc)
    posts, users = xd.recorded_posts(pages, day, 500)
    x_api_double.posts += posts
    x_api_double.users.update(users)
    monkeypatch.setenv("X_BEARER_TOKEN", TOKEN)
    monkeypatch.setenv("X_API_BASE_URL", x_api_double.url)
    monkeypatch.setenv("X_HTTP_TIMEOUT", "2,5")
    first = (day - timedelta(days=3)).strftime("%Y-%m-%d")
    brand = _write_collection(tmp_path, "brand", search={"query": "dagster -is:retweet", "context_annotations": False}, start_date=first, schedule="30 1 * * *")
    archive = _write_collection(tmp_path, "archive", replay={"path": str(x_api_v2 / ARCHIVE)}, start_date="2021-06-01", table="archive_posts")
    yield brand, archive, posts, x_api_double
    violations = list(x_api_double.violations)
    x_api_double.reset()
    assert violations == [], f"requests the X API rejects: {violations}"


def test_two_collections_side_by_side_each_in_its_own_prefix_group_and_lake_folder(two_collections, tmp_path, instance):
    brand, archive, posts, double = two_collections
    lake = tmp_path / "lake"
    defs = _code_location(str(lake), brand, archive)
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {f"{c}/{a}" for c in ("brand", "archive") for a in ("raw_tweets", "clean_tweets", "tweets")} <= keys
    for name in ("brand", "archive"):
        for asset in ("raw_tweets", "clean_tweets", "tweets"):
            assert graph.get(AssetKey([name, asset])).group_name == name
        assert graph.get(AssetKey([name, "raw_tweets"])).pools == {"x_api"}  # one pool for every collection
    assert {j.name for j in defs.jobs} >= {"brand_daily_job", "archive_daily_job", "compliance_job"}
    schedules = {s.name: s for s in defs.schedules}
    assert schedules["brand_daily_schedule"].cron_schedule == "30 1 * * *"
    assert schedules["brand_daily_schedule"].default_status.value == "STOPPED"
    assert {s.name for s in defs.sensors} >= {"brand_freshness_sensor", "archive_freshness_sensor", "archive_replay_archive_sensor"}
    assert set(defs.resources) >= {"source__brand", "source__archive", "lake", "io_manager"}
    assert "source" not in defs.resources  # the collections bind their own source, not the environment's

    day = _yesterday()
    searched = _run(defs, "brand_daily_job", instance, day)
    replayed = _run(defs, "archive_daily_job", instance, ARCHIVE_DAY)
    assert searched.success and replayed.success
    for result in (searched, replayed):
        assert all(e.passed for e in result.get_asset_check_evaluations())
    # each collection in its own lake folder; nothing at the environment's tables
    files = set(_files(lake))
    assert {
        f"brand/raw_tweets/dt={day}/part-00000.jsonl.gz",
        f"brand/clean_tweets/dt={day}/part-00000.parquet",
        f"brand/tweets/dt={day}/part-00000.parquet",
        f"archive/raw_tweets/dt={ARCHIVE_DAY}/part-00000.jsonl.gz",
        f"archive/clean_tweets/dt={ARCHIVE_DAY}/part-00000.parquet",
        f"archive/tweets/dt={ARCHIVE_DAY}/part-00000.parquet",
    } <= files
    assert not [f for f in files if f.split("/")[0] in ("raw_tweets", "clean_tweets", "tweets")]
    assert sorted(_ids(lake, "brand/tweets", day)) == sorted(int(p["id"]) for p in posts)
    assert len(_ids(lake, "archive/tweets", ARCHIVE_DAY)) == 500
    # the search went to the double with the collection's query, the replay read no API
    searches = [s for s in double.seen if "/search/" in s.path]
    assert searches and all(s.params.get("query") == "dagster -is:retweet" for s in searches)
    # each published asset's DDL names the collection's table and lake folder
    meta = replayed.asset_materializations_for_node("archive__tweets")[0].metadata
    assert "archive_posts" in meta["athena_ddl"].value and str(lake / "archive" / "tweets") in meta["table_location"].value
    assert instance.fetch_materializations(AssetKey("s3_parquet"), limit=1).records == []


def test_a_backfill_of_one_collection_touches_nothing_of_the_other(two_collections, tmp_path, instance):
    brand, archive, _, _ = two_collections
    lake = tmp_path / "lake"
    defs = _code_location(str(lake), brand, archive)
    day = _yesterday()
    assert _run(defs, "brand_daily_job", instance, day).success
    before = {k: v for k, v in _files(lake).items() if k.startswith("brand/")}
    brand_runs = len(instance.fetch_materializations(AssetRecordsFilter(asset_key=AssetKey(["brand", "tweets"])), limit=100).records)
    # a backfill of three days of the archive, one run (BackfillPolicy.single_run)
    result = _run(defs, "archive_daily_job", instance, "2021-06-25", "2021-06-27")
    assert result.success
    assert sorted(m.partition for m in result.asset_materializations_for_node("archive__tweets")) == ["2021-06-25", "2021-06-26", "2021-06-27"]
    touched = {m.asset_key.to_user_string() for m in result.get_asset_materialization_events() for m in [m.event_specific_data.materialization]}
    assert touched == {"archive/raw_tweets", "archive/clean_tweets", "archive/tweets"}
    after = _files(lake)
    assert {k: v for k, v in after.items() if k.startswith("brand/")} == before  # byte for byte, same mtimes
    assert {k.split("/")[0] for k in after} == {"brand", "archive"}
    assert len(instance.fetch_materializations(AssetRecordsFilter(asset_key=AssetKey(["brand", "tweets"])), limit=100).records) == brand_runs


def test_a_post_deleted_by_compliance_is_removed_from_every_collection(two_collections, tmp_path, instance, aws_env, x_api_v2):
    from tests.compliance_double import ComplianceDouble

    brand, archive, posts, double = two_collections
    lake = tmp_path / "lake"
    day = _yesterday()
    with ComplianceDouble(aws_env, TOKEN, in_progress_polls=1) as double:  # noqa: F811 (the X API double is not used here)
        api = ComplianceApi(bearer_token=TOKEN, base_url=double.url, poll_interval_s=0.02)
        defs = _code_location(str(lake), brand, archive, compliance_api=api)
        assert _run(defs, "brand_daily_job", instance, day).success
        assert _run(defs, "archive_daily_job", instance, ARCHIVE_DAY).success
        raw = gzip.decompress((lake / "archive" / "raw_tweets" / f"dt={ARCHIVE_DAY}" / "part-00000.jsonl.gz").read_bytes())
        # a post named nowhere else in the pages (not quoted, retweeted, replied to), held by both collections
        alone = next(p for page in map(json.loads, raw.splitlines()) for p in page["data"] if raw.count(f'"{p["id"]}"'.encode()) == 1)
        gone = int(alone["id"])
        assert gone in _ids(lake, "brand/tweets", day) and gone in _ids(lake, "archive/tweets", ARCHIVE_DAY)
        template = json.loads((x_api_v2 / "twarc-csv-test-data" / "tweets_compliance.jsonl").read_text().split("\n", 2)[1])
        double.affected = {alone["id"]: dict(template, created_at=alone["created_at"])}
        result = defs.resolve_job_def("compliance_job").execute_in_process(instance=instance)
        assert result.success and double.violations == []
    # one upload: every collection's ids, each once (the same post in two collections is checked once)
    (upload,) = double.uploads.values()
    assert upload.decode().splitlines().count(alone["id"]) == 1
    for table, at in (("brand/tweets", day), ("brand/clean_tweets", day), ("archive/tweets", ARCHIVE_DAY), ("archive/clean_tweets", ARCHIVE_DAY)):
        ids = _ids(lake, table, at)
        assert gone not in ids and len(ids) == 499, table
    for folder, at in (("brand", day), ("archive", ARCHIVE_DAY)):
        raw_after = gzip.decompress((lake / folder / "raw_tweets" / f"dt={at}" / "part-00000.jsonl.gz").read_bytes())
        assert f'"{gone}"'.encode() not in raw_after, folder
    # one ledger, at the lake's root, shared
    assert (lake / "clean_tweets" / "_compliance_ledger" / "part-00000.parquet").is_file()
    assert not list(lake.glob("*/clean_tweets/_compliance_ledger"))
    rewritten = {m.asset_key for m in result.asset_materializations_for_node("compliance_ledger")}
    assert rewritten == {AssetKey("compliance_ledger"), AssetKey(["brand", "tweets"]), AssetKey(["archive", "tweets"])}
    (check,) = result.get_asset_check_evaluations()
    assert check.passed
    # a recompute of a collection's day from its raw keeps the post out (clean_tweets reads the shared ledger)
    again = defs.resolve_job_def("archive_daily_job").execute_in_process(instance=instance, partition_key=ARCHIVE_DAY)
    assert again.success and gone not in _ids(lake, "archive/tweets", ARCHIVE_DAY)


def test_a_wrong_attribute_is_refused_naming_it():
    good = {"name": "brand", "sample": {"posts_per_day": 3}}
    TweetCollection.from_attributes_dict(attributes=good)
    with pytest.raises(ValidationError, match="shedule"):
        TweetCollection.from_attributes_dict(attributes={**good, "shedule": "15 0 * * *"})
    with pytest.raises(CollectionError, match="exactly one of search, timelines, stream, replay, sample"):
        TweetCollection.from_attributes_dict(attributes={**good, "replay": {"path": "/x"}})
    with pytest.raises(CollectionError, match="start_date '2026-13-01'"):
        TweetCollection.from_attributes_dict(attributes={**good, "start_date": "2026-13-01"})
    with pytest.raises(CollectionError, match="not a cron string"):
        TweetCollection.from_attributes_dict(attributes={**good, "schedule": "daily"})
    with pytest.raises(CollectionError, match="taken"):
        TweetCollection.from_attributes_dict(attributes={**good, "name": "tweets"})
    with pytest.raises(CollectionError, match="lower-case"):
        TweetCollection.from_attributes_dict(attributes={**good, "name": "Brand Mentions"})


def test_the_environment_alone_gives_todays_keys_groups_and_lake_paths(tmp_path, instance):
    """No collection YAML: one collection, ``tweets``, with the keys, group, resource keys and
    lake paths of the previous layout, so an existing lake reads back unchanged."""
    from tests.helpers import is_bookkeeping, ALL, resources, run
    from tweet_assets.definitions import defs
    from tweet_assets.sources import SampleSource

    assert not list((Path(__file__).resolve().parents[2] / "tweet_assets" / "defs").glob("*/defs.yaml"))
    graph = defs.resolve_asset_graph()
    # raw_stream joins with the stream configured (#29); x_api_usage (#38) is always there, its sensor stopped without the X API
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == {"raw_tweets", "clean_tweets", "s3_parquet", "compliance_ledger", "x_api_usage"}
    assert {graph.get(AssetKey(k)).group_name for k in ("raw_tweets", "clean_tweets", "s3_parquet")} == {"tweets"}
    assert {k: graph.get(AssetKey(k)).metadata["lake/table"] for k in ("raw_tweets", "clean_tweets", "s3_parquet")} == {
        "raw_tweets": "raw_tweets",
        "clean_tweets": "clean_tweets",
        "s3_parquet": "tweets",
    }
    assert "source" in defs.resources and not [r for r in defs.resources if r.startswith("source__")]
    lake = tmp_path / "lake"
    res = resources(str(lake), SampleSource(posts_per_day=30))
    assert run(res, "2024-03-03", instance=instance).success
    assert set(_files(lake)) == {
        "raw_tweets/dt=2024-03-03/part-00000.jsonl.gz",
        "clean_tweets/dt=2024-03-03/part-00000.parquet",
        "tweets/dt=2024-03-03/part-00000.parquet",
    }
    # that lake read back: clean_tweets and s3_parquet recomputed from the stored raw pages
    before = _ids(lake, "tweets", "2024-03-03")
    again = materialize(ALL, resources=res, instance=instance, partition_key="2024-03-03", selection=ALL[1:])
    assert again.success and _ids(lake, "tweets", "2024-03-03") == before and len(before) == 30


def test_the_cli_acts_on_one_collection(tmp_path, x_api_v2, monkeypatch, capsys):
    """``ddl --collection`` prints the collection's table, folder and first day; ``replay PATH
    --collection NAME`` lands the archive in that collection's folder only."""
    from tweet_assets import cli
    from tweet_assets.components import lookup

    _write_collection(tmp_path, "archive", replay={"path": "/nowhere"}, start_date="2021-06-01", table="archive_posts")
    monkeypatch.setattr(lookup, "DEFS", tmp_path / "defs")
    assert cli.main(["ddl", "--collection", "archive"]) == 0
    ddl = capsys.readouterr().out
    assert "archive_posts" in ddl and "s3://YOUR-BUCKET/tweet_assets/archive/tweets/" in ddl and "2021-06-01" in ddl
    with pytest.raises(SystemExit):
        cli.main(["ddl", "--collection", "brand"])
    assert "collections: archive" in capsys.readouterr().err
    lake = tmp_path / "lake"
    monkeypatch.setenv("TWEET_ASSETS_LAKE_URL", str(lake))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    assert cli.main(["replay", str(x_api_v2 / ARCHIVE), "--collection", "archive"]) == 0
    assert {p.split("/")[0] for p in _files(lake)} == {"archive"}
    assert len(_ids(lake, "archive/tweets", ARCHIVE_DAY)) == 500
    # materialize --collection checks the day against the collection's partitions (its start_date)
    with pytest.raises(SystemExit) as early:
        cli.main(["materialize", "--collection", "archive", "--partition", "2021-05-31"])
    assert early.value.code == 2
    assert "--partition 2021-05-31 is before the first daily partition, 2021-06-01 (start_date of collection archive)" in capsys.readouterr().err


def test_a_stream_message_matching_two_collections_rules_lands_in_both(tmp_path, x_api_v2):
    """The rules of two stream collections on one connection, tagged by collection; a message
    whose ``matching_rules`` name both lands in both collections' segments, and each collection's
    StreamSource reads it back; a message of one lands in that one only."""
    from tweet_assets.lake.store import LocalLake
    from tweet_assets.sources.stream import StreamSource
    from tweet_assets.stream.collections import CollectionRouter, collection_rules
    from tweet_assets.stream.segments import SegmentWriter

    rules = collection_rules({"brand": [("acme", "mentions"), ("#acme", None)], "event": [("acme", "live")]})
    assert sorted((r.value, r.tag) for r in rules) == [("#acme", "tweet_assets:brand:#acme"), ("acme", "tweet_assets:brand+event:mentions")]
    lake = LocalLake(str(tmp_path / "lake"))
    writers = {n: SegmentWriter(lake, str(tmp_path / "spool" / n), prefix=f"{n}/raw_stream", fsync=False) for n in ("brand", "event")}
    router = CollectionRouter(SegmentWriter(lake, str(tmp_path / "spool" / "default"), fsync=False), writers)
    pages = _recorded_pages(x_api_v2)
    both, only = pages[0]["data"][0], pages[0]["data"][1]
    tag = {r.value: r.tag for r in rules}
    received = int(datetime.fromisoformat(both["created_at"].replace("Z", "+00:00")).timestamp() * 1000)
    router.append(ARCHIVE_DAY, orjson.dumps({"data": both, "matching_rules": [{"id": "1", "tag": tag["acme"]}]}), received)
    router.append(ARCHIVE_DAY, orjson.dumps({"data": only, "matching_rules": [{"id": "2", "tag": tag["#acme"]}]}), received + 1)
    router.append(ARCHIVE_DAY, orjson.dumps({"data": only, "matching_rules": [{"id": "3", "tag": "someone-else"}]}), received + 2)
    router.close()
    import logging

    def ids(prefix: str) -> list[str]:
        source = StreamSource(location=lake_from_env({"TWEET_ASSETS_LAKE_URL": str(tmp_path / "lake")}), prefix=prefix)
        start = datetime.strptime(ARCHIVE_DAY, "%Y-%m-%d").replace(tzinfo=timezone.utc)
        return [orjson.loads(p.body)["data"][0]["id"] for p in source.pages(start, start + timedelta(days=1), logging.getLogger("test"))]

    assert ids("brand/raw_stream") == [both["id"], only["id"]]
    assert ids("event/raw_stream") == [both["id"]]
    assert ids("raw_stream") == [only["id"]]  # no collection's rule: the environment's segments


@pytest.mark.slow
def test_dg_scaffolds_a_collection_and_dg_check_yaml_names_a_wrong_attribute(tmp_path):
    """``dg scaffold defs tweet_assets.TweetCollection brand`` writes a defs.yaml that ``dg check
    defs`` loads; a misspelt attribute fails ``dg check yaml`` naming file, line and attribute.
    Run on a copy of the project, as a user runs dg in the checkout."""
    import shutil
    import subprocess
    import sys

    project = _project_copy(tmp_path)
    bin_dir = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWEET_ASSETS_", "DAGSTER_"))}
    env.update(PYTHONPATH=str(project), VIRTUAL_ENV=str(bin_dir.parent), PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", DAGSTER_DISABLE_TELEMETRY="1", NO_COLOR="1")

    def dg(*args):
        return subprocess.run([str(bin_dir / "dg"), *args], cwd=project, env=env, capture_output=True, text=True, timeout=600)

    scaffolded = dg("scaffold", "defs", "tweet_assets.TweetCollection", "brand")
    assert scaffolded.returncode == 0, scaffolded.stdout + scaffolded.stderr
    path = project / "tweet_assets" / "defs" / "brand" / "defs.yaml"
    document = yaml.safe_load(path.read_text())
    assert document["type"] == "tweet_assets.TweetCollection" and document["attributes"]["name"] == "brand"
    checked = dg("check", "defs")
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-3000:]
    text = path.read_text().replace("  name: brand\n", "  name: brand\n  shedule: 15 0 * * *\n")
    path.write_text(text)
    line = text.splitlines().index("  shedule: 15 0 * * *") + 1
    refused = dg("check", "yaml")
    out = refused.stdout + refused.stderr
    assert refused.returncode != 0
    assert f"{path}:{line}" in out and "'shedule' was unexpected" in out


LAUNCH_BACKFILL = """
mutation ($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }
"""
ASSET_GROUPS = """
query { assetNodes { assetKey { path } groupName } }
"""


@pytest.mark.slow
def test_two_collections_materialize_side_by_side_in_one_run_of_dagits_daemon(two_collections, tmp_path):
    """#30 "Done when": ``brand`` (search, against the loopback X API) and ``archive`` (replay of the
    shared recordings), as ``defs/<name>/defs.yaml`` of a copy of the project, loaded by ``dg dev``
    (webserver and daemon, as ``make dagit`` starts them): one backfill of each, launched through
    Dagit's GraphQL API, run by the daemon side by side, each into its own prefix and group; then a
    backfill of three archive days leaves every brand object as it was, byte for byte."""
    from tests.dagit_server import DagitServer, wait_for_backfill

    brand, archive, posts, double = two_collections
    project = _project_copy(tmp_path, brand, archive)
    extra = {name: os.environ[name] for name in ("X_BEARER_TOKEN", "X_API_BASE_URL", "X_HTTP_TIMEOUT")}
    server = DagitServer(root=tmp_path / "dagit", project=project, extra_env={"PYTHONPATH": str(project), **extra})
    server.start()
    try:
        groups = {"/".join(n["assetKey"]["path"]): n["groupName"] for n in server.graphql(ASSET_GROUPS)["assetNodes"]}
        for name in ("brand", "archive"):
            assert {groups[f"{name}/{a}"] for a in ("raw_tweets", "clean_tweets", "tweets")} == {name}, groups

        def backfill(name: str, start: str, end: str) -> str:
            params = {"partitionsByAssets": [{"assetKey": {"path": [name, a]}, "partitions": {"range": {"start": start, "end": end}}} for a in ("raw_tweets", "clean_tweets", "tweets")],
                      "title": f"{name} {start}…{end}"}
            answer = server.graphql(LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
            assert answer["__typename"] == "LaunchBackfillSuccess", answer
            return answer["backfillId"]

        day = _yesterday()
        launched = [backfill("brand", day, day), backfill("archive", ARCHIVE_DAY, ARCHIVE_DAY)]  # both queued before the daemon's next tick
        for backfill_id in launched:
            state = wait_for_backfill(server, backfill_id, timeout=400)
            assert state["status"] == "COMPLETED_SUCCESS", (state, server.log_tail())
        lake = server.lake
        files = set(_files(lake))
        assert {f"{c}/{t}/dt={d}/part-00000.{fmt}" for c, d in (("brand", day), ("archive", ARCHIVE_DAY))
                for t, fmt in (("raw_tweets", "jsonl.gz"), ("clean_tweets", "parquet"), ("tweets", "parquet"))} <= files
        assert sorted(_ids(lake, "brand/tweets", day)) == sorted(int(p["id"]) for p in posts)
        assert len(_ids(lake, "archive/tweets", ARCHIVE_DAY)) == 500
        assert [s for s in double.seen if "/search/" in s.path]  # the brand run searched the loopback X API

        before = {k: v for k, v in _files(lake).items() if k.startswith("brand/")}
        state = wait_for_backfill(server, backfill("archive", "2021-06-25", "2021-06-27"), timeout=400)
        assert state["status"] == "COMPLETED_SUCCESS", (state, server.log_tail())
        after = _files(lake)
        assert {k: v for k, v in after.items() if k.startswith("brand/")} == before  # byte for byte, same mtimes
        assert f"archive/tweets/dt={ARCHIVE_DAY}/part-00000.parquet" in after
        assert {k.split("/")[0] for k in after} <= {"brand", "archive", "_tweet_assets_check"}, sorted(after)
    finally:
        server.stop()


@pytest.mark.slow
def test_the_stream_service_serves_every_stream_collections_rules_and_lands_a_message_in_each_it_matches(tmp_path, x_api_v2):
    """#30 point 6 end to end: ``tweet-assets stream`` (a process, on a copy of the project holding
    two stream collections' defs.yaml) syncs both collections' rules, tagged by collection, onto its
    one connection to the loopback filtered stream; a message whose matching rule is both
    collections' lands in both collections' raw_stream segments, one of ``brand``'s rules in
    ``brand``'s only, and one no collection's rule in the environment's raw_stream."""
    import signal
    import subprocess
    import sys
    import time

    from tests.stream_double import StreamDouble
    from tweet_assets.stream.collections import collection_rules

    brand = _write_collection(tmp_path, "brand", stream={"rules": [{"value": "acme", "tag": "mentions"}, {"value": "#acme"}]})
    event = _write_collection(tmp_path, "event", stream={"rules": [{"value": "acme", "tag": "live"}]})
    project = _project_copy(tmp_path, brand, event)
    tags = {r.value: r.tag for r in collection_rules({"brand": [("acme", "mentions"), ("#acme", None)], "event": [("acme", "live")]})}
    posts = [p for page in _recorded_pages(x_api_v2) for p in page["data"]][:3]
    both, only, neither = posts
    sent = [
        {"data": both, "matching_rules": [{"id": "1", "tag": tags["acme"]}]},
        {"data": only, "matching_rules": [{"id": "2", "tag": tags["#acme"]}]},
        {"data": neither, "matching_rules": [{"id": "3", "tag": "someone-else"}]},
    ]
    lake = tmp_path / "lake"
    with StreamDouble() as double:
        double.plans = [("stream", [*[("msg", orjson.dumps(m)) for m in sent], ("end",)])]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TWEET_ASSETS_", "DAGSTER_"))}
        env.update(X_BEARER_TOKEN=TOKEN, X_API_BASE_URL=double.url, TWEET_ASSETS_LAKE_URL=str(lake), TWEET_ASSETS_STREAM_SPOOL_DIR=str(tmp_path / "spool"),
                   TWEET_ASSETS_STREAM_FSYNC="0", PYTHONPATH=str(project))
        proc = subprocess.Popen([sys.executable, "-m", "tweet_assets.cli", "stream"], cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            # the second connection: the first stream was read to its end, every message appended
            while len(double.requests) < 2 and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert proc.poll() is None and len(double.requests) >= 2, proc.stdout.read().decode(errors="replace")[-3000:] if proc.poll() is not None else "no second connection"
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=60)
        finally:
            proc.kill()
        rules = sorted((r["value"], r.get("tag")) for r in double.rules)
    log = out.decode(errors="replace")
    assert proc.returncode == 0, log[-3000:]
    assert rules == sorted((value, tag) for value, tag in tags.items()), rules  # both collections' rules, on the one connection
    assert len(double.requests) >= 2 and TOKEN not in log

    def ids(prefix: str) -> list[str]:
        found = []
        for path in sorted((lake / prefix).glob("dt=*/*.jsonl.gz")):
            found += [orjson.loads(line)["data"]["id"] for line in gzip.decompress(path.read_bytes()).splitlines()]
        return found

    assert ids("brand/raw_stream") == [both["id"], only["id"]], log[-3000:]
    assert ids("event/raw_stream") == [both["id"]]
    assert ids("raw_stream") == [neither["id"]]  # no collection's rule: the environment's segments


def test_the_readmes_two_collection_example_is_valid_yaml_for_the_component():
    """README.md's example collections load as TweetCollection components (the attributes a user copies)."""
    import re

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = re.search(r"```yaml\n(# tweet_assets/defs/brand/defs.yaml.*?)```", readme, re.S).group(1)
    documents = [yaml.safe_load(part) for part in re.split(r"^# tweet_assets/defs/\w+/defs.yaml.*$", block, flags=re.M) if part.strip()]
    assert [d["type"] for d in documents] == ["tweet_assets.TweetCollection"] * 2
    names = [TweetCollection.from_attributes_dict(attributes=d["attributes"]).name for d in documents]
    assert names == ["brand", "archive"]
