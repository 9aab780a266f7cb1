"""Negotiation (docs/design.md §6): each claim in a contest proposes what it could do instead, with
the delay that would cost, and the proposal with the least total delay wins (ties: the
earlier proposal — the claimant's before the holder's, so work under way is disturbed
last).

Proposals, from the claimant: another free able agent (delay: its extra path cost over the
contested agent's, ``CoreConfig.cost``), another resource the template names among its
``alternatives`` that is free (no delay), a slot after the holder's predicted end (delay: the
wait). From a holder that has not started (never for a predicted ``window_overlap``):
another free able agent (delay: the time since it was assigned, lost, plus the extra path
cost), or a slot after the claimant's (delay: the time lost plus the claimant's estimate).
The other claim keeps or gets the contested thing at no delay, so a proposal's delay is the
total delay of that combination.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_runtime.core._config import CostFunction
from edge_runtime.core._contention_model import Contest, predicted_start, step_estimate
from edge_runtime.core._state import FacilityState, StepRun, WorkflowRun

__all__ = ["Move", "able_free", "proposals"]


@dataclass(frozen=True, slots=True)
class Move:
    """What one claim does to settle a contest; the other keeps or gets the thing."""

    who: str
    """``claimant`` or ``holder``."""
    option: str
    """``wait`` (for the thing), ``agent`` (another one), ``resource`` (an alternative) or
    ``slot`` (start no earlier than ``value``)."""
    value: str | float | None = None
    delay: float = 0.0
    text: str = ""
    """How the resolution says it, when not the standard wording."""


def able_free(state: FacilityState, cost: CostFunction | None, wf: WorkflowRun, st: StepRun,
              exclude: str) -> list[tuple[float, str]]:
    """Free agents, other than ``exclude``, that may take ``st`` (kind, capabilities, its
    policy, its workflow's agents), as ``(cost, id)``, cheapest first."""
    spec = st.spec
    policy = spec.agents
    members = wf.allowed_agents
    found: list[tuple[float, str]] = []
    for aid in state.idle.get(spec.kind, ()):
        agent = state.agents[aid]
        if aid in (exclude, st.avoid) or not agent.caps.issuperset(spec.capabilities):
            continue
        if (policy.allowed and aid not in policy.allowed) or aid in policy.forbidden:
            continue
        if members is not None and aid not in members:
            continue
        found.append((0.0 if cost is None else cost(agent, spec, wf), aid))
    return sorted(found)


def _extra_cost(state: FacilityState, cost: CostFunction | None, wf: WorkflowRun,
                st: StepRun, contested: str, other: float) -> float:
    """How much dearer ``other`` is than the contested agent for ``st`` (never negative)."""
    agent = state.agents.get(contested)
    if cost is None or agent is None:
        return 0.0
    return max(0.0, other - cost(agent, st.spec, wf))


def proposals(state: FacilityState, cost: CostFunction | None, contest: Contest,
              now: float) -> list[Move]:
    """Every proposal of both claims, claimant's first."""
    cwf, c = contest.claimant_wf, contest.claimant
    found: list[Move] = []
    if contest.on_agent:
        free = able_free(state, cost, cwf, c, contest.thing)
        if free:
            price, aid = free[0]
            found.append(Move("claimant", "agent", aid,
                              _extra_cost(state, cost, cwf, c, contest.thing, price)))
    else:
        for alt in c.spec.alternatives.get(contest.thing, ()):
            if alt not in state.holds and alt not in c.spec.resources:
                found.append(Move("claimant", "resource", alt, 0.0))
    start = predicted_start(cwf, c, now) if contest.rule == "window_overlap" else now
    end = contest.holder_end(now)
    found.append(Move("claimant", "slot", end, max(0.0, end - start)))
    if contest.rule != "window_overlap" and contest.holder_movable():
        hwf, h = contest.holder_wf, contest.holder
        lost = contest.holder_elapsed(now)
        if contest.on_agent:
            free = able_free(state, cost, hwf, h, contest.thing)
            if free:
                price, aid = free[0]
                found.append(Move("holder", "agent", aid,
                                  lost + _extra_cost(state, cost, hwf, h, contest.thing, price)))
        found.append(Move("holder", "slot", now + step_estimate(c), lost + step_estimate(c)))
    return found
