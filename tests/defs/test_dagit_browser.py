"""Dagit as a user sees it, in a real browser: Debian's Chromium driven by Playwright against a
``dagster dev`` started here (tests/dagit_server.py) with a temporary instance and lake.

1. a backfill of three days launched from the UI (Materialize all → partition dialog → a custom
   range) completes, as the backfill page says, and the days' Parquet files exist in the lake;
2. the asset group's graph shows the three assets, their kinds, and the lineage edges
   raw_tweets → clean_tweets → s3_parquet (read off the SVG: which edge joins which node boxes);
3. the asset pages show the numeric metadata plotted per partition and the checks' results.

A failing test leaves ``<name>-failure.png`` (and the page's text) in its tmp dir. With
``TWEET_ASSETS_UPDATE_SCREENSHOTS=1`` the after-the-demo test also writes docs/asset-graph.png.
No browser is downloaded: Chromium comes from Debian (``apt-get install -y chromium``).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tweet_assets.defs.pipeline import checks as tweet_checks
from tests.dagit_server import ASSETS, REPO, SAMPLE_POSTS, check_executions, materializations, start_dagit, wait_for_backfill

pytestmark = pytest.mark.slow

CHROMIUM_FLAGS = [
    "--no-sandbox",  # we run as root
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",  # no network here but loopback: stop Chromium calling out
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
GRAPH_PAGE = "/locations/tweet_assets/asset-groups/tweets"
DOCS_SCREENSHOT = REPO / "docs" / "asset-graph.png"
UI_TIMEOUT_MS = 30_000
BACKFILL_TIMEOUT_S = 180

CHECK_DESCRIPTIONS = {
    spec.name: spec.description
    for check_def in (tweet_checks.ids_unique_and_not_null, tweet_checks.created_at_in_partition, tweet_checks.published_schema_matches)
    for spec in check_def.check_specs
}

#: the days backfilled from the UI (module state, so the asset-page test can reuse them)
_BACKFILLED: dict[str, list[str]] = {}


def chromium_executable() -> str:
    for candidate in (os.environ.get("TWEET_ASSETS_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    pytest.skip("Debian's chromium is not installed (/usr/bin/chromium): `apt-get install -y chromium` (Playwright's own browser download is not used)")


def ui_days() -> list[str]:
    """Three consecutive days inside the partition dialog's default 'last 90 days' window."""
    today = datetime.now(timezone.utc).date()
    return [(today - timedelta(days=n)).isoformat() for n in (6, 5, 4)]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = start_dagit(tmp_path_factory.mktemp("dagit-browser"))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory):
    executable = chromium_executable()
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed (pip install playwright; no `playwright install`)")
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),  # a fresh user-data-dir
            executable_path=executable,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 900},
        )
        context.set_default_timeout(UI_TIMEOUT_MS)
        yield context
        context.close()


@pytest.fixture
def page(browser_context, server, request, tmp_path):
    """A fresh tab; on failure its screenshot and text go to the test's tmp dir."""
    tab = browser_context.new_page()
    # Dagit's first-visit "Join the Dagster community" dialog covers the page. The server's instance
    # has `nux: enabled: false`; the browser also says it was dismissed (Dagit's own localStorage key,
    # ui-core useStateWithStorage('communityNux')); and should it show anyway, skip it.
    tab.add_init_script("window.localStorage.setItem('communityNux', JSON.stringify('1'))")
    tab.add_locator_handler(tab.get_by_text("Join the Dagster community"), lambda: tab.get_by_role("button", name="Skip").click())
    failed_before = request.session.testsfailed
    yield tab
    if request.session.testsfailed > failed_before:
        shot = tmp_path / f"{request.node.name}-failure.png"
        try:
            tab.screenshot(path=str(shot), full_page=True)
            (tmp_path / f"{request.node.name}-failure.txt").write_text(f"{tab.url}\n\n{tab.inner_text('body')}")
            print(f"failure screenshot: {shot}")
        except Exception as exc:  # the page may be gone; the failure itself is what matters
            print(f"no failure screenshot ({exc})")
    tab.close()


