"""When a simulated agent looks at its behaviour: its wake-ups, as callbacks on SimPy's
queue instead of a SimPy process.

A ``SimAgent`` (``agents_sim._sim_agent``) ``tick``s its ``AgentBehaviour`` at the
behaviour's ``next_wakeup()``, or sooner when a command or a routine wakes it. As a SimPy
process each wake-up cost a ``Timeout``, a kick ``Event`` and a generator resume; here it
is one ``Call`` for the time (``agents_sim._sim_calls``) and one for the run, scheduled at
the very moments the process scheduled its events, with the priorities SimPy gives them
(a process starts ``URGENT``, a kick and a timeout are ``NORMAL``) — so every run happens
at the same place in the event order as before and a scenario's log stays byte-identical.

``Wakeups`` serves one incarnation of the agent: ``repair`` starts a new one and the old
one's pending calls find themselves replaced and do nothing.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from agents_sim._native_behaviour import AgentBehaviour
from agents_sim._sim_calls import NORMAL, URGENT, call_at_delay

if TYPE_CHECKING:
    from agents_sim._sim_agent import SimAgent

__all__ = ["Wakeups"]


class Wakeups:
    """One incarnation's wake-ups: its first run (the hello), then a run at each
    ``next_wakeup()`` or ``wake()``, until its behaviour is dead or replaced."""

    __slots__ = ("_gen", "_idle", "_pending", "_started", "agent", "behaviour")

    def __init__(self, agent: SimAgent, behaviour: AgentBehaviour) -> None:
        self.agent = agent
        self.behaviour = behaviour
        """The incarnation served: once the agent holds another, nothing runs any more."""
        self._gen = 0
        """Counts the waits: a timer of an older wait is stale."""
        self._pending = True
        """A run is scheduled (or the life ended): waking adds nothing."""
        self._started = False
        self._idle = False
        """The current wait is a signed-off one (no tick when it ends)."""
        call_at_delay(agent.env, 0.0, self._run, URGENT)

    def wake(self) -> None:
        """Run now (after what is already due at this instant), unless a run is due."""
        if not self._pending:
            self._pending = True
            call_at_delay(self.agent.env, 0.0, self._run, NORMAL)

    def stop(self) -> None:
        """Nothing of this incarnation runs any more."""
        self._pending = True

    def _timer(self, gen: int, _: object) -> None:
        if gen == self._gen and not self._pending:
            self._pending = True
            env = self.agent.env
            if env.peek() > env.now:
                # Nothing else is due at this instant: the run scheduled now would be the
                # very next event, so it runs here (the same order, one event fewer).
                self._run(None)
            else:
                call_at_delay(env, 0.0, self._run, NORMAL)

    def _run(self, _: object) -> None:
        agent, b = self.agent, self.behaviour
        if b is not agent.behaviour:
            return  # replaced by a repaired incarnation
        if not self._started:
            self._started = True
            if not agent.duty.off:
                agent.send(b.hello(agent.now))
        elif not self._idle:
            agent.send(b.tick(agent.now))
        self._arm()

    def _arm(self) -> None:
        agent, b = self.agent, self.behaviour
        self._gen += 1
        if agent.duty.off:  # signed off (a person off shift): nothing until signed on
            self._idle, self._pending = True, False
            return
        self._idle = False
        wake = b.next_wakeup()
        if wake is None or b is not agent.behaviour:
            return  # dead, or replaced: stays pending, so nothing runs again
        self._pending = False
        call_at_delay(agent.env, max(0.0, wake - agent.now), partial(self._timer, self._gen))
