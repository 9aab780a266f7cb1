"""The hub actions the cloud hub's API needs: update_workflow, recover, list_checkpoints,
sync_arrival, and the scoped safety stop (facility_stop / facility_release)."""

from __future__ import annotations

from typing import Any

import pytest

from edge_runtime.core import (
    Append,
    CancelTimer,
    Core,
    CoreConfig,
    CoreError,
    Effect,
    Event,
    Publish,
    SetTimer,
    Template,
)
from edge_runtime.templates import load_template
from edge_runtime.testing import ScriptedFleet
from tests.test_core_replay import assert_replays_identically
from topics import AgentState, Assign, HubCommand, Pause, Resume

ONE = load_template({"name": "one", "steps": [{"id": "s", "kind": "robot"}]})
STRICT = load_template({"name": "strict", "steps": [
    {"id": "s", "kind": "robot", "retry": {"max_attempts": 1}}]})
SAGA = load_template({"name": "saga", "steps": [
    {"id": f"s{i}", "kind": "robot", "after": [f"s{i - 1}"] if i > 1 else [],
     "compensation": {"kind": "robot", "action": f"undo{i}"}} for i in range(1, 4)]})
MEET = load_template({"name": "meet", "steps": [
    {"id": "bring", "kind": "robot"}, {"id": "walk", "kind": "human"},
    {"id": "meet", "kind": "sync", "participants": ["bring", "walk"]},
    {"id": "after", "kind": "human", "after": ["meet"]}]})
ZONES = {"cold1": ("cold",), "cold2": ("cold",), "hot1": ("hot",)}
ALL = {t.name: t for t in (ONE, STRICT, SAGA, MEET)}


def _fleet(*robots: str, people: tuple[str, ...] = (), **config: Any) -> ScriptedFleet:
    core = Core("f1", ALL, config=CoreConfig(exclusive_zones=ZONES, manual_intervention=True,
                                             **config))
    fl = ScriptedFleet(core)
    for r in robots:
        fl.agent(r, "robot", [])
    for p in people:
        fl.agent(p, "human", [])
    return fl


def _reply(fx: list[Effect]) -> dict[str, Any]:
    [reply] = [e.event.data for e in fx if isinstance(e, Append)
               and e.event.kind == "command_reply"]
    return reply["result"]  # type: ignore[no-any-return]


def _kinds(fx: list[Effect]) -> list[str]:
    return [e.event.kind for e in fx if isinstance(e, Append)]


def _sent(fx: list[Effect], kind: type) -> list[str]:
    return sorted(e.topic.split("/")[4] for e in fx
                  if isinstance(e, Publish) and isinstance(e.message, kind))


def _refused(fl: ScriptedFleet, action: str, match: str, **args: Any) -> None:
    """The command is refused with ``match`` in its message and changes nothing."""
    before = fl.core.snapshot()
    with pytest.raises(CoreError, match=match):
        fl.command(action, **args)
    assert fl.core.snapshot() == before


def _at(fl: ScriptedFleet, agent: str, node: str) -> list[Effect]:
    return fl.feed(AgentState(agent_id=agent, ts=fl.now, node=node))


def _events(fl: ScriptedFleet) -> list[Event]:
    return [e.event for e in fl.effects if isinstance(e, Append)]


def _replays(fl: ScriptedFleet, templates: dict[str, Template] = ALL) -> None:
    config = fl.core.config
    assert_replays_identically(lambda: Core("f1", templates, config=config), fl.core,
                               fl.fed, _events(fl))


# --- update_workflow ------------------------------------------------------------------


def test_update_priority_requeues_waiting_steps() -> None:
    """A raised priority moves the workflow's waiting step ahead of older ones."""
    fl = _fleet()
    fl.create("one", "w1", priority=1)
    fl.create("one", "w2", priority=0)
    assert fl.core.queue() == [("w1", "s"), ("w2", "s")]
    reply = _reply(fl.command("update_workflow", workflow_id="w2", priority=5))
    assert reply["priority"] == 5 and reply["changed"] == ["priority"]
    assert fl.core.queue() == [("w2", "s"), ("w1", "s")]
    fl.agent("r1", "robot", [])
    assert fl.workflow("w2").steps["s"].agent == "r1"  # type: ignore[union-attr]
    _replays(fl)


