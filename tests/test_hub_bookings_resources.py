"""A lent resource double-booked across facilities, end to end: a real Mosquitto, real
``fleetflow edge`` processes for ``fa`` and ``fb``, an in-process hub with its API on
uvicorn. ``fa`` holds ``dock1`` when its edge goes down; the loan of ``dock1`` to ``fb``
waits in the hub's outbox while ``fb`` takes it; the hub sees the double-booking at once,
settles it for the higher priority, and ``fa`` complies when it comes back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hub_rig import EdgeProc, hub_config, running_hub, wait_until
from lending_rig import SharedAgent, serve_api

pytestmark = pytest.mark.slow

DOCK = """\
name: dock_load
steps:
  - id: load
    kind: robot
    capabilities: [lift]
    location: p1
    resources: [dock1]
"""


class Rig:
    """Two edges, one robot in each, the hub and its API."""

    def __init__(self, tmp: Path, port: int) -> None:
        self.templates = tmp / "templates"
        self.templates.mkdir()
        (self.templates / "dock_load.yaml").write_text(DOCK)
        self.edges = {f: EdgeProc(f, port, tmp, self.templates) for f in ("fa", "fb")}
        self.robots: dict[str, SharedAgent] = {}
        self.url = ""
        self.tokens: dict[str, str] = {}

    def client(self, role: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30.0,
                            headers={"Authorization": f"Bearer {self.tokens[role]}"})


@pytest.fixture
def rig(tmp_path: Path, mosquitto_port: int) -> Iterator[Rig]:
    r = Rig(tmp_path, mosquitto_port)
    try:
        for edge in r.edges.values():
            edge.start()
        with running_hub(hub_config(tmp_path, mosquitto_port, r.templates)) as hub, \
                serve_api(hub, tmp_path / "hub") as (url, tokens):
            r.url, r.tokens = url, tokens
            wait_until(lambda: sum(f.online for f in hub.facilities()) == 2, 60)
            r.robots = {f: SharedAgent(mosquitto_port, f"{f}-r1", (f,)) for f in ("fa", "fb")}
            wait_until(lambda: len(hub.agents().items) == 2, 30)
            yield r
    finally:
        for robot in r.robots.values():
            robot.close()
        for edge in r.edges.values():
            edge.close()


def _create(c: httpx.Client, facility: str, priority: int) -> str:
    r = c.post("/api/v1/workflows", json={"facility": facility, "template": "dock_load",
                                          "priority": priority})
    assert r.status_code == 201, r.text
    return str(r.json()["args"]["workflow_id"])


def _step(c: httpx.Client, wid: str) -> dict[str, Any]:
    [found] = c.get(f"/api/v1/workflows/{wid}").json()["steps"]
    return found  # type: ignore[no-any-return]


def _conflict(c: httpx.Client) -> dict[str, Any] | None:
    items = c.get("/api/v1/conflicts", params={"facility": "*"}).json()["items"]
    return items[-1] if items else None


def test_lent_resource_held_twice_is_settled_when_the_lender_returns(rig: Rig) -> None:
    """``fa`` holds dock1 and goes down; the loan to ``fb`` is queued (202) and ``fb``
    takes dock1: an ``x-`` shared_resource conflict at once; ``fb`` (higher priority)
    keeps it; back online, ``fa`` is told to release it, its robot confirms, and the
    conflict is resolved with the loan standing."""
    with rig.client("planner") as c, rig.client("supervisor") as s:
        wa = _create(c, "fa", 1)
        wait_until(lambda: _step(c, wa)["agent"] == "fa-r1", 20)
        rig.edges["fa"].stop()
        r = s.post("/api/v1/resources/dock1/lend", params={"consistency": "eventual"},
                   json={"from_facility": "fa", "to_facility": "fb"})
        assert r.status_code == 202 and r.json()["status"] == "lending", r.text
        wb = _create(c, "fb", 5)
        found = wait_until(lambda: _conflict(c), 30)
        assert found["rule"] == "shared_resource" and found["resource"] == "dock1"
        assert sorted(found["participants"]) == [f"fa/{wa}/load", f"fb/{wb}/load"]
        rig.edges["fa"].start()
        done = wait_until(lambda: (x := _conflict(c)) and x["status"] == "resolved" and x, 60)
        loan = wait_until(lambda: [x for x in s.get("/api/v1/loans").json()
                                   if x["status"] == "lent"], 20)
        assert done["resolution"] == "kept by fb"
        assert ("fa", wa, "load") in rig.robots["fa"].cancels
        assert _step(c, wa)["state"] == "allocating" and _step(c, wb)["agent"] == "fb-r1"
        assert loan[0]["id"] == "resource:dock1:fa" and loan[0]["to_facility"] == "fb"
