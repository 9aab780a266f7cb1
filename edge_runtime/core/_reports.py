"""What agents report about their steps: progress, results, failures, sync arrivals (bids
go to ``_auction``).

Every report is checked before anything changes: the agent is known, the workflow and step
exist, the report is from the agent holding the step at that attempt, and the step is in a
state the report applies to. A redelivered report (same event id) is ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from edge_runtime.core._agents import Agents
from edge_runtime.core._allocation import Allocation
from edge_runtime.core._confirm import Confirmations
from edge_runtime.core._context import Context
from edge_runtime.core._errors import IllegalTransition, StaleInput, UnknownEntity
from edge_runtime.core._flow import Flow
from edge_runtime.core._hierarchy import refuse_open_substeps
from edge_runtime.core._machine import WORKFLOW_TERMINAL
from edge_runtime.core._recovery import Recovery
from edge_runtime.core._state import Agent, StepRun, WorkflowRun
from edge_runtime.core._sync import SyncPoints
from topics import (
    StepAccepted,
    StepDone,
    StepFailed,
    StepProgress,
    StepStarted,
    SyncArrival,
)

if TYPE_CHECKING:
    from edge_runtime.core._auction import Auctions
    from edge_runtime.core._coalition import Coalitions
    from edge_runtime.core._consistency import ConsistencyRules

__all__ = ["StepReports"]

_StepReport = StepAccepted | StepStarted | StepProgress | StepDone | StepFailed
_STATES_FOR = {
    StepAccepted: ("assigned", "cancelling"),
    StepStarted: ("assigned", "preparing", "cancelling"),
    StepProgress: ("assigned", "preparing", "executing", "cancelling"),
    StepDone: ("assigned", "preparing", "executing", "cancelling"),
    StepFailed: ("assigned", "preparing", "executing", "cancelling"),
}


class StepReports:
    """Handles agents' step events and sync arrivals."""

    consistency: ConsistencyRules | None = None
    """Set by the core: the workflow variables a finished step writes (``_consistency``)."""
    teams: Coalitions | None = None
    """Set by the core: reports on coalition steps (``_coalition``)."""
    auctions: Auctions | None = None
    """Set by the core: a winner failing a step it has not accepted declines the award."""

    def __init__(
        self, agents: Agents, flow: Flow, allocation: Allocation, sync: SyncPoints,
        recovery: Recovery, confirmations: Confirmations,
    ) -> None:
        self.agents = agents
        self.flow = flow
        self.allocation = allocation
        self.sync = sync
        self.recovery = recovery
        self.confirmations = confirmations

    def handlers(self) -> dict[type, Callable[[Context, Any], None]]:
        """The inputs this component takes."""
        report = self.step_report
        return {
            StepAccepted: report, StepStarted: report, StepProgress: report, StepDone: report,
            StepFailed: report, SyncArrival: self.sync_arrival,
        }

    def _find(
        self, ctx: Context, m: _StepReport | SyncArrival,
    ) -> tuple[Agent, WorkflowRun, StepRun] | None:
        """Validate a step event's addressing; ``None`` for a duplicate (already applied)."""
        agent = self.agents.known(ctx, m.agent_id)
        if m.event_id in agent.recent_ids:
            return None
        state = ctx.state
        wf = state.workflows.get(m.workflow_id)
        if wf is None:
            archived = state.archived.get(m.workflow_id)
            if archived is not None:
                raise StaleInput(f"workflow {m.workflow_id} is {archived} (archived); it takes "
                                 "no more step events")
            raise UnknownEntity(f"unknown workflow {m.workflow_id!r}")
        st = wf.steps.get(m.step_id)
        if st is None:
            raise UnknownEntity(f"workflow {wf.id} has no step {m.step_id!r}")
        return agent, wf, st

    def step_report(self, ctx: Context, m: _StepReport) -> None:
        """Accepted, started, progress, done or failed, from the agent holding the step."""
        found = self._find(ctx, m)
        if found is None:
            return
        agent, wf, st = found
        if st.spec.team and self.teams is not None and self.teams.report(ctx, agent, wf, st, m):
            return  # a coalition step: its members report together (_coalition)
        if st.agent != agent.id or st.attempt != m.attempt:
            raise StaleInput(
                f"{m.type} from {agent.id} for {wf.id}.{st.id} attempt {m.attempt}: the step "
                f"is held by {st.agent or 'nobody'} (attempt {st.attempt})"
            )
        allowed = _STATES_FOR[type(m)]
        if st.state not in allowed:
            raise IllegalTransition(
                f"step {wf.id}.{st.id} is {st.state}; {m.type} applies only when it is "
                + " or ".join(allowed)
            )
        if isinstance(m, StepDone) and st.subs:
            refuse_open_substeps(wf, st)  # a team lead: only once its team is done
        base: dict[str, Any] = {"step": st.id, "agent": agent.id, "eid": m.event_id}
        if st.state == "cancelling":
            # Told to stop: it failing is stopping; it finishing is reported as not stopping;
            # anything else it says meanwhile is news of a step it is leaving.
            if isinstance(m, StepFailed):
                self.confirmations.stopped(ctx, wf, st, f"stopped: {m.error_type}",
                                           m.event_id)
                return
            if not isinstance(m, StepDone):
                return
            self.confirmations.finished_anyway(ctx, wf, st)
        if isinstance(m, StepAccepted):
            ctx.emit("step_accepted", wf.id, base)
        elif isinstance(m, StepStarted):
            ctx.emit("step_started", wf.id, base)
        elif isinstance(m, StepProgress):
            ctx.emit("step_progress", wf.id, {**base, "progress": m.progress})
        elif isinstance(m, StepFailed):
            # Before accepting an award, failing is declining it: the next bid wins.
            if self.auctions is None or not self.auctions.declined(
                    ctx, wf, st, agent.id, f"{m.error_type}: {m.message}", m.event_id):
                self.recovery.fail_step(ctx, wf, st, m.error_type, m.message,
                                        retryable=m.retryable,
                                        extra={"agent": agent.id, "eid": m.event_id})
            self.allocation.allocate_waiting(ctx)
        else:
            missing = [o for o in st.spec.outputs if o not in m.outputs]
            if missing:
                self.recovery.fail_step(
                    ctx, wf, st, "invalid_output", f"missing outputs: {', '.join(missing)}",
                    retryable=True, extra={"agent": agent.id, "eid": m.event_id},
                )
            else:
                if st.timeout_at is not None:
                    ctx.cancel_timer(f"timeout:{wf.id}/{st.id}")
                base["outputs"] = m.outputs
                ctx.emit("step_done", wf.id, base)
                if self.consistency is not None:
                    self.consistency.step_done(ctx, wf, st)
                self.flow.advance(ctx, wf)
            self.allocation.allocate_waiting(ctx)

    def sync_arrival(self, ctx: Context, m: SyncArrival) -> None:
        """Record an arrival whenever it comes; release the barrier once all are there.

        An arrival before the barrier opens (another participant is still on its way) is
        kept; a repeat is a no-op, and one after the release gets the release again.
        """
        found = self._find(ctx, m)
        if found is None:
            return
        agent, wf, st = found
        if st.spec.team and self.teams is not None:
            self.teams.arrival(ctx, agent, wf, st, m)  # a coalition's members meet
            return
        if st.spec.kind != "sync":
            raise StaleInput(f"{wf.id}.{st.id} is a {st.spec.kind} step, not a sync point")
        if wf.state in WORKFLOW_TERMINAL:
            raise StaleInput(f"workflow {wf.id} is {wf.state}; its sync points are closed")
        if st.state == "done":
            released = (st.outputs or {}).get("agents", [])
            if agent.id not in released and agent.id not in st.arrived:
                raise StaleInput(f"{agent.id} is not a participant of {wf.id}.{st.id}")
            self.sync.send_release(ctx, wf, st, agent.id, st.done_seq)
            return
        if st.state not in ("pending", "executing", "failed"):
            raise StaleInput(f"sync point {wf.id}.{st.id} is {st.state}")
        if agent.id in st.arrived:
            return
        if agent.id not in self.sync.participants(wf, st):
            raise StaleInput(
                f"{agent.id} is not a participant of {wf.id}.{st.id}: it finished none of "
                + ", ".join(st.spec.participants)
            )
        ctx.emit("sync_arrived", wf.id, {"step": st.id, "agent": agent.id, "eid": m.event_id})
        if self.sync.release(ctx, wf, st):
            self.flow.advance(ctx, wf)
