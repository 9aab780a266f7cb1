"""The dashboard's Overview page (AppTest) against a real stack (Mosquitto, three
``fleetflow edge`` processes, simulated fitters, a ``fleetflow hub``): it shows what the
API reports, a change on the next run, the same to a viewer, readable errors, and a hub
that goes down and comes back; and the page's and the badge's plain functions."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from dash_rig import Stack, errors, page, serve, shown, table
from hub_stack import TEMPLATES, create, wait_for
from streamlit.testing.v1 import AppTest

from agents_sim.native import AgentSpec, Failure, FleetRunner
from dashboard._attention import count
from dashboard._overview import Sample, agent_rows, conflict_rows, throughput_rows

pytestmark = pytest.mark.slow
BAD_TOKEN = "ff_000000000000_" + "A" * 43


# One step that a simulated welder in fa always fails, without retries: the workflow then
# waits for an operator (what the badge counts first).
FAIL = """\
name: api_fail
steps:
  - id: weld
    kind: robot
    capabilities: [weld]
    action: weld
    location: p2
    estimated_duration_s: 1
    retry: {max_attempts: 1}
"""


@pytest.fixture(scope="module", autouse=True)
def stack(tmp_path_factory: pytest.TempPathFactory, mosquitto_bin: str) -> Iterator[Stack]:
    """The stack, with ``api_fail`` and its failing welder in ``fa``."""
    for s in serve(tmp_path_factory, mosquitto_bin,
                   templates_text={**TEMPLATES, "api_fail.yaml": FAIL}):
        fleet = FleetRunner("fa", [AgentSpec(
            "welder1", "robot", ("weld",), node="p2", state_period_s=0.5, speed=10.0,
            failures=(Failure("weld", error_type="burnt_tip", retryable=False),))],
            port=s.mqtt_port)
        fleet.start()
        try:
            yield s
        finally:
            fleet.stop()


def _get(stack: Stack, path: str, **params: Any) -> Any:
    with stack.client("viewer") as c:
        r = c.get(f"/api/v1{path}", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def _metric(at: AppTest, label: str) -> str:
    return str(next(m.value for m in at.metric if m.label == label))


def _ok(at: AppTest) -> AppTest:
    assert not at.exception, at.exception
    return at


def test_overview_lists_each_facility_with_its_edge_and_workflows(stack: Stack) -> None:
    """Every facility the API lists is a row: online edge, a current view, its workflow
    count as the API counts it."""
    with stack.client("planner") as c:
        create(c, "fb")
    at = _ok(page("overview"))
    facilities = table(at, "facility").set_index("facility")
    assert sorted(facilities.index) == sorted(f["id"] for f in _get(stack, "/facilities"))
    for f in ("fa", "fb", "fc"):
        assert facilities.loc[f, "edge"] == "online"
        assert facilities.loc[f, "workflows"] == _get(stack, "/workflows", facility=f,
                                                      limit=1)["count"]
    assert facilities.loc["fb", "workflows"] >= 1
    assert _metric(at, "Facilities online") == "3 / 3"


def test_a_new_workflow_shows_in_the_state_counts_on_the_next_run(stack: Stack) -> None:
    """Workflows by state match the API's counts; one created through the API is counted on
    the next run."""
    at = _ok(page("overview"))
    total = int(_metric(at, "Workflows"))
    with stack.client("planner") as c:
        create(c, "fa")
    assert "The charts start with the next refresh" in shown(at)
    _ok(at.run())
    assert int(_metric(at, "Workflows")) == total + 1
    charts = [n for n in at.main if getattr(n, "type", "") == "vega_lite_chart"]
    assert len(charts) == 2  # throughput and latency, from the two readings
    for state in ("pending", "active", "paused", "completed", "cancelled"):
        assert int(_metric(at, state)) == _get(stack, "/workflows", state=state,
                                               limit=1)["count"], state


def test_latest_events_follow_the_change_feed(stack: Stack) -> None:
    """The latest events are the change feed's; a workflow created meanwhile shows there,
    newest first, on the next run."""
    at = _ok(page("overview"))
    with stack.client("planner") as c:
        wid = create(c, "fb")
    _ok(at.run())
    latest = table(at, "event")
    mine = latest[latest["workflow"] == wid]
    assert "workflow_created" in set(mine["event"]) and set(mine["facility"]) == {"fb"}
    feed = _get(stack, "/events", facility="fb", workflow_id=wid)["items"]
    assert set(mine["seq"]) <= {c["event"]["seq"] for c in feed}  # the feed's own events
    assert list(latest["seq"][latest["facility"] == "fb"]) == sorted(
        latest["seq"][latest["facility"] == "fb"], reverse=True)


def test_overview_counts_agents_by_status(stack: Stack) -> None:
    """The fitters of fc show under agents by status, as many as the API lists there."""
    wait_for(lambda: _get(stack, "/agents", facility="fc")["count"] >= 2, what="fc's agents")
    at = _ok(page("overview"))
    agents = table(at, "agents")
    assert agents[agents["facility"] == "fc"]["agents"].sum() == _get(
        stack, "/agents", facility="fc")["count"]
    assert int(_metric(at, "Agents")) == _get(stack, "/agents")["count"]


def test_a_safety_stop_shows_as_a_conflict_and_in_the_badge(stack: Stack) -> None:
    """A facility stop through the API is an open conflict on the next run and the badge
    counts one safety stop; its release clears both."""
    at = _ok(page("overview"))
    assert "Nothing needs a human right now" in shown(at)
    with stack.client("supervisor") as c:
        assert c.post("/api/v1/facilities/fb/stop", json={"reason": "test"}).status_code == 200
    try:
        _ok(at.run())
        conflicts = table(at, "conflict")
        assert list(conflicts["rule"]) == ["facility_stop"]
        assert list(conflicts["facility"]) == ["fb"]
        assert "1 safety stops" in shown(at) and _metric(at, "Open conflicts") == "1"
    finally:
        with stack.client("supervisor") as c:
            assert c.post("/api/v1/facilities/fb/release", json={}).status_code == 200
    _ok(at.run())
    assert "No open conflicts." in shown(at)
    assert "Nothing needs a human right now" in shown(at)


def test_the_badge_counts_a_workflow_waiting_for_an_operator(stack: Stack) -> None:
    """A workflow whose step failed for good waits for an operator: the badge counts it,
    linking to the Recovery page; once aborted through the API, the next run drops it."""
    at = _ok(page("overview"))
    with stack.client("planner") as c:
        wid = create(c, "fa", template="api_fail")
        wait_for(lambda: c.get(f"/api/v1/workflows/{wid}").json()["awaiting_operator"],
                 60, f"{wid} to wait for an operator")
        _ok(at.run())
        links = {link.label: link.proto.page for link in at.get("page_link")}
        assert links.get("🛠 1 waiting for an operator") == "recovery", links
        r = c.post(f"/api/v1/workflows/{wid}/recover",
                   json={"strategy": "manual_intervention", "action": "abort"})
        assert r.status_code == 200, r.text
        wait_for(lambda: not c.get(f"/api/v1/workflows/{wid}").json()["awaiting_operator"],
                 30, f"{wid} aborted")
    _ok(at.run())
    assert "Nothing needs a human right now" in shown(at)


def test_a_viewer_sees_the_same_overview(stack: Stack) -> None:
    """A viewer's Overview has the same facilities and counts, and no control at all."""
    sup, view = _ok(page("overview")), _ok(page("overview", "viewer"))
    cols = ["facility", "edge", "view", "workflows"]
    assert table(sup, "facility")[cols].equals(table(view, "facility")[cols])
    assert _metric(sup, "Workflows") == _metric(view, "Workflows")
    assert not view.button and not errors(view)


