"""One simulated agent in SimPy time, hosting the native ``AgentBehaviour``.

The protocol — acknowledgements, the outbox and its resends, queued assignments, pauses,
cancels, sync arrivals, bids, AI verdicts — is ``AgentBehaviour``'s, the very model the
tests, benchmarks and ``fleetflow up`` run over MQTT. This module only gives it a body in
simulated time:

- **time**: the agent sleeps until the behaviour's ``next_wakeup()`` (or until a command
  wakes it) and then ``tick``s it; time is ``epoch + env.now``;
- **work**: an ``Assign`` is handed to the behaviour with ``params.duration_s`` set to the
  travel time (map distance from where the agent will be, divided by its speed) plus the
  work time (the step's estimate, or its ``params.duration_s``, drawn lognormal with the
  fleet's ``duration_cv``; for AI agents that is the compute time);
- **battery**: a robot spends ``drain_per_m`` percent per metre it drives;
- **people** take up an assignment after a seeded exponential ``accept_delay_s``;
- **richer models** (``agents_sim._sim_routines``, each off unless the fleet entry sets
  it): robots charging at the map's chargers below ``charge_below`` (state ``charging``:
  unavailable to the edge), robots breaking down (``mtbf_s``) and repaired (``repair_s``),
  people's shifts, breaks and no-shows (signed off: offline), people declining an
  assignment (``refuse_prob``), AI steps failing (``fail_prob``);
- **faults**: ``fail()`` silences the agent (the broker publishes its will), ``repair()``
  brings a new incarnation back, ``deplete()`` empties a robot's battery, ``intrude()``
  walks a person into a robot's zone; the link (``SimLink``) may drop all its messages.

Every random draw comes from the agent's own ``random.Random`` seeded from the scenario
seed, the facility and the agent id: the same seed gives the same run.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import simpy

from agents_sim import _sim_routines as routines
from agents_sim._native_behaviour import AgentBehaviour
from agents_sim._native_spec import DEFAULT_DURATION_S, AgentSpec, Outgoing
from agents_sim._sim_calls import call_at_delay
from agents_sim._sim_wake import Wakeups
from edge_runtime.facility import FacilityMap
from topics import AgentKindName, Assign, Message

__all__ = ["AgentModel", "SimAgent", "SimLink", "lognormal"]

DEFAULT_SPEED: dict[str, float] = {"robot": 1.0, "human": 1.2}
"""Travel speed (m/s) when the fleet entry names none."""


def lognormal(rng: random.Random, mean: float, cv: float) -> float:
    """A lognormal draw with this mean and coefficient of variation (``mean`` when cv is 0)."""
    if cv <= 0 or mean <= 0:
        return mean
    sigma = math.sqrt(math.log1p(cv * cv))
    return rng.lognormvariate(math.log(mean) - sigma * sigma / 2, sigma)


@dataclass(frozen=True, slots=True)
class AgentModel:
    """How an agent moves and works in simulated time (the fleet entry's figures)."""

    kind: AgentKindName
    speed: float | None = None
    """m/s along the map; ``None``: it does not travel (AI)."""
    drain_per_m: float = 0.0
    accept_delay_s: float = 0.0
    duration_cv: float = 0.0
    charge_below: float | None = None
    """Robots: % under which an idle robot goes to charge (``None``: it never does)."""
    charge_to: float = 100.0
    """Robots: % it charges up to."""
    charge_per_s: float = 0.05
    """Robots: % gained per second at a charger."""
    mtbf_s: float | None = None
    """Robots: mean seconds between breakdowns (exponential; ``None``: none)."""
    repair_s: float = 600.0
    """Robots: mean seconds a repair takes (exponential)."""
    shifts: tuple[tuple[float, float], ...] = ()
    """People: on-shift windows [start, end) in simulated seconds (empty: always on)."""
    break_every_s: float | None = None
    """People: a break after about this long on shift (``None``: no breaks)."""
    break_s: float = 900.0
    """People: how long a break lasts."""
    no_show_prob: float = 0.0
    """People: chance of not coming to a shift at all."""
    refuse_prob: float = 0.0
    """People: chance of declining an assignment."""
    fail_prob: float = 0.0
    """AI agents: chance that an attempt's compute fails (``step_failed``)."""
    estop_mtbf_s: float | None = None
    """Robots: mean seconds between e-stops (exponential; ``None``: none)."""
    estop_s: float = 30.0
    """Robots: mean seconds until an e-stop is released (exponential)."""


class SimLink:
    """An agent's network link to its edge: delivers after ``latency`` unless it is down."""

    def __init__(self, env: simpy.Environment, latency: float) -> None:
        self.env = env
        self.latency = latency
        self.up = True
        """False while a ``network_drop`` lasts: everything sent either way is lost."""
        self.dropped = 0
        """Messages lost while down."""

    def send(self, deliver: Callable[[Any], None], item: Any) -> None:
        """Deliver ``item`` after the latency (lost if the link is down now)."""
        if not self.up:
            self.dropped += 1
            return
        call_at_delay(self.env, self.latency, partial(self._deliver, deliver, item))

    def send_all(self, deliver: Callable[[Any], None], items: list[Any]) -> None:
        """Deliver ``items`` in order after the latency, as one entry on SimPy's queue:
        the same order as ``send`` of each in turn (nothing can fall between messages
        sent at the same instant with the same latency), one event instead of many."""
        if not items:
            return
        if not self.up:
            self.dropped += len(items)
            return
        call_at_delay(self.env, self.latency, partial(self._deliver_all, deliver, items))

    def _deliver(self, deliver: Callable[[Any], None], item: Any, _: object) -> None:
        if self.up:
            deliver(item)
        else:
            self.dropped += 1

    def _deliver_all(self, deliver: Callable[[Any], None], items: list[Any], _: object
                     ) -> None:
        for item in items:
            if self.up:
                deliver(item)
            else:
                self.dropped += 1


Estimate = Callable[[Assign], float | None]
"""The estimated duration of an assigned step (from its template), if known."""


class SimAgent:
    """A native agent in simulated time: its ``AgentBehaviour`` woken on SimPy's queue."""

    def __init__(
        self, env: simpy.Environment, spec: AgentSpec, model: AgentModel, *, epoch: float,
        link: SimLink, to_edge: Callable[[str, Outgoing], None], seed: int,
        facility_map: FacilityMap | None = None, estimate: Estimate = lambda a: None,
        battery: float = 100.0,
    ) -> None:
        self.env = env
        self.spec = spec
        self.model = model
        self.epoch = epoch
        self.link = link
        self.to_edge = to_edge
        """Called with (agent id, message) when a message reaches the edge."""
        self.map = facility_map
        self.estimate = estimate
        self.rng = random.Random(f"{seed}/{spec.agent_id}")
        """This agent's own random numbers (work times, acceptance delays)."""
        self.seed = seed
        if model.fail_prob > 0:  # the behaviour's own failure injection does the failing
            spec = dataclasses.replace(spec, failures=(*spec.failures, routines.MODEL_ERROR))
            self.spec = spec
        self.duty = routines.Duty(self)
        """Charging, breakdowns, shifts and breaks, refusals (``agents_sim._sim_routines``)."""
        self.behaviour = AgentBehaviour(spec, now=self.now)
        """The protocol behaviour (``agents_sim.native``) this agent hosts."""
        self.behaviour.battery = battery
        self.incarnations = 0
        """How often it was repaired (event ids of incarnation n carry ``r{n}``)."""
        self.travelled_m = 0.0
        """Metres driven or walked."""
        self.wakeups = Wakeups(self, self.behaviour)
        """When the current incarnation looks at its behaviour (``agents_sim._sim_wake``)."""
        self.duty.start()

    @property
    def now(self) -> float:
        """The agent's clock: the scenario epoch plus simulated seconds."""
        return self.epoch + self.env.now

    @property
    def agent_id(self) -> str:
        """The agent's id."""
        return self.spec.agent_id

    def _wake(self) -> None:
        self.wakeups.wake()

    def _send(self, out: list[Outgoing]) -> None:
        duty = self.duty
        if duty.active:
            out = duty.outgoing(out)
        self.link.send_all(self._arrive, out)

    def state_now(self) -> Outgoing:
        """A state report of right now (as ``_send`` passes it on)."""
        return Outgoing("state", self.behaviour.state(self.now), qos=0)

    def send(self, out: list[Outgoing]) -> None:
        """Send messages of the agent's own (the routines': sign-off, states)."""
        self._send(out)

    def wake(self) -> None:
        """Let the agent look at its behaviour again (a routine changed something)."""
        self._wake()

    def _arrive(self, item: Outgoing) -> None:
        self.to_edge(self.agent_id, item)

    # --- commands from the edge ----------------------------------------------------------

    def receive(self, cmd: Message) -> None:
        """A command reached the agent (the link delivered it)."""
        if self.behaviour.dead or self.duty.off:
            return  # a signed-off agent is not connected: nothing reaches it
        if isinstance(cmd, Assign):
            cmd = self._timed(cmd)
            if self.model.accept_delay_s > 0:
                delay = self.rng.expovariate(1.0 / self.model.accept_delay_s)
                call_at_delay(self.env, round(delay, 3), partial(self._apply, cmd))
                return
        self._apply(cmd)

    def _apply(self, cmd: Message, _: object = None) -> None:
        if self.behaviour.dead or self.duty.off:
            return
        if isinstance(cmd, Assign) and self.duty.active:
            taken = self.duty.assigned(cmd)
            if taken is None:
                return  # declined: the routine answered it
            cmd = taken
        self._send(self.behaviour.on_command(cmd, self.now))
        self._wake()

    def _timed(self, a: Assign) -> Assign:
        """``a`` with ``params.duration_s`` = travel time + drawn work time."""
        b = self.behaviour
        origin = b.queue[-1].location if b.queue else (
            b.step.assign.location if b.step is not None else b.node)
        distance = 0.0
        m, speed = self.map, self.model.speed
        if m is not None and speed and origin in m.nodes and a.location in m.nodes:
            cost = m.path_cost(origin, a.location)  # type: ignore[arg-type]
            distance = 0.0 if math.isinf(cost) else cost
        raw = a.params.get("duration_s")
        mean = float(raw) if isinstance(raw, int | float) and raw >= 0 else self.estimate(a)
        if mean is None:
            mean = DEFAULT_DURATION_S[self.spec.kind]
        work = lognormal(self.rng, mean, self.model.duration_cv)
        travel = distance / speed if speed else 0.0
        self.travelled_m += distance
        if self.spec.kind == "robot" and self.model.drain_per_m:
            b.battery = max(0.0, b.battery - distance * self.model.drain_per_m)
        duration = round(travel + work, 3)
        return a.model_copy(update={"params": {**a.params, "duration_s": duration}})

    # --- faults --------------------------------------------------------------------------

    def fail(self) -> None:
        """The agent breaks down: it falls silent and the broker publishes its will."""
        if self.behaviour.dead:
            return
        self.behaviour.dead = True
        self._wake()
        self.to_edge(self.agent_id, Outgoing(
            "conn", self.behaviour.conn(False, self.now), qos=1, retain=True))

    def repair(self) -> None:
        """A repaired agent comes back, idle, where it broke down, as a new incarnation."""
        old = self.behaviour
        self.incarnations += 1
        spec = self.spec
        self.behaviour = AgentBehaviour(spec, now=self.now, incarnation=f"r{self.incarnations}")
        self.behaviour.node, self.behaviour.battery = old.node, old.battery
        self.duty.repaired()
        self.wakeups.stop()  # the old incarnation's wake-ups end here
        self.wakeups = Wakeups(self, self.behaviour)

    def deplete(self) -> None:
        """The robot's battery is suddenly empty (a cell fault): it says so at once, and
        finishes the step in hand; then it goes charging if its fleet entry has
        ``charge_below`` (``agents_sim._sim_routines``), else it never recharges."""
        if self.behaviour.dead:
            return
        self.behaviour.battery = 0.0
        self._send([Outgoing("state", self.behaviour.state(self.now), qos=0)])

    def intrude(self, node: str) -> str | None:
        """A person steps onto ``node`` (a robot's exclusive zone) and says so; returns
        where they were."""
        was = self.behaviour.node
        self.behaviour.node = node
        self._send([Outgoing("state", self.behaviour.state(self.now), qos=0)])
        return was

    def leave(self, node: str, back_to: str | None) -> None:
        """The person steps back to ``back_to`` (unless a step has moved them since)."""
        if self.behaviour.node == node:
            self.behaviour.node = back_to
            self._send([Outgoing("state", self.behaviour.state(self.now), qos=0)])

    def link_restored(self) -> None:
        """The network is back: the agent reconnects (its retained online ``conn`` again)
        and resends everything unacknowledged at once."""
        if self.behaviour.dead:
            return
        now = self.now
        self._send([Outgoing("conn", self.behaviour.conn(True, now), qos=1, retain=True),
                    *self.behaviour.on_edge_online(now)])
        self._wake()
