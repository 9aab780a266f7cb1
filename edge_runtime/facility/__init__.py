"""The facility map: nodes, edges and zones as a networkx graph, loaded from YAML/JSON."""

from edge_runtime.facility._map import FacilityMap, MapError, Node, Zone, load_map

__all__ = ["FacilityMap", "MapError", "Node", "Zone", "load_map"]
