"""A VDA 5050 robot in simulated time: the test AGV model (``AgvModel``) as a SimPy process.

The protocol — orders (Figure 8 of §6.6), node actions, instant actions, its state,
connection and factsheet messages — is ``AgvModel``'s, the very AGV the VDA 5050 tests and
``python -m agents_sim.vda_agv`` run over MQTT. This module only gives it a body in
simulated time, as ``SimAgent`` does for a native agent:

- **time**: the process sleeps for the model's ``next_step_in()`` (the next change of
  driving or of a node action, or its next periodic state) or until a message arrives, and
  then ``step``s it; time is ``epoch + env.now``, so the headers' timestamps are the
  simulated clock's;
- **travel**: the model drives straight between the order's node positions (the facility
  map's) at the fleet entry's ``speed``; its battery (``batteryState``) drops
  ``drain_per_m`` per metre driven;
- **messages** go as the runner sends them — JSON checked against the schemas of the
  robot's version by the sender (``topics.encode_vda``) — over a ``SimLink`` to the
  facility's virtual edge, which runs the edge's VDA master for them
  (``agents_sim._sim_vda_edge``); anything it cannot take becomes a ``validationError``;
- **faults and routines**: ``fail()`` (its will: ``connection`` CONNECTIONBROKEN),
  ``repair()`` (a rebooted AGV: a new model where it broke down, ONLINE again),
  ``deplete()``, a cut link (``network_drop``), breakdowns (``mtbf_s``) and e-stops
  (``estop_mtbf_s``, ``agents_sim._sim_routines.e_stops``: ``safetyState.eStop``).

It never imports the edge's VDA master: the test double must not share the code it tests
(pyproject's import contracts).
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Generator
from dataclasses import dataclass
from functools import partial
from typing import Any

import simpy

from agents_sim import _sim_routines as routines
from agents_sim._sim_agent import SimLink
from agents_sim._sim_scenario import FacilitySpec, FleetSpec, ScenarioError
from agents_sim._vda_agv_model import AgvModel, InstantKey, Out
from agents_sim._vda_agv_order import NODE_ACTIONS
from edge_runtime.facility import FacilityMap
from topics import ProtocolError, VdaKind, encode_vda

__all__ = ["DRIVE_ONLY", "SimVdaRobot", "VdaRobotModel", "check_vda_entry",
           "vda_action_problem", "vda_model"]

DRIVE_ONLY = frozenset({"", "move", "goto", "drive", "transport"})
"""Step actions the edge's VDA master turns into a bare drive (no node action): its
``actions_for`` (docs/vda5050.md). Any other action must be one the AGV performs."""
READS: tuple[VdaKind, ...] = ("order", "instantActions")
"""The topics an AGV reads."""
MIN_STEP_S = 1e-3
"""The shortest sleep between two steps of the model. Its clock is the epoch plus simulated
seconds (~1.8e9 s: steps of 2.4e-7 s), so the last micrometres of an edge or microseconds
of an action may lie below the clock's resolution: they are taken with this step."""

ToEdge = Callable[[str, str, bytes], None]
"""Called with (serial number, kind, JSON payload) when a message reaches the edge."""


def vda_action_problem(action: str | None) -> str | None:
    """Why a VDA 5050 test AGV cannot run a robot step with this ``action``, or None."""
    if action is None or action in DRIVE_ONLY or action in NODE_ACTIONS:
        return None
    return (f"action {action!r}, which the VDA 5050 test AGV cannot run (it runs "
            f"{', '.join(sorted(NODE_ACTIONS))} and drives)")


@dataclass(frozen=True, slots=True)
class VdaRobotModel:
    """How a VDA 5050 robot is built and moves (its fleet entry's figures)."""

    manufacturer: str = "fleetflow"
    version: str = "2.1.0"
    instant_key: InstantKey = "actions"
    speed: float = 1.0
    """m/s between the order's nodes."""
    drain_per_m: float = 0.01
    """Battery percent per metre driven."""
    state_period_s: float = 5.0
    """Longest gap between its state messages."""
    action_s: float = 2.0
    """Seconds each node action (pick, drop …) takes."""
    mtbf_s: float | None = None
    """Mean seconds between breakdowns (exponential; ``None``: none)."""
    repair_s: float = 600.0
    estop_mtbf_s: float | None = None
    """Mean seconds between e-stops (exponential; ``None``: none)."""
    estop_s: float = 30.0


def vda_model(entry: FleetSpec) -> VdaRobotModel:
    """The ``VdaRobotModel`` of a ``protocol: vda5050`` fleet entry, defaults filled in."""
    richer = routines.model_fields(entry)
    return VdaRobotModel(
        manufacturer=entry.manufacturer or "fleetflow", version=entry.vda_version or "2.1.0",
        instant_key=entry.instant_key or "actions", speed=entry.speed or 1.0,
        drain_per_m=0.01 if entry.drain_per_m is None else entry.drain_per_m,
        state_period_s=entry.state_period_s,
        **{k: v for k, v in richer.items()
           if k in ("mtbf_s", "repair_s", "estop_mtbf_s", "estop_s")})


