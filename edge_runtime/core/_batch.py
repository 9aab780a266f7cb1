"""Batch allocation (docs/design.md §6): waiting steps and free agents assigned together, at least
total cost, instead of greedily one at a time.

An allocation point is ``Allocation.allocate_waiting`` — agents became free, or steps
became ready within a batch window (``CoreConfig.batch_window_s``). There the queue is
walked in order, as before, and each *segment* — consecutive waiting steps of one priority
level that allocation may batch — is solved as one assignment problem
(``_assignment.min_cost_assignment``):

* **Which** steps are served is still queue order: a segment holds at most as many steps as
  there are free agents, oldest first, and a level is solved before the next one starts, so
  a higher-priority step is never left waiting while a lower-priority one takes an agent it
  could have had (the lower one only sees the agents the higher level left).
* **Who** serves them is the cost-optimal matching among the agents each step may take —
  the candidates and costs ``Allocation.pick`` finds for it, so every per-step filter
  (capabilities, allowed/forbidden agents, the workflow's agents, battery …) holds. A free
  preferred agent still beats any other whatever the cost: non-preferred pairs of a step
  that prefers some agent carry a penalty larger than any total of costs.

Only plain steps are batched: ``direct`` coordination, no team, no resources (their
acquisition order is ``_resources``'). Anything else — and a segment of one step, or one
free agent — goes through the one-at-a-time path unchanged, which keeps its cost and its
decisions. Without a cost function every able agent costs the same, so nothing is batched.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from edge_runtime.core._assignment import min_cost_assignment
from edge_runtime.core._context import Context
from edge_runtime.core._state import QueueKey, StepRun, WorkflowRun

if TYPE_CHECKING:
    from edge_runtime.core._allocation import Allocation

__all__ = ["BATCH_TIMER", "BatchAllocation"]

BATCH_TIMER = "alloc:batch"
"""The batch window's timer (``_timers`` runs ``allocate_waiting`` when it fires)."""


def batchable(wf: WorkflowRun, st: StepRun) -> bool:
    """A plain direct step: batch allocation may decide it."""
    spec = st.spec
    return wf.coordination == "direct" and not spec.team and not spec.resources \
        and not spec.hold_until


class BatchAllocation:
    """Solves segments of the allocation queue as assignment problems."""

    def __init__(self, allocation: Allocation, window_s: float) -> None:
        self.allocation = allocation
        self.window_s = window_s
        """Ready steps wait for the next multiple of this (0: no window)."""

    # --- the batch window -------------------------------------------------------------

    def defer(self, ctx: Context, wf: WorkflowRun, st: StepRun) -> bool:
        """With a window, the ready step ``st`` waits for the window's end (``step_ready``
        and the batch timer); ``False`` without one (it is offered at once)."""
        if not self.window_s or not batchable(wf, st):
            return False
        ctx.emit("step_ready", wf.id, {"step": st.id})
        ctx.set_timer(BATCH_TIMER, self.window_end(ctx.now))
        return True

    def window_end(self, now: float) -> float:
        """The next multiple of the window after ``now``: one timer for every step that
        became ready within a window, at a time no step can push back."""
        return (math.floor(now / self.window_s) + 1) * self.window_s

    def rearm(self, ctx: Context) -> None:
        """After a restart: steps may be waiting for a window whose timer was lost."""
        if self.window_s and ctx.state.queue:
            ctx.set_timer(BATCH_TIMER, self.window_end(ctx.now))

    # --- segments ---------------------------------------------------------------------

    def run(self, ctx: Context, keys: list[QueueKey], i: int) -> int:
        """Batch the segment of ``keys`` starting at ``i``; the index after the keys it
        consumed, or ``i`` if there is nothing to batch there (the caller takes ``keys[i]``
        one at a time)."""
        allocation = self.allocation
        if allocation.cost is None:
            return i
        state = ctx.state
        free = 0
        for ids in state.idle.values():
            free += len(ids)
        if free < 2:
            return i
        workflows = state.workflows
        level = keys[i][0]
        steps: list[tuple[WorkflowRun, StepRun]] = []
        j = i
        while j < len(keys) and len(steps) < free:
            key = keys[j]
            if key[0] != level:
                break
            wf = workflows[key[3]]
            st = wf.steps[key[4]]
            if st.state == "allocating" and wf.state.startswith("active"):
                if not batchable(wf, st):
                    break
                steps.append((wf, st))
            j += 1
        if len(steps) < 2:
            return i
        self.solve(ctx, steps)
        return j

    def solve(self, ctx: Context, steps: list[tuple[WorkflowRun, StepRun]]) -> None:
        """Assign ``steps`` (queue order) to the free agents at least total cost."""
        allocation = self.allocation
        scored: list[dict[str, tuple[bool, float]]] = []
        columns: dict[str, int] = {}
        for wf, st in steps:
            scores: dict[str, tuple[bool, float]] = {}
            allocation.pick(ctx, wf, st, scores=scores)
            scored.append(scores)
            for aid in scores:
                columns.setdefault(aid, 0)
        if not columns:
            return
        order = sorted(columns)  # ties between equal totals go by agent id
        for n, aid in enumerate(order):
            columns[aid] = n
        penalty = 1.0
        for scores in scored:
            penalty += max((abs(c) for _, c in scores.values()), default=0.0)
        matrix: list[list[float | None]] = []
        for (_, st), scores in zip(steps, scored, strict=True):
            row: list[float | None] = [None] * len(order)
            prefers = bool(st.spec.agents.preferred)
            for aid, (not_preferred, c) in scores.items():
                row[columns[aid]] = c + penalty if prefers and not_preferred else c
            matrix.append(row)
        agents = ctx.state.agents
        for (wf, st), col in zip(steps, min_cost_assignment(matrix), strict=True):
            if col is not None:
                allocation.assign(ctx, wf, st, agents[order[col]])
