"""``Hub``: the cloud hub's service (``HubService``) — ingest of every facility's events
into one global view, edge commands with consistency levels, and the reads the API makes.

One worker thread (``_worker``) owns all mutable state; API threads read the RocksDB store
(thread-safe), the memory-tier LRU (one short lock) and copy-on-write facility views, and
hand writes to the worker's queue. docs/hub.md explains the design.
"""

from __future__ import annotations

import queue
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from cloud_hub._bookings import Bookings
from cloud_hub._cache import Tiers, WorkflowLru
from cloud_hub._commands import CommandBook, Waiters
from cloud_hub._config import HubConfig
from cloud_hub._coordination import Coordination
from cloud_hub._coordination_model import CoordinationOut
from cloud_hub._dependencies import Dependencies
from cloud_hub._ingest import Ingest
from cloud_hub._link import Link
from cloud_hub._maps import FacilityMaps
from cloud_hub._maps_model import MapOut
from cloud_hub._model import (
    AgentOut,
    ChangeOut,
    CommandOut,
    ConflictOut,
    Consistency,
    EventOut,
    FacilityOut,
    Page,
    WorkflowOut,
)
from cloud_hub._service import HubError, NotFound, Stale, Unavailable
from cloud_hub._store import HubStore, hexn, key
from cloud_hub._vda_model import VdaLinksOut
from cloud_hub._view import (
    decode_cursor,
    encode_cursor,
    event_out,
    list_workflows,
    page_of,
)
from cloud_hub._worker import RoundObserver, Submit, SyncAsk, Worker
from edge_runtime.templates import load_templates
from topics import HubCommand

__all__ = ["Hub"]

_TEMPLATES_DEFAULT = Path(__file__).resolve().parent.parent / "templates"


