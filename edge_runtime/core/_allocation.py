"""Allocation (DESIGN §6): which available agent gets a ready step, and when.

Direct allocation: the cheapest able agent by the configured cost (ties to the lower id),
in queue order — higher priority, then older workflow, then earlier step — within the
step's agent policy: only its ``allowed`` agents (if it names any), never its ``forbidden``
ones, and a free ``preferred`` agent before any other whatever the cost. A step that
finds no agent (or whose resource is held) waits in the queue until an agent becomes
available or a resource is freed.
"""

from __future__ import annotations

from typing import Any

from edge_runtime.core._config import CostFunction
from edge_runtime.core._context import Context
from edge_runtime.core._state import Agent, StepRun, WorkflowRun
from topics import Assign

__all__ = ["Allocation"]


class Allocation:
    """Gives steps to agents: now if one is free, else when one becomes so."""

    def __init__(self, cost: CostFunction | None, stall_factor: float | None = None) -> None:
        self.cost = cost
        """Cost of an agent for a step; ``None``: the lowest id wins."""
        self.stall_factor = stall_factor
        """Times the estimate after which a held step is stalled (``_temporal``)."""

    def offer(self, ctx: Context, wf: WorkflowRun, st: StepRun) -> None:
        """The agent step ``st`` is ready: assign it now if it is first in line and an agent
        is free, else queue it (``step_ready``)."""
        queue = ctx.state.queue
        agent = None
        if not queue or wf.step_key(st) < queue[0]:
            agent = self.pick(ctx, wf, st)
        if agent is not None:
            self.assign(ctx, wf, st, agent)
        else:
            ctx.emit("step_ready", wf.id, {"step": st.id})

    def pick(self, ctx: Context, wf: WorkflowRun, st: StepRun) -> Agent | None:
        """The agent to give ``st`` to now, or ``None`` (none able, or a resource is held)."""
        state = ctx.state
        idle = state.idle.get(st.spec.kind)
        if not idle:
            return None
        for res in st.spec.resources:
            if res in state.holds:
                return None
        caps = st.spec.capabilities
        policy = st.spec.agents
        allowed, forbidden, preferred = policy.allowed, policy.forbidden, policy.preferred
        agents = state.agents
        cost = self.cost
        best: Agent | None = None
        best_key = (True, 0.0)
        for aid in idle:
            agent = agents[aid]
            if aid == st.avoid or (caps and not agent.caps.issuperset(caps)):
                continue
            if (allowed and aid not in allowed) or aid in forbidden:
                continue
            if cost is None and not preferred:
                return agent  # no costs, no preference: the lowest id
            key = (aid not in preferred, 0.0 if cost is None else cost(agent, st.spec, wf))
            if best is None or key < best_key:
                best, best_key = agent, key
                if cost is None and not key[0]:
                    break  # no costs: the first preferred agent (lowest id) wins
        return best

    def assign(self, ctx: Context, wf: WorkflowRun, st: StepRun, agent: Agent) -> None:
        """Give ``st`` to ``agent``: the event, the ``Assign`` command and its timeout."""
        spec = st.spec
        now = ctx.now
        attempt = st.attempt + 1
        timeout_at = None if spec.timeout_s is None else now + spec.timeout_s
        cmd = f"a{ctx.state.seq + 1}"
        data: dict[str, Any] = {
            "step": st.id, "agent": agent.id, "attempt": attempt, "cmd": cmd,
            "timeout_at": timeout_at,
        }
        if self.stall_factor is not None:
            data["stall_at"] = now + spec.estimated_duration_s * self.stall_factor
            ctx.set_timer(f"stall:{wf.id}/{st.id}", data["stall_at"])
        ctx.emit("step_assigned", wf.id, data)
        inputs: dict[str, Any] = {}
        for name, source in spec.inputs.items():
            sid, _, out = source.partition(".")
            inputs[name] = (wf.steps[sid].outputs or {}).get(out)
        ctx.send(agent.id, Assign.model_construct(
            command_id=cmd, ts=now, workflow_id=wf.id, step_id=st.id, attempt=attempt,
            kind=spec.kind, action=spec.action, location=spec.location, params=spec.params,
            inputs=inputs, timeout_s=spec.timeout_s, outputs=list(spec.outputs),
            sync_point=None if st.comp_of is not None else wf.template.sync_point(st.id),
        ))
        if timeout_at is not None:
            ctx.set_timer(f"timeout:{wf.id}/{st.id}", timeout_at)

    def allocate_waiting(self, ctx: Context) -> None:
        """Give queued steps, best first, to agents that are free now."""
        state = ctx.state
        if not state.queue:
            return
        workflows = state.workflows
        idle = state.idle
        for key in list(state.queue):
            if not any(idle.values()):
                return
            wf = workflows[key[3]]
            st = wf.steps[key[4]]
            if st.state != "allocating" or not wf.state.startswith("active"):
                continue
            agent = self.pick(ctx, wf, st)
            if agent is not None:
                self.assign(ctx, wf, st, agent)
