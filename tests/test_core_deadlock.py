"""Resources held across steps (``hold_until``), acquisition in a global order, and the
wait-for graph that picks a deadlock's victim (docs/coordination.md, "Deadlock
prevention")."""

from __future__ import annotations

from typing import Any

import pytest

from edge_runtime.core import Append, Core, CoreConfig, Effect, Event, Publish, TemplateError
from edge_runtime.templates import load_template
from edge_runtime.testing import ScriptedFleet
from tests.teams_rig import assert_replays
from topics import Cancel

# A robot enters zone z1, works in it (needing z1 again) and leaves; z1 is held throughout.
_ZONE: dict[str, Any] = {"name": "zone", "steps": [
    {"id": "enter", "kind": "robot", "resources": ["z1"], "hold_until": {"z1": "leave"},
     "compensation": {"kind": "robot", "action": "back_out"}},
    {"id": "work", "kind": "robot", "resources": ["z1"], "after": ["enter"],
     "retry": {"max_attempts": 1}},
    {"id": "leave", "kind": "robot", "after": ["work"]}]}
ZONE = load_template(_ZONE)
SAGA = load_template({**_ZONE, "name": "saga", "on_failure": "compensate"})
OTHER = load_template({"name": "other", "steps": [
    {"id": "only", "kind": "robot", "resources": ["z1"]}]})
OTHER2 = load_template({"name": "other2", "steps": [
    {"id": "only", "kind": "robot", "resources": ["z2"]}]})
# The two-zone case: A holds z1 then needs z2, B holds z2 then needs z1 (each works inside
# its zone first, so both can be inside before either wants to cross).
A = load_template({"name": "a", "steps": [
    {"id": "enter", "kind": "robot", "resources": ["z1"], "hold_until": {"z1": "cross"}},
    {"id": "inside", "kind": "robot", "after": ["enter"]},
    {"id": "cross", "kind": "robot", "resources": ["z2"], "after": ["inside"]}]})
B = load_template({"name": "b", "steps": [
    {"id": "enter", "kind": "robot", "resources": ["z2"], "hold_until": {"z2": "cross"}},
    {"id": "inside", "kind": "robot", "after": ["enter"]},
    {"id": "cross", "kind": "robot", "resources": ["z1"], "after": ["inside"]}]})
# z2 held from x until y; w needs z1 but is not inside the span — until an operator makes
# y wait for w (``add_dependency``), which the ordering planned at x cannot see.
C = load_template({"name": "c", "steps": [
    {"id": "x", "kind": "robot", "resources": ["z2"], "hold_until": {"z2": "y"}},
    {"id": "w", "kind": "robot", "resources": ["z1"], "after": ["x"]},
    {"id": "y", "kind": "robot", "after": ["x"]}]})
TEMPLATES = {t.name: t for t in (ZONE, SAGA, OTHER, OTHER2, A, B, C)}


def _fleet(robots: int = 3, **config: Any) -> ScriptedFleet:
    fl = ScriptedFleet(Core("f1", TEMPLATES, config=CoreConfig(**config)))
    for i in range(1, robots + 1):
        fl.agent(f"r{i}", "robot", [])
    return fl


def _kinds(fx: list[Effect]) -> list[str]:
    return [e.event.kind for e in fx if isinstance(e, Append)]


def _events(fl: ScriptedFleet, kind: str) -> list[Event]:
    return [e.event for e in fl.effects if isinstance(e, Append) and e.event.kind == kind]


def _state(fl: ScriptedFleet, wid: str) -> str:
    view = fl.workflow(wid)
    assert view is not None
    return view.state


def _step(fl: ScriptedFleet, wid: str, sid: str) -> str:
    view = fl.core.workflow(wid)
    assert view is not None
    return view.steps[sid].state


# --- the template ---------------------------------------------------------------------

@pytest.mark.parametrize(("steps", "message"), [
    ([{"id": "a", "kind": "robot", "resources": ["z1"], "hold_until": {"z2": "b"}},
      {"id": "b", "kind": "robot", "after": ["a"]}], "'z2' is not one of the step's"),
    ([{"id": "a", "kind": "robot", "resources": ["z1"], "hold_until": {"z1": "b"}},
      {"id": "b", "kind": "robot"}], "'b' is not a later step"),
    ([{"id": "a", "kind": "robot", "resources": ["z1"], "after": ["b"]},
      {"id": "b", "kind": "robot", "resources": ["z1"], "hold_until": {"z1": "a"}}],
     None),
    ([{"id": "a", "kind": "robot", "resources": ["z1"], "hold_until": {"z1": "nope"}}],
     "unknown step 'nope'"),
    ([{"id": "a", "kind": "robot", "resources": ["z1"], "hold_until": {"z1": "a"}}],
     "'a' is not a later step"),
    ([{"id": "a", "kind": "wait", "duration_s": 1, "resources": ["z1"],
       "hold_until": {"z1": "b"}}, {"id": "b", "kind": "robot", "after": ["a"]}],
     "only steps done by an agent"),
])
def test_a_hold_until_that_cannot_end_is_refused(steps: list[dict[str, Any]],
                                                  message: str | None) -> None:
    """The resource must be the step's own, the end a later step of an agent step."""
    if message is None:  # the later step comes after it: accepted
        assert load_template({"name": "t", "steps": steps}).steps[1].hold_until == {"z1": "a"}
        return
    with pytest.raises(TemplateError, match="hold_until") as err:
        load_template({"name": "t", "steps": steps})
    assert message in str(err.value)


