"""The store with the real ``edge_runtime.core.Core``: restart and point-in-time are exact."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_runtime.core import Append, Core, Event
from edge_runtime.store import EventStore, maybe_snapshot, recover, replay, state_at
from edge_runtime.templates import load_templates
from edge_runtime.testing import ScriptedFleet

TEMPLATES = load_templates(Path(__file__).resolve().parents[1] / "templates")
FACILITY = "hamburg-1"


def _restore(raw: bytes) -> Core:
    return Core.restore(raw, FACILITY, TEMPLATES)


def _empty() -> Core:
    return Core(FACILITY, TEMPLATES)


def _commit(store: EventStore, fleet: ScriptedFleet, done: int) -> int:
    """Append the events of every effect since ``done``, as the shell does; new ``done``."""
    events: list[Event] = [e.event for e in fleet.effects[done:] if isinstance(e, Append)]
    store.append(events)
    maybe_snapshot(store, fleet.core)
    return len(fleet.effects)


@pytest.fixture
def driven(tmp_path: Path) -> Iterator[tuple[EventStore, Core]]:
    """A store holding a few hundred real core events, with snapshots along the way."""
    store = EventStore(tmp_path / "store", FACILITY, snapshot_every=25, keep_snapshots=50)
    fleet = ScriptedFleet(_empty(), progress_steps=1)
    fleet.agent("picker-1", "human", ["picking"])
    fleet.agent("amr-1", "robot", ["tote_carrier"])
    fleet.agent("amr-2", "robot", ["tote_carrier"])
    done = _commit(store, fleet, 0)
    for i in range(12):
        fleet.create("pick_and_deliver", f"order-{i}", priority=i % 3)
        done = _commit(store, fleet, done)
        fleet.run(limit=3)
        done = _commit(store, fleet, done)
    fleet.run()
    _commit(store, fleet, done)
    assert store.last_seq == fleet.core.last_seq > 100
    try:
        yield store, fleet.core
    finally:
        store.close()


def test_recovery_with_the_real_core_equals_the_live_core(
    driven: tuple[EventStore, Core],
) -> None:
    """Snapshot + tail of real core events restores the live core's exact state."""
    store, live = driven
    assert len(store.snapshot_seqs()) >= 2
    recovered = recover(store, _restore, _empty)
    assert recovered.snapshot() == live.snapshot()
    assert replay(store, _empty()).snapshot() == live.snapshot()


def test_point_in_time_with_the_real_core(driven: tuple[EventStore, Core]) -> None:
    """state_at any seq equals a replay of the first seq events, whatever snapshot it uses."""
    store, _ = driven
    for seq in sorted({1, 24, 25, 26, store.last_seq // 2, store.last_seq - 1, store.last_seq}):
        at = state_at(store, _restore, _empty, seq=seq)
        assert at.last_seq == seq
        assert at.snapshot() == replay(store, _empty(), seq).snapshot()
