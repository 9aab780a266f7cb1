"""``consensus``: agents vote on a decision point; a quorum majority decides, a timeout
takes the template's default branch (docs/coordination.md, "consensus")."""

from __future__ import annotations

from typing import Any

import pytest

from edge_runtime.core import Append, Core, CoreError, Publish, StaleInput, TimerFired
from edge_runtime.templates import load_template
from edge_runtime.testing import ScriptedFleet
from topics import Ballot, Vote


def _template(quorum: float = 0.5, default: str = "else", coordination: str = "consensus",
              condition: str | None = None) -> Any:
    vote = {"participants": ["human"], "quorum": quorum, "timeout_s": 30,
            "default": default, "question": "Rework the part?"}
    go: dict[str, Any] = {"id": "go", "kind": "decision", "vote": vote,
                          "then": ["rework"], "else": ["ship"]}
    if condition is not None:
        go["condition"] = condition
    return load_template({"name": "vt", "coordination": coordination, "steps": [
        go, {"id": "rework", "kind": "robot"}, {"id": "ship", "kind": "robot"}]})


def _fleet(n: int = 3, **kw: Any) -> ScriptedFleet:
    fl = ScriptedFleet(Core("f1", {"vt": _template(**kw)}))
    for i in range(1, n + 1):
        fl.agent(f"h{i}", "human", [])
    fl.agent("r1", "robot", [])
    fl.at(1000.0)
    fl.create("vt", "w1")
    return fl


def _vote_id(fl: ScriptedFleet) -> str:
    ballot = fl.core.workflow("w1").steps["go"]  # type: ignore[union-attr]
    assert ballot.state == "executing"
    opened = [e.event for e in fl.effects if isinstance(e, Append)
              and e.event.kind == "vote_opened" and e.event.workflow_id == "w1"]
    return str(opened[-1].data["vote"])


def _vote(fl: ScriptedFleet, agent: str, choice: str, vote_id: str | None = None,
          eid: str | None = None) -> list[Any]:
    return fl.feed(Vote(event_id=eid or f"{agent}-{len(fl.fed)}", agent_id=agent, ts=0,
                        vote_id=vote_id or _vote_id(fl), workflow_id="w1", step_id="go",
                        choice=choice))  # type: ignore[arg-type]


def _kinds(effects: list[Any]) -> list[str]:
    return [e.event.kind for e in effects if isinstance(e, Append)]


def _decided(fl: ScriptedFleet) -> dict[str, Any]:
    return next(e.event.data for e in fl.effects if isinstance(e, Append)
                and e.event.kind == "step_decided")


def test_reaching_the_decision_point_opens_a_vote_and_sends_ballots() -> None:
    """Every online human gets a ballot; the step executes while the vote is open."""
    fl = _fleet()
    ballots = [(e.topic.split("/")[4], e.message) for e in fl.effects
               if isinstance(e, Publish) and isinstance(e.message, Ballot)]
    assert [a for a, _ in ballots] == ["h1", "h2", "h3"]
    ballot = ballots[0][1]
    assert (ballot.then, ballot.otherwise, ballot.question) == (["rework"], ["ship"],
                                                                "Rework the part?")
    assert ballot.deadline_ts == pytest.approx(1030.0, abs=0.1)
    opened = next(e.event.data for e in fl.effects if isinstance(e, Append)
                  and e.event.kind == "vote_opened")
    assert opened["voters"] == ["h1", "h2", "h3"] and opened["quorum"] == 2
    assert fl.core.workflow("w1").steps["go"].state == "executing"  # type: ignore[union-attr]
    assert "vote:w1/go" in fl.core.armed_timers()


def test_a_majority_decides_as_soon_as_it_cannot_be_overturned() -> None:
    """Two of three vote then: decided at the second vote, the then branch runs."""
    fl = _fleet()
    assert _kinds(_vote(fl, "h1", "then")) == ["vote_cast"]
    kinds = _kinds(_vote(fl, "h2", "then"))
    assert kinds[:3] == ["vote_cast", "vote_closed", "step_decided"]
    assert _decided(fl)["result"] is True and _decided(fl)["reason"] == "majority"
    steps = fl.core.workflow("w1").steps  # type: ignore[union-attr]
    assert steps["ship"].state == "skipped" and steps["rework"].state == "assigned"


