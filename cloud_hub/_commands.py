"""Hub → edge commands: a durable outbox in the hub's store, resends with backoff, and
each command's fate (docs/protocol.md, "Delivery"; docs/hub.md, "Commands and consistency").

The worker thread owns the outbox. A command is stored (synced) before it is first
published; it is resent after 1 s, doubling to 30 s, at once when its edge's status turns
online and when the hub's link comes back, until the edge's ``command_reply`` event (applied
by ingest, so a ``strong`` reader sees its effect), an ``edge/errors`` report naming its id,
or a reply whose ``result.refused`` says so settles it. API threads wait on ``Future`` s.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from cloud_hub._model import CommandOut
from cloud_hub._store import HubStore, StoreBatch, key
from edge_runtime.core import Event
from topics import ErrorReport, HubCommand, encode

__all__ = ["CommandBook", "Waiters"]

_log = logging.getLogger(__name__)

_FIRST_DELAY, _MAX_DELAY = 1.0, 30.0


@dataclass(slots=True)
class _Entry:
    cmd: CommandOut
    payload: bytes
    due: float
    delay: float


class Waiters:
    """Futures of API threads waiting for a command's fate (the only lock on this path)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stored: dict[str, list[Future[CommandOut]]] = {}
        self._settled: dict[str, list[Future[CommandOut]]] = {}

    def expect(self, command_id: str) -> tuple[Future[CommandOut], Future[CommandOut]]:
        """(stored, settled) futures for a command about to be submitted."""
        stored: Future[CommandOut] = Future()
        settled: Future[CommandOut] = Future()
        with self._lock:
            self._stored.setdefault(command_id, []).append(stored)
            self._settled.setdefault(command_id, []).append(settled)
        return stored, settled

    def forget(self, command_id: str, settled: Future[CommandOut]) -> None:
        with self._lock:
            waiting = self._settled.get(command_id, [])
            if settled in waiting:
                waiting.remove(settled)
            if not waiting:
                self._settled.pop(command_id, None)

    def stored(self, cmd: CommandOut) -> None:
        with self._lock:
            futures = self._stored.pop(cmd.command_id, [])
        for future in futures:
            if not future.done():
                future.set_result(cmd)

    def settled(self, cmd: CommandOut) -> None:
        with self._lock:
            futures = self._settled.pop(cmd.command_id, [])
        for future in futures:
            if not future.done():
                future.set_result(cmd)

    def cancel_all(self) -> None:
        with self._lock:
            futures = [f for fs in (*self._stored.values(), *self._settled.values())
                       for f in fs]
            self._stored, self._settled = {}, {}
        for future in futures:
            future.cancel()


class CommandBook:
    """The outbox of unsettled commands, by facility (the worker's own)."""

    def __init__(self, store: HubStore) -> None:
        self.store = store
        self.pending: dict[str, dict[str, _Entry]] = {}
        self.sent = self.resent = self.settled = 0

    def load(self, now: float) -> int:
        """Take up the commands a previous run left pending; how many."""
        n = 0
        for k, _ in self.store.scan("index", b"cmdp\0"):
            raw = self.store.get("commands", k.split(b"\0", 1)[1])
            if raw is not None:
                self._keep(CommandOut.model_validate_json(raw), now)
                n += 1
        return n

    def submit(self, cmd: CommandOut, batch: StoreBatch, now: float) -> bytes | None:
        """Store a new command (or nothing for an id already known); its first payload."""
        if batch.get("commands", cmd.command_id.encode()) is not None:
            return None
        batch.put("commands", cmd.command_id.encode(), cmd.model_dump_json().encode())
        batch.put("index", key(b"cmdp", cmd.command_id), b"")
        self.sent += 1
        return self._keep(cmd, now).payload

    def _keep(self, cmd: CommandOut, now: float) -> _Entry:
        wire = HubCommand(command_id=cmd.command_id, action=cmd.action,  # type: ignore[arg-type]
                          args=cmd.args, consistency=cmd.consistency, ts=cmd.created_at)
        entry = _Entry(cmd, encode(wire), now + _FIRST_DELAY, _FIRST_DELAY)
        self.pending.setdefault(cmd.facility, {})[cmd.command_id] = entry
        return entry

    def due(self, now: float) -> list[tuple[str, bytes]]:
        """(facility, payload) of commands whose resend is due; their next resend doubles."""
        out: list[tuple[str, bytes]] = []
        for facility, entries in self.pending.items():
            for entry in entries.values():
                if entry.due <= now:
                    entry.delay = min(entry.delay * 2, _MAX_DELAY)
                    entry.due = now + entry.delay
                    out.append((facility, entry.payload))
        self.resent += len(out)
        return out

    def all_of(self, facility: str, now: float) -> list[bytes]:
        """Every pending command of ``facility`` (its edge came back): resent now."""
        entries = self.pending.get(facility, {}).values()
        for entry in entries:
            entry.delay, entry.due = _FIRST_DELAY, now + _FIRST_DELAY
        self.resent += len(entries)
        return [e.payload for e in entries]

    def next_due(self) -> float | None:
        dues = [e.due for entries in self.pending.values() for e in entries.values()]
        return min(dues) if dues else None

    def on_reply(self, facility: str, event: Event, batch: StoreBatch,
                 now: float) -> CommandOut | None:
        """Settle the command a ``command_reply`` event answers; the settled record."""
        command_id = event.data.get("cmd")
        if not isinstance(command_id, str):
            return None
        result = event.data.get("result")
        result = result if isinstance(result, dict) else {}
        if isinstance(result.get("refused"), str):
            return self._settle(facility, command_id, batch, now, "refused", result,
                                f"{result['refused']}: {result.get('error', '')}".strip(": "))
        return self._settle(facility, command_id, batch, now, "applied", result, None)

    def on_report(self, facility: str, report: ErrorReport, batch: StoreBatch,
                  now: float) -> CommandOut | None:
        """Settle the command an ``edge/errors`` report refuses (it names the id)."""
        if report.command_id is None:
            return None
        return self._settle(facility, report.command_id, batch, now, "refused", None,
                            f"{report.reason}: {report.message}")

    def _settle(self, facility: str, command_id: str, batch: StoreBatch, now: float,
                state: str, result: dict[str, Any] | None, error: str | None
                ) -> CommandOut | None:
        self.pending.get(facility, {}).pop(command_id, None)
        raw = batch.get("commands", command_id.encode())
        if raw is None:
            return None  # another hub's, or the edge's own replay of an old reply
        cmd = CommandOut.model_validate_json(raw)
        if cmd.state in ("applied", "refused") or cmd.facility != facility:
            return None
        cmd = cmd.model_copy(update={"state": state, "result": result, "error": error,
                                     "settled_at": now})
        batch.put("commands", command_id.encode(), cmd.model_dump_json().encode())
        batch.delete("index", key(b"cmdp", command_id))
        self.settled += 1
        if state == "refused":  # the API caller sees it on the command; the log says it too
            _log.info("command %s (%s) on %s refused: %s", command_id, cmd.action, facility,
                      error)
        return cmd

    def depth(self) -> int:
        return sum(len(e) for e in self.pending.values())