def _poke(kick: simpy.Event, _: simpy.Event) -> None:
    if not kick.triggered:
        kick.succeed()


class SimVdaRobot:
    """One VDA 5050 robot: an ``AgvModel`` hosted in a SimPy process."""

    def __init__(self, env: simpy.Environment, agent_id: str, model: VdaRobotModel, *,
                 node: str, facility_map: FacilityMap, epoch: float, link: SimLink,
                 to_edge: ToEdge, seed: int, battery: float = 100.0) -> None:
        self.env = env
        self.agent_id = agent_id
        """Its serial number, and so its agent id at the edge."""
        self.model = model
        self.epoch = epoch
        self.link = link
        self.to_edge = to_edge
        self.map = facility_map
        self.seed = seed
        self.dead = False
        """Broken down (silent) until repaired."""
        self.incarnations = 0
        """How often it was repaired (rebooted)."""
        self.travelled_m = 0.0
        """Metres driven."""
        self.e_stops = 0
        """E-stops so far."""
        self.breakdowns = 0
        """Breakdowns so far."""
        self.refused = 0
        """Messages from the edge it refused (schema, JSON)."""
        self.agv = self._new_model(node, battery)
        """The test AGV model it hosts (replaced by a repair)."""
        self._pos = (self.agv.x, self.agv.y)
        """Where it was when the battery was last charged for driving."""
        self._kick: simpy.Event = env.event()
        self.process = env.process(self._life(self.agv))
        base = f"{seed}/{agent_id}"
        if model.mtbf_s is not None:
            env.process(self._breakdowns(random.Random(f"{base}/breakdowns")))
        if model.estop_mtbf_s is not None:
            env.process(routines.e_stops(env, self, random.Random(f"{base}/e_stops"),
                                         model.estop_mtbf_s, model.estop_s))

    @property
    def now(self) -> float:
        """The robot's clock: the scenario epoch plus simulated seconds."""
        return self.epoch + self.env.now

    @property
    def down(self) -> bool:
        """Broken down."""
        return self.dead

    def _new_model(self, node: str, battery: float) -> AgvModel:
        attrs = self.map.graph.nodes[node]
        m = self.model
        agv = AgvModel(m.manufacturer, self.agent_id, node_id=node,
                       x=float(attrs["x"]), y=float(attrs["y"]),
                       map_id=str(attrs.get("map_id") or self.map.map_id), version=m.version,
                       speed=m.speed, action_s=m.action_s, state_interval_s=m.state_period_s,
                       instant_key=m.instant_key, now=self.now)
        agv.battery_charge = battery
        return agv

    # --- the process -----------------------------------------------------------------

    def _life(self, agv: AgvModel) -> Generator[simpy.Event, Any, None]:
        now = self.now
        self._send([agv.connection("ONLINE", now), agv.factsheet(now), agv.state(now)])
        while True:
            self._kick = kick = self.env.event()
            delay = agv.next_step_in()
            delay = 0.0 if delay <= 0 else max(delay, MIN_STEP_S)
            self.env.timeout(delay).callbacks.append(partial(_poke, kick))
            yield kick
            if self.dead or agv is not self.agv:
                return
            self._send(self._moved(agv, agv.step(self.now)))

    def _moved(self, agv: AgvModel, out: list[Out]) -> list[Out]:
        """Charge the metres driven since the last call to the battery; then ``out``. (It
        drives straight from node to node and is stepped at each node, so these are the
        map's distances.)"""
        x, y = self._pos
        distance = math.hypot(agv.x - x, agv.y - y)
        if distance > 0:
            self.travelled_m += distance
            agv.battery_charge = max(0.0, round(
                agv.battery_charge - distance * self.model.drain_per_m, 6))
        self._pos = (agv.x, agv.y)
        return out

    def _send(self, out: list[Out]) -> None:
        for kind, message in out:
            self.link.send(self._arrive, (kind, encode_vda(message, kind)))  # type: ignore[arg-type]

    def _arrive(self, item: tuple[str, bytes]) -> None:
        self.to_edge(self.agent_id, *item)

    def _wake(self) -> None:
        if not self._kick.triggered:
            self._kick.succeed()

    # --- messages from the edge ------------------------------------------------------

    def receive(self, item: tuple[str, bytes]) -> None:
        """A message of the edge's master reached the AGV (``(kind, JSON payload)``)."""
        if self.dead:
            return
        kind, payload = item
        agv, now = self.agv, self.now
        if kind not in READS:
            out = agv.receive_invalid({}, f"unexpected topic {kind!r}", now, topic=kind)
        else:
            try:
                message = json.loads(payload)  # the edge checked it against the schema
                if not isinstance(message, dict):
                    raise ProtocolError("malformed", "not a JSON object")
            except (ValueError, ProtocolError) as exc:
                self.refused += 1
                out = agv.receive_invalid({}, str(exc), now, topic=kind)
            else:
                if kind == "order":
                    out = agv.receive_order(message, now)
                else:
                    out = agv.receive_instant_actions(message, now)
        self._send(self._moved(agv, out))
        self._wake()

    # --- faults and routines ---------------------------------------------------------

    def fail(self) -> None:
        """The robot breaks down: it falls silent, and the broker publishes its will
        (``connection`` CONNECTIONBROKEN)."""
        if self.dead:
            return
        self.dead = True
        self._wake()
        kind, will = self.agv.connection("CONNECTIONBROKEN", self.now)
        self.to_edge(self.agent_id, kind, encode_vda(will, "connection"))

    def repair(self) -> None:
        """The repaired robot reboots on the last node it passed (put back there, should it
        have broken down between two): a new model (its order gone, its header ids from
        0), ONLINE again."""
        old = self.agv
        self.incarnations += 1
        self.dead = False
        self.agv = self._new_model(old.last_node_id, old.battery_charge)
        self._pos = (self.agv.x, self.agv.y)
        self._wake()
        self.process = self.env.process(self._life(self.agv))

    def deplete(self) -> None:
        """The battery is suddenly empty (a cell fault): it says so at once."""
        if self.dead:
            return
        self.agv.battery_charge = 0.0
        self._send([self.agv.state(self.now)])

    def e_stop(self, on: bool) -> None:
        """Press or release the emergency stop (``safetyState.eStop`` MANUAL / NONE): the
        vehicle halts meanwhile, and its state says so at once."""
        if self.dead:
            return
        agv, now = self.agv, self.now
        if on:
            self.e_stops += 1
        out = agv.step(now)  # up to now before the stop changes anything
        agv.set_e_stop("MANUAL" if on else "NONE")
        self._send(self._moved(agv, [*out, agv.state(now)]))
        self._wake()

    def link_restored(self) -> None:
        """The network is back: the AGV reconnects (ONLINE) and reports its state."""
        if self.dead:
            return
        now = self.now
        self._send([self.agv.connection("ONLINE", now), self.agv.state(now)])
        self._wake()

    def _breakdowns(self, rng: random.Random) -> Generator[simpy.Event, Any, None]:
        m = self.model
        assert m.mtbf_s is not None
        while True:
            yield self.env.timeout(round(rng.expovariate(1.0 / m.mtbf_s), 3))
            if self.dead:
                continue
            self.breakdowns += 1
            self.fail()
            yield self.env.timeout(round(rng.expovariate(1.0 / m.repair_s), 3))
            self.repair()


