"""Forming a coalition step's team, all or none, and keeping it from starving.

**Matching.** Each role's candidates are the agents of its kind with the step's and the
role's capabilities that the step's agent policy and the workflow's allowed agents admit,
best first: a ``preferred`` agent, then the lower cost, then the lower id. Roles are matched
in template order by augmenting paths (Kuhn's algorithm), so a team is found whenever one
exists, each role taking the best candidate that leaves the others a member.

**No partial hold.** A team is formed only from agents free at that moment; until then no
agent is marked as held for it and every free agent may take other work.

**Fairness.** A team that cannot be formed while some agent it could use is free is
*passed* (``team_passed``). After ``CoreConfig.team_patience`` passes it is *starving*:
steps queued behind it no longer take the free agents it could use — provided the team
could be formed from the online agents if the busy ones were free (otherwise waiting for
them would block others for nothing). Those agents still take steps queued ahead of it, and
the team is formed the moment enough of them are free.
"""

from __future__ import annotations

from edge_runtime.core._coalition_spec import TeamMember, member_kind
from edge_runtime.core._config import CostFunction
from edge_runtime.core._context import Context
from edge_runtime.core._state import Agent, FacilityState, StepRun, WorkflowRun

__all__ = ["TeamMatcher"]


class TeamMatcher:
    """Finds teams for coalition steps and says which free agents a starving one keeps."""

    def __init__(self, cost: CostFunction | None, patience: int) -> None:
        self.cost = cost
        self.patience = patience

    def candidates(
        self, state: FacilityState, wf: WorkflowRun, st: StepRun, member: TeamMember,
        *, free_only: bool, blocked: list[str] | None = None,
    ) -> list[str]:
        """Agents that could take ``member``'s role of ``st``, best first."""
        spec = st.spec
        kind = member_kind(spec, member)
        caps = frozenset((*spec.capabilities, *member.capabilities))
        policy = spec.agents
        members = wf.allowed_agents
        pool: list[Agent]
        if free_only:
            pool = [state.agents[aid] for aid in state.idle.get(kind, ())]
        else:  # online and able, busy or not: could it ever be formed?
            pool = [a for a in state.agents.values() if a.kind == kind and _able(a)]
        ranked: list[tuple[bool, float, str]] = []
        for agent in pool:
            aid = agent.id
            if aid == st.avoid or not agent.caps.issuperset(caps):
                continue
            if (policy.allowed and aid not in policy.allowed) or aid in policy.forbidden:
                continue
            if (members is not None and aid not in members) or (blocked and aid in blocked):
                continue
            if free_only and agent.queued:
                continue  # it starts its queued work first (_workqueues)
            cost = 0.0 if self.cost is None else self.cost(agent, spec, wf)
            ranked.append((aid not in policy.preferred, cost, aid))
        ranked.sort()
        return [aid for _, _, aid in ranked]

    def match(
        self, state: FacilityState, wf: WorkflowRun, st: StepRun, *, free_only: bool = True,
        blocked: list[str] | None = None,
    ) -> dict[str, str] | None:
        """Role -> agent for every role of ``st``, or ``None`` if no full team exists (its
        resources are the caller's concern)."""
        team = st.spec.team
        cands = [self.candidates(state, wf, st, m, free_only=free_only, blocked=blocked)
                 for m in team]
        owner: dict[str, int] = {}  # agent -> role index

        def place(r: int, seen: dict[str, None]) -> bool:
            for aid in cands[r]:  # the best candidate nobody has taken …
                if aid not in owner:
                    owner[aid] = r
                    return True
            for aid in cands[r]:  # … else one whose role can move to another agent
                if aid in seen:
                    continue
                seen[aid] = None
                if place(owner[aid], seen):
                    owner[aid] = r
                    return True
            return False

        for r in range(len(team)):
            if not place(r, {}):
                return None
        by_role = {r: aid for aid, r in owner.items()}
        return {team[r].role: by_role[r] for r in range(len(team))}

    def usable_free(self, state: FacilityState, wf: WorkflowRun, st: StepRun) -> list[str]:
        """Free agents that could fill some role of ``st``, in role then rank order."""
        out: list[str] = []
        for m in st.spec.team:
            for aid in self.candidates(state, wf, st, m, free_only=True):
                if aid not in out:
                    out.append(aid)
        return out

    def passed(self, ctx: Context, wf: WorkflowRun, st: StepRun) -> None:
        """``st`` could not be formed: count a pass if an agent it could use is free."""
        if st.passes >= self.patience or st.state != "allocating":
            return
        if not self.usable_free(ctx.state, wf, st):
            return
        passes = st.passes + 1
        ctx.emit("team_passed", wf.id, {
            "step": st.id, "passes": passes, "starving": passes >= self.patience,
        })

    def blocked(self, ctx: Context, wf: WorkflowRun, st: StepRun) -> list[str] | None:
        """Free agents that starving coalition steps queued ahead of ``st`` keep, or
        ``None`` (the usual case: nothing starves)."""
        state = ctx.state
        if not state.starving:
            return None
        key = wf.step_key(st)
        out: list[str] = []
        for wid, sid in state.starving:
            other = state.workflows.get(wid)
            ost = other.steps.get(sid) if other is not None else None
            if other is None or ost is None or ost is st or ost.state != "allocating":
                continue
            if not other.state.startswith("active") or other.step_key(ost) >= key:
                continue
            if self.match(state, other, ost, free_only=False) is None:
                continue  # it cannot be formed even when the busy agents are free
            out.extend(a for a in self.usable_free(state, other, ost) if a not in out)
        return out or None


def _able(agent: Agent) -> bool:
    """Online, in automatic mode, not stopped: it will be free once its step ends."""
    return (agent.online and not agent.e_stop and agent.mode == "automatic"
            and agent.stopped_by is None and agent.status in ("idle", "busy")
            and agent.lent_to is None)
