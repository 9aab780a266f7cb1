"""Over real MQTT, both brokers: a robot whose battery is below what a step needs (the travel
on the demo map and the action) is not given it; the step waits with a battery_below_need
conflict, and the robot gets it — the conflict resolved — once it reports a charged battery
(docs/coordination.md, "Battery below need")."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.wire import Wire
from tests.test_conflict_zone_mqtt import F, Scene, running_scene
from topics import AgentState, Assign, HubCommand, agent_topic, edge_topic, encode

# From the dock to the pack station is 25 m on maps/demo.yaml: 25 x 1 + 10 + 20 = 55 %.
_FETCH = """name: fetch
steps:
  - {id: carry, kind: robot, location: pack, action: pick}
"""


@pytest.fixture(params=["mosquitto", "embedded"])
def scene(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Scene]:
    """The zone test's scene, its edge with battery figures and a one-step template."""
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "fetch.yaml").write_text(_FETCH)
    with running_scene(request, tmp_path, [
            "--templates", str(templates), "--battery-per-meter", "1",
            "--battery-per-action", "10", "--battery-reserve", "20"]) as s:
        yield s


def _report(scene: Scene, battery: float) -> None:
    scene.robot.publish(agent_topic(F, "r1", "state"), encode(AgentState(
        agent_id="r1", ts=time.time(), node="dock", battery=battery)), qos=0)


def test_a_robot_below_the_need_waits_for_a_charge_before_it_gets_the_step(
        scene: Scene) -> None:
    """No Assign at 40 %; a battery_below_need conflict; at 90 % the Assign and the
    resolution."""
    scene.announce(scene.robot, "r1", "robot", "dock")
    _report(scene, 40.0)
    scene.wait(lambda s: any(e.kind == "agent_updated" and e.data["battery"] == 40.0
                             for e in s.events), "the battery recorded")
    hub = Wire(scene.port, "hub", [])
    try:
        hub.publish(edge_topic(F, "cmd"), encode(HubCommand(
            command_id="make-w1", action="create_workflow",
            args={"template": "fetch", "workflow_id": "w1"})), qos=1)
        scene.wait(lambda s: "conflict_detected" in s.kinds(), "the conflict raised")
    finally:
        hub.close()
    detected = next(e for e in scene.events if e.kind == "conflict_detected")
    assert (detected.data["type"], detected.data["rule"], detected.data["participants"]) == (
        "safety", "battery_below_need", ["r1"])
    assert detected.data["strategy"] == "reallocation"
    assert not any(isinstance(c, Assign) for c in scene.commands)
    _report(scene, 90.0)
    scene.wait(lambda s: any(isinstance(c, Assign) for c in s.commands), "the step assigned")
    scene.wait(lambda s: "conflict_resolved" in s.kinds(), "the conflict resolved")
    resolved = next(e for e in scene.events if e.kind == "conflict_resolved")
    assigned = next(e for e in scene.events if e.kind == "step_assigned")
    assert resolved.data["id"] == detected.data["id"]
    assert resolved.data["resolution"] == "the step went to r1"
    assert assigned.seq < resolved.seq and assigned.data["agent"] == "r1"
