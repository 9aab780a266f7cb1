"""Who a simulated native agent is, how it may fail, and what it sends.

``AgentSpec`` describes one agent (kind, capabilities, pace, seed, injected ``Failure`` s);
``Outgoing`` is one message its behaviour (``agents_sim._native_behaviour``) wants sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from topics import AgentKindName, Message

__all__ = ["DEFAULT_DURATION_S", "AgentSpec", "Channel", "Failure", "Outgoing"]

Channel = Literal["state", "event", "conn"]
"""The last level of an agent topic the agent publishes on."""

DEFAULT_DURATION_S: dict[str, float] = {"robot": 4.0, "human": 12.0, "ai": 1.0}
"""Nominal step duration per agent kind when the command names none: people are slowest."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message the agent sends now on its ``channel`` topic (``agent/{id}/{channel}``)."""

    channel: Channel
    message: Message
    qos: int
    retain: bool = False


@dataclass(frozen=True, slots=True)
class Failure:
    """An injected fault for steps whose ``step_id`` or ``action`` matches ``match``.

    ``mode="fail"`` reports ``step_failed`` with ``error_type`` at ``at`` of the step's
    duration; ``mode="die"`` makes the agent fall silent there (``AgentBehaviour.dead``):
    its runner then drops the connection without a DISCONNECT so the broker sends the will.
    ``times`` bounds how many attempts are hit (0 = every attempt).
    """

    match: str
    mode: Literal["fail", "die"] = "fail"
    error_type: str = "error"
    retryable: bool = True
    at: float = 0.5
    times: int = 0


@dataclass(frozen=True, slots=True)
class AgentSpec:
    """Who an agent is and how it behaves."""

    agent_id: str
    kind: AgentKindName = "robot"
    capabilities: tuple[str, ...] = ()
    node: str | None = None
    """Map node the agent starts at."""
    state_period_s: float = 1.0
    """How often the agent streams ``AgentState``."""
    liveness_s: float = 10.0
    """Promised in ``AgentConn``: a state at least this often."""
    speed: float = 1.0
    """Divides every step duration: 10 runs steps ten times faster (tests)."""
    sync_retry_s: float | None = None
    """Send a *new* sync arrival (fresh event id) this often until the release comes
    (``None``, the default: never). The outbox already resends an unacknowledged arrival
    and the edge keeps an arrival whenever it comes, so this is only an extra for tests of
    an edge's idempotence: the edge ignores a repeat, or re-sends a release it made."""
    progress_steps: int = 3
    """``step_progress`` messages between ``step_started`` and ``step_done``."""
    seed: int = 0
    outbox_limit: int = 10_000
    """Most unacknowledged events kept for resending; past it the oldest is dropped
    (counted in ``AgentDelivery.stats.dropped``)."""
    failures: tuple[Failure, ...] = ()
    """Injected faults (tests and scenarios)."""
