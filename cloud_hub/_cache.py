"""Read tiers, measured (docs/hub.md, "Cache tiers").

``memory``: an in-process LRU of ``WorkflowOut`` views, filled by the worker as it applies
events and by reads that missed; ``warm``: a point read of the record in the hub's RocksDB
store (block cache or page cache: no index involved); ``storage``: an indexed list read
(secondary index range + records). Every read records its latency in its tier; the
percentiles are over the latest ``_WINDOW`` reads of each.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from typing import Any

from cloud_hub._model import WorkflowOut

__all__ = ["TARGETS_MS", "Tiers", "WorkflowLru"]

TARGETS_MS = {"memory": 1.0, "warm": 10.0, "storage": 100.0}
"""The seed's targets for each tier (p99, milliseconds)."""
_WINDOW = 10_000


class WorkflowLru:
    """The memory tier: bounded, least recently used out first; one short lock."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[str, WorkflowOut] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, workflow_id: str) -> WorkflowOut | None:
        with self._lock:
            w = self._items.get(workflow_id)
            if w is not None:
                self._items.move_to_end(workflow_id)
            return w

    def put(self, w: WorkflowOut, *, newer_only: bool = False) -> None:
        """Keep ``w``; ``newer_only`` (a reader's fill): not over a newer view."""
        with self._lock:
            old = self._items.get(w.id)
            if newer_only and old is not None and old.seq >= w.seq:
                return
            self._items[w.id] = w
            self._items.move_to_end(w.id)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def update(self, w: WorkflowOut) -> None:
        """The worker's write-through: replace a cached view, or keep it if hot enough to
        be worth it (only cached views are replaced, so a burst does not flush the LRU)."""
        with self._lock:
            if w.id in self._items:
                self._items[w.id] = w

    def __len__(self) -> int:
        return len(self._items)


class _Tier:
    def __init__(self) -> None:
        self.hits = self.misses = 0
        self.latencies: deque[float] = deque(maxlen=_WINDOW)


class Tiers:
    """Hits, misses and latencies per tier (counters under one lock; cheap)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tiers = {name: _Tier() for name in TARGETS_MS}

    def record(self, tier: str, seconds: float, *, hit: bool = True) -> None:
        with self._lock:
            t = self._tiers[tier]
            if hit:
                t.hits += 1
            else:
                t.misses += 1
            t.latencies.append(seconds * 1000)

    def miss(self, tier: str) -> None:
        with self._lock:
            self._tiers[tier].misses += 1

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        with self._lock:
            snap = {n: (t.hits, t.misses, sorted(t.latencies)) for n, t in self._tiers.items()}
        for name, (hits, misses, lat) in snap.items():
            p99 = _pct(lat, 0.99)
            out[name] = {
                "hits": hits, "misses": misses, "p50_ms": _pct(lat, 0.50), "p99_ms": p99,
                "target_ms": TARGETS_MS[name],
                "meets_target": None if p99 is None else p99 <= TARGETS_MS[name],
            }
        out["memory"]["what"] = "in-process LRU of workflow views"
        out["warm"]["what"] = "RocksDB point read of the workflow record (block/page cache)"
        out["storage"]["what"] = "RocksDB secondary-index range read (list queries)"
        return out


def _pct(sorted_ms: list[float], q: float) -> float | None:
    if not sorted_ms:
        return None
    return round(sorted_ms[min(len(sorted_ms) - 1, int(q * len(sorted_ms)))], 4)
