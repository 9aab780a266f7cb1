"""Batch allocation (cost-optimal within a priority level) and agent work queues
(docs/coordination.md, "Batch allocation and work queues")."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_runtime.core import (
    Agent,
    Append,
    Core,
    CoreConfig,
    CoreError,
    Restarted,
    SetTimer,
    Step,
    TimerFired,
    WorkflowRun,
    min_cost_assignment,
)
from edge_runtime.templates import load_template
from edge_runtime.testing import ScriptedFleet
from topics import AgentConn, AgentState

# Travel costs: agent -> step location.
COSTS = {
    ("r1", "near1"): 1.0, ("r1", "near2"): 2.0, ("r1", "far"): 9.0,
    ("r2", "near1"): 2.0, ("r2", "near2"): 9.0, ("r2", "far"): 3.0,
    ("r3", "near1"): 5.0, ("r3", "near2"): 5.0, ("r3", "far"): 5.0,
}


def _cost(agent: Agent, step: Step, wf: WorkflowRun) -> float:
    return COSTS[(agent.id, step.location or "")]


def _templates(**agents: Any) -> dict[str, Any]:
    return {
        loc: load_template({"name": loc, "steps": [{
            "id": "s", "kind": "robot", "location": loc, "estimated_duration_s": 60,
            **({"agents": agents} if agents else {})}]})
        for loc in ("near1", "near2", "far")
    }


def _fleet(robots: tuple[str, ...] = ("r1", "r2"), templates: dict[str, Any] | None = None,
           **config: Any) -> ScriptedFleet:
    conf = CoreConfig(cost=_cost, **config)
    fl = ScriptedFleet(Core("f1", templates or _templates(), config=conf))
    for r in robots:
        fl.agent(r, "robot", [])
    return fl


def _agent_of(fl: ScriptedFleet, wid: str) -> str | None:
    view = fl.workflow(wid)
    assert view is not None
    return view.steps["s"].agent


def _kinds(fl: ScriptedFleet) -> list[str]:
    return [e.event.kind for e in fl.effects if isinstance(e, Append)]


def _close_window(fl: ScriptedFleet) -> None:
    fl.at(1010.0)
    fl.feed(TimerFired("alloc:batch"))


# --- the solver ---------------------------------------------------------------------------


def _brute_force(cost: list[list[float | None]]) -> tuple[int, float]:
    """Most rows matched, then least total, over every assignment."""
    n, m = len(cost), len(cost[0])
    best = (0, 0.0)
    cols: list[int | None] = [*range(m), *([None] * n)]
    for perm in itertools.permutations(cols, n):
        pairs = [(i, j) for i, j in enumerate(perm) if j is not None and cost[i][j] is not None]
        score = (len(pairs), sum(cost[i][j] for i, j in pairs))  # type: ignore[misc]
        if score[0] > best[0] or (score[0] == best[0] and score[1] < best[1]):
            best = score
    return best


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 4).flatmap(lambda n: st.integers(1, 4).flatmap(lambda m: st.lists(
    st.lists(st.one_of(st.none(), st.integers(0, 50).map(float)), min_size=m, max_size=m),
    min_size=n, max_size=n))))
def test_the_assignment_is_optimal_on_small_instances(cost: list[list[float | None]]) -> None:
    """The solver matches as many rows as brute force, at the same least total cost."""
    result = min_cost_assignment(cost)
    used = [j for j in result if j is not None]
    assert len(used) == len(set(used))
    pairs = [(i, j) for i, j in enumerate(result) if j is not None]
    assert all(cost[i][j] is not None for i, j in pairs)
    got = (len(pairs), sum(cost[i][j] for i, j in pairs))  # type: ignore[misc]
    assert got == _brute_force(cost)


def test_the_assignment_is_deterministic() -> None:
    """Equal-cost alternatives resolve the same way every time."""
    cost: list[list[float | None]] = [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
    assert min_cost_assignment(cost) == min_cost_assignment(cost) == [0, 1]


# --- batch allocation in the core ---------------------------------------------------------


def test_a_batch_minimises_total_cost_where_greedy_would_not() -> None:
    """Steps ready within one window go to agents at least total cost."""
    fl = _fleet(batch_window_s=10.0)
    fl.create("near1", "w1")  # greedy: r1 (1), then w2 gets r2 (9): 10
    fl.create("near2", "w2")
    assert _agent_of(fl, "w1") is None  # waiting for the window
    _close_window(fl)
    assert (_agent_of(fl, "w1"), _agent_of(fl, "w2")) == ("r2", "r1")  # 2 + 2


def test_without_a_window_a_ready_step_is_assigned_at_once() -> None:
    """The default keeps the one-step path: the cheapest free agent at once."""
    fl = _fleet()
    fl.create("near1", "w1")
    assert _agent_of(fl, "w1") == "r1"
    assert _kinds(fl)[-3:] == ["workflow_started", "step_assigned", "command_reply"]


def test_agents_freed_together_take_waiting_steps_at_least_cost() -> None:
    """Robots freed in one input (a safety stop cleared) serve the waiting steps optimally."""
    fl = _fleet(exclusive_zones={"z1": ("cold",)})
    fl.agent("h1", "human", [])
    for aid in ("r1", "r2", "h1"):
        fl.feed(AgentState(agent_id=aid, ts=0, node="z1"))  # both robots stopped
    fl.create("near1", "w1")
    fl.create("near2", "w2")
    assert fl.core.queue() == [("w1", "s"), ("w2", "s")]
    fl.feed(AgentState(agent_id="h1", ts=0, node="dock"))
    assert (_agent_of(fl, "w1"), _agent_of(fl, "w2")) == ("r2", "r1")


def test_a_restart_rearms_the_batch_window() -> None:
    """Steps waiting for a window when the edge restarts get their timer again."""
    fl = _fleet(batch_window_s=10.0)
    fl.create("near1", "w1")
    effects = fl.feed(Restarted())
    assert [e for e in effects if isinstance(e, SetTimer) and e.timer_id == "alloc:batch"]


def test_a_higher_priority_step_is_served_before_older_lower_ones() -> None:
    """A priority level is solved before the next: the urgent step gets an agent."""
    fl = _fleet(batch_window_s=10.0)
    fl.create("near1", "w1")
    fl.create("near2", "w2")
    fl.create("far", "urgent", priority=5)
    _close_window(fl)
    assert _agent_of(fl, "urgent") == "r2"  # its cheapest, though r2 costs w1 less
    assert [_agent_of(fl, w) for w in ("w1", "w2")] == ["r1", None]


def test_a_batch_keeps_the_steps_agent_policy() -> None:
    """Forbidden agents stay out of a batch and a free preferred agent still wins."""
    fl = _fleet(robots=("r1", "r2", "r3"), templates=_templates(forbidden=["r1"]),
                batch_window_s=10.0)
    fl.create("near1", "w1")
    fl.create("near2", "w2")
    _close_window(fl)
    assert {_agent_of(fl, "w1"), _agent_of(fl, "w2")} == {"r2", "r3"}
    fl = _fleet(robots=("r1", "r2", "r3"), templates=_templates(preferred=["r3"]),
                batch_window_s=10.0)
    fl.create("near1", "w1")
    fl.create("near2", "w2")
    _close_window(fl)
    assert "r3" in (_agent_of(fl, "w1"), _agent_of(fl, "w2"))


def _data_cost(agent: Agent, step: Step, wf: WorkflowRun) -> float:
    return float(wf.data["cost"][agent.id])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.fixed_dictionaries({f"r{i}": st.integers(0, 30) for i in range(3)}),
                min_size=2, max_size=3),
       st.lists(st.integers(0, 2), min_size=3, max_size=3))
def test_a_batch_in_the_core_costs_the_optimum(costs: list[dict[str, int]],
                                               levels: list[int]) -> None:
    """Per priority level, the core's batch costs what the best assignment of the agents
    that level had costs; no higher-priority step waits while a lower one is served."""
    one = load_template({"name": "one", "steps": [{"id": "s", "kind": "robot"}]})
    fl = ScriptedFleet(Core("f1", {"one": one}, config=CoreConfig(
        cost=_data_cost, batch_window_s=10.0)))
    for r in ("r0", "r1", "r2"):
        fl.agent(r, "robot", [])
    for i, row in enumerate(costs):
        fl.create("one", f"w{i}", data={"cost": row}, priority=levels[i])
    _close_window(fl)
    got: dict[str, str] = {}
    for i in range(len(costs)):
        agent = _agent_of(fl, f"w{i}")
        assert agent is not None  # as many agents as steps: every step is served
        got[f"w{i}"] = agent
    free = ["r0", "r1", "r2"]
    for level in sorted(set(levels[:len(costs)]), reverse=True):
        rows = [i for i in range(len(costs)) if levels[i] == level]
        matrix: list[list[float | None]] = [[float(costs[i][r]) for r in free] for i in rows]
        best = _brute_force(matrix)[1]
        assert sum(costs[i][got[f"w{i}"]] for i in rows) == best
        free = [r for r in free if r not in {got[f"w{i}"] for i in rows}]


def test_the_same_inputs_give_the_same_batch_events() -> None:
    """Two runs of one batch scenario write identical events."""
    logs = []
    for _ in range(2):
        fl = _fleet(robots=("r1", "r2", "r3"), batch_window_s=10.0)
        for i, loc in enumerate(("near1", "near2", "far", "near1")):
            fl.create(loc, f"w{i}")
        _close_window(fl)
        logs.append([(e.event.kind, e.event.data) for e in fl.effects if isinstance(e, Append)])
    assert logs[0] == logs[1]


# --- work queues --------------------------------------------------------------------------


def test_queued_work_is_capped_and_starts_when_the_agent_is_free() -> None:
    """With a cap of one, a busy agent takes one queued step; it starts when the first ends."""
    fl = _fleet(robots=("r1",), max_queued_per_agent=1)
    fl.create("near1", "w1")
    fl.create("near2", "w2")
    fl.create("far", "w3")
    r1 = fl.core.state.agents["r1"]
    assert r1.queued == [("w2", "s")]
    assert fl.core.queue() == [("w3", "s")]
    assert _kinds(fl).count("step_queued_on_agent") == 1
    fl.finish("w1", "s")
    assert _agent_of(fl, "w2") == "r1"
    assert r1.queued == [("w3", "s")]  # room again: the waiting step is queued on it
    assert fl.core.queue() == []


def test_a_step_is_queued_on_the_agent_with_the_lowest_eta() -> None:
    """Remaining work plus cost decides which busy agent queues a step."""
    fl = _fleet(robots=("r1", "r2"), max_queued_per_agent=2)
    fl.create("near1", "w1")  # r1
    fl.create("far", "w2")    # r2
    fl.create("near2", "w3")  # r1: 60 + 2, r2: 60 + 9
    assert fl.core.agents()["r1"].queued == (("w3", "s"),)
    fl.create("near1", "w4")  # r1: 120 + 1, r2: 60 + 2
    assert fl.core.agents()["r2"].queued == (("w4", "s"),)


def test_prefer_idle_off_lets_a_sooner_busy_agent_win() -> None:
    """Without prefer_idle a busy agent with a lower ETA beats a free expensive one."""
    fast = load_template({"name": "fast", "steps": [{
        "id": "s", "kind": "robot", "location": "near1", "estimated_duration_s": 0.5}]})
    for prefer_idle, expected in ((True, "r3"), (False, None)):
        fl = _fleet(robots=("r1", "r3"), templates={**_templates(), "fast": fast},
                    max_queued_per_agent=1, prefer_idle=prefer_idle)
        fl.create("fast", "w1")   # r1, 0.5 s of work
        fl.create("near1", "w2")  # r3 free at 5, r1 busy at 0.5 + 1
        assert _agent_of(fl, "w2") == expected
    assert fl.core.agents()["r1"].queued == (("w2", "s"),)


def test_a_templates_allocation_overrides_the_facility_policy() -> None:
    """A template's own cap (and prefer_idle) apply to its steps; others keep the facility's."""
    own = load_template({"name": "own", "allocation": {"max_queued_per_agent": 2}, "steps": [
        {"id": "s", "kind": "robot", "location": "near1", "estimated_duration_s": 60}]})
    fl = _fleet(robots=("r1",), templates={**_templates(), "own": own})  # facility: no queues
    fl.create("near1", "w1")
    fl.create("own", "w2")
    fl.create("own", "w3")
    fl.create("near2", "w4")
    fl.create("own", "w5")
    assert fl.core.agents()["r1"].queued == (("w2", "s"), ("w3", "s"))
    assert fl.core.queue() == [("w4", "s"), ("w5", "s")]  # no place for the facility's; cap
    eager = load_template({"name": "eager", "allocation": {"prefer_idle": False}, "steps": [
        {"id": "s", "kind": "robot", "location": "near1", "estimated_duration_s": 0.5}]})
    fl = _fleet(robots=("r1", "r3"), templates={**_templates(), "eager": eager},
                max_queued_per_agent=1)
    fl.create("eager", "w1")   # r1, 0.5 s of work
    fl.create("eager", "w2")   # r1 busy: 0.5 + 1 beats the free r3's 5
    assert fl.core.agents()["r1"].queued == (("w2", "s"),)


def test_a_template_allocation_policy_is_checked() -> None:
    """A negative cap is refused when the template loads."""
    with pytest.raises(CoreError, match="max_queued_per_agent"):
        load_template({"name": "bad", "allocation": {"max_queued_per_agent": -1},
                       "steps": [{"id": "s", "kind": "robot"}]})


def _w2_queued_on_r1() -> ScriptedFleet:
    """r1 holds w1; w2 is queued on it (a cap of one)."""
    fl = _fleet(robots=("r1",), max_queued_per_agent=1)
    fl.create("near1", "w1")
    fl.create("near2", "w2")
    assert fl.core.agents()["r1"].queued == (("w2", "s"),)
    return fl


def test_cancelling_a_workflow_releases_its_queued_step() -> None:
    """A cancelled workflow's queued step leaves the agent's queue."""
    fl = _w2_queued_on_r1()
    fl.command("cancel_workflow", workflow_id="w2")
    assert fl.core.agents()["r1"].queued == ()
    fl.finish("w1", "s")
    view = fl.workflow("w2")
    assert view is not None and view.steps["s"].agent is None


def test_aborting_a_workflow_releases_its_queued_step() -> None:
    """A workflow failed by an operator's abort leaves no queued step behind."""
    fl = _w2_queued_on_r1()
    fl.command("operator_action", workflow_id="w2", action="abort")
    assert fl.core.agents()["r1"].queued == ()
    assert fl.core.state.agent_queued == 0
    assert fl.core.queue() == []


