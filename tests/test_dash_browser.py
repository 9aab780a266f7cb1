"""The dashboard in a real browser: ``fleetflow dashboard`` (a child process, Streamlit)
against a real stack, opened by headless Chromium driven by Selenium and Debian's
``chromium-driver``: the Overview's live figures, the Workflows page and its Pause button's
effect; screenshots (PNG) under the test's temp dir."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import free_port, require_tool
from dash_rig import Stack, serve
from hub_stack import PYTHON, ROOT, create, wait_for

pytestmark = pytest.mark.slow
INSTALL = "apt-get install -y chromium chromium-driver (and pip install selenium: the dev extra)"


@pytest.fixture(scope="module", autouse=True)
def stack(tmp_path_factory: pytest.TempPathFactory, mosquitto_bin: str) -> Iterator[Stack]:
    yield from serve(tmp_path_factory, mosquitto_bin)


@pytest.fixture(scope="module")
def board(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``fleetflow dashboard`` on a free port as a supervisor; its URL."""
    tmp = tmp_path_factory.mktemp("board")
    token = tmp / "token"
    token.write_text(stack.tokens["supervisor"] + "\n")
    port = free_port()
    log = tmp / "dashboard.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([PYTHON, "-m", "fleetflow", "dashboard", "--api", stack.url,
                                 "--token-file", str(token), "--port", str(port)],
                                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: f"fleetflow dashboard: {url}" in log.read_text()
                 or proc.poll() is not None, 90, "the dashboard to start")
        assert proc.poll() is None, log.read_text()
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()
        assert "stopped at" in log.read_text()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium through chromedriver."""
    chromium = require_tool("chromium", INSTALL)
    driver_bin = require_tool("chromedriver", INSTALL)
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail(f"selenium is missing: {INSTALL}")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1800"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_bin), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _text(browser: Any) -> str:
    from selenium.webdriver.common.by import By

    return str(browser.find_element(By.TAG_NAME, "body").text)


def _until(browser: Any, check: Callable[[str], bool], what: str,
           timeout: float = 60) -> str:
    """Poll the page's text until ``check`` holds; that text."""
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = _text(browser)
        if check(text):
            return text
        time.sleep(0.3)
    pytest.fail(f"the page never showed {what}; it shows:\n{text[-3000:]}")


def _tables_drawn(browser: Any) -> bool:
    """Every table (a canvas grid) of the page laid out at a useful width."""
    from selenium.webdriver.common.by import By

    frames = browser.find_elements(By.CSS_SELECTOR, '[data-testid="stDataFrame"]')
    return bool(frames) and all(f.size["width"] > 200 for f in frames)


def _workflows(stack: Stack) -> int:
    with stack.client("viewer") as c:
        return int(c.get("/api/v1/workflows", params={"limit": 1}).json()["count"])


def test_overview_in_a_browser_shows_the_facilities_and_the_workflow_count(
        stack: Stack, board: str, browser: Any, tmp_path: Path) -> None:
    """The Overview shows each facility online and the workflow count the API reports, and
    a workflow created meanwhile within the next refreshes (no reload)."""
    with stack.client("planner") as c:
        create(c, "fa")
    browser.get(board)
    total = _workflows(stack)
    _until(browser, lambda t: all(f in t for f in ("fa", "fb", "fc"))
           and re.search(rf"Workflows\s+{total}\b", t) is not None and "3 / 3" in t,
           f"fa, fb, fc and {total} workflows")
    wait_for(lambda: _tables_drawn(browser), 30, "the Overview's tables drawn")
    browser.save_screenshot(str(tmp_path / "overview.png"))
    with stack.client("planner") as c:
        create(c, "fb")
    _until(browser, lambda t: re.search(rf"Workflows\s+{total + 1}\b", t) is not None,
           f"{total + 1} workflows after a refresh")
    assert (tmp_path / "overview.png").stat().st_size > 10_000


def test_workflows_page_in_a_browser_pauses_a_workflow(
        stack: Stack, board: str, browser: Any, tmp_path: Path) -> None:
    """The Workflows page opens a workflow (``?id=``); its Pause button pauses it: the API
    says so, and the page shows it."""
    from selenium.webdriver.common.by import By

    with stack.client("planner") as c:
        wid = create(c, "fa")
    browser.get(f"{board}/workflows?id={wid}")
    _until(browser, lambda t: "Workflows" in t and wid in t, f"the page of {wid}")

    def pause_button() -> Any:
        found = [b for b in browser.find_elements(By.TAG_NAME, "button")
                 if "Pause" in b.text and b.is_enabled()]
        return found[0] if found else None

    wait_for(pause_button, 60, "an enabled Pause button")
    browser.save_screenshot(str(tmp_path / "workflow.png"))
    before = _text(browser).count("paused")
    pause_button().click()

    def state() -> str:
        with stack.client("viewer") as c:
            return str(c.get(f"/api/v1/workflows/{wid}").json()["state"])

    wait_for(lambda: state() in ("paused", "pausing"), 60, f"{wid} paused")
    _until(browser, lambda t: t.count("paused") > before, "the paused state")
    browser.save_screenshot(str(tmp_path / "workflow-paused.png"))
    assert httpx.get(f"{board}/_stcore/health", timeout=5).status_code == 200