def test_a_bad_token_is_a_readable_401(stack: Stack) -> None:
    """A token the hub never issued: the 401 as a sentence, no traceback, no figures."""
    at = _ok(page("overview", token=BAD_TOKEN))
    assert any("does not accept this token" in e for e in errors(at)), errors(at)
    assert not at.dataframe


def test_a_hub_that_goes_down_is_a_banner_and_the_page_recovers(stack: Stack) -> None:
    """The hub stopped: a banner, no traceback; the hub started again: the figures are back
    on a later refresh, without anything done on the page."""
    at = _ok(page("overview"))
    stack.stop("hub")
    try:
        _ok(at.run())
        assert any("not reachable" in e for e in errors(at)), errors(at)
        assert not at.dataframe
    finally:
        stack.start("hub")
    wait_for(lambda: httpx.get(f"{stack.url}/health", timeout=2).json()["online"] == 3, 60,
             "the hub back with three edges")

    def recovered() -> bool:
        _ok(at.run())
        return not errors(at) and bool(at.dataframe)

    wait_for(recovered, 60, lambda: f"the page to recover:\n{shown(at)}")
    assert "fa" in set(table(at, "facility")["facility"])


def test_a_dead_port_is_a_banner_not_a_traceback(stack: Stack) -> None:
    """A dashboard pointed at a port nobody listens on shows the banner, no exception."""
    from conftest import free_port

    at = _ok(page("overview", url=f"http://127.0.0.1:{free_port()}"))
    assert any("not reachable" in e for e in errors(at)), errors(at)


