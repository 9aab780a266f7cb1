"""``/api/v1/agents/{id}/lend|return``, ``/api/v1/resources/{name}/lend|return``,
``/api/v1/loans``, and the settling of a hub double-booking conflict (``x-…`` ids, from
``POST /api/v1/conflicts/{id}/resolve``).

A loan is a command to the *lender's* edge (``lend_agent`` …) with the request's
consistency, recorded in the hub's store (``_bookings``) before it is sent, so a ``strong``
write that gets 503 still shows as ``lending`` and turns ``lent`` when the edge applies it.
"""

from __future__ import annotations

import secrets
import time
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response

from cloud_hub._api_bodies import ID_PATTERN
from cloud_hub._api_deps import ConsistencyDep, ReasonHeader, write_reason
from cloud_hub._api_write import WRITE_RESPONSES, check_facility
from cloud_hub._auth import Identity
from cloud_hub._bookings import Bookings
from cloud_hub._bookings_detect import Kind
from cloud_hub._bookings_model import Invalid, LendIn, LoanOut, ReturnIn
from cloud_hub._errors_http import ApiError
from cloud_hub._model import CommandOut, Consistency
from cloud_hub._routes_workflows import READ_ERRORS, Hub, Viewer, may
from cloud_hub._service import HubService, NotFound, Unavailable

__all__ = ["resolve_hub_conflict", "router"]

router = APIRouter(prefix="/api/v1")
PathId = Annotated[str, Path(pattern=ID_PATTERN)]


def _bookings(service: HubService) -> Bookings:
    bookings = getattr(service, "bookings", None)
    if not isinstance(bookings, Bookings):
        raise ApiError(503, "unavailable", "this hub keeps no loans")
    return bookings


def _send(request: Request, response: Response, facility: str, action: str,
          args: dict[str, Any], who: Identity, reason: str, consistency: Consistency | None,
          command_id: str) -> CommandOut:
    """Like ``_api_write.send``, with the command id chosen here (recorded beforehand)."""
    service: HubService = request.app.state.hub
    level: Consistency = consistency or request.app.state.default_consistency
    out = service.command(facility, action, args, consistency=level, who=who.name,
                          reason=reason, timeout_s=request.app.state.command_timeout_s,
                          command_id=command_id)
    if out.state == "refused":
        raise ApiError(409, "refused", out.error or f"the edge refused {action}",
                       command_id=out.command_id)
    if out.state == "failed":
        raise ApiError(503, "edge_unavailable", out.error or f"{facility} did not apply "
                       f"{action}", command_id=out.command_id)
    response.status_code = 202 if out.state == "pending" else 200
    return out


def _lend(request: Request, response: Response, kind: Kind, name: str, body: LendIn,
          who: Identity, consistency: Consistency | None, x_reason: str | None) -> LoanOut:
    service: HubService = request.app.state.hub
    bookings = _bookings(service)
    if body.from_facility == body.to_facility:
        raise Invalid(f"cannot lend {kind} {name!r} from {body.from_facility} to itself")
    check_facility(service, body.from_facility)
    check_facility(service, body.to_facility)
    if kind == "agent" and not bookings.agent_seen(body.from_facility, name):
        raise NotFound(f"the hub has never seen agent {name!r} in {body.from_facility}")
    reason = write_reason(body.reason, x_reason)
    now = time.time()
    loan = bookings.record(LoanOut(
        id=f"{kind}:{name}:{body.from_facility}", kind=kind, name=name,
        from_facility=body.from_facility, to_facility=body.to_facility,
        strategy=body.strategy or bookings.strategy, who=who.name, reason=reason,
        command_id=f"hub-{secrets.token_hex(8)}", created_at=now, updated_at=now))
    thing = {"agent_id": name} if kind == "agent" else {"resource": name}
    try:
        out = _send(request, response, body.from_facility, f"lend_{kind}",
                    {**thing, "to": body.to_facility, "reason": reason[:512]}, who, reason,
                    consistency, loan.command_id)
    except ApiError as exc:
        if exc.status == 409:  # refused by the edge: no loan
            bookings.record(loan.model_copy(update={"status": "refused",
                                                    "error": exc.message[:1000]}))
        raise
    if out.state == "applied":
        loan = bookings.record(loan.model_copy(update={"status": "lent"}))
    return loan


