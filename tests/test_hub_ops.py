"""The hub's reads for supervisors' screens against a real stack (``hub_stack``, with the
agents and templates of ``ops_rig``): a facility's map (``fleetflow hub --maps``, one file
for all or a directory per facility; a bad map refused at start), the coordination under
way (an auction with its bids, a sync point and an arrival reported through the API, a
leader/follower team, an open vote), and what ``GET /agents`` says of an agent's mode."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import free_port
from hub_stack import PYTHON, ROOT, Stack, create, run_stack, wait_for
from ops_rig import OPS_EDGE_FLAGS, OPS_TEMPLATES, ops_fleet

from cloud_hub import TokenStore

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, mosquitto_bin: str) -> Iterator[Stack]:
    """The stack with ``ops_rig``'s templates and agents in ``fc``."""
    for s in run_stack(tmp_path_factory.mktemp("hubops"), mosquitto_bin,
                       templates_text=OPS_TEMPLATES, edge_flags=OPS_EDGE_FLAGS):
        with ops_fleet(s.mqtt_port):
            yield s


def _coordination(c: httpx.Client, facility: str = "fc") -> dict[str, Any]:
    r = c.get("/api/v1/coordination", params={"facility": facility})
    assert r.status_code == 200, r.text
    [view] = r.json()
    assert view["facility"] == facility
    out: dict[str, Any] = view
    return out


def _find(c: httpx.Client, part: str, wid: str, facility: str = "fc"
          ) -> dict[str, Any] | None:
    return next((x for x in _coordination(c, facility)[part] if x["workflow_id"] == wid),
                None)


def test_map_has_nodes_edges_and_zones(stack: Stack) -> None:
    """The edges' map as the hub serves it: nodes at their x/y, both directions of a
    two-way lane, one of a one-way lane, and the exclusive cold room."""
    with stack.client("viewer") as c:
        m = c.get("/api/v1/facilities/fa/map").json()
    nodes = {n["id"]: n for n in m["nodes"]}
    edges = {(e["source"], e["target"]) for e in m["edges"]}
    assert m["map_id"] == "demo_floor" and m["facility"] == "fa"
    assert (nodes["a2"]["x"], nodes["a2"]["y"], nodes["a2"]["zones"]) == (10, 0, ["aisle"])
    assert nodes["charger"]["charger"] and nodes["pack"]["station"] == "pack"
    assert {("dock", "a1"), ("a1", "dock"), ("pack", "dock")} <= edges
    assert ("dock", "pack") not in edges
    assert {"id": "cold_room", "mode": "exclusive"} in m["zones"]


def test_map_of_an_unknown_facility_is_404(stack: Stack) -> None:
    """A facility no edge of which reported has no map (404, the JSON error)."""
    with stack.client("viewer") as c:
        r = c.get("/api/v1/facilities/nowhere/map")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_maps_directory_serves_the_facilities_it_names(stack: Stack, tmp_path: Path) -> None:
    """``--maps DIR``: a second hub on the same broker serves ``fa.yaml`` for fa, and 404
    naming the flag for fb, which has no file there."""
    maps = tmp_path / "maps"
    maps.mkdir()
    (maps / "fa.yaml").write_text((ROOT / "maps" / "demo.yaml").read_text())
    data, port = tmp_path / "hub2", free_port()
    data.mkdir()
    token = TokenStore.in_dir(data).create("v", "viewer")
    log = tmp_path / "hub2.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen([PYTHON, "-m", "fleetflow", "hub", "--broker",
                                 f"mqtt://127.0.0.1:{stack.mqtt_port}", "--data", str(data),
                                 "--port", str(port), "--maps", str(maps)], cwd=ROOT,
                                stdout=out, stderr=out)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: httpx.get(f"{url}/health", timeout=2).json()["online"] == 3, 60,
                 what=log.read_text)
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as c:
            fa, fb = c.get("/api/v1/facilities/fa/map"), c.get("/api/v1/facilities/fb/map")
    finally:
        proc.terminate()
        proc.wait(20)
    assert fa.status_code == 200 and fa.json()["facility"] == "fa"
    assert fb.status_code == 404 and "--maps" in fb.json()["error"]["message"]


