"""``/api/v1/…`` reads for supervisors' screens: a facility's map (``fleetflow hub
--maps``), the coordination under way (auctions, sync points, teams, votes) from the
hub's replicas, and the VDA 5050 link health its edge last published (``edge/vda``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from cloud_hub._api_bodies import ID_PATTERN
from cloud_hub._api_write import check_facility
from cloud_hub._coordination_model import CoordinationOut
from cloud_hub._maps_model import MapOut
from cloud_hub._routes_workflows import READ_ERRORS, Hub, Viewer
from cloud_hub._vda_model import VdaLinksOut

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")


@router.get("/facilities/{facility_id}/map", response_model=MapOut, responses=READ_ERRORS,
            tags=["facilities"])
def facility_map(facility_id: Annotated[str, Path(pattern=ID_PATTERN)], service: Hub,
                 _who: Viewer) -> MapOut:
    """The facility's map: nodes at their x/y (with zones, chargers, stations), edges and
    zones; 404 for a facility no edge of which reported, or one the hub has no map of."""
    check_facility(service, facility_id)
    return service.facility_map(facility_id)


@router.get("/coordination", response_model=list[CoordinationOut], responses=READ_ERRORS,
            tags=["coordination"])
def coordination(service: Hub, _who: Viewer,
                 facility: Annotated[str | None, Query(pattern=ID_PATTERN)] = None
                 ) -> list[CoordinationOut]:
    """Per facility: running auctions with their bids, open sync points (who arrived, who
    is awaited), teams holding coalition or composite steps (leader, followers), and votes
    (as the hub's view last saw them, within about half a second)."""
    if facility is not None:
        check_facility(service, facility)
    return service.coordination(facility)


@router.get("/facilities/{facility_id}/vda", response_model=VdaLinksOut,
            responses=READ_ERRORS, tags=["facilities"])
def vda_links(facility_id: Annotated[str, Path(pattern=ID_PATTERN)], service: Hub,
              _who: Viewer) -> VdaLinksOut:
    """The facility's VDA 5050 AGVs as its edge's master last reported them (retained
    ``edge/vda``, at most once a second while they change): connection, version, operating
    mode, state age, the order and instant actions not acknowledged yet and for how long,
    rejections and schema errors (counted since the edge started), the AGV's errors; with
    when the hub received it and whether the edge is online. Volatile status: not in the
    event log. No report yet: empty ``links``, ``received_at`` null; 404 for a facility no
    edge of which reported."""
    check_facility(service, facility_id)
    return service.vda_links(facility_id)
