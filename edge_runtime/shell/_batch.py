"""What one batch of the edge's loop produced so far, and the metric label of an input."""

from __future__ import annotations

from dataclasses import dataclass, field

from edge_runtime.core import Append
from edge_runtime.shell._intake import VdaInbound
from edge_runtime.shell._link import Received
from topics import Message

__all__ = ["Batch", "input_kind"]

Mark = tuple[int, int, int, int]


@dataclass(slots=True)
class Batch:
    """Events to commit, then messages to send, then broker acks — in the order they arose."""

    appends: list[Append] = field(default_factory=list)
    out: list[tuple[str, bytes | None, int, bool]] = field(default_factory=list)
    """(topic, payload, qos, retain), in the order the effects arose. An event's payload
    is ``None`` until the commit: ``store.append`` makes it, and returns it."""
    acks: list[Received] = field(default_factory=list)
    records: dict[str, bytes] = field(default_factory=dict)
    """Final records of workflows archived in this batch, committed with its events."""
    sent: list[tuple[str, str, str, bytes]] = field(default_factory=list)
    """Commands to agents (agent, command id, topic, payload): into the outbox at commit."""
    outbox: dict[bytes, bytes | None] = field(default_factory=dict)
    """Outbox changes to commit: key → entry (sent), or ``None`` (acknowledged)."""

    def mark(self) -> Mark:
        """Where the batch stands, to drop what an input adds if it fails (``rollback``)."""
        return len(self.appends), len(self.out), len(self.records), len(self.sent)

    def rollback(self, mark: Mark) -> None:
        """Drop everything added since ``mark``."""
        del self.appends[mark[0]:], self.out[mark[1]:], self.sent[mark[3]:]
        for workflow_id in list(self.records)[mark[2]:]:
            del self.records[workflow_id]

    def clear(self) -> None:
        self.appends.clear()
        self.out.clear()
        self.acks.clear()
        self.records.clear()
        self.sent.clear()
        self.outbox.clear()


_KINDS: dict[type, str] = {}
"""Metric label by input class, filled on first sight (``model_fields`` is slow per message)."""


def input_kind(inbound: object) -> str:
    """The ``kind`` label of an input in the edge's metrics."""
    if isinstance(inbound, VdaInbound):
        return f"vda_{inbound.kind}"
    kind = _KINDS.get(type(inbound))
    if kind is None:
        if isinstance(inbound, Message):
            name = str(type(inbound).model_fields["type"].default)
            kind = {"conn": "agent_conn", "state": "agent_state"}.get(name, name)
        else:
            kind = type(inbound).__name__
        _KINDS[type(inbound)] = kind
    return kind
