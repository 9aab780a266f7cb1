"""KPIs from event logs (agents_sim.report): real cores driven by a scripted fleet at known
times, their logs' KPIs checked against values worked out by hand."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents_sim.report import Kpis, kpis, percentile
from agents_sim.sim import load_scenario, run_virtual
from edge_runtime.core import Append, Core, CoreConfig, Event, TimerFired
from edge_runtime.templates import load_template
from edge_runtime.testing import ScriptedFleet
from topics import AgentState

# A robot step, then a person's; an estimate of 1 s so deadlines are at risk only when late.
TWO = load_template({"name": "two", "steps": [
    {"id": "a", "kind": "robot", "estimated_duration_s": 1},
    {"id": "b", "kind": "human", "after": ["a"], "estimated_duration_s": 1}]})
ONE = load_template({"name": "one", "steps": [
    {"id": "s", "kind": "robot", "estimated_duration_s": 1, "retry": {
        "max_attempts": 3, "initial_interval": 2, "non_retryable_errors": ["broken"]}}]})
# Two zone workflows that deadlock without a global order (docs/coordination.md).
A = load_template({"name": "a", "steps": [
    {"id": "enter", "kind": "robot", "resources": ["z1"], "hold_until": {"z1": "cross"}},
    {"id": "inside", "kind": "robot", "after": ["enter"]},
    {"id": "cross", "kind": "robot", "resources": ["z2"], "after": ["inside"]}]})
B = load_template({"name": "b", "steps": [
    {"id": "enter", "kind": "robot", "resources": ["z2"], "hold_until": {"z2": "cross"}},
    {"id": "inside", "kind": "robot", "after": ["enter"]},
    {"id": "cross", "kind": "robot", "resources": ["z1"], "after": ["inside"]}]})
# A coalition step: two robots carry together.
CARRY = load_template({"name": "carry", "steps": [{
    "id": "carry", "kind": "robot", "location": "dock",
    "team": [{"role": "front"}, {"role": "back"}]}]})
TEMPLATES = {t.name: t for t in (TWO, ONE, A, B, CARRY)}
ZONES = {"cold1": ("cold_room",)}


def _fleet(facility: str = "f1", **config: Any) -> ScriptedFleet:
    """A core at t=0 with a tick of 1 s: the n-th input comes at t=n."""
    return ScriptedFleet(Core(facility, TEMPLATES, config=CoreConfig(**config)),
                         tick=1.0, start=0.0)


def _log(fl: ScriptedFleet) -> list[Event]:
    return [e.event for e in fl.effects if isinstance(e, Append)]


def _two_workflows() -> ScriptedFleet:
    """r1 (robot) joins at 1, h1 (human) at 2. w1 (deadline 100): created 3, a 3→6, b 6→9.
    w2 (deadline 25): created 20, a 20→23, b 23→32 (h1 answers late): done after 25."""
    fl = _fleet()
    fl.agent("r1", "robot", [])
    fl.agent("h1", "human", [])
    fl.create("two", "w1", deadline=100.0)
    fl.finish("w1", "a")
    fl.finish("w1", "b")
    fl.at(20.0)
    fl.create("two", "w2", deadline=25.0)
    fl.finish("w2", "a")
    fl.at(30.0)
    fl.finish("w2", "b")
    return fl


def _eventful() -> list[Event]:
    """A log with a failure and its retry, a safety conflict and a broken deadlock."""
    fl = _fleet(exclusive_zones=ZONES, resource_order=False)
    for name in ("r1", "r2", "r3"):
        fl.agent(name, "robot", [])
    fl.agent("h1", "human", [])
    fl.create("one", "w0")
    fl.fail("w0", "s")
    fl.at(fl.core.armed_timers()["retry:w0/s"])
    fl.feed(TimerFired("retry:w0/s"))
    fl.finish("w0", "s")
    fl.feed(AgentState(agent_id="r3", ts=fl.now, node="cold1"))
    fl.feed(AgentState(agent_id="h1", ts=fl.now, node="cold1"))
    fl.feed(AgentState(agent_id="h1", ts=fl.now, node="dock"))
    fl.create("a", "wa")
    fl.create("b", "wb")
    for wid, sid in [("wa", "enter"), ("wb", "enter"), ("wa", "inside"), ("wb", "inside")]:
        fl.finish(wid, sid)  # the last closes the cycle: wb is the victim, starts over
    _finish_all(fl, "wa", "wb")
    return _log(fl)


def _finish_all(fl: ScriptedFleet, *workflows: str) -> None:
    """The agents finish whatever they hold of ``workflows`` until nothing is held."""
    held = True
    while held:
        held = False
        for wid in workflows:
            view = fl.workflow(wid)
            for sid, step in (view.steps.items() if view is not None else ()):
                if step.agent is not None and step.state in ("assigned", "preparing",
                                                             "executing"):
                    fl.finish(wid, sid)
                    held = True


def test_two_workflows_worked_out_by_hand() -> None:
    """Throughput, latencies, utilisation by kind and deadline misses of a known 40 s run."""
    k = kpis({"f1": _log(_two_workflows())}, duration_s=40)
    assert k.duration_s == 40 and not k.empty
    assert (k.throughput.completed, k.throughput.per_hour) == (2, 180.0)  # 2 in 40 s
    assert k.workflows == {"created": 2, "completed": 2, "failed": 0, "cancelled": 0,
                           "open": 0}
    # steps 3, 3, 3, 9 s: p95 = 3 + 6 * 0.85, p99 = 3 + 6 * 0.97 (linear between ranks)
    assert (k.step_latency_s.count, k.step_latency_s.p50, k.step_latency_s.p95,
            k.step_latency_s.p99, k.step_latency_s.mean) == (4, 3.0, 8.1, 8.82, 4.5)
    # workflows 6 and 12 s
    assert (k.workflow_latency_s.p50, k.workflow_latency_s.p95, k.workflow_latency_s.p99,
            k.workflow_latency_s.max) == (9.0, 11.7, 11.94, 12.0)
    # robot busy 3 + 3 of 40 s, person 3 + 9
    assert k.busy_s_by_kind == {"human": 12.0, "robot": 6.0}
    assert k.utilisation_by_kind == {"human": 0.3, "robot": 0.15}
    assert k.agents_by_kind == {"human": 1, "robot": 1}
    assert k.deadline_misses == 1  # w2 completed at 32, its deadline 25
    assert k.deadline_at_risk == 1  # the core saw w2 late (predicted past 25 from t=30)
    assert k.conflicts_by_type == {"temporal": 1}


def test_without_a_duration_the_run_spans_its_events() -> None:
    """First event at 1, last at 32: a 31 s run."""
    k = kpis({"f1": _log(_two_workflows())})
    assert k.duration_s == 31.0
    assert k.throughput.per_hour == round(2 * 3600 / 31, 6)
    assert k.utilisation_by_kind == {"human": round(12 / 31, 6), "robot": round(6 / 31, 6)}
    assert k.events_per_s == round(k.events / 31, 6)


def test_percentile_interpolates_between_ranks() -> None:
    """p50 of four values is the mean of the middle two; none of nothing is None."""
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert percentile([1.0, 2.0], 100) == 2.0
    assert percentile([], 50) is None


def test_a_failure_and_its_retry_count_as_a_retry_recovery() -> None:
    """One failed attempt (busy until it failed) and an automatic retry that finishes."""
    fl = _fleet()
    fl.agent("r1", "robot", [])  # t=1
    fl.create("one", "w1")  # t=2, assigned
    fl.fail("w1", "s")  # t=3: retry at 5
    fl.at(5.0)
    fl.feed(TimerFired("retry:w1/s"))  # t=5, assigned again
    fl.finish("w1", "s")  # accepted 6, started 7, done 8
    k = kpis({"f1": _log(fl)}, duration_s=10)
    assert k.recoveries_by_strategy == {"retry": 1}
    assert k.step_latency_s.count == 1 and k.step_latency_s.p50 == 3.0  # the attempt at 5
    assert k.busy_s_by_kind == {"robot": 4.0}  # 2→3 and 5→8
    assert k.utilisation_by_kind == {"robot": 0.4}
    assert k.workflow_latency_s.p50 == 6.0  # created 2, completed 8


def test_each_member_of_a_team_is_busy_until_the_step_is_done() -> None:
    """Both members are busy from team_assigned to step_done; the step's latency spans it."""
    # team_assigned at 3 holds r1 and r2 until step_done at 13 (the core frees members only
    # then): 2 x 10 s busy of 2 x 12 s; the step's latency is 10 s.
    fl = _fleet()
    fl.agent("r1", "robot", [])  # t=1
    fl.agent("r2", "robot", [])  # t=2
    fl.create("carry", "w1")  # t=3
    fl.run()  # arrivals at 5 and 7, member_done at 10 and 13, step_done at 13
    k = kpis({"f1": _log(fl)})
    assert k.busy_s_by_kind == {"robot": 20.0}
    assert k.utilisation_by_kind == {"robot": round(20 / 24, 6)}
    assert (k.step_latency_s.count, k.step_latency_s.p50) == (1, 10.0)


