"""The Conflicts page against a real stack (``dash_rig``): ``fb`` escalates double-booked
agents to an operator and has a slow lifter, so two workflows pinned to it contend; ``fa``
has no lifter, so a deadline is at risk. The list shows what the API reports (type,
participants, age, status); resolving with a chosen strategy, or plainly, acts and shows on
the next run; a viewer sees the control disabled; a refusal is a readable message."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from dash_rig import Stack, errors, page, serve, shown
from hub_stack import create, wait_for
from streamlit.testing.v1 import AppTest

from agents_sim.native import AgentSpec, FleetRunner

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def stack(tmp_path_factory: pytest.TempPathFactory, mosquitto_bin: str) -> Iterator[Stack]:
    """The stack, with ``fb`` escalating double-bookings and a lifter there that takes
    minutes per step."""
    for s in serve(tmp_path_factory, mosquitto_bin,
                   edge_flags={"fb": ["--conflict-strategy", "agent_double_booked=operator"]}):
        fleet = FleetRunner("fb", [AgentSpec("lifter1", "robot", ("lift",), node="dock",
                                             state_period_s=0.5, speed=0.01)],
                            port=s.mqtt_port)
        fleet.start()
        try:
            yield s
        finally:
            fleet.stop()


def _conflict(stack: Stack, facility: str, check: Any, what: str) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        with stack.client("viewer") as c:
            items = c.get("/api/v1/conflicts", params={"facility": facility}).json()["items"]
        return next((k for k in items if check(k)), None)
    found: dict[str, Any] = wait_for(find, 30, what)
    return found


def _deadline_conflict(stack: Stack) -> dict[str, Any]:
    with stack.client("planner") as c:
        wid = create(c, "fa", deadline=time.time() + 1)
    return _conflict(stack, "fa", lambda k: k["workflow_id"] == wid, "the deadline conflict")


def _pick(at: AppTest, conflict: dict[str, Any]) -> str:
    """Choose ``conflict`` in the resolve form; the key of its resolve button."""
    label = f"{conflict['id']} · {conflict['facility']} · {conflict['rule']}"
    at.selectbox(key="resolve_pick").set_value(label).run()
    pick = at.selectbox(key="resolve_pick")
    assert not at.exception, at.exception
    assert pick.value == label, f"{label} is not among {pick.options}"
    return f"resolve_{conflict['facility']}_{conflict['id']}"


@pytest.fixture(scope="module")
def holder(stack: Stack) -> str:
    """A workflow pinned to lifter1, holding it for minutes."""
    with stack.client("planner") as c:
        wid = create(c, "fb", agents=["lifter1"])
        wait_for(lambda: c.get(f"/api/v1/workflows/{wid}").json()["steps"][0]["agent"],
                 30, "lifter1 on the holder")
    return wid


def _double_booking(stack: Stack) -> dict[str, Any]:
    """A new workflow pinned to the busy lifter1: its escalated conflict."""
    with stack.client("planner") as c:
        wid = create(c, "fb", agents=["lifter1"])
    return _conflict(stack, "fb", lambda k: k["rule"] == "agent_double_booked"
                     and k["status"] == "escalated" and k["workflow_id"] == wid,
                     "the double-booking")


def test_list_shows_type_participants_age_status(stack: Stack) -> None:
    """An escalated deadline conflict is listed with its id, type, rule, workflow, status
    and an age in seconds."""
    conflict = _deadline_conflict(stack)
    at = page("conflicts")
    assert not at.exception
    text = shown(at)
    for field in ("id", "type", "rule", "workflow_id", "status"):
        assert str(conflict[field]) in text, field
    assert conflict["status"] == "escalated" and " s" in text


def test_filters_by_facility_and_status(stack: Stack) -> None:
    """Filtered to fb, fa's conflict is not shown; to fa, it is; to fa and resolved, an
    unresolved one is not."""
    conflict = _deadline_conflict(stack)
    at = page("conflicts")
    at.selectbox(key="conflict_facility").set_value("fb").run()
    assert conflict["workflow_id"] not in shown(at)
    at.selectbox(key="conflict_facility").set_value("fa").run()
    assert conflict["workflow_id"] in shown(at)
    at.selectbox(key="conflict_status").set_value("resolved").run()
    assert conflict["workflow_id"] not in shown(at)


def test_resolve_a_double_booking_with_a_chosen_strategy(stack: Stack, holder: str) -> None:
    """A claim on the busy lifter1 is escalated; the supervisor resolves it by
    rescheduling, and the next run lists it resolved by that strategy, with the note."""
    conflict = _double_booking(stack)
    at = page("conflicts")
    button = _pick(at, conflict)
    at.selectbox(key="resolve_choice").set_value("rescheduling")
    at.text_input(key="resolve_note").input("after the first")
    at.button(key=button).click().run()
    assert not errors(at), errors(at)
    at.selectbox(key="conflict_status").set_value("resolved").run()
    settled = _conflict(stack, "fb", lambda k: k["id"] == conflict["id"], "it")
    assert settled["status"] == "resolved"
    assert "operator chose rescheduling" in settled["resolution"]
    assert "after the first" in settled["resolution"]
    assert "operator chose rescheduling" in shown(at)


def test_a_refused_strategy_is_a_readable_message(stack: Stack, holder: str) -> None:
    """Reallocation with no other lifter cannot settle it: the edge's refusal is a sentence
    on the page, no traceback, and the conflict stays escalated."""
    conflict = _double_booking(stack)
    at = page("conflicts")
    button = _pick(at, conflict)
    at.selectbox(key="resolve_choice").set_value("reallocation")
    at.button(key=button).click().run()
    assert not at.exception
    assert any("refused" in e for e in errors(at)), errors(at)
    assert _conflict(stack, "fb", lambda k: k["id"] == conflict["id"], "it")["status"] == \
        "escalated"


def test_resolve_plainly_with_a_note(stack: Stack) -> None:
    """A deadline conflict resolved without a strategy: resolved with the note."""
    conflict = _deadline_conflict(stack)
    at = page("conflicts")
    button = _pick(at, conflict)
    at.text_input(key="resolve_note").input("customer agreed to wait")
    at.button(key=button).click().run()
    assert not errors(at), errors(at)
    settled = _conflict(stack, "fa", lambda k: k["id"] == conflict["id"]
                        and k["status"] == "resolved", "the resolution")
    at.run()
    assert "customer agreed to wait" in settled["resolution"]
    assert conflict["workflow_id"] not in shown(at)  # the default list: unresolved only


def test_viewer_sees_the_list_with_resolve_disabled(stack: Stack) -> None:
    """A viewer token: the same list; the resolve button disabled."""
    conflict = _deadline_conflict(stack)
    at = page("conflicts", "viewer")
    assert conflict["id"] in shown(at)
    key = _pick(at, conflict)
    assert key in [b.key for b in at.button], ([b.key for b in at.button], shown(at))
    assert at.button(key=key).disabled and "Read only" in shown(at)
