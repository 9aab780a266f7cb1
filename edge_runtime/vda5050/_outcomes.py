"""What the VDA 5050 master control hands back: messages to publish and step-level outcomes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

__all__ = [
    "VdaAgvLost",
    "VdaAgvOnline",
    "VdaInstantResult",
    "VdaMessage",
    "VdaOutcome",
    "VdaOutput",
    "VdaPaused",
    "VdaSafety",
    "VdaStepCancelled",
    "VdaStepDone",
    "VdaStepFailed",
    "VdaStepProgress",
    "VdaStepStarted",
]


class VdaMessage(NamedTuple):
    """Publish ``message`` (a JSON-ready dict, header included) on ``topic``.

    VDA 5050 §6.2: QoS 0, not retained, for ``order`` and ``instantActions``.
    """

    topic: str
    message: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _AgvOutcome:
    manufacturer: str
    serial_number: str


@dataclass(frozen=True, slots=True)
class _StepOutcome(_AgvOutcome):
    workflow_id: str
    step_id: str
    attempt: int
    order_id: str


@dataclass(frozen=True, slots=True)
class VdaStepStarted(_StepOutcome):
    """The AGV accepted the step's order (its state reports our ``orderId``)."""


@dataclass(frozen=True, slots=True)
class VdaStepProgress(_StepOutcome):
    """The AGV passed a node: ``progress`` is the share of the route's nodes traversed."""

    progress: float
    last_node_id: str


@dataclass(frozen=True, slots=True)
class VdaStepDone(_StepOutcome):
    """Every node traversed and every action FINISHED; ``outputs`` feed data flow."""

    outputs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class VdaStepFailed(_StepOutcome):
    """The step cannot finish on this AGV; ``error_type`` is matched by retry policies."""

    error_type: str
    message: str
    retryable: bool


@dataclass(frozen=True, slots=True)
class VdaStepCancelled(_StepOutcome):
    """The step was withdrawn and the AGV does not run it: a queued step dropped, our
    ``cancelOrder`` FINISHED, or the order ended unfinished without it."""


@dataclass(frozen=True, slots=True)
class VdaSafety(_AgvOutcome):
    """A safety condition began (``active``) or ended: e-stop, field violation, mode."""

    condition: Literal["e_stop", "field_violation", "operating_mode"]
    active: bool
    detail: str


@dataclass(frozen=True, slots=True)
class VdaPaused(_AgvOutcome):
    """The AGV reports ``paused`` changed (instant action or its own button)."""

    paused: bool


@dataclass(frozen=True, slots=True)
class VdaInstantResult(_AgvOutcome):
    """The AGV answered an instant action: FINISHED (``ok``), or FAILED or refused (an error
    naming its ``actionId`` or its message), or it never showed it (``reason`` says which).

    A ``cancelOrder`` that withdraws a step is answered for the step by ``VdaStepCancelled``
    (the AGV stopped) or ``VdaStepDone`` (it finished the order anyway); a refused one comes
    with ``ok`` False here, and the step goes on being tracked."""

    action_id: str
    action_type: str
    command_id: str | None
    """The core command it carried out (``Pause``, ``Resume``, ``Cancel``), if any."""
    ok: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class VdaAgvOnline(_AgvOutcome):
    """The AGV announced ``connectionState`` ONLINE."""

    version: str


@dataclass(frozen=True, slots=True)
class VdaAgvLost(_AgvOutcome):
    """OFFLINE, CONNECTIONBROKEN (its will) or no state within the liveness window."""

    reason: Literal["OFFLINE", "CONNECTIONBROKEN", "STATE_TIMEOUT"]


VdaOutcome = (
    VdaStepStarted
    | VdaStepProgress
    | VdaStepDone
    | VdaStepFailed
    | VdaStepCancelled
    | VdaSafety
    | VdaPaused
    | VdaInstantResult
    | VdaAgvOnline
    | VdaAgvLost
)
"""Anything the master reports upwards to the edge core."""

VdaOutput = list[VdaMessage | VdaOutcome]
"""Every master call returns messages to publish and outcomes, in the order they arose."""
