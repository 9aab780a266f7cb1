"""The simulator's cheap scheduling: links and agents' wake-ups as callbacks on SimPy's
queue, in the order SimPy's own timeouts would take, and the collector paused per run."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest
import simpy

from agents_sim.native import AgentSpec, Outgoing
from agents_sim.sim import AgentModel, SimAgent, SimLink, load_scenario, run_virtual

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"


def test_link_deliveries_keep_the_order_of_simpy_timeouts() -> None:
    """Sends, a batch and a SimPy timeout made at one instant happen in that order."""
    env = simpy.Environment()
    link = SimLink(env, 0.005)
    got: list[str] = []
    link.send(got.append, "a")
    env.timeout(0.005).callbacks.append(lambda _: got.append("timeout"))
    link.send_all(got.append, ["b", "c"])
    link.send(got.append, "d")
    env.run(until=0.004)
    assert got == []
    env.run(until=1)
    assert got == ["a", "timeout", "b", "c", "d"]


def test_a_down_link_loses_what_is_sent_and_what_is_in_flight() -> None:
    """Messages sent on a down link, or in flight when it goes down, are counted lost."""
    env = simpy.Environment()
    link = SimLink(env, 0.01)
    got: list[str] = []
    link.send_all(got.append, ["a", "b"])
    link.send(got.append, "c")
    link.up = False
    link.send_all(got.append, ["d", "e"])
    env.run(until=1)
    assert got == [] and link.dropped == 5


class _Edge:
    """Records what reached the edge: (simulated time, channel, message type)."""

    def __init__(self, env: simpy.Environment) -> None:
        self.env = env
        self.got: list[tuple[float, str, str]] = []

    def from_agent(self, agent_id: str, out: Outgoing) -> None:
        self.got.append((round(self.env.now, 3), out.channel, out.message.type))


def _agent(env: simpy.Environment, edge: _Edge, **spec: Any) -> SimAgent:
    return SimAgent(env, AgentSpec("robot-1", kind="robot", node="dock", **spec),
                    AgentModel(kind="robot"), epoch=0.0, link=SimLink(env, 0.01),
                    to_edge=edge.from_agent, seed=1)


def test_an_agent_says_hello_then_reports_every_period() -> None:
    """An idle agent announces itself, then sends a state every state period."""
    env = simpy.Environment()
    edge = _Edge(env)
    _agent(env, edge, state_period_s=60.0)
    env.run(until=200)
    assert edge.got == [(0.01, "conn", "conn"), (0.01, "state", "state"),
                        (60.01, "state", "state"), (120.01, "state", "state"),
                        (180.01, "state", "state")]


def test_a_failed_agent_falls_silent_and_a_repaired_one_starts_afresh() -> None:
    """After fail() only the will reaches the edge; repair() brings one new life back."""
    env = simpy.Environment()
    edge = _Edge(env)
    agent = _agent(env, edge, state_period_s=60.0)
    env.run(until=30)
    agent.fail()
    env.run(until=100)
    assert edge.got[-1] == (30.0, "conn", "conn")  # the will, from the broker at once
    assert [g for g in edge.got if g[0] > 30] == []
    agent.repair()
    env.run(until=161)
    assert [g for g in edge.got if g[0] > 30] == [
        (100.01, "conn", "conn"), (100.01, "state", "state"), (160.01, "state", "state")]


def test_a_virtual_run_leaves_the_collector_as_it_found_it() -> None:
    """run_virtual pauses the cyclic collector for the run and restores it either way."""
    scenario = load_scenario(SCENARIOS / "smoke.yaml")
    was = gc.isenabled()
    try:
        gc.enable()
        run_virtual(scenario)
        assert gc.isenabled()
        gc.disable()
        run_virtual(scenario)
        assert not gc.isenabled()
    finally:
        if was:
            gc.enable()


def test_a_finished_run_is_still_collected() -> None:
    """The run's agents (held in reference cycles) go at the next full collection."""
    frozen = gc.get_freeze_count()  # an in-process edge of an earlier test may freeze
    run_virtual(load_scenario(SCENARIOS / "smoke.yaml"))
    assert gc.get_freeze_count() == frozen  # the run left nothing out of the collector's sight
    gc.collect()
    assert not [o for o in gc.get_objects() if isinstance(o, SimAgent)]


def test_a_link_with_a_negative_latency_is_refused() -> None:
    """A delivery scheduled in the past is refused, as a SimPy timeout refuses it."""
    env = simpy.Environment()
    link = SimLink(env, -0.1)
    with pytest.raises(ValueError, match="delay"):
        link.send(print, "x")
    assert env.peek() == float("inf")  # nothing was scheduled