def test_restoring_a_checkpoint_queues_the_step_once() -> None:
    """A checkpoint restore takes the queued step out and allocates it afresh, once."""
    fl = _w2_queued_on_r1()
    fl.command("checkpoint", workflow_id="w2")
    fl.command("operator_action", workflow_id="w2", action="restore")
    assert fl.core.agents()["r1"].queued == (("w2", "s"),)
    assert fl.core.state.agent_queued == 1
    assert _kinds(fl).count("step_queued_on_agent") == 2


def test_pausing_a_workflow_gives_its_queued_step_back() -> None:
    """A paused workflow's queued step returns to the facility queue until resumed."""
    fl = _w2_queued_on_r1()
    fl.command("pause_workflow", workflow_id="w2")
    assert fl.core.agents()["r1"].queued == ()
    assert fl.core.queue() == [("w2", "s")]
    _assert_replays(fl)
    fl.command("resume_workflow", workflow_id="w2")
    fl.finish("w1", "s")
    assert _agent_of(fl, "w2") == "r1"


def test_a_lost_agents_queued_step_goes_to_another_agent() -> None:
    """When the agent is lost its queued steps go back to be allocated again."""
    fl = _w2_queued_on_r1()
    fl.agent("r2", "robot", [])  # free, but w2 is queued on r1
    assert _agent_of(fl, "w2") is None
    fl.feed(AgentConn(agent_id="r1", online=False))
    assert fl.core.agents()["r1"].queued == ()
    assert _agent_of(fl, "w1") == "r2"  # its running step is requeued and taken at once
    assert fl.core.agents()["r2"].queued == (("w2", "s"),)  # the queued one follows
    _assert_replays(fl)