def test_a_bad_map_stops_the_start(tmp_path: Path) -> None:
    """A map with an edge to an unknown node: one line naming the file and the field,
    exit 2, nothing created."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("nodes: {a: {x: 0, y: 0}}\nedges: [[a, b]]\n")
    r = subprocess.run([PYTHON, "-m", "fleetflow", "hub", "--data", str(tmp_path / "h"),
                        "--maps", str(bad)], cwd=ROOT, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2 and "bad.yaml" in r.stderr and "edges[0]" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "h").exists()


def test_an_auction_shows_its_bids_and_who_is_awaited(stack: Stack) -> None:
    """An auction_based step: the call went to bidder1 and mute1; bidder1's bid is listed
    and mute1 is awaited while the auction is still bidding."""
    with stack.client("planner") as c:
        wid = create(c, "fc", template="ops_bid")
        auction = wait_for(lambda: (a := _find(c, "auctions", wid)) and a["bids"] and a,
                           what=lambda: f"the auction of {wid}: {_coordination(c)}")
    assert auction["phase"] == "bidding" and auction["step_id"] == "look"
    assert auction["invited"] == ["bidder1", "mute1"]
    assert [b["agent"] for b in auction["bids"]] == ["bidder1"]
    assert auction["awaited"] == ["mute1"] and auction["bids"][0]["proxy"] is False


def test_a_sync_point_waits_then_an_arrival_releases_it(stack: Stack) -> None:
    """The walker arrived by itself, the person without the app is awaited; reported
    through the API, the barrier releases and the sync point leaves the view."""
    with stack.client("planner") as c:
        wid = create(c, "fc", template="ops_sync")
    with stack.client("supervisor") as c:
        point = wait_for(lambda: (p := _find(c, "sync_points", wid)) and p["arrived"]
                         and p["awaited"] and p,
                         what=lambda: f"the sync point of {wid}: {_coordination(c)}")
        r = c.post(f"/api/v1/workflows/{wid}/sync/meet/agent/nophone1")
        wait_for(lambda: _find(c, "sync_points", wid) is None, what="the released barrier")
        state = c.get(f"/api/v1/workflows/{wid}").json()["state"]
    assert (point["arrived"], point["awaited"]) == (["walker1"], ["nophone1"])
    assert sorted(point["expected"]) == ["nophone1", "walker1"]
    assert r.status_code == 200 and r.json()["result"]["released"] is True
    assert state == "completed"


def test_a_team_shows_its_leader_and_follower(stack: Stack) -> None:
    """A leader_follower coalition step: both carriers hold it, one leads."""
    with stack.client("planner") as c:
        wid = create(c, "fb", template="ops_team")
        team = wait_for(lambda: _find(c, "teams", wid, "fb"), what=lambda: f"the team of {wid}: "
                        f"{c.get(f'/api/v1/workflows/{wid}/events').json()['items']}")
    assert team["protocol"] == "leader_follower" and team["step_id"] == "carry"
    assert sorted(team["members"].values()) == ["carrier1", "carrier2"]
    assert team["leader"] in ("carrier1", "carrier2")
    assert team["followers"] == [a for a in ("carrier1", "carrier2") if a != team["leader"]]


def test_an_open_vote_names_its_voters(stack: Stack) -> None:
    """A consensus decision: the ai agent is the voter, nothing is cast yet, it is open."""
    with stack.client("planner") as c:
        wid = create(c, "fc", template="ops_vote")
        vote = wait_for(lambda: _find(c, "votes", wid), what=lambda: f"{_coordination(c)}")
    assert vote["voters"] == ["ai1"] and vote["votes"] == {} and vote["awaited"] == ["ai1"]
    assert vote["result"] is None and vote["quorum"] == 1 and vote["default"] == "else"


def test_every_facility_has_a_view(stack: Stack) -> None:
    """Without a filter: one view per facility; an unknown facility is 404."""
    with stack.client("viewer") as c:
        views = c.get("/api/v1/coordination").json()
        unknown = c.get("/api/v1/coordination", params={"facility": "nowhere"})
    assert [v["facility"] for v in views] == ["fa", "fb", "fc"]
    assert unknown.status_code == 404


def test_agents_carry_mode_e_stop_and_bids(stack: Stack) -> None:
    """GET /agents: a simulated person in automatic mode, no e-stop, bidding itself."""
    with stack.client("viewer") as c:
        bidder: dict[str, Any] = wait_for(lambda: {a["id"]: a for a in c.get(
            "/api/v1/agents", params={"facility": "fc"}).json()["items"]}.get("bidder1"))
    assert (bidder["mode"], bidder["e_stop"], bidder["bids"]) == ("automatic", False, True)