def test_work_still_held_at_the_end_counts_until_the_end() -> None:
    """An attempt still held is busy until the run ends; its passed deadline is a miss."""
    # assigned at 2 and never finished in a run of 1..11: busy 9 s, no latency, and its
    # deadline (5) passed while it was open.
    fl = _fleet()
    fl.agent("r1", "robot", [])  # t=1
    fl.create("one", "w1", deadline=5.0)  # t=2
    fl.accept("w1", "s")  # t=3
    k = kpis({"f1": _log(fl)}, duration_s=10)
    assert k.busy_s_by_kind == {"robot": 9.0} and k.utilisation_by_kind == {"robot": 0.9}
    assert k.step_latency_s.count == 0 and k.step_latency_s.p99 is None
    assert k.workflows["open"] == 1 and k.deadline_misses == 1


def test_an_operator_retry_is_counted_apart_from_automatic_ones() -> None:
    """A non-retryable error asks an operator, whose retry is an ``operator_retry``."""
    fl = _fleet(manual_intervention=True)
    fl.agent("r1", "robot", [])
    fl.create("one", "w1")
    fl.fail("w1", "s", error_type="broken")
    fl.command("operator_action", workflow_id="w1", step_id="s", action="retry")
    fl.finish("w1", "s")
    k = kpis({"f1": _log(fl)})
    assert k.recoveries_by_strategy == {"operator_needed": 1, "operator_retry": 1}
    assert k.workflows["completed"] == 1


