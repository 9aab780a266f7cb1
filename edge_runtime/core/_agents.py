"""Agents' presence (docs/design.md §6): joining, state reports, liveness, loss.

An agent announces itself on its ``conn`` topic (kind, capabilities, liveness window) and
then reports state periodically. No state within ``liveness_s * liveness_factor``, or its
offline will, makes it lost: its running step goes back to be allocated again (a lost agent
is not a step failure). An agent that becomes available gets the best queued step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from edge_runtime.core._allocation import Allocation
from edge_runtime.core._conflict import Conflicts
from edge_runtime.core._context import Context
from edge_runtime.core._errors import UnknownEntity
from edge_runtime.core._flow import Flow
from edge_runtime.core._state import Agent

if TYPE_CHECKING:
    from edge_runtime.core._coalition import Coalitions
from topics import AgentConn, AgentState

__all__ = ["Agents"]


class Agents:
    """Handles ``AgentConn`` and ``AgentState``; loses silent agents."""

    def __init__(
        self, flow: Flow, allocation: Allocation, conflicts: Conflicts, *,
        liveness_factor: float, battery_delta: float,
    ) -> None:
        self.flow = flow
        self.conflicts = conflicts
        self.allocation = allocation
        self.liveness_factor = liveness_factor
        self.battery_delta = battery_delta
        """Battery changes smaller than this (percent) are not recorded as events."""
        self.teams: Coalitions | None = None
        """Set by the core: a lost member of a coalition step (``_coalition``)."""

    def handlers(self) -> dict[type, Callable[[Context, Any], None]]:
        """The inputs this component takes."""
        return {AgentConn: self.conn, AgentState: self.report}

    def known(self, ctx: Context, agent_id: str) -> Agent:
        """The agent ``agent_id``; ``UnknownEntity`` if it never announced itself."""
        agent = ctx.state.agents.get(agent_id)
        if agent is None:
            raise UnknownEntity(f"agent {agent_id} has not announced itself on its conn topic")
        return agent

    def arm_liveness(self, ctx: Context, agent: Agent) -> None:
        """Start (or restart) the agent's liveness window from ``now``."""
        ctx.set_timer(f"liveness:{agent.id}", ctx.now + agent.liveness * self.liveness_factor)

    def conn(self, ctx: Context, m: AgentConn) -> None:
        """An agent came online (or changed what it is), or went offline."""
        agent = ctx.state.agents.get(m.agent_id)
        if not m.online:
            if agent is not None and agent.online:
                ctx.cancel_timer(f"liveness:{agent.id}")
                self.lose(ctx, agent, "offline")
            return
        caps = list(dict.fromkeys(m.capabilities))
        if (
            agent is None or not agent.online or agent.kind != m.kind
            or agent.caps != frozenset(caps) or agent.liveness != m.liveness_s
            or agent.bids != m.bids
        ):
            if agent is not None and agent.task is not None and agent.kind != m.kind:
                self.lose(ctx, agent, "changed kind")
            ctx.emit("agent_joined", None, {
                "agent": m.agent_id, "kind": m.kind, "caps": caps, "liveness": m.liveness_s,
                **({} if m.bids else {"bids": False}),  # the edge bids for it (_auction)
            })
            joined = ctx.state.agents[m.agent_id]
            self.conflicts.check_agent(ctx, joined, joined.node)
        self.arm_liveness(ctx, ctx.state.agents[m.agent_id])
        self.allocation.allocate_waiting(ctx)

    def report(self, ctx: Context, m: AgentState) -> None:
        """A periodic state: record what changed, restart the liveness window."""
        agent = self.known(ctx, m.agent_id)
        # Allocation only when the agent becomes available: an agent that already was had
        # its chance when the queue last changed, and scanning the queue for each periodic
        # state would cost O(waiting steps) per message.
        was_available = agent.available
        if not agent.online:
            ctx.emit("agent_joined", None, {
                "agent": agent.id, "kind": agent.kind, "caps": sorted(agent.caps),
                "liveness": agent.liveness, **({} if agent.bids else {"bids": False}),
            })
        battery = m.battery
        old_node = agent.node
        if (
            agent.status != m.status or agent.node != m.node or agent.mode != m.mode
            or agent.e_stop != m.e_stop or (battery is None) != (agent.battery is None)
            or (battery is not None and agent.battery is not None
                and abs(battery - agent.battery) >= self.battery_delta)
        ):
            ctx.emit("agent_updated", None, {
                "agent": agent.id, "status": m.status, "node": m.node, "battery": battery,
                "mode": m.mode, "e_stop": m.e_stop,
            })
            # A resolved conflict frees the robots it stopped: they may take work now.
            freed = self.conflicts.check_agent(ctx, agent, old_node)
        else:
            freed = False
        self.arm_liveness(ctx, agent)
        if freed or (agent.available and not was_available):
            self.allocation.allocate_waiting(ctx)

    def silent(self, ctx: Context, agent_id: str) -> None:
        """The agent's liveness window ran out."""
        agent = ctx.state.agents.get(agent_id)
        if agent is not None and agent.online:
            self.lose(ctx, agent, "silent")

    def lose(self, ctx: Context, agent: Agent, reason: str) -> None:
        """Mark ``agent`` lost; its running step goes back to be allocated again."""
        ctx.emit("agent_lost", None, {"agent": agent.id, "reason": reason})
        self.conflicts.check_agent(ctx, agent, agent.node)
        if agent.task is not None:
            wf = ctx.state.workflows[agent.task[0]]
            st = wf.steps[agent.task[1]]
            if st.team and self.teams is not None:
                self.teams.lost(ctx, wf, st, agent, reason)  # one member of several
                self.allocation.allocate_waiting(ctx)
                return
            if st.timeout_at is not None:
                ctx.cancel_timer(f"timeout:{wf.id}/{st.id}")
            ctx.emit("step_requeued", wf.id, {"step": st.id, "reason": f"agent {reason}"})
            self.flow.advance(ctx, wf)
        self.allocation.allocate_waiting(ctx)
