"""The hub's own RocksDB store: one column family per kind of record, written in synced
group commits (one ``WriteBatch`` per ingest round) by the hub's worker thread only.

Families (all keys bytes, ``\\0`` between parts, seqs and counters as 16 hex digits so they
sort): ``events`` (facility, seq) → the ``edge/events`` payload as received; ``workflows``
(facility, id) → ``WorkflowOut`` JSON; ``locator`` id → facility; ``agents`` and
``conflicts`` (facility, id) → JSON; ``facilities`` id → msgpack marks; ``snapshots``
facility → msgpack ``[seq, Core.snapshot()]``; ``commands`` id → ``CommandOut`` JSON;
``changes`` token → (facility, seq); ``index`` → empty values whose keys are the secondary
indexes (docs/hub.md, "Aggregation"); ``meta``: the change counter; ``dependencies``
(target facility, target, source facility, source) → a cross-facility dependency's JSON
(``_dependencies``); ``loans`` ``<kind>:<name>:<from facility>`` → a loan's JSON
(``_bookings``; the hub's own double-booking conflicts are in ``conflicts`` under ``*``).

RocksDB reads are safe from any thread, so API threads read here directly while the worker
writes; iterators are always deleted before the database closes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from rocksdict import Options, Rdict, WriteBatch, WriteOptions

__all__ = ["FAMILIES", "HubStore", "StoreBatch", "hexn", "key"]

FAMILIES = ("events", "workflows", "locator", "agents", "conflicts", "facilities",
            "snapshots", "commands", "changes", "index", "meta", "dependencies",
            "loans")


def hexn(n: int) -> bytes:
    """``n`` as 16 hex digits: sorts like the number."""
    return b"%016x" % n


def key(*parts: str | bytes) -> bytes:
    """Parts joined by ``\\0`` (identifiers never hold one)."""
    return b"\0".join([p if isinstance(p, bytes) else p.encode() for p in parts])  # a list:
    # join would build one from a generator anyway, slower (a hot path of every ingest round)


class StoreBatch:
    """Puts and deletes for one group commit, readable before it is written (``get``)."""

    def __init__(self, store: HubStore) -> None:
        self._store = store
        self.ops: dict[tuple[str, bytes], bytes | None] = {}

    def put(self, family: str, k: bytes, value: bytes) -> None:
        self.ops[(family, k)] = value

    def delete(self, family: str, k: bytes) -> None:
        self.ops[(family, k)] = None

    def get(self, family: str, k: bytes) -> bytes | None:
        """The value after this batch (pending ops first, then the store)."""
        if (family, k) in self.ops:
            return self.ops[(family, k)]
        return self._store.get(family, k)

    def __len__(self) -> int:
        return len(self.ops)


class HubStore:
    """The hub's RocksDB database (one process opens it read-write)."""

    def __init__(self, path: str | Path, *, sync: bool = True) -> None:
        """``sync=False``: commits are atomic but not synced to disk (a throwaway store,
        e.g. a virtual run's ``VirtualHub`` in a temporary directory)."""
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        opts = Options(raw_mode=True)
        opts.create_if_missing(True)
        opts.create_missing_column_families(True)
        try:
            self._db = Rdict(str(self.path), opts,
                             column_families={n: Options(raw_mode=True) for n in FAMILIES})
        except Exception as exc:  # rocksdict raises plain Exception with RocksDB's status
            if "lock" in str(exc).lower():
                raise RuntimeError(f"the hub store at {self.path} is open in another "
                                   "process; one hub per data directory") from None
            raise RuntimeError(f"cannot open the hub store at {self.path}: {exc}") from None
        self._cf = {n: self._db.get_column_family(n) for n in FAMILIES}
        self._handles = {n: self._db.get_column_family_handle(n) for n in FAMILIES}
        self._synced = WriteOptions()
        self._synced.sync = sync
        self.closed = False

    def batch(self) -> StoreBatch:
        return StoreBatch(self)

    def commit(self, batch: StoreBatch) -> None:
        """Write ``batch`` in one synced ``WriteBatch``: all of it is durable, or none."""
        if not batch.ops:
            return
        wb = WriteBatch(raw_mode=True)
        for (family, k), value in batch.ops.items():
            if value is None:
                wb.delete(k, self._handles[family])
            else:
                wb.put(k, value, self._handles[family])
        self._db.write(wb, self._synced)
        del wb

    def get(self, family: str, k: bytes) -> bytes | None:
        value = self._cf[family].get(k)
        return None if value is None else bytes(value)

    def scan(self, family: str, prefix: bytes, *, start: bytes | None = None,
             seek: bytes | None = None, stop: bytes | None = None,
             limit: int | None = None) -> Iterator[tuple[bytes, bytes]]:
        """``(key, value)`` of keys starting with ``prefix`` and below ``stop``, after
        ``start`` (exclusive: a cursor), else from ``seek`` (inclusive) or the prefix's
        first, in key order."""
        it = self._cf[family].iter()
        try:
            it.seek(start or seek or prefix)
            if start is not None and it.valid() and bytes(it.key()) == start:
                it.next()
            n = 0
            while it.valid() and (limit is None or n < limit):
                k = bytes(it.key())
                if not k.startswith(prefix) or (stop is not None and k >= stop):
                    break
                yield k, bytes(it.value())
                n += 1
                it.next()
        finally:
            del it

    def scan_back(self, family: str, prefix: bytes, *, before: bytes | None = None,
                  limit: int | None = None) -> Iterator[tuple[bytes, bytes]]:
        """``(key, value)`` of keys starting with ``prefix``, highest first: below
        ``before`` (exclusive: a cursor), else from the prefix's last."""
        it = self._cf[family].iter()
        try:
            it.seek_for_prev(before if before is not None else prefix + b"\xff")
            if before is not None and it.valid() and bytes(it.key()) == before:
                it.prev()
            n = 0
            while it.valid() and (limit is None or n < limit):
                k = bytes(it.key())
                if not k.startswith(prefix):
                    break
                yield k, bytes(it.value())
                n += 1
                it.prev()
        finally:
            del it

    def count(self, family: str, prefix: bytes, *, start: bytes | None = None,
              stop: bytes | None = None) -> int:
        """Keys with ``prefix`` in ``[start, stop)`` (index keys only: values are empty)."""
        it = self._cf[family].iter()
        n = 0
        try:
            it.seek(start or prefix)
            while it.valid():
                k = bytes(it.key())
                if not k.startswith(prefix) or (stop is not None and k >= stop):
                    break
                n += 1
                it.next()
        finally:
            del it
        return n

    def last_key(self, family: str) -> bytes | None:
        """The greatest key of ``family`` (the newest change token …)."""
        it = self._cf[family].iter()
        try:
            it.seek_to_last()
            return bytes(it.key()) if it.valid() else None
        finally:
            del it

    def size_bytes(self) -> int:
        """Bytes the store takes on disk."""
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        del self._cf, self._handles
        self._db.close()
