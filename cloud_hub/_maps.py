"""The facility maps the hub serves (``fleetflow hub --maps PATH``), so a client (the
dashboard) can draw where agents stand: nodes at their x/y, edges, zones.

``PATH`` is one map file (every facility's map: ``fleetflow up`` runs its facilities on one
map) or a directory of ``{facility}.yaml`` / ``.yml`` / ``.json`` files. Every map is read
and validated by ``edge_runtime.facility`` — the edges' own loader — when the hub starts: a
bad one stops the start with its file and field named, so a request never meets one.
"""

from __future__ import annotations

from pathlib import Path

from cloud_hub._maps_model import MapEdgeOut, MapNodeOut, MapOut, MapZoneOut
from cloud_hub._service import NotFound
from edge_runtime.facility import FacilityMap, MapError, load_map

__all__ = ["FacilityMaps", "map_out"]

_SUFFIXES = (".yaml", ".yml", ".json")


def map_out(facility: str, m: FacilityMap) -> MapOut:
    """The read model of a loaded map."""
    return MapOut(
        facility=facility, map_id=m.map_id,
        nodes=[MapNodeOut(id=n, x=node.x, y=node.y, zones=list(node.zones),
                          charger=node.charger, station=node.station)
               for n, node in m.nodes.items()],
        edges=[MapEdgeOut(source=a, target=b, length=float(d["length"]))
               for a, b, d in m.graph.edges(data=True)],
        zones=[MapZoneOut(id=z, mode=zone.mode) for z, zone in m.zones.items()])


class FacilityMaps:
    """The maps by facility (``default``: one map for every facility)."""

    def __init__(self, by_facility: dict[str, MapOut] | None = None,
                 default: FacilityMap | None = None) -> None:
        self._maps = dict(by_facility or {})
        self._default = default

    @classmethod
    def load(cls, path: Path | None) -> FacilityMaps:
        """Read ``path`` (a map file, or a directory of ``{facility}`` files; ``None``: no
        maps); ``MapError`` naming the file and field of a bad one."""
        if path is None:
            return cls()
        path = Path(path)
        if path.is_dir():
            maps = {}
            for f in sorted(path.iterdir()):
                if f.suffix in _SUFFIXES and f.is_file():
                    if f.stem in maps:
                        raise MapError(f"{path}: two map files for facility {f.stem!r}")
                    maps[f.stem] = map_out(f.stem, load_map(f))
            return cls(maps)
        if not path.exists():
            raise MapError(f"--maps {path}: no such file or directory")
        return cls(default=load_map(path))

    def get(self, facility: str) -> MapOut:
        """``facility``'s map; ``NotFound`` if the hub has none for it."""
        found = self._maps.get(facility)
        if found is not None:
            return found
        if self._default is not None:  # the shared map, under this facility's name
            found = self._maps[facility] = map_out(facility, self._default)
            return found
        raise NotFound(f"the hub has no map of facility {facility!r} (fleetflow hub --maps)")
