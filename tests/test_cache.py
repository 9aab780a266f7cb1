"""The workflow cache: LRU in memory above terminal records in the store, counted per tier."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_crash_writer import make_events

from edge_runtime.store import EventStore, WorkflowCache


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EventStore]:
    with EventStore(tmp_path / "store", "fac-a") as s:
        yield s


def test_tiers_count_hits_and_misses(store: EventStore) -> None:
    """Memory miss then store hit, then a memory hit; an unknown id misses both tiers."""
    store.append(make_events(1, 3, random.Random(1)), {"wf-1": b"done:wf-1"})
    cache: WorkflowCache[str] = WorkflowCache(store, bytes.decode, capacity=2)
    assert cache.get("wf-1") == "done:wf-1"
    assert cache.get("wf-1") == "done:wf-1"
    assert cache.get("wf-404") is None
    assert cache.stats() == {
        "memory": {"hits": 1, "misses": 2, "size": 1, "capacity": 2},
        "store": {"hits": 1, "misses": 1},
    }


def test_least_recently_used_goes_first(store: EventStore) -> None:
    """At capacity the least recently read projection is evicted, the recently read stays."""
    cache: WorkflowCache[int] = WorkflowCache(store, int, capacity=2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1
    cache.put("c", 3)
    assert "a" in cache and "c" in cache and "b" not in cache
    assert len(cache) == 2


def test_evicted_terminal_workflow_is_read_back_from_the_store(store: EventStore) -> None:
    """A terminal workflow dropped from memory is still served, from the store tier."""
    store.append(make_events(1, 1, random.Random(2)), {"wf-7": b"7"})
    cache: WorkflowCache[int] = WorkflowCache(store, int, capacity=1)
    cache.put("wf-7", 7)
    cache.put("wf-8", 8)
    assert "wf-7" not in cache
    assert cache.get("wf-7") == 7
    assert cache.stats()["store"]["hits"] == 1
    cache.invalidate("wf-7")
    assert "wf-7" not in cache


def test_capacity_must_be_positive(store: EventStore) -> None:
    """A cache of no capacity is refused."""
    with pytest.raises(ValueError, match="capacity"):
        WorkflowCache(store, int, capacity=0)
