"""``/api/v1/workflows``: list, create, read, update, cancel, pause, resume, and batch
actions by filter. Reads come from the hub's view; writes become edge commands
(``_api_write.send``) in the workflow's facility."""

from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel

from cloud_hub._api_bodies import (
    ID_PATTERN,
    LABEL_PATTERN,
    BatchIn,
    WorkflowCreateIn,
    WorkflowUpdateIn,
    WriteIn,
)
from cloud_hub._api_deps import (
    ConsistencyDep,
    Paging,
    ReasonHeader,
    hub,
    paging,
    read_staleness,
    write_reason,
)
from cloud_hub._api_write import WRITE_RESPONSES, check_facility, send
from cloud_hub._auth import Identity, require, role_for_action
from cloud_hub._dependencies_requests import creation_dependencies
from cloud_hub._errors_http import ApiError, error_responses
from cloud_hub._model import CommandOut, Page, WorkflowOut
from cloud_hub._service import HubError, HubService
from cloud_hub._tokens import Role

__all__ = ["BatchOut", "WorkflowId", "may", "role_of", "router"]

router = APIRouter(prefix="/api/v1/workflows", tags=["workflows"])

WorkflowId = Annotated[str, Path(pattern=ID_PATTERN, description="The workflow's id")]
Hub = Annotated[HubService, Depends(hub)]
Viewer = Annotated[Identity, Depends(require(Role.viewer))]
def role_of(action: str) -> Role:
    """The least role that may send ``action`` (``_auth``'s table; admin if unlisted)."""
    return role_for_action(action)


def may(action: str) -> Any:
    """``Annotated[Identity, may(action)]``: the route's caller, who must hold the role
    ``action`` needs (401/403 otherwise)."""
    return Depends(require(role_of(action)))


READ_ERRORS = error_responses(400, 401, 403, 404, 409, 422)

_BATCH_STATES = {
    "pause": {"active"},
    "resume": {"paused", "pausing"},
    "cancel": {"pending", "active", "paused", "pausing"},
}
"""The top-level states (``active.executing…`` is ``active``) from which the edge's
workflow machine takes each action: a batch skips workflows in the others."""


@router.get("", response_model=Page[WorkflowOut], responses=READ_ERRORS)
def list_workflows(
    service: Hub, _who: Viewer, page: Annotated[Paging, Depends(paging)],
    staleness: Annotated[float | None, Depends(read_staleness)],
    facility: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    state: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    template: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    agent: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    label: Annotated[str | None, Query(pattern=LABEL_PATTERN,
                                       description="key=value: workflows with that label")
                     ] = None,
    since: Annotated[float | None, Query(ge=0, le=1e11, description="created at or after")
                     ] = None,
    until: Annotated[float | None, Query(ge=0, le=1e11, description="created before")
                     ] = None,
) -> Page[WorkflowOut]:
    """Workflows of every facility (finished ones too), filtered, a page at a time."""
    return service.workflows(facility=facility, state=state, template=template, agent=agent,
                             since=since, until=until, cursor=page.cursor, limit=page.limit,
                             max_staleness_s=staleness, label=label)


@router.post("", response_model=CommandOut, status_code=201, responses=WRITE_RESPONSES)
def create_workflow(
    body: WorkflowCreateIn, request: Request, response: Response, service: Hub,
    who: Annotated[Identity, may("create_workflow")], consistency: ConsistencyDep,
    x_reason: ReasonHeader = None,
) -> CommandOut:
    """Create a workflow from a template in the facility named (``create_workflow``);
    ``depends_on`` and ``dependencies`` may name workflows of other facilities (the hub
    releases it when they allow)."""
    check_facility(service, body.facility)
    args: dict[str, Any] = body.model_dump(exclude={"facility", "reason", "dependencies"},
                                           exclude_none=True)
    args["workflow_id"] = body.workflow_id or f"wf-{secrets.token_hex(6)}"
    args |= creation_dependencies(service, body.facility, body.depends_on,
                                  [(d.source, d.type, d.conditions) for d in body.dependencies])
    return send(request, response, facility=body.facility, action="create_workflow",
                args=args, who=who, reason=write_reason(body.reason, x_reason),
                consistency=consistency, created=True)


class BatchOut(BaseModel):
    """What a batch action did (or, dry, would do)."""

    action: str
    dry_run: bool
    count: int
    """Workflows the filter takes that the action applies to."""
    workflow_ids: list[str]
    commands: list[CommandOut] = []
    errors: dict[str, str] = {}
    """Workflow id → why its command was not accepted."""


@router.post("/batch", response_model=BatchOut,
             responses=error_responses(400, 401, 403, 422))
