"""The richer agent models of the simulator: what an agent's body and day add to its
protocol behaviour, each visible to the edge only through that protocol.

``Duty`` rides along one ``SimAgent`` (``agents_sim._sim_agent``); every part is off
unless the agent's ``AgentModel`` turns it on:

- **charging** (robots, ``charge_below``): an idle robot whose battery is below the
  threshold drives to the nearest charger of the map and charges at ``charge_per_s`` up
  to ``charge_to``. Meanwhile its states say ``charging`` (the edge assigns nothing to
  it); the first such state goes out *before* the report that left it idle, so the edge
  never sees it available. An ``Assign`` that reaches it anyway (one in flight) ends the
  charge where it stands.
- **breakdowns** (robots, ``mtbf_s``): after an exponential time with that mean the robot
  breaks down (``SimAgent.fail``: its will, the edge loses it and requeues its step) and
  is repaired after an exponential ``repair_s`` (a new incarnation).
- **shifts, breaks and no-shows** (people): outside ``shifts`` and during breaks (every
  ``break_every_s`` on shift, ``break_s`` long, each person's first one at a seeded
  offset) the person is signed off. Signing off: a state ``paused`` (no new work), the
  step in hand finished, then — at least ``SIGN_OFF_GRACE_S`` after that state, so no
  ``Assign`` is still on its way — the offline ``AgentConn``; nothing reaches them until
  they sign on again (online ``AgentConn``, unacknowledged events resent, a state). With
  ``no_show_prob`` a person misses a whole shift.
- **refusals** (people, ``refuse_prob``): the person declines an assignment: the
  ``CommandAck`` and then a ``StepFailed`` (``error_type`` ``declined``, retryable) before
  any ``StepAccepted`` — in an ``auction_based`` workflow a decline (the next bid wins), in
  others a failed attempt the edge retries by the step's policy, allocating it again.
- **AI failures** (``fail_prob``): the attempt's compute fails at its end with a
  ``StepFailed`` (``error_type`` ``model_error``, retryable): the behaviour's own failure
  injection (``MODEL_ERROR``), applied to the attempts drawn to fail.
- **e-stops** (robots, ``estop_mtbf_s``; ``e_stops``): the robot's emergency stop is
  pressed after an exponential time with that mean and released after an exponential
  ``estop_s``. A native robot says ``e_stop`` in its states and holds the step in hand
  meanwhile, as it holds it for the edge's ``pause``; a VDA 5050 robot
  (``agents_sim._sim_vda``) reports ``safetyState.eStop`` and its vehicle halts. The edge
  raises its ``e_stop`` safety conflict and resolves it on the release.

Every draw comes from a ``random.Random`` of its own per agent and part (seeded by the
scenario seed, the facility and the agent id), so turning one part on leaves the others'
draws as they were.
"""

from __future__ import annotations

import math
import random
from collections.abc import Generator
from typing import TYPE_CHECKING, Any, Protocol

import simpy

from agents_sim._native_delivery import Answer
from agents_sim._native_spec import Failure, Outgoing
from topics import AgentState, Assign, CommandAck, Pause, Resume, StepFailed

if TYPE_CHECKING:
    from agents_sim._sim_agent import SimAgent
    from agents_sim._sim_scenario import FleetSpec

__all__ = ["MODEL_ERROR", "SIGN_OFF_GRACE_S", "Duty", "EStoppable", "e_stops",
           "model_fields"]

SIGN_OFF_GRACE_S = 1.0
"""A person signs off at least this long after saying ``paused``: no ``Assign`` sent
before the edge saw that is still on its way (far above any scenario latency)."""
MODEL_MARK = "sim_model_error"
"""The ``action`` of an AI attempt drawn to fail, as handed to the behaviour."""
MODEL_ERROR = Failure(match=MODEL_MARK, mode="fail", error_type="model_error",
                      retryable=True, at=1.0)
"""The failure rule an AI agent with a ``fail_prob`` carries (``AgentSpec.failures``)."""
POLL_S = 1.0
"""How often a person signing off looks whether the step in hand is finished."""


