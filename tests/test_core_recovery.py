"""Recovery: retries with backoff in virtual time, timeouts, operators, checkpoints,
saga rollback, lost agents and duplicate inputs."""

from __future__ import annotations

from typing import Any

import pytest

from edge_runtime.core import (
    Append,
    CancelTimer,
    Core,
    CoreConfig,
    CoreError,
    IllegalTransition,
    Publish,
    SetTimer,
    StaleInput,
    Template,
    TimerFired,
)
from edge_runtime.templates import load_template
from edge_runtime.testing import ScriptedFleet
from topics import AgentConn, AgentState, Cancel, HubCommand, StepDone

RETRY = {"max_attempts": 4, "initial_interval": 2, "backoff_coefficient": 3,
         "max_interval": 10, "non_retryable_errors": ["broken"]}
ONE = load_template({"name": "one", "steps": [{"id": "s", "kind": "robot", "retry": RETRY}]})
SAGA = load_template({"name": "saga", "steps": [
    {"id": f"s{i}", "kind": "robot", "after": [f"s{i - 1}"] if i > 1 else [],
     "compensation": {"kind": "robot", "action": f"undo{i}"} if i != 2 else None}
    for i in range(1, 5)
]})


def _fleet(*templates: Template, robots: int = 1, **config: Any) -> ScriptedFleet:
    fl = ScriptedFleet(Core("f1", {t.name: t for t in templates}, config=CoreConfig(**config)))
    for i in range(robots):
        fl.agent(f"r{i}", "robot", [])
    return fl


def _step(fl: ScriptedFleet, sid: str, wid: str = "w1") -> Any:
    wf = fl.workflow(wid)
    assert wf is not None
    return wf.steps[sid]


def _timers(fx: list[Any]) -> list[tuple[str, float]]:
    return [(e.timer_id, e.at) for e in fx if isinstance(e, SetTimer)]


def test_retry_backoff_exact_times() -> None:
    """Failures re-arm the retry timer at now + 2, + 6, then capped at + 10."""
    fl = _fleet(ONE)
    fl.create("one", "w1")
    got = []
    for expected_delay in (2.0, 6.0, 10.0):
        fl.at(500.0)
        fx = fl.fail("w1", "s")
        assert _timers(fx) == [("retry:w1/s", 500.0 + expected_delay)]
        assert _step(fl, "s").state == "pending"
        fl.at(500.0 + expected_delay)
        fl.feed(TimerFired("retry:w1/s"))
        got.append(_step(fl, "s").attempt)
    assert got == [2, 3, 4]


def test_early_retry_timer_does_nothing() -> None:
    """A retry timer delivered before its time leaves the step waiting."""
    fl = _fleet(ONE)
    fl.create("one", "w1")
    fl.at(100.0)
    fl.fail("w1", "s")
    fl.at(101.0)
    assert fl.feed(TimerFired("retry:w1/s")) == []
    assert fl.core.armed_timers() == {"retry:w1/s": 102.0}


def test_exhausted_retries_wait_for_operator() -> None:
    """After max_attempts failures the workflow waits for an operator, then retry resumes."""
    fl = _fleet(ONE)
    fl.create("one", "w1")
    for _ in range(4):
        fl.fail("w1", "s")
        if _step(fl, "s").state == "pending":
            fl.at(fl.core.armed_timers()["retry:w1/s"])
            fl.feed(TimerFired("retry:w1/s"))
    wf = fl.workflow("w1")
    assert wf is not None and wf.awaiting_operator == ("s",)
    assert wf.state == "active.waiting_for_resource"
    assert wf.checkpoints  # a checkpoint before the operator steps in
    fl.command("operator_action", workflow_id="w1", step_id="s", action="retry")
    assert _step(fl, "s").state == "assigned" and _step(fl, "s").failures == 0
    fl.finish("w1", "s")
    assert fl.workflow("w1").state == "completed"  # type: ignore[union-attr]


def test_non_retryable_error_fails_at_once() -> None:
    """A non-retryable error type goes straight to the operator, no retry timer."""
    fl = _fleet(ONE)
    fl.create("one", "w1")
    fx = fl.fail("w1", "s", error_type="broken")
    assert _timers(fx) == []
    assert fl.workflow("w1").awaiting_operator == ("s",)  # type: ignore[union-attr]


