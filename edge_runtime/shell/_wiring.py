"""The shell's side of the core: open the store, recover the core, commit, snapshot.

Kept apart from ``_runtime`` so that the MQTT plumbing does not know the core's internals:
everything the shell asks of the core and the store goes through ``CoreHost``.
"""

from __future__ import annotations

import gc
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edge_runtime.core import (
    WORKFLOW_TERMINAL,
    Agent,
    Core,
    CoreConfig,
    CoreError,
    CostFunction,
    Event,
    Publish,
    Restarted,
    Step,
    Template,
    TimerFired,
    WorkflowRun,
    WorkflowView,
    decode_workflow_record,
)
from edge_runtime.facility import FacilityMap, load_map
from edge_runtime.shell._config import EdgeConfig
from edge_runtime.shell._intake import VdaInbound
from edge_runtime.store import EventStore, WorkflowCache, maybe_snapshot, recover, store_path
from edge_runtime.templates import load_templates
from edge_runtime.vda5050 import VdaBridge, VdaMaster, VdaTranslation
from topics import Message, ProtocolError, encode, encode_vda, parse_topic

__all__ = ["UNREACHABLE", "CoreHost", "VdaUnsupported", "map_cost", "open_core"]

_log = logging.getLogger("fleetflow.edge")
_UNFREEZE_EVERY = 10
"""Snapshots between two full garbage collections over everything (``after_commit``)."""

_TEMPLATES_DEFAULT = Path("templates")
UNREACHABLE = 1e9
"""Allocation cost of a step the agent cannot reach on the map."""


class VdaUnsupported(Exception):
    """A VDA 5050 message reached an edge that does not run the VDA master."""

    reason = "vda_unsupported"


@dataclass
class CoreHost:
    """The core, its store and map, and the few operations the shell needs of them."""

    core: Core
    """The recovered sans-IO core."""
    store: EventStore
    """The facility's event store, open read-write."""
    facility_map: FacilityMap | None
    """The map whose path costs allocation uses, if one was given."""
    refusals: tuple[type[Exception], ...] = (CoreError, ProtocolError, VdaUnsupported)
    """Exceptions meaning "input refused, nothing changed"."""
    templates: dict[str, Template] = field(default_factory=dict)
    """The templates the core was made with (a rebuild needs them again)."""
    vda: VdaBridge | None = None
    """The VDA 5050 master and its translation to core agents, if VDA is on."""
    snapshots: int = 0
    """Snapshots saved by this process."""

    def known_agent(self, agent_id: str) -> bool:
        """Whether ``agent_id`` has announced itself."""
        return self.core.knows_agent(agent_id)

    def restarted(self) -> Restarted:
        """The input that re-arms every timer of a recovered core, from the shell's ``now``."""
        return Restarted()

    def timer_input(self, timer_id: str) -> TimerFired:
        """The core input for a timer that fell due."""
        return TimerFired(timer_id)

    def commit(self, events: Sequence[Event],
               records: Mapping[str, bytes] | None = None,
               outbox: Mapping[bytes, bytes | None] | None = None) -> list[bytes]:
        """Make ``events``, archived workflows' records, the command outbox's changes and
        the VDA 5050 master's changed records durable in one WriteBatch.

        Returns the events' ``edge/events`` payloads: the bytes the store kept, to stream.
        """
        vda = self.vda.changed() if self.vda is not None else None
        return self.store.append(events, records or None, outbox or None, vda or None)

    @property
    def vda_urgent(self) -> bool:
        """Whether the VDA 5050 master changed what must be durable before anything is
        published (it sent or reported something): the batch commits even without events."""
        return self.vda is not None and self.vda.urgent

    def workflow_cache(self, capacity: int = 10_000) -> WorkflowCache[WorkflowView]:
        """Reads of a workflow by id: live ones from the core, archived ones via LRU and store."""
        return WorkflowCache(self.store, decode_workflow_record, capacity,
                             live=lambda workflow_id: self.core.workflow(workflow_id))

    def after_commit(self) -> bool:
        """Save a snapshot if one is due (only committed state is ever snapshotted); then
        keep the cycle collector's full passes off the projection.

        A full pass walks every tracked object: with a large projection it stopped the edge
        for 50-75 ms every second or two under load (the benchmark's reaction tail). What
        is alive when a snapshot is taken is mostly the long-lived projection, so it is
        moved to the permanent generation, which passes skip. Cyclic garbage frozen with it
        would never be collected, so every ``_UNFREEZE_EVERY``-th snapshot unfreezes all:
        the next full pass, one long one, reclaims it.
        """
        if not maybe_snapshot(self.store, self.core):
            return False
        _log.info("snapshot saved at seq %d", self.store.last_seq)
        self.snapshots += 1
        if self.snapshots % _UNFREEZE_EVERY == 0:
            gc.unfreeze()
        else:
            gc.freeze()
        return True

    @property
    def vda_subscriptions(self) -> list[tuple[str, int]]:
        """Extra (topic filter, QoS) pairs for VDA 5050 AGVs."""
        return self.vda.subscriptions() if self.vda is not None else []

    def vda_inbound(self, inbound: VdaInbound, now: float) -> VdaTranslation:
        """Feed a VDA 5050 message to the master; the core inputs and messages it yields."""
        if self.vda is None:
            raise VdaUnsupported("this edge does not run the VDA 5050 master (--vda)")
        return self.vda.inbound(inbound.manufacturer, inbound.serial_number, inbound.kind,
                                inbound.message, now)

    def encode_publish(self, effect: Publish) -> bytes | None:
        """The payload of a Publish effect: msgpack for native, JSON for VDA 5050 topics."""
        try:
            if isinstance(effect.message, Message):
                return encode(effect.message)
            parsed = parse_topic(effect.topic)
            return encode_vda(effect.message, parsed.kind)  # type: ignore[arg-type]
        except (ProtocolError, AttributeError) as exc:
            _log.error("not publishing on %s: %s", effect.topic, exc)
            return None

    def replay(self, from_seq: int, to_seq: int | None, limit: int) -> list[bytes]:
        """``edge/events`` payloads of events ``from_seq``..``to_seq`` (at most ``limit``), as
        stored and first streamed, for a hub's gap fill."""
        last = self.store.last_seq if to_seq is None else min(to_seq, self.store.last_seq)
        first = max(1, from_seq, self.store.first_seq)
        if first > last:
            return []
        return list(self.store.read_payloads(first, min(last, first + limit - 1)))

    def gauges(self) -> tuple[int, dict[str, int]]:
        """Active workflows, and agents by status (offline counted apart), for the metrics."""
        workflows = self.core.workflow_counts()
        active = sum(n for top, n in workflows.items() if top not in WORKFLOW_TERMINAL)
        return active, self.core.agent_counts()

    def rebuild(self) -> None:
        """Recover the core afresh from the durable log (after it failed mid-change)."""
        old = self.core
        self.core = recover(
            self.store,
            lambda raw: Core.restore(raw, old.facility, self.templates, old.config),
            lambda: Core(old.facility, self.templates, config=old.config),
        )

    def close(self) -> None:
        """Close the store (releases the RocksDB lock)."""
        self.store.close()


