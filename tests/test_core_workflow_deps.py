"""Typed dependencies between workflows of one facility: sequential, parallel, conditional,
resource_based and data_flow — released, failed and skipped; bad shapes and cycles refused
with nothing changed; snapshots and replay keep them."""

from __future__ import annotations

from typing import Any

import pytest

from edge_runtime.core import (
    BadArguments,
    Core,
    CoreError,
    DependencyCycle,
    SourceFacts,
    WorkflowView,
    check_dependency,
    dependency_outcome,
)
from edge_runtime.templates import load_template
from edge_runtime.testing import ScriptedFleet

TWO = load_template({"name": "two", "data": {"lot": "L1"}, "steps": [
    {"id": "a", "kind": "robot", "resources": ["dock_1"]},
    {"id": "b", "kind": "robot", "after": ["a"]},
]})
ONE = load_template({"name": "one", "steps": [{"id": "s", "kind": "robot"}]})


def _fleet(robots: int = 2) -> ScriptedFleet:
    fl = ScriptedFleet(Core("f1", {"two": TWO, "one": ONE}))
    for i in range(robots):
        fl.agent(f"r{i}", "robot", [])
    return fl


def _view(fl: ScriptedFleet, wid: str) -> WorkflowView:
    wf = fl.workflow(wid)
    assert wf is not None
    return wf


def _dep(depends_on: str, type: str, **conditions: Any) -> dict[str, Any]:
    return {"depends_on": depends_on, "type": type, "conditions": conditions}


def _target(fl: ScriptedFleet, depends_on: str, type: str, wid: str = "t",
            **conditions: Any) -> None:
    fl.create("one", wid, dependencies=[_dep(depends_on, type, **conditions)])


def _complete(fl: ScriptedFleet, wid: str, **outputs: Any) -> None:
    fl.finish(wid, "a", **outputs)
    fl.finish(wid, "b")


def test_sequential_typed_releases_on_completion() -> None:
    """A typed sequential dependency is a plain one: the target starts once the source
    completed."""
    fl = _fleet()
    fl.create("two", "src")
    _target(fl, "src", "sequential")
    assert _view(fl, "t").state == "pending" and _view(fl, "t").depends_on == ("src",)
    _complete(fl, "src")
    assert _view(fl, "t").steps["s"].state == "assigned"


def test_parallel_releases_once_the_source_started() -> None:
    """A parallel target starts as soon as its source starts, not when it ends."""
    fl = _fleet(robots=3)
    fl.create("two", "first")
    fl.create("two", "src", depends_on=["first"])
    _target(fl, "src", "parallel")
    assert _view(fl, "t").state == "pending"
    _complete(fl, "first")
    assert _view(fl, "src").state.startswith("active")
    assert _view(fl, "t").state.startswith("active")
    assert _view(fl, "t").dependencies == (("src", "parallel", {}, None, "released"),)


def test_parallel_fails_when_the_source_never_started() -> None:
    """A parallel target fails when its source is cancelled before it started."""
    fl = _fleet(robots=0)
    fl.create("two", "first")
    fl.create("two", "src", depends_on=["first"])
    _target(fl, "src", "parallel")
    fl.command("cancel_workflow", workflow_id="src")
    t = _view(fl, "t")
    assert t.state == "failed" and t.reason == "dependency f1/src cancelled"
    assert t.dependencies[0][4] == "failed"


def test_conditional_true_releases() -> None:
    """A conditional target starts when the source completed and the CEL is true on its
    data and outputs."""
    fl = _fleet()
    fl.create("two", "src")
    _target(fl, "src", "conditional", when='outputs.a.grade == "A" && data.lot == "L1"')
    _complete(fl, "src", grade="A")
    assert _view(fl, "t").state.startswith("active")


def test_conditional_false_skips_the_target() -> None:
    """A false condition cancels the target, naming the condition and the source."""
    fl = _fleet()
    fl.create("two", "src")
    _target(fl, "src", "conditional", when='outputs.a.grade == "A"')
    _complete(fl, "src", grade="B")
    t = _view(fl, "t")
    assert t.state == "cancelled"
    assert t.reason == 'condition outputs.a.grade == "A" false on f1/src'
    assert fl.core.workflow("t") is None  # archived: its record keeps its dependencies
    assert t.dependencies == (
        ("src", "conditional", {"when": 'outputs.a.grade == "A"'}, None, "skipped"),)


