"""Coalition steps: a step that needs several agents at once is allocated as one unit (all
or none, holding nobody while it waits), its members meet, and they are released together;
a member lost or failing sends the whole step back."""

from __future__ import annotations

import pytest
from teams_rig import (
    ONE,
    arrive,
    assert_replays,
    done,
    events,
    fail,
    fleet,
    kinds,
    sent,
    task,
    team_template,
)

from edge_runtime.core import CoreConfig, CoreError, TemplateError, TimerFired
from edge_runtime.templates import load_template
from topics import AgentConn, Assign, Cancel, SyncRelease

CARRY = team_template(outputs=["weight"])
HANDOVER = team_template("handover", team=[
    {"role": "courier", "capabilities": ["tray"]}, {"role": "receiver", "kind": "human"}])
TEMPLATES = {"carry": CARRY, "one": ONE, "handover": HANDOVER}


def test_a_team_is_assigned_in_one_event_and_each_member_gets_its_role() -> None:
    """Both robots are given the step by one team_assigned; each Assign names its role."""
    fl = fleet(TEMPLATES, [("r1", "robot"), ("r2", "robot")])
    fx = fl.create("carry", "w1")
    [data] = events(fx, "team_assigned")
    assert data["team"] == {"front": "r1", "back": "r2"} and "step_assigned" not in kinds(fx)
    assigns = sent(fx, Assign)
    assert [(a, m.role, m.team) for a, m in assigns] == [
        ("r1", "front", ["r1", "r2"]), ("r2", "back", ["r1", "r2"])]
    assert task(fl, "r1") == task(fl, "r2") == ("w1", "carry")


def test_a_team_mixes_kinds_and_capabilities_per_role() -> None:
    """A robot with a tray and a person are matched to the roles that need them."""
    fl = fleet(TEMPLATES, [("h1", "human")])
    fl.agent("r1", "robot", [])
    fl.agent("r2", "robot", ["tray"])
    [data] = events(fl.create("handover", "w1"), "team_assigned")
    assert data["team"] == {"courier": "r2", "receiver": "h1"}


def test_a_team_that_cannot_be_formed_holds_nobody_and_they_take_other_work() -> None:
    """With one robot of two free the step waits; the free robot is not held and takes a
    single-robot step queued after it."""
    fl = fleet(TEMPLATES, [("r1", "robot")])
    fx = fl.create("carry", "w1")
    assert kinds(fx)[-2:] == ["step_ready", "command_reply"] and not sent(fx, Assign)
    assert task(fl, "r1") is None and fl.core.agents()["r1"].status == "idle"
    fx = fl.create("one", "w2")
    assert [a for a, _ in sent(fx, Assign)] == ["r1"] and task(fl, "r1") == ("w2", "s")
    assert fl.core.queue() == [("w1", "carry")]


def test_the_team_forms_the_moment_enough_agents_are_free() -> None:
    """A second robot coming online completes the team: both are assigned together."""
    fl = fleet(TEMPLATES, [("r1", "robot")])
    fl.create("carry", "w1")
    fl.agent("r2", "robot", [])
    [data] = events(fl.effects, "team_assigned")
    assert data["team"] == {"front": "r1", "back": "r2"} and fl.core.queue() == []


def test_matching_finds_a_team_where_taking_the_best_agent_first_would_not() -> None:
    """r1 can do either role, r2 only the first: r1 is moved to the second role."""
    both = team_template("both", team=[{"role": "a", "capabilities": ["x"]},
                                       {"role": "b", "capabilities": ["y"]}])
    fl = fleet({"both": both}, [])
    fl.agent("r1", "robot", ["x", "y"])
    fl.agent("r2", "robot", ["x"])
    [data] = events(fl.create("both", "w1"), "team_assigned")
    assert data["team"] == {"a": "r2", "b": "r1"}


def test_members_meet_before_the_work_and_are_released_together() -> None:
    """The step executes when the last member arrives; every member gets its release."""
    fl = fleet(TEMPLATES, [("r1", "robot"), ("r2", "robot")])
    fl.create("carry", "w1")
    fx = arrive(fl, "w1", "r1")
    assert kinds(fx) == ["sync_arrived"] and not sent(fx, SyncRelease)
    with pytest.raises(CoreError, match="before its team met"):
        done(fl, "w1", "r1", weight=3)
    fx = arrive(fl, "w1", "r2")
    assert kinds(fx) == ["sync_arrived", "team_met"]
    assert sorted(a for a, _ in sent(fx, SyncRelease)) == ["r1", "r2"]
    view = fl.workflow("w1")
    assert view is not None and view.steps["carry"].state == "executing"


def test_the_step_ends_and_frees_its_members_only_when_all_are_done() -> None:
    """The first member done stays held; the last one ends the step with merged outputs."""
    fl = fleet(TEMPLATES, [("r1", "robot"), ("r2", "robot")])
    fl.create("carry", "w1")
    arrive(fl, "w1", "r1")
    arrive(fl, "w1", "r2")
    assert kinds(done(fl, "w1", "r1", weight=3)) == ["member_done"]
    assert task(fl, "r1") == ("w1", "carry")
    fx = done(fl, "w1", "r2", side="left")
    assert kinds(fx)[:2] == ["member_done", "step_done"]
    assert events(fx, "step_done")[0]["outputs"] == {"weight": 3, "side": "left"}
    assert task(fl, "r1") is None and task(fl, "r2") is None
    assert fl.core.archived("w1") == "completed"


