"""Manual intervention (docs/design.md §6): what an operator may do to a workflow or a step.

Retry a failed step (also recovering a failed workflow), skip it, reassign it to another
agent, abort the workflow, restore a checkpoint, roll back (saga), or signal waiting steps.
"""

from __future__ import annotations

from typing import Any

from edge_runtime.core._allocation import Allocation
from edge_runtime.core._command_args import OperatorArgs, parse_args
from edge_runtime.core._confirm import Confirmations
from edge_runtime.core._context import Context
from edge_runtime.core._errors import CoreError, UnknownEntity
from edge_runtime.core._flow import Flow
from edge_runtime.core._lifecycle import Lifecycle
from edge_runtime.core._lookup import find_step, find_workflow
from edge_runtime.core._recovery import Recovery
from edge_runtime.core._state import StepRun, WorkflowRun
from topics import HubCommand

__all__ = ["OperatorActions"]


class OperatorActions:
    """The ``operator_action`` hub command."""

    def __init__(
        self, lifecycle: Lifecycle, flow: Flow, allocation: Allocation, recovery: Recovery,
        confirmations: Confirmations,
    ) -> None:
        self.lifecycle = lifecycle
        self.flow = flow
        self.allocation = allocation
        self.recovery = recovery
        self.confirmations = confirmations

    def act(self, ctx: Context, cmd: HubCommand) -> dict[str, Any]:
        """Carry out one operator action; the workflow's state after it."""
        a: OperatorArgs = parse_args(OperatorArgs, cmd)
        wf = find_workflow(ctx.state, a.workflow_id)
        act = a.action
        if wf.state in ("completed", "cancelled", "cancelling") or (
                wf.state == "failed" and act != "restore" and act != "retry"):
            raise CoreError(f"workflow {wf.id} is {wf.state}; {act} does not apply")
        if act == "abort":
            self.lifecycle.workflow_machine.check(wf, "fail")
            self.recovery.abort(ctx, wf, f"aborted by operator ({cmd.command_id})")
        elif act == "restore":
            cp_id = a.checkpoint or (next(reversed(wf.checkpoints)) if wf.checkpoints else None)
            if cp_id is None or cp_id not in wf.checkpoints:
                raise UnknownEntity(f"workflow {wf.id} has no checkpoint {cp_id!r}")
            self.lifecycle.workflow_machine.check(wf, "restore")
            self.recovery.cancel_running(ctx, wf, "checkpoint restore")
            ctx.emit("checkpoint_restored", wf.id, {"id": cp_id})
            self.flow.advance(ctx, wf)
            self.allocation.allocate_waiting(ctx)
        elif act == "rollback":
            if a.step_id is not None:
                find_step(wf, a.step_id)
            if wf.rollback is not None:
                raise CoreError(f"workflow {wf.id} is already rolling back")
            if not self.recovery.start_rollback(ctx, wf, a.step_id, a.then):
                raise CoreError(f"workflow {wf.id}: no finished step to compensate")
        elif act == "signal":
            waiting = [s for s in wf.steps.values()
                       if s.spec.signal == a.signal and s.state == "executing"]
            if a.signal is None or not waiting:
                raise CoreError(f"workflow {wf.id}: no step waits for signal {a.signal!r}")
            for st in waiting:
                ctx.emit("step_done", wf.id, {"step": st.id, "outputs": {}})
            self.flow.advance(ctx, wf)
        else:
            self._on_step(ctx, wf, find_step(wf, a.step_id), act)
        return {"workflow_id": wf.id, "state": wf.state}

    def _on_step(self, ctx: Context, wf: WorkflowRun, st: StepRun, act: str) -> None:
        if act == "retry":
            self.lifecycle.step_machine.check(st, "retry")
            if wf.state == "failed":
                ctx.emit("workflow_recovered", wf.id, {})
            ctx.emit("step_retry", wf.id, {"step": st.id, "at": None, "fresh": True})
        elif act == "skip":
            self.lifecycle.step_machine.check(st, "skip")
            ctx.emit("step_skipped", wf.id, {"step": st.id, "reason": "skipped by operator"})
        elif st.agent is not None and st.state in ("assigned", "preparing", "executing"):
            # Reassigned once its agent confirmed it stopped (``_confirm``), not before.
            self.confirmations.withdraw(ctx, wf, st, "reassigned by operator", "avoid")
        else:  # reassign a failed step
            if st.state != "failed":
                raise CoreError(f"step {wf.id}.{st.id} is {st.state}; nothing to reassign")
            ctx.emit("step_requeued", wf.id, {
                "step": st.id, "reason": "reassigned", "avoid": st.agent or st.last_agent,
            })
        self.flow.advance(ctx, wf)
        self.allocation.allocate_waiting(ctx)
