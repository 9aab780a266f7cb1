"""What the hub serves (docs/design.md §7): the read models of its global view and of commands, as
pydantic models the REST API returns as they are (and OpenAPI documents)."""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AgentOut", "ChangeOut", "CommandOut", "CommandState", "ConflictOut", "Consistency",
    "DependencyOut", "EventOut", "FacilityOut", "Page", "StepOut", "WorkflowOut",
]

Consistency = Literal["strong", "eventual", "bounded_staleness"]
CommandState = Literal["pending", "applied", "refused", "failed"]
"""``pending``: sent, no reply yet (the edge may be offline); ``applied``: the edge's
``command_reply`` event came; ``refused``: the edge refused it (``edge/errors`` or a reply
with ``result.refused``); ``failed``: the hub gave up (a ``strong`` command that timed out
is still delivered later: its fate is then ``applied`` or ``refused``)."""

T = TypeVar("T")


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class StepOut(_Out):
    """One step of a workflow, as the hub last saw it."""

    id: str
    kind: str
    state: str
    attempt: int = 0
    agent: str | None = None
    outputs: dict[str, Any] | None = None
    error: str | None = None
    progress: float = 0.0
    waiting_for: str | None = None
    """Why a step waiting for an agent has none yet, e.g. "no robot agent with capabilities lift has
    joined" (docs/workflows.md, "Why a workflow waits"); as of the workflow's last change."""


class DependencyOut(_Out):
    """One typed dependency of a workflow on a ``source`` workflow, as its edge records it
    (``facility`` set: the source runs in another facility and the hub releases it)."""

    source: str
    facility: str | None = None
    type: str = "sequential"
    conditions: dict[str, Any] = Field(default_factory=dict)
    status: str = "waiting"


class WorkflowOut(_Out):
    """One workflow of one facility (finished ones too)."""

    id: str
    facility: str
    template: str
    version: int
    state: str
    priority: int = 0
    deadline: float | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    steps: list[StepOut] = Field(default_factory=list)
    coordination: str = "direct"
    depends_on: list[str] = Field(default_factory=list)
    dependencies: list[DependencyOut] = Field(default_factory=list)
    """Its typed dependencies (``depends_on`` lists the plain local ones)."""
    checkpoints: list[str] = Field(default_factory=list)
    awaiting_operator: list[str] = Field(default_factory=list)
    """Steps whose failure waits for an operator's action (manual intervention)."""
    labels: dict[str, str] = Field(default_factory=dict)
    """What the operator tagged it with; lists filter by ``label=key=value``."""
    reason: str = ""
    created_at: float | None = None
    ended_at: float | None = None
    seq: int = 0
    """Seq (in its facility's log) of the last event that changed it."""


class AgentOut(_Out):
    """One agent of one facility."""

    id: str
    facility: str
    kind: str
    capabilities: list[str] = Field(default_factory=list)
    online: bool = False
    status: str = "idle"
    node: str | None = None
    battery: float | None = None
    workflow_id: str | None = None
    step_id: str | None = None
    lent_to: str | None = None
    """The facility this one lent the agent to (``lend_agent``), if any."""
    mode: str = "automatic"
    """Operating mode it last reported (``automatic``, ``manual`` …: a VDA 5050 AGV's
    ``operatingMode``); only ``automatic`` takes work."""
    e_stop: bool = False
    """Its emergency stop is engaged."""
    bids: bool = True
    """``False``: the edge bids for it in auctions — a VDA 5050 AGV (or a simple device)."""


class ConflictOut(_Out):
    """One conflict of one facility (or crossing facilities: ``facility`` is ``*``)."""

    id: str
    facility: str
    type: str
    rule: str
    participants: list[str] = Field(default_factory=list)
    resource: str | None = None
    strategy: str = ""
    detail: str = ""
    detected_at: float | None = None
    status: str = "open"
    resolution: str = ""
    resolved_at: float | None = None
    workflow_id: str | None = None


class FacilityOut(_Out):
    """One facility as the hub knows it: its edge's status and how far the hub's view is."""

    id: str
    online: bool = False
    edge_seq: int = 0
    """Highest seq the edge says it has made durable (its status)."""
    applied_seq: int = 0
    """Highest contiguous seq the hub has applied."""
    lag: int = 0
    stale: bool = True
    """The edge is offline, or the hub's view lags it (reads may be old)."""
    last_event_at: float | None = None


class EventOut(_Out):
    """One event of a facility's log (the audit trail)."""

    facility: str
    seq: int
    hlc: int
    kind: str
    workflow_id: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class ChangeOut(_Out):
    """One entry of the hub's change feed (WebSocket and ``GET /api/v1/events``): ``token``
    orders the feed; a client passes the last one it saw to miss nothing."""

    token: str
    event: EventOut


class CommandOut(_Out):
    """A write the hub sent to an edge, and its fate."""

    command_id: str
    facility: str
    action: str
    args: dict[str, Any] = Field(default_factory=dict)
    consistency: Consistency = "eventual"
    state: CommandState = "pending"
    result: dict[str, Any] | None = None
    error: str | None = None
    who: str = ""
    reason: str = ""
    created_at: float = 0.0
    settled_at: float | None = None


class Page(_Out, Generic[T]):
    """A page of a list: ``count`` matches in all; ``next_cursor`` fetches the next page."""

    items: list[T]
    count: int
    next_cursor: str | None = None