def test_missing_outputs_across_all_members_fail_the_attempt() -> None:
    """No member reported the step's output: invalid_output, retried as a unit."""
    fl = fleet(TEMPLATES, [("r1", "robot"), ("r2", "robot")])
    fl.create("carry", "w1")
    arrive(fl, "w1", "r1")
    arrive(fl, "w1", "r2")
    done(fl, "w1", "r1")
    fx = done(fl, "w1", "r2")
    assert events(fx, "step_failed")[0]["error"] == "invalid_output"
    assert task(fl, "r1") is None and task(fl, "r2") is None


def test_a_lost_member_sends_the_whole_step_back_and_cancels_the_others() -> None:
    """r2 going offline: r1 is told to cancel, both are freed, the step waits as a unit and
    is formed again when a robot is back."""
    fl = fleet(TEMPLATES, [("r1", "robot"), ("r2", "robot")])
    fl.create("carry", "w1")
    arrive(fl, "w1", "r1")
    fx = fl.feed(AgentConn(agent_id="r2", online=False))
    assert [a for a, _ in sent(fx, Cancel)] == ["r1"]
    assert events(fx, "step_requeued")[0]["reason"] == "agent offline"
    assert task(fl, "r1") is None and fl.core.queue() == [("w1", "carry")]
    fl.agent("r3", "robot", [])
    [data] = events(fl.effects, "team_assigned")[1:]
    assert data["team"] == {"front": "r1", "back": "r3"} and data["attempt"] == 2
    view = fl.workflow("w1")
    assert view is not None and view.steps["carry"].state == "assigned"


def test_a_failing_member_fails_the_step_as_a_unit_and_it_is_retried_whole() -> None:
    """r1 fails: r2 is cancelled, the failure counts once, and the retry forms a team."""
    fl = fleet(TEMPLATES, [("r1", "robot"), ("r2", "robot")])
    fl.create("carry", "w1")
    fx = fail(fl, "w1", "r1")
    assert [a for a, _ in sent(fx, Cancel)] == ["r2"]
    assert kinds(fx)[:2] == ["step_failed", "step_retry"]
    assert task(fl, "r1") is None and task(fl, "r2") is None
    [(timer, at)] = [(d["step"], d["at"]) for d in events(fx, "step_retry")]
    fl.at(at)
    fx = fl.feed(TimerFired(f"retry:w1/{timer}"))
    assert events(fx, "team_assigned")[0]["attempt"] == 2


def test_a_timeout_cancels_every_member() -> None:
    """The step's timeout tells both members to cancel and frees both."""
    fl = fleet({"carry": team_template(timeout_s=30)}, [("r1", "robot"), ("r2", "robot")])
    fl.create("carry", "w1")
    fl.at(fl.now + 30)
    fx = fl.feed(TimerFired("timeout:w1/carry"))
    assert sorted(a for a, _ in sent(fx, Cancel)) == ["r1", "r2"]
    assert events(fx, "step_failed")[0]["error"] == "timeout"


def test_reports_from_agents_outside_the_team_are_refused() -> None:
    """A robot not in the team cannot arrive at, or finish, the step."""
    fl = fleet(TEMPLATES, [("r1", "robot"), ("r2", "robot"), ("r3", "robot")])
    fl.create("carry", "w1")
    with pytest.raises(CoreError, match="the team is r1, r2"):
        arrive(fl, "w1", "r3")


def test_a_starving_team_keeps_free_agents_from_steps_queued_after_it() -> None:
    """After team_patience passes, a single step queued later does not take the free robot
    the team needs; the team forms as soon as its second robot is free."""
    config = CoreConfig(team_patience=1)
    fl = fleet(TEMPLATES, [("r1", "robot")], config=config)
    fl.create("one", "w0")                        # r1 busy
    fl.agent("r2", "robot", [])
    fl.create("carry", "w1")                      # r2 free, r1 busy: cannot form
    fl.create("one", "w2")                        # takes r2 (not starving yet) …
    assert task(fl, "r2") == ("w2", "s")
    fl.finish("w2", "s")                          # r2 free again: the team is passed
    assert events(fl.effects, "team_passed")[-1] == {
        "step": "carry", "passes": 1, "starving": True}
    fl.create("one", "w3")                        # … but no longer: r2 stays free
    assert task(fl, "r2") is None and ("w3", "s") in fl.core.queue()
    fl.finish("w0", "s")                          # r1 free: the team forms first
    assert task(fl, "r1") == task(fl, "r2") == ("w1", "carry")
    assert_replays(fl, TEMPLATES, config)


