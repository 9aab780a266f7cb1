"""What the sans-IO core asks its shell to do (docs/design.md §3)."""

from __future__ import annotations

from dataclasses import dataclass

from edge_runtime.core._event import Event
from topics import Message

__all__ = ["Append", "Archive", "CancelTimer", "Effect", "Publish", "SetTimer"]


@dataclass(frozen=True, slots=True)
class Append:
    """Make ``event`` durable. The shell commits every Append of a batch in one WriteBatch."""

    event: Event


@dataclass(frozen=True, slots=True)
class Publish:
    """Send ``message`` on ``topic`` — only after the batch's events are durable."""

    topic: str
    message: Message
    qos: int = 1
    retain: bool = False


@dataclass(frozen=True, slots=True)
class SetTimer:
    """Call back with ``TimerFired(timer_id)`` at time ``at`` (replaces a timer of that id)."""

    timer_id: str
    at: float


@dataclass(frozen=True, slots=True)
class CancelTimer:
    """Forget the timer ``timer_id`` if it is armed."""

    timer_id: str


@dataclass(frozen=True, slots=True)
class Archive:
    """Store ``record`` as the final record of ``workflow_id``, in the same WriteBatch as the
    batch's events (``EventStore.append(..., workflow_records=...)``).

    The core returns it with the ``workflow_archived`` event that dropped the workflow from
    memory; ``record`` is ``encode_workflow_record`` bytes (``decode_workflow_record`` reads
    them back as a ``WorkflowView``).
    """

    workflow_id: str
    record: bytes


Effect = Append | Publish | SetTimer | CancelTimer | Archive
