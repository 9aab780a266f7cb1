"""``/api/v1/…`` beyond single workflows: agents, facilities (and their scoped safety stop),
templates, conflicts, command fates, the change feed for polling clients, performance, and
asking the edges to resync."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel

from cloud_hub import _routes_lending
from cloud_hub._api_bodies import ID_PATTERN, ConflictResolveIn, StateSyncIn, StopIn
from cloud_hub._api_deps import ConsistencyDep, Paging, ReasonHeader, paging, write_reason
from cloud_hub._api_write import WRITE_RESPONSES, check_facility, send
from cloud_hub._auth import Identity
from cloud_hub._errors_http import ApiError, error_responses
from cloud_hub._model import (
    AgentOut,
    ChangeOut,
    CommandOut,
    ConflictOut,
    FacilityOut,
    Page,
    WorkflowOut,
)
from cloud_hub._routes_workflows import READ_ERRORS, Hub, Viewer, may

__all__ = ["ChangesOut", "WhoAmIOut", "router"]

router = APIRouter(prefix="/api/v1")
PathId = Annotated[str, Path(pattern=ID_PATTERN)]
QueryId = Annotated[str | None, Query(pattern=ID_PATTERN)]


class WhoAmIOut(BaseModel):
    """The caller's token: its name (the ``who`` of its writes) and its role."""

    name: str
    role: str
    """``viewer``, ``supervisor``, ``planner`` or ``admin``."""


@router.get("/whoami", response_model=WhoAmIOut, responses=READ_ERRORS, tags=["auth"])
async def whoami(who: Viewer) -> WhoAmIOut:  # no I/O: on the event loop
    """Who the token is: a client (the dashboard) shows or disables its controls by role."""
    return WhoAmIOut(name=who.name, role=who.role.name)


@router.get("/agents", response_model=Page[AgentOut], responses=READ_ERRORS, tags=["agents"])
def agents(service: Hub, _who: Viewer, page: Annotated[Paging, Depends(paging)],
           facility: QueryId = None) -> Page[AgentOut]:
    """Agents of every facility (or one)."""
    return service.agents(facility=facility, cursor=page.cursor, limit=page.limit)


@router.get("/agents/{agent_id}/workflows", response_model=Page[WorkflowOut],
            responses=READ_ERRORS, tags=["agents"])
def agent_workflows(agent_id: PathId, service: Hub, _who: Viewer,
                    page: Annotated[Paging, Depends(paging)]) -> Page[WorkflowOut]:
    """Workflows in which the agent took (or holds) a step."""
    return service.agent_workflows(agent_id, cursor=page.cursor, limit=page.limit)


@router.get("/facilities", response_model=list[FacilityOut], responses=READ_ERRORS,
            tags=["facilities"])
def facilities(service: Hub, _who: Viewer) -> list[FacilityOut]:
    """Every facility the hub has heard of: online, how far its view is, stale or not."""
    return service.facilities()


@router.post("/facilities/{facility_id}/stop", response_model=CommandOut,
             responses=WRITE_RESPONSES, tags=["facilities"])
def stop(facility_id: PathId, request: Request, response: Response, service: Hub,
         who: Annotated[Identity, may("facility_stop")], consistency: ConsistencyDep,
         body: StopIn | None = None,
         x_reason: ReasonHeader = None) -> CommandOut:
    """Safety stop: pause every robot of the facility (or of one ``zone``) at once and hold
    allocation there until ``/release``."""
    body = body or StopIn()
    check_facility(service, facility_id)
    reason = write_reason(body.reason, x_reason) or f"safety stop by {who.name}"
    args: dict[str, Any] = {"reason": reason}
    if body.zone is not None:
        args["zone"] = body.zone
    return send(request, response, facility=facility_id, action="facility_stop", args=args,
                who=who, reason=reason, consistency=consistency)


@router.post("/facilities/{facility_id}/release", response_model=CommandOut,
             responses=WRITE_RESPONSES, tags=["facilities"])
def release(facility_id: PathId, request: Request, response: Response, service: Hub,
            who: Annotated[Identity, may("facility_release")], consistency: ConsistencyDep,
            body: StopIn | None = None,
            x_reason: ReasonHeader = None) -> CommandOut:
    """End a safety stop (of ``zone``, or the facility-wide one)."""
    body = body or StopIn()
    check_facility(service, facility_id)
    reason = write_reason(body.reason, x_reason)
    args: dict[str, Any] = {"resolution": reason or f"released by {who.name}"}
    if body.zone is not None:
        args["zone"] = body.zone
    return send(request, response, facility=facility_id, action="facility_release",
                args=args, who=who, reason=reason, consistency=consistency)


@router.get("/templates", response_model=list[dict[str, Any]], responses=READ_ERRORS,
            tags=["templates"])
def templates(service: Hub, _who: Viewer) -> list[dict[str, Any]]:
    """The workflow templates the hub knows (name, version, steps)."""
    return service.templates()