def node_boxes_and_edges(tab) -> tuple[dict, list]:
    """The graph's asset node boxes ``{name: (x, y, w, h)}`` and edges ``[((x1, y1), (x2, y2))]``,
    in the SVG's own coordinates (edges are the ``path``s with an arrow marker)."""
    return tab.evaluate(
        """() => {
        const svg = document.querySelector('svg foreignObject')?.ownerSVGElement;
        if (!svg) return [{}, []];
        const boxes = {};
        for (const fo of svg.querySelectorAll('foreignObject')) {
            const name = fo.querySelector('[data-tooltip]')?.getAttribute('data-tooltip');
            if (name) boxes[name] = ['x', 'y', 'width', 'height'].map(a => parseFloat(fo.getAttribute(a)));
        }
        const edges = [];
        for (const p of svg.querySelectorAll('path[marker-end]')) {
            const nums = (p.getAttribute('d').match(/-?[0-9.]+/g) || []).map(Number);
            if (nums.length >= 4) edges.push([[nums[0], nums[1]], [nums[nums.length - 2], nums[nums.length - 1]]]);
        }
        return [boxes, edges];
    }"""
    )


def edges_between(boxes: dict, edges: list, slack: float = 20.0) -> set[tuple[str, str]]:
    """Name pairs (upstream, downstream) for edges leaving one box's right side and entering another's left."""

    def at(point, side):
        x, y = point
        for name, (bx, by, bw, bh) in boxes.items():
            edge_x = bx + bw if side == "right" else bx
            if abs(x - edge_x) <= slack and by - slack <= y <= by + bh + slack:
                return name
        return None

    pairs = set()
    for start, end in edges:
        src, dst = at(start, "right"), at(end, "left")
        if src and dst and src != dst:
            pairs.add((src, dst))
    return pairs


def launch_backfill_from_ui(page, server, days: list[str]) -> str:
    """Materialize all → the partition dialog → a custom range → Launch backfill; returns its id."""
    page.goto(server.url + GRAPH_PAGE)
    dialog = page.get_by_role("dialog")
    for attempt in range(3):  # a pop-up (Dagster's community banner) can swallow the first click
        page.get_by_role("button", name="Materialize all").click()
        try:
            dialog.get_by_text("Partition selection").wait_for(timeout=30_000)
            break
        except Exception:
            if attempt == 2:
                raise
    selection = dialog.locator("input[type=text]").first
    selection.click()
    selection.fill(f"[{days[0]}...{days[-1]}]")
    selection.press("Enter")
    dialog.get_by_text(f"{len(days)} partitions", exact=True).wait_for()
    dialog.get_by_role("button", name="Launch backfill").click()
    toast = page.get_by_text(re.compile(r"Created backfill \w+"))
    toast.wait_for()
    backfill_id = re.search(r"Created backfill (\w+)", toast.inner_text()).group(1)
    return backfill_id


def wait_for_backfill_page(page, server, backfill_id: str) -> str:
    """Reload the backfill's page until its status is final; returns the page text."""
    deadline = time.monotonic() + BACKFILL_TIMEOUT_S
    text = ""
    while time.monotonic() < deadline:
        page.goto(f"{server.url}/runs/b/{backfill_id}")
        page.get_by_text("Partition selection").wait_for()
        text = page.inner_text("body")
        if re.search(r"Status\s+(Succeeded|Failed|Canceled|Completed)", text):
            return text
        time.sleep(3)
    raise AssertionError(f"backfill {backfill_id} not finished in {BACKFILL_TIMEOUT_S}s:\n{text[-2000:]}\n{server.log_tail()}")


def test_backfill_of_three_days_from_the_partition_dialog(page, server):
    # the first-visit dialog that once covered "Materialize all" is off on this instance
    assert server.graphql("{ shouldShowNux }") == {"shouldShowNux": False}
    days = ui_days()
    for day in days:
        assert not server.parquet(day).exists()
    backfill_id = launch_backfill_from_ui(page, server, days)
    text = wait_for_backfill_page(page, server, backfill_id)

    assert re.search(r"Status\s+Succeeded", text), text[-2000:]
    assert f"{days[0]}...{days[-1]}" in text  # the partition selection the page reports
    assert text.count("100% completed") == len(ASSETS), text[-2000:]
    # the API agrees: an asset backfill of exactly these three partitions, succeeded
    state = wait_for_backfill(server, backfill_id, timeout=10)
    assert state["status"] == "COMPLETED_SUCCESS" and state["isAssetBackfill"], state
    assert sorted(state["partitionNames"]) == days
    for day in days:
        table = pq.read_table(server.parquet(day))
        assert table.num_rows == SAMPLE_POSTS, day
        created = table.column("created_at").to_pylist()
        assert {c.date().isoformat() for c in created} == {day}
    _BACKFILLED["days"] = days


