"""Screenshots of every dashboard page (docs/dashboard.md) from a run of the 3-facility scenario.

    .venv/bin/python scripts/dashboard_screenshots.py [--out docs/img] [--warmup 90]

Starts ``fleetflow up`` with the scenario's three facilities (north, east, west) and no demo
fleet, runs ``scenarios/warehouse_3f.yaml`` live against it (``fleetflow sim --live``, its
agents and cross-facility pairs over MQTT, as MQTT user ``sim`` of role admin), waits
``--warmup`` wall seconds, then opens each page in headless Chromium (Selenium and Debian's
``chromium-driver``) and saves ``dashboard-<page>.png``. Everything runs on free ports in a
temporary data directory and is stopped at the end.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = str(ROOT / ".venv" / "bin" / "python")
SCENARIO = ROOT / "scenarios" / "warehouse_3f.yaml"
PAGES = ["overview", "workflows", "dependencies", "agents", "coordination", "conflicts",
         "recovery", "performance"]
ON_A_WORKFLOW = ("workflows", "recovery")
"""Pages opened on one workflow (``?id=``): a running cross-facility target if there is one."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_line(log: Path, text: str, proc: subprocess.Popen[bytes], timeout: float) -> str:
    """The first line of ``log`` holding ``text``; exits if ``proc`` ends first."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for line in log.read_text(errors="replace").splitlines():
            if text in line:
                return line
        if proc.poll() is not None:
            sys.exit(f"{proc.args[3]} exited: {log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.5)
    sys.exit(f"no {text!r} in {log} after {timeout} s")


def browser() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1000", "--hide-scrollbars"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def pick_workflow(api: str, token: str) -> str | None:
    """A workflow worth showing: a started cross-facility target, else any active one."""
    import httpx

    got = httpx.get(f"{api}/api/v1/workflows", params={"state": "active", "limit": 200},
                    headers={"Authorization": f"Bearer {token}"}, timeout=10).json()
    ids = [w["id"] for w in got.get("items", [])]
    crossing = [i for i in ids if re.search(r"-x\d+-\d+$", i)]
    return (crossing or ids or [None])[0]


def shoot(url: str, out: Path, settle: float, chart_s: float,
          pick: Callable[[], str | None]) -> None:
    from selenium.webdriver.common.by import By

    driver = browser()
    workflow = None
    try:
        for page in PAGES:
            if page == ON_A_WORKFLOW[0]:
                workflow = pick()  # after the Overview's minute: one still running
            query = f"?id={workflow}" if workflow and page in ON_A_WORKFLOW else ""
            path = "" if page == PAGES[0] else page  # the default page is the app's root
            driver.get(f"{url}/{path}{query}")
            # the first render and one live refresh; the Overview's charts need readings
            time.sleep(chart_s if page == "overview" else settle)
            height = driver.execute_script(
                "const m = document.querySelector('section.main, [data-testid=stMain]');"
                "return Math.max(document.body.scrollHeight, m ? m.scrollHeight : 0);")
            driver.set_window_size(1400, min(max(int(height) + 40, 1000), 2600))
            time.sleep(1.0)
            body = driver.find_element(By.TAG_NAME, "body").text
            if "Traceback" in body:
                sys.exit(f"{page}: the page shows a traceback:\n{body[:2000]}")
            path = out / f"dashboard-{page}.png"
            driver.save_screenshot(str(path))
            driver.set_window_size(1400, 1000)
            print(f"{page}: {path}", flush=True)
    finally:
        driver.quit()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    p.add_argument("--warmup", type=float, default=90.0, help="wall seconds of the run "
                   "before the first screenshot (default 90)")
    p.add_argument("--speed", type=float, default=10.0, help="simulated seconds per wall "
                   "second (default 10)")
    p.add_argument("--settle", type=float, default=6.0, help="wall seconds per page "
                   "before its screenshot (default 6)")
    p.add_argument("--chart", type=float, default=60.0, help="wall seconds the Overview "
                   "stays open to draw its charts (default 60)")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    data = Path(tempfile.mkdtemp(prefix="fleetflow-shots-"))
    password = secrets.token_urlsafe(16)
    subprocess.run([PYTHON, "-m", "fleetflow", "broker", "passwd", "add", "sim", "--role",
                    "admin", f"--password={password}", "--passwd", str(data / "passwd")],
                   check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    mqtt, api, board = free_port(), free_port(), free_port()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        up_log = data / "up.out"
        with up_log.open("wb") as out:
            procs.append(subprocess.Popen(
                [PYTHON, "-m", "fleetflow", "up", "--data", str(data), "--port", str(mqtt),
                 "--api-port", str(api), "--dashboard-port", str(board), "--metrics-port",
                 str(free_port()), "--facility", "north", "--facility", "east", "--facility",
                 "west", "--agents", "0", "--workflow-every", "0", "--map",
                 str(SCENARIO.parent / "maps" / "warehouse.yaml")],
                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True))
        line = wait_for_line(up_log, "dashboard ", procs[0], 120)
        url = line.split()[1]
        sim_log = data / "sim.out"
        with sim_log.open("wb") as out:
            procs.append(subprocess.Popen(
                [PYTHON, "-m", "fleetflow", "sim", str(SCENARIO), "--live", "--broker",
                 f"mqtt://127.0.0.1:{mqtt}", "--username", "sim", "--speed", str(args.speed)],
                cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, "FLEETFLOW_SIM_PASSWORD": password}))
        print(f"stack up (dashboard {url}); the scenario runs for {args.warmup:.0f} s first",
              flush=True)
        time.sleep(args.warmup)
        if procs[1].poll() not in (None, 0):
            sys.exit(f"the simulator exited: {sim_log.read_text(errors='replace')[-2000:]}")
        token = (data / "admin-token").read_text().strip()
        shoot(url, args.out, args.settle, args.chart,
              lambda: pick_workflow(f"http://127.0.0.1:{api}", token))
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in reversed(procs):
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        print(f"logs in {data}", flush=True)


if __name__ == "__main__":
    main()
