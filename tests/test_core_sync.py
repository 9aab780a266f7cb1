"""Sync points: Assign names the barrier and the outputs; arrivals count whenever they come."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from edge_runtime.core import (
    Append,
    Core,
    CoreError,
    Effect,
    Publish,
    SetTimer,
    StaleInput,
    TemplateError,
    TimerFired,
)
from edge_runtime.templates import load_template
from edge_runtime.testing import ScriptedFleet
from topics import Assign, Cancel, SyncArrival, SyncRelease

MEET = load_template({"name": "meet", "steps": [
    {"id": "r", "kind": "robot", "outputs": ["part"]},
    {"id": "h", "kind": "human"},
    {"id": "s", "kind": "sync", "participants": ["r", "h"], "timeout_s": 60},
    {"id": "fit", "kind": "human", "after": ["s"]},
]})


def _fleet() -> ScriptedFleet:
    fl = ScriptedFleet(Core("f1", {"meet": MEET}))
    fl.agent("r1", "robot", [])
    fl.agent("h1", "human", [])
    fl.create("meet", "w1")
    return fl


def _arrive(fl: ScriptedFleet, agent_id: str, step_id: str = "s") -> list[Effect]:
    return fl.feed(SyncArrival(event_id=f"{agent_id}-{fl.now}", agent_id=agent_id,
                               workflow_id="w1", step_id=step_id, ts=fl.now))


def _sent(fx: list[Effect], cls: type[Any]) -> list[tuple[str, Any]]:
    return [(e.topic.split("/")[4], e.message) for e in fx
            if isinstance(e, Publish) and isinstance(e.message, cls)]


def _kinds(fx: list[Effect]) -> list[str]:
    return [e.event.kind for e in fx if isinstance(e, Append)]


def _step_state(fl: ScriptedFleet, step_id: str) -> str:
    wf = fl.workflow("w1")
    assert wf is not None
    return wf.steps[step_id].state


def test_assign_names_the_outputs_and_the_sync_point() -> None:
    """Each participant's Assign carries the template's outputs and its barrier's id."""
    fl = ScriptedFleet(Core("f1", {"meet": MEET}))
    fl.agent("r1", "robot", [])
    fl.agent("h1", "human", [])
    assigns = dict(_sent(fl.create("meet", "w1"), Assign))
    assert (assigns["r1"].outputs, assigns["r1"].sync_point) == (["part"], "s")
    assert (assigns["h1"].outputs, assigns["h1"].sync_point) == ([], "s")


def test_a_step_outside_any_barrier_has_no_sync_point() -> None:
    """A step that is no participant gets sync_point None."""
    fl = _fleet()
    fl.finish("w1", "r", part="P")
    fl.finish("w1", "h")
    _arrive(fl, "r1")
    fx = _arrive(fl, "h1")
    assigns = dict(_sent(fx, Assign))
    assert assigns["h1"].step_id == "fit" and assigns["h1"].sync_point is None


def test_early_arrival_is_recorded_and_released_when_the_last_one_comes() -> None:
    """The robot arrives while the person still walks: kept, and the barrier releases at once
    when the person arrives after finishing."""
    fl = _fleet()
    fl.finish("w1", "r", part="P")
    fx = _arrive(fl, "r1")
    assert _kinds(fx) == ["sync_arrived"] and _step_state(fl, "s") == "pending"
    fl.finish("w1", "h")
    assert _step_state(fl, "s") == "executing"
    fx = _arrive(fl, "h1")
    assert sorted(a for a, _ in _sent(fx, SyncRelease)) == ["h1", "r1"]
    assert _step_state(fl, "s") == "done" and _step_state(fl, "fit") == "assigned"


