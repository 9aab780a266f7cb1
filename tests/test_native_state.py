"""An agent's state built without validation is the validated one (agents_sim._native_state)."""

from __future__ import annotations

import random
from typing import Any

import pytest
from pydantic import ValidationError

from agents_sim.native import AgentBehaviour, AgentSpec
from topics import AgentState, Assign, Pause, decode_agent_state, encode


def validated(state: AgentState) -> AgentState:
    """The same state through pydantic's validating constructor."""
    return AgentState(**{name: getattr(state, name) for name in state.model_fields_set})


def same(state: AgentState) -> None:
    """``state`` equals its validated twin, field by field, set fields and bytes."""
    twin = validated(state)
    assert state == twin
    assert state.model_dump() == twin.model_dump()
    assert list(state.__dict__) == list(twin.__dict__)
    assert state.model_fields_set == twin.model_fields_set
    assert encode(state) == encode(twin)
    assert decode_agent_state(encode(state)) == twin


def assign(kind: str = "robot") -> Assign:
    return Assign(command_id="c1", workflow_id="wf-1", step_id="pick", kind=kind,
                  location="shelf_3", params={"duration_s": 30.0})


def test_idle_robot_state_is_the_validated_one() -> None:
    """An idle robot's report equals (and encodes as) the validated state."""
    b = AgentBehaviour(AgentSpec("robot-1", kind="robot", node="charger"))
    b.battery = 87.254
    state = b.state(1_767_225_600.5)
    assert (state.status, state.node, state.battery) == ("idle", "charger", 87.25)
    same(state)


def test_busy_and_paused_states_are_the_validated_ones() -> None:
    """A busy person's and a paused robot's reports equal the validated states."""
    person = AgentBehaviour(AgentSpec("human-1", kind="human", node="dock"))
    person.on_command(assign("human"), 10.0)
    busy = person.state(11.0)
    assert (busy.status, busy.workflow_id, busy.step_id, busy.battery) == (
        "busy", "wf-1", "pick", None)
    same(busy)
    robot = AgentBehaviour(AgentSpec("robot-2", kind="robot", node="charger"))
    robot.on_command(assign(), 10.0)
    robot.on_command(Pause(command_id="p1", workflow_id="wf-1", step_id="pick"), 12.0)
    paused = robot.state(13.0)
    assert paused.status == "paused"
    same(paused)


def test_int_values_are_coerced_as_validation_does() -> None:
    """An int battery or time comes out a float, as the validated constructor makes it."""
    b = AgentBehaviour(AgentSpec("robot-3", kind="robot", node="charger"))
    b.battery = 100  # round(100, 2) stays an int
    state = b.state(5)
    assert type(state.battery) is float and type(state.ts) is float
    same(state)


@pytest.mark.parametrize(("field", "value"), [
    ("node", "bad/node"), ("node", ""), ("node", "x" * 65), ("battery", 120.0),
    ("battery", -1.0), ("battery", float("nan")), ("ts", -1.0), ("ts", float("inf"))])
def test_a_bad_value_is_refused_as_before(field: str, value: Any) -> None:
    """A value validation refuses still raises ValidationError naming the field."""
    b = AgentBehaviour(AgentSpec("robot-4", kind="robot", node="charger"))
    now = 1.0
    if field == "node":
        b.node = value
    elif field == "battery":
        b.battery = value
    else:
        now = value
    with pytest.raises(ValidationError, match=field):
        b.state(now)


def test_random_values_agree_with_validation() -> None:
    """Over 500 seeded random reports (valid and not) both ways agree: equal, or both refuse."""
    rng = random.Random(7)
    ids = ["dock", "shelf_3", "a" * 64, "a" * 65, "bad id", "x/y", "", "ok-1", "é"]
    for _ in range(500):
        b = AgentBehaviour(AgentSpec(rng.choice([*ids[:3], "robot-9"]), kind="robot"))
        b.node = rng.choice([None, *ids])
        b.battery = rng.choice([rng.uniform(-5, 105), 50, 100.0, 0.0])
        now = rng.choice([rng.uniform(-1, 2e9), 0, 1e11, 1e11 + 1])
        try:
            state = b.state(now)
        except ValidationError:
            with pytest.raises(ValidationError):
                AgentState(agent_id=b.spec.agent_id, ts=now, status="idle", node=b.node,
                           battery=round(b.battery, 2), workflow_id=None, step_id=None)
            continue
        same(state)
