"""Ingest: each facility's events, applied in seq order to a replica of its edge's
projection (``edge_runtime.core.Core``, the same templates), so the hub's view of a facility
equals the edge's by construction; what changed goes into one ``StoreBatch``.

Gaps: an event beyond ``applied + 1`` waits in the replica's buffer and the replica asks for
a ``replay`` from ``applied + 1``; an event at or below ``applied`` is a duplicate (a resend,
a replay overlapping the stream) and is dropped. Restart: the newest snapshot of each
replica, then the hub's own stored events after it (snapshot + tail).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

import msgpack

from cloud_hub._model import AgentOut, ConflictOut, WorkflowOut
from cloud_hub._store import HubStore, StoreBatch, hexn, key
from cloud_hub._view import agent_out, conflict_out, workflow_index_keys, workflow_out
from edge_runtime.core import AgentView, Core, CoreError, Event, Template
from topics import unpack_edge_event

__all__ = ["Applied", "Ingest", "Replica"]

_log = logging.getLogger("fleetflow.hub")
_BUFFER_MAX = 100_000
"""Events one facility may hold out of order; beyond, the newest are dropped (replayed)."""
_INDEXED_MAX = 50_000
"""Workflows whose index keys ``Ingest`` remembers (a few KB each at most)."""


@dataclass(slots=True)
class Applied:
    """What one ingest round changed, for after its commit."""

    changes: list[tuple[int, bytes]] = field(default_factory=list)
    """(token, event payload) of each applied event, in feed order."""
    workflows: dict[str, WorkflowOut] = field(default_factory=dict)
    replies: list[tuple[str, Event]] = field(default_factory=list)
    """(facility, ``command_reply`` event) in the order applied."""


class Replica:
    """One facility's projection at the hub, with the events that came too early."""

    def __init__(self, facility: str, core: Core) -> None:
        self.facility = facility
        self.core = core
        self.buffer: dict[int, tuple[Event, bytes]] = {}
        self.agents: dict[str, AgentOut] = {}
        self.agent_views: dict[str, AgentView] = {}
        """The edge's view of each agent when its ``AgentOut`` was last compared."""
        self.conflicts: dict[str, ConflictOut] = {}
        self.since_snapshot = 0
        self.broken: str | None = None
        """Why this replica stopped applying (an event its core refused), else ``None``."""

    @property
    def applied(self) -> int:
        return self.core.last_seq

    @property
    def gap_from(self) -> int | None:
        """The first seq missing before a buffered event, if any is buffered."""
        return self.applied + 1 if self.buffer else None


