"""What the soak hears on the broker, from outside the edge and the agents.

``AgentTap`` subscribes (QoS 1) to every agent's ``event`` and ``cmd`` topics: it stamps the
first copy of each agent event and the first ``EventAck`` naming it (the acknowledgement
latency), counts resends, and times each ``step_done`` against the ``Assign`` of the
workflow's next step (the edge's reaction). ``EdgeEventRecorder`` keeps every message the
edge published on ``edge/events`` (QoS 1) as received, for the comparison with the store.

Both run on paho's thread: they stamp, decode and store, never block, and catch every error
(an exception would kill paho's network thread), counting it in ``errors``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from bench.wire import Wire
from topics import (
    Assign,
    EventAck,
    ProtocolError,
    StepDone,
    decode_agent_command,
    decode_agent_event,
    edge_topic,
)

__all__ = ["AgentTap", "EdgeEventRecorder", "TapCounts"]


@dataclass
class TapCounts:
    """Message counts the tap saw."""

    event_copies: int = 0
    """Agent event messages, resends and broker redeliveries included."""
    commands: int = 0
    """Edge → agent commands other than ``EventAck`` (resends included)."""
    event_acks: int = 0
    errors: list[str] = field(default_factory=list)


class AgentTap:
    """Every agent event and command of ``facility`` on the broker at ``port``."""

    def __init__(self, port: int, facility: str) -> None:
        self.lock = threading.Lock()
        self.first_seen: dict[str, float] = {}
        """Event id → ``perf_counter`` of its first copy."""
        self.kind_of: dict[str, str] = {}
        """Event id → its message type (``step_done``, ``command_ack`` …)."""
        self.acked: dict[str, float] = {}
        """Event id → ``perf_counter`` of the first ``EventAck`` that took it."""
        self.refused: dict[str, str] = {}
        """Event id → the reason an ``EventAck`` refused it."""
        self.reaction: list[tuple[float, float]] = []
        """(step_done seen, delay to the next step's ``Assign``) pairs, seconds."""
        self.counts = TapCounts()
        self._done_at: dict[str, float] = {}
        self._commands_seen: set[str] = set()
        prefix = f"fleetflow/v1/{facility}/agent/+/"
        self.wire = Wire(port, f"soak-tap-{facility}", [(prefix + "event", 1),
                                                        (prefix + "cmd", 1)], self._on_message)

    def close(self) -> None:
        """Disconnect."""
        self.wire.close()

    def unacked(self) -> list[str]:
        """Event ids seen and neither acknowledged nor refused yet."""
        with self.lock:
            return [e for e in self.first_seen if e not in self.acked and e not in self.refused]

    def _on_message(self, topic: str, payload: bytes, at: float) -> None:
        try:
            if topic.endswith("/event"):
                self._on_event(payload, at)
            else:
                self._on_command(payload, at)
        except Exception as exc:  # never let an error kill paho's thread
            with self.lock:
                self.counts.errors.append(f"{topic}: {type(exc).__name__}: {exc}")

    def _on_event(self, payload: bytes, at: float) -> None:
        try:
            event = decode_agent_event(payload)
        except ProtocolError as exc:
            with self.lock:
                self.counts.errors.append(f"agent event: {exc.reason}: {exc}")
            return
        with self.lock:
            self.counts.event_copies += 1
            if event.event_id in self.first_seen:
                return
            self.first_seen[event.event_id] = at
            self.kind_of[event.event_id] = event.type
            if isinstance(event, StepDone):
                self._done_at[event.workflow_id] = at

    def _on_command(self, payload: bytes, at: float) -> None:
        try:
            cmd = decode_agent_command(payload)
        except ProtocolError as exc:
            with self.lock:
                self.counts.errors.append(f"agent command: {exc.reason}: {exc}")
            return
        with self.lock:
            if isinstance(cmd, EventAck):
                self.counts.event_acks += 1
                for event_id in cmd.event_ids:
                    self.acked.setdefault(event_id, at)
                self.refused.update(cmd.refused)
                return
            self.counts.commands += 1
            if cmd.command_id in self._commands_seen:
                return
            self._commands_seen.add(cmd.command_id)
            if isinstance(cmd, Assign):
                done = self._done_at.pop(cmd.workflow_id, None)
                if done is not None:
                    self.reaction.append((done, at - done))


class EdgeEventRecorder:
    """Every ``edge/events`` message of ``facility``, as received: ``(payload, perf_counter)``.

    Subscribe before the edge starts, so that its first event is heard too."""

    def __init__(self, port: int, facility: str) -> None:
        self.received: list[tuple[bytes, float]] = []
        self.wire = Wire(port, f"soak-events-{facility}", [(edge_topic(facility, "events"), 1)],
                         self._on_message)

    def _on_message(self, _topic: str, payload: bytes, at: float) -> None:
        self.received.append((payload, at))  # list.append is atomic: no lock needed

    def quiet_for(self, seconds: float, timeout: float) -> bool:
        """Wait until nothing arrived for ``seconds`` (at most ``timeout``); True if so."""
        deadline = time.monotonic() + timeout
        count = len(self.received)
        since = time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.1)
            if len(self.received) != count:
                count, since = len(self.received), time.monotonic()
            elif time.monotonic() - since >= seconds:
                return True
        return False

    def close(self) -> None:
        """Disconnect."""
        self.wire.close()
