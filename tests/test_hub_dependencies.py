"""Dependencies across facilities through the hub's API, end to end: two real ``fleetflow
edge`` processes (facilities ``fa`` and ``fb``) with simulated robots, a real ``fleetflow
hub`` and Mosquitto. A target in ``fb`` waits pending for its source in ``fa``; the hub
judges the source by the edge's own rules and sends the verdict; cycles across facilities,
bad conditions and callers without the role are refused; a hub restart loses nothing."""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from hub_stack import Stack, run_stack, wait_for
from paho.mqtt.enums import CallbackAPIVersion

from agents_sim.native import AgentSpec, FleetRunner
from topics import ProtocolError, edge_topic, unpack_edge_event

pytestmark = pytest.mark.slow

TEMPLATES = {
    # Robots with `lift` are in both facilities: a move runs at once and yields `lot`.
    "dep_move.yaml": """\
name: dep_move
steps:
  - id: move
    kind: robot
    capabilities: [lift]
    location: p1
    outputs: [lot]
    estimated_duration_s: 1
""",
    # Nobody has `key` until a test brings an agent that has: the source runs until then.
    "dep_gate.yaml": """\
name: dep_gate
steps:
  - id: unlock
    kind: robot
    capabilities: [key]
    location: p2
    estimated_duration_s: 1
""",
    # Takes the bay and keeps it until a `key` holder unlocks: a resource held across steps.
    "dep_hold.yaml": """\
name: dep_hold
steps:
  - id: take
    kind: robot
    capabilities: [lift]
    location: p1
    resources: [bay]
    hold_until: {bay: unlock}
    estimated_duration_s: 1
  - id: unlock
    kind: robot
    capabilities: [key]
    location: p2
    after: [take]
    estimated_duration_s: 1
""",
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, mosquitto_bin: str) -> Iterator[Stack]:
    """Two facilities with two lift robots each, one hub, for the module's tests."""
    tmp = tmp_path_factory.mktemp("hubdeps")
    for s in run_stack(tmp, mosquitto_bin, facilities=("fa", "fb"),
                       templates_text=TEMPLATES):
        fleets = [FleetRunner(f, [AgentSpec(f"{f}-r{i}", "robot", ("lift",), node="dock",
                                            state_period_s=0.5, speed=20.0)
                                  for i in (1, 2)], port=s.mqtt_port) for f in ("fa", "fb")]
        for fleet in fleets:
            fleet.start()
        try:
            yield s
        finally:
            for fleet in fleets:
                fleet.stop()


def _create(c: httpx.Client, facility: str, template: str, **extra: Any) -> str:
    wid = f"{facility}-{template}-{secrets.token_hex(3)}"
    r = c.post("/api/v1/workflows", json={"facility": facility, "template": template,
                                          "workflow_id": wid, **extra})
    assert r.status_code == 201, r.text
    return wid


def _state(c: httpx.Client, wid: str) -> str:
    r = c.get(f"/api/v1/workflows/{wid}")
    assert r.status_code == 200, r.text
    return str(r.json()["state"])


def _ends(c: httpx.Client, wid: str, state: str, timeout: float = 30.0) -> dict[str, Any]:
    """Wait until workflow ``wid`` is in ``state``; its record."""
    def check() -> dict[str, Any] | None:
        r = c.get(f"/api/v1/workflows/{wid}")
        return r.json() if r.status_code == 200 and r.json()["state"] == state else None
    return dict(wait_for(check, timeout, lambda: f"{wid} to be {state} (is "
                                                 f"{_state(c, wid)})"))


@contextlib.contextmanager
def _keyholder(stack: Stack, facility: str = "fa") -> Iterator[None]:
    """A robot with ``key`` in ``facility`` while the block runs: gates open."""
    fleet = FleetRunner(facility, [AgentSpec(f"{facility}-key-{secrets.token_hex(2)}", "robot",
                                             ("key",), node="dock", state_period_s=0.5,
                                             speed=20.0)], port=stack.mqtt_port)
    fleet.start()
    try:
        yield
    finally:
        fleet.stop()