class Ingest:
    """The replicas of every facility (the worker thread's own)."""

    def __init__(self, store: HubStore, templates: Mapping[str, Template],
                 snapshot_every: int) -> None:
        self.store = store
        self.templates = templates
        self.snapshot_every = snapshot_every
        self.replicas: dict[str, Replica] = {}
        raw = store.get("meta", b"token")
        self.token = 0 if raw is None else int(raw)
        self.dropped = 0
        """Duplicates dropped (already applied)."""
        self.restored: dict[str, dict[str, int]] = {}
        """Per facility at start: the snapshot's seq and the stored events replayed after."""
        self._indexed: dict[bytes, tuple[set[bytes], list[str]]] = {}
        """Recently written workflows' index keys and agents, by record key: what
        ``_put_workflow`` would otherwise read back and re-parse to swap them (bounded)."""

    # --- restart -----------------------------------------------------------------------

    def load(self, facilities: Mapping[str, int]) -> None:
        """Each facility's replica from its newest snapshot plus its stored tail, up to
        ``facilities[f]`` (the applied seq committed with the rest)."""
        for facility, applied in facilities.items():
            snap = self.store.get("snapshots", facility.encode())
            if snap is None:
                core, seq = Core(facility, self.templates), 0
            else:
                seq, data = msgpack.unpackb(snap)
                core = Core.restore(data, facility, self.templates)
            replica = self.replicas[facility] = Replica(facility, core)
            tail = 0
            for _, payload in self.store.scan("events", key(facility, b""),
                                              seek=key(facility, hexn(seq + 1)),
                                              stop=key(facility, hexn(applied + 1))):
                s, hlc, _f, kind, wid, data = unpack_edge_event(payload)
                core.apply(Event(s, hlc, kind, wid, data))
                tail += 1
            self.restored[facility] = {"snapshot_seq": seq, "tail_events": tail}
            for _, raw in self.store.scan("agents", key(facility, b"")):
                a = AgentOut.model_validate_json(raw)
                replica.agents[a.id] = a
            for _, raw in self.store.scan("conflicts", key(facility, b"")):
                c = ConflictOut.model_validate_json(raw)
                replica.conflicts[c.id] = c
            _log.info("hub replica of %s restored at seq %d (snapshot %d)", facility,
                      core.last_seq, seq)

    def replica(self, facility: str) -> Replica:
        replica = self.replicas.get(facility)
        if replica is None:
            replica = self.replicas[facility] = Replica(facility, Core(facility, self.templates))
        return replica

    # --- one round ---------------------------------------------------------------------

    def take(self, facility: str, event: Event, payload: bytes) -> bool:
        """Hold ``event`` for ``apply``; ``False`` if it is a duplicate (dropped)."""
        replica = self.replica(facility)
        if event.seq <= replica.applied or event.seq in replica.buffer:
            self.dropped += 1
            return False
        if len(replica.buffer) < _BUFFER_MAX:
            replica.buffer[event.seq] = (event, payload)
        return True

    def apply(self, batch: StoreBatch, out: Applied) -> None:
        """Apply every replica's contiguous buffered events into ``batch``."""
        for replica in self.replicas.values():
            if replica.buffer and replica.broken is None:
                self._drain(replica, batch, out)

    def _drain(self, replica: Replica, batch: StoreBatch, out: Applied) -> None:
        core, facility = replica.core, replica.facility
        touched: dict[str, int] = {}
        agents: dict[str, set[str]] = {}
        """Agents assigned a step, by workflow (a step's agent is cleared when it ends)."""
        fkey = facility.encode() + b"\0"
        while (nxt := replica.buffer.pop(core.last_seq + 1, None)) is not None:
            ev, payload = nxt
            if ev.kind == "workflow_archived" and ev.workflow_id in touched:
                # It leaves the replica's memory: its final record is the view before.
                wid = ev.workflow_id
                if (view := core.workflow(wid)) is not None:
                    self._put_workflow(batch, workflow_out(facility, view, touched.pop(wid)),
                                       out, agents.pop(wid, set()))
            try:
                core.apply(ev)
            except (CoreError, KeyError, ValueError, TypeError) as exc:
                # The edge applied it: our templates or build differ from the edge's.
                replica.broken = f"event {ev.seq} ({ev.kind}) does not apply here: {exc}"
                _log.error("hub replica of %s stopped: %s", facility, replica.broken)
                break
            self.token += 1
            where = fkey + hexn(ev.seq)  # key(facility, seq), made without the join
            batch.put("events", where, payload)
            batch.put("changes", hexn(self.token), where)
            out.changes.append((self.token, payload))
            if ev.workflow_id is not None:
                batch.put("index", b"ev\0" + ev.workflow_id.encode() + b"\0" + where, b"")
                touched[ev.workflow_id] = ev.seq
                if isinstance(agent := ev.data.get("agent"), str):  # step_assigned …
                    agents.setdefault(ev.workflow_id, set()).add(agent)
            if ev.kind == "command_reply":
                out.replies.append((facility, ev))
            replica.since_snapshot += 1
        batch.put("meta", b"token", str(self.token).encode())
        for wid, seq_n in touched.items():
            view = core.workflow(wid)
            if view is not None:  # archived: the record written before stays, final
                self._put_workflow(batch, workflow_out(facility, view, seq_n), out,
                                   agents.get(wid, set()))
        self._put_agents(replica, batch)
        self._put_conflicts(replica, batch)
        if replica.since_snapshot >= self.snapshot_every:
            batch.put("snapshots", facility.encode(),
                      msgpack.packb([core.last_seq, core.snapshot()]))
            replica.since_snapshot = 0

    def _put_workflow(self, batch: StoreBatch, w: WorkflowOut, out: Applied,
                      took_part: set[str]) -> None:
        """Write ``w``'s record and swap its index keys; ``took_part``: agents newly seen
        assigned one of its steps (kept with it, so the agent index finds finished work)."""
        rec = key(w.facility, w.id)
        ag_key = key(b"wfag", w.facility, w.id)
        cached = self._indexed.pop(rec, None)
        if cached is not None:  # written by this worker: the store holds exactly this
            old, had = cached
        else:
            old_raw = batch.get("workflows", rec)
            raw_agents = batch.get("index", ag_key)
            had = [] if raw_agents is None else msgpack.unpackb(raw_agents)
            old = set() if old_raw is None else workflow_index_keys(
                WorkflowOut.model_validate_json(old_raw), had)
            batch.put("locator", w.id.encode(), w.facility.encode())
        now_agents = sorted(set(had) | took_part) if took_part else had
        if now_agents != had:
            batch.put("index", ag_key, msgpack.packb(now_agents))
        new = workflow_index_keys(w, now_agents)
        for k in old - new:
            batch.delete("index", k)
        for k in new - old:
            batch.put("index", k, b"")
        batch.put("workflows", rec, w.model_dump_json().encode())
        out.workflows[w.id] = w
        if len(self._indexed) >= _INDEXED_MAX:
            del self._indexed[next(iter(self._indexed))]  # the least recently written
        self._indexed[rec] = (new, now_agents)

    def _put_agents(self, replica: Replica, batch: StoreBatch) -> None:
        # Each round, for every agent of a facility the round touched: compare the edge's
        # views (cheap dataclasses) and build the read model only for those that changed.
        seen = replica.agent_views
        for aid, view in replica.core.agents().items():
            if seen.get(aid) == view:
                continue
            seen[aid] = view
            a = agent_out(replica.facility, view)
            if replica.agents.get(aid) != a:
                replica.agents[aid] = a
                batch.put("agents", key(replica.facility, aid), a.model_dump_json().encode())

    def _put_conflicts(self, replica: Replica, batch: StoreBatch) -> None:
        if not replica.core.state.conflicts and not replica.conflicts:
            return
        for cid, view in replica.core.conflicts().items():
            c = conflict_out(replica.facility, view)
            if replica.conflicts.get(cid) != c:
                replica.conflicts[cid] = c
                batch.put("conflicts", key(replica.facility, cid),
                          c.model_dump_json().encode())
