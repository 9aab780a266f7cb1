"""Cancel and pause mean what the robot did: ``cancelling``/``pausing`` until the agents
confirm; refusals and steps finished despite a cancel are events and error reports."""

from __future__ import annotations

from typing import Any

from edge_runtime.core import Append, Core, CoreConfig, Effect, Publish, Template
from edge_runtime.templates import load_template
from edge_runtime.testing import ScriptedFleet
from topics import AgentConn, Cancel, ErrorReport, Resume, StepFailed

ONE = load_template({"name": "one", "steps": [{"id": "s", "kind": "robot"}]})
TWO = load_template({"name": "two", "steps": [
    {"id": "a", "kind": "robot"}, {"id": "b", "kind": "robot", "after": ["a"]}]})


def _fleet(*templates: Template, robots: int = 1) -> ScriptedFleet:
    fl = ScriptedFleet(Core("f1", {t.name: t for t in templates or (ONE,)},
                            config=CoreConfig()))
    for i in range(robots):
        fl.agent(f"r{i}", "robot", [])
    return fl


def _state(fl: ScriptedFleet, wid: str = "w1") -> str:
    wf = fl.workflow(wid)
    assert wf is not None
    return wf.state


def _step(fl: ScriptedFleet, sid: str = "s", wid: str = "w1") -> Any:
    wf = fl.workflow(wid)
    assert wf is not None
    return wf.steps[sid]


def _kinds(fx: list[Effect]) -> list[str]:
    return [e.event.kind for e in fx if isinstance(e, Append)]


def _errors(fx: list[Effect]) -> list[ErrorReport]:
    return [e.message for e in fx
            if isinstance(e, Publish) and isinstance(e.message, ErrorReport)]


def _event(fx: list[Effect], kind: str) -> dict[str, Any]:
    return next(e.event.data for e in fx if isinstance(e, Append) and e.event.kind == kind)


def test_cancel_waits_for_the_agent_to_confirm() -> None:
    """A cancelled workflow whose robot holds a step is cancelling until the robot says it
    stopped; meanwhile the robot is not given other work."""
    fl = _fleet(ONE, TWO)
    fl.create("one", "w1")
    fl.start_step("w1", "s")
    fx = fl.command("cancel_workflow", workflow_id="w1", reason="not needed")
    assert [e.message.step_id for e in fx
            if isinstance(e, Publish) and isinstance(e.message, Cancel)] == ["s"]
    assert _state(fl) == "cancelling" and _step(fl).state == "cancelling"
    fl.create("one", "w2")
    assert _step(fl, wid="w2").agent is None  # r0 still holds w1's step
    fx = fl.confirm("w1", "s")
    assert "workflow_cancelled" in _kinds(fx)
    assert fl.core.archived("w1") == "cancelled"
    assert _step(fl, wid="w2").agent == "r0"


def test_cancel_with_no_agent_holding_a_step_is_immediate() -> None:
    """With no robot to wait for, cancel ends the workflow at once."""
    fl = _fleet(ONE, robots=0)
    fl.create("one", "w1")
    fx = fl.command("cancel_workflow", workflow_id="w1")
    assert "workflow_cancelling" not in _kinds(fx)
    assert fl.core.archived("w1") == "cancelled"


def test_refused_cancel_is_reported_and_the_step_goes_on() -> None:
    """A robot that refuses a cancel is recorded and reported; the workflow is cancelled only
    once its step ended."""
    fl = _fleet(ONE)
    fl.create("one", "w1")
    fl.start_step("w1", "s")
    fl.command("cancel_workflow", workflow_id="w1")
    fx = fl.confirm("w1", "s", outcome="refused", reason="busy lifting")
    refused = _event(fx, "command_refused")
    assert refused["command"] == "cancel" and refused["outcome"] == "refused"
    assert refused["agent"] == "r0" and refused["reason"] == "busy lifting"
    [report] = _errors(fx)
    assert report.reason == "command_refused" and "busy lifting" in report.message
    assert _state(fl) == "cancelling" and _step(fl).state == "executing"
    fx = fl.feed(StepFailed(event_id="f1", agent_id="r0", workflow_id="w1", step_id="s",
                            attempt=1, error_type="dropped", ts=fl.now))
    assert "step_retry" not in _kinds(fx) and "workflow_cancelled" in _kinds(fx)


def test_step_finished_despite_cancel_is_not_silently_done() -> None:
    """A robot that finishes the step it was told to cancel: the step is done (it was), a
    command_refused event and an error report say so, and the workflow ends cancelled."""
    fl = _fleet(ONE)
    fl.create("one", "w1")
    fl.start_step("w1", "s")
    fl.command("cancel_workflow", workflow_id="w1")
    fx = fl.feed(__import__("topics").StepDone(
        event_id="d1", agent_id="r0", workflow_id="w1", step_id="s", attempt=1, ts=fl.now))
    kinds = _kinds(fx)
    assert kinds.index("command_refused") < kinds.index("step_done")
    assert "conflict_escalated" in kinds  # an operator must look (docs/coordination.md)
    assert _event(fx, "command_refused")["outcome"] == "finished"
    assert _errors(fx) and "finished" in _errors(fx)[0].message
    assert fl.core.archived("w1") == "cancelled"


