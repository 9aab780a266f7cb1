"""The shell's side of the core: open the store, recover the core, commit, snapshot.

Kept apart from ``_runtime`` so that the MQTT plumbing does not know the core's internals:
everything the shell asks of the core and the store goes through ``CoreHost``.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edge_runtime.core import (
    WORKFLOW_TERMINAL,
    Core,
    CoreConfig,
    CoreError,
    Effect,
    Event,
    Input,
    Publish,
    Restarted,
    Template,
    TimerFired,
    WorkflowView,
    decode_workflow_record,
)
from edge_runtime.facility import UNREACHABLE, FacilityMap, load_map, map_cost, zones_by_node
from edge_runtime.shell._config import EdgeConfig
from edge_runtime.shell._intake import Inbound, Intake, Reject, VdaInbound
from edge_runtime.shell._journal import Journal, boot_record
from edge_runtime.shell._startup import log_startup
from edge_runtime.shell._vda_status import Out, VdaStatus
from edge_runtime.store import (
    EventStore,
    WorkflowCache,
    maybe_snapshot,
    recover,
    replays_to_snapshot,
    store_path,
)
from edge_runtime.templates import read_template_sources, templates_from_sources
from edge_runtime.vda5050 import VdaBridge, VdaMaster, VdaTranslation
from topics import Message, ProtocolError, encode, encode_vda, parse_topic

__all__ = ["UNREACHABLE", "CoreHost", "VdaUnsupported", "map_cost", "open_core"]

_log = logging.getLogger("fleetflow.edge")
_UNFREEZE_EVERY = 10
"""Snapshots between two full garbage collections over everything (``after_commit``)."""

_TEMPLATES_DEFAULT = Path("templates")


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
    journal: Journal | None = None
    """The core's inputs being recorded (``EdgeConfig.record_inputs``), else ``None``."""
    vda_status: VdaStatus | None = None
    """The ``edge/vda`` link health, if VDA is on."""

    def handle(self, inbound: Input, now: float) -> list[Effect]:
        """``Core.handle``, the input recorded first if inputs are (refused: marked so).

        Looked up on ``core`` at each call (a rebuild replaces the core; tests inject
        faults into ``core.handle``); not recording, it adds one call and nothing else."""
        journal = self.journal
        if journal is None:
            return self.core.handle(inbound, now)
        journal.record(inbound, now)
        try:
            return self.core.handle(inbound, now)
        except Exception as exc:
            journal.refused(exc)
            raise

    def decode(self, intake: Intake, topic: str, payload: bytes) -> Inbound | Reject:
        """``intake.decode``; while recording, a native message's payload is kept as its
        record (``Journal.wire``: no encoding it again)."""
        inbound = intake.decode(topic, payload)
        if self.journal is not None and isinstance(inbound, Message):
            self.journal.wire(inbound, payload)
        elif self.vda_status is not None and isinstance(inbound, Reject):
            self.vda_status.refused(topic)  # an AGV's refused message counts in edge/vda
        return inbound

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
        inputs = self.journal.take() if self.journal is not None else None
        return self.store.append(events, records or None, outbox or None, vda or None,
                                 inputs or None)

    @property
    def commit_due(self) -> bool:
        """Whether the batch commits even without events: the VDA 5050 master changed what
        must be durable before anything is published (it sent or reported something), or
        recorded inputs wait (``Journal``)."""
        return (self.vda is not None and self.vda.urgent) or (
            self.journal is not None and self.journal.pending)

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
        try:
            return self.vda.inbound(inbound.manufacturer, inbound.serial_number, inbound.kind,
                                    inbound.message, now)
        except ProtocolError:  # refused by the master (identity, version): counted too
            if self.vda_status is not None:
                self.vda_status.health.refused(inbound.manufacturer, inbound.serial_number)
            raise

    def vda_status_due(self, now: float, session: int) -> list[Out]:
        """The ``edge/vda`` message to publish now, if VDA is on and it changed."""
        return self.vda_status.due(now, session) if self.vda_status is not None else []

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

    def snapshot_at_stop(self) -> None:
        """On a graceful stop, keep the live projection as a snapshot at its last seq (unless
        one is there): the next start replays nothing, and ``replays_to_snapshot`` (the chaos
        test, ``fleetflow edge verify``) can check that the log folds to exactly this state.
        Skipped when the projection is not the committed state."""
        seq = self.core.last_seq
        newest = self.store.latest_snapshot()
        if seq == 0 or seq != self.store.last_seq or (newest is not None and newest.seq == seq):
            return
        self.store.save_snapshot(seq, self.core.snapshot())
        self.store.prune_snapshots()

    def close(self) -> None:
        """Close the store (releases the RocksDB lock)."""
        self.store.close()


def _core_parts(config: EdgeConfig) -> tuple[
        FacilityMap | None, Path, dict[str, str], dict[str, Template], CoreConfig]:
    """The map, templates (dir, sources, parsed) and core options an edge runs with."""
    facility_map = load_map(config.map_path) if config.map_path else None
    templates_dir = config.templates_dir or _TEMPLATES_DEFAULT
    sources = read_template_sources(templates_dir) if templates_dir.is_dir() else {}
    templates = templates_from_sources(sources, templates_dir)  # errors: full path
    core_config = CoreConfig(cost=map_cost(facility_map) if facility_map else None,
                             exclusive_zones=zones_by_node(facility_map), **config.extra)
    return facility_map, templates_dir, sources, templates, core_config


def verify_log(config: EdgeConfig) -> tuple[str, int, str | None]:
    """Check, on a stopped edge's store, that its whole log replays to the newest snapshot
    (after a graceful stop: the state the edge ran with). The facility, the seq checked, and
    ``None`` or what differs; ``StoreError`` if the store cannot tell."""
    _map, _dir, _sources, templates, core_config = _core_parts(config)
    with EventStore(store_path(config.data_dir), None, read_only=True) as store:
        facility = store.facility
        seq, difference = replays_to_snapshot(
            store, lambda: Core(facility, templates, config=core_config))
    return facility, seq, difference


def open_core(config: EdgeConfig, now: float | None = None) -> CoreHost:
    """Open the facility's store and recover its core: newest snapshot + replay of the tail;
    with ``--vda``, the VDA 5050 master takes up its records (AGVs' liveness from ``now``)."""
    facility_map, templates_dir, sources, templates, core_config = _core_parts(config)
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
    log_startup(templates_dir, templates, config.map_path, facility_map, core,
                tuple(config.vda_capabilities) if config.vda else None)
    journal = None
    if config.record_inputs:  # the boot record: what a replay needs to make this core again
        journal = Journal(store.input_count())
        journal.boot(boot_record(config, store.last_seq, sources),
                     time.time() if now is None else now)
    return CoreHost(core=core, store=store, facility_map=facility_map, templates=templates,
                    vda=vda, journal=journal,
                    vda_status=VdaStatus(config.facility, vda) if vda is not None else None)