def test_asset_graph_shows_three_assets_and_lineage(page, server):
    page.goto(server.url + GRAPH_PAGE)
    for name in ASSETS:
        page.locator(f'svg foreignObject [data-tooltip="{name}"]').wait_for(state="visible")
    # the kinds declared on the assets show as tags under the nodes
    for kind in ("Polars", "Parquet", "Athena"):
        assert page.get_by_text(kind, exact=True).first.is_visible(), f"kind tag {kind!r} not shown"
    assert page.get_by_text("S3", exact=True).count() == 0  # a local lake: no S3 kind (#39 point 3)

    deadline = time.monotonic() + 15
    while True:  # edges are drawn once the layout settles
        boxes, edges = node_boxes_and_edges(page)
        pairs = edges_between(boxes, edges)
        if pairs >= {("raw_tweets", "clean_tweets"), ("clean_tweets", "s3_parquet")} or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert set(boxes) >= set(ASSETS), boxes
    assert pairs == {("raw_tweets", "clean_tweets"), ("clean_tweets", "s3_parquet")}, (boxes, edges)



def write_graph_screenshot(page) -> None:
    """docs/asset-graph.png: the asset graph around the three nodes, as the page shows it now."""
    page.get_by_text("Loading…").first.wait_for(state="detached")
    page.get_by_text("Loading...").first.wait_for(state="detached")
    page.mouse.move(1, 1)
    time.sleep(1.5)
    nodes = [page.locator(f'svg foreignObject:has([data-tooltip="{n}"])').bounding_box() for n in ASSETS]
    left, top = min(b["x"] for b in nodes) - 40, min(b["y"] for b in nodes) - 30
    right, bottom = max(b["x"] + b["width"] for b in nodes) + 40, max(b["y"] + b["height"] for b in nodes) + 30
    DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(DOCS_SCREENSHOT), clip={"x": max(left, 0), "y": max(top, 0), "width": right - left, "height": bottom - top})
    assert DOCS_SCREENSHOT.stat().st_size < 300_000


def ensure_backfilled(server) -> list[str]:
    """The UI test's days; when it did not run (-k), the same range launched through GraphQL."""
    if "days" in _BACKFILLED:
        return _BACKFILLED["days"]
    from tests.defs.test_graphql_backfill import launch_backfill

    days = ui_days()
    state = wait_for_backfill(server, launch_backfill(server, days), timeout=BACKFILL_TIMEOUT_S)
    assert state["status"] == "COMPLETED_SUCCESS", state
    _BACKFILLED["days"] = days
    return days


@pytest.mark.parametrize(
    ("asset", "plotted", "checks"),
    [
        ("clean_tweets", ["dagster/row_count", "authors", "quarantined", "api_errors", "duration_s", "bytes"], ["ids_unique_and_not_null", "created_at_in_partition"]),
        ("s3_parquet", ["dagster/row_count", "rows", "bytes"], ["published_schema_matches"]),
    ],
)
def test_asset_page_plots_metadata_and_shows_checks(page, server, asset, plotted, checks):
    days = ensure_backfilled(server)
    values = materializations(server, asset, days)
    assert sorted(values) == days and all(v["dagster/row_count"] == SAMPLE_POSTS for v in values.values()), values

    # Overview → Metadata → Plots: one chart per numeric metadata key, by partition
    page.goto(f"{server.url}/assets/{asset}?view=overview")
    page.get_by_text("Metadata", exact=True).first.wait_for()
    plots_button = page.get_by_role("button", name="Plots")
    plots_button.scroll_into_view_if_needed()
    plots_button.click()
    page.get_by_text("When graphing values by partition", exact=False).wait_for()
    assert page.get_by_role("button", name="Partitions").first.is_visible()
    for key in plotted:
        heading = page.get_by_text(key, exact=True).first
        heading.scroll_into_view_if_needed()
        assert heading.is_visible(), f"no plot titled {key!r}"
    assert page.locator("canvas").count() >= len(plotted), "the plots were not drawn"

    # Checks tab: each check with its description and a passed latest evaluation
    page.goto(f"{server.url}/assets/{asset}?view=checks")
    for check in checks:
        page.get_by_text(check, exact=True).first.wait_for()
    for check in checks:
        page.get_by_text(check, exact=True).first.click()
        page.get_by_text(CHECK_DESCRIPTIONS[check], exact=True).wait_for()
        page.get_by_text("Latest execution").wait_for()
        page.get_by_text("Evaluation result").wait_for()
        detail = page.inner_text("body")
        assert re.search(r"Evaluation result\s+Passed", detail), detail[-2000:]
        # one evaluation per partition (partition_checks.py): the day's own metadata, its partition named
        assert re.search(r"Partition\s+(" + "|".join(days) + r")", detail), detail[-2000:]
        assert re.search(r"rows\s+" + str(SAMPLE_POSTS), detail) or re.search(r"empty_day\s+false", detail, re.I), detail[-2000:]
        executions = check_executions(server, asset, check)
        passed = {e["partition"] for e in executions if e["status"] == "SUCCEEDED" and e["evaluation"]["success"]}
        assert set(days) <= passed, (check, executions)
        assert not [e for e in executions if e["status"] in ("SKIPPED", "FAILED", "EXECUTION_FAILED")], executions
    # the check list: every check Succeeded, none Skipped
    listing = page.inner_text("body")
    assert "Skipped" not in listing, listing[-2000:]