def test_barrier_opens_released_when_everyone_arrived_first() -> None:
    """When both arrived before the barrier opened, it releases as it opens, with no timer."""
    gated = load_template({"name": "gated", "steps": [
        {"id": "r", "kind": "robot"}, {"id": "h", "kind": "human"},
        {"id": "gate", "kind": "wait", "signal": "go"},
        {"id": "s", "kind": "sync", "participants": ["r", "h"], "after": ["gate"],
         "timeout_s": 60},
    ]})
    fl = ScriptedFleet(Core("f1", {"gated": gated}))
    fl.agent("r1", "robot", [])
    fl.agent("h1", "human", [])
    fl.create("gated", "w1")
    fl.run()  # each agent arrives right after its own step; the gate is still shut
    assert _step_state(fl, "s") == "pending"
    fx = fl.command("operator_action", workflow_id="w1", action="signal", signal="go")
    assert sorted(a for a, _ in _sent(fx, SyncRelease)) == ["h1", "r1"]
    assert not any(isinstance(e, SetTimer) for e in fx)
    wf = fl.workflow("w1")
    assert wf is not None and wf.state == "completed"


def test_duplicate_arrival_is_a_no_op() -> None:
    """A repeated arrival (new event id) before the release changes nothing."""
    fl = _fleet()
    fl.finish("w1", "r", part="P")
    _arrive(fl, "r1")
    seq = fl.core.last_seq
    assert _arrive(fl, "r1") == [] and fl.core.last_seq == seq


def test_arrival_after_the_release_gets_the_same_release_again() -> None:
    """A late repeat is answered with the release, under the same command id, no event."""
    fl = _fleet()
    fl.finish("w1", "r", part="P")
    fl.finish("w1", "h")
    _arrive(fl, "r1")
    first = dict(_sent(_arrive(fl, "h1"), SyncRelease))
    seq = fl.core.last_seq
    fx = _arrive(fl, "r1")
    assert _kinds(fx) == [] and fl.core.last_seq == seq
    assert [(a, m.command_id) for a, m in _sent(fx, SyncRelease)] == [
        ("r1", first["r1"].command_id)]


@pytest.mark.parametrize("who", ["h1", "r1"])
def test_arrival_of_an_agent_with_no_finished_participant_step_is_refused(who: str) -> None:
    """Only an agent that finished a participant step may arrive; refusal changes nothing."""
    fl = _fleet()
    if who == "h1":
        fl.finish("w1", "r", part="P")  # h1 still walking, r1 done
    seq = fl.core.last_seq
    with pytest.raises(StaleInput, match="not a participant"):
        _arrive(fl, who)
    assert fl.core.last_seq == seq


def test_arrival_at_a_step_that_is_not_a_sync_point_is_refused() -> None:
    """A sync_arrival naming an agent step is refused as stale."""
    fl = _fleet()
    with pytest.raises(StaleInput, match="not a sync point"):
        _arrive(fl, "r1", step_id="r")


def test_timed_out_barrier_keeps_arrivals_for_its_retry() -> None:
    """After a barrier timeout the arrivals stand: the retried barrier releases at once."""
    fl = _fleet()
    fl.finish("w1", "r", part="P")
    fl.finish("w1", "h")
    _arrive(fl, "r1")
    fl.at(fl.now + 61)
    fl.feed(TimerFired("timeout:w1/s"))
    assert _step_state(fl, "s") == "pending"
    _arrive(fl, "h1")  # recorded while the barrier waits for its retry
    retry = next(t for t in fl.core.armed_timers() if t.startswith("retry:"))
    fl.at(fl.core.armed_timers()[retry])
    fx = fl.feed(TimerFired(retry))
    assert sorted(a for a, _ in _sent(fx, SyncRelease)) == ["h1", "r1"]
    assert _step_state(fl, "s") == "done"


def test_cancelling_the_workflow_dismisses_agents_waiting_at_a_barrier() -> None:
    """An agent waiting at an unreleased barrier gets a Cancel naming the sync step."""
    fl = _fleet()
    fl.finish("w1", "r", part="P")
    _arrive(fl, "r1")
    fx = fl.command("cancel_workflow", workflow_id="w1")
    cancels = [(a, m.step_id) for a, m in _sent(fx, Cancel)]
    assert ("r1", "s") in cancels and ("h1", "h") in cancels