def test_update_deadline_rearms_and_clears_its_timer() -> None:
    """A new deadline re-arms ``deadline:<id>``; clearing it cancels the timer."""
    fl = _fleet()
    fl.create("one", "w1", deadline=5000.0)
    fx = fl.command("update_workflow", workflow_id="w1", deadline=9000.0)
    assert [(e.timer_id, e.at) for e in fx if isinstance(e, SetTimer)] == [
        ("deadline:w1", 9000.0)]
    assert fl.workflow("w1").deadline == 9000.0  # type: ignore[union-attr]
    fx = fl.command("update_workflow", workflow_id="w1", clear_deadline=True)
    assert [e.timer_id for e in fx if isinstance(e, CancelTimer)] == ["deadline:w1"]
    assert fl.workflow("w1").deadline is None and fl.core.state.deadlines == 0  # type: ignore[union-attr]
    assert "deadline:w1" not in fl.core.armed_timers()
    _replays(fl)


def test_update_data_merges_and_counts_a_version() -> None:
    """Data is merged (other variables kept) and counts as one more data version."""
    fl = _fleet()
    fl.create("one", "w1", data={"a": 1, "b": 2})
    reply = _reply(fl.command("update_workflow", workflow_id="w1", data={"b": 3, "c": 4}))
    assert reply["data_version"] == 1
    assert fl.workflow("w1").data == {"a": 1, "b": 3, "c": 4}  # type: ignore[union-attr]
    _replays(fl)


def test_update_refusals_change_nothing() -> None:
    """Nothing to update, contradictory args, terminal or unknown workflows are refused."""
    fl = _fleet("r1")
    fl.create("one", "w1")
    _refused(fl, "update_workflow", "nothing to update", workflow_id="w1")
    _refused(fl, "update_workflow", "contradict", workflow_id="w1", deadline=1.0,
             clear_deadline=True)
    _refused(fl, "update_workflow", "unknown workflow", workflow_id="nope", priority=1)
    fl.command("recover", workflow_id="w1", strategy="manual_intervention", action="abort")
    assert fl.workflow("w1").state == "failed"  # type: ignore[union-attr]
    _refused(fl, "update_workflow", "w1 is failed", workflow_id="w1", priority=1)


def test_update_with_a_stale_expected_seq_is_refused_by_a_recorded_decision() -> None:
    """``expected_seq`` older than the workflow's last event: refused, not applied."""
    fl = _fleet()
    fl.create("one", "w1", priority=1)
    fl.command("update_workflow", workflow_id="w1", priority=2)
    reply = _reply(fl.command("update_workflow", workflow_id="w1", priority=9,
                              expected_seq=1))
    assert reply["refused"] == "stale_command"
    assert fl.workflow("w1").priority == 2  # type: ignore[union-attr]


# --- recover ----------------------------------------------------------------------------


def _failed_to_operator(fl: ScriptedFleet) -> None:
    fl.create("strict", "w1")
    fl.fail("w1", "s", retryable=False)
    assert fl.workflow("w1").steps["s"].state == "failed"  # type: ignore[union-attr]


def test_recover_automatic_retry_retries_failed_steps() -> None:
    """automatic_retry retries every failed step waiting for an operator."""
    fl = _fleet("r1")
    _failed_to_operator(fl)
    reply = _reply(fl.command("recover", workflow_id="w1", strategy="automatic_retry"))
    assert reply["retried"] == ["s"]
    assert fl.workflow("w1").steps["s"].state == "assigned"  # type: ignore[union-attr]
    _refused(fl, "recover", "no failed step", workflow_id="w1", strategy="automatic_retry")
    _replays(fl)


def test_recover_checkpoint_restore_restores_the_newest_by_default() -> None:
    """checkpoint_restore without an id restores the newest checkpoint."""
    fl = _fleet("r1")
    fl.create("saga", "w1")
    fl.finish("w1", "s1")
    cp = _reply(fl.command("checkpoint", workflow_id="w1"))["checkpoint"]
    fl.finish("w1", "s2")
    fl.command("recover", workflow_id="w1", strategy="checkpoint_restore")
    steps = fl.workflow("w1").steps  # type: ignore[union-attr]
    assert (steps["s1"].state, steps["s2"].state) == ("done", "assigned")
    assert fl.workflow("w1").checkpoints[-1] == cp  # type: ignore[union-attr]
    _refused(fl, "recover", "no checkpoint", workflow_id="w1", strategy="checkpoint_restore",
             checkpoint_id="cp999")
    _replays(fl)


def test_recover_partial_rollback_to_a_checkpoint_compensates_later_steps() -> None:
    """partial_rollback to a checkpoint undoes the steps finished after it, then redoes them."""
    fl = _fleet("r1")
    fl.create("saga", "w1")
    fl.finish("w1", "s1")
    cp = _reply(fl.command("checkpoint", workflow_id="w1"))["checkpoint"]
    fl.finish("w1", "s2")
    fl.command("recover", workflow_id="w1", strategy="partial_rollback", checkpoint_id=cp)
    steps = fl.workflow("w1").steps  # type: ignore[union-attr]
    assert steps["s2.undo"].state == "assigned" and "s1.undo" not in steps
    fl.finish("w1", "s2.undo")
    steps = fl.workflow("w1").steps  # type: ignore[union-attr]
    assert steps["s1"].state == "done" and steps["s2"].state == "assigned"
    _replays(fl)


