"""A store on disk: its RocksDB column families, keys, values and metadata, and opening it.

One column family per concept:

- ``events``: 8-byte big-endian ``seq`` → the event (big-endian keys sort by seq). Schema 2
  keeps each event as its ``edge/events`` payload, the very bytes the edge streams
  (``topics.pack_edge_events``); schema 1 kept the compact ``edge_runtime.core.encode_event``
  form, which this build still reads (a value's first byte tells them apart);
- ``snapshots``: big-endian ``seq`` → the projection's snapshot bytes at that seq;
- ``meta``: schema version, facility, creation time, last seq (written with every batch);
- ``workflows``: workflow id → final projection record of a terminal workflow;
- ``outbox``: commands sent to agents and not yet acknowledged (the shell's ``Delivery``);
- ``vda``: the VDA 5050 master's records (its sessions with their running orders, its
  counters), written in the WriteBatch of the events of the batch that changed them;
- ``inputs``: with ``--record-inputs``, every input the core was given, in order, with its
  ``now`` (8-byte big-endian counter → ``_inputs`` record), written in the WriteBatch of the
  events they made; ``edge_runtime.replay`` feeds them to a core again.

``outbox``, ``vda`` and ``inputs`` came later without a schema change: they add data, and change the
meaning of none. A store opened read-write gets any family it lacks; a read-only open of an
older store works without them. A read-write open also opens the families this build does
not know (a later build's), so an older build can still run on a newer store's data.
"""

from __future__ import annotations

import shutil
import struct
import tempfile
import time
from pathlib import Path

import msgpack
from rocksdict import AccessType, Options, Rdict, WriteBatch, WriteOptions

from edge_runtime.core import Event, decode_event
from edge_runtime.store._errors import FacilityMismatch, StoreError, StoreLocked, StoreVersionError
from topics import pack_edge_events, unpack_edge_event

__all__ = [
    "COLUMN_FAMILIES",
    "SCHEMA_VERSION",
    "check_meta",
    "open_rocksdb",
    "seq_key",
    "seq_of_key",
    "stored_event",
    "stored_payload",
]

SCHEMA_VERSION = 2
"""Layout version written into ``meta``; a store with a higher one is refused.

1: events in the compact ``encode_event`` form. 2: events as their ``edge/events``
payloads. Opening a schema-1 store read-write marks it 2 (new events are payloads; the old
ones stay and read as before), so an older Fleetflow refuses it rather than misread it.
"""
COLUMN_FAMILIES = ("events", "snapshots", "meta", "workflows", "outbox", "vda", "inputs")
"""The store's RocksDB column families (``outbox``, ``vda`` and ``inputs`` came later: a
read-only open of an older store works without them)."""
_REQUIRED_FAMILIES = COLUMN_FAMILIES[:4]
_KEY = struct.Struct(">Q")
_COMPACT_HEAD = 0x96
"""First byte of a schema-1 value (a 6-item msgpack array); a payload starts with 0x93."""

seq_key = _KEY.pack
"""The 8-byte big-endian key of a seq."""


def seq_of_key(key: bytes) -> int:
    """The seq a key stands for."""
    seq: int = _KEY.unpack(key)[0]
    return seq


def stored_event(raw: bytes) -> Event:
    """The event an ``events`` value holds, in either schema's form."""
    if raw[0] == _COMPACT_HEAD:
        return decode_event(raw)
    seq, hlc, _facility, kind, workflow_id, data = unpack_edge_event(raw)
    return Event(seq, hlc, kind, workflow_id, data)


def stored_payload(raw: bytes, facility: str) -> bytes:
    """The ``edge/events`` payload of an ``events`` value: itself, or a schema-1 one packed."""
    if raw[0] == _COMPACT_HEAD:
        return pack_edge_events([decode_event(raw)], facility)[0]
    return raw