def test_conflicts_and_deadlocks_are_counted_by_type_strategy_and_rule() -> None:
    """A safety stop and a broken deadlock are one conflict each; the deadlock is avoided."""
    k = kpis({"f1": _eventful()})
    assert k.conflicts_by_rule == {"deadlock": 1, "person_in_robot_zone": 1}
    assert k.conflicts_by_type == {"resource": 1, "safety": 1}
    assert k.conflicts_by_strategy == {"stop": 1, "victim": 1}
    assert (k.conflicts, k.conflicts_resolved, k.deadlocks_avoided) == (2, 2, 1)
    assert k.recoveries_by_strategy["retry"] == 1
    assert k.workflows == {"created": 3, "completed": 3, "failed": 0, "cancelled": 0,
                           "open": 0}


def test_facilities_are_reported_apart_and_together() -> None:
    """Two facilities' completions add up; each facility's rate uses the run's duration."""
    one, two = _two_workflows(), _fleet("f2")
    two.agent("r9", "robot", [])
    two.create("one", "x1")
    two.finish("x1", "s")
    k = kpis({"f2": _log(two), "f1": _log(one)}, duration_s=36)
    assert list(k.throughput_by_facility) == ["f1", "f2"]
    assert k.throughput_by_facility["f1"].per_hour == 200.0
    assert k.throughput_by_facility["f2"].per_hour == 100.0
    assert (k.throughput.completed, k.throughput.per_hour) == (3, 300.0)
    assert k.agents_by_kind == {"human": 1, "robot": 2}


def test_an_empty_log_is_reported_as_empty() -> None:
    """No events: ``empty``, zero counts, and no rate instead of a division by zero."""
    nothing: list[dict[str, list[Event]]] = [{}, {"f1": []}]
    for logs in nothing:
        k = kpis(logs)
        assert k.empty and k.events == 0 and k.duration_s == 0
        assert k.events_per_s is None and k.throughput.per_hour is None
        assert k.step_latency_s.p50 is None and k.utilisation_by_kind == {}


@pytest.mark.parametrize(("logs", "duration", "error", "names"), [
    ({"f1": []}, 0, ValueError, "duration_s"),
    ({"f1": []}, -5.0, ValueError, "duration_s"),
    ({"f1": []}, math.inf, ValueError, "duration_s"),
    ({"f1": []}, "1h", TypeError, "duration_s"),
    ([], None, TypeError, "events_by_facility"),
    ({"f1": ["step_done"]}, None, TypeError, "events_by_facility['f1'][0]"),
    ({"f1": "events"}, None, TypeError, "events_by_facility['f1']"),
])
def test_bad_input_is_refused_naming_the_argument(
        logs: Any, duration: Any, error: type[Exception], names: str) -> None:
    """A wrong duration or something that is not a log raises, naming what is wrong."""
    with pytest.raises(error, match=names.replace("[", r"\[").replace("]", r"\]")):
        kpis(logs, duration_s=duration)


def test_the_same_log_gives_the_same_json() -> None:
    """The KPIs are a pure function: two runs of the same script give the same bytes."""
    first = kpis({"f1": _eventful()}).model_dump_json()
    assert first == kpis({"f1": _eventful()}).model_dump_json()
    assert Kpis.model_validate_json(first).deadlocks_avoided == 1


LOG = _eventful()


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=0, max_value=len(LOG)), st.integers(min_value=0, max_value=2))
def test_any_prefix_of_a_real_log_gives_sane_kpis(n: int, extra: int) -> None:
    """A log cut anywhere (a live run, a store read mid-way) gives KPIs within bounds."""
    k = kpis({"f1": LOG[:n], "f2": LOG[:extra]})
    assert k.events == n + min(extra, len(LOG))
    assert k.throughput.completed <= k.workflows["created"]
    assert all(u is None or 0 <= u <= 1 for u in k.utilisation_by_kind.values())
    assert k.conflicts_resolved <= k.conflicts


SMOKE = run_virtual(load_scenario(Path(__file__).parents[1] / "scenarios" / "smoke.yaml"))


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_any_prefix_of_a_simulated_run_gives_sane_kpis(data: st.DataObject) -> None:
    """Each facility of a SimPy run cut anywhere gives KPIs within the whole run's."""
    cut = {f: evs[:data.draw(st.integers(0, len(evs)), label=f)]
           for f, evs in SMOKE.events.items()}
    k = kpis(cut)
    assert k.events == sum(map(len, cut.values()))
    assert k.throughput.completed <= kpis(SMOKE.events).throughput.completed
    assert all(u is None or 0 <= u <= 1 for u in k.utilisation_by_kind.values())