def batch(body: BatchIn, request: Request, service: Hub,
          who: Annotated[Identity, may("batch")],
          consistency: ConsistencyDep, x_reason: ReasonHeader = None) -> BatchOut:
    """Pause, resume or cancel every workflow the filter takes; ``dry_run`` counts them
    first. Workflows in a state the action does not apply to are left out."""
    need = role_of(f"{body.action}_workflow")
    if not who.role.allows(need):
        raise ApiError(403, "forbidden", f"a batch {body.action} needs the {need.name} role "
                       f"or higher; {who.name} has {who.role.name}")
    f = body.filter
    if not f.model_dump(exclude_none=True):
        raise ApiError(422, "validation_error",
                       "body.filter: give at least one of facility, state, template, agent, "
                       "label, since, until (a batch never takes every workflow by default)")
    ids: list[tuple[str, str]] = []
    cursor: str | None = None
    while True:
        page = service.workflows(facility=f.facility, state=f.state, template=f.template,
                                 agent=f.agent, since=f.since, until=f.until,
                                 cursor=cursor, limit=500, label=f.label)
        ids += [(w.id, w.facility) for w in page.items
                if w.state.split(".", 1)[0] in _BATCH_STATES[body.action]]
        cursor = page.next_cursor
        if cursor is None or len(ids) >= body.limit:
            break
    ids = ids[:body.limit]
    out = BatchOut(action=body.action, dry_run=body.dry_run, count=len(ids),
                   workflow_ids=[i for i, _ in ids])
    if body.dry_run or not ids:
        return out
    reason = write_reason(body.reason, x_reason)
    level = consistency or "eventual"  # N strong waits would hold the request for long
    timeout: float = request.app.state.command_timeout_s

    def one(item: tuple[str, str]) -> CommandOut | str:
        wid, facility = item
        try:
            return service.command(facility, f"{body.action}_workflow",
                                   {"workflow_id": wid, "reason": reason},
                                   consistency=level, who=who.name, reason=reason,
                                   timeout_s=timeout)
        except HubError as exc:
            return f"{exc.code}: {exc.message}"

    with ThreadPoolExecutor(max_workers=min(8, len(ids))) as pool:
        results = list(pool.map(one, ids))
    commands = [r for r in results if isinstance(r, CommandOut)]
    errors = {wid: r for (wid, _), r in zip(ids, results, strict=True) if isinstance(r, str)}
    errors |= {c.args.get("workflow_id", "?"): c.error or c.state for c in commands
               if c.state in ("refused", "failed")}
    return out.model_copy(update={"commands": commands, "errors": errors})


@router.get("/{workflow_id}", response_model=WorkflowOut, responses=READ_ERRORS)
async def get_workflow(workflow_id: WorkflowId, service: Hub, _who: Viewer,
                       staleness: Annotated[float | None, Depends(read_staleness)]
                       ) -> WorkflowOut:
    """One workflow with its steps (409 under ``bounded_staleness`` if its facility's view
    is older than the bound). ``async``: a memory-tier hit or one RocksDB point read never
    blocks the event loop for long, and the thread-pool hop cost more than the read."""
    return service.workflow(workflow_id, max_staleness_s=staleness)


@router.put("/{workflow_id}", response_model=CommandOut, responses=WRITE_RESPONSES)
def update_workflow(workflow_id: WorkflowId, body: WorkflowUpdateIn, request: Request,
                    response: Response, service: Hub,
                    who: Annotated[Identity, may("update_workflow")],
                    consistency: ConsistencyDep, x_reason: ReasonHeader = None) -> CommandOut:
    """Change a live workflow's priority, deadline or data (``update_workflow``)."""
    args = body.model_dump(exclude={"reason", "labels"}, exclude_none=True)
    if body.labels:  # ``None`` values remove labels: kept as they are
        args["labels"] = body.labels
    if args.get("data") == {}:
        del args["data"]  # merging nothing changes nothing
    if not args.pop("clear_deadline"):
        if not args:
            raise ApiError(422, "validation_error", "body: give at least one of priority, "
                           "deadline, clear_deadline, data, labels")
    elif "deadline" in args:
        raise ApiError(422, "validation_error",
                       "body.clear_deadline: contradicts the deadline given")
    else:
        args["clear_deadline"] = True
    return send(request, response, facility=service.facility_of(workflow_id),
                action="update_workflow", args={"workflow_id": workflow_id, **args}, who=who,
                reason=write_reason(body.reason, x_reason), consistency=consistency)


def _lifecycle(action: str, workflow_id: str, body: WriteIn | None, request: Request,
               response: Response, who: Identity, consistency: ConsistencyDep,
               x_reason: str | None) -> CommandOut:
    service: HubService = request.app.state.hub
    reason = write_reason(body.reason if body else "", x_reason)
    return send(request, response, facility=service.facility_of(workflow_id), action=action,
                args={"workflow_id": workflow_id, "reason": reason}, who=who, reason=reason,
                consistency=consistency)


@router.delete("/{workflow_id}", response_model=CommandOut, responses=WRITE_RESPONSES)
def cancel_workflow(workflow_id: WorkflowId, request: Request, response: Response,
                    who: Annotated[Identity, may("cancel_workflow")], consistency: ConsistencyDep,
                    x_reason: ReasonHeader = None) -> CommandOut:
    """Cancel (the workflow stays, ``cancelled``; agents confirm they stopped)."""
    return _lifecycle("cancel_workflow", workflow_id, None, request, response, who,
                      consistency, x_reason)


@router.post("/{workflow_id}/pause", response_model=CommandOut, responses=WRITE_RESPONSES)
def pause_workflow(workflow_id: WorkflowId, request: Request, response: Response,
                   who: Annotated[Identity, may("pause_workflow")], consistency: ConsistencyDep,
                   body: WriteIn | None = None,
                   x_reason: ReasonHeader = None) -> CommandOut:
    """Pause; resume returns to the substate it left."""
    return _lifecycle("pause_workflow", workflow_id, body, request, response, who,
                      consistency, x_reason)


@router.post("/{workflow_id}/resume", response_model=CommandOut, responses=WRITE_RESPONSES)
def resume_workflow(workflow_id: WorkflowId, request: Request, response: Response,
                    who: Annotated[Identity, may("resume_workflow")], consistency: ConsistencyDep,
                    body: WriteIn | None = None,
                    x_reason: ReasonHeader = None) -> CommandOut:
    """Resume a paused (or pausing) workflow."""
    return _lifecycle("resume_workflow", workflow_id, body, request, response, who,
                      consistency, x_reason)
