"""Data-consistency conflict rules (docs/design.md §6): concurrent writes to one workflow variable,
and stale hub commands. Both are ``data`` conflicts (``edge_runtime.core._conflict``).

- ``concurrent_write`` — a step writes workflow variables when it is done (the template's
  ``sets: {variable: output}``; event ``data_written``). Each write makes the workflow's
  ``data_version`` one higher, and a step remembers the version it saw when it was assigned.
  A step that finishes and writes a variable that another step wrote *after* this one was
  assigned ran concurrently with it (neither finished before the other started): the
  conflict names both steps, and ``CoreConfig.concurrent_write`` decides — ``operator``
  (default): the later write is held (``data_write_held``), the variable keeps the value that
  stands, and an operator's ``resolve_conflict`` names the step whose value wins;
  ``last_writer_wins`` / ``first_writer_wins``: applied / dropped at once, the conflict
  recorded and resolved in the same input. Writes one after the other are not a conflict.
- ``stale_command`` — a hub command on a workflow carrying ``expected_seq`` (the seq of the
  last event of that workflow its sender had seen) when the workflow has had a later event,
  or (``CoreConfig.stale_command_s``) whose ``ts`` is older than the workflow's last change
  by more than that bound. It is refused — its action does not run — but the refusal is a
  recorded decision, not an exception: ``conflict_detected`` (strategy ``refuse``),
  ``conflict_resolved`` and a ``command_reply`` whose result says ``refused`` (so the hub
  stops resending it, and a resend gets the same answer). An exception could record
  nothing: a refused input changes nothing (docs/decisions.md).
"""

from __future__ import annotations

from typing import Any

from edge_runtime.core._conflict import Conflicts
from edge_runtime.core._context import Context
from edge_runtime.core._errors import CoreError
from edge_runtime.core._state import Conflict, StepRun, WorkflowRun
from topics import HubCommand

__all__ = ["GUARDED_ACTIONS", "ConsistencyRules"]

GUARDED_ACTIONS = frozenset({
    "cancel_workflow", "pause_workflow", "resume_workflow", "operator_action",
    "add_dependency", "checkpoint", "set_coordination",
    "update_workflow", "recover", "sync_arrival",  # _hub_actions
})
"""Hub command actions on an existing workflow: they take ``expected_seq`` and may be
stale."""


