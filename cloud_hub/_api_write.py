"""How a write becomes an edge command and an HTTP answer, the same way for every route.

The route builds the command's ``args``; ``send`` hands it to the hub with the caller's
identity, the reason and the consistency level, and turns the command's fate into a status:
``applied`` → 200 (201 for a creation), ``pending`` (``eventual``, or an edge still to
answer) → 202 with the command id to poll, ``refused`` by the edge → 409 with the edge's
sentence. A ``strong`` write whose edge does not answer in time is the hub's
``Unavailable`` (503); it stays queued, so its id is still worth polling.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response

from cloud_hub._auth import Identity
from cloud_hub._errors_http import ApiError, error_responses
from cloud_hub._model import CommandOut, Consistency
from cloud_hub._service import HubService, NotFound

__all__ = ["WRITE_RESPONSES", "check_facility", "send"]

WRITE_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"model": CommandOut, "description": "accepted: queued for the edge (eventual), "
                                              "its fate at GET /api/v1/commands/{id}"},
    **error_responses(400, 401, 403, 404, 409, 422, 503),
}
"""What every write may answer besides its 200/201 (OpenAPI)."""


def check_facility(service: HubService, facility: str) -> None:
    """``NotFound`` unless some edge of ``facility`` has reported to the hub: a command for
    a facility nobody runs would wait forever."""
    if all(f.id != facility for f in service.facilities()):
        raise NotFound(f"unknown facility {facility!r}: no edge of that id has reported "
                       "to the hub")


def send(request: Request, response: Response, *, facility: str, action: str,
         args: dict[str, Any], who: Identity, reason: str, consistency: Consistency | None,
         created: bool = False) -> CommandOut:
    """Send ``action`` to ``facility``'s edge; the command's fate, the status set."""
    service: HubService = request.app.state.hub
    level: Consistency = consistency or request.app.state.default_consistency
    timeout: float = request.app.state.command_timeout_s
    out = service.command(facility, action, args, consistency=level, who=who.name,
                          reason=reason, timeout_s=timeout)
    if out.state == "refused":
        raise ApiError(409, "refused", out.error or f"the edge refused {action}",
                       command_id=out.command_id)
    if out.state == "failed":
        raise ApiError(503, "edge_unavailable",
                       out.error or f"the edge of {facility} did not apply {action}",
                       command_id=out.command_id)
    response.status_code = 202 if out.state == "pending" else (201 if created else 200)
    return out
