"""Resource contention: an agent double-booked, a resource claimed twice, overlapping windows
on an exclusive resource — each a conflict settled by its strategy with the outcome that
strategy promises (docs/coordination.md, "Resource contention rules" and "Strategies")."""

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
    Step,
    TemplateError,
    TimerFired,
    WorkflowRun,
)
from edge_runtime.templates import load_template
from edge_runtime.testing import ScriptedFleet
from topics import AgentState

PIN = load_template({"name": "pin", "steps": [
    {"id": "s", "kind": "robot", "estimated_duration_s": 100, "agents": {"allowed": ["r1"]}}]})
ANY = load_template({"name": "any", "steps": [
    {"id": "s", "kind": "robot", "estimated_duration_s": 100}]})
DOCK = load_template({"name": "dock", "steps": [
    {"id": "s", "kind": "robot", "estimated_duration_s": 100, "resources": ["dock_a"],
     "alternatives": {"dock_a": ["dock_b"]}}]})
LATER = load_template({"name": "later", "steps": [
    {"id": "prep", "kind": "human", "estimated_duration_s": 30},
    {"id": "s", "kind": "robot", "estimated_duration_s": 100, "resources": ["dock_a"],
     "after": ["prep"]}]})
TEMPLATES = {t.name: t for t in (PIN, ANY, DOCK, LATER)}


def _fleet(strategy: str | None = None, *agents: str, **config: Any) -> ScriptedFleet:
    """r1 (and ``agents``) online at 1000; ``strategy`` for every contention rule."""
    if strategy is not None:
        config.setdefault("conflict_strategies", {"resource": strategy, "temporal": strategy})
    core = Core("f1", TEMPLATES, config=CoreConfig(**config))
    fl = ScriptedFleet(core)
    for agent in ("r1", *agents):
        fl.agent(agent, "robot", [])
    fl.at(1010.0)
    return fl


def _kinds(fx: list[Effect]) -> list[str]:
    return [e.event.kind for e in fx if isinstance(e, Append)]


def _agent_of(fl: ScriptedFleet, wid: str, sid: str = "s") -> str | None:
    view = fl.workflow(wid)
    assert view is not None
    return view.steps[sid].agent


def _state_of(fl: ScriptedFleet, wid: str, sid: str = "s") -> str:
    view = fl.workflow(wid)
    assert view is not None
    return view.steps[sid].state


def _only_conflict(fl: ScriptedFleet) -> Any:
    [conflict] = fl.core.conflicts().values()
    return conflict


def _double_book(fl: ScriptedFleet, *, pinned_priority: int = 5) -> list[Effect]:
    """w1 (priority 0) gets r1; then w2, which only r1 may do, becomes ready."""
    fl.create("any", "w1")
    assert _agent_of(fl, "w1") == "r1"
    fl.at(1020.0)
    return fl.create("pin", "w2", priority=pinned_priority)


def test_a_step_pinned_to_a_busy_agent_is_an_agent_double_booked_conflict() -> None:
    """The pinned step's readiness raises the conflict naming both claims and the agent."""
    fl = _fleet()
    fx = _double_book(fl, pinned_priority=0)
    assert _kinds(fx)[-2:] == ["conflict_detected", "conflict_resolved"]
    conflict = _only_conflict(fl)
    assert (conflict.type, conflict.rule, conflict.participants, conflict.strategy) == (
        "resource", "agent_double_booked", ("r1",), "priority")
    assert conflict.claims == (("w1", "s"), ("w2", "s"))


def test_priority_gives_the_agent_to_the_higher_priority_workflow_and_the_other_waits() -> None:
    """w2 outranks w1, which has not started: w1 is withdrawn and waits; w2 gets r1."""
    fl = _fleet("priority")
    _double_book(fl)
    assert _only_conflict(fl).resolution == "priority: w2.s gets r1; w1.s waits"
    fl.confirm("w1", "s")
    assert _agent_of(fl, "w2") == "r1"
    assert _state_of(fl, "w1") == "allocating" and fl.core.queue() == [("w1", "s")]
    fl.finish("w2", "s")
    assert _agent_of(fl, "w1") == "r1"


def test_priority_lets_the_lower_priority_claim_wait() -> None:
    """The pinned w2 has the lower priority: w1 keeps r1 and w2 waits in the queue."""
    fl = _fleet("priority")
    fl.create("any", "w1", priority=3)
    fl.at(1020.0)
    fl.create("pin", "w2")
    assert _only_conflict(fl).resolution == "priority: w1.s gets r1; w2.s waits"
    assert _agent_of(fl, "w1") == "r1" and _state_of(fl, "w2") == "allocating"


