"""The shell's timers: the core asks for them with ``SetTimer``/``CancelTimer`` effects."""

from __future__ import annotations

import heapq
from collections.abc import Iterator

__all__ = ["TimerHeap"]


class TimerHeap:
    """The core's timers: ``set`` replaces, ``cancel`` forgets, ``due`` pops what fell due.

    >>> t = TimerHeap()
    >>> t.set("a", 5.0); t.set("b", 1.0); t.set("a", 3.0); t.cancel("b")
    >>> list(t.due(4.0)), t.next_at()
    (['a'], None)
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, str]] = []
        self._live: dict[str, int] = {}
        self._token = 0

    def set(self, timer_id: str, at: float) -> None:
        """Arm ``timer_id`` for ``at``, replacing an earlier arming."""
        self._token += 1
        self._live[timer_id] = self._token
        heapq.heappush(self._heap, (at, self._token, timer_id))

    def cancel(self, timer_id: str) -> None:
        """Disarm ``timer_id`` (no-op if it is not armed)."""
        self._live.pop(timer_id, None)

    def _drop_stale(self) -> None:
        while self._heap and self._live.get(self._heap[0][2]) != self._heap[0][1]:
            heapq.heappop(self._heap)

    def next_at(self) -> float | None:
        """When the next timer falls due, if any."""
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def due(self, now: float) -> Iterator[str]:
        """Pop and yield the ids of timers due at ``now``, earliest first."""
        while True:
            self._drop_stale()
            if not self._heap or self._heap[0][0] > now:
                return
            _at, _token, timer_id = heapq.heappop(self._heap)
            del self._live[timer_id]
            yield timer_id

    def __len__(self) -> int:
        return len(self._live)
