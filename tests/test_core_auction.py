"""The ``auction_based`` protocol (contract net): calls for proposals, bids (native and the
edge's proxy bids for AGVs), award by cost with a deterministic tie-break, re-award of a
declined or unanswered award, backoff and a conflict when nobody bids, and clean ends."""

from __future__ import annotations

from typing import Any

import pytest

from edge_runtime.core import (
    Agent,
    Append,
    Core,
    CoreConfig,
    Effect,
    Publish,
    Restarted,
    SetTimer,
    StaleInput,
    Step,
    TimerFired,
    UnknownEntity,
    WorkflowRun,
)
from edge_runtime.templates import load_template
from edge_runtime.testing import ScriptedFleet
from topics import (
    AgentConn,
    AgentState,
    Assign,
    Award,
    Bid,
    Cancel,
    Cfp,
    CommandAck,
    StepAccepted,
    StepFailed,
)

LIFT = load_template({"name": "lift", "coordination": "auction_based", "steps": [
    {"id": "s", "kind": "robot", "capabilities": ["lift"], "location": "dock",
     "estimated_duration_s": 30}]})
DISTANCE = {"near": 2.0, "far": 12.0}


def _cost(agent: Agent, step: Step, wf: WorkflowRun) -> float:
    return DISTANCE.get(agent.node or "", 0.0)


CONFIG = CoreConfig(cost=_cost, bid_window_s=5.0, award_timeout_s=10.0,
                    auction_backoff_s=4.0, auction_rounds=3)


def _fleet(*bidders: str, config: CoreConfig = CONFIG) -> ScriptedFleet:
    fl = ScriptedFleet(Core("f1", {"lift": LIFT}, config=config))
    for aid in bidders:
        fl.agent(aid, "robot", ["lift"])
    return fl


def _agv(fl: ScriptedFleet, aid: str, node: str, battery: float) -> None:
    fl.feed(AgentConn(agent_id=aid, online=True, kind="robot", capabilities=["lift"],
                      liveness_s=3600, bids=False))
    fl.feed(AgentState(agent_id=aid, ts=fl.now, node=node, battery=battery))


def _events(fx: list[Effect], kind: str) -> list[dict[str, Any]]:
    return [e.event.data for e in fx if isinstance(e, Append) and e.event.kind == kind]


def _kinds(fx: list[Effect]) -> list[str]:
    return [e.event.kind for e in fx if isinstance(e, Append)]


def _sent(fx: list[Effect]) -> list[tuple[str, str]]:
    return [(e.topic.split("/")[4], type(e.message).__name__.lower()) for e in fx
            if isinstance(e, Publish)]


def _cfp(fl: ScriptedFleet) -> str:
    [cfp] = fl.core.state.auctions
    return cfp


def _bid(fl: ScriptedFleet, aid: str, cost: float, eta: float = 0.0,
         cfp: str | None = None) -> list[Effect]:
    return fl.feed(Bid(event_id=f"bid-{aid}-{fl.now}", agent_id=aid, ts=fl.now,
                       cfp_id=cfp or _cfp(fl), cost=cost, eta_s=eta))


def _fire(fl: ScriptedFleet, at: float | None = None) -> list[Effect]:
    """Fire the open auction's timer at its time (or at ``at``)."""
    auction = fl.core.state.auctions[_cfp(fl)]
    assert auction.due is not None
    fl.at(auction.due if at is None else at)
    return fl.feed(TimerFired(f"auction:{auction.id}"))


def _holder(fl: ScriptedFleet) -> str | None:
    view = fl.workflow("w1")
    assert view is not None
    return view.steps["s"].agent


def test_a_call_goes_to_every_able_available_allowed_agent() -> None:
    """Agents lacking the capability, busy, or outside the workflow's agents are not called;
    the call carries the bid deadline and a timer is set for it."""
    fl = _fleet("r1", "r2", "r3", "r4")
    fl.agent("plain", "robot", [])
    fl.agent("h1", "human", ["lift"])
    fl.feed(AgentState(agent_id="r3", ts=fl.now, status="charging"))
    fx = fl.create("lift", "w1", agents=["r1", "r2", "r3", "plain"])
    [opened] = _events(fx, "cfp_opened")
    assert opened["invited"] == ["r1", "r2"] and opened["round"] == 1
    assert opened["deadline"] == fl.now + 5.0
    calls = [e.message for e in fx if isinstance(e, Publish) and isinstance(e.message, Cfp)]
    assert [(c.cfp_id, c.capabilities, c.location, c.deadline_ts) for c in calls] == [
        (opened["cfp"], ["lift"], "dock", opened["deadline"])] * 2
    assert SetTimer(f"auction:{opened['cfp']}", opened["deadline"]) in fx
    assert _holder(fl) is None