# --- spans ----------------------------------------------------------------------------

def test_a_span_holds_its_resource_until_the_later_step_ends() -> None:
    """z1 stays held after enter; work (needing z1) proceeds; it is freed when leave ends."""
    fl = _fleet()
    fl.create("zone", "w1")
    fl.finish("w1", "enter")
    assert fl.core.resource_holds()["z1"][0] == "w1"
    assert _step(fl, "w1", "work") == "assigned"  # its own workflow holds z1: proceeds
    fl.create("other", "w2")
    assert _state(fl, "w2") == "active.waiting_for_resource"
    fl.finish("w1", "work")
    assert fl.core.resource_holds() == {"z1": ("w1", "work")}
    assert _step(fl, "w2", "only") == "allocating"
    fl.finish("w1", "leave")
    assert fl.core.resource_holds() == {"z1": ("w2", "only")}
    assert _state(fl, "w1") == "completed"


def test_a_workflow_waiting_inside_its_span_shows_waiting_for_resource() -> None:
    """wa holds z1 across steps and waits for z2: its state says it waits for a resource."""
    fl = _fleet()
    fl.create("other2", "w0")  # holds z2 while its step runs
    fl.create("a", "wa")
    fl.finish("wa", "enter")
    fl.finish("wa", "inside")
    assert _state(fl, "wa") == "active.waiting_for_resource"
    assert fl.core.resource_holds()["z1"] == ("wa", "enter")
    fl.finish("w0", "only")
    assert _step(fl, "wa", "cross") == "assigned"


def test_the_acquiring_step_failing_before_it_ends_undoes_its_span() -> None:
    """Until enter is done the zone is only enter's: its failure frees it, as for any step."""
    fl = _fleet()
    fl.create("zone", "w1")
    fl.create("other", "w2")
    fl.fail("w1", "enter")
    assert fl.core.resource_holds() == {"z1": ("w2", "only")}


def test_cancelling_the_workflow_releases_its_span() -> None:
    """Cancelled mid-span (its step's agent confirming): z1 goes to the waiting workflow."""
    fl = _fleet()
    fl.create("zone", "w1")
    fl.finish("w1", "enter")
    fl.create("other", "w2")
    fl.command("cancel_workflow", workflow_id="w1")
    fl.confirm("w1", "work")
    assert fl.core.archived("w1") == "cancelled"
    assert fl.core.resource_holds() == {"z1": ("w2", "only")}


def test_a_failed_workflow_releases_its_span() -> None:
    """A step failing for good (no operator) fails the workflow: the span ends with it."""
    fl = _fleet(manual_intervention=False)
    fl.create("zone", "w1")
    fl.finish("w1", "enter")
    fl.create("other", "w2")
    fl.fail("w1", "work", retryable=False)
    assert _state(fl, "w1") == "failed"
    assert fl.core.resource_holds() == {"z1": ("w2", "only")}


def test_a_rollback_releases_the_span_when_it_starts() -> None:
    """A saga rolling back (compensating enter) no longer holds the zone."""
    fl = _fleet(manual_intervention=False)
    fl.create("saga", "w1")
    fl.finish("w1", "enter")
    fl.create("other", "w2")
    fx = fl.fail("w1", "work", retryable=False)
    assert "compensation_started" in _kinds(fx)
    assert fl.core.resource_holds() == {"z1": ("w2", "only")}


def test_a_restored_checkpoint_releases_the_span() -> None:
    """Restoring a checkpoint starts the span over: the resource is free meanwhile."""
    fl = _fleet()
    fl.create("zone", "w1")
    fl.command("checkpoint", workflow_id="w1")
    fl.finish("w1", "enter")
    fl.create("other", "w2", priority=5)
    fl.command("operator_action", workflow_id="w1", action="restore")
    fl.confirm("w1", "work")
    assert _step(fl, "w1", "enter") == "allocating"
    assert fl.core.resource_holds() == {"z1": ("w2", "only")}


