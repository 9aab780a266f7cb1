"""Allocation (docs/design.md §6): which available agent gets a ready step, and when.

Direct allocation: the cheapest able agent by the configured cost (ties to the lower id),
in queue order — higher priority, then older workflow, then earlier step — within the
step's agent policy: only its ``allowed`` agents (if it names any), never its ``forbidden``
ones, and a free ``preferred`` agent before any other whatever the cost. A step that
finds no agent (or whose resource is held) waits in the queue until an agent becomes
available or a resource is freed. Waiting steps that meet several free agents at once are
assigned together at least total cost (``_batch``), and with work queues a step may wait
on a busy agent instead (``_workqueues``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edge_runtime.core._config import CostFunction
from edge_runtime.core._context import Context
from edge_runtime.core._resources import Resources
from edge_runtime.core._state import Agent, StepRun, WorkflowRun
from topics import Assign

if TYPE_CHECKING:
    from edge_runtime.core._auction import Auctions
    from edge_runtime.core._batch import BatchAllocation
    from edge_runtime.core._battery import BatteryRules
    from edge_runtime.core._coalition import Coalitions
    from edge_runtime.core._workqueues import WorkQueues

__all__ = ["Allocation"]


class Allocation:
    """Gives steps to agents: now if one is free, else when one becomes so."""

    def __init__(self, cost: CostFunction | None, stall_factor: float | None = None) -> None:
        self.cost = cost
        """Cost of an agent for a step; ``None``: the lowest id wins."""
        self.stall_factor = stall_factor
        """Times the estimate after which a held step is stalled (``_temporal``)."""
        self.battery: BatteryRules | None = None
        """Set by the core when the ``battery_below_need`` rule is on: agents below a
        step's need are skipped (``_battery``)."""
        self.teams: Coalitions | None = None
        """Set by the core: coalition steps (``Step.team``) are formed there, all or none."""
        self.auctions: Auctions | None = None
        """Set by the core: steps of ``auction_based`` workflows are auctioned there."""
        self.batch: BatchAllocation | None = None
        """Set by the core: waiting steps are assigned together, at least total cost
        (``_batch``)."""
        self.queues: WorkQueues | None = None
        """Set by the core when ``max_queued_per_agent`` > 0 (the facility's or a
        template's): ready steps may be queued on busy agents (``_workqueues``)."""
        self.resources = Resources()
        """What a step must acquire, in the global order (``_resources``; the core sets it
        from ``CoreConfig.resource_order``)."""

    def offer(self, ctx: Context, wf: WorkflowRun, st: StepRun) -> None:
        """The agent step ``st`` is ready: assign it now if it is first in line and an agent
        is free, else queue it (``step_ready``)."""
        if st.spec.team and self.teams is not None:
            self.teams.offer(ctx, wf, st)
            return
        if wf.coordination == "auction_based" and self.auctions is not None:
            ctx.emit("step_ready", wf.id, {"step": st.id})  # it waits while agents bid
            self.auctions.open(ctx, wf, st)
            return
        batch = self.batch
        if batch is not None and batch.window_s and batch.defer(ctx, wf, st):
            return  # it waits for the batch window (_batch)
        queue = ctx.state.queue
        agent = None
        if not queue or wf.step_key(st) < queue[0] or (
            self.teams is not None and self.teams.only_teams_ahead(ctx, wf, st)
        ):
            agent = self.pick(ctx, wf, st)
        queues = self.queues
        if queues is not None and (agent is not None or not queue or wf.step_key(st) < queue[0]) \
                and wf.coordination == "direct" and queues.place(ctx, wf, st, agent):
            return  # queued on a busy agent (_workqueues)
        if agent is not None:
            self.assign(ctx, wf, st, agent)
            return
        behind = bool(queue) and not wf.step_key(st) < queue[0]
        ctx.emit("step_ready", wf.id, {"step": st.id})
        if behind and ctx.state.idle.get(st.spec.kind):
            # The steps ahead wait for something else (no able agent, a held resource): a
            # free agent goes to the first step in line that can take it — maybe this one.
            self.allocate_waiting(ctx)

    def pick(
        self, ctx: Context, wf: WorkflowRun, st: StepRun, *,
        scores: dict[str, tuple[bool, float]] | None = None, among: list[str] | None = None,
    ) -> Agent | None:
        """The agent to give ``st`` to now, or ``None`` (none able, or a resource is held).

        ``scores``: filled with every able agent's key ``(not preferred, cost)`` (batch
        allocation, ``_batch``); ``among``: look at these agents instead of the free ones
        of the step's kind (work queues, ``_workqueues``). A free agent with queued work is
        kept for it."""
        state = ctx.state
        idle = state.idle.get(st.spec.kind) if among is None else among
        if not idle:
            return None
        resources = self.resources
        if st.spec.resources and not resources.free(state, wf, st, resources.plan(wf, st)[0]):
            return None
        caps = st.spec.capabilities
        policy = st.spec.agents
        allowed, forbidden, preferred = policy.allowed, policy.forbidden, policy.preferred
        members = wf.allowed_agents
        kept = None if self.teams is None else self.teams.matcher.blocked(ctx, wf, st)
        agents = state.agents
        cost = self.cost
        battery, low = self.battery, False
        best: Agent | None = None
        best_key = (True, 0.0)
        for aid in idle:
            agent = agents[aid]
            if aid == st.avoid or (caps and not agent.caps.issuperset(caps)):
                continue
            if (allowed and aid not in allowed) or aid in forbidden:
                continue
            if members is not None and aid not in members:
                continue
            if kept is not None and aid in kept:
                continue  # a starving coalition step queued ahead keeps it (_coalition_fair)
            if battery is not None and not battery.fits(agent, wf, st):
                low = True
                continue
            if agent.queued and among is None:
                continue  # it starts its queued work first (_workqueues)
            if cost is None and not preferred and scores is None:
                return agent  # no costs, no preference: the lowest id
            key = (aid not in preferred, 0.0 if cost is None else cost(agent, st.spec, wf))
            if scores is not None:
                scores[aid] = key
            if best is None or key < best_key:
                best, best_key = agent, key
                if cost is None and not key[0] and scores is None:
                    break  # no costs: the first preferred agent (lowest id) wins
        if best is None and low and battery is not None:
            battery.starved(ctx, wf, st)
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
        held = self.resources.plan(wf, st)[1] if spec.hold_until else None
        if held:  # resources held past the step, and those claimed early (_resources)
            data["holds"] = held
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
            role=None, team=[],  # given: model_construct's default_factory path is slow
        ))
        if timeout_at is not None:
            ctx.set_timer(f"timeout:{wf.id}/{st.id}", timeout_at)

    def allocate_waiting(self, ctx: Context) -> None:
        """Give queued steps, best first, to agents that are free now: first the work
        queued on them (``_workqueues``), then the facility queue in segments solved
        together (``_batch``) or one step at a time; what is left may be queued on busy
        agents."""
        state = ctx.state
        queues = self.queues
        if queues is not None and state.agent_queued:
            queues.start_heads(ctx)
        if not state.queue:
            return
        workflows = state.workflows
        idle = state.idle
        keys = list(state.queue)
        batch = self.batch
        i = 0
        while i < len(keys):
            if not any(idle.values()):
                break
            if batch is not None:
                j = batch.run(ctx, keys, i)
                if j > i:
                    i = j
                    continue
            key = keys[i]
            i += 1
            wf = workflows[key[3]]
            st = wf.steps[key[4]]
            if st.state != "allocating" or not wf.state.startswith("active"):
                continue
            if st.spec.team and self.teams is not None:
                self.teams.try_form(ctx, wf, st)
                continue
            if wf.coordination == "auction_based" and self.auctions is not None:
                self.auctions.open(ctx, wf, st)  # a no-op while one is open for it
                continue
            agent = self.pick(ctx, wf, st)
            if agent is not None:
                self.assign(ctx, wf, st, agent)
        if queues is not None:
            queues.fill(ctx)
