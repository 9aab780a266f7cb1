"""The hub's global dependency graph: nodes ``facility/workflow``, an edge ``source →
target`` for every dependency a workflow's edge records (local ones, and external ones whose
source runs in another facility). The worker thread builds it; API threads read the copy it
publishes after each round (``GraphView``), so a request checks a new dependency for a cycle
across every facility without touching the replicas.

A cross-facility dependency is a ``CrossDependency`` record in the hub's store (family
``dependencies``): the edge of the target holds it ``waiting`` until the hub sends the
verdict (``_dependencies``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import networkx as nx
from pydantic import BaseModel, ConfigDict, Field

from cloud_hub._model import WorkflowOut
from cloud_hub._service import HubError
from cloud_hub._store import key
from topics import MAX_IDENTIFIER_LENGTH

__all__ = [
    "TERMINAL", "CrossDependency", "CycleRefused", "GraphView", "command_id_of", "node",
    "source_index_key", "workflow_edges",
]

TERMINAL = frozenset({"completed", "failed", "cancelled"})
"""Top-level workflow states after which a workflow waits for nothing."""


def node(facility: str, workflow_id: str) -> str:
    """A workflow's name in the global graph (``/`` never appears in an identifier: one
    MQTT topic level)."""
    return f"{facility}/{workflow_id}"


class CycleRefused(HubError):
    """A dependency that would close a cycle in the global graph (the message names it)."""

    code = "cycle"
    status = 409


class CrossDependency(BaseModel):
    """A dependency of ``target`` (in ``target_facility``) on ``source`` (in
    ``source_facility``), which the hub resolves: ``waiting`` until the source's facts give
    a verdict (``release``, ``fail`` or ``skip``, or ``dropped`` when the target ended
    first), then ``resolved``."""

    model_config = ConfigDict(extra="forbid")

    target_facility: str
    target: str
    source_facility: str
    source: str
    type: str = "sequential"
    conditions: dict[str, Any] = Field(default_factory=dict)
    status: Literal["waiting", "resolved"] = "waiting"
    verdict: str | None = None
    reason: str = ""
    data: dict[str, Any] = Field(default_factory=dict)
    """``data_flow``: what the target received."""
    source_started: bool = False
    """The source was seen out of ``pending`` (for ``parallel`` once its record is all
    that is left)."""
    added_seq: int = 0
    """Seq (in the target's facility) of the event that recorded it."""
    resolved_at: float | None = None
    command_id: str | None = None
    """The ``resolve_dependency`` command the hub sent."""

    @property
    def store_key(self) -> bytes:
        return key(self.target_facility, self.target, self.source_facility, self.source)

    @property
    def source_node(self) -> str:
        return node(self.source_facility, self.source)

    @property
    def target_node(self) -> str:
        return node(self.target_facility, self.target)


def source_index_key(dep: CrossDependency) -> bytes:
    """Its key in the ``index`` family under its source (``dependants`` of a workflow)."""
    return key(b"dsrc", dep.source_facility, dep.source, dep.target_facility, dep.target)


def command_id_of(dep: CrossDependency) -> str:
    """The id of the command that resolves ``dep``: the same every time (a hub that
    restarts and sends it again sends a duplicate the edge ignores)."""
    plain = f"dep-{dep.target}-{dep.source}"
    if len(plain) <= MAX_IDENTIFIER_LENGTH:
        return plain
    digest = hashlib.sha256(dep.store_key).hexdigest()[:40]
    return f"dep-{digest}"


def workflow_edges(w: WorkflowOut) -> set[tuple[str, str]]:
    """``(source node, target node)`` of each dependency ``w`` records while it may still
    wait (an ended workflow waits for nothing: it cannot be on a cycle that matters)."""
    if w.state.split(".", 1)[0] in TERMINAL:
        return set()
    target = node(w.facility, w.id)
    edges = {(node(w.facility, d), target) for d in w.depends_on}
    edges |= {(node(d.facility or w.facility, d.source), target) for d in w.dependencies}
    return edges


@dataclass(frozen=True, slots=True)
class GraphView:
    """What API threads read (replaced whole after a round that changed it): every edge
    ``(source node, target node)`` a workflow may still wait on."""

    edges: frozenset[tuple[str, str]] = frozenset()

    def cycle_with(self, source: str, target: str,
                   extra: Iterable[tuple[str, str]] = ()) -> list[str] | None:
        """The cycle ``source → target`` would close (its nodes, first one repeated at the
        end), else ``None``; ``extra``: edges accepted but not yet seen in a round."""
        if source == target:
            return [source, source]
        graph: nx.DiGraph[str] = nx.DiGraph()
        graph.add_edges_from(self.edges)
        graph.add_edges_from(extra)
        graph.add_edge(source, target)
        try:
            cycle = nx.find_cycle(graph, source=target)
        except nx.NetworkXNoCycle:
            return None
        names = [edge[0] for edge in cycle]
        return [*names, names[0]]

    def refuse_cycle(self, source: str, target: str,
                     extra: Iterable[tuple[str, str]] = ()) -> None:
        """``CycleRefused`` naming the cycle if ``source → target`` closes one."""
        cycle = self.cycle_with(source, target, extra)
        if cycle is not None:
            raise CycleRefused(f"{target} cannot depend on {source}: that closes the "
                               f"dependency cycle {' -> '.join(cycle)}")

    def dependants(self, facility: str, workflow_id: str) -> set[str]:
        """Nodes that may still wait for this workflow."""
        me = node(facility, workflow_id)
        return {t for s, t in self.edges if s == me}
