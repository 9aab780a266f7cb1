"""The appliers of conflict events (``edge_runtime.core._conflict``): a base of
``Projection``, kept apart so each module stays one concern."""

from __future__ import annotations

from typing import Any

from edge_runtime.core._event import Event
from edge_runtime.core._state import Conflict, FacilityState, WorkflowRun

__all__ = ["RESOLVED_KEPT", "ConflictEvents"]

RESOLVED_KEPT = 1000
"""Resolved conflicts kept in memory (the oldest go first; the log keeps them all)."""


class ConflictEvents:
    """``_on_<kind>`` appliers for ``conflict_detected``, ``conflict_joined``,
    ``agent_stopped``, ``conflict_escalated`` and ``conflict_resolved``."""

    state: FacilityState

    def _on_conflict_detected(self, wf: WorkflowRun | None, d: dict[str, Any],
                              ev: Event) -> None:
        c = Conflict(d["id"], d["key"], d["type"], d["rule"], list(d["participants"]),
                     d["resource"], d["strategy"], d["detail"], d["at"], ev.workflow_id)
        c.claims = d.get("claims", [])
        self.state.conflicts[c.id] = c
        self.state.open_conflicts[c.key] = c

    def _on_conflict_joined(self, wf: WorkflowRun | None, d: dict[str, Any],
                            ev: Event) -> None:
        self.state.conflicts[d["id"]].participants.append(d["agent"])

    def _on_agent_stopped(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        agent = self.state.agents[d["agent"]]
        agent.stopped_by = d["conflict"]
        self.state.set_idle(agent)

    def _on_conflict_escalated(self, wf: WorkflowRun | None, d: dict[str, Any],
                               ev: Event) -> None:
        self.state.conflicts[d["id"]].status = "escalated"

    def _on_conflict_resolved(self, wf: WorkflowRun | None, d: dict[str, Any],
                              ev: Event) -> None:
        state = self.state
        c = state.conflicts[d["id"]]
        c.status, c.resolution, c.resolved_at = "resolved", d["resolution"], d["at"]
        del state.open_conflicts[c.key]
        for agent in state.agents.values():
            if agent.stopped_by == c.id:
                agent.stopped_by = None
                state.set_idle(agent)
        excess = len(state.conflicts) - len(state.open_conflicts) - RESOLVED_KEPT
        if excess > 0:
            for cid in [k for k, x in state.conflicts.items() if x.status == "resolved"][:excess]:
                del state.conflicts[cid]
