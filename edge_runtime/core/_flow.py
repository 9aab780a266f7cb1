"""Dependencies (docs/design.md §5): what may start now, within a workflow and between workflows.

Within a workflow: a pending step starts once its predecessors ended (sequential, fork/join,
data flow), unless its condition is false, its decision branch was not taken, or no
predecessor ran (then it is skipped). Between workflows: a workflow starts once every
workflow it depends on completed, and fails if one of them failed or was cancelled (typed
and external dependencies between workflows are decided in ``_workflow_deps``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edge_runtime.core._allocation import Allocation
from edge_runtime.core._context import Context
from edge_runtime.core._expr import ExpressionError, evaluate_condition
from edge_runtime.core._machine import STEP_TERMINAL
from edge_runtime.core._state import StepRun, WorkflowRun
from edge_runtime.core._sync import SyncPoints

if TYPE_CHECKING:
    from edge_runtime.core._consensus import Consensus
    from edge_runtime.core._recovery import Recovery

__all__ = ["Flow"]


class Flow:
    """Starts, skips and completes steps and workflows as their dependencies allow."""

    recovery: Recovery
    """Set by the core once built: a step that cannot start (a condition that does not
    evaluate, a missing input) fails through it, and a finished rollback ends there."""
    consensus: Consensus | None = None
    """Set by the core: a decision step with a ``vote`` goes to it first (``_consensus``)."""

    def __init__(self, allocation: Allocation, sync: SyncPoints) -> None:
        self.allocation = allocation
        self.sync = sync

    def advance(self, ctx: Context, wf: WorkflowRun) -> None:
        """Start every step whose dependencies are met; complete the workflow when done.

        A ``cancelling`` or ``pausing`` workflow starts nothing: it becomes ``cancelled`` once
        no agent holds a step of it, ``paused`` once every agent confirmed its pause."""
        state = wf.state
        if not state.startswith("active"):
            steps = wf.steps.values()
            if state == "cancelling" and all(st.agent is None for st in steps):
                ctx.emit("workflow_cancelled", wf.id, {"reason": wf.reason})
                self.propagate(ctx, wf)
            elif state == "pausing" and all(st.unconfirmed is None for st in steps):
                ctx.emit("workflow_paused", wf.id, {})
            return
        now = ctx.now
        progressed = True
        while progressed:
            progressed = False
            for st in list(wf.steps.values()):
                if st.state != "pending" or (st.retry_at is not None and st.retry_at > now):
                    continue
                if wf.rollback is not None and st.comp_of is None:
                    continue
                if self._consider(ctx, wf, st):
                    progressed = True
        if wf.rollback is not None:
            if all(s.state == "done" for s in wf.steps.values() if s.comp_of is not None):
                self.recovery.finish_rollback(ctx, wf)
            return
        for st in wf.steps.values():
            if st.state not in STEP_TERMINAL:
                return
        ctx.emit("workflow_completed", wf.id, {})
        self.propagate(ctx, wf)

    def _consider(self, ctx: Context, wf: WorkflowRun, st: StepRun) -> bool:
        """Start, skip or fail the pending step ``st`` if its predecessors allow; changed?"""
        steps = wf.steps
        any_done = not st.preds
        for p in st.preds:
            state = steps[p].state
            if state == "done":
                any_done = True
            elif state != "skipped":
                return False
        if not any_done:
            ctx.emit("step_skipped", wf.id, {"step": st.id, "reason": "no predecessor ran"})
            return True
        owner = wf.template.branch_owner(st.id)
        if owner is not None:
            decided = steps[owner].outputs or {}
            taken = st.id in steps[owner].spec.then
            if decided.get("result") is not taken:
                ctx.emit("step_skipped", wf.id, {"step": st.id, "reason": f"{owner} chose"})
                return True
        spec = st.spec
        try:
            if spec.when is not None and not evaluate_condition(spec.when, _context(wf)):
                ctx.emit("step_skipped", wf.id, {"step": st.id, "reason": "condition false"})
                return True
            if spec.kind == "decision":
                if self.consensus is not None and self.consensus.decides(ctx, wf, st):
                    return True
                assert spec.condition is not None
                result = evaluate_condition(spec.condition, _context(wf))
                ctx.emit("step_decided", wf.id, {"step": st.id, "result": result})
                return True
        except ExpressionError as exc:
            self.recovery.fail_step(ctx, wf, st, "condition_error", str(exc), retryable=False)
            return True
        for name, source in spec.inputs.items():
            sid, _, out = source.partition(".")
            if out not in (steps[sid].outputs or {}):
                self.recovery.fail_step(
                    ctx, wf, st, "missing_input", f"input {name}: {sid} gave no {out!r}",
                    retryable=False,
                )
                return True
        self._start(ctx, wf, st)
        return True

    def _start(self, ctx: Context, wf: WorkflowRun, st: StepRun) -> None:
        kind = st.spec.kind
        if kind == "wait":
            duration = st.spec.duration_s
            until = None if duration is None else ctx.now + duration
            ctx.emit("step_ready", wf.id, {"step": st.id, "until": until})
            if until is not None:
                ctx.set_timer(f"wait:{wf.id}/{st.id}", until)
        elif kind == "sync":
            self.sync.open(ctx, wf, st)
        else:
            self.allocation.offer(ctx, wf, st)

    # --- between workflows ------------------------------------------------------------

    def propagate(self, ctx: Context, wf: WorkflowRun) -> None:
        """Start dependants whose dependencies all completed; fail those of a failure.

        ``wf`` just ended: it, and the workflows it waited for, may now be archived."""
        ctx.archivable.append(wf.id)
        ctx.archivable.extend(wf.depends_on)
        if wf.deps is not None:  # local sources of typed dependencies (_workflow_deps)
            ctx.archivable.extend(e[0] for e in wf.deps if e[3] is None)
        workflows = ctx.state.workflows
        for dep_id in wf.dependents:
            dep = workflows.get(dep_id)
            if dep is None or dep.state != "pending":
                continue
            if dep.deps is not None and wf.id not in dep.depends_on:
                continue  # a typed dependency: ``WorkflowDeps.review`` decides it
            if wf.state != "completed":
                ctx.emit("workflow_failed", dep.id,
                         {"reason": f"dependency {wf.id} {wf.state}"})
                self.propagate(ctx, dep)
            else:
                self.start_if_ready(ctx, dep)

    def start_if_ready(self, ctx: Context, wf: WorkflowRun) -> None:
        """Start the pending ``wf`` if every workflow it depends on completed (and every
        typed or external dependency of it was released: ``_workflow_deps``)."""
        state = ctx.state
        if wf.state == "pending" and all(
            state.state_of(d) == "completed" for d in wf.depends_on
        ) and (wf.deps is None or all(e[4] == "released" for e in wf.deps)):
            ctx.emit("workflow_started", wf.id, {})
            self.advance(ctx, wf)
            ctx.archivable.extend(wf.depends_on)


def _context(wf: WorkflowRun) -> dict[str, Any]:
    """What a step's CEL condition sees: the workflow's data and finished steps' outputs."""
    outputs = {sid: s.outputs or {} for sid, s in wf.steps.items() if s.state == "done"}
    return {"data": wf.data, "outputs": outputs}