def test_a_step_failing_while_cancelled_counts_as_stopped() -> None:
    """A robot that reports the step failed after a cancel has stopped: cancelled, no retry."""
    fl = _fleet(ONE)
    fl.create("one", "w1")
    fl.command("cancel_workflow", workflow_id="w1")
    fx = fl.feed(StepFailed(event_id="f1", agent_id="r0", workflow_id="w1", step_id="s",
                            attempt=1, error_type="aborted", ts=fl.now))
    assert "workflow_cancelled" in _kinds(fx) and "step_retry" not in _kinds(fx)


def test_lost_agent_ends_a_cancel() -> None:
    """A robot lost while cancelling has stopped for the edge's purposes."""
    fl = _fleet(ONE)
    fl.create("one", "w1")
    fl.command("cancel_workflow", workflow_id="w1")
    fx = fl.feed(AgentConn(agent_id="r0", online=False))
    assert "workflow_cancelled" in _kinds(fx)


def test_pause_waits_for_the_agent_to_confirm() -> None:
    """Pause is pausing until the robot confirms; then paused; a repeated ack changes
    nothing."""
    fl = _fleet(ONE)
    fl.create("one", "w1")
    fl.start_step("w1", "s")
    fl.command("pause_workflow", workflow_id="w1")
    assert _state(fl) == "pausing"
    fx = fl.confirm("w1", "s")
    assert _kinds(fx) == ["pause_confirmed", "workflow_paused"]
    assert _state(fl) == "paused"
    assert _kinds(fl.confirm("w1", "s")) == []
    fl.command("resume_workflow", workflow_id="w1")
    assert _state(fl) == "active.executing.step_execution"


def test_refused_pause_resumes_the_workflow() -> None:
    """A robot that refuses to pause keeps going: the workflow is active again, the refusal
    is an event and an error report, and agents are told to go on."""
    fl = _fleet(ONE)
    fl.create("one", "w1")
    fl.start_step("w1", "s")
    fl.command("pause_workflow", workflow_id="w1")
    fx = fl.confirm("w1", "s", outcome="refused", reason="cannot stop on a ramp")
    kinds = _kinds(fx)
    assert kinds.index("command_refused") < kinds.index("workflow_resumed")
    assert any(isinstance(e, Publish) and isinstance(e.message, Resume) for e in fx)
    assert _errors(fx)
    assert _state(fl) == "active.executing.step_execution"


def test_resume_overtakes_an_unconfirmed_pause() -> None:
    """Resume while pausing goes back to work; the late pause ack changes nothing."""
    fl = _fleet(ONE)
    fl.create("one", "w1")
    fl.start_step("w1", "s")
    fl.command("pause_workflow", workflow_id="w1")
    fl.command("resume_workflow", workflow_id="w1")
    assert _state(fl) == "active.executing.step_execution"
    assert _kinds(fl.confirm("w1", "s")) == []


def test_cancel_while_pausing() -> None:
    """Cancel overtakes a pause in progress and waits for its own confirmation."""
    fl = _fleet(ONE)
    fl.create("one", "w1")
    fl.command("pause_workflow", workflow_id="w1")
    fl.command("cancel_workflow", workflow_id="w1")
    assert _state(fl) == "cancelling"
    fl.confirm("w1", "s")
    assert fl.core.archived("w1") == "cancelled"


def test_refused_reassign_keeps_the_step_with_its_agent() -> None:
    """An operator's reassign that the robot refuses leaves the step where it was."""
    fl = _fleet(ONE, robots=2)
    fl.create("one", "w1")
    fl.start_step("w1", "s")
    fl.command("operator_action", workflow_id="w1", step_id="s", action="reassign")
    fl.confirm("w1", "s", outcome="refused", reason="no")
    assert _step(fl).state == "executing" and _step(fl).agent == "r0"


def test_a_resume_keeps_a_step_cancel_waiting_for_its_agent() -> None:
    """Pausing and resuming the workflow of a step being withdrawn (reassign) forgets only
    the pause: the robot finishing anyway is still reported, not a crash."""
    fl = _fleet(ONE, robots=2)
    fl.create("one", "w1")
    fl.start_step("w1", "s")
    fl.command("operator_action", workflow_id="w1", step_id="s", action="reassign")
    fl.command("pause_workflow", workflow_id="w1")
    fl.command("resume_workflow", workflow_id="w1")
    assert _step(fl).state == "cancelling"
    fx = fl.finish("w1", "s")
    assert "command_refused" in _kinds(fx) and _errors(fx)


def test_cancelling_replays_to_the_same_state() -> None:
    """A history with cancels and pauses waiting for agents replays byte for byte."""
    fl = _fleet(ONE, TWO, robots=2)
    fl.create("two", "w1")
    fl.create("one", "w2")
    fl.start_step("w1", "a")
    fl.command("pause_workflow", workflow_id="w1")
    fl.command("cancel_workflow", workflow_id="w2")
    fl.confirm("w2", "s", outcome="refused", reason="no")
    events = [e.event for e in fl.effects if isinstance(e, Append)]
    replayed = Core("f1", {"one": ONE, "two": TWO}, config=CoreConfig())
    for event in events:
        replayed.apply(event)
    assert replayed.snapshot() == fl.core.snapshot()
    restored = Core.restore(fl.core.snapshot(), "f1", {"one": ONE, "two": TWO})
    assert restored.snapshot() == fl.core.snapshot()