def test_the_lowest_cost_wins_at_the_deadline() -> None:
    """Bids are events; at the deadline the cheapest bid gets Award, then Assign."""
    fl = _fleet("r1", "r2", "r3")
    fl.create("lift", "w1")
    assert _kinds(_bid(fl, "r1", 7.5)) == ["bid_received"]
    _bid(fl, "r2", 3.0, eta=40)
    fx = _fire(fl)
    [awarded] = _events(fx, "step_awarded")
    assert (awarded["agent"], awarded["cost"], awarded["eta"]) == ("r2", 3.0, 40)
    assert _kinds(fx)[:2] == ["step_awarded", "step_assigned"]
    assert _sent(fx) == [("r2", "award"), ("r2", "assign")]
    assert _holder(fl) == "r2"


def test_ties_go_to_the_lower_eta_then_the_lower_agent_id() -> None:
    """Equal costs: the earlier ETA wins; equal ETAs too: the lower agent id."""
    fl = _fleet("r1", "r2", "r3")
    fl.create("lift", "w1")
    _bid(fl, "r3", 4.0, eta=10)
    _bid(fl, "r2", 4.0, eta=20)
    _bid(fl, "r1", 4.0, eta=20)
    assert _holder(fl) == "r3"
    fl2 = _fleet("r1", "r2", "r3")
    fl2.create("lift", "w1")
    _bid(fl2, "r3", 4.0, eta=20)
    _bid(fl2, "r2", 4.0, eta=20)
    _fire(fl2)
    assert _holder(fl2) == "r2"


def test_the_award_comes_as_soon_as_every_invited_agent_bid() -> None:
    """Nobody left to wait for: the last bid closes the bidding at once."""
    fl = _fleet("r1", "r2")
    fl.create("lift", "w1")
    _bid(fl, "r1", 2.0)
    fx = _bid(fl, "r2", 1.0)
    assert _kinds(fx)[:3] == ["bid_received", "step_awarded", "step_assigned"]
    assert _holder(fl) == "r2"


def test_the_edge_bids_for_agvs_from_path_cost_battery_and_work() -> None:
    """An agent announced with ``bids: false`` gets no Cfp: the edge records a proxy bid of
    travel + 0.1 per spent battery percent in the same batch as the call."""
    fl = _fleet("r1")
    _agv(fl, "agv1", "near", battery=80.0)
    _agv(fl, "agv2", "far", battery=100.0)
    fx = fl.create("lift", "w1")
    proxies = {d["agent"]: (d["cost"], d["eta"], d["proxy"]) for d in _events(fx, "bid_received")}
    assert proxies == {"agv1": (4.0, 2.0, True), "agv2": (12.0, 12.0, True)}
    assert [a for a, kind in _sent(fx) if kind == "cfp"] == ["r1"]
    fx = _bid(fl, "r1", 5.0)
    assert _events(fx, "step_awarded")[0]["agent"] == "agv1"


def test_an_auction_of_only_agvs_is_awarded_at_once() -> None:
    """Only proxy bidders: nobody to wait for, the step is awarded in the creating batch."""
    fl = _fleet()
    _agv(fl, "agv1", "far", battery=90.0)
    _agv(fl, "agv2", "near", battery=90.0)
    fx = fl.create("lift", "w1")
    assert _events(fx, "step_awarded")[0]["agent"] == "agv2"
    assert not [e for e in fx if isinstance(e, SetTimer) and e.at == fl.now + 5.0]


