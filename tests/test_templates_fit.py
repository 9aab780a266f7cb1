"""The shipped templates fit the shipped map and the demo fleet, and run to completion on it;
a step no agent can take says why it waits (docs/workflows.md, "Why a workflow waits")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agents_sim.native import mixed_fleet
from edge_runtime.core import Core, CoreConfig, TimerFired
from edge_runtime.facility import load_map, map_cost, zones_by_node
from edge_runtime.fit import capability_problems, distinct, location_problems, needs
from edge_runtime.templates import load_template, load_templates
from edge_runtime.testing import ScriptedFleet
from topics import AgentConn, Assign

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = load_templates(ROOT / "templates")
DEMO_MAP = load_map(ROOT / "maps" / "demo.yaml")
SHIPPED = sorted(t.name for t in distinct(TEMPLATES))


def _demo_fleet() -> list[tuple[str | None, frozenset[str]]]:
    return [(s.kind, frozenset(s.capabilities)) for s in mixed_fleet(4)]


def test_shipped_templates_are_the_three_the_docs_name() -> None:
    """The demo ships pick_and_deliver, ai_inspection and robot_person_handover."""
    assert SHIPPED == ["ai_inspection", "pick_and_deliver", "robot_person_handover"]


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_location_is_on_the_demo_map(name: str) -> None:
    """Every location a shipped template uses (compensations too) is a node of maps/demo.yaml."""
    assert location_problems(TEMPLATES[name], DEMO_MAP.nodes, "the demo map") == []


@pytest.mark.parametrize("name", SHIPPED)
def test_the_demo_fleet_has_every_capability_asked_for(name: str) -> None:
    """mixed_fleet's default agents (docs/agents-native.md) can take every step."""
    assert capability_problems(TEMPLATES[name], _demo_fleet()) == []


def test_mixed_fleet_defaults_are_what_the_templates_ask_for() -> None:
    """mixed_fleet()'s capabilities per kind are exactly those the shipped templates ask for
    (what `fleetflow up` gives its fleet), nothing that no template uses."""
    asked: dict[str, set[str]] = {"robot": set(), "human": set(), "ai": set()}
    for t in distinct(TEMPLATES):
        for n in needs(t):
            asked[n.kind] |= n.capabilities
    assert {s.kind: set(s.capabilities) for s in mixed_fleet(4)} == asked


def test_a_step_needing_what_nobody_has_is_a_problem() -> None:
    """A capability missing from the fleet and a location off the map are both reported."""
    t = load_template({"name": "t", "steps": [
        {"id": "lift", "kind": "robot", "capabilities": ["lift"], "location": "bay_9",
         "compensation": {"kind": "human", "capabilities": ["repair"], "location": "dock"}}]})
    assert [n.step for n in needs(t)] == ["lift", "lift (compensation)"]
    assert capability_problems(t, _demo_fleet()) == [
        "step lift: no robot agent has capabilities lift",
        "step lift (compensation): no human agent has capabilities repair"]
    assert location_problems(t, DEMO_MAP.nodes, "map demo_floor") == [
        "step lift: location bay_9 is not on map demo_floor"]


def _outputs(a: Assign) -> dict[str, Any]:
    verdict = {"defect": False, "score": 0.9} if a.kind == "ai" else {}
    return {n: f"{n}-{a.workflow_id}" for n in a.outputs} | verdict


def _run_to_end(fleet: ScriptedFleet, workflow_id: str) -> str:
    """Answer commands and fire due timers until the workflow ends; its last state."""
    for _ in range(100):
        fleet.run()
        view = fleet.workflow(workflow_id)
        assert view is not None
        if view.state in ("completed", "failed", "cancelled"):
            return view.state
        timers = fleet.core.armed_timers()
        if not timers:
            return view.state
        timer_id, at = min(timers.items(), key=lambda kv: kv[1])
        fleet.now = max(fleet.now, at)
        fleet.feed(TimerFired(timer_id))
    return "still running"


@pytest.mark.parametrize("name", SHIPPED)
def test_each_shipped_template_completes_with_the_demo_fleet(name: str) -> None:
    """On a core with the demo map's costs, the demo fleet carries each template out."""
    core = Core("demo", TEMPLATES, config=CoreConfig(cost=map_cost(DEMO_MAP),
                                                     exclusive_zones=zones_by_node(DEMO_MAP)))
    fleet = ScriptedFleet(core, outputs=_outputs)
    for spec in mixed_fleet(8):
        fleet.feed(AgentConn(agent_id=spec.agent_id, online=True, kind=spec.kind,
                             capabilities=list(spec.capabilities), liveness_s=3600))
    fleet.create(name, "wf1")
    assert _run_to_end(fleet, "wf1") == "completed"


def test_a_workflow_waiting_for_a_missing_capability_says_so() -> None:
    """The view of a ready step no agent can take names the missing capability; it clears
    once an able agent joins and takes the step."""
    core = Core("demo", TEMPLATES)
    fleet = ScriptedFleet(core, outputs=_outputs)
    fleet.agent("r1", "robot", ["transport"])
    fleet.create("robot_person_handover", "wf1")
    view = core.workflow("wf1")
    assert view is not None and view.state == "active.waiting_for_resource"
    assert view.steps["fetch_part"].waiting_for == (
        "no robot agent with capabilities shelf_lift has joined")
    assert view.steps["walk_to_cell"].waiting_for == (
        "no human agent with capabilities fitter has joined")
    assert view.steps["bring_part"].waiting_for is None  # pending, not ready
    fleet.agent("r2", "robot", ["shelf_lift"])
    view = core.workflow("wf1")
    assert view is not None and view.steps["fetch_part"].agent == "r2"
    assert view.steps["fetch_part"].waiting_for is None


def test_a_step_whose_able_agent_is_offline_or_busy_says_which() -> None:
    """Able agents that are offline, or all busy, are named in the reason."""
    core = Core("demo", TEMPLATES)
    fleet = ScriptedFleet(core, outputs=_outputs)
    fleet.agent("h1", "human", ["fitter"])
    fleet.feed(AgentConn(agent_id="h1", online=False))
    fleet.create("robot_person_handover", "wf1")
    view = core.workflow("wf1")
    assert view is not None
    assert view.steps["walk_to_cell"].waiting_for == (
        "no human agent with capabilities fitter is online (h1 offline)")
    fleet.agent("h2", "human", ["fitter"])  # takes wf1's walk; wf2's walk waits for it
    fleet.create("robot_person_handover", "wf2")
    view = core.workflow("wf2")
    assert view is not None
    assert view.steps["walk_to_cell"].waiting_for == (
        "every human agent with capabilities fitter is busy or unavailable (h2)")
