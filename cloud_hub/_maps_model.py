"""The read model of a facility map as the hub serves it (``GET /api/v1/facilities/{id}/map``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["MapEdgeOut", "MapNodeOut", "MapOut", "MapZoneOut"]


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class MapNodeOut(_Out):
    """A point of the map an agent can stand at."""

    id: str
    x: float
    y: float
    zones: list[str] = Field(default_factory=list)
    charger: bool = False
    station: str | None = None


class MapEdgeOut(_Out):
    """A lane from ``source`` to ``target`` (one entry per direction driven)."""

    source: str
    target: str
    length: float


class MapZoneOut(_Out):
    """A named area; an ``exclusive`` one holds one agent at a time (a zone stop's scope)."""

    id: str
    mode: str


class MapOut(_Out):
    """One facility's map."""

    facility: str
    map_id: str
    nodes: list[MapNodeOut]
    edges: list[MapEdgeOut]
    zones: list[MapZoneOut]
