"""The hub's worker thread: the one owner of the replicas, the outbox and the facility
marks. Each round takes what the link queued (up to ``batch_max`` messages), applies it,
writes everything in one synced ``WriteBatch``, and only then settles waiting writers,
publishes, refreshes the read views and tells the change-feed listeners (group commit:
nothing is acknowledged before it is durable)."""

from __future__ import annotations

import gc
import logging
import queue
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from cloud_hub._cache import WorkflowLru
from cloud_hub._commands import CommandBook, Waiters
from cloud_hub._config import HubConfig
from cloud_hub._facilities import Marks
from cloud_hub._ingest import Applied, Ingest
from cloud_hub._link import Link, LinkItem
from cloud_hub._model import ChangeOut, CommandOut, FacilityOut
from cloud_hub._store import HubStore, StoreBatch, hexn
from cloud_hub._vda_links import VdaKeeper
from cloud_hub._view import event_out
from edge_runtime.core import Event
from topics import (
    DEFAULT_LIMITS,
    EdgeTopic,
    HubCommand,
    ProtocolError,
    check_edge_event,
    check_size,
    decode_edge_event,
    decode_edge_status,
    decode_error_report,
    edge_topic,
    encode,
    parse_topic,
    unpack_edge_event,
)

__all__ = ["Publisher", "RoundObserver", "Submit", "SyncAsk", "Worker"]

_log = logging.getLogger("fleetflow.hub")


@dataclass(frozen=True, slots=True)
class Submit:
    """A new command from an API thread."""

    cmd: CommandOut


@dataclass(frozen=True, slots=True)
class SyncAsk:
    """Ask these facilities' edges to replay what the hub lacks, now."""

    facilities: tuple[str, ...]


def read_event(payload: bytes) -> tuple[str, Event]:
    """The facility and event of an ``edge/events`` payload, validated as the edge checks
    what it streams (``check_edge_event``: the model's rules without building the model);
    any other encoding goes through ``decode_edge_event``. ``ProtocolError`` if invalid."""
    try:
        seq, hlc, facility, kind, wid, data = unpack_edge_event(payload)
        event = Event(seq, hlc, kind, wid, data)
        check_size(payload, DEFAULT_LIMITS, "edge_event message")
        check_edge_event(event, facility)
    except ProtocolError:
        wire = decode_edge_event(payload)  # a map body …, or its precise refusal
        return wire.facility, Event(wire.seq, wire.hlc, wire.kind, wire.workflow_id,
                                    dict(wire.data))
    except (ValidationError, ValueError, TypeError) as exc:
        raise ProtocolError("schema", f"edge_event message: {exc}") from None
    return facility, event


_GC_GEN0 = 10_000
"""Allocations between two young collections in the hub's process (CPython's default: 700)."""


def young_collections_less_often() -> None:
    """Raise the cycle collector's first threshold to ``_GC_GEN0`` (never lower it).

    Ingest allocates many short-lived objects per event (unpacked payloads, views, read
    models); at the default threshold a young collection ran every few events and took a
    quarter of the worker's CPU (docs/benchmarks.md, "Cloud hub"). Process-wide, so it is
    done where the hub's thread starts, not at import."""
    gen0, gen1, gen2 = gc.get_threshold()
    if 0 < gen0 < _GC_GEN0:
        gc.set_threshold(_GC_GEN0, gen1, gen2)


class RoundObserver(Protocol):
    """What crosses facilities (dependencies, lent agents and resources) watches the
    replicas through: called on the worker thread, inside each round's batch."""

    def load(self, ingest: Ingest, store: HubStore, now: float) -> None:
        """Read back what it keeps (after the replicas were restored)."""

    def after_apply(self, ingest: Ingest, out: Applied, batch: StoreBatch,
                    now: float) -> list[CommandOut]:
        """React to what this round applied; what it writes goes into ``batch`` (committed
        with the round) and the commands it returns are sent through the durable outbox."""
        ...


class Publisher(Protocol):
    """Where a round's publishes go: the hub's MQTT ``Link``, or what a virtual run
    (``_virtual.VirtualHub``) hands its simulated edges."""

    connected: bool
    """Subscribed: set by the worker when it takes an ``up``/``down`` ``LinkItem``."""

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None: ...


