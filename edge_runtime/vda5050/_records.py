"""What the VDA 5050 master knows, as durable records (docs/decisions.md, "The VDA 5050
master's state is a record").

``MasterState`` holds the master's sessions (one ``AgvSession`` per AGV: connection,
version, last state and factsheet, the running order with its plan and message, queued
steps, header ids, safety, pause, instant actions awaiting an answer) and its counters (the
numbers in every ``orderId`` and ``actionId``, never repeated, across restarts too). It
notes which records changed: ``changed()`` gives them as bytes for the edge's store, which
commits them in the WriteBatch of the batch's events, and ``load()`` reads them back when
the edge starts.

A change is *material* (``urgent``: the shell commits even a batch without events for it)
when the master sent a message, reported an outcome, or was told something by the core or
by an AGV's connection or factsheet. A ``state`` that changes nothing else (a new position,
a new timestamp) only refreshes the session's last state: that is written with the next
commit, and costs no commit of its own, so AGVs reporting at 10 Hz do not make the edge
write at 10 Hz. Whatever in a state matters for the order (progress, the step's end) is
re-derived from the AGV's next state after a restart anyway.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from edge_runtime.vda5050._persist import RecordError, decode_record, encode_record
from edge_runtime.vda5050._session import AgvSession
from topics import vda_topic

__all__ = ["COUNTERS_KEY", "SESSION_PREFIX", "Counters", "MasterState", "session_key"]

SESSION_PREFIX = b"agv/"
"""Key prefix of a session record: ``agv/{manufacturer}/{serialNumber}``."""
COUNTERS_KEY = b"master"
"""Key of the counters record."""


def session_key(manufacturer: str, serial_number: str) -> bytes:
    """The record key of one AGV's session (VDA identifiers hold no ``/``)."""
    return b"%s%s/%s" % (SESSION_PREFIX, manufacturer.encode(), serial_number.encode())


@dataclass(slots=True)
class Counters:
    """The master's counters, stored as one record."""

    orders: int = 0
    """Orders sent so far: a part of every ``orderId``."""
    instants: int = 0
    """Instant actions sent so far: a part of every ``actionId``."""


class MasterState:
    """The sessions and counters of a ``VdaMaster``, and which of them changed."""

    def __init__(self) -> None:
        self.sessions: dict[tuple[str, str], AgvSession] = {}
        """Every AGV heard of, by (manufacturer, serialNumber)."""
        self.counters = Counters()
        """Orders and instant actions sent so far."""
        self._dirty: dict[tuple[str, str], bool] = {}
        """Sessions changed since ``changed()``, and whether materially."""
        self._counters_dirty = False

    def session(self, manufacturer: str, serial_number: str) -> AgvSession:
        """The session of one AGV, created on first use."""
        key = (manufacturer, serial_number)
        if key not in self.sessions:
            vda_topic(manufacturer, serial_number, "state")  # checks both identifiers
            self.sessions[key] = AgvSession(manufacturer, serial_number)
            self.touch(self.sessions[key])
        return self.sessions[key]

    def touch(self, s: AgvSession, material: bool = True) -> None:
        """Note that ``s`` changed; ``material``: its record must be committed at once."""
        key = (s.manufacturer, s.serial_number)
        self._dirty[key] = material or self._dirty.get(key, False)

    def next_order(self) -> int:
        """The number of the next order."""
        self.counters.orders += 1
        self._counters_dirty = True
        return self.counters.orders

    def next_instant(self) -> int:
        """The number of the next instant action."""
        self.counters.instants += 1
        self._counters_dirty = True
        return self.counters.instants

    @property
    def urgent(self) -> bool:
        """Whether a record changed materially since ``changed()``: commit it now."""
        return self._counters_dirty or any(self._dirty.values())

    def changed(self) -> dict[bytes, bytes | None]:
        """The records changed since the last call, by key, to commit with the batch."""
        out: dict[bytes, bytes | None] = {
            session_key(*key): encode_record(self.sessions[key], AgvSession)
            for key in self._dirty if key in self.sessions
        }
        if self._counters_dirty:
            out[COUNTERS_KEY] = encode_record(self.counters, Counters)
        self._dirty.clear()
        self._counters_dirty = False
        return out

    def load(self, records: Iterable[tuple[bytes, bytes]], now: float) -> list[str]:
        """Take the records a restarted edge found in its store; returns what was skipped,
        and why (a record that does not fit: that AGV is learnt afresh).

        Liveness counts from ``now``: an AGV is not lost merely because the edge was down.
        Records of other keys (the bridge's) are left to their owner.
        """
        problems: list[str] = []
        for key, raw in records:
            try:
                if key == COUNTERS_KEY:
                    self.counters = decode_record(raw, Counters)
                elif key.startswith(SESSION_PREFIX):
                    s = decode_record(raw, AgvSession)
                    if session_key(s.manufacturer, s.serial_number) != key:
                        raise RecordError(f"it holds {s.manufacturer}/{s.serial_number}")
                    if s.state_at is not None:
                        s.state_at = now
                    self.sessions[(s.manufacturer, s.serial_number)] = s
            except RecordError as exc:
                problems.append(f"VDA 5050 record {key.decode(errors='replace')!r} "
                                f"skipped: {exc}")
        self._dirty.clear()
        self._counters_dirty = False
        return problems
