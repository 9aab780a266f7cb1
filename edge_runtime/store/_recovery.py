"""Rebuilding a projection from the store: restart, automatic snapshots, point-in-time.

Code against the small ``Projection`` protocol, which ``edge_runtime.core.Core`` meets: a
projection knows the last seq it applied, applies one event, and serialises itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import msgpack

from edge_runtime.core import Event
from edge_runtime.store._errors import StoreError
from edge_runtime.store._store import EventStore

__all__ = [
    "Projection", "maybe_snapshot", "recover", "replay", "replays_to_snapshot", "state_at",
]

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


def replays_to_snapshot(store: EventStore, empty: Callable[[], P]) -> tuple[int, str | None]:
    """Fold the whole log into ``empty()`` up to the newest snapshot and compare the bytes.

    The newest snapshot is what a projection was when it was saved — after a graceful stop,
    the live state of the edge that stopped (``CoreHost.snapshot_at_stop``), however many
    restarts from older snapshots it went through. Returns the seq checked and ``None`` when
    replay gives exactly those bytes, else what differs. ``StoreError`` if there is no
    snapshot or the log no longer starts at seq 1.
    """
    snap = store.latest_snapshot()
    if snap is None:
        raise StoreError(f"{store.path} holds no snapshot to check the log against")
    if store.first_seq > 1:
        raise StoreError(f"the log of {store.path} starts at seq {store.first_seq}, not 1")
    replayed = replay(store, empty(), snap.seq).snapshot()
    if replayed == snap.data:
        return snap.seq, None
    return snap.seq, f"replaying seq 1..{snap.seq} differs from its snapshot: " + _first_difference(
        msgpack.unpackb(replayed, raw=False, strict_map_key=False),
        msgpack.unpackb(snap.data, raw=False, strict_map_key=False), "state")


def _first_difference(replayed: Any, saved: Any, path: str) -> str:
    """Where two decoded snapshots first differ, for a person reading a failed check."""
    if isinstance(replayed, list) and isinstance(saved, list):
        for n, (a, b) in enumerate(zip(replayed, saved, strict=False)):
            if a != b:
                return _first_difference(a, b, f"{path}[{n}]")
        return f"{path}: {len(replayed)} items replayed, {len(saved)} saved"
    if isinstance(replayed, dict) and isinstance(saved, dict):
        for key in sorted(set(replayed) | set(saved), key=str):
            if replayed.get(key) != saved.get(key):
                return _first_difference(replayed.get(key), saved.get(key), f"{path}[{key!r}]")
    return f"{path}: replayed {str(replayed)[:200]}, saved {str(saved)[:200]}"


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
