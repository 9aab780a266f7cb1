"""Over real MQTT, both brokers, a real ``fleetflow edge``: the scoped safety stop. A
``facility_stop`` of the demo map's cold room pauses the robots in it in the command's own
batch, holds allocation there (a robot driving in is paused too; nothing is assigned to the
robots in scope) until ``facility_release`` resumes them (docs/coordination.md)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_conflict_zone_mqtt import Scene, running_scene
from tests.test_deadlock_mqtt import Robot
from topics import AgentCommand, Pause, Resume, decode

_HAUL = "name: haul\nsteps:\n  - {id: carry, kind: robot}\n"


class ZoneRobot(Robot):
    """A robot that also records the pauses and resumes sent to it."""

    def __init__(self, scene: Scene, agent_id: str) -> None:
        self.told: list[str] = []
        super().__init__(scene, agent_id)

    def _on_command(self, topic: str, payload: bytes, at: float) -> None:
        cmd = decode(payload, AgentCommand)
        if isinstance(cmd, Pause | Resume):
            with self.scene.changed:
                self.told.append(cmd.type)
                self.scene.changed.notify_all()
        super()._on_command(topic, payload, at)


@pytest.fixture(params=["mosquitto", "embedded"])
def scene(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Scene]:
    """The zone test's scene with a one-step robot template."""
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "haul.yaml").write_text(_HAUL)
    with running_scene(request, tmp_path, ["--templates", str(templates)]) as s:
        yield s


def _reply(scene: Scene, command_id: str) -> dict[str, object]:
    scene.wait(lambda s: any(e.kind == "command_reply" and e.data["cmd"] == command_id
                             for e in s.events), f"the reply to {command_id}")
    return next(e.data["result"] for e in scene.events
                if e.kind == "command_reply" and e.data["cmd"] == command_id)


def test_a_zone_stop_pauses_and_holds_the_zone_until_release(scene: Scene) -> None:
    """Pauses in the stop's batch, no work in scope, a robot driving in paused, all resumed."""
    r2, r3, r4 = (ZoneRobot(scene, r) for r in ("r2", "r3", "r4"))
    for robot, node in ((r2, "cold1"), (r3, "cold2"), (r4, "door")):
        scene.announce(robot.wire, robot.id, "robot", node)
    scene.wait(lambda s: s.kinds().count("agent_updated") >= 3, "the robots are placed")

    scene.hub_command("stop-1", "facility_stop", zone="cold_room", reason="spill")
    result = _reply(scene, "stop-1")
    assert result["stopped"] == ["r2", "r3"]
    detected = next(e for e in scene.events if e.kind == "conflict_detected")
    batch = [e for e in scene.events if detected.seq <= e.seq <= detected.seq + 3]
    assert [e.kind for e in batch] == ["conflict_detected", "agent_stopped", "agent_stopped",
                                       "command_reply"]  # one input, one batch
    assert detected.data["rule"] == "facility_stop" and detected.data["resource"] == "cold_room"
    scene.wait(lambda s: r2.told == ["pause"] and r3.told == ["pause"], "both paused")
    assert r4.told == []

    # Allocation is held in scope: w1 goes to r4 (outside), w2 waits for the zone's robots.
    scene.hub_command("make-w1", "create_workflow", template="haul", workflow_id="w1")
    scene.wait(lambda s: r4.has("w1", "carry"), "w1 assigned to the robot outside")
    scene.hub_command("make-w2", "create_workflow", template="haul", workflow_id="w2")
    _reply(scene, "make-w2")
    scene.move(r4.wire, "r4", "cold1")  # r4 drives into the stopped zone: paused too
    scene.wait(lambda s: r4.told == ["pause"], "the robot entering the zone paused")
    scene.wait(lambda s: "conflict_joined" in s.kinds(), "r4 joined the stop")
    joined = [e for e in scene.events if e.kind == "conflict_joined"]
    assert [e.data["agent"] for e in joined] == ["r4"]
    _reply(scene, "make-w2")
    assert not any(r.has("w2", "carry") for r in (r2, r3, r4))

    scene.hub_command("release-1", "facility_release", zone="cold_room")
    assert _reply(scene, "release-1")["resumed"] == ["r2", "r3", "r4"]
    scene.wait(lambda s: all(r.told == ["pause", "resume"] for r in (r2, r3, r4)),
               "every robot resumed")
    scene.wait(lambda s: r2.has("w2", "carry") or r3.has("w2", "carry"),
               "w2 assigned once released")
    resolved = next(e for e in scene.events if e.kind == "conflict_resolved")
    assert resolved.data["id"] == detected.data["id"]
