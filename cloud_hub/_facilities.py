"""What the hub knows of each facility's edge: online, its high-water seq, how far the
hub's view is, and since when it is behind (for ``bounded_staleness`` reads)."""

from __future__ import annotations

from dataclasses import dataclass

import msgpack

from cloud_hub._model import FacilityOut

__all__ = ["Marks"]


@dataclass(slots=True)
class Marks:
    """One facility's marks (the worker's own; API threads read ``FacilityOut`` copies)."""

    id: str
    online: bool = False
    edge_seq: int = 0
    applied: int = 0
    last_event_at: float | None = None
    fresh_at: float = 0.0
    """Last time the hub's view was known current (online, nothing missing)."""
    current: bool = False
    progress_at: float = 0.0
    """Last time ``applied`` moved (a lag without progress asks for a replay)."""
    replay_at: float = 0.0
    """Last ``replay`` request."""
    broken: str | None = None

    def refresh(self, applied: int, now: float) -> None:
        """Take the replica's applied seq; keep ``current``/``fresh_at`` true to ``now``."""
        if applied != self.applied:
            self.applied, self.progress_at = applied, now
        self.edge_seq = max(self.edge_seq, applied)
        current = self.online and self.applied >= self.edge_seq and self.broken is None
        if current or self.current:
            self.fresh_at = now  # it was current at least until now
        self.current = current

    def age(self, now: float) -> float:
        """Seconds the view may be behind its edge (0 while current)."""
        return 0.0 if self.current else max(0.0, now - self.fresh_at)

    def out(self) -> FacilityOut:
        return FacilityOut(id=self.id, online=self.online, edge_seq=self.edge_seq,
                           applied_seq=self.applied, lag=max(0, self.edge_seq - self.applied),
                           stale=not self.current, last_event_at=self.last_event_at)

    def pack(self) -> bytes:
        return msgpack.packb([self.applied, self.edge_seq, self.last_event_at])

    @classmethod
    def unpack(cls, facility: str, raw: bytes) -> Marks:
        applied, edge_seq, last_event_at = msgpack.unpackb(raw)
        return cls(facility, edge_seq=edge_seq, applied=applied, last_event_at=last_event_at)
