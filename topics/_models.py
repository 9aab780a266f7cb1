"""Typed native messages (docs/design.md §8), as pydantic 2 models the REST API can reuse.

Every model is strict about what it accepts: unknown fields, NaN/Inf, over-long strings
and out-of-range numbers are refused. Identifiers go through ``check_identifier`` so that
whatever a model accepts can also stand in a topic.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from topics._base import (
    AgentKindName,
    Data,
    Identifier,
    IdentifierError,
    Message,
    Text,
    Timestamp,
    _AgentEventBase,
    _CommandBase,
    _StepEventBase,
)
from topics._coordination import (
    Award,
    Ballot,
    Bid,
    Cfp,
    Follow,
    SubStepAssigned,
    SubStepDone,
    Vote,
)

__all__ = [
    "AgentCommand",
    "AgentConn",
    "AgentEvent",
    "AgentKindName",
    "AgentState",
    "Assign",
    "Award",
    "Ballot",
    "Bid",
    "Cancel",
    "Cfp",
    "CommandAck",
    "EdgeEvent",
    "EdgeStatus",
    "ErrorReport",
    "EventAck",
    "Follow",
    "HubCommand",
    "Identifier",
    "IdentifierError",
    "Message",
    "Pause",
    "Resume",
    "StepAccepted",
    "StepDone",
    "StepFailed",
    "StepProgress",
    "StepStarted",
    "SubStepAssigned",
    "SubStepDone",
    "SyncArrival",
    "SyncRelease",
    "Vote",
]

# --- agent → edge ------------------------------------------------------------------------


class AgentConn(Message):
    """``agent/{id}/conn``: retained announcement; the offline form is also the agent's will."""

    type: Literal["conn"] = "conn"
    agent_id: Identifier
    online: bool
    kind: AgentKindName = "robot"
    capabilities: list[Identifier] = Field(default_factory=list, max_length=64)
    liveness_s: float = Field(default=10.0, gt=0, le=3600)
    """The agent promises a state message at least this often."""
    ts: Timestamp = 0.0
    bids: bool = True
    """It answers ``cfp`` with ``bid`` itself; ``false`` (VDA 5050 AGVs, simple devices):
    the edge bids on its behalf from the map, its battery and its work in hand."""


class AgentState(Message):
    """``agent/{id}/state``: periodic state (QoS 0)."""

    type: Literal["state"] = "state"
    agent_id: Identifier
    ts: Timestamp
    status: Literal["idle", "busy", "charging", "error", "paused"] = "idle"
    node: Identifier | None = None
    """Node of the facility map the agent is at (or last passed)."""
    x: float | None = Field(default=None, ge=-1e6, le=1e6)
    y: float | None = Field(default=None, ge=-1e6, le=1e6)
    battery: float | None = Field(default=None, ge=0, le=100)
    """State of charge in percent."""
    workflow_id: Identifier | None = None
    step_id: Identifier | None = None
    mode: Literal["automatic", "manual", "service"] = "automatic"
    e_stop: bool = False


class StepAccepted(_StepEventBase):
    """The agent took the assigned step."""

    type: Literal["step_accepted"] = "step_accepted"


class StepStarted(_StepEventBase):
    """The agent began the step's work."""

    type: Literal["step_started"] = "step_started"


class StepProgress(_StepEventBase):
    """Fraction of the step done, 0 to 1."""

    type: Literal["step_progress"] = "step_progress"
    progress: float = Field(ge=0, le=1)


class StepDone(_StepEventBase):
    """The step finished; ``outputs`` feed data-flow dependencies."""

    type: Literal["step_done"] = "step_done"
    outputs: Data = Field(default_factory=dict)


class StepFailed(_StepEventBase):
    """The step failed; ``error_type`` is matched against the retry policy."""

    type: Literal["step_failed"] = "step_failed"
    error_type: Identifier = "error"
    message: Text = ""
    retryable: bool = True


class SyncArrival(_StepEventBase):
    """The agent reached a sync point (barrier) and waits for its release."""

    type: Literal["sync_arrival"] = "sync_arrival"


class CommandAck(_AgentEventBase):
    """The agent's reply to an edge command — to every copy it receives, a resent one too:
    it applied it (``done``) or will not (``refused``, with a reason). The edge resends a
    command until this comes (docs/protocol.md, "Delivery")."""

    type: Literal["command_ack"] = "command_ack"
    command_id: Identifier
    outcome: Literal["done", "refused"] = "done"
    reason: Text = ""


AgentEvent = Annotated[
    Bid | StepAccepted | StepStarted | StepProgress | StepDone | StepFailed | SyncArrival
    | CommandAck | Vote | SubStepAssigned | SubStepDone,
    Field(discriminator="type"),
]
"""Anything an agent sends on ``agent/{id}/event``."""


# --- edge → agent ------------------------------------------------------------------------


