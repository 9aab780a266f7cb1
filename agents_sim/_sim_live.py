"""The live mode: a scenario's agents on a running stack, over MQTT, in real or scaled time.

The same ``SimAgent`` s as the virtual mode (``build_fleet``: one model of each agent kind)
run under ``simpy.rt.RealtimeEnvironment(factor=1/speed, strict=False)``; only their link
differs. Each agent has its own MQTT connection (``AgentConnection``: client id, will,
``cmd`` and ``edge/status`` subscriptions, as a native agent). SimPy is not thread-safe, so
paho's threads only put what arrives on a ``queue.Queue`` that a pump process drains every
``PUMP_S`` wall seconds; the agents publish from the SimPy thread.

Workflow arrivals are the hub's ``create_workflow`` commands on each edge's ``edge/cmd``
(``HubClient``: resent until the edge's ``command_reply``), so a live run needs only a
broker and the edges — any stack, ``fleetflow up`` included (there the hub sees the
workflows in the edges' events like any other). Ids are ``{facility}-{run tag}-{arrival
index}-{n}``; deadlines are converted to the edge's wall clock (``deadline_s / speed``).

Cross-facility pairs (``cross_facility``) are created the same way, the target with an
external dependency on the source (ids ``{facility}-{run tag}-x{index}-{n}``): its edge holds
it until a hub releases it, so they need a stack with a hub (``fleetflow up``); without one
the targets stay pending and the run ends after ``drain_s`` with them ``active``.

Faults: ``agent_failure`` drops the agent's connection without a DISCONNECT (the broker
publishes its will, the edge loses it and reallocates its step) and, with ``duration_s``,
a new incarnation connects again; ``network_drop`` drops the connection the same way and
cuts the agent's link (nothing it sends arrives) until it reconnects and resends. Others are
refused before anything connects: "not in live mode yet".

At the end (every created workflow terminal, or ``drain_s`` simulated seconds after the
arrivals stopped; during the drain the ``EventCollector`` already asks the edges to replay
what it missed, so that a missed terminal event does not hold the end back) the collector
asks the edges to replay any seq it still misses and the run returns a ``LiveResult``
with the events of every facility, which ``agents_sim.report`` reads as it reads a virtual
run's.
"""

from __future__ import annotations

import math
import queue
import random
import secrets
import time
from collections.abc import Generator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import simpy
import simpy.rt

from agents_sim._hub_client import HubClient
from agents_sim._native_spec import Outgoing
from agents_sim._sim_agent import SimAgent
from agents_sim._sim_arrivals import Creation, arrive, create_args
from agents_sim._sim_edge import step_estimate
from agents_sim._sim_live_events import EventCollector
from agents_sim._sim_live_mqtt import AgentConnection, Inbound, Login
from agents_sim._sim_live_vda import LiveVda
from agents_sim._sim_scenario import Arrival, FacilitySpec, Fault, Scenario, ScenarioError
from agents_sim._sim_virtual import Progress, build_fleet, hash_seed, log_hash, outcome_counts
from edge_runtime.core import Event, Template
from topics import EdgeEvent, HubCommand, ProtocolError, decode_agent_command, decode_edge_status

__all__ = ["LIVE_FAULTS", "LiveResult", "run_live"]

LIVE_FAULTS = ("agent_failure", "network_drop")
"""The fault types a live run carries out; a scenario with another is refused."""
PUMP_S = 0.02
"""Wall seconds between two drains of what the broker delivered."""