def test_a_team_that_could_never_form_keeps_nobody() -> None:
    """Starving, but only one robot exists: later single steps still take it."""
    config = CoreConfig(team_patience=1)
    fl = fleet(TEMPLATES, [("r1", "robot")], config=config)
    fl.create("carry", "w1")
    fl.create("one", "w2")
    fl.finish("w2", "s")
    assert events(fl.effects, "team_passed")
    fl.create("one", "w3")
    assert task(fl, "r1") == ("w3", "s")


def test_scripted_agents_complete_a_coalition_workflow() -> None:
    """ScriptedFleet members meet and finish: the workflow completes."""
    fl = fleet(TEMPLATES, [("r1", "robot"), ("r2", "robot")])
    fl.outputs = lambda a: {"weight": 5} if a.role == "front" else {}
    fl.create("carry", "w1")
    fl.run()
    assert fl.core.archived("w1") == "completed"


def test_coalition_history_replays_and_restores_byte_for_byte() -> None:
    """Assignments, a loss, a meeting and completion replay to the live state."""
    fl = fleet(TEMPLATES, [("r1", "robot"), ("r2", "robot"), ("r3", "robot")])
    fl.create("carry", "w1")
    arrive(fl, "w1", "r1")
    fl.feed(AgentConn(agent_id="r2", online=False))
    arrive(fl, "w1", "r1")
    assert_replays(fl, TEMPLATES)                  # mid-step: team, arrivals held
    arrive(fl, "w1", "r3")
    done(fl, "w1", "r1", weight=1)
    assert_replays(fl, TEMPLATES)                  # one member done
    done(fl, "w1", "r3")
    assert_replays(fl, TEMPLATES)


@pytest.mark.parametrize(("step", "message"), [
    ({"kind": "sync", "participants": ["a", "b"], "team": [{"role": "x"}, {"role": "y"}]},
     "only robot, human and ai steps have a team"),
    ({"kind": "robot", "team": [{"role": "x"}]}, "a team has 2 to 16 members"),
    ({"kind": "robot", "team": [{"role": "x"}, {"role": "x"}]}, r"team\[1\].role: duplicate"),
    ({"kind": "robot", "team": [{"role": "x", "kind": "dog"}, {"role": "y"}]},
     r"team\[0\].kind"),
])
def test_bad_teams_are_refused_naming_the_field(step: dict[str, object], message: str) -> None:
    """A team on a non-agent step, of one member, with a repeated role or unknown kind."""
    steps = [{"id": "a", "kind": "robot"}, {"id": "b", "kind": "robot"}, {"id": "c", **step}]
    with pytest.raises(TemplateError, match=message):
        load_template({"name": "bad", "steps": steps})


def test_a_coalition_step_cannot_be_a_sync_participant() -> None:
    """Its members meet at the step itself; a later barrier cannot name it."""
    with pytest.raises(TemplateError, match="is a coalition step"):
        load_template({"name": "bad", "steps": [
            {"id": "a", "kind": "robot", "team": [{"role": "x"}, {"role": "y"}]},
            {"id": "b", "kind": "robot"},
            {"id": "s", "kind": "sync", "participants": ["a", "b"]}]})


def test_cancelling_a_workflow_tells_every_member_and_frees_them_together() -> None:
    """The hub's cancel reaches both members; once confirmed both are free at once."""
    fl = fleet(TEMPLATES, [("r1", "robot"), ("r2", "robot")])
    fl.create("carry", "w1")
    fx = fl.command("cancel_workflow", workflow_id="w1", reason="not needed")
    assert sorted(a for a, _ in sent(fx, Cancel)) == ["r1", "r2"]
    fl.confirm("w1", "carry")
    assert task(fl, "r1") is None and task(fl, "r2") is None
    assert fl.core.archived("w1") == "cancelled"


def test_a_team_waits_for_its_resource_and_holds_it_once_formed() -> None:
    """The lift is held by another step: no team; once it is free the team takes it."""
    lift_one = load_template({"name": "lift_one", "steps": [
        {"id": "s", "kind": "robot", "resources": ["lift"]}]})
    templates = {"carry": team_template(resources=["lift"]), "lift_one": lift_one}
    fl = fleet(templates, [("r1", "robot"), ("r2", "robot"), ("r3", "robot")])
    fl.create("lift_one", "w0")
    fl.create("carry", "w1")
    assert not events(fl.effects, "team_assigned")
    fl.finish("w0", "s")
    [data] = events(fl.effects, "team_assigned")
    assert fl.core.resource_holds() == {"lift": ("w1", "carry")}
    assert data["team"] == {"front": "r1", "back": "r2"}


def test_a_mix_of_coalition_and_single_steps_all_complete_and_replay() -> None:
    """Twenty workflows, pairs and singles interleaved, over three robots: every one
    completes (no team starves, nobody is held), and the history replays identically."""
    config = CoreConfig(team_patience=2)
    fl = fleet(TEMPLATES, [("r1", "robot"), ("r2", "robot"), ("r3", "robot")], config=config)
    fl.outputs = lambda a: {"weight": 1}
    for n in range(20):
        fl.create("carry" if n % 3 == 0 else "one", f"w{n}")
    fl.run()
    assert [fl.core.archived(f"w{n}") for n in range(20)] == ["completed"] * 20
    assert_replays(fl, TEMPLATES, config)
