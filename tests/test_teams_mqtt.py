"""Over real MQTT, both brokers: a ``leader_follower`` joint carry whose leader goes offline
mid-step gets a new leader and completes; a coalition step waiting for its second robot
holds nobody meanwhile — the free robot takes other work (docs/coordination.md, "Coalition
steps" and "``leader_follower``")."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from test_conflict_zone_mqtt import F, Scene, running_scene

from bench.wire import Wire
from topics import (
    AgentCommand,
    AgentConn,
    Assign,
    Follow,
    HubCommand,
    Message,
    StepDone,
    StepProgress,
    SyncArrival,
    SyncRelease,
    agent_topic,
    decode,
    edge_topic,
    encode,
)

TEMPLATES: dict[str, dict[str, Any]] = {
    "lf_carry": {"name": "lf_carry", "coordination": "leader_follower", "steps": [
        {"id": "carry", "kind": "robot", "location": "dock",
         "team": [{"role": "front"}, {"role": "middle"}, {"role": "back"}]}]},
    "pair": {"name": "pair", "steps": [
        {"id": "carry", "kind": "robot", "location": "dock",
         "team": [{"role": "front"}, {"role": "back"}]}]},
    "single": {"name": "single", "steps": [{"id": "s", "kind": "robot"}]},
}


class Robots:
    """Robots as plain MQTT clients, each recording the commands the edge sends it."""

    def __init__(self, scene: Scene) -> None:
        self.scene = scene
        self.wires: dict[str, Wire] = {}
        self.got: list[tuple[str, Message]] = []
        self._n = 0

    def join(self, agent_id: str, node: str) -> None:
        """Connect ``agent_id``, announce it as a robot at ``node``."""
        def record(_topic: str, payload: bytes, _at: float) -> None:
            with self.scene.changed:
                self.got.append((agent_id, decode(payload, AgentCommand)))
                self.scene.changed.notify_all()

        wire = Wire(self.scene.port, agent_id, [(agent_topic(F, agent_id, "cmd"), 1)], record)
        self.wires[agent_id] = wire
        self.scene.announce(wire, agent_id, "robot", node)

    def commands(self, agent_id: str, kind: type[Message]) -> list[Any]:
        """What ``agent_id`` was sent of ``kind``, in order."""
        return [m for a, m in self.got if a == agent_id and isinstance(m, kind)]

    def send(self, agent_id: str, cls: Callable[..., Message], **fields: Any) -> None:
        """``agent_id`` reports on w1's ``carry`` step (its current attempt)."""
        self._n += 1
        assign = self.commands(agent_id, Assign)[-1]
        self.wires[agent_id].publish(agent_topic(F, agent_id, "event"), encode(cls(
            event_id=f"{agent_id}-{self._n}", agent_id=agent_id, ts=time.time(),
            workflow_id=assign.workflow_id, step_id=assign.step_id, attempt=assign.attempt,
            **fields)), qos=1)

    def close(self) -> None:
        for wire in self.wires.values():
            wire.close()


@pytest.fixture(params=["mosquitto", "embedded"])
def teams(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Robots]:
    """The conflict-zone scene (an edge on the demo map) with the team templates."""
    templates = tmp_path / "templates"
    templates.mkdir()
    for name, doc in TEMPLATES.items():
        (templates / f"{name}.json").write_text(json.dumps(doc))
    with running_scene(request, tmp_path, ["--templates", str(templates)]) as scene:
        robots = Robots(scene)
        try:
            yield robots
        finally:
            robots.close()


def _create(scene: Scene, template: str, workflow_id: str) -> None:
    scene.watch.publish(edge_topic(F, "cmd"), encode(HubCommand(
        command_id=f"create-{workflow_id}", action="create_workflow",
        args={"template": template, "workflow_id": workflow_id})), qos=1)


def _data(scene: Scene, kind: str) -> list[dict[str, Any]]:
    return [e.data for e in scene.events if e.kind == kind]


def test_a_leader_lost_mid_step_is_replaced_and_the_step_completes(teams: Robots) -> None:
    """r3 (nearest the dock) leads; it goes offline after the meeting: r4 (next nearest)
    is elected, r2 and r4 are told, and the carry completes with them."""
    robots, scene = teams, teams.scene
    for aid, node in (("r2", "a2"), ("r3", "dock"), ("r4", "a1")):
        robots.join(aid, node)
    scene.wait(lambda s: s.kinds().count("agent_joined") == 3, "three robots joined")
    _create(scene, "lf_carry", "w1")
    scene.wait(lambda s: "leader_elected" in s.kinds(), "a leader elected")
    assert _data(scene, "leader_elected")[0]["leader"] == "r3"
    scene.wait(lambda s: all(robots.commands(a, Follow) for a in ("r2", "r3", "r4")),
                "every member told who leads")
    for aid in ("r2", "r3", "r4"):
        robots.send(aid, SyncArrival)
    scene.wait(lambda s: all(robots.commands(a, SyncRelease) for a in ("r2", "r3", "r4")),
                "the team met and was released")
    robots.send("r3", StepProgress, progress=0.5)
    scene.wait(lambda s: any(f.progress == 0.5 for f in robots.commands("r2", Follow)),
                "the leader's pace forwarded")
    robots.wires["r3"].publish(agent_topic(F, "r3", "conn"), encode(AgentConn(
        agent_id="r3", online=False)), qos=1)
    scene.wait(lambda s: len(_data(s, "leader_elected")) == 2, "a new leader elected")
    elected = _data(scene, "leader_elected")[1]
    assert (elected["leader"], elected["previous"]) == ("r4", "r3")
    scene.wait(lambda s: all(robots.commands(a, Follow)[-1].leader == "r4"
                              for a in ("r2", "r4")), "the followers told")
    assert "step_failed" not in scene.kinds()
    robots.send("r2", StepDone)
    robots.send("r4", StepDone)
    scene.wait(lambda s: "workflow_completed" in s.kinds(), "the carry completed")
    assert _data(scene, "member_dropped")[0]["agent"] == "r3"


def test_a_coalition_step_never_holds_part_of_its_team_while_waiting(teams: Robots) -> None:
    """With one robot the pair waits and holds nothing: that robot takes a single step;
    once a second robot joins and the first is free, the pair is formed."""
    robots, scene = teams, teams.scene
    robots.join("r2", "dock")
    scene.wait(lambda s: "agent_joined" in s.kinds(), "r2 joined")
    _create(scene, "pair", "w1")
    scene.wait(lambda s: any(e.kind == "step_ready" and e.workflow_id == "w1"
                              for e in s.events), "the pair waits")
    _create(scene, "single", "w2")
    scene.wait(lambda s: "step_assigned" in s.kinds(), "the free robot took other work")
    assert _data(scene, "step_assigned")[0]["agent"] == "r2"
    assert "team_assigned" not in scene.kinds()
    scene.wait(lambda s: bool(robots.commands("r2", Assign)), "r2 got its assign")
    assert [a.workflow_id for a in robots.commands("r2", Assign)] == ["w2"]
    robots.join("r3", "a1")
    scene.wait(lambda s: s.kinds().count("agent_joined") == 2, "r3 joined")
    time.sleep(0.3)
    assert "team_assigned" not in scene.kinds()  # r2 still busy: still nobody held
    robots.send("r2", StepDone)
    scene.wait(lambda s: "team_assigned" in s.kinds(), "the pair formed")
    assert _data(scene, "team_assigned")[0]["team"] == {"front": "r2", "back": "r3"}