class Assign(_CommandBase):
    """Do this step."""

    type: Literal["assign"] = "assign"
    workflow_id: Identifier
    step_id: Identifier
    attempt: int = Field(default=1, ge=1, le=1000)
    kind: AgentKindName
    action: Identifier | None = None
    """What to do, e.g. ``pick``, ``transport``, ``inspect``."""
    location: Identifier | None = None
    params: Data = Field(default_factory=dict)
    inputs: Data = Field(default_factory=dict)
    """Outputs of upstream steps (data flow)."""
    timeout_s: float | None = Field(default=None, gt=0, le=1e7)
    outputs: list[Identifier] = Field(default_factory=list, max_length=64)
    """Names ``step_done.outputs`` must contain (the template step's ``outputs``); a
    ``step_done`` without one of them fails the attempt as ``invalid_output``."""
    sync_point: Identifier | None = None
    """The sync step (same workflow) this step takes part in: after its ``step_done`` the
    agent goes there, sends ``sync_arrival`` with ``step_id`` = this id and waits for the
    ``sync_release``. ``None``: no barrier follows."""
    role: Identifier | None = None
    """Coalition steps (several agents at once): this member's role in the team. The member
    goes to ``location``, sends ``sync_arrival`` with ``step_id`` = this step, waits for the
    ``sync_release`` (every member is there), does its part, and reports ``step_done``."""
    team: list[Identifier] = Field(default_factory=list, max_length=16)
    """Coalition steps: every member of the team (agent ids, in role order); empty: none."""


class Pause(_CommandBase):
    """Hold the current step."""

    type: Literal["pause"] = "pause"
    workflow_id: Identifier | None = None
    step_id: Identifier | None = None


class Resume(_CommandBase):
    """Go on with the held step."""

    type: Literal["resume"] = "resume"
    workflow_id: Identifier | None = None
    step_id: Identifier | None = None


class Cancel(_CommandBase):
    """Abandon the step."""

    type: Literal["cancel"] = "cancel"
    workflow_id: Identifier
    step_id: Identifier
    reason: Text = ""


class SyncRelease(_CommandBase):
    """Every participant of the sync point arrived: go."""

    type: Literal["sync_release"] = "sync_release"
    workflow_id: Identifier
    step_id: Identifier


class EventAck(_CommandBase):
    """The edge made these events of the agent durable (``event_ids``, duplicates included)
    or refused them for good (``refused``: event id → reason): stop resending them. Sent once
    per batch the edge commits; not acknowledged itself (a lost one means a resend, which
    is acknowledged again)."""

    type: Literal["event_ack"] = "event_ack"
    event_ids: list[Identifier] = Field(default_factory=list, max_length=4096)
    refused: dict[Identifier, Text] = Field(default_factory=dict, max_length=4096)


AgentCommand = Annotated[
    Assign | Cfp | Award | Pause | Resume | Cancel | SyncRelease | EventAck | Ballot | Follow,
    Field(discriminator="type"),
]
"""Anything the edge sends on ``agent/{id}/cmd``."""


# --- edge ↔ hub --------------------------------------------------------------------------


class EdgeEvent(Message):
    """One entry of a facility's event log, as streamed on ``edge/events``."""

    type: Literal["edge_event"] = "edge_event"
    seq: int = Field(ge=1, lt=2**63)
    """Contiguous per facility, from 1."""
    hlc: int = Field(ge=0, lt=2**63)
    """Hybrid logical clock: physical milliseconds << 16 | logical counter."""
    facility: Identifier
    kind: Identifier
    """What happened (``workflow_created``, ``step_assigned`` …)."""
    workflow_id: Identifier | None = None
    data: Data = Field(default_factory=dict)


class HubCommand(Message):
    """``edge/cmd``: a command from the hub; the edge replies with an event carrying its id."""

    type: Literal["hub_command"] = "hub_command"
    command_id: Identifier
    action: Literal[
        "create_workflow",
        "cancel_workflow",
        "pause_workflow",
        "resume_workflow",
        "operator_action",
        "add_dependency",
        "replay",
        "checkpoint",
        "resolve_conflict",
        "set_coordination",
        "update_workflow",
        "recover",
        "list_checkpoints",
        "sync_arrival",
        "facility_stop",
        "facility_release",
        # the hub's verdict on an external workflow dependency (edge_runtime.core._workflow_deps)
        "resolve_dependency",
        # agents and resources lent between facilities (edge_runtime.core._lending)
        "lend_agent",
        "reclaim_agent",
        "lend_resource",
        "reclaim_resource",
        "release_booking",
    ]
    args: Data = Field(default_factory=dict)
    consistency: Literal["strong", "eventual", "bounded_staleness"] = "eventual"
    ts: Timestamp = 0.0


class EdgeStatus(Message):
    """``edge/status``: retained online/offline with the high-water seq; also the will."""

    type: Literal["edge_status"] = "edge_status"
    facility: Identifier
    online: bool
    high_water_seq: int = Field(default=0, ge=0, lt=2**63)
    ts: Timestamp = 0.0


class ErrorReport(Message):
    """``edge/errors``: an input the edge rejected, and why."""

    type: Literal["error_report"] = "error_report"
    reason: Identifier
    message: Text
    topic: Annotated[str, Field(max_length=512)] = ""
    agent_id: str | None = Field(default=None, max_length=64)
    command_id: str | None = Field(default=None, max_length=64)
    """The refused hub command's id (a hub stops resending it)."""
    ts: Timestamp = 0.0
