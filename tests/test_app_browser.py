"""End to end in a real browser: ``streamlit run`` on a loopback port, Debian's headless
Chromium driven by Playwright.  Opens every page, follows a deep link into a trace, opens a
prompt diff, and saves screenshots (tests/artifacts/).

Skipped only when /usr/bin/chromium is absent (``apt-get install chromium``); Playwright never
downloads a browser here.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.app_store import CHAT_TRACE_ID, build_app_store

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"
# The README's docs/screenshot.png is taken from the sample data (tracewatch demo); the
# test store's overview goes next to the other artifacts, never over a committed file.
OVERVIEW_SCREENSHOT = ROOT / "tests" / "artifacts" / "overview.png"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update"]
PAGES = {"overview": "Overview", "traces": "Traces", "prompt_versions": "Prompt versions",
         "failure_modes": "Failure modes", "alerts": "Alerts", "cost": "Cost"}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="needs Debian's chromium at /usr/bin/chromium "
                              "(apt-get install chromium)"),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_healthy(url: str, process: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError("streamlit did not become healthy")


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data_dir = tmp_path_factory.mktemp("browser") / "store"
    build_app_store(data_dir)
    port = _free_port()
    env = {**os.environ, "TRACEWATCH_DATA_DIR": str(data_dir)}
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app" / "streamlit_app.py"),
         "--server.port", str(port), "--server.address", "127.0.0.1",
         "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture()
def page(browser: object) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1440, "height": 1000})  # type: ignore[attr-defined]
    tab = context.new_page()
    # Traffic stays on loopback: anything else (fonts, telemetry) is refused.
    tab.route("**/*", lambda route: route.continue_()
              if route.request.url.startswith("http://127.0.0.1") else route.abort())
    try:
        yield tab
    finally:
        context.close()


def _settle(tab: object) -> None:
    """Wait until Streamlit has finished running the script."""
    tab.wait_for_selector("[data-testid='stApp']", timeout=30_000)  # type: ignore[attr-defined]
    tab.wait_for_selector("h1", timeout=30_000)  # type: ignore[attr-defined]
    tab.wait_for_function(  # type: ignore[attr-defined]
        "() => !document.querySelector('[data-testid=\"stSkeleton\"], "
        "[data-testid=\"stStatusWidget\"] [data-testid=\"stStatusWidgetRunningIcon\"]')",
        timeout=60_000)
    tab.wait_for_timeout(1500)  # type: ignore[attr-defined]


def _shoot(tab: object, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    tab.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
    return path


def _no_exception(tab: object) -> None:
    assert tab.locator("[data-testid='stException']").count() == 0  # type: ignore[attr-defined]


RANGE = "from=2025-03-02T00:00:00&to=2025-03-07T00:00:00"


def test_every_page_opens(app_url: str, page: object) -> None:
    for path, title in PAGES.items():
        page.goto(f"{app_url}/?page={path}&{RANGE}" if path == "overview"
                  else f"{app_url}/{path}?{RANGE}")  # type: ignore[attr-defined]
        _settle(page)
        heading = page.locator("h1").first  # type: ignore[attr-defined]
        heading.wait_for(timeout=30_000)
        assert heading.inner_text().strip() == title
        _no_exception(page)
        _shoot(page, f"page-{path}")
        if path == "overview":
            tiles = page.locator("[data-testid='stMetric']")  # type: ignore[attr-defined]
            tiles.nth(5).wait_for(timeout=30_000)
            assert tiles.count() == 6
            page.locator(".js-plotly-plot").first.wait_for(timeout=30_000)  # type: ignore[attr-defined]
            page.wait_for_timeout(800)  # type: ignore[attr-defined]
            OVERVIEW_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(OVERVIEW_SCREENSHOT), full_page=False)  # type: ignore[attr-defined]


def test_deep_link_opens_a_trace(app_url: str, page: object) -> None:
    page.goto(f"{app_url}/?trace_id={CHAT_TRACE_ID}")  # type: ignore[attr-defined]
    _settle(page)
    page.locator("h1", has_text="answer_question").wait_for(timeout=30_000)  # type: ignore[attr-defined]
    assert "/traces" in page.url and f"trace_id={CHAT_TRACE_ID}" in page.url  # type: ignore[attr-defined]
    # The waterfall is a plotly chart with one bar per span.
    page.locator(".js-plotly-plot").first.wait_for(timeout=30_000)  # type: ignore[attr-defined]
    assert page.locator(".js-plotly-plot .bars .point").count() == 3  # type: ignore[attr-defined]
    _no_exception(page)
    _shoot(page, "trace-drilldown")


def test_prompt_diff(app_url: str, page: object) -> None:
    page.goto(f"{app_url}/prompt_versions?{RANGE}")  # type: ignore[attr-defined]
    _settle(page)
    page.get_by_text("2 changed line(s)").wait_for(timeout=30_000)  # type: ignore[attr-defined]
    diff = page
    diff.locator("table.tw-diff").first.wait_for(timeout=30_000)  # type: ignore[attr-defined]
    added = diff.locator("table.tw-diff td.add")
    assert added.first.inner_text() == "Cite the article id."
    assert diff.locator("table.tw-diff td.chg-b").first.inner_text() == \
        "Answer only from the articles below."
    _no_exception(page)
    diff.locator("table.tw-diff").first.scroll_into_view_if_needed()  # type: ignore[attr-defined]
    _shoot(page, "prompt-diff")