def test_no_span_begins_whose_end_is_over_already() -> None:
    """An operator skipped leave before enter was assigned: enter holds z1 like any step."""
    fl = _fleet(robots=1)
    fl.create("other", "w0")  # takes the one robot: w1's enter waits
    fl.create("zone", "w1")
    fl.command("operator_action", workflow_id="w1", step_id="leave", action="skip")
    fl.finish("w0", "only")
    assigned = [e.data for e in _events(fl, "step_assigned") if e.workflow_id == "w1"]
    assert "holds" not in assigned[0]
    fl.finish("w1", "enter")
    fl.finish("w1", "work")
    assert fl.core.resource_holds() == {}
    assert fl.workflow("w1") is not None and _state(fl, "w1") == "completed"


def test_a_step_failing_inside_the_span_keeps_it() -> None:
    """A retried step inside a span does not let go of what the workflow holds across."""
    fl = _fleet()
    fl.create("a", "w1")
    fl.finish("w1", "enter")
    fl.finish("w1", "inside")
    fl.fail("w1", "cross")
    assert fl.core.resource_holds() == {"z1": ("w1", "enter")}


# --- prevention: the global order --------------------------------------------------------

def test_ordering_lets_the_two_zone_workflows_both_finish() -> None:
    """B's span would take z1 after z2: z1 is claimed with z2 at its start, so B waits."""
    fl = _fleet()
    fl.create("a", "wa")
    fx = fl.create("b", "wb")
    assert _state(fl, "wb") == "active.waiting_for_resource" and "step_assigned" not in _kinds(fx)
    fl.run()
    assert (_state(fl, "wa"), _state(fl, "wb")) == ("completed", "completed")
    assert not _events(fl, "deadlock_detected")
    b_enter = next(e.data for e in _events(fl, "step_assigned") if e.workflow_id == "wb")
    assert b_enter["holds"] == {"z2": "cross", "z1": "cross"}


def test_a_facility_order_decides_which_template_claims_early() -> None:
    """With the order (z2, z1) it is A's span that claims z2 at its start."""
    fl = _fleet(resource_order=("z2", "z1"))
    fl.create("a", "wa")
    assert fl.core.resource_holds() == {"z1": ("wa", "enter"), "z2": ("wa", "enter")}
    fl.create("b", "wb")
    fl.run()
    assert (_state(fl, "wa"), _state(fl, "wb")) == ("completed", "completed")
    assert not _events(fl, "deadlock_detected")


# --- detection: the wait-for graph ------------------------------------------------------

def _deadlocked(**create: Any) -> ScriptedFleet:
    """Ordering off: wa holds z1 and waits for z2, wb holds z2 and is about to leave its
    inside step for z1 (``finish("wb", "inside")`` closes the cycle)."""
    fl = _fleet(resource_order=False)
    fl.create("a", "wa", **create.get("wa", {}))
    fl.create("b", "wb", **create.get("wb", {}))
    for wid, sid in [("wa", "enter"), ("wb", "enter"), ("wa", "inside")]:
        fl.finish(wid, sid)
    return fl


def test_without_ordering_the_cycle_is_detected_and_the_youngest_is_the_victim() -> None:
    """Equal priorities: wb (younger) releases z2 and goes back to its enter step."""
    fl = _deadlocked()
    fx = fl.finish("wb", "inside")
    kinds = _kinds(fx)
    at = kinds.index("deadlock_detected")
    assert kinds[at:at + 4] == ["deadlock_detected", "conflict_detected",
                                "resources_released", "conflict_resolved"]
    [found] = _events(fl, "deadlock_detected")
    assert found.data == {"cycle": ["wa", "wb"], "victim": "wb",
                          "waits": [["wa", "z2", "wb"], ["wb", "z1", "wa"]]}
    [released] = _events(fl, "resources_released")
    assert released.workflow_id == "wb"
    assert released.data["resources"] == ["z2"]
    assert released.data["reset"] == ["enter", "inside", "cross"]
    [conflict] = [c for c in fl.core.conflicts().values() if c.rule == "deadlock"]
    assert (conflict.type, conflict.rule, conflict.strategy, conflict.status) == (
        "resource", "deadlock", "victim", "resolved")
    assert conflict.participants == ("wa", "wb") and conflict.workflow_id == "wb"
    assert _step(fl, "wa", "cross") == "assigned"  # wa took z2 at once
    assert _state(fl, "wb") == "active.waiting_for_resource"


def test_the_victim_is_the_lowest_priority_before_the_youngest() -> None:
    """wa is older but of lower priority: it is the one rescheduled."""
    fl = _deadlocked(wb={"priority": 3})
    fl.finish("wb", "inside")
    [found] = _events(fl, "deadlock_detected")
    assert found.data["victim"] == "wa"
    assert fl.core.resource_holds()["z1"] == ("wb", "cross")