@dataclass
class LiveResult:
    """What a live run leaves: the events the edges published, every workflow's outcome."""

    scenario: Scenario
    seed: int
    speed: float
    """Simulated seconds per wall second."""
    events: dict[str, list[Event]]
    """Facility -> the events its edge published during the run, in ``seq`` order."""
    workflows: dict[str, dict[str, str]]
    """Facility -> workflow id -> its final state (``active`` if it never ended) — every
    workflow the run created."""
    sim_s: float
    """Simulated seconds the run took (arrivals plus the drain)."""
    wall_s: float
    """Wall seconds from the agents' start to the end of the run (connecting before and
    collecting after not counted)."""
    refused: dict[str, str] = field(default_factory=dict)
    """Workflow id -> why its edge refused (or never answered) its ``create_workflow``."""
    missing: dict[str, list[int]] = field(default_factory=dict)
    """Facility -> seqs never received, even after a replay (empty when complete)."""
    errors: list[str] = field(default_factory=list)
    """Messages that did not decode."""

    @property
    def duration_s(self) -> float:
        """What a report measures rates over: the run's wall seconds — the events carry the
        edges' (wall) clock; divide latencies by ``speed`` for simulated seconds."""
        return self.wall_s

    @property
    def all_terminal(self) -> bool:
        """Every workflow created ended (completed, failed or cancelled)."""
        return all(s != "active" for o in self.workflows.values() for s in o.values())

    @property
    def log_hash(self) -> str:
        """sha256 of the collected events (as the virtual mode's; a live run is not
        reproducible, so it only identifies this log)."""
        return log_hash(self.events)

    def summary(self) -> dict[str, Any]:
        """Per facility: workflows by final state and events; speed, gaps, refusals."""
        facilities: dict[str, Any] = {}
        for fid, outcome in self.workflows.items():
            facilities[fid] = {**outcome_counts(outcome),
                               "events": len(self.events.get(fid, [])),
                               "missing": len(self.missing.get(fid, []))}
        return {"mode": "live", "scenario": self.scenario.name, "seed": self.seed,
                "speed": self.speed, "sim_s": round(self.sim_s, 3),
                "wall_s": round(self.wall_s, 3), "all_terminal": self.all_terminal,
                "refused": len(self.refused), "log_hash": self.log_hash,
                "facilities": facilities}


def check_live(scenario: Scenario, speed: float) -> None:
    """Refuse what a live run cannot do, naming the field (before anything connects)."""
    if not (isinstance(speed, int | float) and math.isfinite(speed) and 0 < speed <= 1000):
        raise ValueError(f"speed: {speed!r} is not a number in (0, 1000]")
    for i, fault in enumerate(scenario.faults):
        if fault.type not in LIVE_FAULTS:
            raise ScenarioError(f"faults[{i}].type: {fault.type!r} is not in live mode yet "
                                f"(live: {', '.join(LIVE_FAULTS)}; --virtual runs all)")


class _Facility:
    """One facility's MQTT side for its agents (``build_fleet``'s host)."""

    def __init__(self, spec: FacilitySpec) -> None:
        self.spec = spec
        self.agents: dict[str, Any] = {}
        self.conns: dict[str, AgentConnection] = {}
        self.edge_online: dict[str, bool] = {}
        """Agent id -> its edge's status as last heard on its connection."""
        self.templates: dict[str, Template] = {}

    def from_agent(self, agent_id: str, out: Outgoing) -> None:
        conn = self.conns.get(agent_id)
        if conn is not None:
            conn.publish(out)

    def estimate(self, a: Any) -> float | None:
        return step_estimate(self.templates, a)


