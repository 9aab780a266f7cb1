"""The virtual mode: a scenario run in-process under SimPy time, deterministically.

One real ``edge_runtime.core.Core`` per facility (``SimEdge``), the agents woken by
callbacks on SimPy's queue (``SimAgent``, each hosting the native ``AgentBehaviour``),
arrival processes that send the
hub's ``create_workflow`` commands, and fault processes. No broker, no thread, no wall
clock: time is ``EPOCH + env.now``, every random number comes from ``random.Random``
seeded by the scenario seed, and SimPy orders simultaneous events by when they were
scheduled — so the same scenario and seed give the same events, byte for byte
(``SimResult.log_hash``).
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, Protocol

import simpy

from agents_sim._native_spec import AgentSpec, Outgoing
from agents_sim._sim_agent import DEFAULT_SPEED, AgentModel, SimAgent, SimLink
from agents_sim._sim_arrivals import arrive, create_args
from agents_sim._sim_calls import collector_paused
from agents_sim._sim_edge import SimEdge
from agents_sim._sim_hub import HubFactory, HubModel, SimHub, open_hub, start_hub
from agents_sim._sim_routines import model_fields
from agents_sim._sim_scenario import Arrival, FacilitySpec, Fault, Scenario
from agents_sim._sim_vda import SimVdaRobot
from agents_sim._sim_vda_edge import vda_fleet
from edge_runtime.core import Core, CoreConfig, Effect, Event, Input
from edge_runtime.facility import map_cost, zones_by_node
from topics import pack_edge_events

__all__ = ["EPOCH", "FleetHost", "Progress", "RecordingCore", "SimResult", "build_fleet",
           "facility_core", "log_hash", "run_virtual"]

EPOCH = 1_767_225_600.0
"""What simulated time 0 is (2026-01-01T00:00:00Z): a fixed clock, never the wall's."""

Progress = Callable[[float, float], None]
"""Called with (simulated seconds done, seconds planned) while a run goes on."""

BROKER_RESTART_S = 5.0
"""How long a ``broker_restart`` without ``duration_s`` keeps the facility's broker down."""


@dataclass
class SimResult:
    """What a virtual run leaves: the event logs, their hash, every workflow's outcome."""

    scenario: Scenario
    seed: int
    """The seed the run used (the scenario's unless overridden)."""
    events: dict[str, list[Event]]
    """Facility -> every event its core appended, in ``seq`` order."""
    log_hash: str
    """sha256 over every facility's encoded events (scenario order, then ``seq``)."""
    workflows: dict[str, dict[str, str]]
    """Facility -> workflow id -> its final state (``active`` if it never ended)."""
    sim_s: float
    """Simulated seconds the run took (arrivals plus the drain)."""
    rejected: dict[str, int] = field(default_factory=dict)
    """Facility -> agent messages its core refused (late reports of requeued steps …)."""
    dropped: int = 0
    """Messages lost on cut links (an agent's or a whole edge's)."""
    inputs: dict[str, list[tuple[Input, float]]] = field(default_factory=dict)
    """Facility -> every input its core was handed, with its time (``record_inputs``)."""
    hub: dict[str, Any] | None = None
    """What the hub aggregated (``HubModel.summary``, with its ``state_hash``), when the
    run had one (``run_virtual(hub=…)``)."""

    @property
    def duration_s(self) -> float:
        """The run's length in simulated seconds, the drain included (``sim_s``): what a
        report measures rates over."""
        return self.sim_s

    def summary(self) -> dict[str, Any]:
        """Per facility: workflows by final state and events; and the log hash."""
        facilities: dict[str, Any] = {}
        for fid, outcome in self.workflows.items():
            facilities[fid] = {**outcome_counts(outcome), "events": len(self.events[fid]),
                               "rejected": self.rejected.get(fid, 0)}
        out = {"scenario": self.scenario.name, "seed": self.seed, "sim_s": self.sim_s,
               "log_hash": self.log_hash, "facilities": facilities}
        return out if self.hub is None else {**out, "hub": self.hub}

    @property
    def all_terminal(self) -> bool:
        """Every workflow created ended (completed, failed or cancelled)."""
        return all(s != "active" for o in self.workflows.values() for s in o.values())


def outcome_counts(outcome: dict[str, str]) -> dict[str, int]:
    """``workflows`` (how many) and, by state name in order, how many ended in each."""
    counts = Counter(outcome.values())
    return {"workflows": len(outcome), **dict(sorted(counts.items()))}


def log_hash(events: dict[str, list[Event]]) -> str:
    """sha256 over each facility's events as the edge stores them (``edge/events`` payloads,
    each prefixed with its length), facility by facility in the given order."""
    digest = hashlib.sha256()
    for facility, log in events.items():
        for payload in pack_edge_events(log, facility):
            digest.update(len(payload).to_bytes(4, "big"))
            digest.update(payload)
    return digest.hexdigest()


