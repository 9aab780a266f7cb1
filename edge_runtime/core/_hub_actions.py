"""The hub actions the cloud hub's API needs beyond the original set: ``update_workflow``,
``recover``, ``list_checkpoints`` and ``sync_arrival`` (docs/design.md §7).

They add no new machinery where some exists: ``recover`` maps each strategy onto the
operator actions (``_operator``), ``sync_arrival`` follows the rules of an agent's own
``SyncArrival`` (``_reports``) and ``list_checkpoints`` reads what ``_recovery`` recorded.
Each refuses with a ``CoreError`` before emitting anything, so a refused command changes
nothing; ``HubCommands.command`` adds the ``command_reply``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edge_runtime.core._allocation import Allocation
from edge_runtime.core._command_args import BadArguments, parse_args
from edge_runtime.core._context import Context
from edge_runtime.core._errors import CoreError, UnknownEntity
from edge_runtime.core._flow import Flow
from edge_runtime.core._hub_action_args import (
    CheckpointListArgs,
    RecoverArgs,
    SyncReportArgs,
    UpdateArgs,
)
from edge_runtime.core._lifecycle import Lifecycle
from edge_runtime.core._lookup import find_step, find_workflow
from edge_runtime.core._machine import WORKFLOW_TERMINAL
from edge_runtime.core._operator import OperatorActions
from edge_runtime.core._state import WorkflowRun
from edge_runtime.core._sync import SyncPoints
from topics import HubCommand

__all__ = ["HubActions"]

_Action = Callable[[Context, HubCommand], dict[str, Any]]


class HubActions:
    """Serves ``update_workflow``, ``recover``, ``list_checkpoints`` and ``sync_arrival``."""

    def __init__(self, lifecycle: Lifecycle, flow: Flow, allocation: Allocation,
                 sync: SyncPoints, operator: OperatorActions) -> None:
        self.lifecycle = lifecycle
        self.flow = flow
        self.allocation = allocation
        self.sync = sync
        self.operator = operator

    def actions(self) -> dict[str, _Action]:
        """The hub command actions this component serves."""
        return {"update_workflow": self.update_workflow, "recover": self.recover,
                "list_checkpoints": self.list_checkpoints, "sync_arrival": self.sync_arrival}

    # --- update_workflow --------------------------------------------------------------

    def update_workflow(self, ctx: Context, cmd: HubCommand) -> dict[str, Any]:
        """Change a live workflow's priority (its waiting steps are re-queued by it),
        deadline (the ``deadline:`` timer re-armed) and data (merged: the hub's values are
        the latest write of those variables, one more ``data_version``)."""
        a: UpdateArgs = parse_args(UpdateArgs, cmd)
        wf = find_workflow(ctx.state, a.workflow_id)
        if wf.state in WORKFLOW_TERMINAL or wf.state == "cancelling":
            raise CoreError(f"workflow {wf.id} is {wf.state}; it takes no update")
        change: dict[str, Any] = {}
        if a.priority is not None and a.priority != wf.priority:
            change["priority"] = a.priority
        if a.clear_deadline and wf.deadline is not None:
            change["deadline"] = None
        elif a.deadline is not None and a.deadline != wf.deadline:
            change["deadline"] = a.deadline
        if a.data:
            change["data"] = a.data
        if a.labels:
            labels = {k: v for k, v in a.labels.items() if (wf.labels or {}).get(k) != v}
            if labels:
                change["labels"] = labels
        if change:
            ctx.emit("workflow_updated", wf.id, {**change, "cmd": cmd.command_id})
            if "deadline" in change:
                if wf.deadline is None:
                    ctx.cancel_timer(f"deadline:{wf.id}")
                else:  # the deadline_at_risk rule looks again then (_temporal)
                    ctx.set_timer(f"deadline:{wf.id}", wf.deadline)
            if "priority" in change:
                self.allocation.allocate_waiting(ctx)
        return {"workflow_id": wf.id, "priority": wf.priority, "deadline": wf.deadline,
                "labels": wf.labels or {},
                "data_version": wf.data_version, "changed": sorted(change)}

    # --- recover ----------------------------------------------------------------------

    def recover(self, ctx: Context, cmd: HubCommand) -> dict[str, Any]:
        """A recovery strategy, as operator actions: ``automatic_retry`` retries every failed
        step (or ``step_id``), ``checkpoint_restore`` restores ``checkpoint_id`` (default:
        the newest), ``partial_rollback`` compensates the steps finished after ``step_id``
        or after ``checkpoint_id`` was taken, ``manual_intervention`` runs ``action``."""
        a: RecoverArgs = parse_args(RecoverArgs, cmd)
        wf = find_workflow(ctx.state, a.workflow_id)
        _only(a, {"automatic_retry": ("step_id",), "checkpoint_restore": ("checkpoint_id",),
                  "partial_rollback": ("step_id", "checkpoint_id", "then"),
                  "manual_intervention": ("action", "step_id", "checkpoint_id", "then",
                                          "signal")}[a.strategy])
        done: dict[str, Any] = {}
        if a.strategy == "automatic_retry":
            done["retried"] = self._retry_failed(ctx, cmd, wf, a.step_id)
        elif a.strategy == "checkpoint_restore":
            self._operate(ctx, cmd, wf, action="restore", checkpoint=a.checkpoint_id)
        elif a.strategy == "partial_rollback":
            if a.step_id is not None and a.checkpoint_id is not None:
                raise BadArguments("recover args: partial_rollback goes back to a step_id "
                                   "or to a checkpoint_id, not both")
            step = a.step_id if a.checkpoint_id is None else _step_at(wf, a.checkpoint_id)
            self._operate(ctx, cmd, wf, action="rollback", step_id=step, then=a.then)
        else:
            if a.action is None:
                raise BadArguments("recover args.action: manual_intervention needs the "
                                   "operator action")
            self._operate(ctx, cmd, wf, action=a.action, step_id=a.step_id,
                          checkpoint=a.checkpoint_id, then=a.then, signal=a.signal)
        return {"workflow_id": wf.id, "strategy": a.strategy, "state": wf.state, **done}

    def _retry_failed(self, ctx: Context, cmd: HubCommand, wf: WorkflowRun,
                      step_id: str | None) -> list[str]:
        if step_id is not None:
            failed = [find_step(wf, step_id)]
        else:
            failed = [s for s in wf.steps.values() if s.state == "failed" and s.comp_of is None]
        if not failed or any(s.state != "failed" for s in failed):
            raise CoreError(f"workflow {wf.id}: no failed step to retry"
                            + (f" ({step_id} is {failed[0].state})" if failed else ""))
        if wf.state in ("completed", "cancelled", "cancelling") or wf.rollback is not None:
            raise CoreError(f"workflow {wf.id} is {wf.state}"
                            + (" (rolling back)" if wf.rollback else "") + "; nothing to retry")
        for st in failed:  # all checked before the first is retried: a refusal changes nothing
            self.lifecycle.step_machine.check(st, "retry")
        for st in failed:
            self._operate(ctx, cmd, wf, action="retry", step_id=st.id)
        return [s.id for s in failed]

    def _operate(self, ctx: Context, cmd: HubCommand, wf: WorkflowRun, **args: Any) -> None:
        """Run one ``operator_action`` (its own checks refuse before any change)."""
        args = {k: v for k, v in args.items() if v is not None}
        self.operator.act(ctx, HubCommand.model_construct(
            command_id=cmd.command_id, action="operator_action", ts=cmd.ts,
            consistency=cmd.consistency, args={"workflow_id": wf.id, **args}))

    # --- list_checkpoints -------------------------------------------------------------

    def list_checkpoints(self, ctx: Context, cmd: HubCommand) -> dict[str, Any]:
        """A read: the workflow's checkpoints, oldest first (id, label, the seq and time it
        was taken, the workflow's state then and its steps by state). Only the
        ``command_reply`` is written, and it is not an event *of* the workflow (it names it
        in its result): a read does not make the sender's ``expected_seq`` stale."""
        a: CheckpointListArgs = parse_args(CheckpointListArgs, cmd)
        wf = find_workflow(ctx.state, a.workflow_id)
        listed = []
        for cp_id, cp in wf.checkpoints.items():
            by_state: dict[str, int] = {}
            for step_state, *_ in cp["steps"].values():
                by_state[step_state] = by_state.get(step_state, 0) + 1
            listed.append({"id": cp_id, "label": cp["label"], "seq": int(cp_id[2:]),
                           "at": cp.get("at"), "state": cp["state"],
                           "steps": dict(sorted(by_state.items()))})
        return {"workflow": wf.id, "checkpoints": listed}

    # --- sync_arrival -----------------------------------------------------------------

    def sync_arrival(self, ctx: Context, cmd: HubCommand) -> dict[str, Any]:
        """A participant's arrival at a sync point, reported through the hub: the rules of an
        agent's own ``SyncArrival`` (participants only, a repeat ignored), recorded with who
        reported it; the barrier releases once all are there."""
        a: SyncReportArgs = parse_args(SyncReportArgs, cmd)
        wf = find_workflow(ctx.state, a.workflow_id)
        st = find_step(wf, a.step_id)
        if st.spec.kind != "sync" or st.spec.team:
            raise CoreError(f"{wf.id}.{st.id} is a {st.spec.kind} step, not a sync point"
                            + (" (a coalition meets by its members' own arrivals)"
                               if st.spec.team else ""))
        if wf.state in WORKFLOW_TERMINAL:
            raise CoreError(f"workflow {wf.id} is {wf.state}; its sync points are closed")
        result = {"workflow_id": wf.id, "step_id": st.id, "agent_id": a.agent_id}
        if st.state == "done":
            if a.agent_id not in (st.outputs or {}).get("agents", []):
                raise CoreError(f"{a.agent_id} is not a participant of {wf.id}.{st.id}")
            return {**result, "arrived": False, "released": True}
        if st.state not in ("pending", "executing", "failed"):
            raise CoreError(f"sync point {wf.id}.{st.id} is {st.state}")
        if a.agent_id in st.arrived:
            return {**result, "arrived": False, "released": False}
        if a.agent_id not in self.sync.participants(wf, st):
            raise UnknownEntity(f"{a.agent_id} is not a participant of {wf.id}.{st.id}: it "
                                "finished none of " + ", ".join(st.spec.participants))
        ctx.emit("sync_arrived", wf.id, {"step": st.id, "agent": a.agent_id,
                                         "reported_by": a.reported_by, "cmd": cmd.command_id})
        released = self.sync.release(ctx, wf, st)
        if released:
            self.flow.advance(ctx, wf)
        return {**result, "arrived": True, "released": released}


def _only(a: RecoverArgs, allowed: tuple[str, ...]) -> None:
    """Refuse arguments the strategy does not use (rather than silently ignore them)."""
    for name in ("step_id", "checkpoint_id", "action", "signal", "then"):
        if name not in allowed and name in a.model_fields_set:
            raise BadArguments(f"recover args.{name}: {a.strategy} does not take it")


def _step_at(wf: WorkflowRun, checkpoint_id: str) -> str | None:
    """The step whose finish a rollback to ``checkpoint_id`` goes back to: the one that
    finished last before it was taken (``None``: none had, compensate every finished step)."""
    cp = wf.checkpoints.get(checkpoint_id)
    if cp is None:
        raise UnknownEntity(f"workflow {wf.id} has no checkpoint {checkpoint_id!r}")
    done: list[tuple[int, str]] = [(d_seq, sid) for sid, (s, _, _, _, d_seq) in cp["steps"].items()
            if s == "done" and d_seq]
    if not done:
        return None
    d_seq, sid = max(done)
    if wf.steps[sid].done_seq != d_seq:
        raise CoreError(f"workflow {wf.id}: step {sid} finished again since {checkpoint_id}; "
                        "roll back to a step_id instead")
    return sid
