"""Data-consistency rules: concurrent writes to one workflow variable, stale hub commands."""

from __future__ import annotations

from typing import Any

import pytest

from edge_runtime.core import Append, Core, CoreConfig, CoreError, Effect, Event, TemplateError
from edge_runtime.templates import load_template
from edge_runtime.testing import ScriptedFleet
from topics import HubCommand

_WRITER = {"kind": "ai", "outputs": ["v"], "sets": {"x": "v"}}
PARALLEL = load_template({"name": "parallel", "steps": [
    {"id": "a", **_WRITER}, {"id": "b", **_WRITER},
    {"id": "c", "kind": "ai", "after": ["a", "b"]}]})
SEQUENTIAL = load_template({"name": "sequential", "steps": [
    {"id": "a", **_WRITER}, {"id": "b", **_WRITER, "after": ["a"]},
    {"id": "big", "kind": "ai", "after": ["b"], "when": "data.x > 5"}]})
TEMPLATES = {"parallel": PARALLEL, "sequential": SEQUENTIAL}


def _fleet(**config: Any) -> ScriptedFleet:
    fl = ScriptedFleet(Core("f1", TEMPLATES, config=CoreConfig(**config)))
    fl.agent("ai1", "ai", [])
    fl.agent("ai2", "ai", [])
    return fl


def _kinds(fx: list[Effect]) -> list[str]:
    return [e.event.kind for e in fx if isinstance(e, Append)]


def _events(fx: list[Effect]) -> list[Event]:
    return [e.event for e in fx if isinstance(e, Append)]


def _data(fl: ScriptedFleet, wid: str = "w1") -> dict[str, Any]:
    wf = fl.workflow(wid)
    assert wf is not None
    return dict(wf.data)


def _both_written(fl: ScriptedFleet) -> list[Effect]:
    """Both parallel steps run at once; a writes 1, then b writes 2."""
    fl.create("parallel", "w1", data={"x": 0})
    fl.finish("w1", "a", v=1)
    return fl.finish("w1", "b", v=2)


def test_sequential_writes_are_not_a_conflict_and_later_steps_see_them() -> None:
    """a then b write x one after the other: b's value stands; c's condition reads it."""
    fl = _fleet()
    fl.create("sequential", "w1", data={"x": 0})
    fx = fl.finish("w1", "a", v=3)
    assert "data_written" in _kinds(fx) and _data(fl)["x"] == 3
    fx = fl.finish("w1", "b", v=9)
    assert _data(fl)["x"] == 9 and fl.core.conflicts() == {}
    wf = fl.workflow("w1")
    assert wf is not None and wf.steps["big"].state == "assigned"  # data.x > 5 held


def test_a_concurrent_write_is_held_and_escalated_to_an_operator() -> None:
    """Both ran at once: the later write waits, x keeps the first value, the conflict names
    both steps."""
    fl = _fleet()
    fx = _both_written(fl)
    assert _kinds(fx)[1:4] == ["conflict_detected", "data_write_held", "conflict_escalated"]
    [c] = fl.core.conflicts().values()
    assert (c.type, c.rule, c.status, c.resource) == (
        "data", "concurrent_write", "escalated", "data.x")
    assert "w1.a" in c.detail and "w1.b" in c.detail
    assert c.participants == ("ai1", "ai2")
    assert _data(fl)["x"] == 1


@pytest.mark.parametrize(("choice", "kind", "x"), [
    ("b", "data_written", 2), ("a", "data_write_dropped", 1)])
def test_the_operator_names_the_step_whose_value_stands(choice: str, kind: str,
                                                        x: int) -> None:
    """resolve_conflict naming b applies its held write; naming a drops it."""
    fl = _fleet()
    _both_written(fl)
    [cid] = fl.core.conflicts()
    fx = fl.command("resolve_conflict", conflict_id=cid, resolution=choice)
    assert _kinds(fx) == [kind, "conflict_resolved", "command_reply"]
    assert _data(fl)["x"] == x and fl.core.conflicts()[cid].status == "resolved"


def test_a_resolution_naming_neither_step_is_refused_and_changes_nothing() -> None:
    """The operator must name a or b; anything else is refused before any event."""
    fl = _fleet()
    _both_written(fl)
    [cid] = fl.core.conflicts()
    seq = fl.core.last_seq
    with pytest.raises(CoreError, match="names the step"):
        fl.command("resolve_conflict", conflict_id=cid, resolution="whatever")
    assert fl.core.last_seq == seq and fl.core.conflicts()[cid].status == "escalated"


