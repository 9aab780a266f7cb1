"""``HubService``: what the REST/WebSocket API asks of the hub (``cloud_hub._hub.Hub``
implements it). The API module depends on this protocol only, so it stays a thin layer of
HTTP over the hub's reads and writes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from cloud_hub._coordination_model import CoordinationOut
from cloud_hub._maps_model import MapOut
from cloud_hub._model import (
    AgentOut,
    ChangeOut,
    CommandOut,
    ConflictOut,
    Consistency,
    EventOut,
    FacilityOut,
    Page,
    WorkflowOut,
)
from cloud_hub._vda_model import VdaLinksOut

__all__ = ["HubError", "HubService", "NotFound", "Stale", "Unavailable"]


class HubError(Exception):
    """A request the hub cannot serve; ``code`` is the machine-readable reason."""

    code = "hub_error"
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(HubError):
    """No such workflow, agent, conflict, facility or command."""

    code = "not_found"
    status = 404


class Unavailable(HubError):
    """A ``strong`` write whose edge did not answer in time (it may still apply later:
    ``GET /api/v1/commands/{id}``)."""

    code = "edge_unavailable"
    status = 503


class Stale(HubError):
    """A ``bounded_staleness`` read of a facility whose view is older than the bound."""

    code = "stale"
    status = 409


class HubService(Protocol):
    """Reads of the global view and writes that become edge commands."""

    # --- reads (never scan: served from the cache or the store's indexes) ---------------

    def workflows(self, *, facility: str | None = None, state: str | None = None,
                  template: str | None = None, agent: str | None = None,
                  since: float | None = None, until: float | None = None,
                  cursor: str | None = None, limit: int = 50,
                  max_staleness_s: float | None = None,
                  label: str | None = None) -> Page[WorkflowOut]: ...

    def workflow(self, workflow_id: str, *, max_staleness_s: float | None = None
                 ) -> WorkflowOut:
        """``NotFound`` if no facility has it; ``Stale`` if its facility's view is older
        than ``max_staleness_s``."""
        ...

    def workflow_events(self, workflow_id: str, *, cursor: str | None = None,
                        limit: int = 100, newest_first: bool = False) -> Page[EventOut]: ...

    def agents(self, *, facility: str | None = None, cursor: str | None = None,
               limit: int = 100) -> Page[AgentOut]: ...

    def agent_workflows(self, agent_id: str, *, cursor: str | None = None,
                        limit: int = 50) -> Page[WorkflowOut]: ...

    def conflicts(self, *, facility: str | None = None, status: str | None = None,
                  cursor: str | None = None, limit: int = 100) -> Page[ConflictOut]: ...

    def facilities(self) -> list[FacilityOut]: ...

    def templates(self) -> list[dict[str, Any]]: ...

    def changes(self, since: str | None = None, *, facility: str | None = None,
                workflow_id: str | None = None, limit: int = 500) -> list[ChangeOut]:
        """Feed entries after token ``since`` (all retained ones if ``None``)."""
        ...

    def subscribe(self, listener: Callable[[ChangeOut], None]) -> Callable[[], None]:
        """Call ``listener`` (from the hub's thread: hand it on, never block) for every new
        change; returns the function that unsubscribes."""
        ...

    def command_fate(self, command_id: str) -> CommandOut: ...

    def coordination(self, facility: str | None = None) -> list[CoordinationOut]:
        """Auctions, sync points, teams and votes under way in every facility (or one)."""
        ...

    def facility_map(self, facility: str) -> MapOut:
        """``facility``'s map (``NotFound`` if the hub has none)."""
        ...

    def vda_links(self, facility: str) -> VdaLinksOut:
        """The latest VDA 5050 link health ``facility``'s edge published (``NotFound`` if
        no edge of it reported; empty links if it never published any)."""
        ...

    def cache_stats(self) -> dict[str, Any]: ...

    def system_stats(self) -> dict[str, Any]: ...

    # --- writes ----------------------------------------------------------------------

    def command(self, facility: str, action: str, args: dict[str, Any], *,
                consistency: Consistency = "strong", who: str = "", reason: str = "",
                timeout_s: float = 10.0, command_id: str | None = None) -> CommandOut:
        """Send ``action`` to ``facility``'s edge as a ``HubCommand``. ``strong``: wait for
        its reply event (``Unavailable`` after ``timeout_s``; the command stays queued);
        ``eventual``: return at once, ``state="pending"``."""
        ...

    def facility_of(self, workflow_id: str) -> str:
        """The facility that runs ``workflow_id`` (``NotFound`` if none)."""
        ...

    def sync_state(self, facility: str | None = None) -> dict[str, Any]:
        """Ask the edges (one, or all) to replay what the hub lacks; what was asked."""
        ...
