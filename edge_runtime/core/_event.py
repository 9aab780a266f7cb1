"""The unit of the facility's log: an event, and its compact binary form.

The core makes events; the store keeps each as its ``edge/events`` payload
(``topics.pack_edge_events``), the very bytes the shell streams. A slotted dataclass rather
than a pydantic model: the core makes one per transition and validation there would cost
more than the transition itself (values come from the core, which already validated its
inputs). ``encode_event`` is the compact form stores of schema version 1 kept events in;
the store still reads it, and it is a canonical byte form to compare events by.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgpack

from topics import EdgeEvent, ProtocolError

__all__ = ["Event", "decode_event", "encode_event"]


@dataclass(frozen=True, slots=True)
class Event:
    """One change of the facility's state (docs/design.md §4)."""

    seq: int
    """Contiguous per facility, from 1."""
    hlc: int
    """Hybrid logical clock: physical ms << 16 | logical counter."""
    kind: str
    """What happened: ``workflow_created``, ``step_assigned`` …"""
    workflow_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def to_wire(self, facility: str) -> EdgeEvent:
        """The ``edge/events`` message for this event."""
        return EdgeEvent(
            seq=self.seq, hlc=self.hlc, facility=facility, kind=self.kind,
            workflow_id=self.workflow_id, data=self.data,
        )


_FORMAT = 1


def encode_event(event: Event) -> bytes:
    """msgpack ``[1, seq, hlc, kind, workflow_id, data]`` (format 1); map keys keep their order."""
    return msgpack.packb(
        [_FORMAT, event.seq, event.hlc, event.kind, event.workflow_id, event.data],
        use_bin_type=True,
    )


def decode_event(raw: bytes) -> Event:
    """Inverse of ``encode_event``; ``ProtocolError`` for anything else."""
    try:
        fmt, seq, hlc, kind, workflow_id, data = msgpack.unpackb(raw, raw=False)
    except Exception as exc:  # msgpack raises many types; all mean "not an event"
        raise ProtocolError("bad_event", f"stored event does not decode: {exc}") from None
    if fmt != _FORMAT:
        raise ProtocolError("bad_event", f"stored event has format {fmt}; this build reads 1")
    return Event(seq, hlc, kind, workflow_id, data)
