"""The workflow hierarchy: states reached, illegal transitions, pause/resume history."""

from __future__ import annotations

import pytest

from edge_runtime.core import (
    Core,
    IllegalTransition,
    Template,
    TimerFired,
    step_machine,
    workflow_machine,
)
from edge_runtime.templates import load_template
from edge_runtime.testing import ScriptedFleet
from topics import AgentConn

TWO_STEPS = load_template({"name": "two", "steps": [
    {"id": "a", "kind": "robot", "capabilities": ["carry"], "outputs": ["x"]},
    {"id": "b", "kind": "robot", "after": ["a"], "capabilities": ["carry"]},
]})
HANDOVER = load_template({"name": "meet", "steps": [
    {"id": "r", "kind": "robot"}, {"id": "h", "kind": "human"},
    {"id": "s", "kind": "sync", "participants": ["r", "h"]},
]})


def _fleet(*templates: Template) -> ScriptedFleet:
    core = Core("f1", {t.name: t for t in templates})
    return ScriptedFleet(core)


def _state(fl: ScriptedFleet, wid: str = "w1") -> str:
    wf = fl.workflow(wid)
    assert wf is not None
    return wf.state


def test_hierarchy_is_the_design() -> None:
    """The machine has docs/design.md §5's leaves, as dotted paths, and the two transient states
    (docs/decisions.md, "Cancel and pause")."""
    assert workflow_machine().leaves == (
        "pending", "active.initializing", "active.executing.step_preparation",
        "active.executing.step_execution", "active.executing.step_validation",
        "active.executing.step_cleanup", "active.waiting_for_resource",
        "active.synchronizing", "pausing", "paused", "cancelling", "completed", "failed",
        "cancelled",
    )


def test_every_workflow_state_is_reached() -> None:
    """Driving workflows visits every state of the hierarchy."""
    seen: set[str] = set()
    fl = _fleet(TWO_STEPS, HANDOVER)
    machine = fl.core.workflow_machine
    machine.on("start", before=lambda o, s, d: seen.add(s))
    for ev in ("start", "prepare", "execute", "validate", "clean_up", "wait_resource",
               "synchronize", "complete", "pause", "resume", "cancel", "fail", "restore",
               "begin_pause", "paused", "begin_cancel", "cancelled"):
        machine.on(ev, after=lambda o, s, d: seen.add(d))
    fl.create("two", "w1")  # no robot yet
    assert _state(fl) == "active.waiting_for_resource"
    fl.agent("r1", "robot", ["carry"])
    fl.finish("w1", "a", x=1)
    fl.finish("w1", "b")
    fl.agent("h1", "human", [])
    fl.create("meet", "w2")
    fl.finish("w2", "r")
    fl.finish("w2", "h")
    assert _state(fl, "w2") == "active.synchronizing"
    fl.command("pause_workflow", workflow_id="w2")
    fl.command("cancel_workflow", workflow_id="w2")
    fl.create("two", "w3")
    fl.command("operator_action", workflow_id="w3", action="abort")
    fl.create("two", "w4")  # r1 holds its step: pause and cancel wait for r1
    fl.command("pause_workflow", workflow_id="w4")
    fl.confirm("w4", "a")
    fl.command("resume_workflow", workflow_id="w4")
    fl.command("cancel_workflow", workflow_id="w4")
    fl.confirm("w4", "a")
    assert seen >= set(machine.leaves) - {"active.initializing"} | {"pending"}
    assert "active.initializing" in seen


def test_hooks_belong_to_one_core() -> None:
    """A hook on one core's machine never runs for another core."""
    seen: list[str] = []
    first, second = _fleet(TWO_STEPS), _fleet(TWO_STEPS)
    first.core.workflow_machine.on("start", after=lambda o, s, d: seen.append(o.id))
    first.create("two", "a1")
    second.create("two", "b1")
    assert seen == ["a1"]


def test_pre_hook_refuses_a_transition() -> None:
    """A pre hook that raises refuses the transition: the state does not move."""
    fl = _fleet(TWO_STEPS)

    def refuse(obj: object, source: str, dest: str) -> None:
        raise IllegalTransition(f"not now ({source} -> {dest})")

    fl.core.workflow_machine.on("pause", before=refuse)
    fl.create("two", "w1")
    with pytest.raises(IllegalTransition, match="not now"):
        fl.command("pause_workflow", workflow_id="w1")
    assert _state(fl) == "active.waiting_for_resource"
    assert fl.core.needs_rebuild  # refused inside an event: the shell rebuilds from the log


def test_walk_goes_through_each_executing_substate() -> None:
    """Accepted, started and done move a step's workflow through the executing substates."""
    fl = _fleet(TWO_STEPS)
    fl.agent("r1", "robot", ["carry"])
    fl.create("two", "w1")
    assert _state(fl) == "active.executing.step_preparation"
    fl.accept("w1", "a")
    assert _state(fl) == "active.executing.step_preparation"
    fl.start_step("w1", "a")
    assert _state(fl) == "active.executing.step_execution"
    wf = fl.workflow("w1")
    assert wf is not None and wf.steps["a"].state == "executing"