@contextlib.contextmanager
def _edge_events(stack: Stack, facility: str) -> Iterator[list[tuple[str, str | None]]]:
    """``(kind, workflow)`` of every event ``facility``'s edge streams while the block runs,
    read straight from the broker (the hub may be down)."""
    seen: list[tuple[str, str | None]] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)

    def on_connect(c: mqtt.Client, _u: Any, _f: Any, _rc: Any, _p: Any) -> None:
        c.subscribe(edge_topic(facility, "events"), qos=1)

    def on_message(_c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            _seq, _hlc, _f, kind, wid, _data = unpack_edge_event(bytes(msg.payload))
        except (ProtocolError, ValueError, TypeError):
            return
        seen.append((kind, wid))

    client.on_connect, client.on_message = on_connect, on_message
    client.connect("127.0.0.1", stack.mqtt_port)
    client.loop_start()
    try:
        yield seen
    finally:
        client.loop_stop()
        client.disconnect()


def _deps(c: httpx.Client, wid: str) -> dict[str, Any]:
    r = c.get(f"/api/v1/workflows/{wid}/dependencies")
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_sequential_across_facilities_waits_then_completes(stack: Stack) -> None:
    """B's target stays pending while A's source runs, and completes after it; a second
    dependency added through the route (data_flow, from another workflow of A) is released
    with it and carries its value."""
    with stack.client("planner") as c:
        source = _create(c, "fa", "dep_gate")
        target = _create(c, "fb", "dep_move", dependencies=[
            {"source": source, "type": "sequential"}])
        feeder = _create(c, "fa", "dep_move")
        r = c.post(f"/api/v1/workflows/{target}/dependencies",
                   json={"source": feeder, "type": "data_flow",
                         "conditions": {"outputs": {"lot_in": "move.lot"}}})
        assert r.status_code == 200, r.text
        deps = _deps(c, target)
        assert sorted((d["source"], d["facility"], d["type"], d["cross_facility"])
                      for d in deps["dependencies"]) == sorted(
            [(source, "fa", "sequential", True), (feeder, "fa", "data_flow", True)])
        assert _deps(c, source)["dependants"] == [f"fb/{target}"]
        lot = _ends(c, feeder, "completed")["steps"][0]["outputs"]["lot"]
        time.sleep(1.0)
        assert _state(c, target) == "pending"
        with _keyholder(stack):
            _ends(c, source, "completed")
            done = _ends(c, target, "completed")
        assert done["data"]["lot_in"] == lot
        verdicts = {d["source"]: (d["status"], d["verdict"])
                    for d in _deps(c, target)["dependencies"]}
        assert verdicts == {source: ("resolved", "release"), feeder: ("resolved", "release")}


def test_data_flow_carries_a_step_output_across(stack: Stack) -> None:
    """A data_flow dependency created with the target puts A's step output in B's data."""
    with stack.client("planner") as c:
        source = _create(c, "fa", "dep_move")
        target = _create(c, "fb", "dep_move", dependencies=[
            {"source": source, "type": "data_flow",
             "conditions": {"outputs": {"lot_in": "move.lot"}}}])
        done = _ends(c, target, "completed")
        src = _ends(c, source, "completed")
        lot = next(s["outputs"]["lot"] for s in src["steps"] if s["id"] == "move")
        assert done["data"]["lot_in"] == lot


def test_parallel_releases_once_the_source_started(stack: Stack) -> None:
    """A parallel dependency lets B's target run while A's source is still running."""
    with stack.client("planner") as c:
        source = _create(c, "fa", "dep_gate")
        target = _create(c, "fb", "dep_move", dependencies=[
            {"source": source, "type": "parallel"}])
        _ends(c, target, "completed")
        assert _state(c, source).startswith("active")
        c.delete(f"/api/v1/workflows/{source}").raise_for_status()


def test_resource_based_waits_for_the_source_to_free_it(stack: Stack) -> None:
    """B's target waits while A's source holds the bay and runs once it let go."""
    with stack.client("planner") as c:
        source = _create(c, "fa", "dep_hold")

        def holding() -> bool:
            r = c.get(f"/api/v1/workflows/{source}")
            return any(st["id"] == "take" and st["state"] == "done"
                       for st in r.json()["steps"])
        wait_for(holding, 20, "the source to hold the bay")
        target = _create(c, "fb", "dep_move", dependencies=[
            {"source": source, "type": "resource_based",
             "conditions": {"resources": ["bay"]}}])
        time.sleep(1.0)
        assert _state(c, target) == "pending"
        with _keyholder(stack):
            _ends(c, target, "completed")
        assert _state(c, source) == "completed"


def test_conditional_false_skips_the_target(stack: Stack) -> None:
    """A condition false on A's data cancels B's target, naming the condition."""
    with stack.client("planner") as c:
        source = _create(c, "fa", "dep_move", data={"lot": 7})
        target = _create(c, "fb", "dep_move", dependencies=[
            {"source": source, "type": "conditional",
             "conditions": {"when": "data.lot > 10"}}])
        done = _ends(c, target, "cancelled")
        assert "condition data.lot > 10 false" in done["reason"]
        assert all(s["state"] == "pending" for s in done["steps"])


def test_typed_dependency_within_a_facility_is_left_to_its_edge(stack: Stack) -> None:
    """A conditional dependency inside fa is the edge's: listed as local, released by it."""
    with stack.client("planner") as c:
        source = _create(c, "fa", "dep_move", data={"lot": 12})
        target = _create(c, "fa", "dep_move", dependencies=[
            {"source": source, "type": "conditional",
             "conditions": {"when": "data.lot > 10"}}])
        _ends(c, target, "completed")
        [dep] = _deps(c, target)["dependencies"]
        assert (dep["source"], dep["facility"], dep["type"], dep["cross_facility"]) == (
            source, "fa", "conditional", False)
        assert dep["verdict"] is None  # the hub never judged it


def test_depends_on_another_facility_at_creation(stack: Stack) -> None:
    """``depends_on`` naming a workflow of another facility holds the new one until then."""
    with stack.client("planner") as c:
        source = _create(c, "fa", "dep_gate")
        target = _create(c, "fb", "dep_move", depends_on=[source])
        time.sleep(0.5)
        assert _state(c, target) == "pending"
        c.delete(f"/api/v1/workflows/{source}").raise_for_status()
        done = _ends(c, target, "failed")
        assert f"fa/{source}" in done["reason"]


def test_a_cycle_across_facilities_is_refused_naming_it(stack: Stack) -> None:
    """x in fa waits for y in fb; y waiting for x is refused with 409 naming both."""
    with stack.client("planner") as c:
        gate = _create(c, "fa", "dep_gate")
        y = _create(c, "fb", "dep_move", depends_on=[gate])
        x = _create(c, "fa", "dep_move", depends_on=[y])
        r = c.post(f"/api/v1/workflows/{y}/dependencies", json={"source": x})
        assert r.status_code == 409, r.text
        error = r.json()["error"]
        assert error["code"] == "cycle"
        assert f"fa/{x}" in error["message"] and f"fb/{y}" in error["message"]
        assert [d["source"] for d in _deps(c, y)["dependencies"]] == [gate]
        c.delete(f"/api/v1/workflows/{gate}").raise_for_status()


def test_a_started_target_is_refused(stack: Stack) -> None:
    """A cross-facility dependency cannot hold a workflow that already runs (409)."""
    with stack.client("planner") as c:
        source = _create(c, "fa", "dep_gate")
        target = _create(c, "fb", "dep_gate")
        wait_for(lambda: _state(c, target) != "pending", 10, "the target to start")
        r = c.post(f"/api/v1/workflows/{target}/dependencies", json={"source": source})
        assert r.status_code == 409, r.text
        assert r.json()["error"]["code"] == "already_started"
        for wid in (source, target):
            c.delete(f"/api/v1/workflows/{wid}").raise_for_status()


@pytest.mark.parametrize(("body", "field"), [
    ({"type": "conditional"}, "conditions.when"),
    ({"type": "conditional", "conditions": {"when": "data.lot >"}}, "conditional"),
    ({"type": "data_flow", "conditions": {"outputs": {}}}, "outputs"),
    ({"type": "resource_based", "conditions": {"resources": []}}, "resources"),
    ({"type": "sequential", "conditions": {"when": "true"}}, "no conditions"),
    ({"type": "eventual"}, "type"),
])
def test_bad_conditions_are_refused(stack: Stack, body: dict[str, Any], field: str) -> None:
    """A type or conditions that do not fit are a 422 naming the fault; nothing is sent."""
    with stack.client("planner") as c:
        source = _create(c, "fa", "dep_gate")
        target = _create(c, "fb", "dep_gate")
        r = c.post(f"/api/v1/workflows/{target}/dependencies",
                   json={"source": source, **body})
        assert r.status_code == 422, r.text
        assert field in r.json()["error"]["message"]
        assert _deps(c, target)["dependencies"] == []
        for wid in (source, target):
            c.delete(f"/api/v1/workflows/{wid}").raise_for_status()


def test_unknown_source_is_refused(stack: Stack) -> None:
    """A source no facility has is a 422 naming it."""
    with stack.client("planner") as c:
        target = _create(c, "fb", "dep_gate")
        r = c.post(f"/api/v1/workflows/{target}/dependencies", json={"source": "nope-1"})
        assert r.status_code == 422, r.text
        assert "nope-1" in r.json()["error"]["message"]
        c.delete(f"/api/v1/workflows/{target}").raise_for_status()


def test_the_route_needs_a_planner(stack: Stack) -> None:
    """No token: 401; a viewer or supervisor: 403; either way nothing is recorded."""
    with stack.client("planner") as c:
        source = _create(c, "fa", "dep_gate")
        target = _create(c, "fb", "dep_gate")
    body = {"source": source}
    path = f"/api/v1/workflows/{target}/dependencies"
    with stack.client(None) as anon:
        assert anon.post(path, json=body).status_code == 401
        assert anon.get(path).status_code == 401
    for role in ("viewer", "supervisor"):
        with stack.client(role) as c:
            r = c.post(path, json=body)
            assert r.status_code == 403, r.text
    with stack.client("viewer") as c:
        assert _deps(c, target)["dependencies"] == []


def test_release_survives_a_hub_restart(stack: Stack) -> None:
    """The source completes while the hub is down; the restarted hub releases the target."""
    with stack.client("planner") as c:
        source = _create(c, "fa", "dep_gate")
        target = _create(c, "fb", "dep_move", depends_on=[source])
    stack.stop("hub")
    with _edge_events(stack, "fa") as seen, _edge_events(stack, "fb") as held, \
            _keyholder(stack):
        wait_for(lambda: ("workflow_completed", source) in seen, 30,
                 "the source to complete while the hub is down")
        time.sleep(0.5)
        assert ("workflow_started", target) not in held  # fb cannot see fa: it waits
        stack.start("hub")
        with stack.client("viewer") as c:
            wait_for(lambda: c.get("/health").status_code == 200, 30, "the hub to restart")
            _ends(c, source, "completed")
            _ends(c, target, "completed")
            dep = _deps(c, target)["dependencies"][0]
            assert (dep["status"], dep["verdict"]) == ("resolved", "release")
