"""`fleetflow up` starts broker, two edges, the hub and the fleet, prints the API, its docs and
an admin token, plans through the REST API, and stops everything cleanly."""

from __future__ import annotations

import os
import re
import signal
import socket
import stat
import sys
import time
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from up_rig import Up, ours, wait_gone, workflows

from agents_sim.planner import DemoPlanner, api_request, wait_api_ready
from broker import free_port, mqtt_ready

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def _port_bindable(port: int) -> bool:
    with socket.socket() as s:  # TIME_WAIT aside
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_up_prints_api_docs_and_token_and_ctrl_c_stops_all(tmp_path: Path) -> None:
    """`up` prints the broker, both edges, the API URL, /docs, an admin token that the
    hub accepts (kept 0600 in the data dir) and the dashboard's URL (serving, with its own
    supervisor token); SIGINT stops every part — the dashboard before the edges —, exit 0."""
    with Up(tmp_path, "--agents", "0") as up:
        text = up.wait_ready()
        token = up.token()
        assert f"mqtt://127.0.0.1:{up.mqtt_port}" in text
        for i, facility in enumerate(("north", "south")):
            assert f"facility {facility!r}" in text
            assert f"http://127.0.0.1:{up.metrics_port + i}/metrics" in text
        assert f"{up.api}  (OpenAPI docs: {up.api}/docs" in text
        assert f"admin token {token}" in text
        assert stat.S_IMODE((up.data / "admin-token").stat().st_mode) == 0o600
        assert httpx.get(f"{up.api}/docs", timeout=10).status_code == 200
        assert f"dashboard   {up.dashboard}" in text
        assert httpx.get(f"{up.dashboard}/_stcore/health", timeout=10).status_code == 200
        board = (up.data / "dashboard-token").read_text().strip()
        assert stat.S_IMODE((up.data / "dashboard-token").stat().st_mode) == 0o600
        with up.client(board) as api:
            assert api.get("/api/v1/whoami").json() == {"name": "dashboard",
                                                        "role": "supervisor"}
        with up.client() as api:
            facilities = api.get("/api/v1/facilities").json()
            assert sorted((f["id"], f["online"]) for f in facilities) == [
                ("north", True), ("south", True)]
        assert up.stop() == 0
        assert "stopping" in up.output
    wait_gone(str(up.data))
    assert not mqtt_ready("127.0.0.1", up.mqtt_port), "the broker outlived `up`"
    assert _port_bindable(up.api_port) and _port_bindable(up.metrics_port)
    assert _port_bindable(up.dashboard_port)
    logs = up.data / "logs"
    board_stop = float(re.findall(r"dashboard: stopped at ([0-9.]+)",
                                  (logs / "dashboard.log").read_text())[-1])
    for facility in ("north", "south"):
        edge_log = (logs / f"edge-{facility}.log").read_text()
        assert "stopped at seq" in edge_log
        stamp = re.findall(r"^(\S+ \S+) edge INFO edge \S+ stopped at seq", edge_log, re.M)[-1]
        assert board_stop <= datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
    assert "Finished server process" in (logs / "hub.log").read_text()


def test_rest_planner_workflows_complete_in_both_facilities(tmp_path: Path) -> None:
    """The demo planner creates workflows through the REST API as its own token's identity;
    the fleet completes them in north and in south."""
    with Up(tmp_path, "--agents", "8", "--workflow-every", "0.5") as up:
        up.wait_ready()
        with up.client() as api:
            deadline = time.monotonic() + 150
            done: dict[str, int] = {}
            while min(done.values(), default=0) < 1:
                assert time.monotonic() < deadline, f"completed so far: {done}"
                time.sleep(1)
                done = {f: workflows(api, facility=f, state="completed", limit=1)["count"]
                        for f in ("north", "south")}
            first = workflows(api, facility="north", state="completed", limit=1)["items"][0]
            trail = api.get(f"/api/v1/workflows/{first['id']}/events").json()["items"]
        creator = next(e["data"]["hub_command"] for e in trail if e["kind"] == "command_reply")
        assert creator["who"] == "up-planner" and creator["action"] == "create_workflow"
        assert up.stop() == 0


def test_up_keeps_its_admin_token_and_a_killed_up_leaves_nothing(tmp_path: Path) -> None:
    """SIGKILL of `up` itself: broker, edges and hub go too; `up` again on the same data dir
    starts and keeps the admin token, so scripts that read it go on working."""
    data = tmp_path / "ff"
    with Up(tmp_path, "--agents", "0", data=data) as first:
        first.wait_ready()
        token = first.token()
        first.stop(signal.SIGKILL)
        wait_gone(str(data))
        assert not mqtt_ready("127.0.0.1", first.mqtt_port)
        for facility in ("north", "south"):  # each edge got SIGTERM and stopped in order
            assert "stopped at seq" in (data / "logs" / f"edge-{facility}.log").read_text()
        deadline = time.monotonic() + 30  # the dashboard's Streamlit (no data dir in its args)
        while not _port_bindable(first.dashboard_port):
            assert time.monotonic() < deadline, "the dashboard outlived a killed `up`"
            time.sleep(0.2)
    with Up(tmp_path, "--agents", "0", data=data) as again:
        again.wait_ready()
        assert again.token() == token
        with again.client() as api:
            assert api.get("/api/v1/facilities").status_code == 200
        assert again.stop(signal.SIGTERM) == 0
    wait_gone(str(data))


