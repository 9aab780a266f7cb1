"""The Recovery page against a real stack (``dash_rig``) with one more template,
``api_fail``, whose only step a simulated welder in ``fa`` always fails (no retries): the
workflow then waits for an operator. The page lists it with the API's figures, and its
operator form acts (retry: it fails and waits again; skip: it completes); a checkpoint
taken on the page is listed on the next run and restored; a viewer sees the controls
disabled; a refusal is a readable message."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from conftest import free_port
from dash_rig import Stack, errors, page, serve, shown
from hub_stack import TEMPLATES, create, wait_for
from streamlit.testing.v1 import AppTest

from agents_sim.native import AgentSpec, Failure, FleetRunner

pytestmark = pytest.mark.slow

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

SAGA = """\
name: api_saga
steps:
  - id: walk
    kind: human
    capabilities: [fitter]
    location: pack
    estimated_duration_s: 1
    compensation: {kind: human, capabilities: [fitter], location: pack}
  - id: carry
    kind: human
    capabilities: [forklift]
    location: pack
    after: [walk]
"""


@pytest.fixture(scope="module", autouse=True)
def stack(tmp_path_factory: pytest.TempPathFactory, mosquitto_bin: str) -> Iterator[Stack]:
    """The stack with ``api_fail`` and a welder in ``fa`` that fails every weld, and
    ``api_saga`` (a fitter's walk in ``fc``, undone by a walk back)."""
    for s in serve(tmp_path_factory, mosquitto_bin,
                   templates_text={**TEMPLATES, "api_fail.yaml": FAIL,
                                   "api_saga.yaml": SAGA}):
        fleet = FleetRunner("fa", [AgentSpec(
            "welder1", "robot", ("weld",), node="p2", state_period_s=0.5, speed=10.0,
            failures=(Failure("weld", error_type="burnt_tip", retryable=False),))],
            port=s.mqtt_port)
        fleet.start()
        try:
            yield s
        finally:
            fleet.stop()


def _wf(stack: Stack, wid: str) -> dict[str, Any]:
    with stack.client("admin") as c:
        out: dict[str, Any] = c.get(f"/api/v1/workflows/{wid}").json()
        return out


def _waiting(stack: Stack) -> str:
    """A new ``api_fail`` workflow, once it waits for an operator."""
    with stack.client("planner") as c:
        wid = create(c, "fa", template="api_fail")
    wait_for(lambda: _wf(stack, wid)["awaiting_operator"] == ["weld"], 60,
             lambda: f"{wid} to wait for an operator: {_wf(stack, wid)}")
    return wid


def _checkpoints(wid: str, role: str = "planner") -> AppTest:
    at = page("recovery", role)
    at.text_input(key="cp_wid").input(wid).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_waiting_workflow_is_listed_and_skip_completes_it(stack: Stack) -> None:
    """The API's workflow waiting for an operator is listed with its failed step and
    error; skip on its form: it completes and leaves the list on the next run."""
    wid = _waiting(stack)
    at = page("recovery", "planner")
    assert not at.exception
    text = shown(at)
    assert wid in text and "burnt_tip" in text
    at.selectbox(key=f"op_action_{wid}").select("skip")
    at.button(key=f"op_apply_{wid}").click().run()
    assert any(f"skip on {wid}: applied" in s.value for s in at.success), shown(at)
    wait_for(lambda: _wf(stack, wid)["state"] == "completed", 30, f"{wid} to complete")
    assert wid not in shown(at.run())


def test_retry_fails_again_and_waits_again(stack: Stack) -> None:
    """Retry on the form: the welder fails the new attempt and the workflow waits for an
    operator again, with one more attempt."""
    wid = _waiting(stack)
    attempt = next(s["attempt"] for s in _wf(stack, wid)["steps"])
    at = page("recovery", "planner")
    at.selectbox(key=f"op_action_{wid}").select("retry")
    at.button(key=f"op_apply_{wid}").click().run()
    wait_for(lambda: next(s["attempt"] for s in _wf(stack, wid)["steps"]) > attempt
             and _wf(stack, wid)["awaiting_operator"] == ["weld"], 60, "the retry to fail")
    assert wid in shown(at.run())


def test_checkpoint_then_restore(stack: Stack) -> None:
    """Take a checkpoint on the page: the next run lists it (as the API does); restore
    it: the edge records ``checkpoint_restored`` of that checkpoint."""
    with stack.client("planner") as c:
        wid = create(c, "fa")
    at = _checkpoints(wid)
    at.text_input(key="cp_label").input("before_change")
    at.button(key="cp_take").click().run()
    ids = _wf(stack, wid)["checkpoints"]
    assert len(ids) == 1
    at.run()
    assert ids[0] in shown(at) and "before_change" in shown(at)
    at.selectbox(key="cp_chosen").select(ids[0])
    at.button(key="cp_restore").click().run()
    assert any(f"restore on {wid}: applied" in s.value for s in at.success), shown(at)
    with stack.client("viewer") as c:
        trail = c.get(f"/api/v1/workflows/{wid}/events", params={"limit": 500}).json()
    assert any(e["kind"] == "checkpoint_restored" and e["data"]["id"] == ids[0]
               for e in trail["items"])


def test_rollback_without_finished_steps_is_a_readable_refusal(stack: Stack) -> None:
    """A partial rollback of a workflow with no finished step: the edge's 409 as a
    sentence, and nothing changes."""
    with stack.client("planner") as c:
        wid = create(c, "fa")
    before = _wf(stack, wid)
    at = _checkpoints(wid)
    at.button(key="cp_rollback").click().run()
    assert not at.exception
    assert any(e.startswith("The edge refused it") for e in errors(at)), errors(at)
    assert _wf(stack, wid)["state"] == before["state"]


def test_viewer_sees_the_page_with_controls_disabled(stack: Stack) -> None:
    """A viewer token: the waiting list and checkpoints render, every control disabled."""
    wid = _waiting(stack)
    at = page("recovery", "viewer")
    assert wid in shown(at)
    assert at.button(key=f"op_apply_{wid}").disabled
    at = _checkpoints(wid, "viewer")
    for key in ("cp_take", "cp_restore", "cp_rollback"):
        assert at.button(key=key).disabled, key


def _steps(stack: Stack, wid: str) -> dict[str, str]:
    return {s["id"]: s["state"] for s in _wf(stack, wid)["steps"]}


def test_reassign_and_abort_on_the_operator_form(stack: Stack) -> None:
    """Reassign: the step waits for another welder (there is none), no operator any more;
    abort: the workflow fails."""
    first, second = _waiting(stack), _waiting(stack)
    at = page("recovery", "planner")
    at.selectbox(key=f"op_action_{first}").select("reassign")
    at.button(key=f"op_apply_{first}").click().run()
    wait_for(lambda: _wf(stack, first)["awaiting_operator"] == []
             and _steps(stack, first)["weld"] == "allocating", 30, "the reassigned step")
    at.selectbox(key=f"op_action_{second}").select("abort")
    at.button(key=f"op_apply_{second}").click().run()
    wait_for(lambda: _wf(stack, second)["state"] == "failed", 30, f"{second} to fail")
    text = shown(at.run())
    assert first not in text and second not in text


def test_partial_rollback_compensates_then_aborts(stack: Stack) -> None:
    """A rollback of a workflow whose first step is done: its compensation runs (a fitter
    walks back), the step is compensated and, ``then: abort``, the workflow fails."""
    with stack.client("planner") as c:
        wid = create(c, "fc", template="api_saga")
    wait_for(lambda: _steps(stack, wid)["walk"] == "done", 30, "the walk")
    at = _checkpoints(wid)
    at.selectbox(key="cp_then").select("abort")
    at.button(key="cp_rollback").click().run()
    assert any(f"rollback on {wid}: applied" in s.value for s in at.success), shown(at)
    wait_for(lambda: _wf(stack, wid)["state"] == "failed", 60, "the rollback to end")
    assert _steps(stack, wid)["walk"] == "compensated"


def test_retry_step_button_on_the_workflows_page(stack: Stack) -> None:
    """The Workflows page's "Retry step" on a step waiting for an operator: a new attempt
    runs (and fails again: the welder always does), and the page says what it waits for."""
    wid = _waiting(stack)
    attempt = next(s["attempt"] for s in _wf(stack, wid)["steps"])
    at = page("workflows", "planner")
    at.query_params["id"] = wid
    at.run()
    assert "an operator: it failed" in shown(at)
    at.selectbox(key="wf_step").select("weld")
    at.button(key="wf_retry_step").click().run()
    assert any("retry weld: applied" in s.value for s in at.success), shown(at)
    wait_for(lambda: next(s["attempt"] for s in _wf(stack, wid)["steps"]) > attempt, 30,
             "a new attempt")


def test_bad_token_and_dead_hub_are_readable() -> None:
    """A token the hub does not know is the 401 sentence; a hub that is not there is the
    banner; neither a traceback."""
    at = page("recovery", token="ff_000000000000_bad")
    assert not at.exception
    assert any("does not accept this token" in e for e in errors(at)), errors(at)
    at = page("recovery", url=f"http://127.0.0.1:{free_port()}")
    at.text_input(key="cp_wid").input("w1").run()
    assert not at.exception
    assert any("not reachable" in e for e in errors(at)), errors(at)
