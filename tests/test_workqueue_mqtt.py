"""Over real MQTT, both brokers: agent work queues (docs/coordination.md, "Batch allocation
and work queues"). The edge runs with ``--max-queued-per-agent 1``; robots are plain MQTT
clients that carry out what they are assigned when the test says."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.wire import Wire
from tests.test_conflict_zone_mqtt import F, Scene, running_scene
from tests.test_deadlock_mqtt import Robot
from topics import AgentConn, HubCommand, agent_topic, edge_topic, encode

_JOB = """name: job
steps:
  - {id: s, kind: robot, estimated_duration_s: 30}
"""


@pytest.fixture(params=["mosquitto", "embedded"])
def scene(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Scene]:
    """The zone test's scene, its edge with one queued place per robot."""
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "job.yaml").write_text(_JOB)
    with running_scene(request, tmp_path, ["--templates", str(templates),
                                           "--max-queued-per-agent", "1"]) as s:
        yield s


def _event(scene: Scene, kind: str, workflow_id: str, agent: str | None = None) -> bool:
    return any(e.kind == kind and e.workflow_id == workflow_id
               and (agent is None or e.data.get("agent") == agent) for e in scene.events)


def _create(hub: Wire, *workflow_ids: str) -> None:
    for wid in workflow_ids:
        hub.publish(edge_topic(F, "cmd"), encode(HubCommand(
            command_id=f"make-{wid}", action="create_workflow",
            args={"template": "job", "workflow_id": wid})), qos=1)


def test_a_busy_robot_queues_one_step_and_starts_it_when_done(scene: Scene) -> None:
    """w2 is queued on the busy r1 and assigned the moment w1 is done; w3 waits its turn."""
    r1 = Robot(scene, "r1")
    hub = Wire(scene.port, "hub", [])
    try:
        scene.announce(r1.wire, "r1", "robot", "dock")
        scene.wait(lambda s: "agent_joined" in s.kinds(), "r1 joined")
        _create(hub, "w1", "w2", "w3")
        scene.wait(lambda s: _event(s, "step_ready", "w3"), "w3 waiting")
        assert _event(scene, "step_assigned", "w1", "r1")
        queued = next(e for e in scene.events if e.kind == "step_queued_on_agent")
        assert (queued.workflow_id, queued.data["agent"], queued.data["step"]) == (
            "w2", "r1", "s")
        assert queued.data["eta"] == pytest.approx(30.0)
        scene.wait(lambda s: r1.has("w1", "s"), "r1 got w1")
        r1.do("w1", "s")
        scene.wait(lambda s: r1.has("w2", "s"), "r1 got w2 once w1 was done")
        scene.wait(lambda s: _event(s, "step_queued_on_agent", "w3", "r1"), "w3 queued")
        done = next(e for e in scene.events if e.kind == "step_done" and e.workflow_id == "w1")
        started = next(e for e in scene.events
                       if e.kind == "step_assigned" and e.workflow_id == "w2")
        assert 0 < started.seq - done.seq <= 3  # in the batch of w1's step_done
        r1.do("w2", "s")
        scene.wait(lambda s: r1.has("w3", "s"), "r1 got w3")
        r1.do("w3", "s")
        scene.wait(lambda s: _event(s, "workflow_completed", "w3"), "w3 completed")
    finally:
        hub.close()
        r1.wire.close()


def test_a_lost_robots_queued_step_goes_to_another_robot(scene: Scene) -> None:
    """r1 goes offline holding w1 with w2 queued: r2 takes w1, and w2 queues behind it."""
    r1, r2 = Robot(scene, "r1"), Robot(scene, "r2")
    hub = Wire(scene.port, "hub", [])
    try:
        scene.announce(r1.wire, "r1", "robot", "dock")
        scene.wait(lambda s: "agent_joined" in s.kinds(), "r1 joined")
        _create(hub, "w1", "w2")
        scene.wait(lambda s: _event(s, "step_queued_on_agent", "w2", "r1"), "w2 queued on r1")
        r1.wire.publish(agent_topic(F, "r1", "conn"), encode(AgentConn(
            agent_id="r1", online=False)), qos=1)
        scene.wait(lambda s: "agent_lost" in s.kinds(), "r1 lost")
        scene.announce(r2.wire, "r2", "robot", "dock")
        scene.wait(lambda s: r2.has("w1", "s", 2), "r2 got w1")
        scene.wait(lambda s: _event(s, "step_queued_on_agent", "w2", "r2"), "w2 queued on r2")
        r2.do("w1", "s")
        scene.wait(lambda s: r2.has("w2", "s"), "r2 got w2")
    finally:
        hub.close()
        r1.wire.close()
        r2.wire.close()