def test_conditional_fails_when_the_source_fails() -> None:
    """The source cancelled: a conditional target fails."""
    fl = _fleet(robots=0)
    fl.create("two", "src")
    _target(fl, "src", "conditional", when="true")
    fl.command("cancel_workflow", workflow_id="src")
    assert _view(fl, "t").state == "failed"


def test_conditional_bad_cel_is_refused_and_changes_nothing() -> None:
    """A conditional dependency whose CEL does not compile is refused; no event."""
    fl = _fleet()
    fl.create("two", "src")
    fl.create("one", "t", depends_on=[])
    seq = fl.core.last_seq
    with pytest.raises(BadArguments, match="does not compile"):
        fl.command("add_dependency", workflow_id="t", depends_on="src", type="conditional",
                   conditions={"when": "outputs.a.grade =="})
    with pytest.raises(BadArguments, match="does not compile"):
        _target(fl, "src", "conditional", wid="t2", when="((")
    assert fl.core.last_seq == seq and fl.workflow("t2") is None


def test_resource_based_waits_for_the_resource_release() -> None:
    """A resource_based target waits while its running source holds the resource and
    starts once the step holding it ended, the source still running."""
    fl = _fleet(robots=3)
    fl.create("two", "src")
    _target(fl, "src", "resource_based", resources=["dock_1"])
    assert fl.core.resource_holds() == {"dock_1": ("src", "a")}
    assert _view(fl, "t").state == "pending"
    fl.finish("src", "a")
    assert _view(fl, "src").state.startswith("active")
    assert _view(fl, "t").state.startswith("active")


def test_resource_based_released_by_a_failed_source() -> None:
    """A failed (here cancelled) source frees its resources: the target is released."""
    fl = _fleet(robots=0)
    fl.create("two", "first")
    fl.create("two", "src", depends_on=["first"])
    _target(fl, "src", "resource_based", resources=["dock_1"])
    assert _view(fl, "t").state == "pending"  # the source is pending
    fl.command("cancel_workflow", workflow_id="src")
    assert _view(fl, "t").state.startswith("active")


def test_data_flow_merges_values_into_the_target() -> None:
    """A data_flow target starts once the values exist, with them in its data."""
    fl = _fleet(robots=3)
    fl.create("two", "src")
    _target(fl, "src", "data_flow", outputs={"tote": "a.tote_id", "lot": "data.lot"})
    assert _view(fl, "t").state == "pending"
    fl.finish("src", "a", tote_id="T-7")
    t = _view(fl, "t")
    assert t.state.startswith("active") and t.data == {"tote": "T-7", "lot": "L1"}


def test_data_flow_missing_value_fails_the_target() -> None:
    """The source completed without a named value: the target fails as missing_input."""
    fl = _fleet()
    fl.create("two", "src")
    _target(fl, "src", "data_flow", outputs={"tote": "a.tote_id"})
    _complete(fl, "src")
    t = _view(fl, "t")
    assert t.state == "failed" and t.reason == "missing_input: a.tote_id from f1/src"


def test_bad_conditions_refused_with_a_clear_error() -> None:
    """Missing, extra or malformed conditions are refused by name; nothing is written."""
    fl = _fleet()
    fl.create("two", "src")
    seq = fl.core.last_seq
    cases = [("parallel", {"when": "true"}, "takes no conditions"),
             ("conditional", {}, "needs conditions.when"),
             ("resource_based", {"resources": []}, "1 to 64 resource names"),
             ("data_flow", {"outputs": {"x": "nodot"}}, "is not '<step>.<key>'"),
             ("data_flow", {"outputs": {"x": "a.b"}, "when": "true"}, "takes only 'outputs'")]
    for type_, conditions, message in cases:
        with pytest.raises(BadArguments, match=message):
            fl.create("one", "t", dependencies=[
                {"depends_on": "src", "type": type_, "conditions": conditions}])
    with pytest.raises(BadArguments, match="dependencies"):
        fl.create("one", "t", dependencies=[{"depends_on": "src", "type": "sideways"}])
    assert fl.core.last_seq == seq


