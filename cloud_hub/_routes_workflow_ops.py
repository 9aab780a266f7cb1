"""``/api/v1/workflows/{id}/…``: what is done to one workflow besides its lifecycle —
dependencies, coordination, checkpoints, recovery, its audit trail and sync arrivals.
Each write is one edge command in the workflow's facility (``_api_write.send``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel

from cloud_hub._api_bodies import (
    ID_PATTERN,
    CheckpointIn,
    CoordinationIn,
    DependencyIn,
    RecoverIn,
    WriteIn,
)
from cloud_hub._api_deps import ConsistencyDep, Paging, ReasonHeader, paging, write_reason
from cloud_hub._api_write import WRITE_RESPONSES, send
from cloud_hub._auth import Identity
from cloud_hub._dependencies_graph import node
from cloud_hub._dependencies_requests import (
    DependenciesOut,
    check_conditions,
    describe,
    graph_of,
    source_facility,
)
from cloud_hub._errors_http import ApiError, error_responses
from cloud_hub._model import CommandOut, EventOut, Page
from cloud_hub._routes_workflows import (
    READ_ERRORS,
    Hub,
    Viewer,
    WorkflowId,
    may,
)

__all__ = ["CheckpointsOut", "DependenciesOut", "router"]

router = APIRouter(prefix="/api/v1/workflows/{workflow_id}", tags=["workflow operations"])
PathId = Annotated[str, Path(pattern=ID_PATTERN)]


class CheckpointsOut(BaseModel):
    """The recovery checkpoints of a workflow (oldest first)."""

    workflow_id: str
    facility: str
    checkpoints: list[str]


@router.get("/dependencies", response_model=DependenciesOut, responses=READ_ERRORS)
def dependencies(workflow_id: WorkflowId, service: Hub, _who: Viewer) -> DependenciesOut:
    """The workflows this one depends on — each with its type, conditions, facility and
    status (cross-facility ones with the hub's verdict) — and those that wait for it."""
    return describe(service.workflow(workflow_id), graph_of(service))


@router.post("/dependencies", response_model=CommandOut,
             responses={**WRITE_RESPONSES, **error_responses(501)})
def add_dependency(workflow_id: WorkflowId, body: DependencyIn, request: Request,
                   response: Response, service: Hub,
                   who: Annotated[Identity, may("add_dependency")],
                   consistency: ConsistencyDep, x_reason: ReasonHeader = None) -> CommandOut:
    """This workflow (the target) waits for ``source`` by ``type`` (sequential, parallel,
    conditional, resource_based, data_flow; ``conditions`` as the type needs), in its own
    facility or in another one — then the hub releases it when the source's facts allow —
    or its ``step`` waits for its step ``after``. A dependency that closes a cycle in the
    global graph is refused (409 ``cycle``, naming it); a cross-facility one needs a target
    still pending (409)."""
    if (body.source is None) == (body.step is None and body.after is None):
        raise ApiError(422, "validation_error",
                       "body: give either source (a workflow) or step and after (two steps)")
    if body.source is None and (body.step is None or body.after is None):
        raise ApiError(422, "validation_error", "body: a step dependency needs step and after")
    reason = write_reason(body.reason, x_reason)
    facility = service.facility_of(workflow_id)
    if body.source is None:
        if body.type != "sequential" or body.conditions:
            raise ApiError(422, "validation_error",
                           "body: a dependency between two steps is sequential, without "
                           "conditions")
        return send(request, response, facility=facility, action="add_dependency",
                    args={"workflow_id": workflow_id, "step": body.step,
                          "after": body.after},
                    who=who, reason=reason, consistency=consistency)
    graph = graph_of(service)
    check_conditions(body.type, body.conditions, "body.conditions")
    source_f = source_facility(service, body.source, "body.source")
    args: dict[str, Any] = {"workflow_id": workflow_id, "depends_on": body.source,
                            "type": body.type, "conditions": body.conditions}
    if source_f != facility:
        state = service.workflow(workflow_id).state
        if state.split(".", 1)[0] != "pending":
            raise ApiError(409, "already_started",
                           f"workflow {workflow_id} already started ({state}): a dependency "
                           f"on {source_f}/{body.source} can only hold a pending workflow")
        args["facility"] = source_f
    edge = (node(source_f, body.source), node(facility, workflow_id))
    graph.accept(*edge)
    try:
        out = send(request, response, facility=facility, action="add_dependency", args=args,
                   who=who, reason=reason, consistency=consistency)
    except BaseException:
        graph.forget(*edge)
        raise
    return out


@router.post("/coordination", response_model=CommandOut, responses=WRITE_RESPONSES)
def set_coordination(workflow_id: WorkflowId, body: CoordinationIn, request: Request,
                     response: Response, service: Hub,
                     who: Annotated[Identity, may("set_coordination")],
                     consistency: ConsistencyDep, x_reason: ReasonHeader = None) -> CommandOut:
    """The workflow's allocation protocol (and allowed agents) from now on."""
    args = {"workflow_id": workflow_id, "protocol": body.protocol, "agents": body.agents}
    return send(request, response, facility=service.facility_of(workflow_id),
                action="set_coordination", args=args, who=who,
                reason=write_reason(body.reason, x_reason), consistency=consistency)


@router.post("/checkpoint", response_model=CommandOut, responses=WRITE_RESPONSES)
def checkpoint(workflow_id: WorkflowId, request: Request, response: Response, service: Hub,
               who: Annotated[Identity, may("checkpoint")], consistency: ConsistencyDep,
               body: CheckpointIn | None = None,
               x_reason: ReasonHeader = None) -> CommandOut:
    """Take a recovery checkpoint of the workflow now (its id is in ``result``)."""
    body = body or CheckpointIn()
    return send(request, response, facility=service.facility_of(workflow_id),
                action="checkpoint", args={"workflow_id": workflow_id, "label": body.label},
                who=who, reason=write_reason(body.reason, x_reason), consistency=consistency)


@router.get("/checkpoints", response_model=CheckpointsOut, responses=READ_ERRORS)
def checkpoints(workflow_id: WorkflowId, service: Hub, _who: Viewer) -> CheckpointsOut:
    """The workflow's recovery checkpoints, as the hub's view holds them."""
    wf = service.workflow(workflow_id)
    return CheckpointsOut(workflow_id=wf.id, facility=wf.facility, checkpoints=wf.checkpoints)


@router.post("/recover", response_model=CommandOut, responses=WRITE_RESPONSES)
def recover(workflow_id: WorkflowId, body: RecoverIn, request: Request, response: Response,
            service: Hub, who: Annotated[Identity, may("recover")],
            consistency: ConsistencyDep, x_reason: ReasonHeader = None) -> CommandOut:
    """Recover by a strategy: ``automatic_retry`` (retry the failed step, or ``step_id``),
    ``checkpoint_restore`` (``checkpoint``, default the newest), ``partial_rollback``
    (compensate in reverse, ``then`` abort or retry), ``manual_intervention`` (``action``:
    retry, skip, reassign, abort or signal)."""
    args: dict[str, Any] = {"workflow_id": workflow_id, "strategy": body.strategy}
    for key, value in (("step_id", body.step_id), ("checkpoint_id", body.checkpoint),
                       ("action", body.action), ("signal", body.signal), ("then", body.then)):
        if value is not None:
            args[key] = value
    return send(request, response, facility=service.facility_of(workflow_id),
                action="recover", args=args, who=who,
                reason=write_reason(body.reason, x_reason), consistency=consistency)


@router.get("/events", response_model=Page[EventOut], responses=READ_ERRORS)
def events(workflow_id: WorkflowId, service: Hub, _who: Viewer,
           page: Annotated[Paging, Depends(paging)],
           newest_first: Annotated[bool, Query(description="newest event first")] = False,
           ) -> Page[EventOut]:
    """The workflow's audit trail, oldest first (or ``newest_first``): every event of its
    facility's log about it (commands' replies name who sent them and why)."""
    return service.workflow_events(workflow_id, cursor=page.cursor, limit=page.limit,
                                   newest_first=newest_first)


@router.post("/sync/{sync_point}/agent/{agent_id}", response_model=CommandOut,
             responses=WRITE_RESPONSES)
def sync_arrival(workflow_id: WorkflowId, sync_point: PathId, agent_id: PathId,
                 request: Request, response: Response, service: Hub,
                 who: Annotated[Identity, may("sync_arrival")], consistency: ConsistencyDep,
                 body: WriteIn | None = None,
                 x_reason: ReasonHeader = None) -> CommandOut:
    """Report that ``agent_id`` (a person without a device, say) arrived at the sync step
    ``sync_point``; the caller is recorded as who reported it."""
    args = {"workflow_id": workflow_id, "step_id": sync_point, "agent_id": agent_id,
            "reported_by": who.name}
    return send(request, response, facility=service.facility_of(workflow_id),
                action="sync_arrival", args=args, who=who,
                reason=write_reason(body.reason if body else "", x_reason),
                consistency=consistency)
