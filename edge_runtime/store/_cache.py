"""A bounded LRU of workflow projections above the store's ``workflows`` records.

The engine keeps only live workflows in memory; once one is archived (completed or cancelled
and no pending workflow waits for it), its final record goes into the store in the same
WriteBatch as the ``workflow_archived`` event, and the engine drops it. The API reads a
workflow through this cache: the engine's live projection (``live``) and the LRU of archived
records make the memory tier, the store's records the store tier; each tier counts its hits
and misses for the metrics.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

from edge_runtime.store._store import EventStore

__all__ = ["WorkflowCache"]

T = TypeVar("T")


class WorkflowCache(Generic[T]):
    """Hot workflow projections by id; thread-safe (the shell writes, the API reads)."""

    def __init__(
        self, store: EventStore, decode: Callable[[bytes], T], capacity: int = 10_000,
        *, live: Callable[[str], T | None] | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        """Most archived projections kept in memory; the least recently used goes first."""
        self._store = store
        self._decode = decode
        self._live = live
        """The engine's own view of a workflow still in memory (e.g. ``Core.workflow``).
        Called without the cache's lock: it must be safe from the reader's thread."""
        self._items: OrderedDict[str, T] = OrderedDict()
        self._lock = threading.Lock()
        self._counts = {"memory_hits": 0, "memory_misses": 0, "store_hits": 0, "store_misses": 0}

    def get(self, workflow_id: str) -> T | None:
        """The projection of ``workflow_id``: live from the engine, else an archived one from
        the LRU, else from the store's record (kept in the LRU), else ``None``."""
        if self._live is not None:
            # Live first: a live workflow changes, so it is never kept in the LRU.
            value = self._live(workflow_id)
            if value is not None:
                with self._lock:
                    self._counts["memory_hits"] += 1
                return value
        with self._lock:
            item = self._items.get(workflow_id)
            if item is not None:
                self._items.move_to_end(workflow_id)
                self._counts["memory_hits"] += 1
                return item
            self._counts["memory_misses"] += 1
        raw = self._store.workflow_record(workflow_id)
        with self._lock:
            if raw is None:
                self._counts["store_misses"] += 1
                return None
            self._counts["store_hits"] += 1
        value = self._decode(raw)
        self.put(workflow_id, value)
        return value

    def put(self, workflow_id: str, value: T) -> None:
        """Keep ``value`` as the newest projection of ``workflow_id``."""
        with self._lock:
            self._items[workflow_id] = value
            self._items.move_to_end(workflow_id)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)

    def invalidate(self, workflow_id: str) -> None:
        """Forget the in-memory copy (the next ``get`` reads the store)."""
        with self._lock:
            self._items.pop(workflow_id, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __contains__(self, workflow_id: object) -> bool:
        with self._lock:
            return workflow_id in self._items

    def stats(self) -> dict[str, dict[str, int]]:
        """Hits and misses per tier, plus the memory tier's size and capacity."""
        with self._lock:
            c = self._counts
            return {
                "memory": {
                    "hits": c["memory_hits"], "misses": c["memory_misses"],
                    "size": len(self._items), "capacity": self.capacity,
                },
                "store": {"hits": c["store_hits"], "misses": c["store_misses"]},
            }
