"""Dependencies: sequential, parallel, conditional, resource-based, data flow, cycles,
and propagation between workflows."""

from __future__ import annotations

from typing import Any

import pytest

from edge_runtime.core import Core, DependencyCycle, Publish, Template
from edge_runtime.templates import load_template
from edge_runtime.testing import ScriptedFleet
from topics import Assign


def _t(name: str, *steps: dict[str, Any]) -> Template:
    return load_template({"name": name, "steps": list(steps)})


def _fleet(*templates: Template, robots: int = 1) -> ScriptedFleet:
    fl = ScriptedFleet(Core("f1", {t.name: t for t in templates}))
    for i in range(robots):
        fl.agent(f"r{i}", "robot", [])
    return fl


def _states(fl: ScriptedFleet, wid: str = "w1") -> dict[str, str]:
    wf = fl.workflow(wid)
    assert wf is not None
    return {sid: s.state for sid, s in wf.steps.items()}


def _assigns(fx: list[Any]) -> list[Assign]:
    return [e.message for e in fx if isinstance(e, Publish) and isinstance(e.message, Assign)]


SEQ = _t("seq", {"id": "a", "kind": "robot"}, {"id": "b", "kind": "robot", "after": ["a"]})


def test_sequential_waits_for_predecessor() -> None:
    """B is not assigned until A is done."""
    fl = _fleet(SEQ, robots=2)
    fl.create("seq", "w1")
    assert _states(fl) == {"a": "assigned", "b": "pending"}
    fl.finish("w1", "a")
    assert _states(fl)["b"] == "assigned"


def test_parallel_fork_and_join() -> None:
    """Two branches after one step run together; the join waits for both."""
    t = _t("fj", {"id": "a", "kind": "robot"},
           {"id": "b", "kind": "robot", "after": ["a"]},
           {"id": "c", "kind": "robot", "after": ["a"]},
           {"id": "d", "kind": "robot", "after": ["b", "c"]})
    fl = _fleet(t, robots=3)
    fl.create("fj", "w1")
    fl.finish("w1", "a")
    assert _states(fl) == {"a": "done", "b": "assigned", "c": "assigned", "d": "pending"}
    fl.finish("w1", "b")
    assert _states(fl)["d"] == "pending"
    fl.finish("w1", "c")
    assert _states(fl)["d"] == "assigned"


def test_conditional_step_skipped_when_false() -> None:
    """A ``when`` that is false on the workflow data skips the step; dependants go on."""
    t = _t("cond", {"id": "a", "kind": "robot"},
           {"id": "fragile", "kind": "robot", "after": ["a"], "when": "data.fragile"},
           {"id": "z", "kind": "robot", "after": ["fragile", "a"]})
    fl = _fleet(t)
    fl.create("cond", "w1", data={"fragile": False})
    fl.finish("w1", "a")
    assert _states(fl) == {"a": "done", "fragile": "skipped", "z": "assigned"}
    fl.create("cond", "w2", data={"fragile": True})
    fl.finish("w1", "z")
    fl.finish("w2", "a")
    assert _states(fl, "w2")["fragile"] == "assigned"


def test_condition_error_fails_step_not_core() -> None:
    """A condition that cannot be evaluated fails its step (non-retryable), nothing crashes."""
    t = _t("bad", {"id": "a", "kind": "robot", "when": "data.missing > 1"})
    fl = _fleet(t)
    fl.create("bad", "w1")
    wf = fl.workflow("w1")
    assert wf is not None and wf.steps["a"].state == "failed"
    assert wf.steps["a"].error == "condition_error" and wf.awaiting_operator == ("a",)


def test_decision_picks_a_branch() -> None:
    """A decision step runs one branch and skips the other."""
    t = _t("dec", {"id": "look", "kind": "robot"},
           {"id": "d", "kind": "decision", "after": ["look"],
            "condition": "outputs.look.ok", "then": ["yes"], "else": ["no"]},
           {"id": "yes", "kind": "robot"}, {"id": "no", "kind": "robot"})
    fl = _fleet(t)
    fl.create("dec", "w1")
    fl.finish("w1", "look", ok=False)
    assert _states(fl) == {"look": "done", "d": "done", "yes": "skipped", "no": "assigned"}


def test_resource_based_waits_for_free_resource() -> None:
    """A step needing a held resource waits until the holder releases it."""
    t = _t("dock", {"id": "use", "kind": "robot", "resources": ["dock_1"]})
    fl = _fleet(t, robots=2)
    fl.create("dock", "w1")
    fl.create("dock", "w2")
    assert fl.core.resource_holds() == {"dock_1": ("w1", "use")}
    assert _states(fl, "w2") == {"use": "allocating"}
    wf2 = fl.workflow("w2")
    assert wf2 is not None and wf2.state == "active.waiting_for_resource"
    fl.finish("w1", "use")
    assert _states(fl, "w2") == {"use": "assigned"}
    assert fl.core.resource_holds() == {"dock_1": ("w2", "use")}