class FleetHost(Protocol):
    """Where a facility's agents talk to: its edge (``SimEdge``, or the live run's MQTT
    side)."""

    agents: dict[str, Any]

    def from_agent(self, agent_id: str, out: Outgoing) -> None: ...

    def estimate(self, a: Any) -> float | None: ...


def build_fleet(env: simpy.Environment, f: FacilitySpec, host: FleetHost, *, seed: int,
                epoch: float, latency_s: float) -> list[SimAgent]:
    """The facility's agents (its fleet entries' models), each a ``SimAgent`` whose
    messages go to ``host.from_agent``; also registered in ``host.agents``. Virtual and
    live runs build their fleets here: one model of each agent kind."""
    m = f.facility_map
    start = None if m is None else (m.chargers or list(m.nodes))[0]
    made: list[SimAgent] = []
    for entry in f.fleet:
        if entry.protocol != "native":
            continue  # VDA 5050 robots: ``vda_fleet`` (virtual), ``LiveVda`` (live)
        model = AgentModel(
            kind=entry.kind, speed=None if entry.kind == "ai" else (
                entry.speed or DEFAULT_SPEED[entry.kind]),
            drain_per_m=0.01 if entry.drain_per_m is None else entry.drain_per_m,
            accept_delay_s=(5.0 if entry.accept_delay_s is None else entry.accept_delay_s)
            if entry.kind == "human" else 0.0,
            duration_cv=entry.duration_cv, **model_fields(entry))
        for n in range(1, entry.count + 1):
            spec = AgentSpec(
                f"{entry.id_prefix or entry.kind}-{n}", kind=entry.kind,
                capabilities=tuple(entry.capabilities),
                node=None if entry.kind == "ai" else (entry.node or start),
                state_period_s=entry.state_period_s, liveness_s=entry.liveness_s,
                progress_steps=entry.progress_steps, seed=seed)
            agent = SimAgent(
                env, spec, model, epoch=epoch,
                link=SimLink(env, latency_s), to_edge=host.from_agent,
                seed=hash_seed(seed, f.id), facility_map=m, estimate=host.estimate,
                battery=100.0 if entry.battery is None else entry.battery)
            host.agents[spec.agent_id] = agent
            made.append(agent)
    return made


