"""A sender's outbox: what was sent and not yet acknowledged, and when to send it again.

Sans-IO and generic: simulated agents keep their events in one (keyed by ``event_id``,
until an ``EventAck``), the hub stand-in its hub commands (keyed by ``command_id``, until the
edge's ``command_reply``). docs/protocol.md, "Delivery", is the contract.

Each entry has its own schedule: sent again ``FIRST_RESEND_S`` after it was first sent, then
after waits doubling up to ``MAX_RESEND_S`` (1, 2, 4, 8, 16, 30, 30 … s), until it is
acknowledged. Entries due together come back in the order they were first sent.
``resend_all`` (the receiver came back online) makes everything due at once and restarts
every schedule at ``FIRST_RESEND_S``. The outbox holds at most ``limit`` entries: a new one
beyond that pushes out the oldest, which ``keep`` returns so the owner can count it.

>>> box: Outbox[str, str] = Outbox()
>>> box.keep("e1", "hello", now=0.0)
[]
>>> box.next_due(), box.due(0.5), box.due(1.0), box.next_due()
(1.0, [], ['hello'], 3.0)
>>> box.ack("e1"), len(box), box.next_due()
('hello', 0, None)
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["DEFAULT_LIMIT", "FIRST_RESEND_S", "MAX_RESEND_S", "Outbox"]

FIRST_RESEND_S = 1.0
"""An entry unacknowledged this long is sent again; the wait then doubles …"""
MAX_RESEND_S = 30.0
"""… up to this."""
DEFAULT_LIMIT = 10_000
"""Most entries an outbox holds; the oldest goes when a new one comes on top."""

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(slots=True)
class _Entry(Generic[V]):
    value: V
    order: int
    """Position in sending order (resends keep it)."""
    due: float
    wait: float


class Outbox(Generic[K, V]):
    """Unacknowledged messages by key, each with its resend schedule."""

    def __init__(self, *, first_s: float = FIRST_RESEND_S, max_s: float = MAX_RESEND_S,
                 limit: int = DEFAULT_LIMIT) -> None:
        if first_s <= 0 or max_s < first_s or limit < 1:
            raise ValueError("an outbox needs 0 < first_s <= max_s and a limit of at least 1")
        self.first_s, self.max_s, self.limit = first_s, max_s, limit
        self._entries: dict[K, _Entry[V]] = {}  # insertion order = sending order
        self._heap: list[tuple[float, int, K]] = []
        self._order = itertools.count()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def ids(self) -> list[K]:
        """The keys of everything waiting, oldest first (a copy: safe to ack while looping)."""
        return list(self._entries)

    def values(self) -> list[V]:
        """Everything waiting for an acknowledgement, oldest first."""
        return [e.value for e in self._entries.values()]

    def keep(self, key: K, value: V, now: float) -> list[tuple[K, V]]:
        """``value`` was just sent: keep it until ``ack(key)``. Returns the entries pushed
        out to stay within ``limit`` (oldest first; usually none). Keeping a key again
        replaces its value and restarts its schedule."""
        self._entries.pop(key, None)
        entry = _Entry(value, next(self._order), now + self.first_s, self.first_s)
        self._entries[key] = entry
        heapq.heappush(self._heap, (entry.due, entry.order, key))
        evicted: list[tuple[K, V]] = []
        while len(self._entries) > self.limit:
            old_key = next(iter(self._entries))
            evicted.append((old_key, self._entries.pop(old_key).value))
        self._compact()
        return evicted

    def get(self, key: K) -> V | None:
        """The value kept under ``key``, if it still waits."""
        entry = self._entries.get(key)
        return None if entry is None else entry.value

    def ack(self, key: K) -> V | None:
        """The receiver has ``key``: forget it. Returns its value, or ``None`` if it was not
        waiting (acknowledged before, or pushed out)."""
        entry = self._entries.pop(key, None)
        return None if entry is None else entry.value

    def due(self, now: float) -> list[V]:
        """What to send again now, in sending order; each is rescheduled with backoff."""
        found: list[tuple[int, K]] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            at, order, key = heapq.heappop(heap)
            entry = self._entries.get(key)
            if entry is not None and entry.order == order and entry.due == at:
                found.append((order, key))
            # else: acknowledged, replaced or rescheduled since that heap entry was made
        found.sort()
        out: list[V] = []
        for _, key in found:
            entry = self._entries[key]
            entry.wait = min(entry.wait * 2, self.max_s)
            entry.due = now + entry.wait
            heapq.heappush(heap, (entry.due, entry.order, key))
            out.append(entry.value)
        return out

    def resend_all(self, now: float) -> list[V]:
        """Everything waiting, in sending order, to send now (the receiver came back);
        every schedule restarts at ``first_s``."""
        due = now + self.first_s
        for entry in self._entries.values():
            entry.due, entry.wait = due, self.first_s
        self._heap = [(due, e.order, k) for k, e in self._entries.items()]
        heapq.heapify(self._heap)  # already ordered, so this is a linear check
        return self.values()

    def next_due(self) -> float | None:
        """When ``due`` has something next; ``None`` while nothing waits."""
        heap = self._heap
        while heap:
            at, order, key = heap[0]
            entry = self._entries.get(key)
            if entry is not None and entry.order == order and entry.due == at:
                return at
            heapq.heappop(heap)
        return None

    def _compact(self) -> None:
        # Acknowledged entries leave their heap entries behind until they come due; drop
        # them once they outnumber the live ones, so the heap stays O(len).
        if len(self._heap) > 2 * len(self._entries) + 64:
            self._heap = [(e.due, e.order, k) for k, e in self._entries.items()]
            heapq.heapify(self._heap)
