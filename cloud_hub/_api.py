"""The hub's REST API and WebSocket (FastAPI): a thin layer of HTTP over ``HubService``.

``create_app(service, auth)`` builds the app; ``fleetflow hub`` serves it with uvicorn.
Everything under ``/api/v1`` needs a bearer token (``auth.check``); ``/health`` and
``/metrics`` at the root do not, so probes and Prometheus need no secret. OpenAPI is at
``/openapi.json`` and ``/docs``. Routes live in ``_routes_*.py``, the stream in ``_ws.py``,
the error shape in ``_errors_http.py``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel

from cloud_hub import (
    _routes_fleet,
    _routes_lending,
    _routes_ops,
    _routes_workflow_ops,
    _routes_workflows,
    _ws,
)
from cloud_hub._api_metrics import ApiMetrics
from cloud_hub._auth import TokenChecker, install_auth
from cloud_hub._errors_http import install_error_handlers
from cloud_hub._hub_metrics import HubFigures
from cloud_hub._model import Consistency
from cloud_hub._service import HubService

__all__ = ["HealthOut", "create_app"]

_DESCRIPTION = """\
Every facility in one view, and writes that become commands to the facilities' edges.

* **Auth**: `Authorization: Bearer <token>` (`fleetflow hub token create --role …`); roles
  viewer < supervisor < planner < admin. 401: no or bad token; 403: role too low.
* **Consistency** per request: `?consistency=` or `X-Consistency:` — `strong` (the reply
  waits for the edge's durable event; 503 when it does not come in time), `eventual`
  (202 with the command id; `GET /api/v1/commands/{id}` tells its fate),
  `bounded_staleness` (reads only while the facility's view is fresher than
  `max_staleness_s`, else 409).
* **Errors**: `{"error": {"code": "...", "message": "..."}}`.
* **Lists**: `cursor` + `limit`; each page has `count` and `next_cursor`.
* **Live**: `ws://…/ws/workflows?facility=&workflow_id=&since=TOKEN`, or poll
  `GET /api/v1/events?since=TOKEN`.
"""


class HealthOut(BaseModel):
    """Is the hub serving, and how many facilities does it see (and which are stale)."""

    status: str
    facilities: int
    online: int
    stale: list[str]


def create_app(service: HubService, auth: TokenChecker, *,
               default_consistency: Consistency = "strong", command_timeout_s: float = 10.0,
               default_staleness_s: float = 5.0) -> FastAPI:
    """The API over ``service``; ``auth`` checks bearer tokens (a ``TokenStore``).

    ``default_consistency`` applies to writes that name none; ``command_timeout_s`` bounds
    a ``strong`` write's wait; ``default_staleness_s`` is the bound of a
    ``bounded_staleness`` read that gives none."""
    if command_timeout_s <= 0 or default_staleness_s <= 0:
        raise ValueError("command_timeout_s and default_staleness_s must be positive")
    app = FastAPI(title="Fleetflow hub", version="1", description=_DESCRIPTION,
                  docs_url="/docs", openapi_url="/openapi.json", redoc_url=None)
    metrics = ApiMetrics()
    app.state.hub = service
    app.state.metrics = metrics
    app.state.default_consistency = default_consistency
    app.state.command_timeout_s = command_timeout_s
    app.state.default_staleness_s = default_staleness_s
    metrics.count_by("fleetflow_hub_vda_links_refused",
                     "edge/vda messages the hub refused (undecodable, another facility's, "
                     "an unknown facility's)", "reason", lambda: _vda_refused(service))
    metrics.registry.register(HubFigures(service.system_stats))
    install_error_handlers(app)
    install_auth(app, auth)  # after: its AuthError handler outranks the HubError one
    app.middleware("http")(metrics.middleware)

    @app.get("/health", response_model=HealthOut, tags=["health"])
    async def health() -> HealthOut:
        """Liveness and a glance at the facilities (no token needed). ``async``: it reads
        a copy-on-write view, and a thread-pool hop was most of its time under load."""
        facilities = service.facilities()
        return HealthOut(status="ok", facilities=len(facilities),
                         online=sum(f.online for f in facilities),
                         stale=[f.id for f in facilities if f.stale])

    @app.get("/metrics", tags=["health"], response_class=Response,
             responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                              "description": "Prometheus text format"}})
    def prometheus(_request: Request) -> Response:
        """The API's Prometheus metrics (no token needed)."""
        return Response(metrics.exposition(),
                        media_type="text/plain; version=0.0.4; charset=utf-8")

    for module in (_routes_workflows, _routes_workflow_ops, _routes_fleet, _ws,
                   _routes_lending, _routes_ops):
        router: Any = module.router
        app.include_router(router)
    return app


def _vda_refused(service: HubService) -> dict[str, int]:
    """The hub's count of refused ``edge/vda`` messages by reason (``system_stats``)."""
    refused = service.system_stats().get("vda_links", {}).get("refused", {})
    return {str(k): int(v) for k, v in refused.items()}
