"""The Workflows page against a real stack (``dash_rig``: Mosquitto, three edges, the
``fleetflow hub`` process): the list shows what the API lists, the detail view the nested
state and audit trail, and each control does its API call with the effect on the next
run — pause, priority, skip a step, a dependency, a batch previewed with the API's own
dry-run count, creation from a template. A viewer sees the controls disabled; a refusal
(409) is a readable message."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest
from conftest import free_port
from dash_rig import Stack, errors, page, serve, shown
from hub_stack import TEMPLATES, create, wait_for
from streamlit.testing.v1 import AppTest

pytestmark = pytest.mark.slow


FORM = """\
name: api_form
data: {qty: 1, rush: false, weight: 2.5, note: plain, bins: [1]}
steps:
  - id: fetch
    kind: robot
    capabilities: [lift]
"""


@pytest.fixture(scope="module", autouse=True)
def stack(tmp_path_factory: pytest.TempPathFactory, mosquitto_bin: str) -> Iterator[Stack]:
    """One stack for the module's tests (each makes its own workflows), with one more
    template, ``api_form``, that has parameters (``data`` defaults)."""
    yield from serve(tmp_path_factory, mosquitto_bin,
                     templates_text={**TEMPLATES, "api_form.yaml": FORM})


def _wf(stack: Stack, wid: str) -> dict[str, Any]:
    with stack.client("admin") as c:
        out: dict[str, Any] = c.get(f"/api/v1/workflows/{wid}").json()
        return out


def _detail(wid: str, role: str = "planner") -> AppTest:
    at = page("workflows", role)
    at.query_params["id"] = wid
    return at.run()


def _no_traceback(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def test_list_shows_the_apis_count_and_workflows(stack: Stack) -> None:
    """Filtered by a label, the list shows the API's count and each workflow's row."""
    with stack.client("planner") as c:
        ids = [create(c, "fa", labels={"list": "t1"}) for _ in range(3)]
        count = c.get("/api/v1/workflows", params={"label": "list=t1"}).json()["count"]
    at = page("workflows")
    at.text_input(key="f_label").input("list=t1").run()
    _no_traceback(at)
    text = shown(at)
    assert count == 3 and f"{count} workflows match" in text
    assert all(wid in text for wid in ids)


def test_detail_shows_nested_state_steps_waiting_and_audit(stack: Stack) -> None:
    """The detail view draws the state as its nested path, what each step waits for, and
    the audit trail with who created it."""
    with stack.client("planner") as c:
        wid = create(c, "fa")
    at = _detail(wid)
    _no_traceback(at)
    state = _wf(stack, wid)["state"]
    text = shown(at)
    assert " \u203a ".join(state.split(".")) in text
    # the edge's reason (no agent in fa has lift: docs/workflows.md, "Why a workflow waits")
    assert "no robot agent with capabilities lift" in text, text
    assert "planner-user" in text and "workflow_created" in text


def test_pause_then_resume_show_on_the_next_run(stack: Stack) -> None:
    """Pause: the edge applies it and the next run shows ``paused``; resume: active."""
    with stack.client("planner") as c:
        wid = create(c, "fa")
    at = _detail(wid, "supervisor")
    at.text_input(key="wf_reason").input("jammed conveyor")
    at.button(key="wf_pause").click().run()
    assert any("pause: applied" in s.value for s in at.success)
    assert _wf(stack, wid)["state"] == "paused"
    text = shown(at.run())
    assert "`paused`" in text
    assert "supervisor-user" in text and "jammed conveyor" in text  # the audit trail
    at.button(key="wf_resume").click().run()
    assert _wf(stack, wid)["state"].startswith("active")
    assert "`active" in shown(at.run())


def test_priority_change_reaches_the_edge(stack: Stack) -> None:
    """Set priority: the API's workflow has it, and the page shows it on the next run."""
    with stack.client("planner") as c:
        wid = create(c, "fa")
    at = _detail(wid)
    at.number_input(key=f"wf_priority_{wid}").set_value(42)
    at.button(key="wf_set_priority").click().run()
    assert _wf(stack, wid)["priority"] == 42
    at.run()
    assert any(m.label == "Priority" and m.value == "42" for m in at.metric)


def test_skip_step_moves_the_workflow_on(stack: Stack) -> None:
    """Skip the waiting first step: it is skipped and the next step waits for an agent."""
    with stack.client("planner") as c:
        wid = create(c, "fa")
    at = _detail(wid)
    at.selectbox(key="wf_step").select("fetch")
    at.button(key="wf_skip_step").click().run()
    steps = {s["id"]: s["state"] for s in _wf(stack, wid)["steps"]}
    assert steps["fetch"] == "skipped"
    assert "skipped" in shown(at.run())