def test_priority_never_interrupts_work_in_progress() -> None:
    """A holder that has started keeps the agent; the higher-priority claim is next."""
    fl = _fleet("priority")
    fl.create("any", "w1")
    fl.start_step("w1", "s")
    fx = fl.create("pin", "w2", priority=5)
    assert "step_cancelling" not in _kinds(fx)
    assert "but it started" in _only_conflict(fl).resolution
    fl.finish("w1", "s")
    assert _agent_of(fl, "w2") == "r1"


def test_negotiation_chooses_the_least_delay_alternative() -> None:
    """w1 moving to the free r2 loses 10 s; w2 waiting would lose 90 s: w1 moves."""
    fl = _fleet("negotiation", "r2")
    fl.create("any", "w1")
    fl.at(1020.0)
    fx = fl.create("pin", "w2", priority=5)
    proposals = [e.event.data for e in fx
                 if isinstance(e, Append) and e.event.kind == "conflict_proposal"]
    assert [(p["by"], p["option"], p["delay"]) for p in proposals] == [
        ("w2/s", "slot", 90.0), ("w1/s", "agent", 10.0), ("w1/s", "slot", 110.0)]
    [chosen] = [e.event.data for e in fx
                if isinstance(e, Append) and e.event.kind == "conflict_negotiated"]
    assert (chosen["n"], chosen["value"]) == (1, "r2")
    fl.confirm("w1", "s")
    assert (_agent_of(fl, "w1"), _agent_of(fl, "w2")) == ("r2", "r1")


def _far_r2(agent: Agent, step: Step, wf: WorkflowRun) -> float:
    return 500.0 if agent.id == "r2" else 0.0


def test_negotiation_weighs_path_costs() -> None:
    """r2 is 500 away: waiting 90 s for r1 is the cheaper combination."""
    fl = _fleet("negotiation", "r2", cost=_far_r2)
    fl.create("any", "w1")
    fl.at(1020.0)
    fl.create("pin", "w2", priority=5)
    assert _only_conflict(fl).resolution == (
        "negotiation: w1.s gets r1; w2.s starts no earlier than 1110.0")
    assert _state_of(fl, "w2") == "pending" and _agent_of(fl, "w1") == "r1"


def test_reallocation_gives_the_loser_another_agent() -> None:
    """The outranked w1 is moved off r1 to the free r2; the pinned w2 gets r1."""
    fl = _fleet("reallocation", "r2")
    _double_book(fl)
    fl.confirm("w1", "s")
    assert (_agent_of(fl, "w1"), _agent_of(fl, "w2")) == ("r2", "r1")


def test_reallocation_with_no_agent_to_spare_escalates() -> None:
    """No other able agent is free: reallocation cannot settle it, an operator must."""
    fl = _fleet("reallocation")
    _double_book(fl)
    conflict = _only_conflict(fl)
    assert conflict.status == "escalated" and _agent_of(fl, "w1") == "r1"


def test_rescheduling_runs_the_loser_after_the_winners_slot() -> None:
    """w1 holds r1 until 1110 (100 s estimated): the lower-priority w2 is moved to then,
    and does not start early even if r1 is free sooner."""
    fl = _fleet("rescheduling")
    fl.create("any", "w1", priority=3)
    fl.at(1020.0)
    fx = fl.create("pin", "w2")
    assert "step_rescheduled" in _kinds(fx) and _state_of(fl, "w2") == "pending"
    fl.at(1050.0)
    fl.finish("w1", "s")
    assert _agent_of(fl, "w1") is None and _state_of(fl, "w2") == "pending"
    fl.at(1110.0)
    fl.feed(TimerFired("retry:w2/s"))
    assert _agent_of(fl, "w2") == "r1"


def test_operator_escalates_and_resolve_conflict_applies_the_choice() -> None:
    """Escalated; the operator's ``choice`` of reallocation moves w1 to r2."""
    fl = _fleet("operator", "r2")
    _double_book(fl)
    conflict = _only_conflict(fl)
    assert conflict.status == "escalated" and _agent_of(fl, "w1") == "r1"
    fl.command("resolve_conflict", conflict_id=conflict.id, resolution="r2 is closer",
               choice="reallocation")
    assert fl.core.conflicts()[conflict.id].resolution == (
        "operator chose reallocation: w1.s goes to r2; w2.s gets r1 (r2 is closer)")
    fl.confirm("w1", "s")
    assert (_agent_of(fl, "w1"), _agent_of(fl, "w2")) == ("r2", "r1")


