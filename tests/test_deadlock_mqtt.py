"""Over real MQTT, both brokers: two workflows that would deadlock on two zones both finish
(docs/coordination.md, "Deadlock prevention"). Workflow ``wa`` holds zone z1 from its
``enter`` step until its ``cross`` step (which needs z2) ends; ``wb`` holds z2 and then
needs z1. With the global acquisition order, ``wb``'s span claims z1 together with z2 at
its start, so it waits for ``wa`` instead of taking z2 — no cycle can form. With the order
off (``--resource-order off``) the cycle forms, the wait-for graph finds it, and the victim
``wb`` releases z2 and runs its span again after ``wa``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pytest

from bench.wire import Wire
from fleetflow.__main__ import main
from tests.test_conflict_zone_mqtt import F, Scene, running_scene
from topics import (
    AgentCommand,
    Assign,
    HubCommand,
    StepAccepted,
    StepDone,
    StepStarted,
    agent_topic,
    decode,
    edge_topic,
    encode,
)

_TEMPLATES = {
    "a": """name: a
steps:
  - {id: enter, kind: robot, resources: [z1], hold_until: {z1: cross}}
  - {id: inside, kind: robot, after: [enter]}
  - {id: cross, kind: robot, resources: [z2], after: [inside]}
""",
    "b": """name: b
steps:
  - {id: enter, kind: robot, resources: [z2], hold_until: {z2: cross}}
  - {id: inside, kind: robot, after: [enter]}
  - {id: cross, kind: robot, resources: [z1], after: [inside]}
""",
}


class Robot:
    """A robot as a plain MQTT client: it keeps the steps it is assigned and reports one
    done (accepted, started, done) when the test says."""

    def __init__(self, scene: Scene, agent_id: str) -> None:
        self.id = agent_id
        self.scene = scene
        self.assigned: list[Assign] = []
        self.wire = Wire(scene.port, agent_id, [(agent_topic(F, agent_id, "cmd"), 1)],
                         self._on_command)
        self._n = 0

    def _on_command(self, _topic: str, payload: bytes, _at: float) -> None:
        cmd = decode(payload, AgentCommand)
        if isinstance(cmd, Assign):
            with self.scene.changed:
                self.assigned.append(cmd)
                self.scene.changed.notify_all()

    def has(self, workflow_id: str, step_id: str, attempt: int = 1) -> bool:
        return any((a.workflow_id, a.step_id, a.attempt) == (workflow_id, step_id, attempt)
                   for a in self.assigned)

    def do(self, workflow_id: str, step_id: str) -> None:
        """Carry out the (latest) assignment of ``workflow_id.step_id``."""
        a = next(a for a in reversed(self.assigned)
                 if (a.workflow_id, a.step_id) == (workflow_id, step_id))
        topic = agent_topic(F, self.id, "event")
        for kind in (StepAccepted, StepStarted, StepDone):
            self._n += 1
            common: dict[str, Any] = {
                "event_id": f"{self.id}-{self._n}", "agent_id": self.id, "ts": time.time(),
                "workflow_id": a.workflow_id, "step_id": a.step_id, "attempt": a.attempt}
            msg = StepDone(outputs={}, **common) if kind is StepDone else kind(**common)
            self.wire.publish(topic, encode(msg), qos=1)


class Site:
    """The scene, two robots and a hub client: creates workflows, has robots do steps."""

    def __init__(self, scene: Scene) -> None:
        self.scene = scene
        self.robots = [Robot(scene, "r2"), Robot(scene, "r3")]
        self.hub = Wire(scene.port, "hub", [])
        for robot in self.robots:
            scene.announce(robot.wire, robot.id, "robot", "dock")
        scene.wait(lambda s: s.kinds().count("agent_joined") == 2, "both robots joined")

    def create(self, workflow_id: str, template: str) -> None:
        self.hub.publish(edge_topic(F, "cmd"), encode(HubCommand(
            command_id=f"make-{workflow_id}", action="create_workflow",
            args={"template": template, "workflow_id": workflow_id})), qos=1)

    def do(self, workflow_id: str, step_id: str, attempt: int = 1) -> None:
        """Wait for the step's assignment, carry it out, and wait for its ``step_done``."""
        robots = self.robots
        self.scene.wait(lambda s: any(r.has(workflow_id, step_id, attempt) for r in robots),
                        f"{workflow_id}.{step_id} assigned")
        next(r for r in robots if r.has(workflow_id, step_id, attempt)).do(
            workflow_id, step_id)
        self.scene.wait(lambda s: _done(s, workflow_id, step_id, attempt),
                        f"{workflow_id}.{step_id} done")

    def close(self) -> None:
        self.hub.close()
        for robot in self.robots:
            robot.wire.close()


