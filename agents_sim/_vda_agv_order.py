"""What the test AGV holds of an order, and the §6.6.4 checks an order must pass first.

``OrderNode``, ``OrderEdge`` and ``AgvAction`` are the AGV's own records of the order it
runs (they become ``nodeStates``, ``edgeStates`` and ``actionStates``). ``order_problems``
is the structural validation of Figure 8 (1) plus what this AGV cannot do: it names the
error type and the references of a refusal, or None for an order the AGV may consider.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "INSTANT_TYPES",
    "NODE_ACTIONS",
    "ORDER_WARNINGS",
    "TERMINAL",
    "AgvAction",
    "OrderEdge",
    "OrderNode",
    "Problem",
    "error_ref",
    "order_problems",
]

TERMINAL = frozenset({"FINISHED", "FAILED"})
"""Action states that never change again."""
ORDER_WARNINGS = frozenset({"validationError", "orderError", "orderUpdateError", "noRouteError"})
"""Warnings about a refused order: they stand until the next order is accepted (§6.6.4)."""
INSTANT_TYPES = frozenset({"cancelOrder", "startPause", "stopPause", "stateRequest",
                           "factsheetRequest"})
"""Instant actions this AGV performs."""
NODE_ACTIONS = frozenset({"pick", "drop", "finePositioning", "detectObject", "waitForTrigger"})
"""Node actions this AGV performs (it runs no edge actions)."""

Problem = tuple[str, str, list[dict[str, str]]]
"""``(errorType, description, errorReferences)`` of a refused order."""


def error_ref(key: str, value: object) -> dict[str, str]:
    """One ``errorReference`` of a VDA 5050 error."""
    return {"referenceKey": key, "referenceValue": str(value)}


@dataclass(slots=True)
class AgvAction:
    """An action the AGV holds: a node action of its order, or an instant action."""

    action_id: str
    action_type: str
    blocking: str
    params: dict[str, Any]
    status: str = "WAITING"
    left: float = 0.0
    """Seconds of the current phase (INITIALIZING or RUNNING) still to go."""
    instant: bool = False
    result: str | None = None
    resume: str = "RUNNING"
    """The phase a PAUSED action goes back to."""


@dataclass(slots=True)
class OrderNode:
    """A node of the order not traversed yet (a ``nodeState``)."""

    node_id: str
    seq: int
    released: bool
    x: float | None
    y: float | None
    map_id: str | None
    deviation: float
    action_ids: list[str] = field(default_factory=list)


@dataclass(slots=True)
class OrderEdge:
    """An edge of the order not traversed yet (an ``edgeState``)."""

    edge_id: str
    seq: int
    released: bool


def order_problems(order: dict[str, Any], manufacturer: str, serial_number: str
                   ) -> Problem | None:
    """Why this AGV must refuse a schema-valid ``order`` outright, or None."""
    nodes, edges = order["nodes"], order["edges"]
    if (order["manufacturer"], order["serialNumber"]) != (manufacturer, serial_number):
        return "validationError", "order is addressed to another AGV", []
    if not nodes or len(edges) != len(nodes) - 1:
        return "validationError", "an order needs n nodes and n-1 edges", []
    seen_release_end = False
    for i, n in enumerate(nodes):
        if n["sequenceId"] != nodes[0]["sequenceId"] + 2 * i or n["sequenceId"] % 2:
            return "validationError", "node sequenceIds must be even and consecutive", [
                error_ref("nodeId", n["nodeId"])]
        if seen_release_end and n["released"]:
            return "validationError", "a released node follows the horizon", [
                error_ref("nodeId", n["nodeId"])]
        seen_release_end |= not n["released"]
    if not nodes[0]["released"]:
        return "validationError", "the first node must be released", []
    for i, e in enumerate(edges):
        a, b = nodes[i], nodes[i + 1]
        if (e["sequenceId"] != a["sequenceId"] + 1 or e["startNodeId"] != a["nodeId"]
                or e["endNodeId"] != b["nodeId"]):
            return "validationError", "edge does not join its neighbouring nodes", [
                error_ref("edgeId", e["edgeId"])]
        if e["released"] and not (a["released"] and b["released"]):
            return "validationError", "released edge between unreleased nodes", [
                error_ref("edgeId", e["edgeId"])]
    ids = [a["actionId"] for n in nodes for a in n["actions"]]
    if len(set(ids)) != len(ids):
        return "validationError", "actionIds repeat within the order", []
    for e in edges:
        if e["actions"]:
            return "orderError", "this AGV runs no edge actions", [
                error_ref("edgeId", e["edgeId"])]
        for name in ("trajectory", "corridor"):
            if name in e:
                return "orderError", f"this AGV cannot use edge.{name}", [
                    error_ref("edgeId", e["edgeId"]), error_ref("parameter", f"edge.{name}")]
    for n in nodes:
        for act in n["actions"]:
            if act["actionType"] not in NODE_ACTIONS:
                return "orderError", f"unknown node action {act['actionType']!r}", [
                    error_ref("actionId", act["actionId"])]
    if "zoneSetId" in order:
        return "orderError", "this AGV does not use zones", [error_ref("parameter", "zoneSetId")]
    return None
