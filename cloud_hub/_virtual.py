"""``VirtualHub``: the hub's aggregation without MQTT or threads, for the simulator's virtual
mode (docs/simulator.md, "Hub in virtual runs and cross-facility workflows"; docs/hub.md).

The very parts a running ``Hub`` is made of — ``Ingest`` (a replica of each facility's core
fed its events), the ``Worker``'s round (one ``WriteBatch`` into a real ``HubStore``, the
durable command outbox with its resends, gap replays), and the round observers
``Dependencies`` (cross-facility release) and ``Bookings`` (double-bookings) — driven by the
caller: ``take`` queues what edges published on ``edge/events`` (and ``status`` their
``edge/status``), ``round(now)`` runs one worker round at ``now`` and returns what the hub
would have published on each facility's ``edge/cmd``, decoded. Nothing reads a clock: time
is ``now``, so the same inputs at the same times give the same store, byte for byte.
"""

from __future__ import annotations

import hashlib
import queue
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cloud_hub._bookings import Bookings
from cloud_hub._cache import WorkflowLru
from cloud_hub._commands import CommandBook, Waiters
from cloud_hub._config import HubConfig
from cloud_hub._dependencies import Dependencies
from cloud_hub._dependencies_graph import CrossDependency
from cloud_hub._ingest import Ingest
from cloud_hub._link import LinkItem
from cloud_hub._model import ConflictOut, WorkflowOut
from cloud_hub._store import HubStore, key
from cloud_hub._worker import Worker
from edge_runtime.core import Template
from topics import (
    EdgeStatus,
    EdgeTopic,
    HubCommand,
    decode_hub_command,
    edge_topic,
    encode,
    parse_topic,
)

__all__ = ["VirtualHub"]

_HASHED = (("workflows", b""), ("dependencies", b""), ("conflicts", key("*", b"")))
"""What ``state_hash`` covers: every workflow record, every cross-facility dependency and
the hub's own (``x-``) conflicts, in key order."""


class _Capture:
    """The worker's ``Publisher`` in a virtual run: keeps what a round publishes."""

    def __init__(self) -> None:
        self.connected = False
        self.sent: list[tuple[str, bytes]] = []

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        self.sent.append((topic, payload))