def test_a_split_vote_waits_for_the_last_voter() -> None:
    """One then, one else: the third vote decides."""
    fl = _fleet()
    _vote(fl, "h1", "then")
    assert _kinds(_vote(fl, "h2", "else")) == ["vote_cast"]
    _vote(fl, "h3", "else")
    closed = next(e.event.data for e in fl.effects if isinstance(e, Append)
                  and e.event.kind == "vote_closed")
    assert closed["tally"] == {"then": 1, "else": 2} and closed["choice"] == "else"


def test_a_vote_that_times_out_takes_the_default() -> None:
    """Nobody votes: at the deadline the default branch (else) is taken."""
    fl = _fleet(default="else")
    fl.at(1031.0)
    kinds = _kinds(fl.feed(TimerFired("vote:w1/go")))
    assert kinds[:2] == ["vote_closed", "step_decided"]
    assert _decided(fl) == {"step": "go", "result": False, "reason": "timeout",
                            "vote": _decided(fl)["vote"]}
    assert fl.core.workflow("w1").steps["ship"].state == "assigned"  # type: ignore[union-attr]


def test_quorum_not_reached_takes_the_default_at_the_deadline() -> None:
    """Quorum 1.0: two then-votes of three do not count; at the deadline the default
    (else) is taken."""
    fl = _fleet(quorum=1.0, default="else")
    _vote(fl, "h1", "then")
    _vote(fl, "h2", "then")
    assert "step_decided" not in _kinds(fl.effects)
    fl.at(1031.0)
    fl.feed(TimerFired("vote:w1/go"))
    assert _decided(fl)["result"] is False and _decided(fl)["reason"] == "timeout"


def test_at_the_deadline_a_quorate_lead_decides() -> None:
    """Quorum reached and one branch leads when time runs out: that branch wins."""
    fl = _fleet(n=5, quorum=0.4, default="else")
    _vote(fl, "h1", "then")
    _vote(fl, "h2", "then")
    _vote(fl, "h3", "else")
    fl.at(1031.0)
    fl.feed(TimerFired("vote:w1/go"))
    assert _decided(fl)["result"] is True and _decided(fl)["reason"] == "majority"


def test_a_tie_takes_the_default() -> None:
    """Two voters split evenly: the default branch."""
    fl = _fleet(n=2, default="then")
    _vote(fl, "h1", "then")
    _vote(fl, "h2", "else")
    assert _decided(fl)["result"] is True and _decided(fl)["reason"] == "tie"


def test_an_early_timer_changes_nothing() -> None:
    """A vote timer before the deadline (or for a closed vote) is a no-op."""
    fl = _fleet()
    assert fl.feed(TimerFired("vote:w1/go")) == []
    _vote(fl, "h1", "then")
    _vote(fl, "h2", "then")
    fl.at(1031.0)
    assert fl.feed(TimerFired("vote:w1/go")) == []


@pytest.mark.parametrize("case", ["duplicate", "not_a_voter", "wrong_vote", "late", "closed"])
def test_invalid_votes_are_refused_and_change_nothing(case: str) -> None:
    """A second vote, a stranger's, a wrong vote id, one after the deadline or after the
    decision: StaleInput, nothing changes."""
    fl = _fleet()
    vote_id = _vote_id(fl)
    agent, choice = "h1", "else"
    if case == "duplicate":
        _vote(fl, "h1", "then")
    elif case == "not_a_voter":
        agent = "r1"
    elif case == "wrong_vote":
        vote_id = "v999"
    elif case == "late":
        fl.at(1040.0)
    else:
        _vote(fl, "h1", "then")
        _vote(fl, "h2", "then")
        agent = "h3"
    before = fl.core.snapshot()
    with pytest.raises(StaleInput):
        _vote(fl, agent, choice, vote_id)
    assert fl.core.snapshot() == before


def test_a_redelivered_vote_is_ignored() -> None:
    """The same event id again: no second vote_cast, no error."""
    fl = _fleet()
    _vote(fl, "h1", "then", eid="x1")
    assert _vote(fl, "h1", "then", eid="x1") == []