def model_fields(entry: FleetSpec) -> dict[str, Any]:
    """The ``AgentModel`` fields of a fleet entry's richer model, defaults filled in (hours
    become seconds); empty for a part the entry leaves off."""
    out: dict[str, Any] = {}
    if entry.charge_below is not None:
        out.update(charge_below=entry.charge_below,
                   charge_to=100.0 if entry.charge_to is None else entry.charge_to,
                   charge_per_s=0.05 if entry.charge_per_s is None else entry.charge_per_s)
    if entry.mtbf_h is not None:
        out.update(mtbf_s=entry.mtbf_h * 3600.0,
                   repair_s=600.0 if entry.repair_s is None else entry.repair_s)
    if entry.shifts:
        out["shifts"] = tuple((float(a), float(b)) for a, b in entry.shifts)
    if entry.break_every_s is not None:
        out.update(break_every_s=entry.break_every_s,
                   break_s=900.0 if entry.break_s is None else entry.break_s)
    for name in ("no_show_prob", "refuse_prob", "fail_prob"):
        if getattr(entry, name) is not None:
            out[name] = getattr(entry, name)
    if entry.estop_mtbf_h is not None:
        out.update(estop_mtbf_s=entry.estop_mtbf_h * 3600.0,
                   estop_s=30.0 if entry.estop_s is None else entry.estop_s)
    return out


class EStoppable(Protocol):
    """A robot whose emergency stop can be pressed: a native one's ``Duty``, or a VDA 5050
    robot (``agents_sim._sim_vda.SimVdaRobot``)."""

    @property
    def down(self) -> bool:
        """Broken down or signed off: nothing to press now."""
        ...

    def e_stop(self, on: bool) -> None:
        """Press (``on``) or release the emergency stop."""
        ...


def e_stops(env: simpy.Environment, robot: EStoppable, rng: random.Random, mtbf_s: float,
            mean_s: float) -> Generator[simpy.Event, Any, None]:
    """Press ``robot``'s e-stop after exponential times of mean ``mtbf_s`` and release it
    after exponential times of mean ``mean_s``, forever (a robot that is down is skipped)."""
    while True:
        yield env.timeout(round(rng.expovariate(1.0 / mtbf_s), 3))
        if robot.down:
            continue
        robot.e_stop(True)
        yield env.timeout(round(rng.expovariate(1.0 / mean_s), 3))
        robot.e_stop(False)


