"""Fuzzing a real edge ``Core`` with arbitrary sequences of valid-but-random inputs: agent
reports about any step, hub commands of every action with plausible, missing or wrong
arguments, resent commands, timers, restarts. The core must answer each with effects or a
``CoreError`` that changed nothing, and the same sequence twice must give byte-identical
events (``fuzz/core_script.py`` makes the inputs and checks each one)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_runtime.core import Core, CoreConfig, CoreError
from fuzz.core_script import CONFIGS, TEMPLATES, Script, replay_script, run_script
from topics import AgentConn, AgentState, HubCommand


def _picker(data: st.DataObject) -> Any:
    """Choices drawn by Hypothesis (so failures shrink to the shortest script)."""
    def pick(options: Sequence[Any]) -> Any:
        return data.draw(st.sampled_from(options))
    return pick


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data(), st.sampled_from(range(len(CONFIGS))))
def test_random_inputs_give_effects_or_clean_refusals(data: st.DataObject, which: int) -> None:
    """Every input gives effects or a CoreError that leaves the core exactly as it was."""
    script = run_script(_picker(data), 120, CONFIGS[which])
    assert len(script.inputs) == 120


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data(), st.sampled_from(range(len(CONFIGS))))
def test_the_same_inputs_give_byte_identical_events(data: st.DataObject, which: int) -> None:
    """Re-running a random script on a fresh core gives the very same event bytes."""
    script = run_script(_picker(data), 150, CONFIGS[which])
    assert replay_script(script, CONFIGS[which]) == script.events


def test_random_scripts_do_real_work() -> None:
    """The generator reaches past refusals: workflows are created, steps run and finish."""
    rng = random.Random(7)
    script: Script = run_script(lambda xs: xs[rng.randrange(len(xs))], 400)
    assert len(script.events) > 100
    assert any(b"workflow_completed" in e or b"step_done" in e for e in script.events)


def _lent_then_released_to_itself() -> tuple[Core, list[Any]]:
    core = Core("f1", TEMPLATES, config=CONFIGS[0])
    inputs: list[Any] = [
        AgentConn(agent_id="r1", online=True, kind="robot", capabilities=["picking"],
                  liveness_s=60),
        AgentState(agent_id="r1", ts=1.0, node="dock"),
        HubCommand(command_id="c1", action="create_workflow",
                   args={"template": "saga", "workflow_id": "w1"}),
        HubCommand(command_id="c2", action="lend_agent", args={"agent_id": "r1", "to": "f2"}),
    ]
    for n, item in enumerate(inputs):
        core.handle(item, 1000.0 + n)
    return core, inputs


def test_regression_release_booking_to_this_facility_changes_nothing() -> None:
    """Found by fuzzing: ``release_booking`` of an agent lent elsewhere, naming this
    facility as ``to``, emitted a reclaim before refusing (half-applied). Now it is refused
    whole."""
    core, _ = _lent_then_released_to_itself()
    before, seq = core.snapshot(), core.last_seq
    bad = HubCommand(command_id="c3", action="release_booking", args={
        "agent_id": "r1", "workflow_id": "w1", "step_id": "s1", "to": "f1"})
    try:
        core.handle(bad, 1010.0)
    except CoreError as exc:
        assert exc.reason == "bad_args"
    else:
        raise AssertionError("a loan to this facility was accepted")
    assert core.last_seq == seq and not core.needs_rebuild
    assert core.snapshot() == before


def test_regression_battery_conflict_of_an_agent_that_stops_reporting_battery() -> None:
    """Found by fuzzing: a low-battery conflict whose holder then sent a state without a
    battery level crashed the core (formatting ``None``); now the conflict is settled."""
    config = CoreConfig(battery_reserve=20.0, battery_per_action=5.0)
    core = Core("f1", TEMPLATES, config=config)
    core.handle(AgentConn(agent_id="r1", online=True, kind="robot", liveness_s=60), 1000.0)
    core.handle(AgentState(agent_id="r1", ts=1.0, battery=90.0), 1000.5)
    core.handle(HubCommand(command_id="c1", action="create_workflow",
                           args={"template": "saga", "workflow_id": "w1"}), 1001.0)
    core.handle(AgentState(agent_id="r1", ts=2.0, battery=3.0), 1002.0)
    assert core.conflicts(open_only=True), "a holder at 3% should raise a battery conflict"
    core.handle(AgentState(agent_id="r1", ts=3.0, battery=None), 1003.0)
    assert not core.conflicts(open_only=True)
