"""A step's agent policy: allowed, forbidden and preferred agents (docs/coordination.md)."""

from __future__ import annotations

from typing import Any

import pytest

from edge_runtime.core import Core, CoreConfig, CoreError
from edge_runtime.templates import load_template
from edge_runtime.testing import ScriptedFleet
from topics import AgentConn


def _policy_fleet(**agents: Any) -> ScriptedFleet:
    t = load_template({"name": "p", "steps": [{"id": "s", "kind": "robot", "agents": agents}]})
    fl = ScriptedFleet(Core("f1", {"p": t}, config=CoreConfig(
        cost=lambda agent, step, wf: {"r1": 1.0, "r2": 5.0, "r3": 9.0}[agent.id])))
    for r in ("r1", "r2", "r3"):
        fl.agent(r, "robot", [])
    return fl


@pytest.mark.parametrize(("policy", "expected"), [
    ({}, "r1"),                                   # the cheapest
    ({"forbidden": ["r1"]}, "r2"),                # never a forbidden one
    ({"allowed": ["r2", "r3"]}, "r2"),            # only allowed ones
    ({"preferred": ["r3"]}, "r3"),                # a free preferred one, whatever the cost
    ({"allowed": ["r3"], "preferred": ["r3"]}, "r3"),
])
def test_a_steps_agent_policy_chooses_among_able_agents(policy: dict[str, Any],
                                                        expected: str) -> None:
    """Allowed, forbidden and preferred agents shape who gets a step."""
    fl = _policy_fleet(**policy)
    fl.create("p", "w1")
    view = fl.workflow("w1")
    assert view is not None and view.steps["s"].agent == expected


def test_a_step_whose_only_allowed_agent_is_busy_waits() -> None:
    """No allowed agent free: the step waits rather than going to another."""
    fl = _policy_fleet(allowed=["r3"])
    fl.feed(AgentConn(agent_id="r3", online=False))
    fl.create("p", "w1")
    view = fl.workflow("w1")
    assert view is not None and view.steps["s"].agent is None


def test_an_inconsistent_agent_policy_is_refused() -> None:
    """A template naming an agent both preferred and forbidden is refused, with the name."""
    with pytest.raises(CoreError, match="r1 both preferred and forbidden"):
        load_template({"name": "p", "steps": [{"id": "s", "kind": "robot", "agents": {
            "preferred": ["r1"], "forbidden": ["r1"]}}]})


def test_a_step_nobody_can_take_does_not_hold_up_steps_behind_it() -> None:
    """A robot step waiting with no robot online does not keep a later human step from
    the idle person (no head-of-line blocking across kinds)."""
    robot = load_template({"name": "robot_job", "steps": [{"id": "r", "kind": "robot"}]})
    human = load_template({"name": "human_job", "steps": [{"id": "h", "kind": "human"}]})
    fl = ScriptedFleet(Core("f1", {"robot_job": robot, "human_job": human}))
    fl.agent("p1", "human", [])
    fl.create("robot_job", "w1")
    fl.create("human_job", "w2")
    w1, w2 = fl.workflow("w1"), fl.workflow("w2")
    assert w1 is not None and w1.steps["r"].state == "allocating"
    assert w2 is not None and w2.steps["h"].agent == "p1"
