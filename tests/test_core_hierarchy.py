"""``hierarchical``: a team lead splits its composite step among its team; the edge tracks
the sub-steps, the members' availability and the lead's reallocations
(docs/coordination.md, "hierarchical")."""

from __future__ import annotations

from typing import Any

import pytest

from edge_runtime.core import Append, Core, CoreError, StaleInput
from edge_runtime.templates import load_template
from edge_runtime.testing import ScriptedFleet
from topics import AgentConn, StepDone, SubStepAssigned, SubStepDone

TEMPLATE = load_template({"name": "kit", "coordination": "hierarchical", "steps": [
    {"id": "kitting", "kind": "human", "capabilities": ["lead"],
     "composite": {"members": ["r1", "r2"], "capabilities": ["picker"]}},
    {"id": "other", "kind": "robot", "after": ["kitting"]},
    {"id": "side", "kind": "robot"},
]})


def _fleet(coordination: str | None = None) -> ScriptedFleet:
    fl = ScriptedFleet(Core("f1", {"kit": TEMPLATE}))
    fl.agent("lead1", "human", ["lead"])
    fl.agent("r1", "robot", [])
    fl.agent("r2", "robot", [])
    fl.agent("r3", "robot", ["picker"])
    fl.agent("r4", "robot", [])
    args = {} if coordination is None else {"coordination": coordination}
    fl.create("kit", "w1", **args)
    return fl


def _sub(fl: ScriptedFleet, sub: str, member: str, lead: str = "lead1",
         attempt: int = 1) -> list[Any]:
    return fl.feed(SubStepAssigned(event_id=f"s{len(fl.fed)}", agent_id=lead, ts=0,
                                   workflow_id="w1", step_id="kitting", attempt=attempt,
                                   sub_id=sub, member=member))


def _sub_done(fl: ScriptedFleet, sub: str) -> list[Any]:
    return fl.feed(SubStepDone(event_id=f"d{len(fl.fed)}", agent_id="lead1", ts=0,
                               workflow_id="w1", step_id="kitting", sub_id=sub))


def _kinds(effects: list[Any]) -> list[str]:
    return [e.event.kind for e in effects if isinstance(e, Append)]


def _agent(fl: ScriptedFleet, aid: str) -> Any:
    return fl.core.state.agents[aid]


def test_the_lead_splits_its_step_and_members_become_busy() -> None:
    """Two sub-steps to two team members: recorded, both members unavailable."""
    fl = _fleet()
    assert fl.core.workflow("w1").steps["kitting"].agent == "lead1"  # type: ignore[union-attr]
    assert _kinds(_sub(fl, "pick_a", "r2")) == ["substep_assigned"]
    _sub(fl, "pick_b", "r3")  # a member by capability
    assert _agent(fl, "r2").sub_task == ("w1", "kitting", "pick_a")
    assert not _agent(fl, "r2").available and not _agent(fl, "r3").available
    assert fl.core.state.workflows["w1"].steps["kitting"].subs == {
        "pick_a": ["r2", "assigned"], "pick_b": ["r3", "assigned"]}
    assert fl.core.state.idle["robot"] == ["r4"]


def test_a_member_on_a_sub_step_gets_no_other_work() -> None:
    """While r2 holds a sub-step a ready robot step waits; it gets r2 once that is done."""
    fl = _fleet()
    assert fl.core.workflow("w1").steps["side"].agent == "r1"  # type: ignore[union-attr]
    _sub(fl, "pick_a", "r2")
    for aid in ("r3", "r4"):
        fl.feed(AgentConn(agent_id=aid, online=False))
    fl.create("kit", "w2")
    assert fl.core.workflow("w2").steps["side"].agent is None  # type: ignore[union-attr]
    _sub_done(fl, "pick_a")
    assert fl.core.workflow("w2").steps["side"].agent == "r2"  # type: ignore[union-attr]


def test_a_reallocation_is_tracked_and_frees_the_first_member() -> None:
    """The same sub-step to another member: substep_reassigned, the first one is free."""
    fl = _fleet()
    _sub(fl, "pick_a", "r3")
    effects = _sub(fl, "pick_a", "r2")
    assert _kinds(effects)[0] == "substep_reassigned"
    data = next(e.event.data for e in effects if isinstance(e, Append))
    assert (data["previous"], data["member"]) == ("r3", "r2")
    assert _agent(fl, "r3").sub_task is None and _agent(fl, "r2").sub_task is not None


@pytest.mark.parametrize("case", ["not_in_team", "busy", "lead_itself", "wrong_lead",
                                  "done_sub", "same_member"])
def test_invalid_sub_step_assignments_are_refused(case: str) -> None:
    """Outside the team, a busy member, the lead itself, another agent than the lead, a
    done sub-step, or a repeat: StaleInput, nothing changes."""
    fl = _fleet()
    member, lead = "r2", "lead1"
    if case == "not_in_team":
        member = "r4"
    elif case == "busy":
        member = "r1"  # holds the side step
    elif case == "lead_itself":
        member = "lead1"
    elif case == "wrong_lead":
        lead = "r3"
    elif case == "done_sub":
        _sub(fl, "pick_a", "r3")
        _sub_done(fl, "pick_a")
    else:
        _sub(fl, "pick_a", "r2")
    before = fl.core.snapshot()
    with pytest.raises(StaleInput):
        _sub(fl, "pick_a", member, lead=lead)
    assert fl.core.snapshot() == before


