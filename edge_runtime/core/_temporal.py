"""Temporal conflict rules (docs/design.md §6): a step stalled past its estimate, and a workflow's
deadline predicted to be missed. Both are ``temporal`` conflicts escalated to an operator
(``edge_runtime.core._conflict``), resolved by themselves once the cause is gone.

- ``step_stalled`` — a step still held by its agent ``CoreConfig.stall_factor`` times its
  ``estimated_duration_s`` after it was assigned (a timer armed at assignment); resolved
  when that attempt ends.
- ``deadline_at_risk`` — a workflow with a ``deadline`` whose predicted end, now plus the
  longest chain of estimated durations of its unfinished steps, falls after the deadline;
  checked whenever one of its events is made and when the deadline comes; resolved when the
  prediction fits again or the workflow ends.
"""

from __future__ import annotations

from edge_runtime.core._conflict import Conflicts
from edge_runtime.core._context import Context
from edge_runtime.core._effects import Append
from edge_runtime.core._machine import STEP_TERMINAL, WORKFLOW_TERMINAL
from edge_runtime.core._state import StepRun, WorkflowRun

__all__ = ["TemporalRules", "predicted_end"]


def _acknowledged(ctx: Context, key: str) -> bool:
    """An operator resolved this conflict before: it is not raised again."""
    return any(c.key == key and c.resolution.startswith("operator")
               for c in ctx.state.conflicts.values())

_HELD = ("assigned", "preparing", "executing", "validating", "cleanup", "cancelling")


def _estimate(st: StepRun) -> float:
    spec = st.spec
    if spec.kind == "wait":
        return spec.duration_s or 0.0
    if spec.kind in ("decision", "sync"):
        return 0.0
    return spec.estimated_duration_s


def predicted_end(wf: WorkflowRun, now: float) -> float:
    """``now`` plus the longest chain of estimated durations of ``wf``'s unfinished steps
    (a running step counts whole: how far it got is not known)."""
    finish: dict[str, float] = {}
    longest = 0.0
    for sid, st in wf.steps.items():  # template order: predecessors come first
        start = max((finish.get(p, 0.0) for p in st.preds), default=0.0)
        finish[sid] = start + (0.0 if st.state in STEP_TERMINAL else _estimate(st))
        longest = max(longest, finish[sid])
    return now + longest


class TemporalRules:
    """Detects and resolves the temporal conflicts."""

    def __init__(self, conflicts: Conflicts) -> None:
        self.conflicts = conflicts

    def stalled(self, ctx: Context, wf: WorkflowRun, st: StepRun) -> None:
        """The stall timer of ``st`` fired: a conflict if its agent still holds it."""
        if st.stall_at is None or st.stall_at > ctx.now or st.state not in _HELD:
            return
        key = f"step_stalled:{wf.id}/{st.id}/{st.attempt}"
        if key in ctx.state.open_conflicts:
            return
        detail = (f"{wf.id}.{st.id} held by {st.agent} past {st.stall_at:.0f} "
                  f"({st.spec.estimated_duration_s} s estimated)")
        conflict = self.conflicts.detect(ctx, key, "step_stalled", [st.agent or ""], None,
                                         "operator", detail, wf.id, "temporal")
        ctx.emit("conflict_escalated", None, {"id": conflict.id, "reason": detail})

    def review(self, ctx: Context) -> None:
        """After an input: deadlines of the workflows it touched, and open temporal
        conflicts whose cause may be gone."""
        state = ctx.state
        touched: dict[str, None] = {}
        for effect in ctx.effects:
            if isinstance(effect, Append) and effect.event.workflow_id is not None:
                touched[effect.event.workflow_id] = None
        for wid in touched:
            wf = state.workflows.get(wid)
            if wf is not None and wf.deadline is not None:
                self.check_deadline(ctx, wf)
        for conflict in [c for c in state.open_conflicts.values() if c.type == "temporal"]:
            rule, _, rest = conflict.key.partition(":")
            if rule == "step_stalled":
                wid, sid, attempt = rest.split("/")
                wf = state.workflows.get(wid)
                st = wf.steps.get(sid) if wf is not None else None
                if st is None or st.state not in _HELD or str(st.attempt) != attempt:
                    self.conflicts.resolve(ctx, conflict, "the step ended")
            elif rule == "deadline_at_risk" and rest not in state.workflows:
                self.conflicts.resolve(ctx, conflict, "the workflow left memory")

    def check_deadline(self, ctx: Context, wf: WorkflowRun) -> None:
        """Open or resolve ``wf``'s ``deadline_at_risk`` conflict."""
        assert wf.deadline is not None
        key = f"deadline_at_risk:{wf.id}"
        conflict = ctx.state.open_conflicts.get(key)
        if wf.state in WORKFLOW_TERMINAL:
            if conflict is not None:
                self.conflicts.resolve(ctx, conflict, f"the workflow is {wf.state}")
            return
        end = predicted_end(wf, ctx.now)
        if end > wf.deadline and conflict is None and not _acknowledged(ctx, key):
            detail = (f"{wf.id} is predicted to end at {end:.0f}, after its deadline "
                      f"{wf.deadline:.0f}")
            conflict = self.conflicts.detect(ctx, key, "deadline_at_risk", [], None,
                                             "operator", detail, wf.id, "temporal")
            ctx.emit("conflict_escalated", None, {"id": conflict.id, "reason": detail})
        elif end <= wf.deadline and conflict is not None:
            self.conflicts.resolve(ctx, conflict, f"predicted to end at {end:.0f}, in time")