@pytest.mark.parametrize("flag", ["--port", "--api-port", "--dashboard-port"])
def test_up_with_a_port_taken_says_one_line(tmp_path: Path, flag: str) -> None:
    """The broker's, the API's or the dashboard's port already in use: one line naming the
    port and the flag, exit 2, no traceback, nothing left running."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        up = Up(tmp_path, "--agents", "0")
        up.cmd[up.cmd.index(flag) + 1] = str(port)
        with up:
            assert up.proc is not None
            assert up.proc.wait(60) == 2
    err = up.errors
    assert err.strip().count("\n") == 0 and "Traceback" not in err
    assert str(port) in err and flag in err
    wait_gone(str(up.data))


def test_demo_planner_bodies_round_robin() -> None:
    """Workflow n goes to facility n and template n (modulo), with fresh ids per planner."""
    planner = DemoPlanner("http://127.0.0.1:1", "t", ["f1", "f2"], ["a", "b", "c"], every_s=1.0)
    made = [planner.body(n) for n in (1, 2, 3)]
    assert [b["facility"] for b in made] == ["f2", "f1", "f2"]
    assert [b["template"] for b in made] == ["b", "c", "a"]
    assert made[0]["workflow_id"] == f"wf-{planner.run}-1"
    assert DemoPlanner("http://x", "t", ["f1"], ["a"], every_s=1.0).run != planner.run
    assert "t'" not in repr(planner)
    with pytest.raises(ValueError):
        DemoPlanner("http://x", "t", [], ["a"], every_s=1.0)
    with pytest.raises(ValueError):
        DemoPlanner("http://x", "t", ["f"], ["a"], every_s=0)


def test_demo_planner_counts_an_unreachable_hub_and_gives_up_waiting() -> None:
    """Nothing listens: ``create`` counts it unreachable without raising, and
    ``wait_api_ready`` returns None at its timeout or as soon as told to give up."""
    url = f"http://127.0.0.1:{free_port()}"
    planner = DemoPlanner(url, "t", ["f1"], ["a"], every_s=1.0)
    assert planner.create(1) is None
    assert planner.stats.unreachable == 1 and planner.stats.accepted == 0
    assert planner.created == [] and "wf-" in planner.stats.last_error
    assert wait_api_ready(url, 1, timeout=0.5) is None
    start = time.monotonic()
    assert wait_api_ready(url, 1, timeout=30, give_up=lambda: True) is None
    assert time.monotonic() - start < 5


def test_demo_planner_against_the_live_api(tmp_path: Path) -> None:
    """Against a running `up`: a planner token's workflow is accepted and shows in the
    hub's view; a bad token is counted refused (401) and creates nothing."""
    with Up(tmp_path, "--agents", "0") as up:
        up.wait_ready()
        assert wait_api_ready(up.api, 2, timeout=5) is not None
        planner = DemoPlanner(up.api, up.token(), ["north", "south"], ["pick_and_deliver"],
                              every_s=1.0)
        answer = planner.create(1)
        assert answer is not None and answer.status == 202, answer
        assert planner.created == [f"wf-{planner.run}-1"]
        bad = DemoPlanner(up.api, "ff_000000000000_" + "x" * 43, ["north"], ["a"], every_s=1)
        refused = bad.create(1)
        assert refused is not None and refused.status == 401
        assert bad.stats.refused == 1 and bad.created == []
        with up.client() as api:
            deadline = time.monotonic() + 30
            while api.get(f"/api/v1/workflows/wf-{planner.run}-1").status_code != 200:
                assert time.monotonic() < deadline, "the planner's workflow never showed"
                time.sleep(0.3)
        assert api_request(f"{up.api}/api/v1/workflows/wf-{bad.run}-1",
                           token=up.token()).status == 404
        assert up.stop() == 0


def test_up_stops_everything_when_the_hub_dies(tmp_path: Path) -> None:
    """The hub process killed under `up`: `up` names it, stops the other parts, exit 2."""
    with Up(tmp_path, "--agents", "0") as up:
        up.wait_ready()
        hub = [line for line in ours(str(up.data / "hub")) if " hub " in line]
        assert len(hub) == 1, hub
        os.kill(int(hub[0].split(":", 1)[0]), signal.SIGKILL)
        assert up.stop(signal.SIGCONT) == 2  # no signal of ours: `up` notices by itself
    assert "the hub process exited" in up.errors
    wait_gone(str(up.data))
    assert not mqtt_ready("127.0.0.1", up.mqtt_port)