def check_vda_entry(f: FacilitySpec, entry: FleetSpec, at: str) -> None:
    """``ScenarioError`` naming the field if fleet entry ``entry`` (at path ``at``) of
    facility ``f`` gets VDA 5050 wrong: the protocol on a person or AI agent, VDA fields on
    a native robot, the 2.0 key quirk on 2.1, no map, charging (not modelled for VDA
    robots), or capabilities that would bring it steps whose action the AGV cannot run."""
    if entry.protocol != "vda5050":
        for name in ("vda_version", "manufacturer", "instant_key"):
            if getattr(entry, name) is not None:
                raise ScenarioError(f"{at}.{name}: only a VDA 5050 robot has a {name} "
                                    "(protocol: vda5050)")
        return
    if entry.kind != "robot":
        raise ScenarioError(f"{at}.protocol: only robots speak VDA 5050; a {entry.kind} "
                            "agent speaks the native protocol")
    if entry.instant_key == "instantActions" and entry.vda_version != "2.0.0":
        raise ScenarioError(f"{at}.instant_key: only a 2.0 AGV reads instantActions (the "
                            "edge sends a 2.1 AGV 'actions' alone)")
    if f.facility_map is None:
        raise ScenarioError(f"{at}.protocol: a VDA 5050 robot needs the facility's map (its "
                            "orders are routes on it)")
    for name in ("charge_below", "charge_to", "charge_per_s"):
        if getattr(entry, name) is not None:
            raise ScenarioError(f"{at}.{name}: VDA 5050 robots do not charge in the "
                                "simulator yet")
    caps = set(entry.capabilities)
    for arrival in f.arrivals:
        template = f.loaded_templates.get(arrival.template)
        if template is None:
            continue  # _check_arrivals names it
        for step in template.steps:
            c = step.compensation
            for kind, action, needs in [(step.kind, step.action, step.capabilities)] + (
                    [(c.kind, c.action, c.capabilities)] if c is not None else []):
                problem = vda_action_problem(action) if kind == "robot" else None
                if problem is not None and set(needs) <= caps:
                    raise ScenarioError(
                        f"{at}.capabilities: {sorted(caps)} would bring it step {step.id!r} "
                        f"of {template.name} (needs {sorted(needs)}) with {problem}")