def test_add_dependency_then_a_duplicate_is_refused_readably(stack: Stack) -> None:
    """A dependency added on the page is in the API's list; adding it again is the edge's
    refusal (409) as a sentence, not a traceback."""
    with stack.client("planner") as c:
        source = create(c, "fa")
        target = create(c, "fa", depends_on=[create(c, "fa")])
    at = _detail(target)
    at.text_input(key="wf_dep_source").input(source)
    at.selectbox(key="wf_dep_type").select("parallel").run()
    at.button(key="wf_add_dep").click().run()
    with stack.client("viewer") as c:
        deps = c.get(f"/api/v1/workflows/{target}/dependencies").json()["dependencies"]
    assert any(d["source"] == source and d["type"] == "parallel" for d in deps)
    at.button(key="wf_add_dep").click().run()
    _no_traceback(at)
    assert any("The edge refused it" in e and "already depends on" in e for e in errors(at))


def test_resume_on_a_page_that_went_stale_changes_nothing(stack: Stack) -> None:
    """The page shows a paused workflow, someone else resumes it, then Resume here: the
    rerun reads the workflow first, finds it running and sends nothing (the button is
    disabled now); no error, no traceback, the page shows it active."""
    with stack.client("planner") as c:
        wid = create(c, "fa")
        assert c.post(f"/api/v1/workflows/{wid}/pause", json={}).status_code == 200
        at = _detail(wid, "supervisor")
        assert not at.button(key="wf_resume").disabled
        assert c.post(f"/api/v1/workflows/{wid}/resume", json={}).status_code == 200
    at.button(key="wf_resume").click().run()
    _no_traceback(at)
    assert not errors(at) and not at.success
    assert at.button(key="wf_resume").disabled
    assert "`active" in shown(at)


def test_controls_follow_the_workflows_state(stack: Stack) -> None:
    """Running: Pause, not Resume; ended: nothing but a step's retry or skip."""
    with stack.client("planner") as c:
        wid = create(c, "fa")
        at = _detail(wid)
        assert not at.button(key="wf_pause").disabled and at.button(key="wf_resume").disabled
        assert c.delete(f"/api/v1/workflows/{wid}").status_code == 200
    at = _detail(wid)
    assert _wf(stack, wid)["state"] == "cancelled"
    for key in ("wf_pause", "wf_resume", "wf_cancel", "wf_set_priority", "wf_add_dep"):
        assert at.button(key=key).disabled, key
    assert not at.button(key="wf_skip_step").disabled


def test_batch_preview_counts_as_the_api_then_pauses(stack: Stack) -> None:
    """Preview shows the API's dry-run count; confirm pauses every one of them."""
    with stack.client("planner") as c:
        ids = [create(c, "fb", labels={"batch": "b1"}) for _ in range(3)]
        dry = c.post("/api/v1/workflows/batch", json={
            "action": "pause", "filter": {"label": "batch=b1"}, "dry_run": True}).json()
    at = page("workflows", "planner")
    at.text_input(key="f_label").input("batch=b1").run()
    at.selectbox(key="batch_action").select("pause")
    at.button(key="batch_preview").click().run()
    assert any(f"pause would take {dry['count']} workflows" in i.value for i in at.info)
    assert dry["count"] == 3
    at.button(key="batch_confirm").click().run()
    assert any("3 commands sent" in s.value for s in at.success)
    wait_for(lambda: all(_wf(stack, w)["state"] == "paused" for w in ids), 30,
             "the batch's pauses")


def test_create_from_a_template_form(stack: Stack) -> None:
    """The form of a template creates a workflow in the facility chosen, with its labels."""
    at = page("workflows", "planner")
    at.selectbox(key="new_template").select("api_pick").run()
    at.selectbox(key="new_facility").select("fb")
    at.text_input(key="new_id").input("dash-made-1")
    at.text_input(key="new_labels").input("made=dash")
    at.button(key="new_create").click().run()
    _no_traceback(at)
    made = _wf(stack, "dash-made-1")
    assert (made["facility"], made["labels"]) == ("fb", {"made": "dash"})
    assert any("Created dash-made-1" in s.value for s in at.success)


def test_audit_trail_pages_older_and_newer(stack: Stack) -> None:
    """A trail longer than a page is read a page at a time, newest first: the newest page
    is the API's, then older, then newer again; oldest first too."""
    with stack.client("planner") as c:
        wid = create(c, "fa")
        for _ in range(14):  # each: workflow_paused/resumed and command_reply events
            assert c.post(f"/api/v1/workflows/{wid}/pause").status_code == 200
            assert c.post(f"/api/v1/workflows/{wid}/resume").status_code == 200
        newest = c.get(f"/api/v1/workflows/{wid}/events",
                       params={"newest_first": "true", "limit": 50}).json()
    total = newest["count"]
    assert total > 50
    at = _detail(wid)
    text = shown(at)
    assert f"Events {total - 49} to {total} of {total} (newest first)" in text
    assert f"{newest['items'][0]['seq']} " in text
    at.button(key="audit_older").click().run()
    assert f"Events {max(1, total - 99)} to {total - 50} of {total}" in shown(at)
    at.button(key="audit_newer").click().run()
    assert f"Events {total - 49} to {total} of {total}" in shown(at)
    at.toggle(key="audit_newest").set_value(False).run()
    assert f"Events 1 to 50 of {total} (oldest first)" in shown(at)
    at.button(key="audit_newer").click().run()
    assert f"Events 51 to {min(total, 100)} of {total}" in shown(at)