# --- the plain functions ---------------------------------------------------------------


def test_attention_counts_operator_waits_escalations_and_stops() -> None:
    """Workflows with awaiting_operator steps, escalated conflicts and standing facility
    or e-stops are counted apart; resolved conflicts and plain open ones are not."""
    active = [{"facility": "fa", "id": "w1", "awaiting_operator": ["s1"]},
              {"facility": "fa", "id": "w2", "awaiting_operator": []},
              {"facility": "fb", "id": "w3"}]
    conflicts = [
        {"facility": "fa", "id": "facility_stop:*", "rule": "facility_stop", "status": "open"},
        {"facility": "fb", "id": "k1", "rule": "e_stop", "status": "open"},
        {"facility": "fb", "id": "k2", "rule": "same_agent", "status": "escalated"},
        {"facility": "fb", "id": "k3", "rule": "same_agent", "status": "open"},
        {"facility": "fc", "id": "k4", "rule": "e_stop", "status": "resolved"},
    ]
    got = count(active, conflicts)
    assert got.manual == ["fa/w1"] and got.escalated == ["fb/k2"]
    assert got.safety == ["fa/facility_stop:*", "fb/k1"] and got.total == 4


def test_agents_are_counted_by_facility_and_status() -> None:
    """Offline agents count as offline whatever status they last had."""
    rows = agent_rows([{"facility": "fa", "status": "busy", "online": True},
                       {"facility": "fa", "status": "busy", "online": True},
                       {"facility": "fa", "status": "busy", "online": False}])
    assert rows == [{"facility": "fa", "status": "busy", "agents": 2},
                    {"facility": "fa", "status": "offline", "agents": 1}]


def test_conflicts_are_listed_oldest_first_with_their_age() -> None:
    """Age is now minus detection time; the oldest conflict comes first."""
    rows = conflict_rows([{"id": "a", "facility": "fa", "detected_at": 90.0},
                          {"id": "b", "facility": "fa", "detected_at": 40.0}], now=100.0)
    assert [(r["conflict"], r["age (s)"]) for r in rows] == [("b", 60), ("a", 10)]


def test_throughput_is_events_per_second_between_two_readings() -> None:
    """Two samples 2 s apart with 10 more events in fa: 5 events/s; 1 more finished
    workflow: 30 per minute."""
    one = Sample(100.0, {"fa": 10}, 4, 0.0, 1.0, 2.0)
    two = Sample(102.0, {"fa": 20}, 5, 5.0, 1.5, 3.0)
    assert throughput_rows([one]) == []
    assert throughput_rows([one, two]) == [{"at": 102.0, "fa events/s": 5.0,
                                            "finished/min": 30.0, "API p50 ms": 1.5,
                                            "API p99 ms": 3.0}]


def test_throughput_is_averaged_over_the_rate_window() -> None:
    """Readings every 10 s, three workflows finished between 10 s and 20 s: each rate is
    taken against the reading up to 30 s before, so the burst shows for 30 s, not 10."""
    finished = [0, 0, 3, 3, 3]
    history = [Sample(100.0 + 10 * i, {"fa": 10 * i}, n, 0.0, 1.0, 2.0)
               for i, n in enumerate(finished)]
    rows = throughput_rows(history, window_s=30.0)
    assert [r["at"] for r in rows] == [110.0, 120.0, 130.0, 140.0]
    assert [r["finished/min"] for r in rows] == [0.0, 9.0, 6.0, 6.0]
    assert rows[-1]["fa events/s"] == 1.0