@router.get("/conflicts", response_model=Page[ConflictOut], responses=READ_ERRORS,
            tags=["conflicts"])
def conflicts(service: Hub, _who: Viewer, page: Annotated[Paging, Depends(paging)],
              facility: QueryId = None, status: QueryId = None) -> Page[ConflictOut]:
    """Conflicts of every facility (or one), open or settled."""
    return service.conflicts(facility=facility, status=status, cursor=page.cursor,
                             limit=page.limit)


def _conflict_facility(service: Any, conflict_id: str) -> str:
    """The facility of an unresolved conflict (ids are per facility: two may share one).
    This reads every facility's conflicts: a caller that knows the facility names it."""
    found: set[str] = set()
    cursor: str | None = None
    while True:
        page = service.conflicts(cursor=cursor, limit=500)
        found |= {c.facility for c in page.items
                  if c.id == conflict_id and c.status != "resolved"}
        cursor = page.next_cursor
        if cursor is None:
            break
    if not found:
        raise ApiError(404, "not_found", f"no unresolved conflict {conflict_id!r}")
    if len(found) > 1:
        raise ApiError(409, "ambiguous", f"conflict {conflict_id!r} is open in "
                       f"{', '.join(sorted(found))}: name the facility in the body")
    return found.pop()


@router.post("/conflicts/{conflict_id}/resolve", response_model=CommandOut,
             responses=WRITE_RESPONSES, tags=["conflicts"])
def resolve_conflict(conflict_id: PathId, body: ConflictResolveIn, request: Request,
                     response: Response, service: Hub,
                     who: Annotated[Identity, may("resolve_conflict")],
                     consistency: ConsistencyDep, x_reason: ReasonHeader = None
                     ) -> CommandOut:
    """Settle a conflict (``resolve_conflict``): safety ones only once clear; a contention
    one optionally by a strategy (``choice``). A hub conflict (``x-…``, a double-booking
    across facilities) takes ``keep:<facility>``: the others get ``release_booking``."""
    if conflict_id.startswith("x-") and body.facility in (None, "*"):
        return _routes_lending.resolve_hub_conflict(
            request, response, conflict_id, body.resolution, who,
            write_reason(body.reason, x_reason), consistency)
    facility = body.facility or _conflict_facility(service, conflict_id)
    if body.facility is not None:
        check_facility(service, facility)
    args: dict[str, Any] = {"conflict_id": conflict_id, "resolution": body.resolution}
    if body.choice is not None:
        args["choice"] = body.choice
    return send(request, response, facility=facility, action="resolve_conflict", args=args,
                who=who, reason=write_reason(body.reason, x_reason), consistency=consistency)


@router.get("/commands/{command_id}", response_model=CommandOut, responses=READ_ERRORS,
            tags=["commands"])
def command(command_id: PathId, service: Hub, _who: Viewer) -> CommandOut:
    """A write's fate: pending, applied, refused or failed, with who sent it and why."""
    return service.command_fate(command_id)


class ChangesOut(BaseModel):
    """Changes after ``since``; pass ``next`` as ``since`` to poll on."""

    items: list[ChangeOut]
    next: str | None
    """The last token (``since`` again if nothing new)."""


@router.get("/events", response_model=ChangesOut, responses=READ_ERRORS, tags=["events"])
def changes(service: Hub, _who: Viewer,
            since: Annotated[str | None, Query(max_length=256)] = None,
            facility: QueryId = None, workflow_id: QueryId = None,
            limit: Annotated[int, Query(ge=1, le=1000)] = 500) -> ChangesOut:
    """The change feed the WebSocket streams, for polling clients."""
    items = service.changes(since, facility=facility, workflow_id=workflow_id, limit=limit)
    return ChangesOut(items=items, next=items[-1].token if items else since)


@router.get("/performance/cache", response_model=dict[str, Any], responses=READ_ERRORS,
            tags=["performance"])
def cache_stats(service: Hub, _who: Viewer) -> dict[str, Any]:
    """Per cache tier: hits, misses, latency p50/p99, next to the targets."""
    return service.cache_stats()


@router.get("/performance/system", response_model=dict[str, Any], responses=READ_ERRORS,
            tags=["performance"])
def system_stats(request: Request, service: Hub, _who: Viewer) -> dict[str, Any]:
    """The hub's ingest, store and link figures, and the API's own request figures."""
    return {**service.system_stats(), "api": request.app.state.metrics.summary()}


@router.post("/state/sync", response_model=dict[str, Any],
             responses=error_responses(400, 401, 403, 404, 422), tags=["facilities"])
def state_sync(service: Hub, _who: Annotated[Identity, may("replay")],
body: StateSyncIn | None = None
               ) -> dict[str, Any]:
    """Ask one facility's edge (or every edge) to replay what the hub's view lacks."""
    facility = body.facility if body else None
    if facility is not None:
        check_facility(service, facility)
    return service.sync_state(facility)