def test_step_done_is_refused_while_sub_steps_are_open() -> None:
    """The lead cannot finish before its team: refused, then accepted once all are done."""
    fl = _fleet()
    _sub(fl, "pick_a", "r2")
    fl.accept("w1", "kitting")
    fl.start_step("w1", "kitting")
    before = fl.core.snapshot()
    with pytest.raises(StaleInput, match="pick_a"):
        fl.finish("w1", "kitting")
    assert fl.core.snapshot() == before
    assert _kinds(_sub_done(fl, "pick_a")) == ["substep_done"]
    assert _agent(fl, "r2").sub_task is None
    fl.finish("w1", "kitting")
    assert fl.core.workflow("w1").steps["kitting"].state == "done"  # type: ignore[union-attr]


def test_sub_step_done_twice_or_unknown_is_refused() -> None:
    """A sub-step closes once; an unknown one cannot."""
    fl = _fleet()
    _sub(fl, "pick_a", "r2")
    _sub_done(fl, "pick_a")
    with pytest.raises(StaleInput):
        _sub_done(fl, "pick_a")
    with pytest.raises(StaleInput):
        _sub_done(fl, "nope")


def test_losing_the_lead_requeues_the_step_and_frees_its_members() -> None:
    """Lead offline: the composite step waits for a new lead, its members are free."""
    fl = _fleet()
    _sub(fl, "pick_a", "r2")
    _sub(fl, "pick_b", "r3")
    effects = fl.feed(AgentConn(agent_id="lead1", online=False))
    assert "step_requeued" in _kinds(effects)
    st = fl.core.state.workflows["w1"].steps["kitting"]
    assert st.state == "allocating" and st.subs == {}
    assert _agent(fl, "r2").sub_task is None and _agent(fl, "r3").sub_task is None
    assert _agent(fl, "r3").available


def test_a_new_lead_starts_with_no_sub_steps_and_old_reports_are_stale() -> None:
    """After requeue the next lead's attempt is 2; the old lead's reports are refused."""
    fl = _fleet()
    _sub(fl, "pick_a", "r2")
    fl.feed(AgentConn(agent_id="lead1", online=False))
    fl.agent("lead2", "human", ["lead"])
    st = fl.core.state.workflows["w1"].steps["kitting"]
    assert (st.agent, st.attempt) == ("lead2", 2)
    with pytest.raises(StaleInput):
        _sub(fl, "pick_a", "r2", lead="lead1")
    assert _kinds(_sub(fl, "pick_a", "r2", lead="lead2", attempt=2)) == ["substep_assigned"]


def test_outside_hierarchical_a_composite_step_is_an_ordinary_step() -> None:
    """In a direct workflow the lead's sub-step reports are refused."""
    fl = _fleet(coordination="direct")
    with pytest.raises(StaleInput, match="not a composite step"):
        _sub(fl, "pick_a", "r2")


def test_unknown_member_is_refused() -> None:
    """A member that never announced itself: a CoreError."""
    fl = _fleet()
    with pytest.raises(CoreError):
        _sub(fl, "pick_a", "ghost")


def test_a_composite_step_needs_an_agent_and_a_team() -> None:
    """``composite`` only on agent steps, naming members or capabilities."""
    from edge_runtime.core import TemplateError
    with pytest.raises(TemplateError, match="name members or capabilities"):
        load_template({"name": "x", "steps": [{"id": "a", "kind": "human", "composite": {}}]})
    with pytest.raises(TemplateError, match="done by an agent"):
        load_template({"name": "x", "steps": [
            {"id": "a", "kind": "wait", "duration_s": 1, "composite": {"members": ["r1"]}}]})


def test_hierarchy_replays_and_restores_byte_for_byte() -> None:
    """Sub-steps assigned, reassigned and done replay, and restore, identically."""
    fl = _fleet()
    _sub(fl, "pick_a", "r3")
    _sub(fl, "pick_a", "r2")
    _sub(fl, "pick_b", "r3")
    _sub_done(fl, "pick_b")
    live = fl.core.snapshot()
    replayed = Core("f1", {"kit": TEMPLATE})
    for e in fl.effects:
        if isinstance(e, Append):
            replayed.apply(e.event)
    assert replayed.snapshot() == live
    restored = Core.restore(live, "f1", {"kit": TEMPLATE})
    assert restored.snapshot() == live
    assert not restored.state.agents["r2"].available
    assert restored.agents() == fl.core.agents()


def test_step_done_from_the_lead_without_sub_steps_is_accepted() -> None:
    """A lead may do the whole step itself (it split nothing)."""
    fl = _fleet()
    fl.feed(StepDone(event_id="x", agent_id="lead1", ts=0, workflow_id="w1",
                     step_id="kitting"))
    assert fl.core.workflow("w1").steps["kitting"].state == "done"  # type: ignore[union-attr]


def test_a_failed_lead_frees_its_members() -> None:
    """The lead reports the step failed: its members are free at once."""
    fl = _fleet()
    _sub(fl, "pick_a", "r2")
    fl.fail("w1", "kitting")
    assert _agent(fl, "r2").sub_task is None and _agent(fl, "r2").available
    assert fl.core.state.workflows["w1"].steps["kitting"].subs == {}