def test_recover_manual_intervention_runs_the_operator_action() -> None:
    """manual_intervention carries out its operator action (here: skip a failed step)."""
    fl = _fleet("r1")
    _failed_to_operator(fl)
    fl.command("recover", workflow_id="w1", strategy="manual_intervention", action="skip",
               step_id="s")
    assert fl.core.archived("w1") == "completed"
    _replays(fl)


def test_recover_refusals_change_nothing() -> None:
    """Arguments a strategy does not take, a missing action, both targets: refused."""
    fl = _fleet("r1")
    _failed_to_operator(fl)
    _refused(fl, "recover", "does not take", workflow_id="w1", strategy="automatic_retry",
             checkpoint_id="cp1")
    _refused(fl, "recover", "needs the operator action", workflow_id="w1",
             strategy="manual_intervention")
    _refused(fl, "recover", "not both", workflow_id="w1", strategy="partial_rollback",
             step_id="s", checkpoint_id="cp1")
    _refused(fl, "recover", "strategy", workflow_id="w1", strategy="pray")


# --- list_checkpoints -------------------------------------------------------------------


def test_list_checkpoints_reads_without_touching_the_workflow() -> None:
    """The reply lists each checkpoint; the read is not an event of the workflow."""
    fl = _fleet("r1")
    fl.create("saga", "w1")
    fl.finish("w1", "s1")
    cp = _reply(fl.command("checkpoint", workflow_id="w1", label="mid"))["checkpoint"]
    last_seq = fl.core.state.workflows["w1"].last_seq
    fx = fl.command("list_checkpoints", workflow_id="w1")
    [listed] = _reply(fx)["checkpoints"]
    assert listed == {"id": cp, "label": "mid", "seq": int(cp[2:]), "at": listed["at"],
                      "state": "active.executing.step_preparation",
                      "steps": {"assigned": 1, "done": 1, "pending": 1}}
    assert listed["at"] > 1000.0
    assert _kinds(fx) == ["command_reply"]
    assert fl.core.state.workflows["w1"].last_seq == last_seq
    _refused(fl, "list_checkpoints", "unknown workflow", workflow_id="nope")
    _replays(fl)


# --- sync_arrival -----------------------------------------------------------------------


def test_hub_reported_arrivals_release_the_barrier() -> None:
    """Arrivals reported through the hub count like the agents' own; a repeat is ignored."""
    fl = _fleet("r1", people=("h1",))
    fl.create("meet", "w1")
    fl.finish("w1", "bring")
    fl.finish("w1", "walk")
    fx = fl.command("sync_arrival", workflow_id="w1", step_id="meet", agent_id="h1",
                    reported_by="supervisor-ann")
    [arrived] = [e.event.data for e in fx if isinstance(e, Append)
                 and e.event.kind == "sync_arrived"]
    assert arrived["reported_by"] == "supervisor-ann"
    assert _reply(fl.command("sync_arrival", workflow_id="w1", step_id="meet",
                             agent_id="h1"))["arrived"] is False
    reply = _reply(fl.command("sync_arrival", workflow_id="w1", step_id="meet",
                              agent_id="r1"))
    assert reply["released"] is True
    assert fl.workflow("w1").steps["meet"].state == "done"  # type: ignore[union-attr]
    assert fl.workflow("w1").steps["after"].state == "assigned"  # type: ignore[union-attr]
    _replays(fl)


def test_hub_reported_arrival_refusals_change_nothing() -> None:
    """A non-participant, a step that is no sync point, an unknown step: refused."""
    fl = _fleet("r1", people=("h1", "h2"))
    fl.create("meet", "w1")
    fl.finish("w1", "bring")
    _refused(fl, "sync_arrival", "not a participant", workflow_id="w1", step_id="meet",
             agent_id="h2")
    _refused(fl, "sync_arrival", "not a sync point", workflow_id="w1", step_id="bring",
             agent_id="r1")
    _refused(fl, "sync_arrival", "no step", workflow_id="w1", step_id="x", agent_id="r1")


# --- facility_stop ----------------------------------------------------------------------


def test_zone_stop_pauses_the_robots_in_the_zone_in_one_batch() -> None:
    """Robots in the zone are paused by the command's own batch; others are not."""
    fl = _fleet("r1", "r2", "r3")
    _at(fl, "r1", "cold1")
    _at(fl, "r2", "cold2")
    _at(fl, "r3", "hot1")
    fx = fl.command("facility_stop", zone="cold", reason="spill")
    assert _sent(fx, Pause) == ["r1", "r2"]
    reply = _reply(fx)
    assert reply["stopped"] == ["r1", "r2"]
    conflict = fl.core.conflicts()[reply["conflict_id"]]
    assert (conflict.rule, conflict.strategy, conflict.resource) == ("facility_stop", "stop",
                                                                      "cold")
    _replays(fl)