def test_data_flow_passes_named_output() -> None:
    """B receives A's named output in ``Assign.inputs``."""
    t = _t("df", {"id": "a", "kind": "robot"},
           {"id": "b", "kind": "robot", "inputs": {"tote": "a.tote_id"}})
    fl = _fleet(t)
    fl.create("df", "w1")
    fx = fl.finish("w1", "a", tote_id="T-9")
    [assign] = _assigns(fx)
    assert assign.step_id == "b" and assign.inputs == {"tote": "T-9"}


def test_data_flow_missing_output_fails_consumer() -> None:
    """If A finishes without the named output, B fails as missing_input (not retried)."""
    t = _t("df", {"id": "a", "kind": "robot"},
           {"id": "b", "kind": "robot", "inputs": {"tote": "a.tote_id"}})
    fl = _fleet(t)
    fl.create("df", "w1")
    fl.finish("w1", "a")
    wf = fl.workflow("w1")
    assert wf is not None and wf.steps["b"].error == "missing_input"


def test_step_dependency_cycle_refused_and_named() -> None:
    """Adding a step dependency that closes a cycle is refused, naming the cycle."""
    t = _t("three", {"id": "a", "kind": "robot"}, {"id": "b", "kind": "robot", "after": ["a"]},
           {"id": "c", "kind": "robot", "after": ["b"]})
    fl = _fleet(t, robots=0)
    fl.create("three", "w1")
    seq = fl.core.last_seq
    with pytest.raises(DependencyCycle, match="dependency cycle: c -> a -> b -> c"):
        fl.command("add_dependency", workflow_id="w1", step="a", after="c")
    assert fl.core.last_seq == seq


def test_workflow_dependency_cycle_refused_and_named() -> None:
    """Workflow dependencies that would loop are refused, naming the workflows."""
    fl = _fleet(SEQ, robots=0)
    fl.create("seq", "w1")
    fl.create("seq", "w2", depends_on=["w1"])
    fl.create("seq", "w3", depends_on=["w2"])
    with pytest.raises(DependencyCycle, match="dependency cycle: w3 -> w2 -> w3"):
        fl.command("add_dependency", workflow_id="w2", depends_on="w3")
    with pytest.raises(DependencyCycle, match="dependency cycle: w3 -> w1 -> w2 -> w3"):
        fl.command("add_dependency", workflow_id="w1", depends_on="w3")


def test_dependent_workflow_starts_on_completion() -> None:
    """A workflow created depending on another stays pending until that one completes."""
    fl = _fleet(SEQ, robots=1)
    fl.create("seq", "w1")
    fl.create("seq", "w2", depends_on=["w1"])
    assert fl.workflow("w2").state == "pending"  # type: ignore[union-attr]
    fl.finish("w1", "a")
    fl.finish("w1", "b")
    assert fl.workflow("w1").state == "completed"  # type: ignore[union-attr]
    assert _states(fl, "w2")["a"] == "assigned"


def test_failure_propagates_to_dependents() -> None:
    """Cancelling a workflow fails the workflows waiting on it, transitively."""
    fl = _fleet(SEQ, robots=0)
    fl.create("seq", "w1")
    fl.create("seq", "w2", depends_on=["w1"])
    fl.create("seq", "w3", depends_on=["w2"])
    fl.command("cancel_workflow", workflow_id="w1")
    for wid in ("w2", "w3"):
        wf = fl.workflow(wid)
        assert wf is not None and wf.state == "failed" and "dependency" in wf.reason


def test_priority_orders_the_queue() -> None:
    """Waiting steps go to a freed agent by priority, then age."""
    t = _t("one", {"id": "s", "kind": "robot"})
    fl = _fleet(t, robots=0)
    fl.create("one", "low", priority=1)
    fl.create("one", "high", priority=5)
    fl.create("one", "low2", priority=1)
    assert fl.core.queue() == [("high", "s"), ("low", "s"), ("low2", "s")]
    fl.agent("r9", "robot", [])
    assert _states(fl, "high") == {"s": "assigned"}


def test_cost_function_chooses_agent() -> None:
    """A custom cost function picks the cheapest agent; ties go to the lowest id."""
    from edge_runtime.core import CoreConfig

    t = _t("one", {"id": "s", "kind": "robot", "location": "n5"})
    core = Core("f1", {"one": t}, config=CoreConfig(
        cost=lambda agent, step, wf: 0.0 if agent.id in ("r2", "r3") else 1.0))
    fl = ScriptedFleet(core)
    for i in range(4):
        fl.agent(f"r{i}", "robot", [])
    fl.create("one", "w1")
    assert fl.workflow("w1").steps["s"].agent == "r2"  # type: ignore[union-attr]
