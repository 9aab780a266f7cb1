"""The edge's half of end-to-end delivery (docs/protocol.md, "Delivery").

Two duties, neither trusting a broker session:

- **acknowledging agents' events**: every agent event the batch took (or refused for good)
  is listed in one ``EventAck`` per agent, published after the batch's commit;
- **the command outbox**: every command sent to an agent is kept — durably, in the store's
  ``outbox`` family, committed with the events that caused it — and resent with backoff
  (and at once when the agent comes back online) until the agent's ``CommandAck`` for it
  arrives. A restarted edge loads the outbox and resends all of it.

Pure bookkeeping: the batch loop feeds it what happened and the time, and publishes what it
returns.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass

import msgpack

from topics import EventAck, agent_topic, encode

__all__ = ["Delivery", "outbox_key"]

FIRST_RESEND_S = 1.0
"""A command unacknowledged this long is sent again; the wait then doubles …"""
MAX_RESEND_S = 30.0
"""… up to this."""
MAX_EVENT_IDS = 4096
"""Most event ids one ``EventAck`` lists (its model's limit); more go in several."""


def outbox_key(agent_id: str, command_id: str) -> bytes:
    """Where a command waits in the outbox (identifiers hold no NUL)."""
    return f"{agent_id}\0{command_id}".encode()


@dataclass(slots=True)
class _Pending:
    topic: str
    payload: bytes
    due: float
    wait: float


class Delivery:
    """Event acknowledgements to agents, and the resend schedule of the command outbox."""

    def __init__(self, facility: str, incarnation: str = "") -> None:
        self.facility = facility
        self._pending: dict[bytes, _Pending] = {}
        self._by_agent: dict[str, dict[bytes, None]] = {}
        self._heap: list[tuple[float, int, bytes]] = []
        self._order = itertools.count()
        self._acked: dict[str, list[str]] = {}
        self._refused: dict[str, dict[str, str]] = {}
        self._ack_ids = itertools.count(1)
        # EventAck command ids stay unique across restarts (agents drop a repeated id).
        self._ack_prefix = f"{incarnation}-" if incarnation else ""

    @property
    def outstanding(self) -> int:
        """Commands sent and not yet acknowledged."""
        return len(self._pending)

    # -- agent events --------------------------------------------------------------------

    def took(self, agent_id: str, event_id: str) -> None:
        """The batch took (or already had) this event: acknowledge it after the commit."""
        self._acked.setdefault(agent_id, []).append(event_id)

    def refused(self, agent_id: str, event_id: str, reason: str) -> None:
        """The batch refused this event for good: tell the agent to stop resending it."""
        self._refused.setdefault(agent_id, {})[event_id] = reason[:1024]

    def event_acks(self, now: float) -> list[tuple[str, bytes]]:
        """One ``EventAck`` (topic, payload) per agent for what the batch took or refused;
        publish them only after the batch's commit."""
        out: list[tuple[str, bytes]] = []
        for agent_id in dict.fromkeys([*self._acked, *self._refused]):
            ids = self._acked.get(agent_id, [])
            refused = self._refused.get(agent_id, {})
            topic = agent_topic(self.facility, agent_id, "cmd")
            for start in range(0, max(len(ids), 1), MAX_EVENT_IDS):
                ack = EventAck.model_construct(
                    command_id=f"k{self._ack_prefix}{next(self._ack_ids)}", ts=now,
                    event_ids=ids[start:start + MAX_EVENT_IDS],
                    refused=refused if start == 0 else {},
                )
                out.append((topic, encode(ack)))
        self._acked.clear()
        self._refused.clear()
        return out

    # -- the command outbox --------------------------------------------------------------

    def sent(self, agent_id: str, command_id: str, topic: str, payload: bytes, now: float
             ) -> tuple[bytes, bytes]:
        """A command goes out now: keep it until acknowledged. Returns the outbox entry
        (key, value) to commit with the batch."""
        key = outbox_key(agent_id, command_id)
        self._keep(key, agent_id, topic, payload, now + FIRST_RESEND_S)
        return key, msgpack.packb([topic, payload], use_bin_type=True)

    def acknowledged(self, agent_id: str, command_id: str) -> bytes | None:
        """The agent acknowledged a command: the outbox key to delete, or ``None`` if it was
        not waiting (a repeated acknowledgement)."""
        key = outbox_key(agent_id, command_id)
        if self._pending.pop(key, None) is None:
            return None
        self._by_agent.get(agent_id, {}).pop(key, None)
        return key

    def online(self, agent_id: str, now: float) -> None:
        """The agent (re)connected: everything waiting for it is due now."""
        for key in self._by_agent.get(agent_id, ()):
            entry = self._pending[key]
            entry.due, entry.wait = now, FIRST_RESEND_S
            heapq.heappush(self._heap, (now, next(self._order), key))

    def due(self, now: float) -> list[tuple[str, bytes]]:
        """Commands to send again now (topic, payload), each rescheduled with backoff."""
        out: list[tuple[str, bytes]] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            at, _, key = heapq.heappop(heap)
            entry = self._pending.get(key)
            if entry is None or entry.due != at:
                continue  # acknowledged, or rescheduled since
            out.append((entry.topic, entry.payload))
            entry.wait = min(entry.wait * 2, MAX_RESEND_S)
            entry.due = now + entry.wait
            heapq.heappush(heap, (entry.due, next(self._order), key))
        return out

    def next_due(self) -> float | None:
        """When ``due`` has something next (``None``: nothing waits)."""
        while self._heap and self._heap[0][2] not in self._pending:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def load(self, items: list[tuple[bytes, bytes]], now: float) -> None:
        """The outbox a restarted edge found in its store: all of it is due now."""
        for key, value in items:
            topic, payload = msgpack.unpackb(value, raw=False)
            agent_id = key.split(b"\0", 1)[0].decode()
            self._keep(key, agent_id, topic, payload, now)

    def _keep(self, key: bytes, agent_id: str, topic: str, payload: bytes, due: float) -> None:
        self._pending[key] = _Pending(topic, payload, due, FIRST_RESEND_S)
        self._by_agent.setdefault(agent_id, {})[key] = None
        heapq.heappush(self._heap, (due, next(self._order), key))