def test_an_old_resolve_conflict_call_leaves_the_claim_waiting() -> None:
    """``{conflict_id, resolution}`` still works: resolved, and w2 waits for r1."""
    fl = _fleet("operator")
    _double_book(fl)
    conflict = _only_conflict(fl)
    fl.command("resolve_conflict", conflict_id=conflict.id, resolution="let it wait")
    assert fl.core.conflicts()[conflict.id].status == "resolved"
    fl.finish("w1", "s")
    assert _agent_of(fl, "w2") == "r1"


def test_a_choice_that_cannot_settle_is_refused_and_changes_nothing() -> None:
    """Reallocation with no spare agent is refused; the conflict stays escalated."""
    fl = _fleet("operator")
    _double_book(fl)
    conflict = _only_conflict(fl)
    before = fl.core.snapshot()
    with pytest.raises(CoreError, match="no other able agent"):
        fl.command("resolve_conflict", conflict_id=conflict.id, choice="reallocation")
    assert fl.core.snapshot() == before


def test_an_escalated_conflict_resolves_once_the_claims_no_longer_contend() -> None:
    """The holder finishing hands r1 to the claimant: nothing is left to decide."""
    fl = _fleet("operator")
    _double_book(fl)
    fx = fl.finish("w1", "s")
    assert "conflict_resolved" in _kinds(fx) and fl.core.conflicts(open_only=True) == {}
    assert _agent_of(fl, "w2") == "r1"


def test_a_resource_claimed_twice_is_a_conflict_and_priority_orders_it() -> None:
    """w2 needs dock_a, held by w1's step: the conflict names the resource; w2 waits."""
    fl = _fleet("priority", "r2")
    fl.create("dock", "w1")
    fl.create("dock", "w2")
    conflict = _only_conflict(fl)
    assert (conflict.rule, conflict.resource, conflict.participants) == (
        "resource_claimed_twice", "dock_a", ("r1",))
    assert conflict.resolution == "priority: w1.s gets dock_a; w2.s waits"
    assert _state_of(fl, "w2") == "allocating"


def test_reallocation_moves_a_claim_to_an_alternative_resource() -> None:
    """The template names dock_b as an alternative: w2 takes it and starts at once."""
    fl = _fleet("reallocation", "r2")
    fl.create("dock", "w1")
    fl.create("dock", "w2")
    assert _only_conflict(fl).resolution == (
        "reallocation: w2.s takes dock_b instead of dock_a; w1.s keeps dock_a")
    assert _agent_of(fl, "w2") == "r2"
    assert fl.core.resource_holds() == {"dock_a": ("w1", "s"), "dock_b": ("w2", "s")}


def test_negotiation_prefers_a_free_alternative_resource_to_waiting() -> None:
    """dock_b is free (no delay) where waiting for dock_a costs 100 s: w2 takes dock_b."""
    fl = _fleet("negotiation", "r2")
    fl.create("dock", "w1")
    fx = fl.create("dock", "w2")
    [chosen] = [e.event.data for e in fx
                if isinstance(e, Append) and e.event.kind == "conflict_negotiated"]
    assert (chosen["by"], chosen["option"], chosen["value"], chosen["delay"]) == (
        "w2/s", "resource", "dock_b", 0.0)
    assert fl.core.resource_holds()["dock_b"] == ("w2", "s")


def test_a_rescheduled_step_keeps_its_slot_across_a_restart() -> None:
    """The slot is the step's ``retry_at``: a restored core re-arms its timer."""
    fl = _fleet("rescheduling")
    fl.create("any", "w1", priority=3)
    fl.at(1020.0)
    fl.create("pin", "w2")
    restored = Core.restore(fl.core.snapshot(), "f1", TEMPLATES, fl.core.config)
    assert restored.armed_timers()["retry:w2/s"] == pytest.approx(1110.0)


def test_a_window_overlap_is_seen_before_the_claim_and_rescheduled() -> None:
    """w2's dock step is predicted at +30 s, inside w1's 100 s on dock_a: moved after it."""
    fl = _fleet("rescheduling", "r2")
    fl.agent("h1", "human", [])
    fl.at(1100.0)
    fl.create("later", "w2")
    fx = fl.create("dock", "w1")
    conflict = _only_conflict(fl)
    assert (conflict.type, conflict.rule, conflict.resource) == (
        "temporal", "window_overlap", "dock_a")
    assert "step_rescheduled" in _kinds(fx)
    fl.finish("w2", "prep")
    assert _state_of(fl, "w2") == "pending"
    [at] = [e.event.data["at"] for e in fx
            if isinstance(e, Append) and e.event.kind == "step_rescheduled"]
    assert at == pytest.approx(1200.0, abs=0.1)  # w1's 100 s from 1100
    fl.at(at)
    fl.feed(TimerFired("retry:w2/s"))
    assert _state_of(fl, "w2") == "allocating"  # w1 overran its slot: w2 waits for it
    assert len(fl.core.conflicts()) == 1  # the claim coming true was settled already
    fl.finish("w1", "s")
    assert _agent_of(fl, "w2") is not None


