"""Simulated native agents — robots, people and AI workers speaking Fleetflow's MQTT protocol.

``AgentBehaviour`` is the sans-IO protocol behaviour of one agent; ``FleetRunner`` hosts
many of them on a real broker (one connection each, or multiplexed for benchmarks).
See ``docs/agents-native.md``.
"""

from agents_sim._native_behaviour import AgentBehaviour, ai_outputs
from agents_sim._native_runner import Credentials, FleetRunner, mixed_fleet
from agents_sim._native_spec import DEFAULT_DURATION_S, AgentSpec, Failure, Outgoing

__all__ = [
    "DEFAULT_DURATION_S",
    "AgentBehaviour",
    "AgentSpec",
    "Credentials",
    "Failure",
    "FleetRunner",
    "Outgoing",
    "ai_outputs",
    "mixed_fleet",
]
