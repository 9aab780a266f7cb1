"""Why a step waiting for an agent (``ready``, or queued while ``allocating``) has none
yet, in words: what a workflow view shows as a step's ``waiting_for`` (docs/workflows.md,
"Why a workflow waits").

Derived from the projection only, on reading (no event says it): a workflow that waits
for an agent nobody can be says so the moment it is read, and stops saying so as soon as
such an agent joins, without anything added to the log. The first of these that holds:

- it is queued on a busy agent (work queues);
- a resource of the step is lent to another facility, or held by another workflow;
- no agent of the step's kind has every capability it asks for (within the step's agent
  policy and the workflow's ``allowed_agents``) — the case nobody will fix by waiting;
- such agents exist but none is online;
- they are online but none is available (each busy, paused, charging, lent …).

Otherwise (an able agent is free: the step is behind others in the queue, or its turn
comes at the next allocation) there is no reason to show: ``None``.
"""

from __future__ import annotations

from edge_runtime.core._state import FacilityState, StepRun, WorkflowRun

__all__ = ["WAITING_STATES", "waiting_for"]

_AGENT_KINDS = frozenset({"robot", "human", "ai"})
WAITING_STATES = ("ready", "allocating")
"""Step states in which an agent step without an agent waits in the queue."""
_WAITING = frozenset(WAITING_STATES)
_NAMED = 5
"""Agents a reason names at most (then "…")."""


def _names(ids: list[str]) -> str:
    shown = ", ".join(ids[:_NAMED])
    return shown + (", …" if len(ids) > _NAMED else "")


def _resource(state: FacilityState, wf: WorkflowRun, st: StepRun) -> str | None:
    """Why a resource of ``st`` cannot be had now, if one cannot."""
    for res in st.spec.resources:
        lent = state.lent_resources.get(res)
        if lent is not None:
            return f"resource {res} is lent to facility {lent}"
        holder = state.holds.get(res)
        if holder is not None and holder[0] != wf.id:
            return f"resource {res} is held by workflow {holder[0]} (step {holder[1]})"
    return None


def waiting_for(state: FacilityState, wf: WorkflowRun, st: StepRun) -> str | None:
    """Why the waiting agent step ``st`` of ``wf`` has no agent, or ``None`` (not waiting,
    not an agent step, a coalition step, or nothing in its way but its turn)."""
    spec = st.spec
    if st.state not in _WAITING or st.agent is not None or spec.kind not in _AGENT_KINDS \
            or spec.team:
        return None
    if st.queued_on is not None:
        return f"queued on busy agent {st.queued_on} (work queues)"
    held = _resource(state, wf, st)
    if held is not None:
        return held
    caps = spec.capabilities
    policy = spec.agents
    members = wf.allowed_agents
    able: list[str] = []
    online: list[str] = []
    for aid, agent in state.agents.items():
        if agent.kind != spec.kind or (caps and not agent.caps.issuperset(caps)):
            continue
        if (policy.allowed and aid not in policy.allowed) or aid in policy.forbidden:
            continue
        if members is not None and aid not in members:
            continue
        if agent.available:
            return None  # it gets one when its turn comes
        able.append(aid)
        if agent.online:
            online.append(aid)
    what = f"{spec.kind} agent with capabilities {', '.join(sorted(caps)) or 'none'}"
    if not able:
        limits = " allowed for this step" if (policy.allowed or policy.forbidden
                                              or members is not None) else ""
        return f"no {what}{limits} has joined"
    if not online:
        return f"no {what} is online ({_names(sorted(able))} offline)"
    return f"every {what} is busy or unavailable ({_names(sorted(online))})"