class VirtualHub:
    """The hub's worker, observers and store, stepped by the caller (see the module doc).

    ``templates``: what the edges run (the replicas need them). ``data_dir``: where the
    store goes (``hub.rocksdb`` inside); ``None``: a temporary directory, removed by
    ``close``. Commits are not synced to disk (``sync=True`` to sync them as the hub does).
    """

    def __init__(self, templates: Mapping[str, Template], data_dir: str | Path | None = None,
                 *, booking_strategy: str = "priority", sync: bool = False) -> None:
        self._tmp: Path | None = None
        if data_dir is None:
            data_dir = self._tmp = Path(tempfile.mkdtemp(prefix="fleetflow-virtual-hub-"))
        self.config = HubConfig(data_dir=Path(data_dir), booking_strategy=booking_strategy)
        self.store = HubStore(self.config.data_dir / "hub.rocksdb", sync=sync)
        self.dependencies = Dependencies()
        self.bookings = Bookings(self.config.booking_strategy)
        self._link = _Capture()
        self.worker = Worker(self.config, self.store,
                             Ingest(self.store, templates, self.config.snapshot_every),
                             CommandBook(self.store), Waiters(),
                             WorkflowLru(self.config.cache_size), queue.SimpleQueue(),
                             self._link)
        self.worker.observers.extend([self.dependencies, self.bookings])
        self._items: list[LinkItem] = [LinkItem("up")]
        """What the next round takes; first, the link coming up (as after a connect)."""
        self._loaded = False

    # --- what the edges publish ------------------------------------------------------------

    def take(self, facility: str, payloads: list[bytes]) -> None:
        """Queue ``edge/events`` payloads of ``facility`` (``topics.pack_edge_events``) for
        the next round."""
        topic = edge_topic(facility, "events")
        self._items.extend(LinkItem("message", topic, p) for p in payloads)

    def status(self, facility: str, online: bool, high_water_seq: int, now: float) -> None:
        """Queue ``facility``'s ``edge/status`` (online or its will, and its log's last seq)
        for the next round."""
        msg = EdgeStatus(facility=facility, online=online, high_water_seq=high_water_seq,
                         ts=now)
        self._items.append(LinkItem("message", edge_topic(facility, "status"), encode(msg)))

    # --- one round -------------------------------------------------------------------------

    def round(self, now: float) -> list[tuple[str, HubCommand]]:
        """Run one worker round at ``now`` over what was queued; the commands it would
        publish, as ``(facility, command)`` in publish order."""
        if not self._loaded:
            self.worker.load(now)
            self._loaded = True
        items, self._items = self._items, []
        if not items and not self._busy(now):
            return []  # an idle round would apply, write, resend and ask nothing
        self.worker.round(items, now)
        sent, self._link.sent = self._link.sent, []
        out: list[tuple[str, HubCommand]] = []
        for topic, payload in sent:
            where = parse_topic(topic)
            if isinstance(where, EdgeTopic) and where.kind == "cmd":
                out.append((where.facility, decode_hub_command(payload)))
        return out

    def _busy(self, now: float) -> bool:
        """A round with nothing queued still has work: a resend due, or a facility whose
        view lags its edge (a gap, or the edge's status ahead: a replay may be due)."""
        due = self.worker.book.next_due()
        if due is not None and due <= now:
            return True
        marks = self.worker.marks
        return any(r.buffer or (f in marks and marks[f].edge_seq > r.applied)
                   for f, r in self.worker.ingest.replicas.items())

    # --- what it aggregated ----------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """Workflows per facility and top-level state, the cross-facility dependencies
        (waiting, and resolved by verdict), the hub's ``x-`` conflicts by status, commands
        sent/resent/settled, events applied, and ``state_hash`` (sha256 over the stored
        workflow records, cross-facility dependencies and hub conflicts, in key order)."""
        workflows: dict[str, dict[str, int]] = {}
        for _, raw in self.store.scan("workflows", b""):
            w = WorkflowOut.model_validate_json(raw)
            counts = workflows.setdefault(w.facility, {})
            top = w.state.split(".", 1)[0]
            counts[top] = counts.get(top, 0) + 1
        deps: dict[str, Any] = {"total": 0, "waiting": 0, "resolved": {}}
        for _, raw in self.store.scan("dependencies", b""):
            d = CrossDependency.model_validate_json(raw)
            deps["total"] += 1
            if d.status == "waiting":
                deps["waiting"] += 1
            else:
                verdict = str(d.verdict)
                deps["resolved"][verdict] = deps["resolved"].get(verdict, 0) + 1
        conflicts: dict[str, int] = {}
        for _, raw in self.store.scan("conflicts", key("*", b"")):
            c = ConflictOut.model_validate_json(raw)
            conflicts[c.status] = conflicts.get(c.status, 0) + 1
        worker = self.worker
        return {
            "workflows": {f: dict(sorted(c.items())) for f, c in sorted(workflows.items())},
            "dependencies": {**deps, "resolved": dict(sorted(deps["resolved"].items()))},
            "conflicts": dict(sorted(conflicts.items())),
            "commands": {"sent": worker.book.sent, "resent": worker.book.resent,
                         "settled": worker.book.settled, "pending": worker.book.depth()},
            "events_applied": worker.applied_total, "rounds": worker.rounds,
            "replays_asked": worker.replays_asked,
            "replica_errors": {f: r.broken for f, r in sorted(worker.ingest.replicas.items())
                               if r.broken is not None},
            "state_hash": self.state_hash(),
        }

    def state_hash(self) -> str:
        """sha256 over the hub's aggregated records (see ``summary``)."""
        digest = hashlib.sha256()
        for family, prefix in _HASHED:
            for k, v in self.store.scan(family, prefix):
                for part in (family.encode(), k, v):
                    digest.update(len(part).to_bytes(4, "big"))
                    digest.update(part)
        return digest.hexdigest()

    # --- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Close the store; remove the temporary directory if this hub made it."""
        self.store.close()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> VirtualHub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

