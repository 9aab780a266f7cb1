"""The facility map: nodes, edges, zones, chargers and stations, as a networkx graph.

A map is a YAML (or JSON) document::

    map_id: floor1
    zones:
      cold_room: {mode: exclusive}
    nodes:
      dock:   {x: 0, y: 0, charger: true}
      pick_a: {x: 10, y: 0, station: pick}
      cold:   {x: 20, y: 0, zones: [cold_room]}
    edges:
      - [dock, pick_a]                       # bidirectional, length = euclidean distance
      - {from: pick_a, to: cold, length: 12, bidirectional: false}

Allocation asks ``path_cost(a, b)`` many times per call for proposals, so costs are
computed once per source node (one Dijkstra over the whole graph) and cached. Costs and
paths have separate caches: batch allocation asks the costs from every robot's node
(``fleetflow bench alloc``: 200 sources on a 50 x 50 grid), and a lean Dijkstra over
plain adjacency lists that keeps no paths does that about five times faster than
networkx's; paths are only wanted for the few routes actually driven.
"""

from __future__ import annotations

import heapq
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import networkx as nx
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from topics import Identifier

__all__ = ["FacilityMap", "MapError", "Node", "Zone", "load_map", "parse_map"]


class MapError(ValueError):
    """A map document that does not describe a usable map; the message names the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


Coordinate = Annotated[float, Field(ge=-1e6, le=1e6)]


class Zone(_Strict):
    """A named area; an ``exclusive`` zone holds one agent at a time."""

    mode: Literal["exclusive", "shared"] = "shared"


class Node(_Strict):
    """A point of the map an agent can stand at."""

    x: Coordinate
    y: Coordinate
    map_id: Identifier | None = Field(default=None, alias="mapId")
    """VDA 5050 ``mapId`` of the node; the map's own ``map_id`` when left out."""
    zones: list[Identifier] = Field(default_factory=list, max_length=64)
    charger: bool = False
    station: Identifier | None = None
    """Kind of work station here (``pick``, ``pack`` …), if any."""

    model_config = ConfigDict(populate_by_name=True)


class _Edge(_Strict):
    source: Identifier = Field(alias="from")
    target: Identifier = Field(alias="to")
    length: float | None = Field(default=None, gt=0, le=1e7)
    """Travel cost; the euclidean distance of the two nodes when left out."""
    bidirectional: bool = True


class _MapDoc(_Strict):
    map_id: Identifier = Field(default="default", alias="mapId")
    zones: dict[Identifier, Zone] = Field(default_factory=dict)
    nodes: dict[Identifier, Node] = Field(min_length=1)
    edges: list[_Edge | tuple[Identifier, Identifier]] = Field(default_factory=list)

    model_config = ConfigDict(populate_by_name=True)


def _field_path(loc: tuple[int | str, ...]) -> str:
    # pydantic reports union branches by type name (`_Edge`, `tuple[...]`); drop them.
    parts = [p for p in loc if isinstance(p, int) or not (p[:1] == "_" or "[" in p)]
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "map"