def map_cost(facility_map: FacilityMap) -> CostFunction:
    """Allocation cost from the map: the travel distance from the agent to the step.

    An agent or step without a (known) node costs 0 for travel; an unreachable one costs
    ``UNREACHABLE``, so it only wins when nobody can get there.
    """
    nodes = facility_map.nodes

    def cost(agent: Agent, step: Step, _wf: WorkflowRun) -> float:
        if agent.node not in nodes or step.location not in nodes:
            return 0.0
        travel = facility_map.path_cost(agent.node, step.location)  # type: ignore[arg-type]
        return UNREACHABLE if math.isinf(travel) else travel

    return cost


def open_core(config: EdgeConfig, now: float | None = None) -> CoreHost:
    """Open the facility's store and recover its core: newest snapshot + replay of the tail;
    with ``--vda``, the VDA 5050 master takes up its records (AGVs' liveness from ``now``)."""
    facility_map = load_map(config.map_path) if config.map_path else None
    templates_dir = config.templates_dir or _TEMPLATES_DEFAULT
    templates = load_templates(templates_dir) if templates_dir.is_dir() else {}
    zones = {} if facility_map is None else {
        node: tuple(z) for node in facility_map.nodes
        if (z := facility_map.exclusive_zones(node))}
    core_config = CoreConfig(cost=map_cost(facility_map) if facility_map else None,
                             exclusive_zones=zones, **config.extra)
    path = store_path(config.data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    store = EventStore(path, config.facility, sync=config.sync,  # type: ignore[arg-type]
                       snapshot_every=config.snapshot_every)
    try:
        core = recover(
            store,
            lambda raw: Core.restore(raw, config.facility, templates, core_config),
            lambda: Core(config.facility, templates, config=core_config),
        )
    except Exception:
        store.close()
        raise
    vda = None
    if config.vda:
        master = VdaMaster(graph=facility_map.graph if facility_map else None)
        vda = VdaBridge(config.facility, master, tuple(config.vda_capabilities))
        for problem in vda.load(store.vda_records(), time.time() if now is None else now):
            _log.warning("%s", problem)
        if vda.master.sessions:
            _log.info("VDA 5050: %d AGV sessions taken up, %d with an order running",
                      len(vda.master.sessions),
                      sum(s.active is not None for s in vda.master.sessions.values()))
    return CoreHost(core=core, store=store, facility_map=facility_map, templates=templates,
                    vda=vda)
