"""Simulated native agents — robots, people and AI workers speaking Fleetflow's MQTT protocol.

``AgentBehaviour`` is the sans-IO protocol behaviour of one agent; its ``delivery``
(``AgentDelivery``) keeps every event in an ``Outbox`` until the edge acknowledges it.
``FleetRunner`` hosts many behaviours on a real broker (one connection each, or multiplexed
for benchmarks). See ``docs/agents-native.md``.
"""

from agents_sim._native_behaviour import AgentBehaviour, ai_outputs
from agents_sim._native_delivery import AgentDelivery, Answer, DeliveryStats
from agents_sim._native_runner import Credentials, FleetRunner, mixed_fleet
from agents_sim._native_spec import DEFAULT_DURATION_S, AgentSpec, Failure, Outgoing
from agents_sim._outbox import FIRST_RESEND_S, MAX_RESEND_S, Outbox

__all__ = [
    "DEFAULT_DURATION_S",
    "FIRST_RESEND_S",
    "MAX_RESEND_S",
    "AgentBehaviour",
    "AgentDelivery",
    "AgentSpec",
    "Answer",
    "Credentials",
    "DeliveryStats",
    "Failure",
    "FleetRunner",
    "Outbox",
    "Outgoing",
    "ai_outputs",
    "mixed_fleet",
]