class Worker:
    """Runs rounds until ``None`` arrives on ``inbox``."""

    def __init__(self, config: HubConfig, store: HubStore, ingest: Ingest, book: CommandBook,
                 waiters: Waiters, lru: WorkflowLru, inbox: queue.SimpleQueue[Any],
                 link: Publisher | None = None) -> None:
        self.config, self.store, self.ingest, self.book = config, store, ingest, book
        self.waiters, self.lru, self.inbox = waiters, lru, inbox
        self.link: Publisher = Link(config, inbox) if link is None else link
        """The MQTT link by default (the ``Hub`` passes its own, which it starts)."""
        self.marks: dict[str, Marks] = {}
        self.facilities: dict[str, FacilityOut] = {}
        """Copy-on-write: replaced whole after each round (API threads read it freely)."""
        self.listeners: tuple[Callable[[ChangeOut], None], ...] = ()
        self.observers: list[RoundObserver] = []
        """Called after each round's ingest (``RoundObserver``); set before ``load``."""
        self.applied_total = 0
        self.rounds = 0
        self.replays_asked = 0
        self.failed: str | None = None
        """Why the worker stopped on an error (the hub then refuses requests)."""
        self.rate: deque[tuple[float, int]] = deque(maxlen=64)
        """(time, applied_total) samples for the ingest rate."""
        self.link_down_said: str | None = None
        """Why the broker link is down, as last logged (``None`` while it is up)."""
        self.vda = VdaKeeper()
        """The edges' latest VDA 5050 link health (``edge/vda``; volatile, not stored)."""

    def load(self, now: float) -> None:
        for k, raw in self.store.scan("facilities", b""):
            f = k.decode()
            self.marks[f] = Marks.unpack(f, raw)
        self.ingest.load({f: m.applied for f, m in self.marks.items()})
        for f, m in self.marks.items():
            m.refresh(self.ingest.replica(f).applied, now)
        self.book.load(now)
        for observer in self.observers:
            observer.load(self.ingest, self.store, now)
        self._publish_views()

    # --- the loop ------------------------------------------------------------------------

    def run(self) -> None:
        young_collections_less_often()
        while True:
            now = time.time()
            due = self.book.next_due()
            wait = 0.2 if due is None else min(0.2, max(0.0, due - now))
            items: list[Any] = []
            try:
                items.append(self.inbox.get(timeout=wait))
                while len(items) < self.config.batch_max:
                    items.append(self.inbox.get_nowait())
            except queue.Empty:
                pass
            stop = None in items
            try:
                self.round([i for i in items if i is not None], time.time())
            except Exception as exc:
                # The replicas may be ahead of the store now: stop rather than serve a view
                # the store does not back (a restart recovers from the store).
                _log.exception("hub worker stopped")
                self.failed = f"the hub's worker stopped: {exc}"
                return
            if stop:
                return

    def round(self, items: list[Any], now: float) -> None:
        batch = self.store.batch()
        out = Applied()
        stored: list[CommandOut] = []
        settled: list[CommandOut] = []
        sends: list[tuple[str, bytes]] = []
        for item in items:
            if isinstance(item, LinkItem):
                self._link_item(item, batch, now, settled, sends)
            elif isinstance(item, Submit):
                payload = self.book.submit(item.cmd, batch, now)
                if payload is not None:
                    self._mark(item.cmd.facility, now)
                    stored.append(item.cmd)
                    sends.append((item.cmd.facility, payload))
                else:  # a command id already known: its fate as it stands
                    raw = batch.get("commands", item.cmd.command_id.encode())
                    if raw is not None:
                        known = CommandOut.model_validate_json(raw)
                        stored.append(known)
                        if known.state != "pending":
                            settled.append(known)
            elif isinstance(item, SyncAsk):
                for f in item.facilities:
                    self._mark(f, now).replay_at = 0.0
                    self._ask_replay(f, now, force=True)
        self.ingest.apply(batch, out)
        for facility, event in out.replies:
            if (cmd := self.book.on_reply(facility, event, batch, now)) is not None:
                settled.append(cmd)
        for observer in self.observers:
            for cmd in observer.after_apply(self.ingest, out, batch, now):
                if (payload := self.book.submit(cmd, batch, now)) is not None:
                    self._mark(cmd.facility, now)
                    stored.append(cmd)
                    sends.append((cmd.facility, payload))
        for f, m in self.marks.items():
            replica = self.ingest.replica(f)
            m.broken = replica.broken
            if replica.applied != m.applied:
                m.refresh(replica.applied, now)
                batch.put("facilities", f.encode(), m.pack())
            else:
                m.refresh(replica.applied, now)
        self.store.commit(batch)
        # --- durable: now acknowledge, publish, show ---
        self.applied_total += len(out.changes)
        self.rounds += 1
        if not self.rate or now - self.rate[-1][0] >= 0.5:
            self.rate.append((now, self.applied_total))
        for cmd in stored:
            self.waiters.stored(cmd)
        for cmd in settled:
            self.waiters.settled(cmd)
        for w in out.workflows.values():
            self.lru.update(w)
        if self.link.connected:
            sends.extend(self.book.due(now))
            for f, payload in sends:
                self.link.publish(edge_topic(f, "cmd"), payload)
            for f in list(self.marks):
                self._ask_replay(f, now)
        self._publish_views()
        if out.changes and self.listeners:
            self._notify(out.changes)

    def _mark(self, facility: str, now: float) -> Marks:
        m = self.marks.get(facility)
        if m is None:
            m = self.marks[facility] = Marks(facility, fresh_at=now)
        return m

    def _link_item(self, item: LinkItem, batch: Any, now: float, settled: list[CommandOut],
                   sends: list[tuple[str, bytes]]) -> None:
        if item.kind == "up":
            if self.link_down_said is not None:
                _log.warning("broker link up again")
            self.link.connected, self.link_down_said = True, None
            for f in self.book.pending:
                sends.extend((f, p) for p in self.book.all_of(f, now))
            for m in self.marks.values():
                m.replay_at = 0.0  # what the broker dropped meanwhile: ask at once
            return
        if item.kind == "down":
            # Said once per cause (a refused login repeats at every retry): a hub that
            # cannot log in must not look like a hub with nothing to do.
            why = f"the broker refused the hub's connection: {item.topic}" if item.topic \
                else "lost the broker link"
            if why != self.link_down_said:
                _log.warning("%s; retrying", why)
            self.link.connected, self.link_down_said = False, why
            return
        try:
            where = parse_topic(item.topic)
            if not isinstance(where, EdgeTopic):
                return
            if where.kind == "events":
                facility, event = read_event(item.payload)
                if facility != where.facility:
                    return
                self.ingest.take(facility, event, item.payload)
                m = self._mark(facility, now)
                m.edge_seq = max(m.edge_seq, event.seq)
                m.last_event_at = now
            elif where.kind == "status":
                status = decode_edge_status(item.payload)
                m = self._mark(where.facility, now)
                came_back = status.online and (item.retained or not m.online)
                m.online = status.online
                m.edge_seq = max(m.edge_seq, status.high_water_seq)
                if came_back:
                    sends.extend((where.facility, p)
                                 for p in self.book.all_of(where.facility, now))
            elif where.kind == "errors":
                report = decode_error_report(item.payload)
                if report.topic == edge_topic(where.facility, "cmd") and (
                        cmd := self.book.on_report(where.facility, report, batch, now)):
                    settled.append(cmd)
            elif where.kind == "vda":  # refuses (logs, counts) a bad one itself
                self.vda.take(where.facility, item.payload, now,
                              known=where.facility in self.marks)
        except ProtocolError as exc:
            _log.info("hub ignored a message on %s: %s", item.topic, exc)

    def _ask_replay(self, facility: str, now: float, *, force: bool = False) -> None:
        """Ask ``facility``'s edge to re-publish from the first seq the hub lacks when a gap
        is open (events buffered after it) or the edge is ahead and nothing moved."""
        m, replica = self._mark(facility, now), self.ingest.replica(facility)
        if replica.broken is not None or not self.link.connected:
            return
        lagging = m.edge_seq > replica.applied and now - m.progress_at >= \
            self.config.replay_retry_s
        if not force and not ((replica.buffer or lagging)
                              and now - m.replay_at >= self.config.replay_retry_s):
            return
        m.replay_at = now
        self.replays_asked += 1
        start = replica.applied + 1
        cmd = HubCommand(command_id=f"replay-{start}-{self.replays_asked}", action="replay",
                         args={"from_seq": start}, ts=now)
        self.link.publish(edge_topic(facility, "cmd"), encode(cmd))
        _log.info("hub asked %s to replay from seq %d (edge at %d)", facility, start,
                  m.edge_seq)

    def _publish_views(self) -> None:
        self.facilities = {f: m.out() for f, m in sorted(self.marks.items())}

    def _notify(self, changes: list[tuple[int, bytes]]) -> None:
        for token, payload in changes:
            change = ChangeOut(token=hexn(token).decode(), event=event_out(payload))
            for listener in self.listeners:
                try:
                    listener(change)
                except Exception:  # a listener's bug must not stop the feed for others
                    _log.exception("change listener failed")
