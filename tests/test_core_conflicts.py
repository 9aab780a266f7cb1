"""Conflicts as entities: safety rules detect them, stop the robots concerned in the same
batch, resume them when the condition clears, and escalate what needs an operator."""

from __future__ import annotations

from typing import Any

import pytest

from edge_runtime.core import Append, Core, CoreConfig, CoreError, Effect, Publish
from edge_runtime.templates import load_template
from edge_runtime.testing import ScriptedFleet
from topics import AgentConn, AgentState, Pause, Resume

ONE = load_template({"name": "one", "steps": [{"id": "s", "kind": "robot"}]})
ZONES = {"cold1": ("cold_room",), "cold2": ("cold_room",)}


def _fleet() -> ScriptedFleet:
    fl = ScriptedFleet(Core("f1", {"one": ONE}, config=CoreConfig(exclusive_zones=ZONES)))
    fl.agent("r1", "robot", [])
    fl.agent("r2", "robot", [])
    fl.agent("h1", "human", [])
    return fl


def _at(fl: ScriptedFleet, agent: str, node: str, **state: Any) -> list[Effect]:
    return fl.feed(AgentState(agent_id=agent, ts=fl.now, node=node, **state))


def _kinds(fx: list[Effect]) -> list[str]:
    return [e.event.kind for e in fx if isinstance(e, Append)]


def _sent(fx: list[Effect], kind: type) -> list[str]:
    return [e.topic.split("/")[4] for e in fx
            if isinstance(e, Publish) and isinstance(e.message, kind)]


def test_a_person_entering_a_robots_exclusive_zone_pauses_it_in_the_same_batch() -> None:
    """The person's state that brings them into the zone yields the conflict and the robot's
    pause together; the person leaving resolves it and resumes the robot."""
    fl = _fleet()
    _at(fl, "r1", "cold1")
    _at(fl, "h1", "dock")
    fx = _at(fl, "h1", "cold2")
    assert _kinds(fx)[-2:] == ["conflict_detected", "agent_stopped"]
    assert _sent(fx, Pause) == ["r1"]
    [conflict] = fl.core.conflicts().values()
    assert (conflict.type, conflict.rule, conflict.resource, conflict.status) == (
        "safety", "person_in_robot_zone", "cold_room", "open")
    assert conflict.participants == ("h1", "r1")
    fx = _at(fl, "h1", "door")
    assert "conflict_resolved" in _kinds(fx) and _sent(fx, Resume) == ["r1"]
    assert fl.core.conflicts()[conflict.id].status == "resolved"
    assert fl.core.conflicts(open_only=True) == {}


def test_a_robot_entering_an_occupied_zone_is_paused_too() -> None:
    """A second robot entering a zone with a person in it joins the conflict and is paused."""
    fl = _fleet()
    _at(fl, "r1", "cold1")
    _at(fl, "h1", "cold2")
    fx = _at(fl, "r2", "cold1")
    assert _kinds(fx)[-2:] == ["conflict_joined", "agent_stopped"] and _sent(fx, Pause) == ["r2"]
    fx = _at(fl, "h1", "dock")
    assert sorted(_sent(fx, Resume)) == ["r1", "r2"]


def test_a_stopped_robot_gets_no_work() -> None:
    """A robot stopped by a safety conflict is not allocated until it is resolved."""
    fl = _fleet()
    fl.feed(AgentConn(agent_id="r2", online=False))
    _at(fl, "r1", "cold1")
    _at(fl, "h1", "cold1")
    fl.create("one", "w1")
    view = fl.workflow("w1")
    assert view is not None and view.steps["s"].agent is None
    _at(fl, "h1", "dock")
    view = fl.workflow("w1")
    assert view is not None and view.steps["s"].agent == "r1"


def test_e_stop_is_a_conflict_until_released_and_cannot_be_resolved_by_hand() -> None:
    """An e-stop opens a safety conflict; an operator cannot resolve it; releasing does."""
    fl = _fleet()
    _at(fl, "r1", "dock", e_stop=True)
    [conflict] = fl.core.conflicts(open_only=True).values()
    assert conflict.rule == "e_stop"
    with pytest.raises(CoreError, match="only when its condition clears"):
        fl.command("resolve_conflict", conflict_id=conflict.id)
    _at(fl, "r1", "dock", e_stop=False)
    assert fl.core.conflicts()[conflict.id].status == "resolved"


def test_a_refused_stop_is_escalated_and_resolved_by_an_operator() -> None:
    """A robot refusing a cancel raises an escalated conflict an operator resolves."""
    fl = _fleet()
    fl.create("one", "w1")
    fl.start_step("w1", "s")
    fl.command("cancel_workflow", workflow_id="w1")
    fl.confirm("w1", "s", outcome="refused", reason="carrying a load")
    [conflict] = fl.core.conflicts(open_only=True).values()
    assert (conflict.rule, conflict.status, conflict.workflow_id) == (
        "command_refused", "escalated", "w1")
    fl.command("resolve_conflict", conflict_id=conflict.id, resolution="load set down")
    resolved = fl.core.conflicts()[conflict.id]
    assert resolved.status == "resolved" and resolved.resolution == "operator: load set down"
    with pytest.raises(CoreError, match="already resolved"):
        fl.command("resolve_conflict", conflict_id=conflict.id)


def test_conflicts_replay_and_restore_byte_for_byte() -> None:
    """A history with conflicts replays, and restores from a snapshot, to the same state."""
    fl = _fleet()
    _at(fl, "r1", "cold1")
    _at(fl, "h1", "cold2")
    _at(fl, "r2", "dock", e_stop=True)
    _at(fl, "h1", "dock")
    config = CoreConfig(exclusive_zones=ZONES)
    replayed = Core("f1", {"one": ONE}, config=config)
    for e in fl.effects:
        if isinstance(e, Append):
            replayed.apply(e.event)
    assert replayed.snapshot() == fl.core.snapshot()
    restored = Core.restore(fl.core.snapshot(), "f1", {"one": ONE}, config)
    assert restored.snapshot() == fl.core.snapshot()
    assert restored.conflicts() == fl.core.conflicts()