@contextmanager
def _site(request: pytest.FixtureRequest, tmp_path: Path, *edge_args: str) -> Iterator[Site]:
    """The zone test's scene with the two-zone templates (and ``edge_args``), and a site."""
    templates = tmp_path / "templates"
    templates.mkdir()
    for name, text in _TEMPLATES.items():
        (templates / f"{name}.yaml").write_text(text)
    with running_scene(request, tmp_path, ["--templates", str(templates), *edge_args]) as s, \
            closing(Site(s)) as site:
        yield site


@pytest.fixture(params=["mosquitto", "embedded"])
def ordered(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    """An edge with the default global order."""
    with _site(request, tmp_path) as site:
        yield site


@pytest.fixture(params=["mosquitto", "embedded"])
def unordered(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    """An edge with the ordering off: only the wait-for graph stands between them."""
    with _site(request, tmp_path, "--resource-order", "off") as site:
        yield site


def _event(scene: Scene, kind: str, workflow_id: str, step: str | None = None) -> bool:
    return any(e.kind == kind and e.workflow_id == workflow_id
               and (step is None or e.data.get("step") == step) for e in scene.events)


def _done(scene: Scene, workflow_id: str, step_id: str, times: int) -> bool:
    return sum(1 for e in scene.events if e.kind == "step_done" and e.workflow_id ==
               workflow_id and e.data.get("step") == step_id) >= times


def test_two_workflows_that_would_deadlock_on_two_zones_both_finish(ordered: Site) -> None:
    """wb waits for z1 at its start while wa holds it; then both finish, no deadlock."""
    scene = ordered.scene
    ordered.create("wa", "a")
    ordered.create("wb", "b")
    scene.wait(lambda s: _event(s, "step_ready", "wb", "enter"), "wb waits to enter")
    for sid in ("enter", "inside", "cross"):
        assert not any(r.has("wb", "enter") for r in ordered.robots)  # z1 is wa's
        ordered.do("wa", sid)
    scene.wait(lambda s: _event(s, "workflow_completed", "wa"), "wa finished")
    for sid in ("enter", "inside", "cross"):
        ordered.do("wb", sid)
    scene.wait(lambda s: _event(s, "workflow_completed", "wb"), "wb finished")
    assert "deadlock_detected" not in scene.kinds()
    claimed = next(e for e in scene.events if e.kind == "step_assigned"
                   and e.workflow_id == "wb" and e.data["step"] == "enter")
    assert claimed.data["holds"] == {"z2": "cross", "z1": "cross"}


def test_without_the_order_the_deadlock_is_broken_and_both_finish(unordered: Site) -> None:
    """Both inside their zone, both wanting the other's: wb (the younger) is the victim."""
    scene = unordered.scene
    unordered.create("wa", "a")
    unordered.create("wb", "b")
    for wid, sid in [("wa", "enter"), ("wb", "enter"), ("wa", "inside"), ("wb", "inside")]:
        unordered.do(wid, sid)
    scene.wait(lambda s: "resources_released" in s.kinds(), "the victim released")
    found = next(e for e in scene.events if e.kind == "deadlock_detected")
    assert found.data["victim"] == "wb" and found.data["cycle"] == ["wa", "wb"]
    unordered.do("wa", "cross")
    scene.wait(lambda s: _event(s, "workflow_completed", "wa"), "wa finished")
    for sid in ("enter", "inside"):
        unordered.do("wb", sid, attempt=2)
    unordered.do("wb", "cross")
    scene.wait(lambda s: _event(s, "workflow_completed", "wb"), "wb finished")
    detected = next(e for e in scene.events if e.kind == "conflict_detected"
                    and e.data["rule"] == "deadlock")
    resolved = next(e for e in scene.events if e.kind == "conflict_resolved"
                    and e.data["id"] == detected.data["id"])
    assert (detected.data["type"], detected.data["strategy"]) == ("resource", "victim")
    assert resolved.seq == detected.seq + 2  # the release between: one batch



@pytest.mark.parametrize("flag", ["z1,z1", "z1,bad name", "z1,,z2"])
def test_a_bad_resource_order_is_refused(flag: str, capsys: pytest.CaptureFixture[str]
                                         ) -> None:
    """A repeated or malformed resource name is a command-line error before the edge
    starts, not a silent order."""
    assert main(["edge", "--facility", F, "--resource-order", flag]) == 2
    assert "--resource-order" in capsys.readouterr().err