def test_a_stop_holds_allocation_in_scope_until_release() -> None:
    """No work in the stopped zone, a robot entering it paused, all resumed on release."""
    fl = _fleet("r1")
    _at(fl, "r1", "cold1")
    fl.command("facility_stop", zone="cold", reason="spill")
    fl.create("one", "w1")
    assert fl.workflow("w1").steps["s"].agent is None  # type: ignore[union-attr]
    fl.agent("r2", "robot", [])
    assert fl.workflow("w1").steps["s"].agent == "r2"  # type: ignore[union-attr]  # out of scope
    fl.create("one", "w2")
    fx = _at(fl, "r2", "cold2")
    assert _kinds(fx)[-2:] == ["conflict_joined", "agent_stopped"]
    assert _sent(fx, Pause) == ["r2"]
    fx = fl.command("facility_release", zone="cold")
    assert _sent(fx, Resume) == ["r1", "r2"] and _reply(fx)["resumed"] == ["r1", "r2"]
    assigned = [e.message.workflow_id for e in fx
                if isinstance(e, Publish) and isinstance(e.message, Assign)]
    assert assigned == ["w2"]
    _replays(fl)


def test_a_facility_stop_pauses_every_robot_and_holds_joiners() -> None:
    """The whole facility: every robot paused, people not; a robot joining is paused too."""
    fl = _fleet("r1", "r2", people=("h1",))
    fx = fl.command("facility_stop", reason="fire alarm")
    assert _sent(fx, Pause) == ["r1", "r2"]
    fl.agent("r3", "robot", [])
    assert _sent(fl.effects[-3:], Pause) == ["r3"]
    fl.create("one", "w1")
    assert fl.workflow("w1").steps["s"].agent is None  # type: ignore[union-attr]
    fx = fl.command("facility_release")
    assert _sent(fx, Resume) == ["r1", "r2", "r3"]
    assert fl.workflow("w1").steps["s"].agent is not None  # type: ignore[union-attr]
    _replays(fl)


def test_release_keeps_robots_a_person_zone_conflict_still_holds() -> None:
    """A robot sharing its zone with a person stays paused after the release."""
    fl = _fleet("r1", "r2", people=("h1",))
    _at(fl, "r1", "cold1")
    _at(fl, "r2", "hot1")
    _at(fl, "h1", "cold2")  # person_in_robot_zone pauses r1
    fl.command("facility_stop", reason="drill")
    fx = fl.command("facility_release")
    assert _sent(fx, Resume) == ["r2"]
    assert fl.core.state.agents["r1"].stopped_by is not None
    fx = _at(fl, "h1", "dock")
    assert _sent(fx, Resume) == ["r1"]
    _replays(fl)


def test_a_person_leaving_does_not_resume_a_robot_the_stop_holds() -> None:
    """The person's zone conflict clears during a stop: the robot stays paused until release."""
    fl = _fleet("r1", people=("h1",))
    _at(fl, "r1", "cold1")
    _at(fl, "h1", "cold2")
    fl.command("facility_stop", reason="drill")
    fx = _at(fl, "h1", "dock")
    assert "conflict_resolved" in _kinds(fx) and _sent(fx, Resume) == []
    assert fl.core.state.agents["r1"].stopped_by is not None
    assert _sent(fl.command("facility_release"), Resume) == ["r1"]
    _replays(fl)


def test_stop_refusals_change_nothing() -> None:
    """Bad zone, a second stop, a release without stop, resolve_conflict: all refused."""
    fl = _fleet("r1")
    _refused(fl, "facility_stop", "no exclusive zone 'moon'", zone="moon", reason="x")
    _refused(fl, "facility_stop", "reason", zone="cold")
    _refused(fl, "facility_release", "not stopped", zone="cold")
    cid = _reply(fl.command("facility_stop", zone="cold", reason="x"))["conflict_id"]
    _refused(fl, "facility_stop", "already stopped", zone="cold", reason="again")
    _refused(fl, "resolve_conflict", "facility_release", conflict_id=cid)
    _refused(fl, "resolve_conflict", "takes no choice", conflict_id=cid, choice="priority")


def test_a_redelivered_stop_is_ignored() -> None:
    """The same command id twice: one stop, one reply."""
    fl = _fleet("r1")
    cmd = HubCommand(command_id="stop-1", action="facility_stop", args={"reason": "x"})
    assert _sent(fl.feed(cmd), Pause) == ["r1"]
    assert fl.feed(cmd) == []