def test_without_manual_intervention_workflow_fails() -> None:
    """With manual intervention off, an exhausted step fails the workflow."""
    fl = _fleet(ONE, manual_intervention=False)
    fl.create("one", "w1")
    fl.fail("w1", "s", retryable=False)
    wf = fl.workflow("w1")
    assert wf is not None and wf.state == "failed" and "step s failed" in wf.reason


def test_operator_skip_and_abort() -> None:
    """Skip lets the workflow finish; abort fails it."""
    fl = _fleet(ONE, robots=2)
    fl.create("one", "w1")
    fl.create("one", "w2")
    fl.fail("w1", "s", error_type="broken")
    fl.fail("w2", "s", error_type="broken")
    fl.command("operator_action", workflow_id="w1", step_id="s", action="skip")
    fl.command("operator_action", workflow_id="w2", action="abort")
    assert fl.workflow("w1").state == "completed"  # type: ignore[union-attr]
    assert fl.workflow("w2").state == "failed"  # type: ignore[union-attr]


def test_operator_reassign_moves_step_to_another_agent() -> None:
    """Reassign cancels the current agent's step and, once it confirmed, gives the step to a
    different agent."""
    fl = _fleet(ONE, robots=2)
    fl.create("one", "w1")
    assert _step(fl, "s").agent == "r0"
    fx = fl.command("operator_action", workflow_id="w1", step_id="s", action="reassign")
    cancels = [e for e in fx if isinstance(e, Publish) and isinstance(e.message, Cancel)]
    assert [c.topic.split("/")[4] for c in cancels] == ["r0"]
    assert _step(fl, "s").state == "cancelling" and _step(fl, "s").agent == "r0"
    fl.confirm("w1", "s")
    assert _step(fl, "s").agent == "r1" and _step(fl, "s").attempt == 2


def test_step_timeout_fails_and_retries() -> None:
    """A step that times out is cancelled at its agent and retried."""
    t = load_template({"name": "slow", "steps": [
        {"id": "s", "kind": "robot", "timeout_s": 30, "retry": RETRY}]})
    fl = _fleet(t)
    fl.at(10.0)
    fx = fl.create("slow", "w1")
    assert ("timeout:w1/s", 40.0) in _timers(fx)
    fl.at(40.0)
    fx = fl.feed(TimerFired("timeout:w1/s"))
    assert any(isinstance(e, Publish) and isinstance(e.message, Cancel) for e in fx)
    assert _timers(fx) == [("retry:w1/s", 42.0)]
    assert _step(fl, "s").error == "timeout"


def test_checkpoint_restore_rewinds_workflow() -> None:
    """Restoring a checkpoint brings back step states and data; later work is redone."""
    fl = _fleet(SAGA)
    fl.create("saga", "w1", data={"k": 1})
    fl.finish("w1", "s1")
    fx = fl.command("checkpoint", workflow_id="w1", label="after_s1")
    [reply] = [e.event for e in fx if isinstance(e, Append) and e.event.kind == "command_reply"]
    cp = reply.data["result"]["checkpoint"]
    fl.finish("w1", "s2")
    fl.finish("w1", "s3")
    fl.command("operator_action", workflow_id="w1", action="restore", checkpoint=cp)
    states = {sid: s.state for sid, s in fl.workflow("w1").steps.items()}  # type: ignore[union-attr]
    assert states == {"s1": "done", "s2": "assigned", "s3": "pending", "s4": "pending"}
    assert fl.workflow("w1").data == {"k": 1}  # type: ignore[union-attr]


def test_rollback_compensates_in_reverse_order() -> None:
    """A rollback runs the compensations of finished steps newest first, then fails."""
    fl = _fleet(SAGA)
    fl.create("saga", "w1")
    for sid in ("s1", "s2", "s3"):
        fl.finish("w1", sid)
    fl.command("operator_action", workflow_id="w1", action="rollback")
    order = []
    while True:
        running = [s for s in fl.workflow("w1").steps.values()  # type: ignore[union-attr]
                   if s.compensates and s.state == "assigned"]
        if not running:
            break
        order.append(running[0].id)
        fl.finish("w1", running[0].id)
    assert order == ["s3.undo", "s1.undo"]  # s2 has no compensation
    wf = fl.workflow("w1")
    assert wf is not None and wf.state == "failed" and wf.reason == "rolled back"
    assert wf.steps["s3"].state == "compensated" and wf.steps["s2"].state == "done"


