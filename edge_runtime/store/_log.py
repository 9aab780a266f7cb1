"""The facility's durable event log: RocksDB column families, group commit, snapshots.

One ``EventStore`` per facility and per process. RocksDB lets one process open a store
read-write; every other process opens it read-only (as a RocksDB *secondary*, which can follow
the writer while it runs). Layout, one column family per concept:

- ``events``: 8-byte big-endian ``seq`` → ``encode_event`` bytes (big-endian keys sort by seq);
- ``snapshots``: big-endian ``seq`` → the projection's snapshot bytes at that seq;
- ``meta``: schema version, facility, creation time, last seq (written with every batch);
- ``workflows``: workflow id → final projection record of a terminal workflow.
"""

from __future__ import annotations

import shutil
import struct
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Literal, NamedTuple

import msgpack
from rocksdict import (
    AccessType,
    Checkpoint,
    ColumnFamily,
    Options,
    Rdict,
    RdictIter,
    WriteBatch,
    WriteOptions,
)

from edge_runtime.core import Event, decode_event
from topics import ProtocolError, check_identifier

__all__ = [
    "SCHEMA_VERSION",
    "EventStore",
    "FacilityMismatch",
    "StoreError",
    "StoreLocked",
    "StoreOrderError",
    "StoreVersionError",
    "StoredSnapshot",
    "SyncMode",
]

SCHEMA_VERSION = 1
"""Layout version written into ``meta``; a store with a higher one is refused."""

SyncMode = Literal["batch", "interval", "none"]
_SYNC_MODES = ("batch", "interval", "none")
_COLUMN_FAMILIES = ("events", "snapshots", "meta", "workflows")
_KEY = struct.Struct(">Q")
_READ_CHUNK = 1024
# Same bytes as ``encode_event`` (a test holds them equal): the bound method saves a call
# per event on the hot path, which the store/raw RocksDB throughput ratio measures.
_pack = msgpack.Packer(use_bin_type=True).pack
_EVENT_FORMAT = 1


class StoreError(Exception):
    """The event store cannot do what was asked; nothing was written."""


class StoreLocked(StoreError):
    """Another process holds the store read-write."""


class StoreVersionError(StoreError):
    """The store was written by a newer schema version than this build reads."""


class FacilityMismatch(StoreError):
    """The store belongs to another facility."""


class StoreOrderError(StoreError):
    """Events out of order: seq not contiguous, or hlc going backwards."""


class StoredSnapshot(NamedTuple):
    """A projection snapshot as kept in the store."""

    seq: int
    """The last event the snapshot includes."""
    data: bytes
    """The projection's ``snapshot()`` bytes."""


def _key(seq: int) -> bytes:
    return _KEY.pack(seq)


def _seq(key: bytes) -> int:
    seq: int = _KEY.unpack(key)[0]
    return seq


