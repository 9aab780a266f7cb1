"""Rebuilding a projection from the store: restart, automatic snapshots, point-in-time.

Code against the small ``Projection`` protocol, which ``edge_runtime.core.Core`` meets: a
projection knows the last seq it applied, applies one event, and serialises itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol, TypeVar

from edge_runtime.core import Event
from edge_runtime.store._errors import StoreError
from edge_runtime.store._store import EventStore

__all__ = ["Projection", "maybe_snapshot", "recover", "replay", "state_at"]

_log = logging.getLogger(__name__)


class Projection(Protocol):
    """State built from events (docs/design.md §4)."""

    @property
    def last_seq(self) -> int:
        """Seq of the last event applied; 0 before any."""
        ...

    def apply(self, event: Event) -> object:
        """Fold one event into the state."""
        ...

    def snapshot(self) -> bytes:
        """The state as bytes that the matching ``restore`` reads back."""
        ...


P = TypeVar("P", bound=Projection)


def replay(store: EventStore, projection: P, to_seq: int | None = None) -> P:
    """Apply the stored events after ``projection.last_seq`` up to ``to_seq`` (default: all)."""
    for event in store.read(projection.last_seq + 1, to_seq):
        projection.apply(event)
    return projection


def _from_snapshot(
    store: EventStore, at_or_before: int, restore: Callable[[bytes], P], empty: Callable[[], P]
) -> P:
    """The newest usable snapshot at or before a seq; an unreadable one is skipped."""
    seq = at_or_before
    while seq > 0:
        snap = store.snapshot_at_or_before(seq)
        if snap is None:
            break
        try:
            projection = restore(snap.data)
        except Exception as exc:  # any failure to restore means "use an older one"
            _log.warning("snapshot at seq %d of %s does not restore (%s); trying an older one",
                         snap.seq, store.path, exc)
            seq = snap.seq - 1
            continue
        if projection.last_seq != snap.seq:
            raise StoreError(
                f"snapshot stored at seq {snap.seq} restores to last_seq {projection.last_seq}"
            )
        return projection
    return empty()


def recover(store: EventStore, restore: Callable[[bytes], P], empty: Callable[[], P]) -> P:
    """Restart: the newest snapshot, then a replay of the tail of the log."""
    return replay(store, _from_snapshot(store, store.last_seq, restore, empty))


def state_at(
    store: EventStore,
    restore: Callable[[bytes], P],
    empty: Callable[[], P],
    *,
    seq: int | None = None,
    ts: float | None = None,
    hlc: int | None = None,
) -> P:
    """The state as of one ``seq``, unix time ``ts`` or ``hlc`` (exactly one of them).

    Read-only: starts from the nearest snapshot at or before that point and replays up to
    it; nothing is written. Works on a read-only store while the edge runs.
    """
    if sum(x is not None for x in (seq, ts, hlc)) != 1:
        raise StoreError("state_at needs exactly one of seq, ts or hlc")
    if ts is not None:
        seq = store.seq_at_time(ts)
    elif hlc is not None:
        seq = store.seq_at_hlc(hlc)
    assert seq is not None
    if not 0 <= seq <= store.last_seq:
        raise StoreError(f"seq {seq} is outside the log of {store.facility} (0..{store.last_seq})")
    projection = _from_snapshot(store, seq, restore, empty)
    return replay(store, projection, seq)


def maybe_snapshot(store: EventStore, projection: Projection) -> bool:
    """Save a snapshot if ``snapshot_every`` events passed since the last; call after commits.

    The shell calls this after each committed batch, once the projection applied it (the
    store cannot do it inside ``append``: it does not hold the projection). Old snapshots
    beyond ``keep_snapshots`` are pruned. Returns whether a snapshot was saved.
    """
    if projection.last_seq > store.last_seq:
        raise StoreError(
            f"the projection is at seq {projection.last_seq}, ahead of the durable log "
            f"({store.last_seq}); snapshot only committed state"
        )
    if not store.snapshot_due(projection.last_seq):
        return False
    store.save_snapshot(projection.last_seq, projection.snapshot())
    store.prune_snapshots()
    return True
