"""The shell's timers: the core asks for them with ``SetTimer``/``CancelTimer`` effects."""

from __future__ import annotations

import heapq
from collections.abc import Iterator

__all__ = ["TimerHeap"]


class TimerHeap:
    """The core's timers: ``set`` replaces, ``cancel`` forgets, ``due`` pops what fell due.

    Timers fall due in the order of (time, order of their ``set``).

    >>> t = TimerHeap()
    >>> t.set("a", 5.0); t.set("b", 1.0); t.set("a", 3.0); t.cancel("b")
    >>> list(t.due(4.0)), t.next_at()
    (['a'], None)

    The core re-arms an agent's liveness timer, later each time, on every state message.
    Pushing a heap entry per re-arming left one live entry per agent under a pile of stale
    ones, all popped at once when an early timer fired: 190,000 of them stalled the edge
    for 200 ms in the benchmark. So a timer has at most one entry, never later than its
    deadline: moving the deadline later only records it, and the entry moves down when it
    reaches the top. Heap work per re-arming is O(1); the heap holds about one entry per
    armed timer.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, str]] = []
        self._live: dict[str, tuple[float, int]] = {}
        """Armed timers: id → (deadline, order of the ``set`` that armed it)."""
        self._queued: dict[str, tuple[float, int]] = {}
        """The heap entry standing for each id (its key is never later than the deadline)."""
        self._order = 0

    def set(self, timer_id: str, at: float) -> None:
        """Arm ``timer_id`` for ``at``, replacing an earlier arming."""
        self._order += 1
        key = (at, self._order)
        self._live[timer_id] = key
        queued = self._queued.get(timer_id)
        if queued is None or at < queued[0]:
            self._queued[timer_id] = key  # an older entry, if any, is now superseded
            heapq.heappush(self._heap, (at, self._order, timer_id))

    def cancel(self, timer_id: str) -> None:
        """Disarm ``timer_id`` (no-op if it is not armed)."""
        self._live.pop(timer_id, None)

    def _settle(self) -> None:
        """Make the top entry a live timer at its true deadline (or empty the heap)."""
        heap, live, queued = self._heap, self._live, self._queued
        while heap:
            at, order, timer_id = heap[0]
            if queued.get(timer_id) != (at, order):
                heapq.heappop(heap)  # superseded by an earlier entry of the same id
                continue
            key = live.get(timer_id)
            if key is None:
                heapq.heappop(heap)  # cancelled
                del queued[timer_id]
            elif key != (at, order):
                queued[timer_id] = key  # re-armed later: move the entry to the deadline
                heapq.heapreplace(heap, (key[0], key[1], timer_id))
            else:
                return

    def next_at(self) -> float | None:
        """When the next timer falls due, if any."""
        self._settle()
        return self._heap[0][0] if self._heap else None

    def due(self, now: float) -> Iterator[str]:
        """Pop and yield the ids of timers due at ``now``, earliest first."""
        while True:
            self._settle()
            if not self._heap or self._heap[0][0] > now:
                return
            _at, _order, timer_id = heapq.heappop(self._heap)
            del self._live[timer_id]
            del self._queued[timer_id]
            yield timer_id

    def __len__(self) -> int:
        return len(self._live)