def test_an_agv_announcing_itself_as_bidder_again_is_recorded() -> None:
    """Changing ``bids`` is a change of what the agent is: a new ``agent_joined``."""
    fl = _fleet()
    _agv(fl, "agv1", "near", battery=90.0)
    assert fl.core.state.agents["agv1"].bids is False
    fx = fl.feed(AgentConn(agent_id="agv1", online=True, kind="robot", capabilities=["lift"],
                           liveness_s=3600))
    assert "agent_joined" in _kinds(fx) and fl.core.state.agents["agv1"].bids is True


def test_a_declined_award_goes_to_the_next_best_bid() -> None:
    """The winner fails the step before accepting: ``award_declined``, no failure counted,
    the step goes to the next bid."""
    fl = _fleet("r1", "r2")
    fl.create("lift", "w1")
    _bid(fl, "r1", 1.0)
    _bid(fl, "r2", 2.0)
    fx = fl.fail("w1", "s", error_type="no_forks")
    assert _kinds(fx)[:4] == ["award_declined", "step_requeued", "step_awarded",
                              "step_assigned"]
    assert _events(fx, "award_declined")[0]["agent"] == "r1"
    assert "step_failed" not in _kinds(fx)
    assert _holder(fl) == "r2" and fl.core.state.workflows["w1"].steps["s"].failures == 0


def test_a_refused_award_is_a_decline() -> None:
    """A ``CommandAck`` refusing the Award from the winner that has not accepted declines."""
    fl = _fleet("r1", "r2")
    fl.create("lift", "w1")
    _bid(fl, "r1", 1.0)
    fx = _bid(fl, "r2", 2.0)
    award = next(e.message for e in fx if isinstance(e, Publish) and isinstance(e.message, Award))
    fx = fl.feed(CommandAck(event_id="ack1", agent_id="r1", ts=fl.now,
                            command_id=award.command_id, outcome="refused", reason="full"))
    assert _events(fx, "award_declined")[0]["reason"] == "refused: full"
    assert _holder(fl) == "r2"


def test_a_silent_winner_loses_the_award_to_the_next_bid() -> None:
    """No accept within the award timeout: ``award_unanswered``, the silent agent is told to
    drop the step, the next bid wins, and the silent one's late accept is stale."""
    fl = _fleet("r1", "r2")
    fl.create("lift", "w1")
    _bid(fl, "r1", 1.0)
    fx = _bid(fl, "r2", 2.0)
    first = next(e.message for e in fx if isinstance(e, Publish) and isinstance(e.message, Assign))
    fx = _fire(fl)
    assert _kinds(fx)[:4] == ["award_unanswered", "step_requeued", "step_awarded",
                              "step_assigned"]
    assert _sent(fx)[:3] == [("r1", "cancel"), ("r2", "award"), ("r2", "assign")]
    assert _holder(fl) == "r2"
    with pytest.raises(StaleInput):
        fl.feed(StepAccepted(event_id="late", agent_id="r1", ts=fl.now, workflow_id="w1",
                             step_id="s", attempt=first.attempt))
    fl.finish("w1", "s")
    view = fl.workflow("w1")
    assert view is not None and view.state == "completed"


def test_a_winner_that_accepts_keeps_the_step_and_the_timer_does_nothing() -> None:
    """Accepting closes the auction; its award timer, should it fire, changes nothing."""
    fl = _fleet("r1", "r2")
    fl.create("lift", "w1")
    _bid(fl, "r1", 1.0)
    _bid(fl, "r2", 2.0)
    cfp = _cfp(fl)
    fx = fl.accept("w1", "s")
    assert _events(fx, "auction_closed") == [{"cfp": cfp, "reason": "r1 took the step"}]
    assert fl.core.state.auctions == {}
    fl.at(fl.now + 60)
    before = fl.core.snapshot()
    assert fl.feed(TimerFired(f"auction:{cfp}")) == []
    assert fl.core.snapshot() == before and _holder(fl) == "r1"


