"""``leader_follower`` (docs/design.md §6, issue 9): one member of a coalition step leads.

In a workflow whose coordination is ``leader_follower``, a coalition step's team gets a
leader as soon as it is formed: the member with the lowest allocation cost for the step,
ties to the lower id (deterministic, so a replay elects the same one). Every member is told
with a ``Follow`` command (the leader finds its own id in it); whenever the leader reports
progress the edge forwards it, with the step's target node, to the followers so they keep
its pace. A leader that is lost, goes offline or fails is dropped from the team and the
remaining members elect a new one; the step goes on (``_coalition`` decides the drop).
"""

from __future__ import annotations

from edge_runtime.core._config import CostFunction
from edge_runtime.core._context import Context
from edge_runtime.core._state import StepRun, WorkflowRun
from topics import Follow

__all__ = ["LEADER_FOLLOWER", "Leaders"]

LEADER_FOLLOWER = "leader_follower"
"""The ``Template.coordination`` / ``WorkflowRun.coordination`` value this module serves."""


class Leaders:
    """Elects leaders of coalition steps and keeps their followers informed."""

    def __init__(self, cost: CostFunction | None) -> None:
        self.cost = cost
        """Allocation cost (``CoreConfig.cost``): the cheapest member leads."""

    def elect(self, ctx: Context, wf: WorkflowRun, st: StepRun, reason: str,
              previous: str | None = None) -> None:
        """Choose the leader among ``st``'s current members (``leader_elected``) and tell
        every member who it is; ``previous``: the leader it replaces."""
        agents = ctx.state.agents
        cost = self.cost
        best = min(
            st.team.values(),
            key=lambda aid: (0.0 if cost is None else cost(agents[aid], st.spec, wf), aid),
        )
        ctx.emit("leader_elected", wf.id, {
            "step": st.id, "leader": best, "previous": previous, "reason": reason,
            "team": list(st.team.values()),
        })
        self.tell(ctx, wf, st, list(st.team.values()))

    def forward(self, ctx: Context, wf: WorkflowRun, st: StepRun) -> None:
        """The leader reported progress: pass its pace on to the followers."""
        self.tell(ctx, wf, st, [a for a in st.team.values() if a != st.agent])

    def tell(self, ctx: Context, wf: WorkflowRun, st: StepRun, members: list[str]) -> None:
        """Send ``Follow`` (leader, target, pace) to ``members``."""
        assert st.agent is not None
        seq = ctx.state.seq
        for aid in members:
            ctx.send(aid, Follow.model_construct(
                command_id=f"f{seq}-{aid}"[:64], ts=ctx.now, workflow_id=wf.id,
                step_id=st.id, leader=st.agent, target=st.spec.location, progress=st.progress,
            ))
