"""The Agents page against a real stack (``dash_rig``) whose ``fb`` edge is a VDA 5050
master (``--vda``) with the real test AGV ``agv1`` on its map: the map and the table show
the agents the API reports, the AGV with its mode and e-stop (engaged on the vehicle, seen
on the next run), an agent's workflows; a zone stop and its release act and show; a viewer
sees the controls disabled; a refused token is a readable message."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from dash_rig import Stack, errors, page, serve, shown
from hub_stack import create, wait_for

from agents_sim.vda_agv import AgvRunner, run_agv

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def stack(tmp_path_factory: pytest.TempPathFactory, mosquitto_bin: str) -> Iterator[Stack]:
    """The stack, with ``fb`` mastering VDA 5050 AGVs."""
    yield from serve(tmp_path_factory, mosquitto_bin, edge_flags={"fb": ["--vda"]})


@pytest.fixture(scope="module")
def agv(stack: Stack) -> Iterator[AgvRunner]:
    """The test AGV ``agv1`` standing on ``dock`` of fb's map."""
    runner = run_agv("127.0.0.1", stack.mqtt_port, "acme", "agv1", node_id="dock", x=0.0,
                     y=0.0, map_id="demo_floor", state_interval_s=1.0)
    try:
        yield runner
    finally:
        runner.stop()


def _agents(stack: Stack, facility: str) -> dict[str, dict[str, Any]]:
    with stack.client("viewer") as c:
        items = c.get("/api/v1/agents", params={"facility": facility}).json()["items"]
    return {a["id"]: a for a in items}


def _open_e_stop(stack: Stack) -> bool:
    with stack.client("viewer") as c:
        items = c.get("/api/v1/conflicts", params={"facility": "fb"}).json()["items"]
    return any(k["rule"] == "e_stop" and k["status"] != "resolved" for k in items)


def _on(facility: str, role: str = "supervisor", **kw: Any) -> Any:
    at = page("agents", role, **kw)
    at.selectbox(key="agents_facility").set_value(facility).run()
    assert not at.exception, at.exception
    return at


def test_map_and_table_show_the_agents_the_api_reports(stack: Stack) -> None:
    """fc's fitters are drawn on the map and listed with the node, kind and battery the
    API gives (people report none: a dash)."""
    api = wait_for(lambda: (a := _agents(stack, "fc")) and len(a) >= 2 and a)
    at = _on("fc")  # after they joined: a fresh stack starts with none
    text = shown(at)
    for agent in api.values():
        assert agent["id"] in text and agent["node"] in text and agent["kind"] in text
        battery = agent["battery"]
        assert ("—" if battery is None else f"{battery:.0f} %") in text
    assert at.get("vega_lite_chart"), "no map chart"


def test_vda_agv_shows_mode_and_an_engaged_e_stop(stack: Stack, agv: AgvRunner) -> None:
    """agv1 is listed as a VDA 5050 AGV in automatic mode; its e-stop pressed on the
    vehicle shows engaged, with the e_stop conflict, on the next run."""
    runner = agv
    wait_for(lambda: _agents(stack, "fb").get("agv1"), 30, "agv1 at the hub")
    at = _on("fb")
    assert "agv1" in shown(at) and "automatic" in shown(at) and "off" in shown(at)
    with runner.lock:
        runner.model.set_e_stop("MANUAL")
    try:
        wait_for(lambda: _agents(stack, "fb")["agv1"]["e_stop"], 30, "the e-stop")
        wait_for(lambda: _open_e_stop(stack), 30, "the e_stop conflict")
        at.run()
        assert "ENGAGED" in shown(at) and "e_stop (open)" in shown(at), shown(at)
    finally:
        with runner.lock:
            runner.model.set_e_stop("NONE")
    assert "VDA 5050 links" in shown(at)  # link health: tests/test_dash_vda_links.py


def test_an_agents_workflows_are_listed(stack: Stack) -> None:
    """After fitter1 or fitter2 walked for a workflow, choosing it lists that workflow."""
    with stack.client("planner") as c:
        wid = create(c, "fc", template="api_meet")
        trail = wait_for(lambda: [e for e in c.get(f"/api/v1/workflows/{wid}/events").json()[
            "items"] if e["kind"] == "step_assigned"], what="the walk's assignment")
    fitter = trail[0]["data"]["agent"]
    at = _on("fc")
    at.selectbox(key="agent_pick").set_value(fitter).run()
    assert wid in shown(at)


def test_zone_stop_then_release(stack: Stack) -> None:
    """A supervisor stops fa's cold room: the stop shows on the next run with its release
    button; the release ends it (the API's conflict is resolved)."""
    at = _on("fa")
    at.selectbox(key="stop_zone").set_value("cold_room")
    at.text_input(key="stop_reason").input("spill")
    at.button(key="stop").click().run()
    assert not errors(at), errors(at)
    at.run()
    assert any("zone cold_room" in e and "spill" in e for e in errors(at)), errors(at)
    at.button(key="release_cold_room").click().run()
    at.run()
    assert not any("cold_room" in e for e in errors(at))
    with stack.client("viewer") as c:
        stops = [k for k in c.get("/api/v1/conflicts", params={"facility": "fa"}).json()[
            "items"] if k["rule"] == "facility_stop"]
    assert stops and all(k["status"] == "resolved" for k in stops)


def test_viewer_sees_the_page_with_controls_disabled() -> None:
    """A viewer token: the same map and table, the stop button disabled."""
    at = _on("fc", "viewer")
    assert "fitter1" in shown(at) and at.get("vega_lite_chart")
    assert at.button(key="stop").disabled
    assert "Read only" in shown(at)


def test_refused_token_is_a_readable_message() -> None:
    """A token the hub never issued: a sentence about the token, no traceback."""
    at = page("agents", token="ff_000000000000_" + "A" * 43)
    assert not at.exception
    assert any("does not accept this token" in e for e in errors(at)), errors(at)
