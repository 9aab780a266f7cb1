"""Recovery (docs/design.md §6): retry with backoff, operator intervention, checkpoints,
saga rollback.

A failed step is retried after its policy's backoff while attempts remain and the error is
retryable; then the workflow waits for an operator (``operator_needed``, after a
checkpoint) or, without manual intervention, aborts. Aborting a template with
``on_failure: compensate`` first runs the compensations of finished steps, newest first.
"""

from __future__ import annotations

from typing import Any

from edge_runtime.core._allocation import Allocation
from edge_runtime.core._context import Context
from edge_runtime.core._flow import Flow
from edge_runtime.core._state import StepRun, WorkflowRun
from edge_runtime.core._sync import SyncPoints
from topics import Cancel

__all__ = ["Recovery"]

_RUNNING = frozenset({"assigned", "preparing", "executing", "validating", "cleanup"})


class Recovery:
    """Decides what follows a failure, and rolls workflows back."""

    def __init__(
        self, flow: Flow, allocation: Allocation, sync: SyncPoints, *, manual_intervention: bool,
    ) -> None:
        self.flow = flow
        self.allocation = allocation
        self.sync = sync
        self.manual_intervention = manual_intervention
        """After retries are exhausted wait for an operator (else the workflow fails)."""

    def fail_step(
        self, ctx: Context, wf: WorkflowRun, st: StepRun, error: str, message: str, *,
        retryable: bool, extra: dict[str, Any] | None = None,
    ) -> None:
        """Record a failure and decide: retry after backoff, ask an operator, or abort."""
        if st.timeout_at is not None:
            ctx.cancel_timer(f"timeout:{wf.id}/{st.id}")
        data = {"step": st.id, "error": error, "message": message, "retryable": retryable,
                "counts": True}
        if extra:
            data.update(extra)
        ctx.emit("step_failed", wf.id, data)
        if wf.state == "cancelling":  # no retry, no operator: the step has ended
            self.flow.advance(ctx, wf)
            return
        policy = st.spec.retry
        if (
            retryable and error not in policy.non_retryable_errors
            and st.failures < policy.max_attempts
        ):
            at = ctx.now + policy.delay(st.failures)
            ctx.emit("step_retry", wf.id, {"step": st.id, "at": at})
            ctx.set_timer(f"retry:{wf.id}/{st.id}", at)
        elif self.manual_intervention or wf.rollback is not None:
            self.checkpoint(ctx, wf, "before_operator")
            ctx.emit("operator_needed", wf.id, {"step": st.id, "error": error})
        else:
            self.abort(ctx, wf, f"step {st.id} failed: {error}")

    def cancel_running(
        self, ctx: Context, wf: WorkflowRun, reason: str, only: str | None = None,
    ) -> None:
        """Tell the agents of the workflow's running steps (or of step ``only``) to stop."""
        for st in wf.steps.values():
            if st.agent is not None and st.state in _RUNNING and only in (None, st.id):
                # A coalition step: every member of its team.
                for aid in st.team.values() if st.team else (st.agent,):
                    ctx.send(aid, Cancel.model_construct(
                        command_id=f"c{ctx.state.seq + 1}-{st.id}"[:64], ts=ctx.now,
                        workflow_id=wf.id, step_id=st.id, reason=reason,
                    ))

    def abort(self, ctx: Context, wf: WorkflowRun, reason: str) -> None:
        """Fail the workflow, first rolling back if its template says so."""
        if (
            wf.template.on_failure == "compensate" and wf.rollback is None
            and self.start_rollback(ctx, wf, None, "abort")
        ):
            return
        self.cancel_running(ctx, wf, reason)
        self.sync.dismiss(ctx, wf, reason)
        ctx.emit("workflow_failed", wf.id, {"reason": reason})
        self.flow.propagate(ctx, wf)
        self.allocation.allocate_waiting(ctx)

    def start_rollback(self, ctx: Context, wf: WorkflowRun, after: str | None, then: str) -> bool:
        """Compensate, newest first, the steps finished after ``after``; False if none."""
        floor = wf.steps[after].done_seq if after is not None else 0
        done = [s for s in wf.steps.values()
                if s.state == "done" and s.comp_of is None and s.done_seq > floor]
        todo = [s.id for s in sorted(done, key=lambda s: -s.done_seq) if s.spec.compensation]
        if not todo:
            return False
        self.checkpoint(ctx, wf, "before_rollback")
        self.cancel_running(ctx, wf, "rollback")
        ctx.emit("compensation_started", wf.id, {"steps": todo, "then": then})
        self.flow.advance(ctx, wf)
        self.allocation.allocate_waiting(ctx)
        return True

    def finish_rollback(self, ctx: Context, wf: WorkflowRun) -> None:
        """Every compensation ran: run the undone steps again, or fail the workflow."""
        then = wf.rollback
        reset = [s.id for s in wf.steps.values() if s.comp_of is None and s.state != "done"]
        ctx.emit("rollback_finished", wf.id, {"reset": reset if then == "retry" else []})
        if then == "retry":
            self.flow.advance(ctx, wf)
        else:
            self.sync.dismiss(ctx, wf, "rolled back")
            ctx.emit("workflow_failed", wf.id, {"reason": "rolled back"})
            self.flow.propagate(ctx, wf)

    def checkpoint(self, ctx: Context, wf: WorkflowRun, label: str) -> str:
        """Take a recovery checkpoint of ``wf`` (state, assignments, holds, data); its id."""
        cp_id = f"cp{ctx.state.seq + 1}"
        steps = {
            sid: [st.state, st.attempt, st.failures, st.outputs, st.done_seq]
            for sid, st in wf.steps.items() if st.comp_of is None
        }
        holds = {r: h[1] for r, h in ctx.state.holds.items() if h[0] == wf.id}
        assignments = {sid: st.agent for sid, st in wf.steps.items() if st.agent is not None}
        ctx.emit("checkpoint_taken", wf.id, {
            "id": cp_id, "label": label, "state": wf.state, "data": wf.data, "steps": steps,
            "holds": holds, "assignments": assignments, "at": ctx.now,
        })
        return cp_id
