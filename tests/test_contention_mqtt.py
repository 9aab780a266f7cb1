"""Over real MQTT, both brokers: a double-booked agent resolved by each strategy with the
outcome it promises (docs/coordination.md, "Strategies"). Workflow ``w1`` has robot r2;
``w2``, whose step only r2 may do, becomes ready. Robots are plain MQTT clients that carry
out what they are assigned and confirm the cancels they are sent; the strategy comes from
``w2``'s template (``conflict_strategies``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.wire import Wire
from tests.test_conflict_zone_mqtt import F, Scene, running_scene
from tests.test_deadlock_mqtt import Robot
from topics import (
    AgentCommand,
    Assign,
    CommandAck,
    EdgeEvent,
    HubCommand,
    agent_topic,
    decode,
    edge_topic,
    encode,
)

STRATEGIES = ("priority", "negotiation", "reallocation", "rescheduling", "operator")

_ANY = """name: any
steps:
  - {id: s, kind: robot, estimated_duration_s: 30}
"""
_SHORT = """name: short
steps:
  - {id: s, kind: robot, estimated_duration_s: 3}
"""
_PINNED_STEP = """steps:
  - {id: s, kind: robot, estimated_duration_s: 30, agents: {allowed: [r2]}}
"""
_PIN = "name: pin_{strategy}\nconflict_strategies: {{agent_double_booked: {strategy}}}\n"


class Yielder(Robot):
    """A robot that acknowledges every command, so none is resent (a cancel: it stopped at
    once), and keeps only the newest attempt of each step it is assigned."""

    def _on_command(self, topic: str, payload: bytes, at: float) -> None:
        cmd = decode(payload, AgentCommand)
        self.acks = getattr(self, "acks", 0) + 1  # not ``_n``: ``do`` counts on another thread
        self.wire.publish(agent_topic(F, self.id, "event"), encode(CommandAck(
            event_id=f"{self.id}-ack{self.acks}", agent_id=self.id, ts=time.time(),
            command_id=getattr(cmd, "command_id", "-"))), qos=1)
        if isinstance(cmd, Assign) and any(
                (a.workflow_id, a.step_id) == (cmd.workflow_id, cmd.step_id)
                and a.attempt >= cmd.attempt for a in self.assigned):
            return  # a copy resent before our ack arrived, or an older attempt
        super()._on_command(topic, payload, at)


def _templates(tmp_path: Path) -> Path:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "any.yaml").write_text(_ANY)
    (templates / "short.yaml").write_text(_SHORT)
    for strategy in STRATEGIES:
        (templates / f"pin_{strategy}.yaml").write_text(
            _PIN.format(strategy=strategy) + _PINNED_STEP)
    # No strategy of its own: the facility's (``--conflict-strategy``).
    (templates / "pin.yaml").write_text("name: pin\n" + _PINNED_STEP)
    return templates


@pytest.fixture(params=["mosquitto", "embedded"])
def scene(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Scene]:
    """The zone test's scene, its edge with a pinned template per strategy."""
    with running_scene(request, tmp_path, ["--templates", str(_templates(tmp_path)),
                                           "--conflict-strategy", "resource=reallocation"]) as s:
        yield s


class Hub:
    """The hub's side (hub commands on ``edge/cmd``), and the robots of the test."""

    def __init__(self, scene: Scene) -> None:
        self.scene = scene
        self.wire = Wire(scene.port, "hub", [])
        self.robots: dict[str, Yielder] = {}
        self._n = 0

    def command(self, action: str, **args: object) -> None:
        self._n += 1
        self.wire.publish(edge_topic(F, "cmd"), encode(HubCommand(
            command_id=f"hub-{self._n}", action=action, args=args)), qos=1)  # type: ignore[arg-type]

    def announce(self, *ids: str) -> dict[str, Yielder]:
        """Robots ``ids`` at the dock, joined."""
        for aid in ids:
            self.robots[aid] = robot = Yielder(self.scene, aid)
            self.scene.announce(robot.wire, aid, "robot", "dock")
        self.scene.wait(lambda s: s.kinds().count("agent_joined") == len(ids),
                        "the robots joined")
        return self.robots

    def close(self) -> None:
        self.wire.close()
        for robot in self.robots.values():
            robot.wire.close()


@pytest.fixture
def hub(scene: Scene) -> Iterator[Hub]:
    """The hub and the robots, closed after the test."""
    h = Hub(scene)
    try:
        yield h
    finally:
        h.close()


def _last(scene: Scene, kind: str, workflow_id: str | None = None) -> EdgeEvent:
    return [e for e in scene.events if e.kind == kind
            and (workflow_id is None or e.workflow_id == workflow_id)][-1]


def _assigned(scene: Scene, workflow_id: str, agent: str) -> bool:
    return any(e.kind == "step_assigned" and e.workflow_id == workflow_id
               and e.data["agent"] == agent for e in scene.events)


def _finish(scene: Scene, robot: Yielder, workflow_id: str, attempt: int = 1) -> None:
    """``robot`` is assigned ``workflow_id.s`` (``attempt``: 2 when it was withdrawn once);
    it does it and the workflow completes."""
    def given(s: Scene) -> bool:
        return any(e.kind == "step_assigned" and e.workflow_id == workflow_id
                   and e.data["agent"] == robot.id and e.data["attempt"] == attempt
                   for e in s.events) and any(
            (a.workflow_id, a.attempt) == (workflow_id, attempt) for a in robot.assigned)

    scene.wait(given, f"{workflow_id}.s attempt {attempt} assigned to {robot.id}")
    robot.do(workflow_id, "s")
    scene.wait(lambda s: any(e.kind == "workflow_completed" and e.workflow_id == workflow_id
                             for e in s.events), f"{workflow_id} completed")