def test_no_bids_calls_again_with_doubling_backoff_then_escalates() -> None:
    """Rounds without bids are called again 4 s, then 8 s later; after the third a
    ``no_bids`` resource conflict asks an operator, and no further call is made."""
    fl = _fleet("r1")
    fl.create("lift", "w1")
    waits = []
    for round_ in (1, 2):
        fx = _fire(fl)
        [none] = _events(fx, "cfp_no_bids")
        assert none["round"] == round_
        waits.append(none["retry_at"] - fl.now)
        fx = _fire(fl)
        assert _events(fx, "cfp_opened")[0]["round"] == round_ + 1
    assert waits == [4.0, 8.0]
    fx = _fire(fl)
    assert _kinds(fx)[:3] == ["cfp_no_bids", "conflict_detected", "conflict_escalated"]
    assert _events(fx, "cfp_no_bids")[0]["retry_at"] is None
    [conflict] = fl.core.conflicts(open_only=True).values()
    assert (conflict.type, conflict.rule, conflict.strategy, conflict.status) == (
        "resource", "no_bids", "operator", "escalated")
    assert "auction:" not in "".join(fl.core.armed_timers())
    assert "cfp_opened" not in _kinds(fl.feed(AgentState(agent_id="r1", ts=fl.now,
                                                         status="busy")))


def test_an_operator_settling_no_bids_calls_for_proposals_again() -> None:
    """``resolve_conflict`` on a ``no_bids`` conflict opens a fresh call (round 1)."""
    fl = _fleet("r1", config=CoreConfig(auction_rounds=1))
    fl.create("lift", "w1")
    _fire(fl)
    [conflict] = fl.core.conflicts(open_only=True)
    fx = fl.command("resolve_conflict", conflict_id=conflict, resolution="r1 fixed")
    assert _events(fx, "cfp_opened")[0]["round"] == 1


def test_a_step_leaving_the_auction_resolves_its_no_bids_conflict() -> None:
    """Switching the workflow to direct assigns the step and settles ``no_bids``."""
    fl = _fleet("r1", config=CoreConfig(auction_rounds=1))
    fl.create("lift", "w1")
    _fire(fl)
    fx = fl.command("set_coordination", workflow_id="w1", protocol="direct")
    assert "step_assigned" in _kinds(fx) and "conflict_resolved" in _kinds(fx)
    assert fl.core.conflicts(open_only=True) == {}


@pytest.mark.parametrize(("bidder", "cfp", "when", "error"), [
    ("r1", "cfp999", 0.0, StaleInput),   # no such call
    ("r9", None, 0.0, StaleInput),       # not invited
    ("r1", None, 6.0, StaleInput),       # after the deadline
    ("ghost", None, 0.0, UnknownEntity),  # never announced
])
def test_bad_bids_are_refused_and_change_nothing(
        bidder: str, cfp: str | None, when: float, error: type[Exception]) -> None:
    """Unknown calls, uninvited or unknown agents and late bids are refused, no event."""
    fl = _fleet("r1", "r2")
    fl.agent("r9", "robot", [])
    fl.create("lift", "w1")
    fl.at(fl.now + when)
    before = fl.core.snapshot()
    with pytest.raises(error):
        _bid(fl, bidder, 1.0, cfp=cfp)
    assert fl.core.snapshot() == before


def test_a_second_bid_is_refused_and_a_redelivered_one_ignored() -> None:
    """An agent bids once per call; the same bid event again changes nothing."""
    fl = _fleet("r1", "r2")
    fl.create("lift", "w1")
    bid = Bid(event_id="b1", agent_id="r1", ts=fl.now, cfp_id=_cfp(fl), cost=1.0)
    fl.feed(bid)
    assert fl.feed(bid) == []
    with pytest.raises(StaleInput, match="already bid"):
        _bid(fl, "r1", 0.5)


@pytest.mark.parametrize("action", ["cancel_workflow", "pause_workflow"])
def test_cancel_or_pause_drops_the_open_auction(action: str) -> None:
    """The auction closes with the workflow's input; its timer later does nothing."""
    fl = _fleet("r1", "r2")
    fl.create("lift", "w1")
    cfp = _cfp(fl)
    fx = fl.command(action, workflow_id="w1")
    assert [d["cfp"] for d in _events(fx, "auction_closed")] == [cfp]
    fl.at(fl.now + 100)
    assert fl.feed(TimerFired(f"auction:{cfp}")) == []
    with pytest.raises(StaleInput):
        _bid(fl, "r1", 1.0, cfp=cfp)


