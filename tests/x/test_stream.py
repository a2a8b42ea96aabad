"""The filtered-stream consumer (tweet_assets.stream) against a loopback double of the stream
(tests/stream_double.py), with messages cut from the shared real recordings."""

from __future__ import annotations

import gzip
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from tweet_assets.lake.store import LocalLake
from tweet_assets.sources.day_split import split_by_day
from tweet_assets.x.fields import EXPANSIONS, TWEET_FIELDS, USER_FIELDS
from tweet_assets.stream.consumer import StreamConsumer
from tweet_assets.stream.reconnect import Backoff, FatalStreamError
from tweet_assets.stream.rules import Rule, RulesError, load_rules, plan, sync_rules
from tweet_assets.stream.segments import SegmentWriter, parse_stamp, segment_key, stamp
from tweet_assets.stream.service import rules_client

from tests.conftest import REPO
from tests.stream_double import StreamDouble

TOKEN = "AAAA-stream-test-token-0123456789"
RULES = [{"id": "1", "tag": "tweet_assets:blm"}]


def one_post_messages(page_file: Path, pages: int = 1) -> list[bytes]:
    """Search pages cut into filtered-stream messages: one post each, with the includes it expands
    to (tweet_assets.sources.day_split) and a ``matching_rules``, as the stream sends them."""
    out = []
    with open(page_file, "rb") as handle:
        for line in list(handle)[:pages]:
            page = orjson.loads(line)
            posts = page["data"]
            for piece in split_by_day(page, posts, [str(i) for i in range(len(posts))]):
                message = {"data": piece.posts[0]}
                if piece.includes:
                    message["includes"] = piece.includes
                if piece.errors:
                    message["errors"] = piece.errors
                message["matching_rules"] = RULES
                out.append(orjson.dumps(message))
    return out


def real_stream_messages(x_api_v2: Path) -> list[bytes]:
    """The recorded stream messages (twarc-csv), without twarc's ``__twarc`` key: as X sent them."""
    out = []
    for line in (x_api_v2 / "twarc-csv-test-data" / "streaming_output_with_error.jsonl").read_bytes().splitlines():
        try:
            message = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue  # the deliberately broken line of the recording
        message.pop("__twarc", None)
        out.append(orjson.dumps(message))
    return out


@pytest.fixture(scope="module")
def double():
    with StreamDouble() as server:
        yield server


@pytest.fixture
def stream(double):
    double.reset()
    return double


@pytest.fixture(scope="module")
def messages(x_api_v2) -> list[bytes]:
    return real_stream_messages(x_api_v2) + one_post_messages(x_api_v2 / "twarc-network-test-data" / "tweets.jsonl")[:25]


def landed(root: Path) -> list[bytes]:
    """Every message line in the published segments, its ``__twarc`` removed."""
    out = []
    for path in sorted((root / "raw_stream").glob("dt=*/*.jsonl.gz")):
        for line in gzip.decompress(path.read_bytes()).splitlines():
            message = orjson.loads(line)
            assert message.pop("__twarc")["url"] == "https://api.x.com/2/tweets/search/stream"
            out.append(orjson.dumps(message))
    return out


# --- the reconnection schedule (pure) ---------------------------------------------------------
def test_backoff_follows_x_documented_schedule():
    b = Backoff()
    assert [b.wait("network") for _ in range(66)][:4] == [0.25, 0.5, 0.75, 1.0]
    assert b.wait("network") == 16.0  # linear, capped at 16 s
    assert [b.wait("http") for _ in range(8)] == [5, 10, 20, 40, 80, 160, 320, 320]
    assert [b.wait("rate_limit") for _ in range(6)] == [60, 120, 240, 480, 900, 900]
    b.reset()
    assert (b.wait("network"), b.wait("http"), b.wait("rate_limit")) == (0.25, 5, 60)
    with pytest.raises(ValueError):
        b.wait("other")