def test_illegal_transition_names_state_and_accepted_events() -> None:
    """Resuming a running workflow is refused with its state path and what it accepts."""
    fl = _fleet(TWO_STEPS)
    fl.agent("r1", "robot", ["carry"])
    fl.create("two", "w1")
    seq = fl.core.last_seq
    with pytest.raises(IllegalTransition) as err:
        fl.command("resume_workflow", workflow_id="w1")
    assert str(err.value) == (
        "workflow w1 is in active.executing.step_preparation; it accepts: pause, cancel, fail"
        " (not resume)"
    )
    assert fl.core.last_seq == seq


def test_final_state_accepts_nothing() -> None:
    """A cancelled workflow refuses every command and says it is final."""
    fl = _fleet(TWO_STEPS)
    fl.create("two", "w1")
    fl.command("cancel_workflow", workflow_id="w1")
    with pytest.raises(IllegalTransition, match="is in cancelled; it accepts: nothing"):
        fl.command("pause_workflow", workflow_id="w1")


def test_pause_resume_returns_to_deep_substate() -> None:
    """Resume returns to the exact nested substate the workflow was paused in."""
    fl = _fleet(TWO_STEPS)
    fl.agent("r1", "robot", ["carry"])
    fl.create("two", "w1")
    fl.accept("w1", "a")
    fl.start_step("w1", "a")
    fl.command("pause_workflow", workflow_id="w1")
    wf = fl.workflow("w1")
    assert wf is not None and wf.state == "pausing"  # until r1 confirms
    assert wf.resumes_to == "active.executing.step_execution"
    fl.confirm("w1", "a")
    wf = fl.workflow("w1")
    assert wf is not None and wf.state == "paused"
    assert wf.resumes_to == "active.executing.step_execution"
    fl.command("resume_workflow", workflow_id="w1")
    assert _state(fl) == "active.executing.step_execution"


def test_paused_workflow_tracks_steps_that_finish() -> None:
    """A step finishing while paused changes where resume returns, not the paused state."""
    fl = _fleet(TWO_STEPS)
    fl.agent("r1", "robot", ["carry"])
    fl.create("two", "w1")
    fl.accept("w1", "a")
    fl.start_step("w1", "a")
    pause_fx = fl.command("pause_workflow", workflow_id="w1")
    assert any(getattr(e, "message", None) and e.message.type == "pause"  # type: ignore[union-attr]
               for e in pause_fx)
    fl.feed(__import__("topics").StepDone(
        event_id="late", agent_id="r1", workflow_id="w1", step_id="a", attempt=1, ts=0,
        outputs={"x": 1}))
    wf = fl.workflow("w1")
    assert wf is not None and wf.state == "paused"
    assert wf.steps["b"].state == "pending"  # nothing new starts while paused
    fl.command("resume_workflow", workflow_id="w1")
    assert _state(fl) == "active.executing.step_preparation"


def test_event_on_parent_applies_to_every_substate() -> None:
    """``pause`` is defined on ``active`` and is accepted in each of its leaves."""
    machine = workflow_machine()
    active = [leaf for leaf in machine.leaves if leaf.startswith("active.")]
    assert len(active) > 1
    for leaf in active:
        assert "pause" in machine.accepts(leaf)
    assert "pause" not in machine.accepts("pending")


def test_step_lifecycle_order() -> None:
    """The step machine walks pending → … → done exactly as docs/design.md §5 lists."""
    class S:
        def __init__(self) -> None:
            self.id = "s"
            self.state = machine.initial
            self.history: str | None = None

    machine = step_machine()
    s = S()
    path = [s.state]
    for ev in ("ready", "allocate", "assign", "prepare", "execute", "validate", "clean_up",
               "finish"):
        path.append(machine.fire(s, ev))
    assert path == ["pending", "ready", "allocating", "assigned", "preparing", "executing",
                    "validating", "cleanup", "done"]


def test_stale_timer_is_ignored() -> None:
    """A timer for something that moved on changes nothing."""
    fl = _fleet(TWO_STEPS)
    fl.create("two", "w1")
    seq = fl.core.last_seq
    assert fl.feed(TimerFired("retry:w1/a")) == []
    assert fl.feed(TimerFired("timeout:nope/a")) == []
    assert fl.core.last_seq == seq


def test_counts_group_workflows_by_top_state_and_agents_by_status() -> None:
    """The core counts workflows by top-level state and agents by status, offline apart."""
    fl = _fleet(TWO_STEPS)
    fl.agent("r1", "robot", ["carry"])
    fl.agent("r2", "robot", ["carry"])
    fl.create("two", "w1")
    fl.create("two", "w2")
    fl.command("pause_workflow", workflow_id="w2")
    assert fl.core.workflow_counts() == {"active": 1, "pausing": 1}
    fl.confirm("w2", "a")
    assert fl.core.workflow_counts() == {"active": 1, "paused": 1}
    assert fl.core.knows_agent("r1") and not fl.core.knows_agent("r9")
    fl.feed(AgentConn(agent_id="r2", online=False))
    counts = fl.core.agent_counts()
    assert counts.get("offline") == 1 and sum(counts.values()) == 2
