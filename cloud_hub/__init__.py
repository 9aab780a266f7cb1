"""The cloud hub (docs/design.md §7): every facility's events in one view, edge-cloud sync with
consistency levels, cross-facility dependencies and conflicts, the REST/WebSocket API."""

from cloud_hub._api import create_app
from cloud_hub._config import HubConfig
from cloud_hub._hub import Hub
from cloud_hub._model import (
    AgentOut,
    ChangeOut,
    CommandOut,
    ConflictOut,
    EventOut,
    FacilityOut,
    Page,
    StepOut,
    WorkflowOut,
)
from cloud_hub._service import HubError, HubService, NotFound, Stale, Unavailable
from cloud_hub._tokens import Role, TokenError, TokenInfo, TokenStore
from cloud_hub._virtual import VirtualHub

__all__ = [
    "AgentOut", "ChangeOut", "CommandOut", "ConflictOut", "EventOut", "FacilityOut",
    "Hub", "HubConfig", "HubError", "HubService", "NotFound", "Page", "Role", "Stale",
    "StepOut", "TokenError", "TokenInfo", "TokenStore", "Unavailable", "VirtualHub",
    "WorkflowOut",
    "create_app",
]
