"""``x_api_usage`` in Dagit, in a real browser (#38 point 4): Debian's Chromium driven by Playwright
against a ``dg dev`` (tests/dagit_server.py) whose X API is the loopback double of this process
(tests/x_api_double.py). Three observations are launched through Dagster's GraphQL API, the
double's usage rising between them (10 %, 50 %, 85 % of its cap); the asset's page then plots
project_cap, project_usage, percent_used, days_to_reset and usage_last_30_days, and its check
post_cap_headroom shows the 85 % observation's warning.

A failing test leaves ``<name>-failure.png`` (and the page's text) in its tmp dir.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from tests.dagit_server import DagitServer, check_executions

pytestmark = pytest.mark.slow

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run"]
UI_TIMEOUT_MS = 30_000
RUN_TIMEOUT_S = 180
TOKEN = "AAAAAAAAAAAAAAAAAAAAAusageBrowserTestBearer0123456789"
PLOTTED = ["project_cap", "project_usage", "percent_used", "days_to_reset", "usage_last_30_days"]
USED = [100_000, 500_000, 850_000]  # of the double's 1,000,000 cap


def _chromium() -> str:
    for candidate in (os.environ.get("TWEET_ASSETS_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    pytest.skip("Debian's chromium is not installed (/usr/bin/chromium): `apt-get install -y chromium` (Playwright's own browser download is not used)")


@pytest.fixture(scope="module")
def double():
    from tests.x_api_double import XApiDouble

    with XApiDouble() as api:
        yield api


@pytest.fixture(scope="module")
def server(tmp_path_factory, double):
    env = {"TWEET_ASSETS_SOURCE": "x_api", "X_BEARER_TOKEN": TOKEN, "X_QUERY": "dagster", "X_API_BASE_URL": double.url, "X_HTTP_TIMEOUT": "2,10"}
    srv = DagitServer(root=tmp_path_factory.mktemp("dagit-usage"), extra_env=env).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def observed(server, double):
    """Three observation runs of x_api_usage_job through GraphQL, the usage rising between them."""
    from dagster import DagsterRunStatus
    from dagster_graphql import DagsterGraphQLClient

    client = DagsterGraphQLClient("127.0.0.1", port_number=server.port, timeout=60)
    for used in USED:
        double.posts_used = used
        run_id = client.submit_job_execution("x_api_usage_job", repository_location_name="tweet_assets")
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while (status := client.get_run_status(run_id)) not in (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED):
            assert time.monotonic() < deadline, f"run {run_id} not finished in {RUN_TIMEOUT_S}s:\n{server.log_tail()}"
            time.sleep(1)
        assert status == DagsterRunStatus.SUCCESS, server.log_tail()
    return USED


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory):
    executable = _chromium()
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed (pip install playwright; no `playwright install`)")
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=executable, headless=True, args=CHROMIUM_FLAGS, viewport={"width": 1400, "height": 900},
        )
        context.set_default_timeout(UI_TIMEOUT_MS)
        yield context
        context.close()


@pytest.fixture
def page(browser_context, request, tmp_path):
    tab = browser_context.new_page()
    tab.add_init_script("window.localStorage.setItem('communityNux', JSON.stringify('1'))")
    tab.add_locator_handler(tab.get_by_text("Join the Dagster community"), lambda: tab.get_by_role("button", name="Skip").click())
    failed_before = request.session.testsfailed
    yield tab
    if request.session.testsfailed > failed_before:
        try:
            tab.screenshot(path=str(tmp_path / f"{request.node.name}-failure.png"), full_page=True)
            (tmp_path / f"{request.node.name}-failure.txt").write_text(f"{tab.url}\n\n{tab.inner_text('body')}")
        except Exception as exc:  # the page may be gone; the failure itself is what matters
            print(f"no failure screenshot ({exc})")
    tab.close()


def test_x_api_usage_plots_its_observations_and_shows_its_check(page, server, double, observed):
    # the double answered each observation's usage request, and nothing else (no post was read)
    assert len(double.requests_to("usage")) >= len(observed) and double.post_requests() == []

    # Overview → Metadata → Plots: one chart per numeric metadata key, across the observations
    page.goto(f"{server.url}/assets/x_api_usage?view=overview")
    page.get_by_text("Metadata", exact=True).first.wait_for()
    plots = page.get_by_role("button", name="Plots")
    plots.scroll_into_view_if_needed()
    plots.click()
    for key in PLOTTED:
        heading = page.get_by_text(key, exact=True).first
        heading.scroll_into_view_if_needed()
        assert heading.is_visible(), f"no plot titled {key!r}"
    assert page.locator("canvas").count() >= len(PLOTTED), "the plots were not drawn"
    assert page.get_by_text("x_api", exact=True).first.is_visible()  # its group

    # Checks tab: post_cap_headroom, its latest evaluation the 85 % warning
    page.goto(f"{server.url}/assets/x_api_usage?view=checks")
    page.get_by_text("post_cap_headroom", exact=True).first.wait_for()
    page.get_by_text("post_cap_headroom", exact=True).first.click()
    page.get_by_text("Latest execution").wait_for()
    page.get_by_text("85.0% of the monthly post cap used", exact=False).first.wait_for()
    executions = check_executions(server, "x_api_usage", "post_cap_headroom")
    # newest first: the 85 % observation warns (x_api_usage_sensor, running by default here, may add one at 85 % too); 10 % and 50 % passed
    assert executions[0]["evaluation"]["success"] is False and any(e["evaluation"]["success"] for e in executions)