def _return(request: Request, response: Response, kind: Kind, name: str,
            body: ReturnIn | None, who: Identity, consistency: Consistency | None,
            x_reason: str | None) -> LoanOut:
    service: HubService = request.app.state.hub
    bookings = _bookings(service)
    body = body or ReturnIn()
    loan = bookings.loan(kind, name, body.from_facility)
    reason = write_reason(body.reason, x_reason)
    loan = bookings.record(loan.model_copy(update={
        "status": "returning", "command_id": f"hub-{secrets.token_hex(8)}",
        "updated_at": time.time()}))
    thing = {"agent_id": name} if kind == "agent" else {"resource": name}
    out = _send(request, response, loan.from_facility, f"reclaim_{kind}", thing, who, reason,
                consistency, loan.command_id)
    if out.state == "applied":
        loan = bookings.record(loan.model_copy(update={"status": "returned"}))
    return loan


@router.post("/agents/{agent_id}/lend", response_model=LoanOut, responses=WRITE_RESPONSES,
             tags=["lending"])
def lend_agent(agent_id: PathId, body: LendIn, request: Request, response: Response,
               who: Annotated[Identity, may("lend_agent")], consistency: ConsistencyDep,
               x_reason: ReasonHeader = None) -> LoanOut:
    """Lend a shared agent: the lender's edge gives it no new work until it is returned;
    a double-booking of it is settled by the loan's ``strategy``."""
    return _lend(request, response, "agent", agent_id, body, who, consistency, x_reason)


@router.post("/agents/{agent_id}/return", response_model=LoanOut, responses=WRITE_RESPONSES,
             tags=["lending"])
def return_agent(agent_id: PathId, request: Request, response: Response,
                 who: Annotated[Identity, may("reclaim_agent")], consistency: ConsistencyDep,
                 body: ReturnIn | None = None, x_reason: ReasonHeader = None) -> LoanOut:
    """End the agent's loan: it works in the lender's facility again."""
    return _return(request, response, "agent", agent_id, body, who, consistency, x_reason)


@router.post("/resources/{name}/lend", response_model=LoanOut, responses=WRITE_RESPONSES,
             tags=["lending"])
def lend_resource(name: PathId, body: LendIn, request: Request, response: Response,
                  who: Annotated[Identity, may("lend_resource")], consistency: ConsistencyDep,
                  x_reason: ReasonHeader = None) -> LoanOut:
    """Lend a resource: the lender's steps needing it wait until it is returned (refused
    while one of them holds it)."""
    return _lend(request, response, "resource", name, body, who, consistency, x_reason)


@router.post("/resources/{name}/return", response_model=LoanOut, responses=WRITE_RESPONSES,
             tags=["lending"])
def return_resource(name: PathId, request: Request, response: Response,
                    who: Annotated[Identity, may("reclaim_resource")],
                    consistency: ConsistencyDep, body: ReturnIn | None = None,
                    x_reason: ReasonHeader = None) -> LoanOut:
    """End the resource's loan: the lender's steps may acquire it again."""
    return _return(request, response, "resource", name, body, who, consistency, x_reason)


@router.get("/loans", response_model=list[LoanOut], responses=READ_ERRORS, tags=["lending"])
def loans(service: Hub, _who: Viewer) -> list[LoanOut]:
    """Every loan the hub recorded (standing and ended)."""
    return _bookings(service).loans()


def resolve_hub_conflict(request: Request, response: Response, conflict_id: str,
                         resolution: str, who: Identity, reason: str,
                         consistency: Consistency | None) -> CommandOut:
    """Settle hub conflict ``x-…`` with ``keep:<facility>``: ``release_booking`` to every
    other holder (ids made from the conflict: a repeat sends nothing new); the first
    command's fate. The conflict is resolved once the replicas show one holder."""
    service: HubService = request.app.state.hub
    releases = _bookings(service).choose(conflict_id, resolution, who.name)
    outs: list[CommandOut] = []
    first_error: Unavailable | None = None
    for facility, args, cid in releases:
        try:
            outs.append(_send(request, response, facility, "release_booking", args, who,
                              reason or resolution, consistency, cid))
        except Unavailable as exc:  # queued all the same: the others still go out
            first_error = first_error or exc
    if first_error is not None:
        raise first_error
    if not outs:
        raise Invalid(f"hub conflict {conflict_id} has no other holder to release")
    response.status_code = 202 if any(o.state == "pending" for o in outs) else 200
    return outs[0]