def test_an_agent_that_cannot_start_its_queued_step_gives_it_back() -> None:
    """The queued step's resource was taken meanwhile: step_unqueued, back in line."""
    door = load_template({"name": "door", "steps": [{
        "id": "s", "kind": "robot", "location": "near2", "resources": ["door"]}]})
    fl = _fleet(robots=("r1",), templates={**_templates(), "door": door},
                max_queued_per_agent=1)
    fl.create("near1", "w1")
    fl.create("door", "w2")   # queued on r1
    fl.create("door", "w3")   # r1 is full: waits
    fl.agent("r2", "robot", [])  # takes w3, and the door with it
    assert _agent_of(fl, "w3") == "r2"
    fl.finish("w1", "s")
    unqueued = [e.event for e in fl.effects
                if isinstance(e, Append) and e.event.kind == "step_unqueued"]
    assert [(e.workflow_id, e.data["agent"]) for e in unqueued] == [("w2", "r1")]
    assert fl.core.queue() == [("w2", "s")]
    assert fl.core.agents()["r1"].queued == ()
    _assert_replays(fl)


def _assert_replays(fl: ScriptedFleet) -> None:
    """Replaying the log, and restoring the snapshot, give the live core's state."""
    core = fl.core
    restored = Core.restore(core.snapshot(), "f1", core.state.templates, core.config)
    replayed = Core("f1", core.state.templates, config=core.config)
    for e in fl.effects:
        if isinstance(e, Append):
            replayed.apply(e.event)
    assert replayed.snapshot() == core.snapshot()
    assert restored.snapshot() == core.snapshot()
    assert restored.queue() == core.queue()
    assert restored.agents() == core.agents()


def test_work_queues_and_batches_replay_and_restore_identically() -> None:
    """Replaying the log, and restoring the snapshot, give the live core's state."""
    fl = _fleet(max_queued_per_agent=2, batch_window_s=10.0)
    for i, loc in enumerate(("near1", "near2", "far", "near1", "far", "near2")):
        fl.create(loc, f"w{i}")
    _close_window(fl)
    assert fl.core.state.agent_queued > 0
    _assert_replays(fl)
    fl.run()
    assert all(fl.workflow(f"w{i}").state == "completed" for i in range(6))  # type: ignore[union-attr]
    _assert_replays(fl)