def test_only_the_first_predicted_claim_overlaps_a_window() -> None:
    """Two workflows will need dock_a within w1's window: the older one is the conflict;
    the other queues behind it as usual."""
    fl = _fleet("priority", "r2")
    fl.agent("h1", "human", [])
    fl.agent("h2", "human", [])
    fl.create("later", "w2")
    fl.create("later", "w3")
    fl.create("dock", "w1")
    [conflict] = fl.core.conflicts().values()
    assert (conflict.rule, conflict.claims) == ("window_overlap", (("w1", "s"), ("w2", "s")))


def test_a_template_overrides_the_facility_strategy() -> None:
    """The facility says priority; the claimant's template says operator."""
    pin = load_template({**PIN.model_dump(by_alias=True),
                         "conflict_strategies": {"agent_double_booked": "operator"}})
    core = Core("f1", {**TEMPLATES, "pin": pin},
                config=CoreConfig(conflict_strategies={"resource": "priority"}))
    fl = ScriptedFleet(core)
    fl.agent("r1", "robot", [])
    _double_book(fl)
    assert (_only_conflict(fl).strategy, _only_conflict(fl).status) == ("operator", "escalated")


def test_the_rule_entry_beats_the_type_entry() -> None:
    """``agent_double_booked: operator`` wins over ``resource: priority``."""
    fl = _fleet(None, conflict_strategies={"resource": "priority",
                                           "agent_double_booked": "operator"})
    _double_book(fl)
    assert _only_conflict(fl).strategy == "operator"


@pytest.mark.parametrize("table", [{"safety": "priority"}, {"resource": "coin_flip"},
                                   {"double_booking": "priority"}])
def test_bad_strategy_tables_are_refused(table: dict[str, str]) -> None:
    """Unknown rules or strategies, and priority for safety, fail loudly in both places."""
    with pytest.raises(CoreError):
        Core("f1", config=CoreConfig(conflict_strategies=table))
    with pytest.raises(TemplateError):
        load_template({"name": "x", "conflict_strategies": table,
                       "steps": [{"id": "s", "kind": "robot"}]})


def test_safety_conflicts_are_never_settled_by_priority() -> None:
    """A person in the robot's exclusive zone: no strategy applies, a choice is refused."""
    fl = _fleet("priority", exclusive_zones={"cold1": ("cold_room",)})
    fl.agent("h1", "human", [])
    fl.feed(AgentState(agent_id="r1", ts=fl.now, node="cold1"))
    fl.feed(AgentState(agent_id="h1", ts=fl.now, node="cold1"))
    conflict = _only_conflict(fl)
    assert (conflict.type, conflict.strategy) == ("safety", "stop")
    with pytest.raises(CoreError):
        fl.command("resolve_conflict", conflict_id=conflict.id, choice="priority")
    assert fl.core.conflicts()[conflict.id].status == "open"


def test_contention_replays_and_restores_byte_for_byte() -> None:
    """Every strategy's events rebuild the same state; a restored core snapshots the same."""
    for strategy in ("priority", "negotiation", "reallocation", "rescheduling", "operator"):
        fl = _fleet(strategy, "r2")
        _double_book(fl)
        fl.create("dock", "w3")
        fl.create("dock", "w4")
        if strategy == "operator":
            [cid] = [c.id for c in fl.core.conflicts(open_only=True).values()][:1]
            fl.command("resolve_conflict", conflict_id=cid, choice="rescheduling")
        config = fl.core.config
        replayed = Core("f1", TEMPLATES, config=config)
        for e in fl.effects:
            if isinstance(e, Append):
                replayed.apply(e.event)
        assert replayed.snapshot() == fl.core.snapshot(), strategy
        restored = Core.restore(fl.core.snapshot(), "f1", TEMPLATES, config)
        assert restored.snapshot() == fl.core.snapshot(), strategy
        assert restored.conflicts() == fl.core.conflicts()


def test_a_step_queued_on_a_busy_agent_by_design_is_not_double_booking() -> None:
    """With work queues the pinned step becomes r1's next step: no conflict."""
    fl = _fleet(None, max_queued_per_agent=2)
    _double_book(fl)
    assert fl.core.state.workflows["w2"].steps["s"].queued_on == "r1"
    assert fl.core.conflicts() == {}
    fl.finish("w1", "s")
    assert _agent_of(fl, "w2") == "r1"