class Hub:
    """The hub; ``start()`` (or ``with Hub(config) as hub:``), then ``stop()``."""

    def __init__(self, config: HubConfig) -> None:
        self.config = config
        tdir = config.templates_dir or _TEMPLATES_DEFAULT
        self._templates = load_templates(tdir) if tdir.is_dir() else {}
        self._store: HubStore | None = None
        self._worker: Worker | None = None
        self._link: Link | None = None
        self._thread: threading.Thread | None = None
        self._inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._waiters = Waiters()
        self._lru = WorkflowLru(config.cache_size)
        self._tiers = Tiers()
        self._listeners_lock = threading.Lock()
        self._observers: list[RoundObserver] = []
        """What crosses facilities, watching each round (``_worker.RoundObserver``)."""
        self.dependencies = Dependencies()
        """The global dependency graph and cross-facility release (``_dependencies``)."""
        self._observers.append(self.dependencies)
        self.bookings = Bookings(config.booking_strategy)
        """Loans, and double-bookings of shared agents and resources (``_bookings``)."""
        self._observers.append(self.bookings)
        self.coordinating = Coordination()
        """Auctions, sync points, teams and votes under way, per facility (``_coordination``)."""
        self._observers.append(self.coordinating)
        self.maps = FacilityMaps.load(config.maps)
        """The facility maps the API serves (``_maps``; ``MapError`` if one is bad)."""

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> Hub:
        """Open the store, restore every replica (snapshot + tail), connect and serve."""
        if self._thread is not None:
            raise RuntimeError("this hub is running already")
        store = self._store = HubStore(self.config.data_dir / "hub.rocksdb")
        try:
            ingest = Ingest(store, self._templates, self.config.snapshot_every)
            link = self._link = Link(self.config, self._inbox)
            worker = self._worker = Worker(self.config, store, ingest, CommandBook(store),
                                           self._waiters, self._lru, self._inbox, link)
            worker.observers.extend(self._observers)
            worker.load(time.time())
        except BaseException:
            store.close()
            raise
        self._thread = threading.Thread(target=worker.run, name="hub-worker", daemon=True)
        self._thread.start()
        link.start()
        return self

    def stop(self) -> None:
        """Disconnect, finish the round in hand, close the store."""
        if self._link is not None:
            self._link.stop()
        if self._thread is not None:
            self._inbox.put(None)
            self._thread.join(timeout=30)
            self._thread = None
        self._waiters.cancel_all()
        if self._store is not None:
            self._store.close()

    def __enter__(self) -> Hub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def connected(self) -> bool:
        """The broker link is up and subscribed."""
        return self._worker is not None and self._worker.link.connected

    def _w(self) -> Worker:
        if self._worker is None or self._thread is None:
            raise Unavailable("the hub is not running")
        if self._worker.failed is not None:
            raise Unavailable(self._worker.failed)
        return self._worker

    def _s(self) -> HubStore:
        if self._store is None or self._store.closed:
            raise Unavailable("the hub's store is closed")
        return self._store

    # --- staleness -----------------------------------------------------------------------

    def _check_fresh(self, facilities: list[str], bound: float | None) -> None:
        if bound is None:
            return
        if bound < 0:
            raise HubError(f"max_staleness_s must not be negative, not {bound}")
        w, now = self._w(), time.time()
        for f in facilities:
            m = w.marks.get(f)
            age = float("inf") if m is None else m.age(now)
            if age > bound:
                raise Stale(f"the hub's view of facility {f!r} may be {age:.1f} s old "
                            f"(bound {bound} s): its edge is "
                            f"{'online' if m and m.online else 'offline'}, "
                            f"{0 if m is None else max(0, m.edge_seq - m.applied)} events behind")

    # --- reads ---------------------------------------------------------------------------

    def workflow(self, workflow_id: str, *, max_staleness_s: float | None = None
                 ) -> WorkflowOut:
        t0 = time.perf_counter()
        w = self._lru.get(workflow_id)
        if w is not None:
            self._tiers.record("memory", time.perf_counter() - t0)
        else:
            self._tiers.miss("memory")
            t1 = time.perf_counter()
            store = self._s()
            facility = store.get("locator", workflow_id.encode())
            raw = None if facility is None else store.get("workflows", key(facility,
                                                                           workflow_id))
            if raw is None:
                self._tiers.record("warm", time.perf_counter() - t1, hit=False)
                raise NotFound(f"no facility has workflow {workflow_id!r}")
            w = WorkflowOut.model_validate_json(raw)
            self._lru.put(w, newer_only=True)
            self._tiers.record("warm", time.perf_counter() - t1)
        self._check_fresh([w.facility], max_staleness_s)
        return w

    def workflows(self, *, facility: str | None = None, state: str | None = None,
                  template: str | None = None, agent: str | None = None,
                  since: float | None = None, until: float | None = None,
                  cursor: str | None = None, limit: int = 50,
                  max_staleness_s: float | None = None,
                  label: str | None = None) -> Page[WorkflowOut]:
        self._check_fresh([facility] if facility else list(self._w().marks), max_staleness_s)
        t0 = time.perf_counter()
        page = list_workflows(self._s(), facility=facility, state=state, template=template,
                              agent=agent, since=since, until=until, cursor=cursor,
                              limit=limit, label=label)
        self._tiers.record("storage", time.perf_counter() - t0, hit=bool(page.items))
        return page

    def workflow_events(self, workflow_id: str, *, cursor: str | None = None,
                        limit: int = 100, newest_first: bool = False) -> Page[EventOut]:
        """The workflow's events in its facility's log order (``newest_first``: reversed);
        a ``command_reply`` of a command sent through this hub carries ``hub_command``
        (who, reason, action)."""
        if not 1 <= limit <= 1000:
            raise HubError(f"limit must be between 1 and 1000, not {limit}")
        store, facility = self._s(), self.facility_of(workflow_id)
        prefix = key(b"ev", workflow_id, facility) + b"\0"
        start = decode_cursor(cursor, prefix)
        rows = list(store.scan_back("index", prefix, before=start, limit=limit + 1)
                    if newest_first else store.scan("index", prefix, start=start,
                                                    limit=limit + 1))
        items = []
        for k, _ in rows[:limit]:
            payload = store.get("events", key(facility, k.rsplit(b"\0", 1)[1]))
            if payload is not None:
                items.append(self._audited(event_out(payload)))
        more = len(rows) > limit
        return Page[EventOut](items=items, count=store.count("index", prefix),
                              next_cursor=encode_cursor(rows[limit - 1][0]) if more else None)

    def _audited(self, ev: EventOut) -> EventOut:
        cid = ev.data.get("cmd") if ev.kind == "command_reply" else None
        raw = self._s().get("commands", cid.encode()) if isinstance(cid, str) else None
        if raw is None:
            return ev
        cmd = CommandOut.model_validate_json(raw)
        audit = {"who": cmd.who, "reason": cmd.reason, "action": cmd.action,
                 "consistency": cmd.consistency}
        return ev.model_copy(update={"data": {**ev.data, "hub_command": audit}})

    def agents(self, *, facility: str | None = None, cursor: str | None = None,
               limit: int = 100) -> Page[AgentOut]:
        prefix = b"" if facility is None else key(facility, b"")
        return page_of(self._s(), "agents", prefix, AgentOut, cursor, limit)

    def agent_workflows(self, agent_id: str, *, cursor: str | None = None,
                        limit: int = 50) -> Page[WorkflowOut]:
        return self.workflows(agent=agent_id, cursor=cursor, limit=limit)

    def conflicts(self, *, facility: str | None = None, status: str | None = None,
                  cursor: str | None = None, limit: int = 100) -> Page[ConflictOut]:
        prefix = b"" if facility is None else key(facility, b"")
        keep = None if status is None else (lambda c: c.status == status)
        return page_of(self._s(), "conflicts", prefix, ConflictOut, cursor, limit, keep)

    def facilities(self) -> list[FacilityOut]:
        return list(self._w().facilities.values())

    def templates(self) -> list[dict[str, Any]]:
        return [t.model_dump(mode="json") for k, t in sorted(self._templates.items())
                if "@" in k]

    def changes(self, since: str | None = None, *, facility: str | None = None,
                workflow_id: str | None = None, limit: int = 500) -> list[ChangeOut]:
        if not 1 <= limit <= 10_000:
            raise HubError(f"limit must be between 1 and 10000, not {limit}")
        start = None
        if since is not None:
            try:
                start = hexn(int(since, 16))
            except ValueError:
                raise HubError(f"change token {since[:40]!r} is not one this hub gave "
                               "out") from None
        store, out = self._s(), []
        for token, where in store.scan("changes", b"", start=start):
            f = where.split(b"\0", 1)[0].decode()
            if facility is not None and f != facility:
                continue
            payload = store.get("events", where)
            if payload is None:
                continue
            ev = event_out(payload)
            if workflow_id is not None and ev.workflow_id != workflow_id:
                continue
            out.append(ChangeOut(token=token.decode(), event=ev))
            if len(out) >= limit:
                break
        return out

    def subscribe(self, listener: Callable[[ChangeOut], None]) -> Callable[[], None]:
        w = self._w()
        with self._listeners_lock:
            w.listeners = (*w.listeners, listener)

        def unsubscribe() -> None:
            with self._listeners_lock:
                w.listeners = tuple(x for x in w.listeners if x is not listener)
        return unsubscribe

    def command_fate(self, command_id: str) -> CommandOut:
        raw = self._s().get("commands", command_id.encode())
        if raw is None:
            raise NotFound(f"no command {command_id!r} was sent through this hub")
        return CommandOut.model_validate_json(raw)

    def cache_stats(self) -> dict[str, Any]:
        return {"tiers": self._tiers.stats(), "memory_entries": len(self._lru),
                "memory_capacity": self._lru.size}

    def system_stats(self) -> dict[str, Any]:
        w, now = self._w(), time.time()
        rate = 0.0
        recent = [(t, n) for t, n in w.rate if now - t <= 10.0]
        if len(recent) >= 2 and recent[-1][0] > recent[0][0]:
            rate = (recent[-1][1] - recent[0][1]) / (recent[-1][0] - recent[0][0])
        return {
            "ingest_events_per_s": round(rate, 1),
            "events_applied": w.applied_total,
            "duplicates_dropped": w.ingest.dropped,
            "replays_asked": w.replays_asked,
            "restored": w.ingest.restored,
            "replica_errors": {f: r.broken for f, r in list(w.ingest.replicas.items())
                               if r.broken is not None},
            "link_connected": w.link.connected,
            "facilities": {f: {"lag": m.lag, "stale": m.stale, "online": m.online,
                               "applied_seq": m.applied_seq, "edge_seq": m.edge_seq}
                           for f, m in w.facilities.items()},
            "queues": {"inbox": self._inbox.qsize(), "outbox": w.book.depth(),
                       "buffered_events": sum(len(r.buffer)
                                              for r in list(w.ingest.replicas.values()))},
            "commands": {"sent": w.book.sent, "resent": w.book.resent,
                         "settled": w.book.settled},
            "store_bytes": self._s().size_bytes(),
            "vda_links": w.vda.stats(),
        }

    def vda_links(self, facility: str) -> VdaLinksOut:
        w = self._w()
        return w.vda.out(facility, w.facilities.get(facility), time.time())

    def coordination(self, facility: str | None = None) -> list[CoordinationOut]:
        self._w()
        return self.coordinating.get(facility)

    def facility_map(self, facility: str) -> MapOut:
        return self.maps.get(facility)

    def facility_of(self, workflow_id: str) -> str:
        raw = self._s().get("locator", workflow_id.encode())
        if raw is None:
            raise NotFound(f"no facility has workflow {workflow_id!r}")
        return raw.decode()

    # --- writes --------------------------------------------------------------------------

    def command(self, facility: str, action: str, args: dict[str, Any], *,
                consistency: Consistency = "strong", who: str = "", reason: str = "",
                timeout_s: float = 10.0, command_id: str | None = None) -> CommandOut:
        w = self._w()
        if facility not in w.marks:
            raise NotFound(f"no edge of facility {facility!r} has been heard by this hub")
        if action == "replay":
            raise HubError("replay is the hub's own: use sync_state")
        if consistency not in ("strong", "eventual", "bounded_staleness"):
            raise HubError(f"consistency must be strong, eventual or bounded_staleness, "
                           f"not {consistency!r}")
        if timeout_s <= 0:
            raise HubError(f"timeout_s must be positive, not {timeout_s}")
        cid = command_id or f"hub-{secrets.token_hex(8)}"
        try:  # the edge's own schema: refuse here what it would refuse
            HubCommand(command_id=cid, action=action, args=args,  # type: ignore[arg-type]
                       consistency=consistency)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise HubError(f"bad command: {'.'.join(map(str, first['loc']))}: "
                           f"{first['msg']}") from None
        cmd = CommandOut(command_id=cid, facility=facility, action=action, args=args,
                         consistency=consistency, who=who[:200], reason=reason[:1000],
                         created_at=time.time())
        stored, settled = self._waiters.expect(cid)
        self._inbox.put(Submit(cmd))
        try:
            cmd = stored.result(timeout=10.0)
        except FutureTimeout:
            self._waiters.forget(cid, settled)
            raise Unavailable("the hub's store did not take the command in time") from None
        if cmd.state != "pending" or consistency != "strong":
            self._waiters.forget(cid, settled)
            return self.command_fate(cid) if cmd.state == "pending" else cmd
        try:
            return settled.result(timeout=timeout_s)
        except FutureTimeout:
            self._waiters.forget(cid, settled)
            m = w.facilities.get(facility)
            why = ("the hub's broker link is down" if not w.link.connected else
                   "its edge is offline" if m is None or not m.online else
                   "its edge did not answer")
            raise Unavailable(f"no reply to command {cid} ({action}) from facility "
                              f"{facility!r} within {timeout_s} s: {why}; it stays queued "
                              f"and applies when the edge takes it (GET /api/v1/commands/"
                              f"{cid})") from None

    def sync_state(self, facility: str | None = None) -> dict[str, Any]:
        w = self._w()
        if facility is not None and facility not in w.marks:
            raise NotFound(f"no edge of facility {facility!r} has been heard by this hub")
        chosen = [facility] if facility else list(w.marks)
        self._inbox.put(SyncAsk(tuple(chosen)))
        views = w.facilities
        return {"requested": [{"facility": f, "from_seq": views[f].applied_seq + 1,
                               "edge_seq": views[f].edge_seq}
                              for f in chosen if f in views]}
