"""What the map tells the core: allocation cost by travel distance, and exclusive zones.

The edge shell builds its ``CoreConfig`` from these, and so does ``edge_runtime.replay``
(a replay must cost allocation exactly as the edge did).
"""

from __future__ import annotations

import math

from edge_runtime.core import Agent, CostFunction, Step, WorkflowRun
from edge_runtime.facility._map import FacilityMap

__all__ = ["UNREACHABLE", "map_cost", "zones_by_node"]

UNREACHABLE = 1e9
"""Allocation cost of a step the agent cannot reach on the map."""


def map_cost(facility_map: FacilityMap) -> CostFunction:
    """Allocation cost from the map: the travel distance from the agent to the step.

    An agent or step without a (known) node costs 0 for travel; an unreachable one costs
    ``UNREACHABLE``, so it only wins when nobody can get there.
    """
    nodes = facility_map.nodes

    def cost(agent: Agent, step: Step, _wf: WorkflowRun) -> float:
        if agent.node not in nodes or step.location not in nodes:
            return 0.0
        travel = facility_map.path_cost(agent.node, step.location)  # type: ignore[arg-type]
        return UNREACHABLE if math.isinf(travel) else travel

    return cost


def zones_by_node(facility_map: FacilityMap | None) -> dict[str, tuple[str, ...]]:
    """Node -> the exclusive zones it lies in (``CoreConfig.exclusive_zones``)."""
    if facility_map is None:
        return {}
    return {node: tuple(z) for node in facility_map.nodes
            if (z := facility_map.exclusive_zones(node))}