def open_rocksdb(
    path: Path, *, read_only: bool, create: bool,
) -> tuple[Rdict, str | None, tuple[str, ...]]:
    """Open (or create) the RocksDB directory of a store: the database, for a read-only one
    the private directory of its secondary instance (the caller removes it on close), and
    the column families opened."""
    opts = Options(raw_mode=True)
    families = {n: Options(raw_mode=True) for n in COLUMN_FAMILIES}
    if not (path / "CURRENT").exists() and (read_only or not create):
        raise StoreError(f"no event store at {path}")
    secondary: str | None = None
    try:
        if read_only:
            existing = set(Rdict.list_cf(str(path)))
            if set(_REQUIRED_FAMILIES) - existing:
                raise StoreError(f"{path} is not a Fleetflow event store")
            families = {n: o for n, o in families.items() if n in existing}
            # A secondary keeps every file open, so the writer's compactions cannot pull an
            # SST file from under it; its own info log goes to a private temp dir.
            opts.set_max_open_files(-1)
            secondary = tempfile.mkdtemp(prefix="fleetflow-secondary-")
            db = Rdict(str(path), opts, column_families=families,
                       access_type=AccessType.secondary(secondary))
            db.try_catch_up_with_primary()
            return db, secondary, tuple(families)
        opts.create_if_missing(create)
        opts.create_missing_column_families(True)
        if (path / "CURRENT").exists():
            # RocksDB opens a database read-write only with every family it has: open those
            # of a later build too (left alone), so that its additions do not lock us out.
            for name in Rdict.list_cf(str(path)):
                if name != "default":
                    families.setdefault(name, Options(raw_mode=True))
        return Rdict(str(path), opts, column_families=families), None, COLUMN_FAMILIES
    except Exception as exc:  # rocksdict raises plain Exception with RocksDB's status
        if secondary is not None:
            shutil.rmtree(secondary, ignore_errors=True)
        if isinstance(exc, StoreError):
            raise
        if "lock" in str(exc).lower():
            raise StoreLocked(
                f"the event store at {path} is already open read-write (by another "
                "process, or another EventStore in this one); only one edge may open a "
                "store read-write — open it with read_only=True (a RocksDB secondary) to "
                "read or back it up while that edge runs"
            ) from None
        raise StoreError(f"cannot open the event store at {path}: {exc}") from None


def check_meta(db: Rdict, path: Path, facility: str | None, *, read_only: bool) -> str:
    """The facility of an open store, after checking its metadata (written if it has none).

    Refuses a newer schema (``StoreVersionError``) or another facility
    (``FacilityMismatch``); a read-write open of an older schema marks it current.
    """
    meta = db.get_column_family("meta")
    handle = db.get_column_family_handle("meta")
    synced = WriteOptions()
    synced.sync = True
    batch = WriteBatch(raw_mode=True)
    batch.set_default_column_family(handle)
    try:
        raw_version = meta.get(b"schema_version")
        if raw_version is None:
            if read_only:
                raise StoreError(f"{path} has no store metadata (never opened read-write?)")
            assert facility is not None
            batch.put(b"schema_version", msgpack.packb(SCHEMA_VERSION))
            batch.put(b"facility", facility.encode())
            batch.put(b"created", msgpack.packb(time.time()))
            batch.put(b"last_seq", msgpack.packb(0))
            db.write(batch, synced)
            return facility
        version = msgpack.unpackb(raw_version)
        if version > SCHEMA_VERSION:
            raise StoreVersionError(
                f"the event store at {path} has schema version {version}; this build "
                f"reads schema version {SCHEMA_VERSION} and older — upgrade Fleetflow"
            )
        stored = bytes(meta.get(b"facility") or b"").decode()
        if facility is not None and stored != facility:
            raise FacilityMismatch(
                f"the event store at {path} belongs to facility {stored!r}, not {facility!r}"
            )
        if version < SCHEMA_VERSION and not read_only:
            batch.put(b"schema_version", msgpack.packb(SCHEMA_VERSION))
            db.write(batch, synced)
        return stored
    finally:
        del batch, handle, meta  # they must go before the database closes, or RocksDB asserts