def test_a_paused_workflow_calls_afresh_when_resumed() -> None:
    """Resuming a workflow whose step waits opens a new call for proposals."""
    fl = _fleet("r1")
    fl.create("lift", "w1")
    fl.command("pause_workflow", workflow_id="w1")
    fx = fl.command("resume_workflow", workflow_id="w1")
    assert _events(fx, "cfp_opened")[0]["invited"] == ["r1"]


def test_a_winner_lost_before_accepting_leads_to_a_fresh_call() -> None:
    """The awarded agent goes offline: its auction closes and the step is called afresh
    among the agents still there."""
    fl = _fleet("r1", "r2")
    fl.create("lift", "w1")
    _bid(fl, "r1", 1.0)
    _bid(fl, "r2", 2.0)
    fx = fl.feed(AgentConn(agent_id="r1", online=False))
    assert "auction_closed" in _kinds(fx)
    assert _events(fx, "cfp_opened")[-1]["invited"] == ["r2"]


def test_a_restarted_core_rearms_the_auction_timer() -> None:
    """``Restarted`` re-arms ``auction:<cfp>`` at its due time."""
    fl = _fleet("r1", "r2")
    fl.create("lift", "w1")
    auction = fl.core.state.auctions[_cfp(fl)]
    assert fl.core.armed_timers()[f"auction:{auction.id}"] == auction.deadline
    restored = Core.restore(fl.core.snapshot(), "f1", {"lift": LIFT}, CONFIG)
    fx = restored.handle(Restarted(), fl.now + 1)
    assert SetTimer(f"auction:{auction.id}", auction.deadline) in fx


def test_replay_and_restore_equal_the_live_core() -> None:
    """Every auction event replayed, and the snapshot restored, give the live state."""
    fl = _fleet("r1", "r2", "r3")
    _agv(fl, "agv1", "far", battery=50.0)
    fl.create("lift", "w1")
    _bid(fl, "r1", 1.0)
    _bid(fl, "r2", 2.0)
    _fire(fl)                     # r1's award goes unanswered: r2
    fl.fail("w1", "s")            # r2 declines: r3 did not bid, agv1 is next
    fl.create("lift", "w2")       # a second auction stays open
    _bid(fl, "r1", 3.0, cfp=fl.core.state.auction_of[("w2", "s")])
    live = fl.core.snapshot()
    assert len(fl.core.state.auctions) == 2  # agv1 has not accepted w1.s yet
    replayed = Core("f1", {"lift": LIFT}, config=CONFIG)
    for effect in fl.effects:
        if isinstance(effect, Append):
            replayed.apply(effect.event)
    assert replayed.snapshot() == live
    assert Core.restore(live, "f1", {"lift": LIFT}, CONFIG).snapshot() == live


def test_step_failing_after_acceptance_is_an_ordinary_failure() -> None:
    """Once the winner accepted, failing is a failure (retry), not a decline."""
    fl = _fleet("r1", "r2")
    fl.create("lift", "w1")
    _bid(fl, "r1", 1.0)
    _bid(fl, "r2", 2.0)
    fl.accept("w1", "s")
    fx = fl.feed(StepFailed(event_id="f", agent_id="r1", ts=fl.now, workflow_id="w1",
                            step_id="s", attempt=1, error_type="jam"))
    assert "step_failed" in _kinds(fx) and "award_declined" not in _kinds(fx)
    assert not any(isinstance(e, Publish) and isinstance(e.message, Cancel) for e in fx)


def test_switching_a_waiting_workflow_to_auction_based_calls_for_proposals() -> None:
    """A step waiting under ``direct`` (no allowed agent free) is auctioned once the
    workflow switches to ``auction_based`` with agents that may take it."""
    one = load_template({"name": "one", "steps": [{"id": "s", "kind": "robot"}]})
    fl = ScriptedFleet(Core("f1", {"one": one}, config=CONFIG))
    fl.agent("r1", "robot", [])
    fl.create("one", "w1", agents=["r9"])
    fx = fl.command("set_coordination", workflow_id="w1", protocol="auction_based",
                    agents=["r1"])
    assert _events(fx, "cfp_opened")[0]["invited"] == ["r1"]
    assert "step_assigned" not in _kinds(fx)