# --- the connection against the loopback double -------------------------------------------
def _consumer(stream, tmp_path, max_connections, waits, **kw) -> StreamConsumer:
    writer = SegmentWriter(LocalLake(str(tmp_path / "lake")), str(tmp_path / "spool"), max_age_s=kw.pop("max_age_s", 3600))
    return StreamConsumer(TOKEN, writer, base_url=stream.url, stall_timeout_s=0.5, sleep=waits.append, max_connections=max_connections, **kw)


@pytest.mark.slow
def test_every_message_sent_whole_is_landed_once_and_waits_follow_the_schedule(stream, messages, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    m = messages
    stream.plans = [
        ("status", 503, {"title": "Service Unavailable"}),
        ("status", 503, {"title": "Service Unavailable"}),
        ("status", 429, {"title": "Too Many Requests", "type": "about:blank"}),
        ("stream", [("end",)]),  # accepted and closed before any byte: not a success, no reset
        ("status", 503, {"title": "Service Unavailable"}),
        ("stream", [("keepalive",), *[("msg", x) for x in m[:10]], ("keepalive",), ("partial", m[10])]),  # cut mid-message
        ("stream", [*[("msg", x) for x in m[10:20]], ("stall", 1.0)]),  # a stall: no byte for 1 s > 0.5 s
        ("status", 503, {"title": "Service Unavailable"}),
        ("stream", [*[("msg", x) for x in m[20:]], ("keepalive",), ("end",)]),  # closed by the server
    ]
    waits: list = []
    consumer = _consumer(stream, tmp_path, 9, waits)
    consumer.run()
    assert waits == [5, 10, 60, 0.25, 20, 0.25, 0.25, 5, 0.25]
    assert [k for k, _ in consumer.waits] == ["http", "http", "rate_limit", "network", "http", "network", "network", "http", "network"]
    got = landed(tmp_path / "lake")
    assert sorted(got) == sorted(stream.sent) == sorted(m)  # each whole message once, the cut one once (its resend)
    assert consumer.counts["partial_dropped"] == 1 and consumer.counts["stalls"] == 1
    assert consumer.counts["keep_alives"] == 3
    # segments by the UTC day of created_at
    for path in (tmp_path / "lake" / "raw_stream").glob("dt=*/*.jsonl.gz"):
        for line in gzip.decompress(path.read_bytes()).splitlines():
            assert path.parent.name == "dt=" + orjson.loads(line)["data"]["created_at"][:10]
    request = stream.requests[0]
    assert request["params"]["tweet.fields"] == [",".join(TWEET_FIELDS)]
    assert request["params"]["expansions"] == [",".join(EXPANSIONS)]
    assert request["params"]["user.fields"] == [",".join(USER_FIELDS)]
    assert request["auth"] == f"Bearer {TOKEN}"
    assert TOKEN not in caplog.text
    assert not list((tmp_path / "spool").rglob("*.jsonl"))  # everything published on stop


@pytest.mark.slow
@pytest.mark.parametrize("status", [401, 403, 400])
def test_answers_reconnecting_cannot_fix_stop_with_a_clear_error(stream, tmp_path, status):
    stream.plans = [("status", status, {"title": "Unauthorized" if status == 401 else "Client Forbidden", "detail": "nope"})]
    waits: list = []
    with pytest.raises(FatalStreamError, match=f"HTTP {status}.*access tier"):
        _consumer(stream, tmp_path, 3, waits).run()
    assert waits == [] and len(stream.requests) == 1


@pytest.mark.slow
def test_a_second_connection_is_said_clearly(stream, tmp_path, caplog):
    stream.plans = [
        ("status", 409, {"title": "ConnectionException", "detail": "This stream is currently at the maximum allowed connection limit."}),
        ("status", 429, {"title": "ConnectionException", "detail": "This stream is currently at the maximum allowed connection limit.", "type": "https://api.twitter.com/2/problems/streaming-connection"}),
    ]
    waits: list = []
    _consumer(stream, tmp_path, 2, waits).run()
    assert waits == [5, 60]
    assert caplog.text.count("another connection to this app's filtered stream is already open") == 2


# --- rules ----------------------------------------------------------------------------------
def test_load_rules_prefixes_tags_and_refuses_bad_config(tmp_path):
    assert load_rules('[{"value": "#blm lang:en", "tag": "blm"}, {"value": "cats"}]') == [Rule("#blm lang:en", "tweet_assets:blm"), Rule("cats", "tweet_assets:cats")]
    assert load_rules("dogs has:media\tpets\n# comment\n") == [Rule("dogs has:media", "tweet_assets:pets")]
    f = tmp_path / "rules.json"
    f.write_text('[{"value": "x", "tag": "tweet_assets:x"}]')
    assert load_rules(f"@{f}") == [Rule("x", "tweet_assets:x")]
    for bad in ("", "[1]", '[{"value": ""}]', '[{"value": "a"}, {"value": "a"}]', '[{"value": "' + "a" * 1025 + '"}]', "@/nonexistent/rules.json", "[not json"):
        with pytest.raises(RulesError):
            load_rules(bad)


def test_plan_touches_only_rules_of_its_prefix():
    current = [{"id": "1", "value": "old", "tag": "tweet_assets:old"}, {"id": "2", "value": "keep", "tag": "tweet_assets:keep"}, {"id": "3", "value": "theirs", "tag": "other:x"}, {"id": "4", "value": "untagged"}]
    adds, deletes = plan(current, [Rule("keep", "tweet_assets:keep"), Rule("new", "tweet_assets:new")])
    assert adds == [Rule("new", "tweet_assets:new")] and [d["id"] for d in deletes] == ["1"]
    _, deletes = plan(current, [Rule("keep", "tweet_assets:keep")], prune_foreign=True)
    assert [d["id"] for d in deletes] == ["1", "3", "4"]


@pytest.mark.slow
def test_sync_rules_sends_dry_run_first_then_the_right_adds_and_deletes(stream, caplog):
    caplog.set_level(logging.INFO)
    stream.rules = [{"id": "1", "value": "old", "tag": "tweet_assets:old"}, {"id": "2", "value": "keep", "tag": "tweet_assets:keep"}, {"id": "3", "value": "theirs", "tag": "other:x"}]
    active = sync_rules(rules_client(TOKEN, stream.url), [Rule("keep", "tweet_assets:keep"), Rule("new", "tweet_assets:new")], logging.getLogger("t"))
    posts = [r for r in stream.rule_requests if r["method"] == "POST"]
    assert [(p["dry_run"], next(iter(p["body"]))) for p in posts] == [(True, "delete"), (True, "add"), (False, "delete"), (False, "add")]
    assert posts[2]["body"] == {"delete": {"ids": ["1"]}}
    assert posts[3]["body"] == {"add": [{"value": "new", "tag": "tweet_assets:new"}]}
    assert sorted(r["value"] for r in active) == ["keep", "new", "theirs"]
    assert "active rule: id 3 tag 'other:x'" in caplog.text
    # #39.4: we page the rules ourselves (max_results, pagination_token: X's spec); tweepy's get_rules
    # declares only `ids` and would log each as unexpected
    assert "Unexpected parameter" not in caplog.text, caplog.text


@pytest.mark.slow
def test_an_invalid_rule_changes_nothing(stream):
    stream.rules = [{"id": "1", "value": "old", "tag": "tweet_assets:old"}]
    with pytest.raises(RulesError, match="INVALID"):
        sync_rules(rules_client(TOKEN, stream.url), [Rule("INVALID (", "tweet_assets:bad")], logging.getLogger("t"))
    assert all(r.get("dry_run", True) for r in stream.rule_requests)
    assert stream.rules == [{"id": "1", "value": "old", "tag": "tweet_assets:old"}]


# --- segments: roll, publish, recover --------------------------------------------------------
class Clock:
    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_segments_roll_by_age_and_size_and_are_named_by_receive_time(tmp_path):
    now = time.time()  # today, real clock
    clock = Clock(now)
    lake = LocalLake(str(tmp_path / "lake"))
    w = SegmentWriter(lake, str(tmp_path / "spool"), max_age_s=300, max_bytes=1000, clock=clock)
    ms = int(now * 1000)
    w.append("2026-11-29", b'{"a":1}', ms)
    clock.t += 299.9
    assert w.roll_due() == []
    clock.t += 0.2
    (key,) = w.roll_due()
    assert key == segment_key("2026-11-29", ms, ms) and key.startswith("raw_stream/dt=2026-11-29/")
    assert gzip.decompress(lake.read_bytes(key)) == b'{"a":1}\n'
    ms = int(clock.t * 1000)
    w.append("2026-11-29", b"x" * 600, ms)
    assert w.published == [key]
    w.append("2026-11-29", b"y" * 600, ms + 1)  # 1,202 bytes >= 1,000: rolled
    assert len(w.published) == 2 and w.open == {}
    assert parse_stamp(stamp(ms)) == ms
    with pytest.raises(ValueError):
        w.append("2026-11-29", b"a\nb", ms)


def test_recover_publishes_sealed_and_open_spools_and_cuts_a_partial_line(tmp_path):
    lake = LocalLake(str(tmp_path / "lake"))
    spool = tmp_path / "spool" / "dt=2026-11-28"
    spool.mkdir(parents=True)
    ms = parse_stamp("20261128T235900000Z")
    (spool / f"{stamp(ms)}-{stamp(ms + 5)}.jsonl").write_bytes(b'{"sealed":1}\n')  # uploaded or not: same key
    lake.put_bytes(segment_key("2026-11-28", ms, ms + 5), b"half")
    (spool / f"{stamp(ms + 10)}.jsonl").write_bytes(b'{"a":1}\n{"b":2}\n{"c":')
    os.utime(spool / f"{stamp(ms + 10)}.jsonl", (ms / 1000 + 30, ms / 1000 + 30))
    keys = SegmentWriter(lake, str(tmp_path / "spool")).recover()
    assert keys == [segment_key("2026-11-28", ms, ms + 5), segment_key("2026-11-28", ms + 10, ms + 30000)]
    assert gzip.decompress(lake.read_bytes(keys[0])) == b'{"sealed":1}\n'
    assert gzip.decompress(lake.read_bytes(keys[1])) == b'{"a":1}\n{"b":2}\n'
    assert not list((tmp_path / "spool").rglob("*.jsonl"))


# --- SIGKILL mid-segment, restart --------------------------------------------------------------
def _spawn(stream, tmp_path) -> subprocess.Popen:
    env = {
        **os.environ,
        "X_BEARER_TOKEN": TOKEN,
        "X_API_BASE_URL": stream.url,
        "TWEET_ASSETS_LAKE_URL": str(tmp_path / "lake"),
        "TWEET_ASSETS_STREAM_SPOOL_DIR": str(tmp_path / "spool"),
        "TWEET_ASSETS_STREAM_SEGMENT_SECONDS": "3600",
        "PYTHONPATH": str(REPO),
    }
    env.pop("TWEET_ASSETS_STREAM_RULES", None)
    return subprocess.Popen([sys.executable, "-m", "tweet_assets.cli", "stream"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _spooled_lines(tmp_path) -> list[bytes]:
    lines = []
    for path in sorted((tmp_path / "spool").rglob("*.jsonl")):
        try:
            data = path.read_bytes()
        except FileNotFoundError:  # sealed and published by the consumer between listing and reading
            continue
        lines.extend(data[: data.rfind(b"\n") + 1].splitlines())
    return lines


def _wait_for(predicate, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


@pytest.mark.slow
def test_sigkill_mid_segment_then_restart_loses_nothing_flushed_and_shows_no_half_segment(stream, messages, tmp_path):
    m = messages
    stream.plans = [("stream", [*[("msg", x) for x in m[:15]], ("stall", 3.0)])]
    first = _spawn(stream, tmp_path)
    try:
        _wait_for(lambda: len(_spooled_lines(tmp_path)) >= 15 or first.poll() is not None)
        assert first.poll() is None, first.stdout.read().decode(errors="replace")[-3000:]
        flushed = _spooled_lines(tmp_path)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        first.kill()
    assert not (tmp_path / "lake" / "raw_stream").exists() or not list((tmp_path / "lake" / "raw_stream").glob("dt=*/*"))  # mid-segment: nothing published yet
    stream.plans = [("stream", [*[("msg", x) for x in m[15:]], ("end",)])]
    second = _spawn(stream, tmp_path)
    try:
        _wait_for(lambda: len(_spooled_lines(tmp_path)) >= len(m) - 15 and len(stream.requests) >= 2)
        second.send_signal(signal.SIGTERM)
        out, _ = second.communicate(timeout=20)
    finally:
        second.kill()
    assert second.returncode == 0, out.decode()[-2000:]
    got = landed(tmp_path / "lake")
    log_tail = out.decode(errors="replace")[-3000:]
    assert sorted(got) == sorted(m), log_tail  # the 15 flushed before the kill (published first on restart) and the rest, once each
    assert len(flushed) == 15
    assert b"segment(s) left by a previous run" in out, log_tail
    objects = [p for p in (tmp_path / "lake").rglob("*") if p.is_file()]
    assert not [p for p in objects if p.name.startswith(".tmp-")]
    assert TOKEN.encode() not in out


# --- the Dagster side: a day closed from its segments -------------------------------------------
@pytest.mark.slow
def test_a_day_from_segments_flattens_to_the_rows_replay_lands(stream, x_api_v2, tmp_path, instance):
    """The same 500 posts (5 real search pages, 2021-06-26): once replayed as the pages, once cut
    into one-post stream messages, landed by the consumer and read back by the stream source."""
    import pyarrow.parquet as pq

    from tweet_assets.settings import source_from_env
    from tweet_assets.sources import ReplaySource

    from tests.helpers import resources, run

    pages = x_api_v2 / "twarc-network-test-data" / "tweets.jsonl"
    msgs = one_post_messages(pages, pages=5)
    assert len(msgs) == 500
    stream.plans = [("stream", [*[("msg", x) for x in msgs[:300]], ("partial", msgs[300])]), ("stream", [*[("msg", x) for x in msgs[300:]], ("end",)])]
    waits: list = []
    _consumer(stream, tmp_path / "streamed", 2, waits).run()
    day = "2021-06-26"
    streamed_lake = str(tmp_path / "streamed" / "lake")
    source = source_from_env({"TWEET_ASSETS_SOURCE": "stream", "TWEET_ASSETS_LAKE_URL": streamed_lake})
    assert len(source.segments(day)) == 1
    streamed = run(resources(streamed_lake, source), day, instance=instance)
    replay_lake = str(tmp_path / "replayed")
    replayed = run(resources(replay_lake, ReplaySource(path=str(pages))), day, instance=instance)
    assert streamed.success and replayed.success
    a = pq.read_table(Path(streamed_lake) / "tweets" / f"dt={day}" / "part-00000.parquet")
    b = pq.read_table(Path(replay_lake) / "tweets" / f"dt={day}" / "part-00000.parquet")
    assert a.num_rows == b.num_rows > 400  # ids unique within the day
    provenance = {"matching_rules", "retrieved_at", "request_url"}  # where and how each was fetched
    assert a.schema == b.schema
    for name in a.column_names:
        if name not in provenance:
            assert a.column(name).to_pylist() == b.column(name).to_pylist(), name
    assert set(map(str, a.column("matching_rules").to_pylist())) == {str([{"id": 1, "tag": "tweet_assets:blm"}])}
    assert b.column("matching_rules").null_count == b.num_rows
    meta = streamed.asset_materializations_for_node("raw_tweets")[0].metadata
    assert meta["posts"].value == 500 and meta["stream_segments"].value == 1


# --- health, odd messages, an S3 lake ------------------------------------------------------------
class Ticking:
    """A clock that moves ``step`` seconds each time it is read (from the real time of today)."""

    def __init__(self, step: float):
        self.t, self.step = time.time(), step

    def __call__(self) -> float:
        self.t += self.step
        return self.t


@pytest.mark.slow
def test_health_every_minute_and_messages_without_a_post_land_on_the_day_received(stream, messages, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="tweet_assets.stream")
    disconnect = orjson.dumps({"errors": [{"title": "operational-disconnect", "disconnect_type": "UpstreamOperationalDisconnect", "detail": "This stream has been disconnected upstream for operational reasons.", "type": "https://api.twitter.com/2/problems/operational-disconnect"}]})
    stream.plans = [("stream", [*[("msg", x) for x in messages[:6]], ("keepalive",), ("msg", b"not json at all"), ("msg", disconnect), ("end",)])]
    clock = Ticking(20.0)  # every read of the clock is 20 s later: a health line every few lines
    waits: list = []
    consumer = _consumer(stream, tmp_path, 1, waits, clock=clock, max_age_s=10**9)
    consumer.writer.clock = clock
    consumer.run()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("stream health:")]
    assert len(lines) >= 2 and "8 messages" in lines[-1] and "1 keep-alives" in lines[-1]
    health = orjson.loads((tmp_path / "lake" / "raw_stream" / "_consumer" / "health.json").read_bytes())
    assert health["messages"] == 8 and health["not_json"] == 1 and health["last_message_at"].endswith("Z")
    received_day = time.strftime("%Y-%m-%d", time.gmtime(clock.t))
    segment = [p for p in (tmp_path / "lake" / "raw_stream").glob("dt=*/*.jsonl.gz") if p.parent.name != "dt=2021-04-01" and p.parent.name != "dt=2021-06-26"]
    assert {p.parent.name for p in segment} <= {f"dt={received_day}", "dt=" + time.strftime("%Y-%m-%d", time.gmtime(clock.t - 400))}
    odd = b"".join(gzip.decompress(p.read_bytes()) for p in segment).splitlines()
    assert odd[0] == b"not json at all"  # landed as received (clean_tweets quarantines it)
    assert orjson.loads(odd[1])["errors"][0]["title"] == "operational-disconnect"


@pytest.mark.slow
def test_segments_on_s3_are_whole_objects_the_stream_source_reads(stream, messages, tmp_path, s3_lake):
    import boto3

    from tweet_assets.settings import source_from_env
    from tweet_assets.stream.service import lake_from_env

    env = {**os.environ, "TWEET_ASSETS_LAKE_URL": s3_lake}
    lake = lake_from_env(env)
    writer = SegmentWriter(lake, str(tmp_path / "spool"), max_bytes=20_000)  # several segments
    stream.plans = [("stream", [*[("msg", x) for x in messages], ("end",)])]
    StreamConsumer(TOKEN, writer, base_url=stream.url, stall_timeout_s=2, sleep=lambda s: None, max_connections=1).run()
    assert len(writer.published) >= 3
    bucket, prefix = s3_lake[5:].split("/", 1)
    keys = [o["Key"] for o in boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"]).list_objects_v2(Bucket=bucket)["Contents"]]
    assert sorted(k for k in keys if k.endswith(".jsonl.gz")) == sorted(f"{prefix}/{k}" for k in writer.published)
    source = source_from_env({**env, "TWEET_ASSETS_SOURCE": "stream"})
    from datetime import datetime, timezone

    pages = list(source.pages(datetime(2021, 4, 1, tzinfo=timezone.utc), datetime(2021, 6, 27, tzinfo=timezone.utc), logging.getLogger("t")))
    def as_sent(body: bytes) -> bytes:
        page = orjson.loads(body)
        page.pop("__twarc")
        (page["data"],) = page["data"]  # the source gives the search page shape: data as a list
        return orjson.dumps(page)

    assert sorted(map(as_sent, (p.body for p in pages))) == sorted(messages)
    assert sum(p.posts for p in pages) == len(messages)


def test_a_lake_outage_keeps_segments_sealed_in_the_spool_and_receiving_goes_on(tmp_path):
    from tweet_assets.lake.store import LakeError

    class Flaky(LocalLake):
        down = True

        def put_file(self, key, path):
            if self.down:
                raise LakeError(f"put {key} failed: 503 SlowDown (test)")
            return super().put_file(key, path)

    lake = Flaky(str(tmp_path / "lake"))
    clock = Clock(time.time())
    w = SegmentWriter(lake, str(tmp_path / "spool"), max_bytes=5, clock=clock, retry_s=60)
    ms = int(clock.t * 1000)
    w.append("2026-11-29", b'{"a":1}', ms)  # rolled (>= 5 bytes), refused
    w.append("2026-11-29", b'{"b":2}', ms + 1)  # still received while the lake is down
    assert w.published == [] and len(w.unpublished) == 2
    assert len(list((tmp_path / "spool").rglob("*-*.jsonl"))) == 2  # sealed on disk
    lake.down = False
    clock.t += 30
    assert w.roll_due() == []  # not before retry_s
    clock.t += 31
    assert len(w.roll_due()) == 2 and w.unpublished == []
    assert sorted(gzip.decompress(lake.read_bytes(k)) for k in w.published) == [b'{"a":1}\n', b'{"b":2}\n']
    # refused again at shutdown: left sealed for the next start, which publishes it
    lake.down = True
    w.append("2026-11-29", b'{"c":3}', ms + 2)
    assert w.close() == [] and len(w.unpublished) == 1
    lake.down = False
    (key,) = SegmentWriter(lake, str(tmp_path / "spool")).recover()
    assert gzip.decompress(lake.read_bytes(key)) == b'{"c":3}\n'


def test_cli_stream_without_a_token_says_what_to_set(monkeypatch, capsys):
    from tweet_assets.cli import main

    monkeypatch.delenv("X_BEARER_TOKEN", raising=False)
    assert main(["stream"]) == 2
    assert "X_BEARER_TOKEN" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_stream_refused_token_exits_with_the_reason_and_never_the_token(stream, tmp_path, monkeypatch, capsys):
    from tweet_assets.cli import main

    stream.plans = [("status", 401, {"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"})]
    for key, value in {"X_BEARER_TOKEN": TOKEN, "X_API_BASE_URL": stream.url, "TWEET_ASSETS_LAKE_URL": str(tmp_path / "lake"), "TWEET_ASSETS_STREAM_SPOOL_DIR": str(tmp_path / "spool")}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("TWEET_ASSETS_STREAM_RULES", raising=False)
    assert main(["stream"]) == 2
    err = capsys.readouterr().err
    assert "HTTP 401" in err and "X_BEARER_TOKEN" in err and TOKEN not in err
    rules = orjson.loads((tmp_path / "lake" / "raw_stream" / "_consumer" / "rules.json").read_bytes())
    assert rules == {"rules": [], "tag_prefix": "tweet_assets:", "managed": False}


@pytest.mark.slow
def test_cli_stream_rules_refused_for_the_tier_says_so(stream, tmp_path, monkeypatch, capsys):
    from tweet_assets.cli import main

    stream.rules_refusal = (403, {"title": "Client Forbidden", "detail": "When authenticating requests to the Twitter API v2 endpoints, you must use keys and tokens from a Twitter developer App that is attached to a Project.", "reason": "client-not-enrolled", "type": "https://api.twitter.com/2/problems/client-forbidden"})
    for key, value in {"X_BEARER_TOKEN": TOKEN, "X_API_BASE_URL": stream.url, "TWEET_ASSETS_LAKE_URL": str(tmp_path / "lake"), "TWEET_ASSETS_STREAM_SPOOL_DIR": str(tmp_path / "spool"), "TWEET_ASSETS_STREAM_RULES": '[{"value": "cats"}]'}.items():
        monkeypatch.setenv(key, value)
    assert main(["stream"]) == 2
    err = capsys.readouterr().err
    assert "403" in err and "access tier" in err and TOKEN not in err
    assert stream.requests == []  # never connected to the stream


@pytest.mark.slow
def test_cli_stream_syncs_the_configured_rules_and_records_them_for_dagit(stream, tmp_path, monkeypatch, capsys, caplog, instance):
    """#19 point 2 end to end: the consumer syncs TWEET_ASSETS_STREAM_RULES (dry run first), logs
    the active rules with their ids, and records them in the lake, where the raw_stream
    observation shows them in Dagit's metadata."""
    from dagster import Definitions

    from tweet_assets.cli import main
    from tweet_assets.lake.io_manager import LakeResource
    from tweet_assets.defs.stream.days import raw_stream, raw_stream_consumer_alive, raw_stream_health_job

    stream.rules = [{"id": "1", "value": "stale", "tag": "tweet_assets:stale"}, {"id": "3", "value": "theirs", "tag": "other:x"}]
    stream.plans = [("status", 401, {"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"})]  # ends the run after the sync
    lake = tmp_path / "lake"
    for key, value in {"X_BEARER_TOKEN": TOKEN, "X_API_BASE_URL": stream.url, "TWEET_ASSETS_LAKE_URL": str(lake), "TWEET_ASSETS_STREAM_SPOOL_DIR": str(tmp_path / "spool"),
                       "TWEET_ASSETS_STREAM_RULES": '[{"value": "cats has:images", "tag": "cats"}]'}.items():
        monkeypatch.setenv(key, value)
    caplog.set_level(logging.INFO)
    assert main(["stream"]) == 2
    posts = [(r["dry_run"], r["body"]) for r in stream.rule_requests if r["method"] == "POST"]
    assert [d for d, _ in posts] == [True, True, False, False]
    assert posts[2][1] == {"delete": {"ids": ["1"]}} and posts[3][1] == {"add": [{"value": "cats has:images", "tag": "tweet_assets:cats"}]}
    (added,) = [r for r in stream.rules if r["tag"] == "tweet_assets:cats"]
    record = orjson.loads((lake / "raw_stream" / "_consumer" / "rules.json").read_bytes())
    assert record["managed"] is True and record["tag_prefix"] == "tweet_assets:"
    assert sorted((r["id"], r["tag"]) for r in record["rules"]) == sorted([(added["id"], "tweet_assets:cats"), ("3", "other:x")])
    assert TOKEN not in capsys.readouterr().err and TOKEN not in caplog.text
    assert f"active rule: id {added['id']} tag 'tweet_assets:cats'" in caplog.text and "active rule: id 3 tag 'other:x'" in caplog.text
    defs = Definitions(assets=[raw_stream], asset_checks=[raw_stream_consumer_alive], jobs=[raw_stream_health_job], resources={"lake": LakeResource(url=str(lake))})
    result = defs.resolve_job_def("raw_stream_health_job").execute_in_process(instance=instance, raise_on_error=False)
    (observation,) = [e.event_specific_data.asset_observation for e in result.all_events if e.event_type_value == "ASSET_OBSERVATION"]
    assert sorted(r["id"] for r in observation.metadata["stream_rules"].value) == sorted([added["id"], "3"])