class FacilityMap:
    """A validated facility map with shortest-path queries.

    >>> m = FacilityMap.from_dict({
    ...     "nodes": {"a": {"x": 0, "y": 0}, "b": {"x": 3, "y": 4}, "c": {"x": 3, "y": 10}},
    ...     "edges": [["a", "b"], {"from": "b", "to": "c", "bidirectional": False}],
    ... })
    >>> m.path("a", "c"), m.path_cost("a", "c")
    (['a', 'b', 'c'], 11.0)
    >>> m.path_cost("c", "a")
    inf
    """

    def __init__(self, doc: _MapDoc) -> None:
        self.map_id: str = doc.map_id
        """Identifier of the map (VDA 5050 ``mapId`` default for its nodes)."""
        self.zones: dict[str, Zone] = dict(doc.zones)
        """Zones by id."""
        self.nodes: dict[str, Node] = dict(doc.nodes)
        """Nodes by id."""
        self.graph: nx.DiGraph[str] = nx.DiGraph(map_id=doc.map_id)
        """Directed; node attributes x, y, map_id, zones, charger, station; edge ``length``;
        the graph attribute ``map_id`` names the map (in a route planner's errors)."""
        for node_id, node in doc.nodes.items():
            for zone in node.zones:
                if zone not in doc.zones:
                    raise MapError(f"nodes.{node_id}.zones: unknown zone {zone!r}")
            attrs = node.model_dump()
            attrs["map_id"] = node.map_id or doc.map_id
            self.graph.add_node(node_id, **attrs)
        for index, raw in enumerate(doc.edges):
            edge = raw if isinstance(raw, _Edge) else _Edge.model_validate(
                {"from": raw[0], "to": raw[1]})
            for end, name in ((edge.source, "from"), (edge.target, "to")):
                if end not in doc.nodes:
                    raise MapError(f"edges[{index}].{name}: unknown node {end!r}")
            if edge.source == edge.target:
                raise MapError(f"edges[{index}]: an edge from {edge.source!r} to itself")
            a, b = doc.nodes[edge.source], doc.nodes[edge.target]
            length = edge.length if edge.length is not None else math.hypot(a.x - b.x, a.y - b.y)
            self.graph.add_edge(edge.source, edge.target, length=length)
            if edge.bidirectional:
                self.graph.add_edge(edge.target, edge.source, length=length)
        self._costs: dict[str, list[float]] = {}
        """Source -> path lengths to every node, by node index (``_index``)."""
        self._paths: dict[str, dict[str, list[str]]] = {}
        self._names: list[str] = list(self.graph)
        self._index: dict[str, int] = {name: i for i, name in enumerate(self._names)}
        """Node -> its position in ``_names`` (and in each cost list)."""
        position = self._index
        self._adjacency: list[list[tuple[int, float]]] = [
            [(position[v], float(d["length"])) for v, d in self.graph.adj[u].items()]
            for u in self._names
        ]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FacilityMap:
        """Validate a decoded map document; ``MapError`` names the first bad field."""
        try:
            doc = _MapDoc.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise MapError(f"{_field_path(first['loc'])}: {first['msg']}") from None
        return cls(doc)

    @property
    def chargers(self) -> list[str]:
        """Ids of the nodes with a charger, in map order."""
        return [n for n, node in self.nodes.items() if node.charger]

    def stations(self, kind: str | None = None) -> list[str]:
        """Ids of the station nodes (of one ``kind``, or all), in map order."""
        return [n for n, node in self.nodes.items()
                if node.station is not None and (kind is None or node.station == kind)]

    def exclusive_zones(self, node: str) -> list[str]:
        """The exclusive zones ``node`` lies in."""
        return [z for z in self._node(node).zones if self.zones[z].mode == "exclusive"]

    def _node(self, node: str) -> Node:
        try:
            return self.nodes[node]
        except KeyError:
            raise KeyError(f"unknown node {node!r}") from None

    def _paths_from(self, source: str) -> dict[str, list[str]]:
        if source not in self._paths:
            self._node(source)
            self._paths[source] = nx.single_source_dijkstra_path(
                self.graph, source, weight="length")
        return self._paths[source]

    def _costs_from(self, source: str) -> list[float]:
        costs = self._costs.get(source)
        if costs is None:
            self._node(source)
            costs = self._costs[source] = _dijkstra(self._adjacency, self._index[source])
        return costs

    def path(self, a: str, b: str) -> list[str] | None:
        """Shortest node sequence from ``a`` to ``b``, or ``None`` if ``b`` is unreachable."""
        self._node(b)
        return self._paths_from(a).get(b)

    def path_cost(self, a: str, b: str) -> float:
        """Length of the shortest path from ``a`` to ``b``; ``inf`` if unreachable."""
        i = self._index.get(b)
        if i is None:
            raise KeyError(f"unknown node {b!r}")
        return self._costs_from(a)[i]


def _dijkstra(adjacency: list[list[tuple[int, float]]], source: int) -> list[float]:
    """Shortest path lengths from node ``source`` to every node (``inf``: unreachable);
    nodes by index."""
    dist = [math.inf] * len(adjacency)
    dist[source] = 0.0
    done = bytearray(len(adjacency))
    heap: list[tuple[float, int]] = [(0.0, source)]
    pop, push = heapq.heappop, heapq.heappush
    while heap:
        d, u = pop(heap)
        if done[u]:
            continue
        done[u] = 1
        for v, w in adjacency[u]:
            nd = d + w
            if nd < dist[v]:
                dist[v] = nd
                push(heap, (nd, v))
    return dist


def load_map(path: str | Path) -> FacilityMap:
    """Read a map from a ``.yaml``/``.yml`` or ``.json`` file; ``MapError`` if it is bad."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MapError(f"cannot read map {path}: {exc.strerror}") from None
    return parse_map(text, str(path))


def parse_map(text: str, name: str) -> FacilityMap:
    """A map from the text of a file called ``name`` (JSON if it ends ``.json``, else YAML);
    ``MapError`` naming ``name`` if it is bad."""
    suffix = Path(name).suffix
    try:
        data = json.loads(text) if suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise MapError(f"{name} is not valid {suffix.lstrip('.') or 'YAML'}: {exc}") from None
    if not isinstance(data, dict):
        raise MapError(f"{name}: a map is a mapping with 'nodes' and 'edges'")
    try:
        return FacilityMap.from_dict(data)
    except MapError as exc:
        raise MapError(f"{name}: {exc}") from None
