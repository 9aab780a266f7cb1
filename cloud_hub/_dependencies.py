"""Cross-facility dependencies at the hub: the ``RoundObserver`` that keeps the global graph
and releases (or fails, or skips) a target in one facility when its source in another
gives a verdict.

Why the hub learns of a cross-facility dependency from the target's edge, not from the API
request: the edge's event log is the truth. ``add_dependency`` with another ``facility``
(or ``create_workflow`` with external ``dependencies``) makes the target's edge record a
``dependency_added`` (``workflow_created``) event; when the hub ingests it, this observer
writes the ``CrossDependency`` in the same round's batch. So a dependency added while the
hub was busy, or straight over MQTT, is resolved all the same, and a hub restart rebuilds
nothing it did not store with the events that made it.

Release: each round, every waiting dependency whose source changed (its record was written
this round) or that was just recorded is judged by ``edge_runtime.core``'s
``dependency_outcome`` — the very rules the edge applies to local ones — on the source's
facts: from the source facility's replica while the source lives there, else from its final
record in the hub's store. A verdict other than ``wait`` marks the dependency resolved in
the batch and returns a ``resolve_dependency`` command for the target's edge, which goes
through the durable outbox with a deterministic id. After a restart (``load``) every
waiting dependency is judged again in the first round.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from cloud_hub._dependencies_graph import (
    TERMINAL,
    CrossDependency,
    GraphView,
    command_id_of,
    node,
    source_index_key,
    workflow_edges,
)
from cloud_hub._ingest import Applied, Ingest
from cloud_hub._model import CommandOut, WorkflowOut
from cloud_hub._service import Unavailable
from cloud_hub._store import HubStore, StoreBatch, key
from cloud_hub._view import workflow_out
from edge_runtime.core import SourceFacts, dependency_outcome, source_facts
from topics import unpack_edge_event

__all__ = ["Dependencies"]

_log = logging.getLogger("fleetflow.hub")
_ACCEPTED_S = 60.0
_MARK = b"ependenc"
"""In the raw payload of every event that adds or resolves a dependency (``dependency_…``,
``workflow_created`` with ``dependencies``): a cheap filter before decoding."""


class Dependencies:
    """The hub's dependency graph and cross-facility release (one per hub)."""

    def __init__(self) -> None:
        self.view = GraphView()
        """Published after each round that changed it: API threads read only this."""
        self._store: HubStore | None = None
        self._cross: dict[bytes, CrossDependency] = {}
        """The waiting cross-facility dependencies (resolved ones live in the store only)."""
        self._by_source: dict[str, set[bytes]] = {}
        self._by_target: dict[str, set[bytes]] = {}
        self._edges: dict[str, set[tuple[str, str]]] = {}
        """Target node → its ``(source, target)`` edges, from its latest record."""
        self._recheck = False
        self._lock = threading.Lock()
        self._accepted: dict[tuple[str, str], float] = {}
        """Edges an API request sent but no round has recorded yet, with when (cycle checks
        see them: two requests cannot close a cycle between them). One the edge never
        records (refused after an ``eventual`` 202) stops counting after ``_ACCEPTED_S``."""

    # --- RoundObserver -----------------------------------------------------------------

    def load(self, ingest: Ingest, store: HubStore, now: float) -> None:
        """The stored cross-facility dependencies and the replicas' live edges; every
        waiting one is judged again in the first round."""
        self._store = store
        for _, raw in store.scan("dependencies", b""):
            dep = CrossDependency.model_validate_json(raw)
            if dep.status == "waiting":
                self._index(dep)
        for facility, replica in ingest.replicas.items():
            for view in replica.core.workflows().values():
                self._set_edges(workflow_out(facility, view, 0))
        self._recheck = True
        self._publish()

    def after_apply(self, ingest: Ingest, out: Applied, batch: StoreBatch,
                    now: float) -> list[CommandOut]:
        """Record what this round's events added or resolved, judge what may have moved."""
        if not out.changes and not self._recheck:
            return []
        judge: set[bytes] = set()
        changed = False
        for _, payload in out.changes:
            if _MARK in payload:
                changed |= self._read_event(payload, batch, judge)
        for w in out.workflows.values():
            changed |= self._set_edges(w)
            if not self._cross:
                continue
            me = node(w.facility, w.id)
            judge |= self._by_source.get(me, set())
            if me in self._by_target and w.state.split(".", 1)[0] in TERMINAL:
                for k in list(self._by_target[me]):
                    changed |= self._drop(k, w, batch, now)
        if self._recheck:
            judge |= {k for k, d in self._cross.items() if d.status == "waiting"}
            self._recheck = False
        commands: list[CommandOut] = []
        for k in sorted(judge):
            dep = self._cross.get(k)
            if dep is not None and dep.status == "waiting":
                cmd, moved = self._judge(dep, ingest, batch, now)
                changed |= moved
                if cmd is not None:
                    commands.append(cmd)
        if changed:
            self._publish()
        return commands

    # --- what the API threads call -----------------------------------------------------

    def accept(self, source: str, target: str) -> None:
        """Check ``source → target`` (nodes) against the global graph and hold it as
        accepted until a round records it; ``CycleRefused`` naming the cycle if it closes
        one."""
        now = time.monotonic()
        with self._lock:
            for edge in [e for e, t in self._accepted.items() if now - t > _ACCEPTED_S]:
                del self._accepted[edge]
            self.view.refuse_cycle(source, target, self._accepted)
            self._accepted[(source, target)] = now

    def forget(self, source: str, target: str) -> None:
        """An accepted edge whose command the edge refused (or was never sent)."""
        with self._lock:
            self._accepted.pop((source, target), None)

    def of_target(self, facility: str, workflow_id: str) -> list[CrossDependency]:
        """The cross-facility dependencies of a workflow, waiting or resolved (from the
        store: what the last committed round recorded)."""
        return [CrossDependency.model_validate_json(raw) for _, raw in
                self._read().scan("dependencies", key(facility, workflow_id, b""))]

    def dependants(self, facility: str, workflow_id: str) -> list[str]:
        """``facility/workflow`` of every workflow that waits (or waited, across
        facilities) for this one, sorted."""
        found = self.view.dependants(facility, workflow_id)
        prefix = key(b"dsrc", facility, workflow_id, b"")
        for k, _ in self._read().scan("index", prefix):
            tf, t = k[len(prefix):].split(b"\0", 1)
            found.add(node(tf.decode(), t.decode()))
        return sorted(found)

    def _read(self) -> HubStore:
        if self._store is None or self._store.closed:
            raise Unavailable("the hub's store is closed")
        return self._store

    # --- inside a round ------------------------------------------------------------------

    def _read_event(self, payload: bytes, batch: StoreBatch, judge: set[bytes]) -> bool:
        _seq, _hlc, facility, kind, wid, data = unpack_edge_event(payload)
        if wid is None:
            return False
        if kind == "dependency_added":
            specs: list[Any] = [data]
        elif kind == "workflow_created":
            specs = list(data.get("dependencies") or ())
        elif kind == "dependency_resolved":
            return self._resolved_by_edge(facility, wid, data, batch)
        else:
            return False
        changed = False
        for spec in specs:
            other = spec.get("facility") if isinstance(spec, dict) else None
            source = spec.get("depends_on") if isinstance(spec, dict) else None
            if not isinstance(other, str) or other == facility or not isinstance(source, str):
                continue
            dep = CrossDependency(target_facility=facility, target=wid,
                                  source_facility=other, source=source,
                                  type=str(spec.get("type") or "sequential"),
                                  conditions=dict(spec.get("conditions") or {}),
                                  added_seq=_seq)
            if batch.get("dependencies", dep.store_key) is not None:
                continue  # a replay of what is recorded already
            self._index(dep)
            batch.put("dependencies", dep.store_key, dep.model_dump_json().encode())
            batch.put("index", source_index_key(dep), b"")
            judge.add(dep.store_key)
            changed = True
        return changed

    def _resolved_by_edge(self, facility: str, wid: str, data: dict[str, Any],
                          batch: StoreBatch) -> bool:
        """The edge recorded a verdict (ours, or one sent by someone else): the hub stops
        judging that dependency."""
        other, source = data.get("facility"), data.get("depends_on")
        if not isinstance(other, str) or not isinstance(source, str):
            return False
        dep = self._cross.get(key(facility, wid, other, source))
        if dep is None or dep.status == "resolved":
            return False
        done = dep.model_copy(update={"status": "resolved",
                                      "verdict": str(data.get("verdict") or ""),
                                      "reason": str(data.get("reason") or "")})
        self._save(done, batch)
        return True

    def _judge(self, dep: CrossDependency, ingest: Ingest, batch: StoreBatch,
               now: float) -> tuple[CommandOut | None, bool]:
        facts = self._facts(dep, ingest, batch)
        if facts is None:
            return None, False
        moved = False
        if facts.started and not dep.source_started:
            dep = dep.model_copy(update={"source_started": True})
            self._save(dep, batch)
            moved = True
        ref = dep.source_node
        outcome = dependency_outcome(dep.type, dep.conditions, facts, ref)
        if outcome.verdict == "wait":
            return None, moved
        cid = command_id_of(dep)
        done = dep.model_copy(update={"status": "resolved", "verdict": outcome.verdict,
                                      "reason": outcome.reason, "data": dict(outcome.data),
                                      "resolved_at": now, "command_id": cid})
        self._save(done, batch)
        _log.info("hub resolved %s's dependency on %s: %s", dep.target_node, ref,
                  outcome.verdict)
        args = {"workflow_id": dep.target, "depends_on": dep.source,
                "facility": dep.source_facility, "verdict": outcome.verdict,
                "data": dict(outcome.data), "reason": outcome.reason}
        return CommandOut(command_id=cid, facility=dep.target_facility,
                          action="resolve_dependency", args=args, consistency="eventual",
                          who="hub", reason=f"dependency on {ref}: {outcome.verdict}",
                          created_at=now), True

    def _facts(self, dep: CrossDependency, ingest: Ingest,
               batch: StoreBatch) -> SourceFacts | None:
        """The source's facts from its replica while it lives there, else from its final
        record; ``None`` while the hub has never seen it (it waits)."""
        replica = ingest.replicas.get(dep.source_facility)
        if replica is not None and replica.broken is None:
            run = replica.core.state.workflows.get(dep.source)
            if run is not None:
                return source_facts(run, replica.core.state)
        raw = batch.get("workflows", key(dep.source_facility, dep.source))
        if raw is None:
            return None
        w = WorkflowOut.model_validate_json(raw)
        top = w.state.split(".", 1)[0]
        started = dep.source_started or (top != "pending" and (
            top not in TERMINAL or any(s.state != "pending" for s in w.steps)))
        outputs = {s.id: dict(s.outputs or {}) for s in w.steps if s.state == "done"}
        return SourceFacts(state=w.state, started=started, data=dict(w.data),
                           outputs=outputs, holds=frozenset())

    def _drop(self, k: bytes, target: WorkflowOut, batch: StoreBatch, now: float) -> bool:
        """The target ended before the verdict: nothing is left to release."""
        dep = self._cross.get(k)
        if dep is None:
            return False
        self._save(dep.model_copy(update={
            "status": "resolved", "verdict": "dropped", "resolved_at": now,
            "reason": f"{dep.target_node} ended ({target.state}) first"}), batch)
        return True

    # --- bookkeeping -------------------------------------------------------------------

    def _index(self, dep: CrossDependency) -> None:
        k = dep.store_key
        self._cross[k] = dep
        self._by_source.setdefault(dep.source_node, set()).add(k)
        self._by_target.setdefault(dep.target_node, set()).add(k)
        with self._lock:
            self._accepted.pop((dep.source_node, dep.target_node), None)

    def _save(self, dep: CrossDependency, batch: StoreBatch) -> None:
        """Write ``dep``; a resolved one leaves memory (the store keeps it)."""
        k = dep.store_key
        batch.put("dependencies", k, dep.model_dump_json().encode())
        if dep.status == "waiting":
            self._cross[k] = dep
            return
        self._cross.pop(k, None)
        for index, name in ((self._by_source, dep.source_node),
                            (self._by_target, dep.target_node)):
            keys = index.get(name)
            if keys is not None:
                keys.discard(k)
                if not keys:
                    del index[name]

    def _set_edges(self, w: WorkflowOut) -> bool:
        if not w.depends_on and not w.dependencies and not self._edges:
            return False  # the common case, kept cheap: the ingest's hot path
        target = node(w.facility, w.id)
        edges = workflow_edges(w)
        if self._edges.get(target, set()) == edges:
            return False
        if edges:
            self._edges[target] = edges
        else:
            self._edges.pop(target, None)
        with self._lock:
            for edge in edges:
                self._accepted.pop(edge, None)
        return True

    def _publish(self) -> None:
        edges = {e for es in self._edges.values() for e in es}
        edges |= {(d.source_node, d.target_node) for d in self._cross.values()}
        self.view = GraphView(edges=frozenset(edges))
