"""What one input is handled with: the state, the time, and the sink for effects.

``Core.handle`` makes a ``Context`` per input and passes it, explicitly, to every component
it calls. ``emit`` is how a decision becomes a fact: it makes the next event (seq, HLC from
``now``), applies it to the state at once (so the next decision sees it) and records the
``Append`` effect. Components hold no per-input data of their own.
"""

from __future__ import annotations

from typing import Any

from edge_runtime.core._effects import Append, CancelTimer, Effect, Publish, SetTimer
from edge_runtime.core._event import Event
from edge_runtime.core._projection import Projection
from edge_runtime.core._state import FacilityState
from topics import Message, agent_topic

__all__ = ["Context"]


class Context:
    """One input's working set: ``state``, ``now``, and the ``effects`` produced so far."""

    __slots__ = ("_hlc_floor", "_projection", "archivable", "effects", "now", "state")

    def __init__(self, state: FacilityState, projection: Projection, now: float) -> None:
        self.state = state
        self.now = now
        """The input's time (seconds); the only clock the core has."""
        self.effects: list[Effect] = []
        """What the shell must do, in order: ``Append`` for each event, then the rest."""
        self.archivable: list[str] = []
        """Workflows that may have become archivable during this input (checked at its end)."""
        self._projection = projection
        self._hlc_floor = int(now * 1000) << 16

    def emit(self, kind: str, workflow_id: str | None, data: dict[str, Any]) -> Event:
        """Make the next event, apply it to the state, and append it to the effects."""
        state = self.state
        hlc = state.hlc + 1
        if hlc < self._hlc_floor:
            hlc = self._hlc_floor
        event = Event(state.seq + 1, hlc, kind, workflow_id, data)
        self._projection.apply(event)
        self.effects.append(Append(event))
        return event

    def send(self, agent_id: str, message: Message) -> None:
        """Publish ``message`` on the agent's ``cmd`` topic (QoS 1) once the batch is durable."""
        self.effects.append(Publish(agent_topic(self.state.facility, agent_id, "cmd"), message, 1))

    def set_timer(self, timer_id: str, at: float) -> None:
        """Ask for ``TimerFired(timer_id)`` at ``at`` (replaces a timer of that id)."""
        self.effects.append(SetTimer(timer_id, at))

    def cancel_timer(self, timer_id: str) -> None:
        """Forget the timer ``timer_id``."""
        self.effects.append(CancelTimer(timer_id))