RUN_STATUS = """
query ($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status pipelineName pipelineSnapshotId
  repositoryOrigin { repositoryLocationName repositoryName } } } }
"""
CHILD_RUNS = """
query ($parent: String!) { runsOrError(filter: {tags: [{key: "dagster/parent_run_id", value: $parent}]}) {
  ... on Runs { results { runId status } } } }
"""
JOB_SNAPSHOT = """
{ pipelineOrError(params: {repositoryLocationName: "tweet_assets", repositoryName: "__repository__", pipelineName: "tweets_daily_job"}) {
  ... on Pipeline { pipelineSnapshotId } } }
"""


def test_after_the_demo_the_graph_reads_every_check_passed(page, server):
    """`tweet-assets demo` (in process, into the server's instance): its run is a run of the code
    location's tweets_daily_job (#39 point 1): on the Overview timeline under the job, "Re-execute
    all" without a version warning, and re-executed from Dagit it succeeds; and every check is
    evaluated (#39 point 2): "2 / 2 Passed" on clean_tweets and "3 / 3 Passed" on s3_parquet, its
    freshness_check evaluated at the demo's end. No raw_stream without the stream."""
    import subprocess
    import sys

    env = dict(server.env, PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-m", "tweet_assets.cli", "demo"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "DEBUG" not in out.stdout + out.stderr
    run_id = re.search(r"^run (\S+) succeeded in ", out.stdout, re.M).group(1)
    assert "s3_parquet freshness_check: passed" in out.stdout, out.stdout[:2000]
    # the run as Dagit files it: the code location's origin and the snapshot Dagit loaded
    run = server.graphql(RUN_STATUS, {"id": run_id})["runOrError"]
    assert run["repositoryOrigin"] == {"repositoryLocationName": "tweet_assets", "repositoryName": "__repository__"}, run
    assert run["pipelineSnapshotId"] == server.graphql(JOB_SNAPSHOT)["pipelineOrError"]["pipelineSnapshotId"], run

    page.goto(server.url + GRAPH_PAGE)
    for name in ASSETS:
        page.locator(f'svg foreignObject [data-tooltip="{name}"]').wait_for(state="visible")
    page.get_by_text("2 / 2 Passed").wait_for()
    page.get_by_text("3 / 3 Passed").wait_for()
    text = page.inner_text("body")
    assert "raw_stream" not in text  # not configured here: not drawn (issue #29 point 4)
    assert "0 / " not in text and "Never observed" not in text and "Not evaluated" not in text, text[-2000:]
    assert re.search(r"Asset checks\s+3 / 3 Passed", text), text[-2000:]
    if os.environ.get("TWEET_ASSETS_UPDATE_SCREENSHOTS") == "1":  # the graph after the demo: every check evaluated
        write_graph_screenshot(page)
    if os.environ.get("TWEET_ASSETS_SCREENSHOT_DIR"):  # for a report: the graph as the user sees it
        page.screenshot(path=str(Path(os.environ["TWEET_ASSETS_SCREENSHOT_DIR"]) / "dagit-graph-after-demo-and-backfill.png"))

    # Overview → Timeline: the demo's run in the row of tweets_daily_job (it was "No runs" before #39)
    page.goto(server.url + "/overview/timeline")
    page.get_by_role("link", name="tweets_daily_job").first.wait_for()

    # the run's page: "Re-execute all" without the warning triangle, and re-executing works
    page.goto(f"{server.url}/runs/{run_id}")
    button = page.locator("button", has_text="Re-execute all").first
    button.wait_for()
    page.get_by_text("RUN_SUCCESS").first.wait_for()
    assert button.locator('[aria-label="warning"]').count() == 0, button.inner_html()
    button.click()
    deadline = time.monotonic() + BACKFILL_TIMEOUT_S
    children = []
    while time.monotonic() < deadline:
        children = server.graphql(CHILD_RUNS, {"parent": run_id})["runsOrError"]["results"]
        if children and children[0]["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(2)
    assert [c["status"] for c in children] == ["SUCCESS"], (children, server.log_tail())
