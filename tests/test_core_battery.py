"""The battery_below_need safety rule: allocation skips agents below a step's need; a step
only such agents could take is a conflict until one fits; a holder running low is one too."""

from __future__ import annotations

from typing import Any

import pytest

from edge_runtime.core import (
    Agent,
    Append,
    Core,
    CoreConfig,
    CoreError,
    Effect,
    Publish,
    Step,
    WorkflowRun,
)
from edge_runtime.templates import load_template
from edge_runtime.testing import ScriptedFleet
from topics import AgentState, Pause

FETCH = load_template({"name": "fetch", "steps": [
    {"id": "pick", "kind": "robot", "location": "far", "action": "pick"}]})
_PLACES = {"dock": 0.0, "mid": 40.0, "far": 50.0}


def _metres(agent: Agent, step: Step, _wf: WorkflowRun) -> float:
    """Travel along a straight aisle (a stand-in for the map's path cost)."""
    return abs(_PLACES[agent.node or "dock"] - _PLACES[step.location or "dock"])


# From the dock: 50 m x 0.5 + 10 for the pick + 20 reserve = 55 %.
BATTERY: dict[str, Any] = {"cost": _metres, "battery_per_meter": 0.5, "battery_per_action": 10.0,
           "battery_reserve": 20.0}


def _fleet(batteries: dict[str, float], **config: Any) -> ScriptedFleet:
    fl = ScriptedFleet(Core("f1", {"fetch": FETCH}, config=CoreConfig(**{**BATTERY, **config})))
    for aid, battery in batteries.items():
        fl.agent(aid, "robot", [])
        _report(fl, aid, battery)
    return fl


def _report(fl: ScriptedFleet, aid: str, battery: float, node: str = "dock",
            status: str = "idle") -> list[Effect]:
    return fl.feed(AgentState(agent_id=aid, ts=fl.now, node=node, battery=battery,
                              status=status))  # type: ignore[arg-type]


def _holder(fl: ScriptedFleet) -> str | None:
    wf = fl.workflow("w1")
    assert wf is not None
    return wf.steps["pick"].agent


def _open(fl: ScriptedFleet) -> list[tuple[str, str, str, tuple[str, ...]]]:
    return [(c.type, c.rule, c.strategy, c.participants)
            for c in fl.core.conflicts(open_only=True).values()]


def _kinds(fx: list[Effect]) -> list[str]:
    return [e.event.kind for e in fx if isinstance(e, Append)]


def test_an_agent_below_the_need_is_skipped() -> None:
    """r1 (40 %) would win the tie by id; the step needs 55 %: r2 (90 %) gets it."""
    fl = _fleet({"r1": 40.0, "r2": 90.0})
    fl.create("fetch", "w1")
    assert _holder(fl) == "r2" and _open(fl) == []


def test_the_rule_is_off_without_battery_figures() -> None:
    """No figures configured: a robot at 1 % is given the step as before."""
    fl = ScriptedFleet(Core("f1", {"fetch": FETCH}, config=CoreConfig(cost=_metres)))
    fl.agent("r1", "robot", [])
    _report(fl, "r1", 1.0)
    fl.create("fetch", "w1")
    assert _holder(fl) == "r1"


def test_a_step_only_low_agents_could_take_is_a_conflict_until_one_charges() -> None:
    """Only r1 (40 %): the step waits with a reallocation conflict; r1 charged to 80 % takes
    it and the conflict resolves in that input."""
    fl = _fleet({"r1": 40.0})
    fx = fl.create("fetch", "w1")
    assert "conflict_detected" in _kinds(fx) and _holder(fl) is None
    assert _open(fl) == [("safety", "battery_below_need", "reallocation", ("r1",))]
    _report(fl, "r1", 50.0, status="charging")
    assert _holder(fl) is None and len(_open(fl)) == 1
    fx = _report(fl, "r1", 80.0)
    assert _kinds(fx)[-2:] == ["step_assigned", "conflict_resolved"]
    assert _holder(fl) == "r1" and _open(fl) == []
    [c] = fl.core.conflicts().values()
    assert c.resolution == "the step went to r1"


def test_a_busy_able_agent_with_enough_battery_means_no_conflict() -> None:
    """r2 (90 %) holds another step: the new one waits for it, not a battery conflict."""
    fl = _fleet({"r1": 40.0, "r2": 90.0})
    fl.create("fetch", "w0")
    fl.create("fetch", "w1")
    assert _holder(fl) is None and _open(fl) == []


def test_a_newcomer_that_fits_takes_the_step_and_resolves_the_conflict() -> None:
    """The conflict's reallocation: a robot joining with enough battery gets the step."""
    fl = _fleet({"r1": 40.0})
    fl.create("fetch", "w1")
    fl.agent("r2", "robot", [])  # no battery reported yet: it is not ruled out
    assert _holder(fl) == "r2" and _open(fl) == []


def test_an_operator_cannot_settle_it_while_the_battery_is_low() -> None:
    """A safety condition: resolve_conflict is refused and nothing changes."""
    fl = _fleet({"r1": 40.0})
    fl.create("fetch", "w1")
    [cid] = fl.core.conflicts()
    with pytest.raises(CoreError, match="condition clears"):
        fl.command("resolve_conflict", conflict_id=cid)


def test_a_holder_whose_battery_drops_below_the_remaining_need_is_escalated() -> None:
    """r1 took the step at 90 %; at 30 % at the dock it still needs 55 %: escalated, not
    paused; once at 'mid' (10 m left: 35 %) with 40 % it fits again and it resolves."""
    fl = _fleet({"r1": 90.0})
    fl.create("fetch", "w1")
    fx = _report(fl, "r1", 30.0)
    assert _kinds(fx)[-2:] == ["conflict_detected", "conflict_escalated"]
    assert not [e for e in fx if isinstance(e, Publish) and isinstance(e.message, Pause)]
    assert _open(fl) == [("safety", "battery_below_need", "operator", ("r1",))]
    fx = _report(fl, "r1", 40.0, node="mid")
    assert "conflict_resolved" in _kinds(fx) and _open(fl) == []


def test_a_holder_conflict_resolves_when_the_step_ends() -> None:
    """The low robot finishes anyway: it no longer holds the step."""
    fl = _fleet({"r1": 90.0})
    fl.create("fetch", "w1")
    _report(fl, "r1", 30.0)
    fx = fl.finish("w1", "pick")
    assert "conflict_resolved" in _kinds(fx) and _open(fl) == []


def test_replay_and_restore_equal_the_live_core() -> None:
    """Skips, a waiting conflict resolved by a charge, a holder conflict: the log rebuilds
    the live state byte for byte, and a snapshot restores it."""
    fl = _fleet({"r1": 40.0})
    fl.create("fetch", "w1")
    _report(fl, "r1", 80.0)
    _report(fl, "r1", 20.0)
    fl.agent("r2", "robot", [])
    _report(fl, "r2", 30.0)
    fl.create("fetch", "w2")
    events = [e.event for e in fl.effects if isinstance(e, Append)]
    config = CoreConfig(**BATTERY)
    live = fl.core.snapshot()
    replayed = Core("f1", {"fetch": FETCH}, config=config)
    for ev in events:
        replayed.apply(ev)
    assert replayed.snapshot() == live
    assert Core.restore(live, "f1", {"fetch": FETCH}, config).snapshot() == live
    assert len(fl.core.conflicts(open_only=True)) == 2