@pytest.mark.parametrize(("policy", "x"), [("last_writer_wins", 2), ("first_writer_wins", 1)])
def test_a_configured_policy_settles_a_concurrent_write_at_once(policy: str, x: int) -> None:
    """The conflict is still recorded, and resolved in the same input by the policy."""
    fl = _fleet(concurrent_write=policy)
    fx = _both_written(fl)
    assert "conflict_resolved" in _kinds(fx)
    [c] = fl.core.conflicts().values()
    assert (c.rule, c.strategy, c.status) == ("concurrent_write", policy, "resolved")
    assert _data(fl)["x"] == x


def test_a_step_that_sets_a_variable_must_report_that_output() -> None:
    """``sets`` names one of the step's outputs, on an agent step only."""
    with pytest.raises(TemplateError, match=r"steps\[0\]\.sets\.x"):
        load_template({"name": "bad", "steps": [
            {"id": "a", "kind": "ai", "outputs": ["v"], "sets": {"x": "w"}}]})
    with pytest.raises(TemplateError, match="only agent steps"):
        load_template({"name": "bad", "steps": [
            {"id": "a", "kind": "wait", "duration_s": 1, "sets": {"x": "v"}}]})


# --- stale commands ---------------------------------------------------------------------

def _reply(fx: list[Effect]) -> dict[str, Any]:
    [reply] = [e for e in _events(fx) if e.kind == "command_reply"]
    result: dict[str, Any] = reply.data["result"]
    return result


def test_a_command_expecting_an_older_state_is_refused_and_recorded() -> None:
    """expected_seq before the workflow's last event: refused by a reply, with the conflict
    recorded; the workflow is not paused."""
    fl = _fleet()
    fl.create("parallel", "w1")
    seen = fl.core.last_seq
    fl.finish("w1", "a", v=1)  # the workflow moved on
    fx = fl.command("pause_workflow", workflow_id="w1", expected_seq=seen)
    assert _kinds(fx) == ["conflict_detected", "conflict_resolved", "command_reply"]
    result = _reply(fx)
    assert result["refused"] == "stale_command" and f"seq {seen}" in result["error"]
    conflict = fl.core.conflicts()[result["conflict_id"]]
    assert (conflict.type, conflict.rule, conflict.strategy, conflict.status) == (
        "data", "stale_command", "refuse", "resolved")
    wf = fl.workflow("w1")
    assert wf is not None and wf.state.startswith("active")


def test_a_command_expecting_the_current_state_runs() -> None:
    """expected_seq equal to the workflow's last event: the pause goes ahead."""
    fl = _fleet()
    fl.create("parallel", "w1")
    fx = fl.command("pause_workflow", workflow_id="w1", expected_seq=fl.core.last_seq)
    assert "refused" not in _reply(fx) and "conflict_detected" not in _kinds(fx)


def test_a_command_older_than_the_last_change_by_more_than_the_bound_is_stale() -> None:
    """stale_command_s 5: a command sent 10 s before the last change is refused; a command
    with no ts (0) is not compared."""
    fl = _fleet(stale_command_s=5.0)
    fl.create("parallel", "w1")
    old = fl.now - 10
    fx = fl.feed(HubCommand(command_id="old", action="pause_workflow",
                            args={"workflow_id": "w1"}, ts=old))
    assert _reply(fx)["refused"] == "stale_command"
    fx = fl.command("pause_workflow", workflow_id="w1")
    assert "refused" not in _reply(fx)


def test_a_redelivered_stale_command_gets_no_second_conflict() -> None:
    """The refusal is remembered by command id like any reply: a resend changes nothing."""
    fl = _fleet()
    fl.create("parallel", "w1")
    fl.finish("w1", "a", v=1)
    cmd = HubCommand(command_id="late", action="cancel_workflow",
                     args={"workflow_id": "w1", "expected_seq": 1})
    fl.feed(cmd)
    assert fl.feed(cmd) == [] and len(fl.core.conflicts()) == 1


def test_replay_and_restore_equal_the_live_core() -> None:
    """Held and settled writes, versions and a stale refusal: the log rebuilds the live
    state byte for byte, and a snapshot restores it."""
    fl = _fleet()
    _both_written(fl)
    fl.create("sequential", "w2", data={"x": 0})
    fl.finish("w2", "a", v=4)
    fl.command("pause_workflow", workflow_id="w2", expected_seq=1)
    events = _events(fl.effects)
    live = fl.core.snapshot()
    replayed = Core("f1", TEMPLATES)
    for ev in events:
        replayed.apply(ev)
    assert replayed.snapshot() == live
    assert Core.restore(live, "f1", TEMPLATES).snapshot() == live
    [cid] = fl.core.conflicts(open_only=True)
    fl.command("resolve_conflict", conflict_id=cid, resolution="b")
    restored = Core.restore(live, "f1", TEMPLATES)
    for ev in _events(fl.effects)[len(events):]:
        restored.apply(ev)
    assert restored.snapshot() == fl.core.snapshot()