class RecordingCore(Core):
    """A ``Core`` that keeps every input it is handed, with its time, refused ones too
    (``fleetflow bench sim`` feeds them to fresh cores without SimPy: its baseline)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.inputs: list[tuple[Input, float]] = []
        """(input, now) in the order handed in."""

    def handle(self, input: Input, now: float) -> list[Effect]:
        """Record the input, then handle it as a ``Core`` does."""
        self.inputs.append((input, now))
        return super().handle(input, now)


def facility_core(f: FacilitySpec, *, record: bool = False) -> Core:
    """The facility's edge core as a virtual run configures it (cost = path length on its
    map, the map's exclusive zones, the scenario's ``core`` settings); a ``RecordingCore``
    with ``record``."""
    m = f.facility_map
    c = f.core
    config = CoreConfig(
        cost=map_cost(m) if m is not None else None, exclusive_zones=zones_by_node(m),
        manual_intervention=c.manual_intervention, liveness_factor=c.liveness_factor,
        stall_factor=c.stall_factor, max_queued_per_agent=c.max_queued_per_agent,
        batch_window_s=c.batch_window_s, battery_per_meter=c.battery_per_meter,
        battery_per_action=c.battery_per_action, battery_reserve=c.battery_reserve)
    return (RecordingCore if record else Core)(f.id, f.loaded_templates, config=config)


class _Run:
    """The SimPy world of one run."""

    def __init__(self, scenario: Scenario, seed: int, record: bool = False,
                 hub: HubModel | None = None) -> None:
        self.scenario = scenario
        self.seed = seed
        self.record = record
        self.env = simpy.Environment()
        self.edges: dict[str, SimEdge] = {}
        self.agents: dict[tuple[str, str], SimAgent | SimVdaRobot] = {}
        for f in scenario.facilities:
            self.edges[f.id] = edge = SimEdge(self.env, self._core(f), EPOCH)
            self._fleet(f, edge)
        for f in scenario.facilities:
            for i, arrival in enumerate(f.arrivals):
                self.env.process(self._arrivals(f, i, arrival))
        for fault in scenario.faults:
            self.env.process(self._fault(fault))
        self.hub: SimHub | None = None if hub is None else start_hub(
            self.env, hub, self.edges, scenario, seed, EPOCH)

    def _core(self, f: FacilitySpec) -> Core:
        return facility_core(f, record=self.record)

    def _fleet(self, f: FacilitySpec, edge: SimEdge) -> None:
        for agent in build_fleet(self.env, f, edge, seed=self.seed, epoch=EPOCH,
                                 latency_s=self.scenario.latency_s):
            self.agents[(f.id, agent.agent_id)] = agent
        for robot in vda_fleet(self.env, f, edge, seed=hash_seed(self.seed, f.id), epoch=EPOCH,
                               latency_s=self.scenario.latency_s):
            self.agents[(f.id, robot.agent_id)] = robot

    def _arrivals(self, f: FacilitySpec, index: int, a: Arrival
                  ) -> Generator[simpy.Event, Any, None]:
        rng = random.Random(f"{self.seed}/{f.id}/arrivals/{index}")
        template = f.loaded_templates[a.template]
        edge = self.edges[f.id]

        def fire(n: int) -> None:
            wf_id = f"{f.id}-{index}-{n}"
            edge.create(f"create-{wf_id}", create_args(wf_id, template, a, edge.now),
                        template)

        yield from arrive(self.env, a, rng, self.scenario.duration_s, fire)

    def _fault(self, fault: Fault) -> Generator[simpy.Event, Any, None]:
        yield self.env.timeout(fault.at_s)
        if fault.type in ("edge_drop", "broker_restart"):
            edge = self.edges[fault.target]
            edge.up = False
            duration = fault.duration_s
            if duration is None and fault.type == "broker_restart":
                duration = BROKER_RESTART_S
            if duration is not None:
                yield self.env.timeout(duration)
                edge.up = True
                for agent in edge.agents.values():
                    agent.link_restored()  # its edge/status says online again
            return
        agent = self.agents[self.scenario.fault_target(fault)]
        if fault.type == "agent_failure":
            agent.fail()
            if fault.duration_s is not None:
                yield self.env.timeout(fault.duration_s)
                agent.repair()
        elif fault.type == "zone_intrusion":
            assert fault.node is not None and isinstance(agent, SimAgent)  # load_scenario
            left = agent.intrude(fault.node)
            if fault.duration_s is not None:
                yield self.env.timeout(fault.duration_s)
                agent.leave(fault.node, left)
        elif fault.type == "battery_depletion":
            agent.deplete()
        elif fault.type == "network_drop":
            agent.link.up = False
            if fault.duration_s is not None:
                yield self.env.timeout(fault.duration_s)
                agent.link.up = True
                agent.link_restored()
        else:  # load_scenario refuses the others
            raise AssertionError(f"fault {fault.type} is not simulated")

    def busy(self) -> bool:
        """Some workflow has not ended yet."""
        return any(s == "active" for e in self.edges.values() for s in e.outcome.values())

    def run(self, progress: Progress | None) -> float:
        """Arrivals for ``duration_s``, then until every workflow ended or ``drain_s`` ran
        out; the simulated seconds it took."""
        s = self.scenario
        end = s.duration_s + s.drain_s
        chunk = max(s.duration_s / 100, 1.0)
        while self.env.now < s.duration_s or (self.env.now < end and self.busy()):
            limit = s.duration_s if self.env.now < s.duration_s else end
            self.env.run(until=min(self.env.now + chunk, limit))
            if progress is not None:
                progress(self.env.now, s.duration_s)
        return self.env.now


def hash_seed(seed: int, *parts: str) -> int:
    """A seed derived from ``seed`` and names, stable across processes."""
    text = "/".join([str(seed), *parts]).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")


def run_virtual(scenario: Scenario, seed: int | None = None, *,
                progress: Progress | None = None, record_inputs: bool = False,
                hub: HubModel | HubFactory | None = None) -> SimResult:
    """Run ``scenario`` in virtual time (``seed`` overrides the scenario's); see the module
    docstring. ``progress`` is called after each simulated slice (about 1 % of the run).
    ``record_inputs`` keeps every core input in ``SimResult.inputs``. ``hub``: the hub's
    aggregation (a ``HubModel``, or a factory such as ``cloud_hub.VirtualHub``, whose hub
    the run closes), needed by a scenario with ``hub:`` or ``cross_facility``."""
    used = scenario.seed if seed is None else seed
    model, owned = open_hub(scenario, hub)
    try:
        run = _Run(scenario, used, record_inputs, model)
        with collector_paused():  # agents_sim._sim_calls: ~18 % of a big run's time
            sim_s = run.run(progress)
        hub_summary = None if run.hub is None else run.hub.finish()
    finally:
        if owned and model is not None:
            model.close()
    events = {fid: e.events for fid, e in run.edges.items()}
    return SimResult(
        scenario=scenario, seed=used, events=events, log_hash=log_hash(events),
        workflows={fid: dict(e.outcome) for fid, e in run.edges.items()}, sim_s=sim_s,
        rejected={fid: e.rejected for fid, e in run.edges.items()},
        inputs={fid: e.core.inputs for fid, e in run.edges.items()
                if isinstance(e.core, RecordingCore)},
        dropped=sum(a.link.dropped for a in run.agents.values())
        + sum(e.dropped for e in run.edges.values()), hub=hub_summary)
