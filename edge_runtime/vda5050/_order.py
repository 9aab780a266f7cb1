"""VDA 5050 orders: a path of map nodes becomes nodes/edges, a released base and a horizon.

Pure data: no clocks, no I/O. ``OrderPlan`` knows the whole route of one order and how much
of it is released; it renders the first order message and each stitching order update
(VDA 5050 §6.6.2): same ``orderId``, ``orderUpdateId`` + 1, and the first node of an update
is the previous decision point (last base node), resent unchanged.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import networkx as nx

__all__ = [
    "VERSION_ONLY_FIELDS",
    "ActionSpec",
    "BlockingType",
    "OrderPlan",
    "PathNode",
    "actions_for",
    "path_from_graph",
    "route_for",
    "strip_for_version",
]

BlockingType = Literal["NONE", "SOFT", "HARD"]
_DRIVE_ONLY = frozenset({"", "move", "goto", "drive", "transport"})

VERSION_ONLY_FIELDS: dict[str, frozenset[str]] = {
    "order.edge": frozenset({"corridor"}),
    "instantActions.actionType": frozenset({"downloadMap", "enableMap", "deleteMap"}),
    "state": frozenset({"maps"}),
    "factsheet": frozenset({"vehicleConfig"}),
}
"""What VDA 5050 2.1 added over 2.0 in the messages Fleetflow sends or reads: edge corridors
(§6.6.5), map distribution (§6.7: ``state.maps`` and the map instant actions) and the
factsheet's ``vehicleConfig``. A 2.0 AGV never receives any of it."""


@dataclass(frozen=True, slots=True)
class PathNode:
    """One node of a route on the facility map (VDA 5050 ``node`` + ``nodePosition``)."""

    node_id: str
    x: float
    y: float
    map_id: str = "map"
    theta: float | None = None
    """Orientation the AGV must take on the node, radians in [-pi, pi]; None lets it choose."""
    allowed_deviation_xy: float | None = None
    """Metres within which the node counts as traversed (None: the AGV's default)."""
    edge_in: Mapping[str, Any] = field(default_factory=dict)
    """Extra VDA fields of the edge arriving at this node (``maxSpeed``, ``corridor`` …)."""


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """An action to run on the route's final node (``pick``, ``drop``, ``finePositioning`` …)."""

    action_type: str
    params: Mapping[str, Any] = field(default_factory=dict)
    """Becomes ``actionParameters`` as ``[{"key": k, "value": v}, …]`` (§7.2)."""
    blocking_type: BlockingType = "HARD"
    description: str | None = None


def path_from_graph(
    graph: nx.Graph[Any], source: Hashable, target: Hashable, *, weight: str = "length"
) -> list[PathNode]:
    """The shortest route ``source`` → ``target`` on a facility map as ``PathNode`` s.

    Node attributes used: ``x``, ``y`` (required), ``map_id`` (default ``"map"``), ``theta``,
    ``allowed_deviation_xy``; edge attribute ``vda`` (a dict of extra VDA edge fields).
    Edge weights default to the straight-line length when ``weight`` is missing.
    """

    def cost(u: Hashable, v: Hashable, data: Mapping[str, Any]) -> float:
        if weight in data:
            return float(data[weight])
        a, b = graph.nodes[u], graph.nodes[v]
        return float(((a["x"] - b["x"]) ** 2 + (a["y"] - b["y"]) ** 2) ** 0.5)

    route: list[Hashable] = nx.shortest_path(graph, source, target, weight=cost)
    nodes: list[PathNode] = []
    for i, name in enumerate(route):
        attrs = graph.nodes[name]
        edge_in: Mapping[str, Any] = {}
        if i > 0:
            edge_in = dict(graph.edges[route[i - 1], name].get("vda", {}))
        nodes.append(
            PathNode(
                node_id=str(name),
                x=float(attrs["x"]),
                y=float(attrs["y"]),
                map_id=str(attrs.get("map_id", "map")),
                theta=attrs.get("theta"),
                allowed_deviation_xy=attrs.get("allowed_deviation_xy"),
                edge_in=edge_in,
            )
        )
    return nodes


def route_for(graph: nx.Graph[Any] | None, serial_number: str, here: str,
              path: Sequence[PathNode] | None, goal: str | None) -> list[PathNode]:
    """An order's route: the step's own ``path``, or one planned on ``graph`` from ``here``
    (the AGV's ``lastNodeId``) to ``goal``; a ``ValueError`` that says in words what the map
    lacks (it becomes the step failure's message)."""
    if path is not None and (graph is None or not here or path[0].node_id == here):
        return list(path)
    goal = goal if path is None else path[-1].node_id
    assert goal is not None and graph is not None
    on = f"map {graph.graph['map_id']}" if "map_id" in graph.graph else "the map"
    if not here:
        raise ValueError(f"{serial_number} reports no lastNodeId: where it stands on "
                         f"{on} is unknown")
    if here not in graph:
        raise ValueError(f"{serial_number} stands on {here}, which is not on {on}")
    if goal not in graph:
        raise ValueError(f"the step's location {goal} is not on {on}")
    try:
        return path_from_graph(graph, here, goal)
    except nx.NetworkXNoPath:
        raise ValueError(f"no route from {here} to {goal} on {on}") from None


def actions_for(action: str | None, params: Mapping[str, Any]) -> tuple[ActionSpec, ...]:
    """The node actions for a native ``Assign.action`` (``pick`` → one HARD ``pick``).

    Pure driving (``None``, ``move``, ``goto``, ``drive``, ``transport``) needs none. Only
    JSON scalars, lists and dicts pass as ``actionParameters``; floats must be finite.
    """
    if action is None or action in _DRIVE_ONLY:
        return ()
    for key, value in params.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"action parameter {key!r} is not a finite number")
    return (ActionSpec(action, dict(params)),)