def test_events_newest_first_are_the_trail_reversed(stack: Stack) -> None:
    """``GET /workflows/{id}/events?newest_first=true`` pages the same trail backwards,
    its cursor going on where the page ended (what the audit trail's first page reads)."""
    with stack.client("planner") as c:
        wid = create(c, "fa")
        for _ in range(3):
            assert c.post(f"/api/v1/workflows/{wid}/pause").status_code == 200
            assert c.post(f"/api/v1/workflows/{wid}/resume").status_code == 200
        url = f"/api/v1/workflows/{wid}/events"
        oldest = [e["seq"] for e in c.get(url, params={"limit": 500}).json()["items"]]
        first = c.get(url, params={"newest_first": "true", "limit": 4}).json()
        rest = c.get(url, params={"newest_first": "true", "limit": 500,
                                  "cursor": first["next_cursor"]}).json()
    assert first["count"] == len(oldest) > 4
    assert [e["seq"] for e in first["items"] + rest["items"]] == oldest[::-1]
    assert rest["next_cursor"] is None


def test_viewer_sees_the_same_page_with_controls_disabled(stack: Stack) -> None:
    """A viewer token: the detail renders, every control is disabled."""
    with stack.client("planner") as c:
        wid = create(c, "fa")
    at = _detail(wid, "viewer")
    _no_traceback(at)
    assert wid in shown(at)
    for key in ("wf_pause", "wf_resume", "wf_cancel", "wf_set_priority", "wf_skip_step",
                "wf_retry_step", "wf_add_dep", "batch_preview", "batch_confirm", "new_create"):
        assert at.button(key=key).disabled, key


def _timeline(at: AppTest) -> list[dict[str, Any]]:
    chart = at.get("vega_lite_chart")[0].proto
    rows: list[dict[str, Any]] = pa.ipc.open_stream(chart.datasets[0].data.data).read_all(
        ).to_pylist()
    return rows


def test_step_timeline_has_the_steps_that_ran(stack: Stack) -> None:
    """The timeline draws a bar for a step a fitter did (done) and one still waiting."""
    with stack.client("planner") as c:
        wid = create(c, "fc", template="api_meet")
    wait_for(lambda: {s["id"]: s["state"] for s in _wf(stack, wid)["steps"]}["walk"] == "done",
             30, f"a fitter to walk in {wid}")
    rows = _timeline(_detail(wid))
    assert ("walk", "done") in {(r["step"], r["outcome"]) for r in rows}


def test_open_workflow_from_the_list(stack: Stack) -> None:
    """Choosing a listed workflow opens its detail view."""
    with stack.client("planner") as c:
        wid = create(c, "fb", labels={"open": "o1"})
    at = page("workflows")
    at.text_input(key="f_label").input("open=o1").run()
    at.selectbox(key="list_open").select(wid).run()
    assert f"Workflow {wid}" in shown(at)


def test_bad_token_and_dead_hub_are_readable() -> None:
    """A token the hub does not know is the 401 sentence; a hub that is not there is the
    banner; neither a traceback."""
    at = page("workflows", token="ff_000000000000_bad")
    _no_traceback(at)
    assert any("does not accept this token" in e for e in errors(at)), errors(at)
    at = page("workflows", url=f"http://127.0.0.1:{free_port()}")
    _no_traceback(at)
    assert any("not reachable" in e for e in errors(at)), errors(at)


def test_create_form_has_an_input_per_template_parameter(stack: Stack) -> None:
    """A template's parameters are typed inputs; the values changed become the new
    workflow's data, which its detail view shows."""
    at = page("workflows", "planner")
    at.selectbox(key="new_template").select("api_form").run()
    at.number_input(key="new_param_qty").set_value(5)
    at.checkbox(key="new_param_rush").check()
    at.number_input(key="new_param_weight").set_value(4.0)
    at.text_input(key="new_param_bins").input("[2, 3]")
    at.text_input(key="new_id").input("dash-form-1")
    at.button(key="new_create").click().run()
    _no_traceback(at)
    data = _wf(stack, "dash-form-1")["data"]
    assert data == {"qty": 5, "rush": True, "weight": 4.0, "note": "plain", "bins": [2, 3]}
    assert any(json.loads(j.value) == data for j in _detail("dash-form-1").json)


def test_resume_of_an_active_workflow_is_a_readable_409(stack: Stack) -> None:
    """Resuming a workflow that is not paused (the button is disabled then, but a request
    can still race a change): the edge's refusal is a readable sentence, not a traceback —
    the dashboard's client (``HubApi``) as the Resume button calls it."""
    from dashboard._api import ApiError, HubApi

    with stack.client("planner") as c:
        wid = create(c, "fa")
    hub = HubApi(stack.url, stack.tokens["supervisor"], timeout=30)
    with pytest.raises(ApiError) as info:
        hub.post(f"/workflows/{wid}/resume", {"reason": ""})
    assert info.value.status == 409
    assert info.value.readable.startswith("The edge refused it"), info.value.readable
