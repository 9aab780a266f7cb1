"""``leader_follower``: a coalition step's team gets a leader (lowest cost, then id), the
followers are told its target and pace, and a lost or failing leader is replaced without
failing the step."""

from __future__ import annotations

from teams_rig import (
    arrive,
    assert_replays,
    done,
    events,
    fail,
    fleet,
    kinds,
    progress,
    sent,
    task,
    team_template,
)

from edge_runtime.core import Agent, CoreConfig, Step, WorkflowRun
from edge_runtime.testing import ScriptedFleet
from topics import AgentConn, Cancel, Follow

LF = team_template("lf", "leader_follower", team=[
    {"role": "front"}, {"role": "middle"}, {"role": "back"}])
DIRECT = team_template("direct")
TEMPLATES = {"lf": LF, "direct": DIRECT}
ROBOTS = [("r1", "robot"), ("r2", "robot"), ("r3", "robot")]


def _cost(agent: Agent, step: Step, wf: WorkflowRun) -> float:
    """r2 is the closest, then r3, then r1."""
    return {"r1": 9.0, "r2": 1.0, "r3": 5.0}[agent.id]


def _met(config: CoreConfig | None = None) -> ScriptedFleet:
    fl = fleet(TEMPLATES, ROBOTS, config=config)
    fl.create("lf", "w1")
    for aid in ("r1", "r2", "r3"):
        arrive(fl, "w1", aid)
    return fl


def test_the_cheapest_member_is_elected_leader_and_everyone_is_told() -> None:
    """With costs, r2 leads; every member gets a Follow naming it and the target node."""
    fl = fleet(TEMPLATES, ROBOTS, config=CoreConfig(cost=_cost))
    fx = fl.create("lf", "w1")
    assert kinds(fx)[2:4] == ["team_assigned", "leader_elected"]
    [elected] = events(fx, "leader_elected")
    assert (elected["leader"], elected["previous"], elected["reason"]) == (
        "r2", None, "assigned")
    follows = sent(fx, Follow)
    assert sorted(a for a, _ in follows) == ["r1", "r2", "r3"]
    assert {(m.leader, m.target) for _, m in follows} == {("r2", "dock")}
    view = fl.workflow("w1")
    assert view is not None and view.steps["carry"].agent == "r2"


def test_without_costs_the_lowest_id_leads() -> None:
    """Equal costs: the tie goes to the lower id."""
    fl = fleet(TEMPLATES, ROBOTS)
    [elected] = events(fl.create("lf", "w1"), "leader_elected")
    assert elected["leader"] == "r1"


def test_the_leaders_progress_is_forwarded_to_the_followers_only() -> None:
    """The leader's progress becomes the step's and a Follow to each follower; a
    follower's progress is not recorded or forwarded."""
    fl = _met()
    fx = progress(fl, "w1", "r1", 0.4)
    assert kinds(fx) == ["step_progress"]
    follows = sent(fx, Follow)
    assert sorted(a for a, _ in follows) == ["r2", "r3"]
    assert {(m.leader, m.progress) for _, m in follows} == {("r1", 0.4)}
    fx = progress(fl, "w1", "r2", 0.9)
    assert kinds(fx) == [] and sent(fx, Follow) == []


def test_a_lost_leader_is_replaced_without_failing_the_step() -> None:
    """r1 (leader) goes offline mid-step: it is dropped, r2 is elected, the followers are
    told, and the step completes when the remaining members are done."""
    fl = _met()
    progress(fl, "w1", "r1", 0.5)
    fx = fl.feed(AgentConn(agent_id="r1", online=False))
    assert kinds(fx) == ["agent_lost", "member_dropped", "leader_elected"]
    [elected] = events(fx, "leader_elected")
    assert (elected["leader"], elected["previous"], elected["reason"]) == (
        "r2", "r1", "leader r1 agent offline")
    assert {(a, m.leader, m.progress) for a, m in sent(fx, Follow)} == {
        ("r2", "r2", 0.5), ("r3", "r2", 0.5)}
    assert not sent(fx, Cancel) and "step_failed" not in kinds(fx)
    view = fl.workflow("w1")
    assert view is not None
    assert view.steps["carry"].state == "executing" and view.steps["carry"].agent == "r2"
    assert task(fl, "r1") is None
    done(fl, "w1", "r2")
    done(fl, "w1", "r3")
    assert fl.core.archived("w1") == "completed"


def test_a_failing_leader_is_replaced_and_the_failure_does_not_count() -> None:
    """The leader's step_failed drops it: a new leader, no step failure, no retry."""
    fl = _met()
    fx = fail(fl, "w1", "r1")
    assert kinds(fx) == ["member_dropped", "leader_elected"]
    assert events(fx, "member_dropped")[0]["reason"] == "failed: jammed"
    view = fl.workflow("w1")
    assert view is not None
    assert view.steps["carry"].failures == 0 and view.steps["carry"].agent == "r2"


def test_a_lost_follower_is_dropped_and_the_leader_stays() -> None:
    """A follower going offline leaves the team; no election."""
    fl = _met()
    fx = fl.feed(AgentConn(agent_id="r3", online=False))
    assert kinds(fx) == ["agent_lost", "member_dropped"]


def test_a_leader_lost_before_the_meeting_lets_the_others_meet() -> None:
    """The team had not met; with the leader gone the two who arrived are all: they meet."""
    fl = fleet(TEMPLATES, ROBOTS)
    fl.create("lf", "w1")
    arrive(fl, "w1", "r2")
    arrive(fl, "w1", "r3")
    fx = fl.feed(AgentConn(agent_id="r1", online=False))
    assert kinds(fx) == ["agent_lost", "member_dropped", "leader_elected", "team_met"]


def test_the_last_member_lost_sends_the_step_back() -> None:
    """With every member gone the step waits to be allocated again."""
    fl = _met()
    for aid in ("r1", "r2"):
        fl.feed(AgentConn(agent_id=aid, online=False))
    fx = fl.feed(AgentConn(agent_id="r3", online=False))
    assert "step_requeued" in kinds(fx)
    assert fl.core.queue() == [("w1", "carry")]


def test_direct_coalitions_elect_no_leader() -> None:
    """Under direct coordination no leader_elected and no Follow: the first role leads."""
    fl = fleet(TEMPLATES, ROBOTS)
    fx = fl.create("direct", "w1")
    assert "leader_elected" not in kinds(fx) and sent(fx, Follow) == []


def test_leader_follower_history_replays_and_restores_byte_for_byte() -> None:
    """Election, progress, a replaced leader and completion replay to the live state."""
    config = CoreConfig(cost=_cost)
    fl = _met(config)
    progress(fl, "w1", "r2", 0.3)
    fl.feed(AgentConn(agent_id="r2", online=False))
    assert_replays(fl, TEMPLATES, config)
    done(fl, "w1", "r1")
    done(fl, "w1", "r3")
    assert_replays(fl, TEMPLATES, config)