class Duty:
    """Charging, breakdowns, shifts and breaks, refusals and AI failures of one agent."""

    def __init__(self, agent: SimAgent) -> None:
        self.agent = agent
        m = agent.model
        self.active = bool(m.charge_below is not None or m.shifts or m.break_every_s
                           or m.refuse_prob or m.fail_prob or m.estop_mtbf_s)
        """Any part that looks at messages or assignments is on."""
        self.off = bool(m.shifts)
        """Signed off (a person off shift or on a break): not connected. A person with
        shifts starts signed off; the first shift signs them on (or is missed)."""
        self.leaving = False
        """Signing off: finishing the step in hand, taking no new work."""
        self.on_shift = not m.shifts
        """Within a shift the person came to (always, without shifts)."""
        self.charging = False
        """Driving to or standing at a charger (its states say ``charging``)."""
        self.charges = 0
        """Charges completed."""
        self.breakdowns = 0
        """Breakdowns so far."""
        self.no_shows = 0
        """Shifts missed."""
        self.declined = 0
        """Assignments declined."""
        self.e_stopped = False
        """The e-stop is pressed (its states say ``e_stop``)."""
        self.e_stops = 0
        """E-stops so far."""
        self._held: Any = None
        """The step the e-stop holds (to go on with at its release)."""
        self._charge: tuple[float, float] | None = None
        """(simulated time, level) the charging started at the charger."""
        self._ids = 0
        base = f"{agent.seed}/{agent.agent_id}"
        self._rng = {part: random.Random(f"{base}/{part}")
                     for part in ("breakdowns", "shifts", "refusals", "ai_failures",
                                  "e_stops")}

    def start(self) -> None:
        """Start the routines' processes (after the agent's own)."""
        env, m = self.agent.env, self.agent.model
        if m.mtbf_s is not None:
            env.process(self._breakdowns())
        if m.shifts:
            env.process(self._shifts())
        if m.break_every_s is not None:
            env.process(self._breaks())
        if m.estop_mtbf_s is not None:
            env.process(e_stops(env, self, self._rng["e_stops"], m.estop_mtbf_s, m.estop_s))

    # --- hooks of SimAgent -----------------------------------------------------------

    def outgoing(self, out: list[Outgoing]) -> list[Outgoing]:
        """What the agent sends, as its state says: ``charging`` while it charges (first
        starting a charge when it is left idle and low), ``paused`` while it signs off."""
        if not self.charging and self._should_charge():
            self._start_charging()
            first = next((i for i, item in enumerate(out) if item.channel == "event"), None)
            if first is not None:  # before the report that left it idle (its step_done)
                out = [*out[:first], self.agent.state_now(), *out[first:]]
            elif not any(item.channel == "state" for item in out):
                out = [*out, self.agent.state_now()]
        if not (self.charging or self.leaving or self.e_stopped):
            return out
        return [self._restate(item) if item.channel == "state" else item for item in out]

    def assigned(self, a: Assign) -> Assign | None:
        """An ``Assign`` the agent is about to take: ``None`` if declined (answered here),
        else the assignment (marked to fail for an AI attempt drawn to)."""
        agent, b = self.agent, self.agent.behaviour
        if b.delivery.answered(a.command_id) is not None:
            return a  # a repeat: the behaviour answers it as before
        m = agent.model
        if self.charging:
            self._stop_charging()
        if m.refuse_prob and self._rng["refusals"].random() < m.refuse_prob:
            self._decline(a)
            return None
        if m.fail_prob and self._rng["ai_failures"].random() < m.fail_prob:
            return a.model_copy(update={"action": MODEL_MARK})
        return a

    def repaired(self) -> None:
        """A new incarnation came back: it is no longer charging, nor e-stopped."""
        self.charging = False
        self._charge = None
        self.e_stopped, self._held = False, None

    # --- e-stops -------------------------------------------------------------------------

    @property
    def down(self) -> bool:
        """Broken down or signed off."""
        return self.agent.behaviour.dead or self.off

    def e_stop(self, on: bool) -> None:
        """The e-stop pressed or released: the step in hand is held meanwhile (the
        behaviour's own hold, as for the edge's ``pause``) and a state goes out at once."""
        agent, b, now = self.agent, self.agent.behaviour, self.agent.now
        self.e_stopped = on
        if b.dead or self.off:
            self._held = None
            return
        if on:
            self.e_stops += 1
            if b.step is not None and b.step.paused_at is None:
                b._on_pause(Pause(command_id="e-stop", ts=now), now)
                self._held = b.step
        elif self._held is not None:
            if self._held is b.step:
                b._on_resume(Resume(command_id="e-stop", ts=now), now)
            self._held = None
        agent.send([agent.state_now()])
        agent.wake()

    # --- charging ----------------------------------------------------------------------

    def _should_charge(self) -> bool:
        agent, b = self.agent, self.agent.behaviour
        below = agent.model.charge_below
        return (below is not None and not b.dead and b.step is None and not b.queue
                and b.battery < below and agent.map is not None and bool(agent.map.chargers))

    def _level(self) -> float:
        if self._charge is None:
            return self.agent.behaviour.battery
        since, level = self._charge
        m = self.agent.model
        return min(m.charge_to, level + (self.agent.env.now - since) * m.charge_per_s)

    def _restate(self, item: Outgoing) -> Outgoing:
        state = item.message
        assert isinstance(state, AgentState)
        if self.charging:
            update: dict[str, Any] = {"status": "charging", "battery": round(self._level(), 2)}
        elif self.leaving:
            update = {"status": "paused"}
        else:
            update = {}
        if self.e_stopped:
            update["e_stop"] = True
        return Outgoing("state", state.model_copy(update=update), qos=item.qos)

    def _start_charging(self) -> None:
        self.charging = True
        self.agent.env.process(self._charging(self.agent.behaviour))

    def _stop_charging(self) -> None:
        self.agent.behaviour.battery = self._level()
        self.charging = False
        self._charge = None

    def _charging(self, b: Any) -> Generator[simpy.Event, Any, None]:
        agent, m = self.agent, self.agent.model
        fmap = agent.map
        assert fmap is not None
        origin = b.node if b.node in fmap.nodes else None
        costs = [(fmap.path_cost(origin, c) if origin is not None else 0.0, c)
                 for c in fmap.chargers]
        distance, charger = min(costs)
        if math.isinf(distance):
            distance = 0.0  # no way there: it charges where it stands
        speed = m.speed or 1.0
        yield agent.env.timeout(round(distance / speed, 3))
        if agent.behaviour is not b or not self.charging:
            return
        b.node = charger
        agent.travelled_m += distance
        b.battery = max(0.0, b.battery - distance * m.drain_per_m)
        self._charge = (agent.env.now, b.battery)
        yield agent.env.timeout(round(max(0.0, m.charge_to - b.battery) / m.charge_per_s, 3))
        if agent.behaviour is not b or not self.charging:
            return
        b.battery = max(b.battery, m.charge_to)
        self.charging, self._charge = False, None
        self.charges += 1
        agent.send([agent.state_now()])  # idle again, at once

    # --- breakdowns ----------------------------------------------------------------------

    def _breakdowns(self) -> Generator[simpy.Event, Any, None]:
        agent, m, rng = self.agent, self.agent.model, self._rng["breakdowns"]
        assert m.mtbf_s is not None
        while True:
            yield agent.env.timeout(round(rng.expovariate(1.0 / m.mtbf_s), 3))
            if agent.behaviour.dead or self.off:
                continue  # already down (a fault), or off: nothing to break now
            self.breakdowns += 1
            self.charging, self._charge = False, None
            agent.fail()
            yield agent.env.timeout(round(rng.expovariate(1.0 / m.repair_s), 3))
            agent.repair()

    # --- shifts and breaks -------------------------------------------------------------

    def _shifts(self) -> Generator[simpy.Event, Any, None]:
        env, rng = self.agent.env, self._rng["shifts"]
        for start, end in self.agent.model.shifts:
            if env.now < start:
                yield env.timeout(start - env.now)
            if rng.random() < self.agent.model.no_show_prob:
                self.no_shows += 1
            else:
                self.on_shift = True
                self._sign_on()
            yield env.timeout(max(0.0, end - env.now))
            self.on_shift = False
            yield from self._sign_off()

    def _breaks(self) -> Generator[simpy.Event, Any, None]:
        env, m = self.agent.env, self.agent.model
        assert m.break_every_s is not None
        yield env.timeout(round(self._rng["shifts"].uniform(0.5, 1.0) * m.break_every_s, 3))
        while True:
            if self.on_shift and not self.off and not self.leaving:
                yield from self._sign_off()
                yield env.timeout(m.break_s)
                if self.on_shift:
                    self._sign_on()
            yield env.timeout(m.break_every_s)

    def _sign_off(self) -> Generator[simpy.Event, Any, None]:
        agent = self.agent
        if self.off or self.leaving:
            return
        self.leaving = True
        agent.send([agent.state_now()])  # paused: the edge assigns it nothing new
        yield agent.env.timeout(SIGN_OFF_GRACE_S)
        b = agent.behaviour
        while (b.step is not None or b.queue) and not b.dead and agent.behaviour is b:
            yield agent.env.timeout(POLL_S)
        self.leaving = False
        if b.dead or agent.behaviour is not b:
            return
        now = agent.now
        agent.send([Outgoing("conn", b.conn(False, now), qos=1, retain=True)])
        self.off = True

    def _sign_on(self) -> None:
        agent = self.agent
        if not self.off:
            return
        self.off = False
        b, now = agent.behaviour, agent.now
        if b.dead:
            return
        agent.send([Outgoing("conn", b.conn(True, now), qos=1, retain=True),
                    *b.on_edge_online(now)])
        agent.wake()

    # --- refusals ------------------------------------------------------------------------

    def _decline(self, a: Assign) -> None:
        """Answer ``a`` and decline it before accepting (see the module docstring)."""
        agent, b, now = self.agent, self.agent.behaviour, self.agent.now
        self.declined += 1
        prefix = f"{agent.agent_id[:40]}-d{agent.incarnations}-"
        self._ids += 2
        ack = CommandAck(event_id=f"{prefix}{self._ids - 1}", agent_id=agent.agent_id,
                         ts=now, command_id=a.command_id, outcome="done")
        failed = StepFailed(event_id=f"{prefix}{self._ids}", agent_id=agent.agent_id, ts=now,
                            workflow_id=a.workflow_id, step_id=a.step_id, attempt=a.attempt,
                            error_type="declined", retryable=True,
                            message="declined by the person")
        b.delivery.remember(a.command_id, Answer("done", "", ack.event_id))
        agent.send(b.delivery.keep([Outgoing("event", ack, qos=1),
                                    Outgoing("event", failed, qos=1)], now))
        agent.wake()