class ConsistencyRules:
    """Workflow-variable writes and their conflicts; the stale-command guard."""

    def __init__(self, conflicts: Conflicts, policy: str, stale_after: float | None) -> None:
        self.conflicts = conflicts
        self.policy = policy
        """``CoreConfig.concurrent_write``."""
        self.stale_after = stale_after
        """``CoreConfig.stale_command_s``."""
        conflicts.settlers["concurrent_write"] = self.settle

    # --- concurrent writes ------------------------------------------------------------

    def step_done(self, ctx: Context, wf: WorkflowRun, st: StepRun) -> None:
        """``st`` just finished: write the variables it ``sets`` (before anything after it
        starts, so conditions and later steps see them), unless a write is concurrent."""
        sets = st.spec.sets
        if not sets:
            return
        outputs = st.outputs or {}
        values: dict[str, Any] = {}
        for name, output in sets.items():
            value = outputs.get(output)
            prior = wf.writers.get(name)
            if prior is None or prior[0] == st.id or prior[1] <= st.seen_version:
                values[name] = value  # first write, or one after the other
            elif self._concurrent(ctx, wf, st, name, value, prior[0]):
                values[name] = value
        if values:
            ctx.emit("data_written", wf.id, {"step": st.id, "values": values})

    def _concurrent(self, ctx: Context, wf: WorkflowRun, st: StepRun, name: str,
                    value: Any, other: str) -> bool:
        """Record the conflict between ``other``'s write of ``name`` and ``st``'s; whether
        ``st``'s write applies now."""
        agents = [a for a in (wf.steps[other].last_agent, st.last_agent) if a is not None]
        detail = (f"{wf.id}.{other} and {wf.id}.{st.id} ran concurrently and both wrote "
                  f"data.{name}; {other}'s value stands, {st.id}'s came later")
        conflict = self.conflicts.detect(
            ctx, f"concurrent_write:{wf.id}/{name}/{st.id}/{ctx.state.seq + 1}",
            "concurrent_write", list(dict.fromkeys(agents)), f"data.{name}", self.policy,
            detail, wf.id, "data")
        if self.policy == "last_writer_wins":
            self.conflicts.resolve(ctx, conflict, f"last writer wins: {st.id}'s value applied")
            return True
        if self.policy == "first_writer_wins":
            self.conflicts.resolve(ctx, conflict, f"first writer wins: {other}'s value kept")
            return False
        ctx.emit("data_write_held", wf.id, {"conflict": conflict.id, "variable": name,
                                            "step": st.id, "value": value, "against": other})
        ctx.emit("conflict_escalated", None, {
            "id": conflict.id, "reason": f"name the step whose data.{name} stands: "
                                         f"{other} or {st.id}"})
        return False

    def settle(self, ctx: Context, conflict: Conflict, resolution: str) -> None:
        """An operator's ``resolve_conflict`` on a held write: ``resolution`` names the step
        whose value stands. Refused (nothing changes) if it names neither."""
        wf = ctx.state.workflows.get(conflict.workflow_id or "")
        held = wf.held.get(conflict.id) if wf is not None else None
        if wf is None or held is None:
            return  # the workflow left memory: nothing to write any more
        name, step, value, other = held
        choice = resolution.strip()
        if choice == step:
            ctx.emit("data_written", wf.id, {"step": step, "values": {name: value},
                                             "conflict": conflict.id})
        elif choice == other:
            ctx.emit("data_write_dropped", wf.id, {"conflict": conflict.id})
        else:
            raise CoreError(f"conflict {conflict.id} ({conflict.rule}): the resolution names "
                            f"the step whose data.{name} stands, {other!r} (its value now) "
                            f"or {step!r} (the held write), not {choice!r}")

    # --- stale commands ---------------------------------------------------------------

    def check_command(self, ctx: Context, cmd: HubCommand) -> dict[str, Any] | None:
        """``None`` if ``cmd`` may run; else it is stale: the conflict is recorded and the
        result of its refusing ``command_reply`` returned."""
        if cmd.action not in GUARDED_ACTIONS:
            return None
        wid = cmd.args.get("workflow_id")
        wf = ctx.state.workflows.get(wid) if isinstance(wid, str) else None
        if wf is None:
            return None  # the action itself refuses an unknown workflow
        last_seq = wf.last_seq or wf.order
        expected = cmd.args.get("expected_seq")
        detail = ""
        if type(expected) is int and 0 <= expected < last_seq:
            detail = (f"{cmd.action} {cmd.command_id} expected {wf.id} as of seq {expected}; "
                      f"it changed since (seq {last_seq}, {wf.state})")
        elif self.stale_after is not None and cmd.ts > 0:
            changed = ((wf.last_hlc or wf.created_hlc) >> 16) / 1000
            if cmd.ts < changed - self.stale_after:
                detail = (f"{cmd.action} {cmd.command_id} sent at {cmd.ts:.3f}, more than "
                          f"{self.stale_after} s before {wf.id} last changed ({changed:.3f})")
        if not detail:
            return None
        conflict = self.conflicts.detect(
            ctx, f"stale_command:{cmd.command_id}", "stale_command", [], None, "refuse",
            detail, wf.id, "data")
        self.conflicts.resolve(ctx, conflict, "refused: the command was not applied")
        return {"workflow_id": wf.id, "refused": "stale_command", "conflict_id": conflict.id,
                "error": detail[:512], "last_seq": last_seq}
