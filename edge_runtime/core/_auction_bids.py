"""Who an auction calls, what the edge bids for agents that cannot, and how bids rank.

Pure functions of the state (no events): ``_auction`` decides with them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from edge_runtime.core._state import Agent, FacilityState, StepRun, WorkflowRun
from edge_runtime.core._template import Step

__all__ = ["BATTERY_WEIGHT", "QUEUE_WEIGHT", "callable_agents", "fits", "proxy_bid", "ranked"]

BATTERY_WEIGHT = 0.1
"""Cost per percent of battery spent, in a proxy bid (as ``agents_sim``'s native agents)."""
QUEUE_WEIGHT = 20.0
"""Cost per step in hand, in a proxy bid (as ``agents_sim``'s native agents)."""

CostFn = Callable[[Agent, Step, WorkflowRun], float]


def fits(wf: WorkflowRun, st: StepRun, agent: Agent) -> bool:
    """Whether ``agent`` may take ``st`` at all: its kind and capabilities, the step's agent
    policy (allowed, forbidden; preferred does not apply: the bids decide), the workflow's
    allowed agents, and not the agent an operator's ``reassign`` avoids."""
    spec = st.spec
    policy = spec.agents
    members = wf.allowed_agents
    aid = agent.id
    return (
        agent.kind == spec.kind and agent.caps.issuperset(spec.capabilities)
        and aid != st.avoid and aid not in policy.forbidden
        and (not policy.allowed or aid in policy.allowed)
        and (members is None or aid in members)
    )


def callable_agents(state: FacilityState, wf: WorkflowRun, st: StepRun,
                    excluded: Iterable[str]) -> list[Agent]:
    """The available agents a call for proposals for ``st`` goes to, in id order."""
    skip = set(excluded)
    agents = state.agents
    return [agents[aid] for aid in state.idle.get(st.spec.kind, ())
            if aid not in skip and fits(wf, st, agents[aid])]


def proxy_bid(cost: CostFn | None, agent: Agent, wf: WorkflowRun,
              st: StepRun) -> tuple[float, float]:
    """``(cost, eta_s)`` the edge bids for an agent that cannot bid itself (a VDA 5050 AGV,
    a simple device): the path cost to the step on the facility graph (``CoreConfig.cost``),
    plus the battery it has spent and the work it holds — the same terms native agents
    weigh, so proxy and native bids compare."""
    travel = 0.0 if cost is None else cost(agent, st.spec, wf)
    queued = 0 if agent.task is None else 1
    spent = 0.0 if agent.battery is None else 100.0 - agent.battery
    bid = travel + spent * BATTERY_WEIGHT + queued * QUEUE_WEIGHT
    eta = travel + queued * st.spec.estimated_duration_s
    return round(bid, 3), round(eta, 3)


def ranked(bids: dict[str, list[Any]]) -> list[tuple[str, float, float]]:
    """``(agent, cost, eta_s)`` best first: lowest cost, then lowest ETA, then agent id."""
    return sorted(((aid, b[0], b[1]) for aid, b in bids.items()),
                  key=lambda t: (t[1], t[2], t[0]))