def test_partial_rollback_then_retry() -> None:
    """Rolling back after a point undoes only later steps, then runs them again."""
    fl = _fleet(SAGA)
    fl.create("saga", "w1")
    for sid in ("s1", "s2", "s3"):
        fl.finish("w1", sid)
    fl.command("operator_action", workflow_id="w1", action="rollback", step_id="s1",
               then="retry")
    fl.finish("w1", "s3.undo")
    wf = fl.workflow("w1")
    assert wf is not None
    assert {s: v.state for s, v in wf.steps.items()} == {
        "s1": "done", "s2": "done", "s3": "assigned", "s4": "pending"}


def test_agent_lost_by_liveness_reallocates() -> None:
    """An agent silent past its window is lost and its step goes to another agent."""
    fl = _fleet(ONE, robots=0)
    fl.feed(AgentConn(agent_id="r1", online=True, kind="robot", liveness_s=10))
    fl.at(100.0)
    fx = fl.feed(AgentState(agent_id="r1", ts=100.0))
    assert _timers(fx) == [("liveness:r1", 115.0)]
    fl.create("one", "w1")
    fl.agent("r2", "robot", [])
    fl.feed(TimerFired("liveness:r1"))
    assert _step(fl, "s").agent == "r2" and _step(fl, "s").attempt == 2
    assert _step(fl, "s").failures == 0
    assert fl.core.agents()["r1"].online is False


def test_agent_offline_will_reallocates() -> None:
    """The offline conn message (the will) also re-allocates the agent's step."""
    fl = _fleet(ONE, robots=2)
    fl.create("one", "w1")
    fl.feed(AgentConn(agent_id="r0", online=False, kind="robot"))
    assert _step(fl, "s").agent == "r1"


def test_late_report_from_previous_attempt_is_stale() -> None:
    """A step_done from the agent that lost the step is refused and changes nothing."""
    fl = _fleet(ONE, robots=2)
    fl.create("one", "w1")
    fl.feed(AgentConn(agent_id="r0", online=False, kind="robot"))
    seq = fl.core.last_seq
    with pytest.raises(StaleInput, match="held by r1"):
        fl.feed(StepDone(event_id="x", agent_id="r0", workflow_id="w1", step_id="s",
                         attempt=1, ts=0))
    assert fl.core.last_seq == seq


def test_duplicates_are_ignored() -> None:
    """A redelivered agent event or hub command has no effect at all."""
    fl = _fleet(ONE)
    cmd = HubCommand(command_id="k1", action="create_workflow",
                     args={"template": "one", "workflow_id": "w1"})
    assert fl.feed(cmd)
    assert fl.feed(cmd) == []
    done = StepDone(event_id="d1", agent_id="r0", workflow_id="w1", step_id="s", attempt=1,
                    ts=0)
    fl.accept("w1", "s")
    fl.start_step("w1", "s")
    assert fl.feed(done)
    before = fl.core.snapshot()
    assert fl.feed(done) == []
    assert fl.core.snapshot() == before


def test_refused_command_changes_nothing() -> None:
    """Bad arguments, unknown templates and illegal states raise and leave no trace."""
    fl = _fleet(ONE)
    fl.create("one", "w1")
    before = fl.core.snapshot()
    with pytest.raises(CoreError, match=r"args\.workflow_id"):
        fl.command("create_workflow", template="one")
    with pytest.raises(CoreError, match="unknown template 'nope'"):
        fl.command("create_workflow", template="nope", workflow_id="w2")
    with pytest.raises(IllegalTransition):
        fl.command("resume_workflow", workflow_id="w1")
    with pytest.raises(CoreError, match="already exists"):
        fl.command("create_workflow", template="one", workflow_id="w1")
    assert fl.core.snapshot() == before


def test_step_done_cancels_its_timeout_timer() -> None:
    """Finishing a step with a timeout cancels that timer."""
    t = load_template({"name": "slow", "steps": [{"id": "s", "kind": "robot", "timeout_s": 5}]})
    fl = _fleet(t)
    fl.create("slow", "w1")
    fx = fl.finish("w1", "s")
    assert CancelTimer("timeout:w1/s") in fx