def test_unknown_source_and_duplicates_refused() -> None:
    """An unknown source and a second dependency on the same source are refused."""
    fl = _fleet()
    fl.create("two", "src")
    with pytest.raises(CoreError, match="unknown workflow 'nope'"):
        _target(fl, "nope", "parallel")
    _target(fl, "src", "parallel")
    with pytest.raises(CoreError, match="already depends on f1/src"):
        fl.command("add_dependency", workflow_id="t", depends_on="src",
                   type="resource_based", conditions={"resources": ["dock_1"]})


def test_typed_cycle_refused_naming_it() -> None:
    """Typed dependencies that would loop are refused, the cycle named."""
    fl = _fleet(robots=0)
    fl.create("two", "w1")
    fl.create("two", "w2", depends_on=["w1"])
    _target(fl, "w2", "data_flow", wid="w3", outputs={"x": "a.x"})
    seq = fl.core.last_seq
    with pytest.raises(DependencyCycle, match="dependency cycle: w3 -> w1 -> w2 -> w3"):
        fl.command("add_dependency", workflow_id="w1", depends_on="w3", type="parallel")
    assert fl.core.last_seq == seq


def test_source_leaves_memory_once_no_target_waits() -> None:
    """A completed source stays in memory while a typed target waits for it, and is
    archived once that target is cancelled."""
    fl = _fleet(robots=2)
    fl.create("one", "gate")
    fl.create("two", "src")
    fl.create("one", "t", depends_on=["gate"],
              dependencies=[_dep("src", "data_flow", outputs={"x": "a.x"})])
    _complete(fl, "src", x=1)
    assert fl.core.workflow("src") is not None and _view(fl, "t").state == "pending"
    fl.command("cancel_workflow", workflow_id="t")
    assert fl.core.workflow("src") is None and fl.core.archived("src") == "completed"


def test_added_later_to_a_pending_target() -> None:
    """add_dependency with a type holds a pending target like one given at creation."""
    fl = _fleet(robots=3)
    fl.create("two", "src")
    fl.create("one", "gate")
    fl.create("one", "t", depends_on=["gate"])
    fl.command("add_dependency", workflow_id="t", depends_on="src", type="data_flow",
               conditions={"outputs": {"tote": "a.tote_id"}})
    fl.finish("gate", "s")
    assert _view(fl, "t").state == "pending"
    fl.finish("src", "a", tote_id="T-1")
    assert _view(fl, "t").state.startswith("active") and _view(fl, "t").data["tote"] == "T-1"


def test_snapshot_restore_keeps_waiting_typed_dependencies() -> None:
    """A restored core still holds the target and releases it as the rule says."""
    fl = _fleet(robots=3)
    fl.create("two", "src")
    _target(fl, "src", "data_flow", outputs={"tote": "a.tote_id"})
    core = Core.restore(fl.core.snapshot(), "f1", fl.core.state.templates)
    assert core.snapshot() == fl.core.snapshot()
    restored = ScriptedFleet(core, start=fl.now)
    assert _view(restored, "t").dependencies == (
        ("src", "data_flow", {"outputs": {"tote": "a.tote_id"}}, None, "waiting"),)
    restored.finish("src", "a", tote_id="T-2")
    assert _view(restored, "t").data == {"tote": "T-2"}


def test_outcome_is_a_pure_function_of_the_facts() -> None:
    """The shared rule decides from the facts alone (what the hub uses on its replicas)."""
    running = SourceFacts("active.executing.step_execution", True, {"n": 2},
                          {"a": {"k": 1}}, frozenset({"dock_1"}))
    assert dependency_outcome("parallel", {}, running, "f/w").verdict == "release"
    assert dependency_outcome("resource_based", {"resources": ["dock_1"]}, running,
                              "f/w").verdict == "wait"
    flow = dependency_outcome("data_flow", {"outputs": {"x": "a.k", "y": "data.n"}}, running,
                              "f/w")
    assert (flow.verdict, flow.data) == ("release", {"x": 1, "y": 2})
    check_dependency("conditional", {"when": "data.n > 1"})
    with pytest.raises(BadArguments, match="unknown dependency type"):
        check_dependency("soon", {})
