"""The facility's durable event log: group commit, reads by seq and by time, sync modes.

One store per facility and per process: RocksDB lets one process open a store read-write;
every other process opens it read-only, as a RocksDB *secondary* that can follow the writer
while it runs. ``_layout`` says what is on disk; ``EventStore`` (``_store``) adds snapshots
and backups to this log.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

import msgpack
from rocksdict import ColumnFamily, Rdict, RdictIter, WriteBatch, WriteOptions

from edge_runtime.core import Event
from edge_runtime.store._errors import StoreError, StoreOrderError
from edge_runtime.store._layout import (
    check_meta,
    open_rocksdb,
    seq_key,
    seq_of_key,
    stored_event,
    stored_payload,
)
from topics import ProtocolError, check_identifier, pack_edge_events

__all__ = ["EventLog", "SyncMode"]

SyncMode = Literal["batch", "interval", "none"]
_SYNC_MODES = ("batch", "interval", "none")
_READ_CHUNK = 1024


class EventLog:
    """The durable, contiguous event log of one facility (docs/design.md §4).

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
        create: bool = True,
        read_only: bool = False,
    ) -> None:
        if sync not in _SYNC_MODES:
            raise StoreError(f"sync must be one of {', '.join(_SYNC_MODES)}, not {sync!r}")
        if sync_interval_s < 0:
            raise StoreError(f"sync_interval_s must not be negative, not {sync_interval_s}")
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
        self._db, self._secondary_dir, families = open_rocksdb(
            self.path, read_only=read_only, create=create)
        self._cf: dict[str, Rdict] = {n: self._db.get_column_family(n) for n in families}
        self._handle: dict[str, ColumnFamily] = {
            n: self._db.get_column_family_handle(n) for n in families
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
            self.facility: str = check_meta(self._db, self.path, facility,
                                            read_only=read_only)
            """The facility this store belongs to."""
            self._last_seq, self._last_hlc = self._scan_tail()
        except BaseException:
            self.close()  # release the lock: a refused open leaves nothing held
            raise
        if sync == "interval" and not read_only and sync_interval_s > 0:
            # Without it, the last writes before a quiet spell would wait for the next append
            # to reach the disk; with it, a power loss costs at most one interval.
            self._syncer = threading.Thread(
                target=self._sync_loop, name=f"store-sync-{self.facility}", daemon=True
            )
            self._syncer.start()

    # -- the ends of the log -------------------------------------------------------------

    def _edge_key(self, family: str, last: bool = True) -> int | None:
        """The first or last seq key of a seq-keyed column family."""
        it: RdictIter = self._cf[family].iter()
        try:
            it.seek_to_last() if last else it.seek_to_first()
            return seq_of_key(it.key()) if it.valid() else None
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
        raw = self._cf["events"].get(seq_key(seq))
        if raw is None:
            raise StoreError(f"event {seq} is missing from {self.path}")
        return stored_event(raw)

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
        outbox: Mapping[bytes, bytes | None] | None = None,
        vda: Mapping[bytes, bytes | None] | None = None,
        inputs: Mapping[bytes, bytes] | None = None,
    ) -> list[bytes]:
        """Commit ``events`` (and terminal workflow records) in one WriteBatch: all or nothing.

        Returns what was stored of each event, in order: its ``edge/events`` payload, the
        bytes to stream (``topics.pack_edge_events``: packed, not validated; the shell checks
        an event with ``topics.check_edge_event`` before it gets here). ``events[0].seq``
        must be ``last_seq + 1`` and seqs contiguous, hlc never going back; otherwise
        ``StoreOrderError`` and nothing is written. A ``None`` record deletes it (a failed
        workflow that was recovered is no longer terminal). ``outbox``: commands sent to agents
        and not yet acknowledged, by key (``None`` deletes one: acknowledged), committed in the
        same batch. ``vda``: the VDA 5050 master's records that changed, by key (``None``
        deletes one), likewise: never ahead of the log, nor behind it. ``inputs``: the core
        inputs that made them (``--record-inputs``), by 8-byte counter key, likewise.
        """
        self._writable()
        first = self._last_seq + 1
        # Checked with list operations that run in C: this is the hot path of the edge.
        # (Comprehensions: Python 3.11 reads a slot faster than attrgetter's call does.)
        seqs = [e.seq for e in events]
        hlcs = [e.hlc for e in events]
        if seqs != list(range(first, first + len(seqs))) or (
            hlcs and (hlcs[0] < self._last_hlc or hlcs != sorted(hlcs))
        ):
            self._refuse_order(events)
        if not events and not workflow_records and not outbox and not vda and not inputs:
            return []
        try:
            payloads = pack_edge_events(events, self.facility)
        except ProtocolError as exc:  # msgpack cannot hold it, or a hub would refuse its size
            raise StoreError(f"cannot store the events: {exc}; nothing written") from None
        batch = WriteBatch(raw_mode=True)
        batch.set_default_column_family(self._handle["events"])
        deque(map(batch.put, map(seq_key, seqs), payloads), 0)  # the loop runs in C
        last = first + len(seqs) - 1
        if events:
            batch.put(b"last_seq", msgpack.packb(last), self._handle["meta"])
        for workflow_id, record in (workflow_records or {}).items():
            if record is None:
                batch.delete(workflow_id.encode(), self._handle["workflows"])
            else:
                batch.put(workflow_id.encode(), record, self._handle["workflows"])
        for family, changes in (("outbox", outbox), ("vda", vda), ("inputs", inputs)):
            if changes:
                handle = self._handle[family]
                for key, value in changes.items():
                    if value is None:
                        batch.delete(key, handle)
                    else:
                        batch.put(key, value, handle)
        # Inputs alone (no event acknowledged with them): unsynced; the next synced write
        # makes the WAL up to it durable, so they never fall behind an acknowledged event.
        self._write(batch, lazy=not (events or workflow_records or outbox or vda))
        if events:
            self._last_seq, self._last_hlc = last, hlcs[-1]
        return payloads

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

    def _write(self, batch: WriteBatch, lazy: bool = False) -> None:
        now = time.monotonic()
        sync = (not lazy and self.sync_mode == "batch") or (
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
        return self._last_seq

    def read(self, from_seq: int = 1, to_seq: int | None = None) -> Iterator[Event]:
        """Events ``from_seq`` .. ``to_seq`` (inclusive; default: to the end), in seq order.

        Reads in chunks, so no RocksDB iterator stays open while the caller holds the
        generator (an abandoned generator never blocks ``close``).
        """
        for chunk in self._chunks(from_seq, to_seq):
            yield from map(stored_event, chunk)

    def read_payloads(self, from_seq: int = 1, to_seq: int | None = None) -> Iterator[bytes]:
        """The ``edge/events`` payloads of events ``from_seq`` .. ``to_seq``, as stored.

        What ``append`` returned for them, byte for byte, without decoding; an event a
        schema-1 store kept in the compact form is packed on the way.
        """
        for chunk in self._chunks(from_seq, to_seq):
            for raw in chunk:
                yield stored_payload(raw, self.facility)

    def _chunks(self, from_seq: int, to_seq: int | None) -> Iterator[list[bytes]]:
        """The stored values from ``from_seq`` to ``to_seq``, a chunk at a time."""
        stop = self._last_seq if to_seq is None else min(to_seq, self._last_seq)
        seq = max(from_seq, 1)
        while seq <= stop:
            last, chunk = self._read_chunk(seq, min(stop, seq + _READ_CHUNK - 1))
            if not chunk:
                return
            yield chunk
            seq = last + 1

    def _read_chunk(self, first: int, last: int) -> tuple[int, list[bytes]]:
        """The values of seqs ``first`` .. ``last`` as stored, and the last seq among them."""
        if self._closed:
            raise StoreError(f"the event store at {self.path} is closed")
        out: list[bytes] = []
        read = first
        it: RdictIter = self._cf["events"].iter()
        try:
            it.seek(seq_key(first))
            end = seq_key(last)
            while it.valid():
                key = it.key()
                if key > end:
                    break
                out.append(it.value())
                read = seq_of_key(key)
                it.next()
        finally:
            del it
        return read, out

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

    def outbox(self) -> list[tuple[bytes, bytes]]:
        """Every command sent and not yet acknowledged (``append(outbox=...)``), by key."""
        return self._records("outbox")

    def vda_records(self) -> list[tuple[bytes, bytes]]:
        """The VDA 5050 master's records (``append(vda=...)``), by key."""
        return self._records("vda")

    def _records(self, family: str) -> list[tuple[bytes, bytes]]:
        cf = self._cf.get(family)
        if cf is None:
            return []
        return [(k, v) for k, v in cf.items() if isinstance(k, bytes) and isinstance(v, bytes)]

    def workflow_record(self, workflow_id: str) -> bytes | None:
        """The final record of a terminal workflow, if the store has one."""
        raw = self._cf["workflows"].get(workflow_id.encode())
        return None if raw is None else bytes(raw)

    # -- lifetime ----------------------------------------------------------------------

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

    def __enter__(self) -> Self:
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
        return (f"{type(self).__name__}({str(self.path)!r}, {self.facility!r}, {mode}, "
                f"last_seq={self._last_seq})")
