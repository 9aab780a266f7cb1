"""What the VDA 5050 master knows of one AGV (``AgvSession``) and the work it has for it.

A ``RobotStep`` is a step of the workflow core assigned to an AGV; it waits in the session's
queue until the AGV is free and under control, then runs as one order: a ``RunningOrder``
holds that order's plan, the last message sent and how far the AGV's states acknowledged it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

from edge_runtime.vda5050._order import ActionSpec, OrderPlan, PathNode
from topics import ProtocolError, vda_version_of

__all__ = [
    "SUPPORTED_VERSIONS",
    "AgvSession",
    "Connection",
    "RobotStep",
    "RunningOrder",
    "SentInstant",
    "answer_version",
]

Connection = Literal["ONLINE", "OFFLINE", "CONNECTIONBROKEN", "UNKNOWN"]
"""An AGV's ``connectionState`` as last heard (UNKNOWN before any)."""

SUPPORTED_VERSIONS = ("2.0.0", "2.1.0")
"""What the master speaks; an AGV on a later 2.x minor is answered in the newest of these."""

_TERMINAL = frozenset({"FINISHED", "FAILED"})


def answer_version(agv_version: str) -> str:
    """The version to answer an AGV in: its own 2.0/2.1, else our newest 2.x."""
    major, minor, _ = vda_version_of({"version": agv_version})
    if major != 2:
        raise ProtocolError("version", f"VDA 5050 {agv_version!r} is not a 2.x version")
    return "2.0.0" if minor == 0 else "2.1.0"


@dataclass(slots=True)
class RobotStep:
    """A robot step of the workflow core for one AGV: queued until the AGV is free, then
    carried out as one VDA 5050 order (``RunningOrder``)."""

    workflow_id: str
    step_id: str
    attempt: int
    goal: str | None
    """The map node to go to (the route is planned when the order is sent), or None."""
    path: tuple[PathNode, ...] | None
    """A route given by the caller, or None (then ``goal`` is set)."""
    actions: tuple[ActionSpec, ...]
    """Actions on the route's final node."""


@dataclass(slots=True)
class RunningOrder:
    """The order the AGV is given for ``job``, and how far the master has seen it get."""

    job: RobotStep
    plan: OrderPlan
    message: dict[str, Any]
    """Body of the last order message sent (resent unchanged until acknowledged)."""
    sent_at: float
    """When ``message`` was last sent (it is resent after ``resend_after_s`` unanswered)."""
    acked_update: int = -1
    """The highest ``orderUpdateId`` of ours the AGV's state has shown."""
    started: bool = False
    """Whether ``VdaStepStarted`` was reported."""
    progress_seq: int = -1
    """``lastNodeSequenceId`` of the last ``VdaStepProgress`` reported."""
    known_errors: frozenset[tuple[str, str]] = frozenset()
    """(errorType, description) of warnings already standing when the order was sent."""
    cancel_action_id: str | None = None
    """The ``cancelOrder`` instant action withdrawing this order, once sent."""


@dataclass(slots=True)
class SentInstant:
    """An instant action sent to the AGV and not answered yet: its answer is read from the
    AGV's states, and it is resent while no state shows it (``_instants``)."""

    action_type: str
    body: dict[str, Any]
    """The message without its header: resent unchanged, under a new ``headerId``."""
    sent_at: float
    """When it was last sent."""
    command_id: str | None = None
    """The core command it carries out (``Pause``, ``Resume``, ``Cancel``), if any."""
    order_id: str = ""
    """For a ``cancelOrder``: the order it withdraws."""
    header_ids: list[int] = field(default_factory=list)
    """Every ``headerId`` it went out under (a refusal may name the message by it)."""
    sends: int = 1
    """How often it was sent."""
    seen: bool = False
    """Whether a state listed it in ``actionStates`` (then it is never resent)."""


@dataclass(slots=True)
class AgvSession:
    """What the master knows about one AGV, and the step it is running."""

    manufacturer: str
    serial_number: str
    connection: Connection = "UNKNOWN"
    """Last ``connectionState`` heard (UNKNOWN before any)."""
    version: str | None = None
    """The AGV's own protocol version, from the headers of its messages."""
    state: dict[str, Any] | None = None
    """Its last ``state`` message."""
    state_at: float | None = None
    """When its last ``state`` (or ONLINE) arrived: liveness counts from there."""
    factsheet: dict[str, Any] | None = None
    """Its last ``factsheet`` message."""
    lost: bool = False
    """Offline, broken or silent: its steps were failed and it gets no orders."""
    active: RunningOrder | None = None
    """The order the AGV runs for us, if any."""
    queue: deque[RobotStep] = field(default_factory=deque)
    """Steps waiting for the AGV to be free."""
    header_ids: dict[str, int] = field(default_factory=dict)
    """Last ``headerId`` sent per topic."""
    safety: dict[str, str] = field(default_factory=dict)
    """Safety conditions now active (``e_stop``, ``field_violation``, ``operating_mode``)."""
    paused: bool = False
    """Its last state said ``paused``."""
    instants: dict[str, SentInstant] = field(default_factory=dict)
    """Instant actions sent and not answered yet, by ``actionId``."""

    @property
    def answer_version(self) -> str:
        """The version we write to this AGV (2.1.0 until it told us its own)."""
        return answer_version(self.version) if self.version else SUPPORTED_VERSIONS[-1]

    @property
    def busy(self) -> bool:
        """§6.6.2 (3): unfinished nodes or actions, or an order of ours still open."""
        if self.active is not None:
            return True
        if self.state is None:
            return True  # position unknown: no order can start trivially reachable
        if self.state.get("nodeStates"):
            return True
        return any(a.get("actionStatus") not in _TERMINAL for a in self.state["actionStates"])

    @property
    def controllable(self) -> bool:
        """Online, in automatic mode and not e-stopped: orders may be sent."""
        return self.connection == "ONLINE" and not self.lost and not self.safety

    def next_header_id(self, kind: str) -> int:
        """The ``headerId`` of the next message on topic ``kind`` (from 0, per topic)."""
        n = self.header_ids.get(kind, -1) + 1
        self.header_ids[kind] = n
        return n