class _LiveRun:
    def __init__(self, scenario: Scenario, seed: int, host: str, port: int, login: Login,
                 speed: float, connect_timeout: float) -> None:
        self.scenario, self.seed, self.speed = scenario, seed, speed
        self.host, self.port, self.login = host, port, login
        self.timeout = connect_timeout
        self.tag = secrets.token_hex(3)
        self.inbox: queue.Queue[Inbound] = queue.Queue()
        self.env = simpy.rt.RealtimeEnvironment(factor=1.0 / speed, strict=False)
        self.facilities = {f.id: _Facility(f) for f in scenario.facilities}
        self.created: dict[str, dict[str, Future[EdgeEvent]]] = {
            f: {} for f in self.facilities}
        self.errors: list[str] = []
        self.started = time.monotonic()
        """When the agents started (``run``): the wall clock of ``wall_s``."""
        ids = list(self.facilities)
        self.collector = EventCollector(host, port, ids, login=login, tag=self.tag)
        self.hub = HubClient(host, port, ids, username=None if login is None else login[0],
                             password=None if login is None else login[1],
                             client_id=f"sim-hub-{self.tag}")
        self.vda = LiveVda(self.env, host=host, port=port, login=login, tag=self.tag,
                           timeout=connect_timeout, pump_s=PUMP_S * speed)
        """The VDA 5050 robots, on their own connections (``agents_sim._sim_live_vda``)."""

    # --- setup and teardown --------------------------------------------------------------

    def start(self) -> None:
        self.collector.start(self.timeout)
        self.hub.start(self.timeout)
        epoch = time.time()
        for fid, fac in self.facilities.items():
            for agent in build_fleet(self.env, fac.spec, fac, seed=self.seed, epoch=epoch,
                                     latency_s=0.0):
                self._connect(fid, agent)
            self.vda.add(fac.spec, seed=hash_seed(self.seed, fid), epoch=epoch)
        while True:  # the edges' retained statuses: online, nothing to resend yet
            try:
                item = self.inbox.get_nowait()
            except queue.Empty:
                break
            self._dispatch(item)
        for f in self.scenario.facilities:
            for i, arrival in enumerate(f.arrivals):
                self.env.process(self._arrivals(f, i, arrival))
        for i in range(len(self.scenario.cross_facility)):
            self.env.process(self._cross(i))
        for fault in self.scenario.faults:
            self.env.process(self._fault(fault))
        self.env.process(self._pump())

    def _connect(self, fid: str, agent: SimAgent) -> None:
        fac = self.facilities[fid]
        conn = AgentConnection(fid, agent.agent_id, self.inbox, host=self.host,
                               port=self.port, login=self.login, tag=self.tag,
                               will=agent.behaviour.conn(False, agent.now))
        fac.conns[agent.agent_id] = conn
        fac.edge_online[agent.agent_id] = False
        conn.connect(self.timeout)

    def close(self) -> None:
        for fac in self.facilities.values():
            for agent_id, conn in fac.conns.items():
                agent = fac.agents[agent_id]
                conn.close(None if agent.behaviour.dead else agent.behaviour.conn(False,
                                                                                  agent.now))
        self.vda.close()
        self.hub.stop()
        self.collector.stop()

    # --- SimPy processes -----------------------------------------------------------------

    def _pump(self) -> Generator[simpy.Event, Any, None]:
        """Hand the agents what the broker delivered (paho threads only queue it)."""
        while True:
            while True:
                try:
                    item = self.inbox.get_nowait()
                except queue.Empty:
                    break
                self._dispatch(item)
            yield self.env.timeout(PUMP_S * self.speed)

    def _dispatch(self, item: Inbound) -> None:
        fac = self.facilities[item.facility]
        agent: SimAgent = fac.agents[item.agent_id]
        try:
            if item.kind == "cmd":
                agent.link.send(agent.receive, decode_agent_command(item.payload))
                return
            online = decode_edge_status(item.payload).online
        except ProtocolError as exc:
            self.errors.append(f"{item.facility}/{item.agent_id} {item.kind}: "
                               f"{exc.reason}: {exc.message}")
            return
        came_back = online and not fac.edge_online[item.agent_id]
        fac.edge_online[item.agent_id] = online
        if came_back and self.env.now > 0:
            agent.link_restored()  # its conn online again, everything unacknowledged resent

    def _arrivals(self, f: FacilitySpec, index: int, a: Arrival
                  ) -> Generator[simpy.Event, Any, None]:
        """The virtual mode's arrival times (same seeds and timing code), sent as hub
        commands; a deadline is scaled to wall time, the edge's clock."""
        rng = random.Random(f"{self.seed}/{f.id}/arrivals/{index}")
        template = f.loaded_templates[a.template]

        def fire(n: int) -> None:
            self._create(f.id, f"{f.id}-{self.tag}-{index}-{n}", template, a)

        yield from arrive(self.env, a, rng, self.scenario.duration_s, fire)

    def _cross(self, index: int) -> Generator[simpy.Event, Any, None]:
        """The pairs of ``cross_facility[index]`` (the virtual mode's timing): the target
        created with an external dependency on the source, which its edge holds until the
        stack's hub releases it."""
        s = self.scenario
        x = s.cross_facility[index]
        rng = random.Random(f"{self.seed}/cross_facility/{index}")
        src_t = s.facility(x.source.facility).loaded_templates[x.source.template]
        tgt_t = s.facility(x.target.facility).loaded_templates[x.target.template]

        def fire(n: int) -> None:
            sid = f"{x.source.facility}-{self.tag}-x{index}-{n}"
            self._create(x.source.facility, sid, src_t, x.source)
            self._create(x.target.facility, f"{x.target.facility}-{self.tag}-x{index}-{n}",
                         tgt_t, x.target, [{"depends_on": sid, "type": x.type,
                                            "conditions": dict(x.conditions),
                                            "facility": x.source.facility}])

        yield from arrive(self.env, x, rng, s.duration_s, fire)

    def _create(self, fid: str, wf_id: str, template: Template, c: Creation,
                dependencies: list[dict[str, Any]] | None = None) -> None:
        """Send one ``create_workflow`` to ``fid``'s edge; a deadline is scaled to wall time,
        the edge's clock."""
        now = time.time()
        args = create_args(wf_id, template, c, now)
        if c.deadline_s is not None:
            args["deadline"] = now + c.deadline_s / self.speed
        if dependencies:
            args["dependencies"] = dependencies
        self.facilities[fid].templates[wf_id] = template
        cmd = HubCommand(command_id=f"create-{wf_id}", action="create_workflow", args=args,
                         ts=now)
        self.created[fid][wf_id] = self.hub.send(fid, cmd)

    def _fault(self, fault: Fault) -> Generator[simpy.Event, Any, None]:
        yield self.env.timeout(fault.at_s)
        fid, agent_id = self.scenario.fault_target(fault)
        if self.vda.owns((fid, agent_id)):
            yield from self.vda.fault(fault, (fid, agent_id))
            return
        fac = self.facilities[fid]
        agent: SimAgent = fac.agents[agent_id]
        fac.conns[agent_id].kill()  # no DISCONNECT: the broker publishes the will
        fac.edge_online[agent_id] = False
        if fault.type == "agent_failure":
            agent.fail()
        else:
            agent.link.up = False
        if fault.duration_s is None:
            return
        yield self.env.timeout(fault.duration_s)
        if fault.type == "agent_failure":
            agent.repair()
        else:
            agent.link.up = True
        self._connect(fid, agent)  # its edge's retained status makes it resend and rejoin

    # --- the run -------------------------------------------------------------------------

    def settled(self) -> bool:
        """Every create answered, and every created workflow ended."""
        outcomes = self.collector.outcomes("")
        for fid, futures in self.created.items():
            for wf_id, future in futures.items():
                if not future.done():
                    return False
                if future.exception() is None and outcomes[fid].get(wf_id, "active") == "active":
                    return False
        return True

    def run(self, progress: Progress | None) -> float:
        s = self.scenario
        end = s.duration_s + s.drain_s
        chunk = 0.25 * self.speed  # a quarter of a wall second between checks
        self.env.sync()
        self.started = time.monotonic()
        while self.env.now < s.duration_s or (self.env.now < end and not self.settled()):
            limit = s.duration_s if self.env.now < s.duration_s else end
            self.env.run(until=min(self.env.now + chunk, limit))
            if self.env.now >= s.duration_s:
                self.collector.ask_replays()  # a missed terminal event must not wait
            if progress is not None:
                progress(self.env.now, s.duration_s)
        return float(self.env.now)

    def result(self, sim_s: float, wall_s: float) -> LiveResult:
        missing = self.collector.fill_gaps(timeout=10.0)
        outcomes = self.collector.outcomes("")
        workflows: dict[str, dict[str, str]] = {}
        refused: dict[str, str] = {}
        for fid, futures in self.created.items():
            workflows[fid] = {}
            for wf_id, future in futures.items():
                if not future.done():
                    refused[wf_id] = "no reply from the edge"
                elif (exc := future.exception()) is not None:
                    refused[wf_id] = str(exc)
                else:
                    workflows[fid][wf_id] = outcomes[fid].get(wf_id, "active")
        return LiveResult(
            scenario=self.scenario, seed=self.seed, speed=self.speed,
            events=self.collector.events(), workflows=workflows, sim_s=sim_s,
            wall_s=wall_s, refused=refused, missing=missing,
            errors=self.errors + self.collector.errors)


def run_live(scenario: Scenario, host: str, port: int, *, seed: int | None = None,
             speed: float = 1.0, login: Login = None, connect_timeout: float = 10.0,
             progress: Progress | None = None) -> LiveResult:
    """Run ``scenario``'s agents and arrivals against the edges behind the broker at
    ``host:port`` (see the module docstring), ``speed`` simulated seconds per wall second.
    ``ValueError``/``ScenarioError`` before connecting for a bad speed or a fault live mode
    cannot carry out; ``TimeoutError`` naming the broker or facility if the broker or an
    edge does not answer within ``connect_timeout`` s. Every connection is closed on
    return."""
    check_live(scenario, speed)
    if type(port) is not int or not 0 < port < 65536:
        raise ValueError(f"port: {port!r} is not a TCP port (1-65535)")
    if not (isinstance(connect_timeout, int | float) and 0 < connect_timeout < math.inf):
        raise ValueError(f"connect_timeout: {connect_timeout!r} is not a positive number")
    used = scenario.seed if seed is None else seed
    live = _LiveRun(scenario, used, host, port, login, speed, connect_timeout)
    try:
        live.start()
        sim_s = live.run(progress)
        return live.result(sim_s, time.monotonic() - live.started)
    finally:
        live.close()
