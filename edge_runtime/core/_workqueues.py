"""Agent work queues (docs/design.md §6 allocation policy; Open-RMF users ask for them).

With ``CoreConfig.max_queued_per_agent`` = k > 0, a ready step that finds no free agent is
not left in the facility queue if a busy agent could take it next: it is queued on the able
busy agent with the lowest ETA — the remaining estimated work of what that agent holds
(``estimated_duration_s`` * (1 - progress)) and has queued, plus the allocation cost — among
those with fewer than k queued (``step_queued_on_agent``, with the ETA). When the agent's
step ends, the first step of its queue is assigned to it at once (``step_assigned``);
meanwhile no other step takes it.

``prefer_idle`` (default) gives a free agent before any busy one, whatever the cost; off,
the free agent's ETA (its cost) is compared with the busy ones'.

Queued steps leave an agent's queue when they are assigned, or whenever their workflow
takes them out of waiting (cancelled, failed, restored, rolled back: ``FacilityState.
dequeue``); they go back to the facility queue when the agent is lost or their workflow
pauses (``_workqueue_events``), and when the agent, free, cannot start its first queued
step (a resource held, its battery too low, the workflow moved to another protocol …:
``step_unqueued``). An agent that is stopped (e-stop, manual mode, a safety conflict)
keeps its queue and starts it once it is available again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge_runtime.core._context import Context
from edge_runtime.core._state import Agent, FacilityState, StepRun, WorkflowRun

if TYPE_CHECKING:
    from edge_runtime.core._allocation import Allocation

__all__ = ["WorkQueues"]


def _could_queue(agent: Agent, k: int) -> bool:
    """Busy, but otherwise able to take work later (``Agent.available`` but for its task),
    with room in its queue."""
    return (
        agent.task is not None and len(agent.queued) < k and agent.online
        and not agent.e_stop and agent.mode == "automatic"
        and agent.status in ("idle", "busy") and agent.stopped_by is None
        and agent.sub_task is None and agent.lent_to is None
    )


def remaining_work(state: FacilityState, agent: Agent) -> float:
    """Estimated seconds until ``agent`` is through what it holds and has queued."""
    total = 0.0
    if agent.task is not None:
        st = state.workflows[agent.task[0]].steps[agent.task[1]]
        total += st.spec.estimated_duration_s * (1.0 - st.progress)
    for wid, sid in agent.queued:
        total += state.workflows[wid].steps[sid].spec.estimated_duration_s
    return total


class WorkQueues:
    """Queues ready steps on busy agents, and starts them when their agent is free."""

    def __init__(self, allocation: Allocation, max_queued: int, prefer_idle: bool) -> None:
        self.allocation = allocation
        self.max_queued = max_queued
        """The facility's cap (a template's ``allocation`` may override it)."""
        self.prefer_idle = prefer_idle

    def cap(self, wf: WorkflowRun) -> int:
        """How many queued steps an agent may have for ``wf``'s steps to join them."""
        own = wf.template.allocation.max_queued_per_agent
        return self.max_queued if own is None else own

    def place(self, ctx: Context, wf: WorkflowRun, st: StepRun, free: Agent | None) -> bool:
        """Queue the ready step ``st`` on the best busy agent, if it should go to one
        rather than to ``free`` (the free agent allocation found, if any); done?"""
        if free is not None:
            own = wf.template.allocation.prefer_idle
            if (self.prefer_idle if own is None else own) or free.id in st.spec.agents.preferred:
                return False  # a free agent first (a free preferred one always)
        k = self.cap(wf)
        if not k:
            return False
        best = self._best(ctx, wf, st, self.loads(ctx.state, k).get(st.spec.kind))
        if best is None:
            return False
        if free is not None:
            cost = self.allocation.cost
            if best[0] >= (0.0 if cost is None else cost(free, st.spec, wf)):
                return False  # the free agent is sooner
        self._queue(ctx, wf, st, best)
        return True

    def loads(self, state: FacilityState, k: int) -> dict[str, dict[str, float]]:
        """Kind -> busy agents with fewer than ``k`` queued -> their remaining work."""
        loads: dict[str, dict[str, float]] = {}
        for aid, agent in state.agents.items():
            if _could_queue(agent, k):
                loads.setdefault(agent.kind, {})[aid] = remaining_work(state, agent)
        return loads

    def _best(self, ctx: Context, wf: WorkflowRun, st: StepRun,
              loads: dict[str, float] | None) -> tuple[float, str] | None:
        """The lowest ``(ETA, agent)`` among the able agents of ``loads``, if any."""
        if not loads:
            return None
        scores: dict[str, tuple[bool, float]] = {}
        self.allocation.pick(ctx, wf, st, scores=scores, among=list(loads))
        best: tuple[float, str] | None = None
        for aid, (_, c) in scores.items():
            key = (loads[aid] + c, aid)
            if best is None or key < best:
                best = key
        return best

    def _queue(self, ctx: Context, wf: WorkflowRun, st: StepRun,
               best: tuple[float, str]) -> None:
        ctx.emit("step_queued_on_agent", wf.id, {"step": st.id, "agent": best[1],
                                                "eta": best[0]})

    def start_heads(self, ctx: Context) -> None:
        """Free agents with queued work start its first step (or, if they cannot, give it
        back to the facility queue and try the next)."""
        state = ctx.state
        agents = state.agents
        workflows = state.workflows
        for ids in list(state.idle.values()):
            for aid in list(ids):
                agent = agents[aid]
                while agent.queued and agent.task is None:
                    wid, sid = agent.queued[0]
                    wf = workflows[wid]
                    st = wf.steps[sid]
                    scores: dict[str, tuple[bool, float]] = {}
                    if wf.state.startswith("active") and wf.coordination == "direct":
                        self.allocation.pick(ctx, wf, st, scores=scores, among=[aid])
                    if aid in scores:
                        self.allocation.assign(ctx, wf, st, agent)
                    else:
                        ctx.emit("step_unqueued", wf.id, {
                            "step": sid, "agent": aid, "reason": "the agent cannot start it"})

    def fill(self, ctx: Context) -> None:
        """Queue steps still waiting in the facility queue on busy agents with room, in
        queue order (after agents freed room by starting their queued work)."""
        state = ctx.state
        if not state.queue:
            return
        by_cap: dict[int, dict[str, dict[str, float]]] = {}
        """Cap -> ``loads`` for it, made when a step with that cap comes (most: one)."""
        workflows = state.workflows
        agents = state.agents
        for key in list(state.queue):
            wf = workflows[key[3]]
            st = wf.steps[key[4]]
            if st.state != "allocating" or not wf.state.startswith("active") \
                    or wf.coordination != "direct" or st.spec.team:
                continue
            k = self.cap(wf)
            if not k:
                continue
            loads = by_cap.get(k)
            if loads is None:
                loads = by_cap[k] = self.loads(state, k)
            best = self._best(ctx, wf, st, loads.get(st.spec.kind))
            if best is None:
                continue
            self._queue(ctx, wf, st, best)
            aid, added = best[1], st.spec.estimated_duration_s
            for cap, kinds in by_cap.items():  # the agent has one more queued now
                room = kinds.get(st.spec.kind)
                if room is None or aid not in room:
                    continue
                if len(agents[aid].queued) >= cap:
                    del room[aid]
                else:
                    room[aid] += added