def _double_book(scene: Scene, hub: Hub, strategy: str, *, holder: str = "any",
                 holder_priority: int = 0, claimant_priority: int = 5,
                 claimant: str | None = None) -> EdgeEvent:
    """w1 gets r2, then the pinned w2 comes; the conflict's resolution (or escalation)."""
    hub.command("create_workflow", template=holder, workflow_id="w1",
                priority=holder_priority)
    scene.wait(lambda s: _assigned(s, "w1", "r2"), "w1 has r2")
    hub.command("create_workflow", template=claimant or f"pin_{strategy}", workflow_id="w2",
                priority=claimant_priority)
    scene.wait(lambda s: "conflict_detected" in s.kinds()
               and {"conflict_resolved", "conflict_escalated"} & set(s.kinds()) != set(),
               "the conflict and how it was settled")
    detected = _last(scene, "conflict_detected")
    assert detected.data["rule"] == "agent_double_booked"
    assert detected.data["strategy"] == strategy
    assert detected.data["claims"] == [["w1", "s"], ["w2", "s"]]
    return detected


def _resolution(scene: Scene) -> str:
    scene.wait(lambda s: "conflict_resolved" in s.kinds(), "the conflict resolved")
    return str(_last(scene, "conflict_resolved").data["resolution"])


def test_priority_the_higher_priority_workflow_gets_the_agent_the_other_waits(
        scene: Scene, hub: Hub) -> None:
    """w2 outranks w1: r2 is told to cancel w1, does w2, then w1."""
    robots = hub.announce("r2")
    _double_book(scene, hub, "priority")
    assert _resolution(scene) == "priority: w2.s gets r2; w1.s waits"
    _finish(scene, robots["r2"], "w2")
    _finish(scene, robots["r2"], "w1", attempt=2)
    w2_done = _last(scene, "workflow_completed", "w2")
    w1_again = _last(scene, "step_assigned", "w1")
    assert w1_again.seq > w2_done.seq  # w1 waited for w2


def test_negotiation_the_least_delay_alternative_is_chosen(scene: Scene, hub: Hub) -> None:
    """w1 moving to the free r3 (a few tenths of a second lost) beats w2 waiting ~30 s."""
    robots = hub.announce("r2", "r3")
    _double_book(scene, hub, "negotiation")
    scene.wait(lambda s: "conflict_negotiated" in s.kinds(), "the negotiation")
    proposals = [e.data for e in scene.events if e.kind == "conflict_proposal"]
    chosen = _last(scene, "conflict_negotiated").data
    assert min(p["delay"] for p in proposals) == chosen["delay"]  # type: ignore[type-var]
    assert (chosen["by"], chosen["option"], chosen["value"]) == ("w1/s", "agent", "r3")
    _finish(scene, robots["r2"], "w2")
    _finish(scene, robots["r3"], "w1", attempt=2)


def test_reallocation_the_loser_gets_another_agent(scene: Scene, hub: Hub) -> None:
    """The outranked w1 leaves r2 for r3; w2 gets r2."""
    robots = hub.announce("r2", "r3")
    _double_book(scene, hub, "reallocation")
    assert _resolution(scene) == "reallocation: w1.s goes to r3; w2.s gets r2"
    _finish(scene, robots["r2"], "w2")
    _finish(scene, robots["r3"], "w1", attempt=2)


def test_rescheduling_the_loser_runs_after_the_winners_slot(scene: Scene, hub: Hub) -> None:
    """w1 (priority 5) holds r2 for an estimated 3 s; the pinned w2 (priority 0) is moved to
    after that slot, and waits for it even though w1 finishes early."""
    robots = hub.announce("r2")
    _double_book(scene, hub, "rescheduling", holder="short", holder_priority=5,
                 claimant_priority=0)
    scene.wait(lambda s: "step_rescheduled" in s.kinds(), "w2 rescheduled")
    moved = _last(scene, "step_rescheduled", "w2")
    w1_assigned = _last(scene, "step_assigned", "w1")
    assert moved.data["at"] == pytest.approx((w1_assigned.hlc >> 16) / 1000 + 3, abs=0.01)
    _finish(scene, robots["r2"], "w1")
    _finish(scene, robots["r2"], "w2")
    w2_assigned = _last(scene, "step_assigned", "w2")
    assert (w2_assigned.hlc >> 16) / 1000 >= moved.data["at"]  # type: ignore[operator]


def test_operator_escalated_and_resolved_by_the_operators_choice(scene: Scene, hub: Hub) -> None:
    """Escalated; the hub's ``resolve_conflict`` with ``choice: reallocation`` settles it."""
    robots = hub.announce("r2", "r3")
    detected = _double_book(scene, hub, "operator")
    scene.wait(lambda s: "conflict_escalated" in s.kinds(), "the escalation")
    assert "step_cancelling" not in scene.kinds()  # nobody moved before the operator chose
    hub.command("resolve_conflict", conflict_id=detected.data["id"], choice="reallocation",
                resolution="r3 is free")
    assert _resolution(scene) == (
        "operator chose reallocation: w1.s goes to r3; w2.s gets r2 (r3 is free)")
    _finish(scene, robots["r2"], "w2")
    _finish(scene, robots["r3"], "w1", attempt=2)


def test_the_facility_strategy_applies_where_the_template_names_none(
        scene: Scene, hub: Hub) -> None:
    """``fleetflow edge --conflict-strategy resource=reallocation``; ``pin`` says nothing."""
    robots = hub.announce("r2", "r3")
    _double_book(scene, hub, "reallocation", claimant="pin")
    assert _resolution(scene) == "reallocation: w1.s goes to r3; w2.s gets r2"
    _finish(scene, robots["r2"], "w2")
    _finish(scene, robots["r3"], "w1", attempt=2)