def test_after_the_victim_is_rescheduled_both_finish() -> None:
    """The victim re-runs its span once the other workflow is through."""
    fl = _deadlocked()
    for wid, sid in [("wb", "inside"), ("wa", "cross"), ("wb", "enter"), ("wb", "inside"),
                     ("wb", "cross")]:
        fl.finish(wid, sid)
    assert (_state(fl, "wa"), _state(fl, "wb")) == ("completed", "completed")
    wb_enters = [e for e in _events(fl, "step_assigned")
                 if e.workflow_id == "wb" and e.data["step"] == "enter"]
    assert [e.data["attempt"] for e in wb_enters] == [1, 2]


def test_a_victims_step_in_flight_is_told_to_stop() -> None:
    """A running step inside the victim's span is withdrawn (cancel sent) and re-runs."""
    par = load_template({"name": "par", "steps": [
        {"id": "enter", "kind": "robot", "resources": ["z2"], "hold_until": {"z2": "out"}},
        {"id": "busy", "kind": "robot", "after": ["enter"]},
        {"id": "cross", "kind": "robot", "resources": ["z1"], "after": ["enter"]},
        {"id": "out", "kind": "robot", "after": ["busy", "cross"]}]})
    fl = ScriptedFleet(Core("f1", {**TEMPLATES, "par": par},
                            config=CoreConfig(resource_order=False)))
    for i in range(1, 5):
        fl.agent(f"r{i}", "robot", [])
    fl.create("a", "wa")
    fl.create("par", "wp")
    fl.finish("wa", "enter")
    fl.finish("wp", "enter")  # busy runs, cross waits for z1 (held by wa)
    fx = fl.finish("wa", "inside")  # wa waits for z2 (held by wp): the cycle closes
    [cancel] = [e.message for e in fx if isinstance(e, Publish)
                and isinstance(e.message, Cancel)]
    assert (cancel.workflow_id, cancel.step_id) == ("wp", "busy")
    assert _step(fl, "wp", "busy") == "cancelling"
    fl.confirm("wp", "busy")
    assert _step(fl, "wp", "busy") == "pending"


def test_a_victims_wait_step_under_way_starts_over() -> None:
    """A wait step inside the victim's span (no agent to stop) is simply requeued."""
    dwell = load_template({"name": "dwell", "steps": [
        {"id": "enter", "kind": "robot", "resources": ["z2"], "hold_until": {"z2": "out"}},
        {"id": "pause", "kind": "wait", "duration_s": 100, "after": ["enter"]},
        {"id": "cross", "kind": "robot", "resources": ["z1"], "after": ["enter"]},
        {"id": "out", "kind": "robot", "after": ["pause", "cross"]}]})
    fl = ScriptedFleet(Core("f1", {**TEMPLATES, "dwell": dwell},
                            config=CoreConfig(resource_order=False)))
    for i in range(1, 4):
        fl.agent(f"r{i}", "robot", [])
    fl.create("a", "wa")
    fl.create("dwell", "wd")
    fl.finish("wa", "enter")
    fl.finish("wd", "enter")
    assert _step(fl, "wd", "pause") == "executing"
    fl.finish("wa", "inside")
    [released] = _events(fl, "resources_released")
    assert released.data["reset"] == ["enter", "pause", "cross"]
    assert _step(fl, "wd", "pause") == "pending"
    assert "wait:wd/pause" not in fl.core.armed_timers()


def test_a_cycle_the_ordering_cannot_see_is_detected() -> None:
    """Ordering on, but an operator makes y wait for w after x took z2: w needs z1 while
    wc holds z2, and wa holds z1 while it needs z2."""
    fl = _fleet()
    fl.create("a", "wa")
    fl.create("c", "wc")
    fl.command("add_dependency", workflow_id="wc", step="y", after="w")
    fl.finish("wa", "enter")
    fl.finish("wc", "x")
    fl.finish("wa", "inside")
    [found] = _events(fl, "deadlock_detected")
    assert found.data["cycle"] == ["wa", "wc"] and found.data["victim"] == "wc"
    for wid, sid in [("wa", "cross"), ("wc", "x"), ("wc", "w"), ("wc", "y")]:
        fl.finish(wid, sid)
    assert (_state(fl, "wa"), _state(fl, "wc")) == ("completed", "completed")


# --- replay ----------------------------------------------------------------------------

def test_replay_and_restore_equal_the_live_core() -> None:
    """Every event applied to a fresh core, or the snapshot restored, gives the same state."""
    config = CoreConfig(resource_order=False)
    fl = _deadlocked()
    mid = fl.core.snapshot()  # spans held, a step waiting
    assert Core.restore(mid, "f1", TEMPLATES, config).snapshot() == mid
    fl.finish("wb", "inside")
    fl.finish("wa", "cross")
    assert_replays(fl, TEMPLATES, config)