def test_a_skipped_participant_does_not_block_the_barrier() -> None:
    """A participant step skipped by its condition names nobody to wait for."""
    t = load_template({"name": "opt", "steps": [
        {"id": "r", "kind": "robot"},
        {"id": "h", "kind": "human", "when": "data.helper"},
        {"id": "s", "kind": "sync", "participants": ["r", "h"]},
    ]})
    fl = ScriptedFleet(Core("f1", {"opt": t}))
    fl.agent("r1", "robot", [])
    fl.create("opt", "w1", data={"helper": False})
    fl.run()
    wf = fl.workflow("w1")
    assert wf is not None and wf.state == "completed"
    assert wf.steps["s"].outputs == {"agents": ["r1"]}


def test_a_step_in_two_sync_points_is_refused() -> None:
    """A template may not make one step a participant of two barriers."""
    with pytest.raises(TemplateError, match="already takes part in sync step"):
        load_template({"name": "bad", "steps": [
            {"id": "a", "kind": "robot"}, {"id": "b", "kind": "human"},
            {"id": "c", "kind": "ai"},
            {"id": "s1", "kind": "sync", "participants": ["a", "b"]},
            {"id": "s2", "kind": "sync", "participants": ["a", "c"]},
        ]})


def test_replayed_arrivals_give_the_same_state() -> None:
    """Early arrivals survive replay and snapshot/restore byte for byte."""
    fl = _fleet()
    fl.finish("w1", "r", part="P")
    _arrive(fl, "r1")
    events = [e.event for e in fl.effects if isinstance(e, Append)]
    replayed = Core("f1", {"meet": MEET})
    for ev in events:
        replayed.apply(ev)
    assert replayed.snapshot() == fl.core.snapshot()
    restored = Core.restore(fl.core.snapshot(), "f1", {"meet": MEET})
    fl2 = ScriptedFleet(restored, start=fl.now)
    fl2.finish("w1", "h")
    fx = fl2.feed(SyncArrival(event_id="h1-x", agent_id="h1", workflow_id="w1", step_id="s",
                              ts=fl2.now))
    assert sorted(a for a, _ in _sent(fx, SyncRelease)) == ["h1", "r1"]


@settings(max_examples=80, deadline=None)
@given(st.lists(st.sampled_from(
    ["r_done", "h_done", "r_arrive", "h_arrive", "timeout", "retry"]), max_size=14))
def test_any_order_of_arrivals_releases_exactly_when_all_are_there(actions: list[str]) -> None:
    """Whatever the order of dones, arrivals, repeats and timeouts: an open barrier with
    everyone arrived is released at once, a released one had everyone, and replay agrees."""
    fl = _fleet()
    finished = 0
    for action in actions:
        who, _, what = action.partition("_")
        if what == "done":
            if _step_state(fl, who) != "assigned":
                continue  # not assigned now (done, failed, waiting for a retry): no turn
            fl.finish("w1", who, **({"part": "P"} if who == "r" else {}))
            assert _step_state(fl, who) == "done"
            finished += 1
        elif what == "arrive":
            try:
                _arrive(fl, f"{who}1")
            except CoreError:
                continue  # refused (e.g. arriving before finishing): nothing changed
        elif action == "timeout":
            fl.at(fl.now + 61)
            fl.feed(TimerFired("timeout:w1/s"))
        else:
            for timer_id, at in fl.core.armed_timers().items():
                if timer_id.startswith("retry:"):
                    fl.at(max(at, fl.now))
                    fl.feed(TimerFired(timer_id))
        wf = fl.workflow("w1")
        assert wf is not None
        barrier = fl.core.state.workflows["w1"].steps["s"]
        expected = (barrier.outputs or {}).get("agents", [])
        if barrier.state == "executing":
            assert not all(a in barrier.arrived for a in expected)
        if barrier.state == "done":
            assert sorted(barrier.arrived) == ["h1", "r1"]
    events = [e.event for e in fl.effects if isinstance(e, Append)]
    replayed = Core("f1", {"meet": MEET})
    for ev in events:
        replayed.apply(ev)
    assert replayed.snapshot() == fl.core.snapshot()
    assume(finished > 0)  # a run in which no participant finished shows nothing
