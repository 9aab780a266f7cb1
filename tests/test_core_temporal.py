"""Temporal conflicts: a step stalled past its estimate, a deadline predicted to be missed."""

from __future__ import annotations

from edge_runtime.core import Append, Core, CoreConfig, Effect, SetTimer, TimerFired
from edge_runtime.templates import load_template
from edge_runtime.testing import ScriptedFleet

TWO = load_template({"name": "two", "steps": [
    {"id": "a", "kind": "robot", "estimated_duration_s": 60},
    {"id": "b", "kind": "robot", "estimated_duration_s": 60, "after": ["a"]}]})


def _fleet(**config: object) -> ScriptedFleet:
    fl = ScriptedFleet(Core("f1", {"two": TWO}, config=CoreConfig(**config)))  # type: ignore[arg-type]
    fl.agent("r1", "robot", [])
    return fl


def _kinds(fx: list[Effect]) -> list[str]:
    return [e.event.kind for e in fx if isinstance(e, Append)]


def _open(fl: ScriptedFleet) -> list[tuple[str, str, str]]:
    return [(c.type, c.rule, c.status) for c in fl.core.conflicts(open_only=True).values()]


def test_a_step_held_past_its_estimate_is_a_stalled_conflict_until_it_ends() -> None:
    """stall_factor 2: the step assigned at t stalls at t + 120; finishing it resolves it."""
    fl = _fleet(stall_factor=2.0)
    fx = fl.create("two", "w1")
    [(timer, at)] = [(e.timer_id, e.at) for e in fx if isinstance(e, SetTimer)]
    assert timer == "stall:w1/a" and at == fl.now + 120
    fl.at(at)
    fx = fl.feed(TimerFired(timer))
    assert _kinds(fx) == ["conflict_detected", "conflict_escalated"]
    assert _open(fl) == [("temporal", "step_stalled", "escalated")]
    fx = fl.finish("w1", "a")
    assert "conflict_resolved" in _kinds(fx) and _open(fl) == []


def test_no_stall_without_a_factor() -> None:
    """Without ``stall_factor`` no stall timer is armed."""
    fl = _fleet()
    fx = fl.create("two", "w1")
    assert not [e for e in fx if isinstance(e, SetTimer)]


def test_a_deadline_predicted_to_be_missed_is_a_conflict_until_it_fits() -> None:
    """Two 60 s steps, 100 s to the deadline: at risk; once the first is done early, not."""
    fl = _fleet()
    fl.at(1000.0)
    fl.create("two", "w1", deadline=1100.0)
    assert _open(fl) == [("temporal", "deadline_at_risk", "escalated")]
    fx = fl.finish("w1", "a")
    assert "conflict_resolved" in _kinds(fx) and _open(fl) == []


def test_the_deadline_timer_looks_again_when_no_event_comes() -> None:
    """In time when created; at the deadline itself the unfinished workflow is at risk."""
    fl = _fleet()
    fl.at(1000.0)
    fl.create("two", "w1", deadline=1500.0)
    assert _open(fl) == []
    fl.at(1500.0)
    fl.feed(TimerFired("deadline:w1"))
    assert _open(fl) == [("temporal", "deadline_at_risk", "escalated")]


def test_an_acknowledged_deadline_risk_is_not_raised_again() -> None:
    """Once an operator resolved it, the same risk does not come back with every event."""
    fl = _fleet()
    fl.at(1000.0)
    fl.create("two", "w1", deadline=1050.0)
    [cid] = fl.core.conflicts(open_only=True)
    fl.command("resolve_conflict", conflict_id=cid, resolution="customer informed")
    fl.accept("w1", "a")
    assert _open(fl) == []


def test_temporal_conflicts_replay_byte_for_byte() -> None:
    """A history with temporal conflicts replays and restores to the same state."""
    config = CoreConfig(stall_factor=1.5)
    fl = ScriptedFleet(Core("f1", {"two": TWO}, config=config))
    fl.agent("r1", "robot", [])
    fl.at(1000.0)
    fl.create("two", "w1", deadline=1100.0)
    fl.at(1200.0)
    fl.feed(TimerFired("stall:w1/a"))
    replayed = Core("f1", {"two": TWO}, config=config)
    for e in fl.effects:
        if isinstance(e, Append):
            replayed.apply(e.event)
    assert replayed.snapshot() == fl.core.snapshot()
    assert Core.restore(fl.core.snapshot(), "f1", {"two": TWO}, config).snapshot() \
        == fl.core.snapshot()
    assert fl.core.armed_timers()["stall:w1/a"] == 1090.0  # re-armed after a restart
