"""``EventStore``: the event log, plus snapshots of the projection and whole-store backups."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from rocksdict import Checkpoint, Options, Rdict, RdictIter, WriteBatch

from edge_runtime.store._errors import StoreError
from edge_runtime.store._inputs import RecordedInput, decode_input
from edge_runtime.store._layout import COLUMN_FAMILIES, seq_key, seq_of_key
from edge_runtime.store._log import EventLog, SyncMode

__all__ = ["EventStore", "StoredSnapshot"]

_COPY_BATCH = 10_000
"""Entries per WriteBatch of a logical backup copy."""


class StoredSnapshot(NamedTuple):
    """A projection snapshot as kept in the store."""

    seq: int
    """The last event the snapshot includes."""
    data: bytes
    """The projection's ``snapshot()`` bytes."""


class EventStore(EventLog):
    """The facility's ``EventLog`` (see it for ``sync``), with its snapshots and backups."""

    def __init__(
        self,
        path: str | Path,
        facility: str | None,
        *,
        sync: SyncMode = "batch",
        sync_interval_s: float = 0.05,
        snapshot_every: int = 10_000,
        keep_snapshots: int = 3,
        create: bool = True,
        read_only: bool = False,
    ) -> None:
        if snapshot_every < 1 or keep_snapshots < 1:
            raise StoreError("snapshot_every and keep_snapshots must be at least 1")
        self.snapshot_every = snapshot_every
        """``maybe_snapshot`` saves a snapshot once this many events passed the last one."""
        self.keep_snapshots = keep_snapshots
        """How many snapshots automatic pruning keeps."""
        super().__init__(path, facility, sync=sync, sync_interval_s=sync_interval_s,
                         create=create, read_only=read_only)
        self._last_snapshot_seq = self._edge_key("snapshots") or 0

    def catch_up(self) -> int:
        """Read-only stores: see the writer's newest commits. Returns ``last_seq``."""
        last = super().catch_up()
        if self.read_only and not self._closed:
            self._last_snapshot_seq = self._edge_key("snapshots") or 0
        return last

    # -- snapshots ---------------------------------------------------------------------

    def save_snapshot(self, seq: int, data: bytes) -> None:
        """Keep ``data`` as the projection's state after event ``seq``."""
        self._writable()
        if not 0 < seq <= self._last_seq:
            raise StoreError(
                f"cannot snapshot at seq {seq}: the log holds seq 1..{self._last_seq}"
            )
        batch = WriteBatch(raw_mode=True)
        batch.put(seq_key(seq), data, self._handle["snapshots"])
        self._write(batch)
        self._last_snapshot_seq = max(self._last_snapshot_seq, seq)
        # The memtables hold what was written since the last flush; RocksDB's 64 MiB per
        # family took an edge ~40 min of a soak's load to fill, its memory climbing all the
        # while. A snapshot is the edge's checkpoint: flushing there bounds them by the
        # events between two snapshots and keeps bursts (which do not snapshot) as fast.
        for family in self._cf.values():
            family.flush(True)

    def latest_snapshot(self) -> StoredSnapshot | None:
        """The newest snapshot, or ``None``."""
        return self.snapshot_at_or_before(self._last_seq) if self._last_seq else None

    def snapshot_at_or_before(self, seq: int) -> StoredSnapshot | None:
        """The newest snapshot taken at or before ``seq``, or ``None``."""
        it: RdictIter = self._cf["snapshots"].iter()
        try:
            it.seek_for_prev(seq_key(seq))
            return StoredSnapshot(seq_of_key(it.key()), bytes(it.value())) if it.valid() else None
        finally:
            del it

    def snapshot_seqs(self) -> list[int]:
        """Seqs of every stored snapshot, oldest first."""
        return [seq_of_key(k) for k in self._cf["snapshots"].keys() if isinstance(k, bytes)]  # noqa: SIM118

    def prune_snapshots(self, keep: int | None = None) -> int:
        """Delete all but the newest ``keep`` snapshots; returns how many were deleted."""
        self._writable()
        keep = self.keep_snapshots if keep is None else keep
        seqs = self.snapshot_seqs()
        doomed = seqs[: max(len(seqs) - keep, 0)]
        if doomed:
            batch = WriteBatch(raw_mode=True)
            batch.delete_range(seq_key(0), seq_key(doomed[-1] + 1), self._handle["snapshots"])
            self._write(batch)
        return len(doomed)

    def snapshot_due(self, last_seq: int) -> bool:
        """Whether ``snapshot_every`` events passed between the last snapshot and ``last_seq``.

        ``edge_runtime.store.maybe_snapshot(store, projection)`` asks this after each
        commit, and only builds the snapshot bytes when one is due.
        """
        return last_seq - self._last_snapshot_seq >= self.snapshot_every

    # -- recorded inputs (``--record-inputs``) ------------------------------------------

    def input_count(self) -> int:
        """How many core inputs (and boot records) the store recorded; 0 for none (also for
        a store an older build wrote, which has no ``inputs`` family)."""
        if "inputs" not in self._cf:
            return 0
        last = self._edge_key("inputs")
        return 0 if last is None else last + 1

    def recorded_inputs(self, start: int = 0) -> Iterator[RecordedInput]:
        """The recorded core inputs from index ``start``, in order, read in chunks (no
        RocksDB iterator stays open while the caller holds the generator)."""
        if "inputs" not in self._cf:
            return
        index = start
        while True:
            chunk: list[tuple[int, bytes]] = []
            it: RdictIter = self._cf["inputs"].iter()
            try:
                it.seek(seq_key(index))
                while it.valid() and len(chunk) < _COPY_BATCH:
                    chunk.append((seq_of_key(it.key()), bytes(it.value())))
                    it.next()
            finally:
                del it
            if not chunk:
                return
            for at, raw in chunk:
                yield decode_input(at, raw)
            index = chunk[-1][0] + 1

    # -- backup ------------------------------------------------------------------------

    def backup(self, dest: str | Path) -> int:
        """Copy the store to a new directory ``dest``; returns the last seq it holds.

        Read-write: a RocksDB checkpoint (hard links where possible). Read-only: a
        consistent logical copy of the secondary's view, because a checkpoint taken from
        a read-only or secondary instance leaves out what is still only in the writer's WAL.
        """
        if self._closed:
            raise StoreError(f"the event store at {self.path} is closed")
        target = Path(dest)
        if target.exists():
            raise StoreError(f"backup destination {target} already exists")
        if not self.read_only:
            Checkpoint(self._db).create_checkpoint(str(target))
            return self._last_seq
        self.catch_up()
        opts = Options(raw_mode=True)
        opts.create_if_missing(True)
        opts.create_missing_column_families(True)
        copy = Rdict(
            str(target), opts,
            column_families={n: Options(raw_mode=True) for n in COLUMN_FAMILIES},
        )
        try:
            for name in COLUMN_FAMILIES:
                if name not in self._cf:
                    continue  # a family an older store lacks (the copy has it, empty)
                handle = copy.get_column_family_handle(name)
                batch = WriteBatch(raw_mode=True)
                for key, value in self._cf[name].items():
                    batch.put(key, value, handle)
                    if len(batch) >= _COPY_BATCH:
                        copy.write(batch)
                        batch = WriteBatch(raw_mode=True)
                copy.write(batch)
                del handle
            copy.flush()
        finally:
            copy.close()
        return self._last_seq