class EventStore:
    """The durable, contiguous event log of one facility (DESIGN §4).

    ``sync`` decides when an ``append`` is forced to disk (see docs/store.md):
    ``"batch"`` every append (survives power loss), ``"interval"`` at most every
    ``sync_interval_s`` (a crash of the process loses nothing, a power loss at most that
    window), ``"none"`` never explicitly (survives a process crash only).
    """

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
        if sync not in _SYNC_MODES:
            raise StoreError(f"sync must be one of {', '.join(_SYNC_MODES)}, not {sync!r}")
        if sync_interval_s < 0:
            raise StoreError(f"sync_interval_s must not be negative, not {sync_interval_s}")
        if snapshot_every < 1 or keep_snapshots < 1:
            raise StoreError("snapshot_every and keep_snapshots must be at least 1")
        if facility is None and not read_only:
            raise StoreError("a facility is required to open a store read-write")
        if facility is not None:
            try:
                check_identifier(facility, "facility")
            except ProtocolError as exc:
                raise StoreError(str(exc)) from None
        self.path = Path(path)
        """Directory of the RocksDB store."""
        self.read_only = read_only
        """Opened as a RocksDB secondary: reads only, may follow a running writer."""
        self.sync_mode: SyncMode = sync
        """When appends are forced to disk."""
        self.sync_interval_s = sync_interval_s
        """For ``sync="interval"``: the longest time between two forced syncs."""
        self.snapshot_every = snapshot_every
        """``maybe_snapshot`` saves a snapshot once this many events passed the last one."""
        self.keep_snapshots = keep_snapshots
        """How many snapshots automatic pruning keeps."""
        self._secondary_dir: str | None = None
        self._db = self._open(create)
        self._cf: dict[str, Rdict] = {n: self._db.get_column_family(n) for n in _COLUMN_FAMILIES}
        self._handle: dict[str, ColumnFamily] = {
            n: self._db.get_column_family_handle(n) for n in _COLUMN_FAMILIES
        }
        self._closed = False
        self._wo_sync = WriteOptions()
        self._wo_sync.sync = True
        self._wo_nosync = WriteOptions()
        self._last_sync = time.monotonic()
        self._unsynced = False
        self._stop_syncer = threading.Event()
        self._syncer: threading.Thread | None = None
        try:
            self.facility: str = self._check_meta(facility)
            """The facility this store belongs to."""
            self._last_seq, self._last_hlc = self._scan_tail()
        except BaseException:
            self.close()  # release the lock: a refused open leaves nothing held
            raise
        last_snapshot = self._edge_key("snapshots")
        self._last_snapshot_seq = 0 if last_snapshot is None else last_snapshot
        if sync == "interval" and not read_only and sync_interval_s > 0:
            # Without it, the last writes before a quiet spell would wait for the next append
            # to reach the disk; with it, a power loss costs at most one interval.
            self._syncer = threading.Thread(
                target=self._sync_loop, name=f"store-sync-{self.facility}", daemon=True
            )
            self._syncer.start()

    # -- opening -----------------------------------------------------------------------

    def _open(self, create: bool) -> Rdict:
        opts = Options(raw_mode=True)
        families = {n: Options(raw_mode=True) for n in _COLUMN_FAMILIES}
        exists = (self.path / "CURRENT").exists()
        if not exists and (self.read_only or not create):
            raise StoreError(f"no event store at {self.path}")
        try:
            if self.read_only:
                missing = set(_COLUMN_FAMILIES) - set(Rdict.list_cf(str(self.path)))
                if missing:
                    raise StoreError(f"{self.path} is not a Fleetflow event store")
                # A secondary keeps every file open, so the writer's compactions cannot pull
                # an SST file from under it; its own info log goes to a private temp dir.
                opts.set_max_open_files(-1)
                self._secondary_dir = tempfile.mkdtemp(prefix="fleetflow-secondary-")
                db = Rdict(
                    str(self.path), opts, column_families=families,
                    access_type=AccessType.secondary(self._secondary_dir),
                )
                db.try_catch_up_with_primary()
                return db
            opts.create_if_missing(create)
            opts.create_missing_column_families(True)
            return Rdict(str(self.path), opts, column_families=families)
        except StoreError:
            self._drop_secondary_dir()
            raise
        except Exception as exc:  # rocksdict raises plain Exception with RocksDB's status
            self._drop_secondary_dir()
            if "lock" in str(exc).lower():
                raise StoreLocked(
                    f"the event store at {self.path} is already open read-write (by another "
                    "process, or another EventStore in this one); only one edge may open a "
                    "store read-write — open it with read_only=True (a RocksDB secondary) to "
                    "read or back it up while that edge runs"
                ) from None
            raise StoreError(f"cannot open the event store at {self.path}: {exc}") from None

    def _check_meta(self, facility: str | None) -> str:
        meta = self._cf["meta"]
        raw_version = meta.get(b"schema_version")
        if raw_version is None:
            if self.read_only:
                raise StoreError(f"{self.path} has no store metadata (never opened read-write?)")
            assert facility is not None
            batch = WriteBatch(raw_mode=True)
            batch.set_default_column_family(self._handle["meta"])
            batch.put(b"schema_version", msgpack.packb(SCHEMA_VERSION))
            batch.put(b"facility", facility.encode())
            batch.put(b"created", msgpack.packb(time.time()))
            batch.put(b"last_seq", msgpack.packb(0))
            self._db.write(batch, self._wo_sync)
            return facility
        version = msgpack.unpackb(raw_version)
        if version > SCHEMA_VERSION:
            raise StoreVersionError(
                f"the event store at {self.path} has schema version {version}; this build "
                f"reads schema version {SCHEMA_VERSION} and older — upgrade Fleetflow"
            )
        stored = bytes(meta.get(b"facility") or b"").decode()
        if facility is not None and stored != facility:
            raise FacilityMismatch(
                f"the event store at {self.path} belongs to facility {stored!r}, not {facility!r}"
            )
        return stored

    def _edge_key(self, family: str, last: bool = True) -> int | None:
        """The first or last seq key of a seq-keyed column family."""
        it: RdictIter = self._cf[family].iter()
        try:
            it.seek_to_last() if last else it.seek_to_first()
            return _seq(it.key()) if it.valid() else None
        finally:
            del it

    def _scan_tail(self) -> tuple[int, int]:
        last = self._edge_key("events") or 0
        # Written in the same batch as the events, so they can only differ if the store was
        # tampered with or half-copied: refuse rather than append after a hole.
        recorded = msgpack.unpackb(self._cf["meta"].get(b"last_seq") or msgpack.packb(0))
        if recorded != last:
            raise StoreError(
                f"the event store at {self.path} is inconsistent: its metadata says last seq "
                f"{recorded}, its log ends at {last}"
            )
        return (last, self._get(last).hlc) if last else (0, 0)

    def _get(self, seq: int) -> Event:
        raw = self._cf["events"].get(_key(seq))
        if raw is None:
            raise StoreError(f"event {seq} is missing from {self.path}")
        return decode_event(raw)

    # -- writing -----------------------------------------------------------------------

    def _writable(self) -> None:
        if self._closed:
            raise StoreError(f"the event store at {self.path} is closed")
        if self.read_only:
            raise StoreError(f"the event store at {self.path} is open read-only")

    def append(
        self,
        events: Sequence[Event],
        workflow_records: Mapping[str, bytes | None] | None = None,
    ) -> None:
        """Commit ``events`` (and terminal workflow records) in one WriteBatch: all or nothing.

        ``events[0].seq`` must be ``last_seq + 1`` and seqs contiguous, hlc never going back;
        otherwise ``StoreOrderError`` and nothing is written. A ``None`` record deletes it
        (a failed workflow that was recovered is no longer terminal).
        """
        self._writable()
        first = self._last_seq + 1
        # Checked with list operations that run in C: this is the hot path of the edge.
        seqs = [e.seq for e in events]
        hlcs = [e.hlc for e in events]
        if seqs != list(range(first, first + len(seqs))) or (
            hlcs and (hlcs[0] < self._last_hlc or hlcs != sorted(hlcs))
        ):
            self._refuse_order(events)
        if not events and not workflow_records:
            return
        try:
            values = [
                _pack([_EVENT_FORMAT, e.seq, e.hlc, e.kind, e.workflow_id, e.data])
                for e in events
            ]
        except (TypeError, ValueError, OverflowError) as exc:
            raise StoreError(f"an event does not encode: {exc}; nothing written") from None
        batch = WriteBatch(raw_mode=True)
        batch.set_default_column_family(self._handle["events"])
        put = batch.put
        for key, value in zip(map(_KEY.pack, seqs), values, strict=True):
            put(key, value)
        last = first + len(seqs) - 1
        if events:
            batch.put(b"last_seq", msgpack.packb(last), self._handle["meta"])
        for workflow_id, record in (workflow_records or {}).items():
            if record is None:
                batch.delete(workflow_id.encode(), self._handle["workflows"])
            else:
                batch.put(workflow_id.encode(), record, self._handle["workflows"])
        self._write(batch)
        if events:
            self._last_seq, self._last_hlc = last, hlcs[-1]

    def _refuse_order(self, events: Sequence[Event]) -> None:
        """Raise ``StoreOrderError`` naming the first event out of order."""
        expected, hlc = self._last_seq + 1, self._last_hlc
        for event in events:
            if event.seq != expected:
                raise StoreOrderError(
                    f"event seq {event.seq} is not contiguous: the log of {self.facility} "
                    f"expects seq {expected} next (last stored {self._last_seq}); nothing written"
                )
            if event.hlc < hlc:
                raise StoreOrderError(
                    f"event {event.seq} has hlc {event.hlc}, older than the previous event's "
                    f"{hlc}; the log's hlc never goes back; nothing written"
                )
            expected, hlc = expected + 1, event.hlc

    def _write(self, batch: WriteBatch) -> None:
        now = time.monotonic()
        sync = self.sync_mode == "batch" or (
            self.sync_mode == "interval" and now - self._last_sync >= self.sync_interval_s
        )
        try:
            self._db.write(batch, self._wo_sync if sync else self._wo_nosync)
        except Exception as exc:
            raise StoreError(f"write to the event store at {self.path} failed: {exc}") from None
        if sync:
            self._last_sync = now
        else:
            self._unsynced = True

    def sync(self) -> None:
        """Force every write so far to disk (``none`` mode: call it when the edge goes idle)."""
        self._writable()
        self._unsynced = False  # cleared first: a write racing with the fsync stays marked
        self._db.flush_wal(True)
        self._last_sync = time.monotonic()

    def _sync_loop(self) -> None:
        while not self._stop_syncer.wait(self.sync_interval_s):
            if self._unsynced and time.monotonic() - self._last_sync >= self.sync_interval_s:
                try:
                    self.sync()
                except Exception:  # closed under us, or a failing disk: appends will report it
                    return

    # -- reading -----------------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        """Seq of the newest committed event; 0 for an empty log."""
        return self._last_seq

    @property
    def first_seq(self) -> int:
        """Seq of the oldest stored event; 0 for an empty log."""
        first = self._edge_key("events", last=False)
        return 0 if first is None else first

    def catch_up(self) -> int:
        """Read-only stores: see the writer's newest commits. Returns ``last_seq``."""
        if self.read_only and not self._closed:
            self._db.try_catch_up_with_primary()
            self._last_seq, self._last_hlc = self._scan_tail()
            last_snapshot = self._edge_key("snapshots")
            self._last_snapshot_seq = 0 if last_snapshot is None else last_snapshot
        return self._last_seq

    def read(self, from_seq: int = 1, to_seq: int | None = None) -> Iterator[Event]:
        """Events ``from_seq`` .. ``to_seq`` (inclusive; default: to the end), in seq order.

        Reads in chunks, so no RocksDB iterator stays open while the caller holds the
        generator (an abandoned generator never blocks ``close``).
        """
        stop = self._last_seq if to_seq is None else min(to_seq, self._last_seq)
        seq = max(from_seq, 1)
        while seq <= stop:
            chunk = self._read_chunk(seq, min(stop, seq + _READ_CHUNK - 1))
            if not chunk:
                return
            yield from chunk
            seq = chunk[-1].seq + 1

    def _read_chunk(self, first: int, last: int) -> list[Event]:
        if self._closed:
            raise StoreError(f"the event store at {self.path} is closed")
        out: list[Event] = []
        it: RdictIter = self._cf["events"].iter()
        try:
            it.seek(_key(first))
            end = _key(last)
            while it.valid():
                key = it.key()
                if key > end:
                    break
                out.append(decode_event(it.value()))
                it.next()
        finally:
            del it
        return out

    def seq_at_hlc(self, hlc: int) -> int:
        """The last seq whose event has ``hlc`` at or before the given one; 0 if none.

        A binary search over seq: the log's hlc never goes back (``append`` enforces it).
        """
        lo, hi = self.first_seq, self._last_seq
        if lo == 0 or self._get(lo).hlc > hlc:
            return 0
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self._get(mid).hlc <= hlc:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def seq_at_time(self, ts: float) -> int:
        """The last seq committed at or before unix time ``ts`` (seconds); 0 if none."""
        return self.seq_at_hlc((int(ts * 1000) << 16) | 0xFFFF)

    def workflow_record(self, workflow_id: str) -> bytes | None:
        """The final record of a terminal workflow, if the store has one."""
        raw = self._cf["workflows"].get(workflow_id.encode())
        return None if raw is None else bytes(raw)

    # -- snapshots ---------------------------------------------------------------------

    def save_snapshot(self, seq: int, data: bytes) -> None:
        """Keep ``data`` as the projection's state after event ``seq``."""
        self._writable()
        if not 0 < seq <= self._last_seq:
            raise StoreError(
                f"cannot snapshot at seq {seq}: the log holds seq 1..{self._last_seq}"
            )
        batch = WriteBatch(raw_mode=True)
        batch.put(_key(seq), data, self._handle["snapshots"])
        self._write(batch)
        self._last_snapshot_seq = max(self._last_snapshot_seq, seq)

    def latest_snapshot(self) -> StoredSnapshot | None:
        """The newest snapshot, or ``None``."""
        return self.snapshot_at_or_before(self._last_seq) if self._last_seq else None

    def snapshot_at_or_before(self, seq: int) -> StoredSnapshot | None:
        """The newest snapshot taken at or before ``seq``, or ``None``."""
        it: RdictIter = self._cf["snapshots"].iter()
        try:
            it.seek_for_prev(_key(seq))
            return StoredSnapshot(_seq(it.key()), bytes(it.value())) if it.valid() else None
        finally:
            del it

    def snapshot_seqs(self) -> list[int]:
        """Seqs of every stored snapshot, oldest first."""
        return [_seq(k) for k in self._cf["snapshots"].keys() if isinstance(k, bytes)]  # noqa: SIM118

    def prune_snapshots(self, keep: int | None = None) -> int:
        """Delete all but the newest ``keep`` snapshots; returns how many were deleted."""
        self._writable()
        keep = self.keep_snapshots if keep is None else keep
        seqs = self.snapshot_seqs()
        doomed = seqs[: max(len(seqs) - keep, 0)]
        if doomed:
            batch = WriteBatch(raw_mode=True)
            batch.delete_range(_key(0), _key(doomed[-1] + 1), self._handle["snapshots"])
            self._write(batch)
        return len(doomed)

    def maybe_snapshot(self, last_seq: int, snapshot: bytes | None = None) -> bool:
        """Whether a snapshot is due at ``last_seq``; saves ``snapshot`` if given and due.

        Use ``edge_runtime.store.maybe_snapshot(store, projection)``, which only builds the
        snapshot bytes when one is due.
        """
        due = last_seq - self._last_snapshot_seq >= self.snapshot_every
        if due and snapshot is not None:
            self.save_snapshot(last_seq, snapshot)
            self.prune_snapshots()
        return due

    # -- backup and lifetime -----------------------------------------------------------

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
            column_families={n: Options(raw_mode=True) for n in _COLUMN_FAMILIES},
        )
        try:
            for name in _COLUMN_FAMILIES:
                handle = copy.get_column_family_handle(name)
                batch = WriteBatch(raw_mode=True)
                for key, value in self._cf[name].items():
                    batch.put(key, value, handle)
                    if len(batch) >= 10_000:
                        copy.write(batch)
                        batch = WriteBatch(raw_mode=True)
                copy.write(batch)
                del handle
            copy.flush()
        finally:
            copy.close()
        return self._last_seq

    def close(self) -> None:
        """Release the store (and its lock). Safe to call twice."""
        if getattr(self, "_closed", True):
            return
        self._stop_syncer.set()
        if self._syncer is not None:
            self._syncer.join()
        self._closed = True
        # Column-family handles must go before the database, or RocksDB asserts on close.
        self._handle.clear()
        for family in self._cf.values():
            family.close()
        self._cf.clear()
        self._db.close()
        self._drop_secondary_dir()

    def _drop_secondary_dir(self) -> None:
        if self._secondary_dir is not None:
            shutil.rmtree(self._secondary_dir, ignore_errors=True)
            self._secondary_dir = None

    def __enter__(self) -> EventStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "read-only" if self.read_only else f"sync={self.sync_mode}"
        return (f"EventStore({str(self.path)!r}, {self.facility!r}, {mode}, "
                f"last_seq={self._last_seq})")
