"""A simulated agent's half of end-to-end delivery (docs/protocol.md, "Delivery").

``AgentDelivery`` keeps every event the agent sends in an ``Outbox`` until an ``EventAck``
names it (acknowledged or refused for good), hands back what is due for a resend, and
remembers how the agent answered each command id, so that a redelivered command is
acknowledged again with the same outcome instead of being applied twice. Sans-IO, like the
behaviour that owns it (``agents_sim._native_behaviour``).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

from agents_sim._native_spec import Outgoing
from agents_sim._outbox import Outbox
from topics import EventAck

__all__ = ["AgentDelivery", "Answer", "DeliveryStats"]

SEEN_COMMANDS = 1024
"""How many command ids an agent remembers (the contract asks for a few hundred)."""
KEPT_REFUSALS = 256
"""How many refused event ids (and why) an agent keeps for inspection."""


@dataclass(frozen=True, slots=True)
class Answer:
    """How the agent answered a command id: its ``CommandAck`` outcome and reason, and the
    event id of the latest ``CommandAck`` it sent for it."""

    outcome: Literal["done", "refused"]
    reason: str
    ack_event_id: str


@dataclass(slots=True)
class DeliveryStats:
    """What happened to the events an agent sent (for tests, KPIs and logs)."""

    sent: int = 0
    """Events kept in the outbox (first sends)."""
    resent: int = 0
    """Sends of an event again: by backoff, or because the edge came back online."""
    acked: int = 0
    """Events an ``EventAck`` listed as taken."""
    refused: int = 0
    """Events an ``EventAck`` refused for good (dropped, see ``AgentDelivery.refused``)."""
    dropped: int = 0
    """Events pushed out of a full outbox unacknowledged (the edge was away too long)."""


class AgentDelivery:
    """The outbox of one agent's events and its memory of commands answered."""

    def __init__(self, limit: int) -> None:
        self.outbox: Outbox[str, Outgoing] = Outbox(limit=limit)
        """Events sent and not acknowledged yet, by event id."""
        self.stats = DeliveryStats()
        self.refused: OrderedDict[str, str] = OrderedDict()
        """The latest events the edge refused for good: event id → its reason."""
        self._answers: OrderedDict[str, Answer] = OrderedDict()

    def keep(self, out: list[Outgoing], now: float) -> list[Outgoing]:
        """Keep every event of ``out`` (sent for the first time now); returns ``out``."""
        for item in out:
            if item.channel != "event":
                continue  # state (periodic) and the retained conn need no acknowledgement
            self.stats.sent += 1
            event_id: str = getattr(item.message, "event_id", "")
            self.stats.dropped += len(self.outbox.keep(event_id, item, now))
        return out

    def on_event_ack(self, ack: EventAck) -> None:
        """Forget what the edge took or refused; remember why it refused."""
        for event_id in ack.event_ids:
            if self.outbox.ack(event_id) is not None:
                self.stats.acked += 1
        for event_id, reason in ack.refused.items():
            if self.outbox.ack(event_id) is not None:
                self.stats.refused += 1
                self.refused[event_id] = reason
                if len(self.refused) > KEPT_REFUSALS:
                    self.refused.popitem(last=False)

    def due(self, now: float) -> list[Outgoing]:
        """Events to send again now (backoff), oldest first."""
        out = self.outbox.due(now)
        self.stats.resent += len(out)
        return out

    def resend_all(self, now: float) -> list[Outgoing]:
        """Every unacknowledged event, oldest first, to send now."""
        out = self.outbox.resend_all(now)
        self.stats.resent += len(out)
        return out

    def next_due(self) -> float | None:
        """When ``due`` has something next."""
        return self.outbox.next_due()

    def answered(self, command_id: str) -> Answer | None:
        """How the agent answered ``command_id`` before, if it remembers it."""
        return self._answers.get(command_id)

    def remember(self, command_id: str, answer: Answer) -> None:
        """Record the answer to ``command_id`` (the oldest is forgotten past the limit)."""
        self._answers[command_id] = answer
        self._answers.move_to_end(command_id)
        if len(self._answers) > SEEN_COMMANDS:
            self._answers.popitem(last=False)
