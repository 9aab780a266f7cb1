"""Deadlock detection (docs/design.md §6): a wait-for graph, a victim, and its rescheduling.

After every input that leaves a step waiting while some workflow holds a resource across
steps, the core builds the wait-for graph (networkx): an edge from workflow A to workflow B
for each step of A in the queue that needs a resource B holds across steps (B lets go of it
only when its own later steps get what they need; a resource held by a running step alone is
no edge — that step ends by itself). A cycle is a deadlock; the ordering of
``_resources`` prevents those it can see, this catches the rest (ordering off, an operator's
``add_dependency`` after a span began).

The victim is the workflow of the cycle with the lowest priority, then the youngest (the
highest ``order``). It releases everything it holds across steps and is *rescheduled*: it
goes back to the step that first acquired each released resource — that step and every step
after it that already ran or waits (the steps inside the span) are reset to pending, a step
of it still in flight is told to stop and re-runs too — so the other workflows take the
resources first and the victim acquires them again, in its turn. Events, in one batch:
``deadlock_detected`` (the cycle and its waits), ``conflict_detected`` (type ``resource``,
rule ``deadlock``, strategy ``victim``), ``resources_released`` (what was let go, the steps
reset), the in-flight steps' ``step_cancelling``, and ``conflict_resolved``.
"""

from __future__ import annotations

import networkx as nx

from edge_runtime.core._allocation import Allocation
from edge_runtime.core._confirm import Confirmations
from edge_runtime.core._conflict import Conflicts
from edge_runtime.core._context import Context
from edge_runtime.core._flow import Flow
from edge_runtime.core._resources import Resources, descendants
from edge_runtime.core._state import WorkflowRun

__all__ = ["Deadlocks"]

_IN_FLIGHT = ("assigned", "preparing", "executing", "validating", "cleanup")
_RESETTABLE = ("ready", "allocating", "done", "failed", "skipped")


class Deadlocks:
    """Builds the wait-for graph when steps wait, and breaks a cycle with a victim."""

    def __init__(self, resources: Resources, flow: Flow, allocation: Allocation,
                 conflicts: Conflicts, confirmations: Confirmations) -> None:
        self.resources = resources
        self.flow = flow
        self.allocation = allocation
        self.conflicts = conflicts
        self.confirmations = confirmations

    def check(self, ctx: Context) -> None:
        """Look for a cycle among the waits now; break each one found (a victim each)."""
        for _ in range(len(ctx.state.workflows)):  # each victim leaves the graph
            waits = self.waits(ctx)
            if len(waits) < 2:
                return
            graph: nx.DiGraph[str] = nx.DiGraph()
            for waiter, _res, holder in waits:
                graph.add_edge(waiter, holder)
            try:
                cycle = [edge[0] for edge in nx.find_cycle(graph)]
            except nx.NetworkXNoCycle:
                return
            self._break(ctx, cycle, [w for w in waits if w[0] in cycle and w[2] in cycle])

    def waits(self, ctx: Context) -> list[tuple[str, str, str]]:
        """``(waiting workflow, resource, holding workflow)`` for every step in the queue
        that needs a resource another workflow holds across steps, in queue order."""
        state = ctx.state
        if not state.holds or not state.queue:
            return []
        workflows = state.workflows
        if not any(res in workflows[h[0]].spans for res, h in state.holds.items()
                   if h[0] in workflows):
            return []  # nothing is held across steps: every hold ends by itself
        out: list[tuple[str, str, str]] = []
        for key in state.queue:
            wf = workflows[key[3]]
            st = wf.steps[key[4]]
            if st.state != "allocating" or not wf.state.startswith("active"):
                continue
            for res in self.resources.blockers(state, wf, st):
                wait = (wf.id, res, state.holds[res][0])
                if wait not in out:
                    out.append(wait)
        return out

    def _break(self, ctx: Context, cycle: list[str], waits: list[tuple[str, str, str]]
               ) -> None:
        workflows = ctx.state.workflows
        victim = min((workflows[w] for w in cycle), key=lambda w: (w.priority, -w.order))
        resources = list(victim.spans)
        reset, stop = self._reschedule(victim, resources)
        ctx.emit("deadlock_detected", victim.id, {
            "cycle": cycle, "waits": [list(w) for w in waits], "victim": victim.id})
        detail = "; ".join(f"{a} waits for {r} held by {b}" for a, r, b in waits)
        conflict = self.conflicts.detect(
            ctx, f"deadlock:{ctx.state.seq + 1}", "deadlock", list(cycle),
            resources[0] if resources else None, "victim", detail, victim.id, type_="resource")
        ctx.emit("resources_released", victim.id, {
            "resources": resources, "reset": reset, "conflict": conflict.id})
        for sid in stop:
            self.confirmations.withdraw(ctx, victim, victim.steps[sid],
                                        "deadlock victim: rescheduled", "requeue")
        self.conflicts.resolve(ctx, conflict, f"victim {victim.id} released "
                               f"{', '.join(resources)} and was rescheduled")
        # The others take what was released first; then the victim starts over.
        self.allocation.allocate_waiting(ctx)
        self.flow.advance(ctx, victim)
        self.allocation.allocate_waiting(ctx)

    @staticmethod
    def _reschedule(wf: WorkflowRun, resources: list[str]) -> tuple[list[str], list[str]]:
        """The steps to reset (from each released resource's acquiring step on: the span
        and what follows it) and those in flight among them, to be stopped first."""
        starts: list[str] = []
        for res in resources:
            first = wf.spans[res][0]
            if first not in starts:
                starts.append(first)
        chosen: set[str] = set()
        for first in starts:
            chosen.add(first)
            chosen.update(descendants(wf, first))
        ordered = [sid for sid in wf.steps if sid in chosen]
        steps = wf.steps
        stop = [s for s in ordered if steps[s].state in _IN_FLIGHT and steps[s].agent]
        reset = [s for s in ordered if steps[s].state in _RESETTABLE
                 or (steps[s].state in _IN_FLIGHT and not steps[s].agent)]  # wait, sync
        return reset, stop