def strip_for_version(kind: str, message: dict[str, Any], version: str) -> dict[str, Any]:
    """Drop what ``version`` (``"2.0.x"``) does not know from an outgoing ``message``.

    2.1 and later get ``message`` unchanged; 2.0 loses edge corridors. (Map instant actions
    are refused earlier, by the master, because dropping them would change their meaning.)
    """
    if not version.startswith("2.0."):
        return message
    out = copy.deepcopy(message)
    if kind == "order":
        for edge in out.get("edges", []):
            for name in VERSION_ONLY_FIELDS["order.edge"]:
                edge.pop(name, None)
    elif kind in ("state", "factsheet"):
        for name in VERSION_ONLY_FIELDS[kind]:
            out.pop(name, None)
    return out


def _action_json(action_id: str, spec: ActionSpec) -> dict[str, Any]:
    out: dict[str, Any] = {
        "actionType": spec.action_type,
        "actionId": action_id,
        "blockingType": spec.blocking_type,
        "actionParameters": [{"key": k, "value": v} for k, v in spec.params.items()],
    }
    if spec.description:
        out["actionDescription"] = spec.description
    return out


@dataclass(slots=True, init=False)
class OrderPlan:
    """The route of one order and how far it is released.

    Node ``i`` of the route has ``sequenceId`` ``2*i``, the edge leaving it ``2*i + 1``;
    sequence ids never change across updates (§6.6.2). ``base_end`` is the index of the
    decision point (last released node). A dataclass, so that the master's records
    (``edge_runtime.vda5050._persist``) store it field by field.
    """

    order_id: str
    """The VDA ``orderId``; unique per order, kept by every update."""
    path: tuple[PathNode, ...]
    """The whole route, start node first."""
    actions: tuple[ActionSpec, ...]
    """The actions on the final node."""
    base_length: int | None
    """How many nodes each release adds (None: everything at once)."""
    update_id: int
    """``orderUpdateId`` of the newest message rendered."""
    base_end: int
    """Index of the decision point; equals ``last`` once all is released."""
    action_ids: tuple[str, ...]
    """``actionId`` s of the final node's actions, in order."""

    def __init__(
        self,
        order_id: str,
        path: Sequence[PathNode],
        actions: Sequence[ActionSpec] = (),
        *,
        base_length: int | None = None,
    ) -> None:
        if not path:
            raise ValueError("an order needs at least one node")
        if base_length is not None and base_length < 1:
            raise ValueError("base_length must be at least 1 (the start node)")
        self.order_id = order_id
        self.path = tuple(path)
        self.actions = tuple(actions)
        self.base_length = base_length
        self.update_id = 0
        self.base_end = self._release_to(0 if base_length is None else base_length - 1)
        self.action_ids = tuple(f"{order_id}:a{i}" for i in range(len(self.actions)))

    @property
    def last(self) -> int:
        """Index of the final node."""
        return len(self.path) - 1

    @property
    def fully_released(self) -> bool:
        """True once the final node belongs to the base."""
        return self.base_end == self.last

    def sequence_id(self, index: int) -> int:
        """``sequenceId`` of node ``index``."""
        return 2 * index

    def _release_to(self, index: int) -> int:
        if self.base_length is None:
            return self.last
        return min(max(index, 0), self.last)

    def node_json(self, i: int) -> dict[str, Any]:
        """The order ``node`` object for route index ``i``."""
        n = self.path[i]
        pos: dict[str, Any] = {"x": n.x, "y": n.y, "mapId": n.map_id}
        if n.theta is not None:
            pos["theta"] = n.theta
        if n.allowed_deviation_xy is not None:
            pos["allowedDeviationXY"] = n.allowed_deviation_xy
        return {
            "nodeId": n.node_id,
            "sequenceId": 2 * i,
            "released": i <= self.base_end,
            "nodePosition": pos,
            "actions": copy.deepcopy([_action_json(aid, spec) for aid, spec in zip(
                self.action_ids, self.actions, strict=True)]) if i == self.last else [],
        }

    def edge_json(self, i: int) -> dict[str, Any]:
        """The order ``edge`` object from route index ``i`` to ``i + 1``."""
        a, b = self.path[i], self.path[i + 1]
        edge: dict[str, Any] = {
            "edgeId": f"{a.node_id}--{b.node_id}",
            "sequenceId": 2 * i + 1,
            "released": i + 1 <= self.base_end,
            "startNodeId": a.node_id,
            "endNodeId": b.node_id,
            "actions": [],
        }
        edge.update(copy.deepcopy(dict(b.edge_in)))
        return edge

    def body(self, start: int = 0) -> dict[str, Any]:
        """Order fields (no header) for nodes ``start..last`` at the current release."""
        return {
            "orderId": self.order_id,
            "orderUpdateId": self.update_id,
            "nodes": [self.node_json(i) for i in range(start, self.last + 1)],
            "edges": [self.edge_json(i) for i in range(start, self.last)],
        }

    def extend(self, nodes: int | None = None) -> dict[str, Any] | None:
        """Release ``nodes`` more (default ``base_length``, or all) and render the update.

        Returns None when everything is already released. The update starts at the old
        decision point, so the AGV can stitch it onto what it holds.
        """
        if self.fully_released:
            return None
        start = self.base_end
        step = nodes if nodes is not None else (self.base_length or self.last)
        self.base_end = self._release_to(start + max(step, 1))
        self.update_id += 1
        return self.body(start)
