"""The facility map: nodes, edges and zones as a networkx graph, loaded from YAML/JSON."""

from edge_runtime.facility._cost import UNREACHABLE, map_cost, zones_by_node
from edge_runtime.facility._map import FacilityMap, MapError, Node, Zone, load_map, parse_map

__all__ = [
    "UNREACHABLE", "FacilityMap", "MapError", "Node", "Zone", "load_map", "map_cost", "parse_map",
    "zones_by_node",
]