def test_votes_from_unknown_agents_or_workflows_are_refused() -> None:
    """An agent that never announced itself, or an unknown workflow: a CoreError."""
    fl = _fleet()
    with pytest.raises(CoreError):
        _vote(fl, "ghost", "then")
    with pytest.raises(CoreError):
        fl.feed(Vote(event_id="z", agent_id="h1", ts=0, vote_id="v1", workflow_id="nope",
                     step_id="go", choice="then"))


def test_step_voters_are_the_agents_that_did_those_steps() -> None:
    """A participant naming a step: the agent that did it votes, once it is done."""
    t = load_template({"name": "sv", "coordination": "consensus", "steps": [
        {"id": "look", "kind": "human"},
        {"id": "go", "kind": "decision", "after": ["look"], "then": ["fix"],
         "vote": {"participants": ["look", "ai"], "timeout_s": 10}},
        {"id": "fix", "kind": "robot"}]})
    fl = ScriptedFleet(Core("f1", {"sv": t}))
    fl.agent("h1", "human", [])
    fl.agent("a1", "ai", [])
    fl.create("sv", "w1")
    fl.finish("w1", "look")
    opened = next(e.event.data for e in fl.effects if isinstance(e, Append)
                  and e.event.kind == "vote_opened")
    assert opened["voters"] == ["h1", "a1"]


def test_outside_consensus_the_condition_decides() -> None:
    """A direct workflow's voted step is decided by its condition, with no vote."""
    fl = _fleet(coordination="direct", condition="true")
    assert "vote_opened" not in _kinds(fl.effects)
    assert _decided(fl)["result"] is True


def test_outside_consensus_without_a_condition_the_default_is_taken() -> None:
    """No condition and no vote to hold: the default branch at once."""
    fl = _fleet(coordination="direct", default="then")
    assert _decided(fl) == {"step": "go", "result": True, "reason": "not_voted"}


def test_nobody_to_vote_takes_the_default() -> None:
    """No online agent of the participant kind: the default at once."""
    fl = _fleet(n=0, default="then")
    assert _decided(fl)["reason"] == "no_voters" and _decided(fl)["result"] is True


def test_a_vote_on_a_non_decision_step_is_refused_when_the_template_loads() -> None:
    """``vote`` belongs on decision steps, and names steps or agent kinds."""
    from edge_runtime.core import TemplateError
    with pytest.raises(TemplateError, match="only decision steps"):
        load_template({"name": "x", "steps": [
            {"id": "a", "kind": "robot", "vote": {"participants": ["human"]}}]})
    with pytest.raises(TemplateError, match="neither a step nor an agent kind"):
        load_template({"name": "x", "steps": [
            {"id": "a", "kind": "decision", "vote": {"participants": ["nobody"]}}]})


def test_consensus_replays_and_restores_byte_for_byte() -> None:
    """A history with an open vote and a closed one replays, and restores, identically."""
    fl = _fleet()
    _vote(fl, "h1", "then")
    fl.create("vt", "w2")
    live = fl.core.snapshot()
    replayed = Core("f1", {"vt": _template()})
    for e in fl.effects:
        if isinstance(e, Append):
            replayed.apply(e.event)
    assert replayed.snapshot() == live
    restored = Core.restore(live, "f1", {"vt": _template()})
    assert restored.snapshot() == live
    assert restored.armed_timers() == fl.core.armed_timers()
    _vote(fl, "h2", "then")  # the restored core takes the same vote the same way
    assert _decided(fl)["reason"] == "majority"


def test_a_cancelled_workflows_vote_takes_no_votes_and_its_timer_does_nothing() -> None:
    """Cancelled with the vote open: a vote is refused, the deadline changes nothing."""
    fl = _fleet()
    vote_id = _vote_id(fl)
    fl.command("cancel_workflow", workflow_id="w1")
    with pytest.raises(StaleInput):
        _vote(fl, "h1", "then", vote_id)
    fl.at(1031.0)
    assert _kinds(fl.feed(TimerFired("vote:w1/go"))) == []
