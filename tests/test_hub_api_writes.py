"""The API's writes end to end: each becomes an edge command that a real ``fleetflow edge``
applies (or refuses with its reason), through a real ``fleetflow hub``; the audit trail
names who sent it and why. (Auth and validation: ``test_hub_api.py``.)"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hub_stack import Stack, create, run_stack, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, mosquitto_bin: str) -> Iterator[Stack]:
    """One stack for the module's tests (each makes its own workflows)."""
    yield from run_stack(tmp_path_factory.mktemp("hubwrites"), mosquitto_bin)


def _workflow(c: httpx.Client, wid: str) -> dict[str, Any]:
    body: dict[str, Any] = c.get(f"/api/v1/workflows/{wid}").json()
    return body


def _until(c: httpx.Client, wid: str, check: Any, what: str) -> dict[str, Any]:
    """The workflow once ``check`` holds for it (fail, showing it, if it never does)."""
    found: dict[str, Any] = wait_for(lambda: (w := _workflow(c, wid)) and check(w) and w,
                                     what=lambda: f"{what}: {_workflow(c, wid)}")
    return found


def test_create_applies_and_records_who(stack: Stack) -> None:
    """A strong create answers 201 once the edge applied it; its command shows who and
    why, and so does the workflow's audit trail."""
    with stack.client("planner", **{"X-Reason": "restock aisle 3"}) as c:
        r = c.post("/api/v1/workflows", json={"facility": "fa", "template": "api_pick",
                                              "priority": 7, "data": {"order": "o-9"}})
        assert r.status_code == 201, r.text
        out = r.json()
        wid = out["args"]["workflow_id"]
        fate = c.get(f"/api/v1/commands/{out['command_id']}").json()
        wf = _workflow(c, wid)
        trail = c.get(f"/api/v1/workflows/{wid}/events").json()["items"]
    assert (out["state"], out["who"], out["reason"]) == ("applied", "planner-user",
                                                        "restock aisle 3")
    assert fate["state"] == "applied" and fate["action"] == "create_workflow"
    assert (wf["priority"], wf["data"]["order"]) == (7, "o-9")
    assert trail[0]["kind"] == "workflow_created"
    replies = [e for e in trail if e["kind"] == "command_reply"]
    assert replies[0]["data"]["hub_command"]["who"] == "planner-user"
    assert replies[0]["data"]["hub_command"]["reason"] == "restock aisle 3"


def test_eventual_write_is_202_then_applied(stack: Stack) -> None:
    """``?consistency=eventual`` answers 202 at once; the command's fate turns applied."""
    with stack.client("planner") as c:
        r = c.post("/api/v1/workflows", params={"consistency": "eventual"},
                   json={"facility": "fb", "template": "api_pick"})
        assert r.status_code == 202, r.text
        cid = r.json()["command_id"]
        fate = wait_for(lambda: (f := c.get(f"/api/v1/commands/{cid}").json())["state"]
                        == "applied" and f, what="the eventual create to apply")
    assert (fate["consistency"], fate["who"]) == ("eventual", "planner-user")


def test_unknown_facility_is_404_and_sends_nothing(stack: Stack) -> None:
    """A create for a facility no edge runs is refused at once."""
    with stack.client("planner") as c:
        r = c.post("/api/v1/workflows", json={"facility": "nowhere", "template": "api_pick"})
    assert r.status_code == 404 and "nowhere" in r.json()["error"]["message"]


def test_edge_refusal_is_409_with_its_reason(stack: Stack) -> None:
    """A command the edge refuses (unknown template) is 409 with the edge's sentence and
    the command id."""
    with stack.client("planner") as c:
        r = c.post("/api/v1/workflows", json={"facility": "fa", "template": "no_such"})
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert error["code"] == "refused" and "no_such" in error["message"]
    assert error["command_id"]


def test_update_changes_priority_deadline_data(stack: Stack) -> None:
    """PUT changes what it names and nothing else."""
    with stack.client("planner") as c:
        wid = create(c, "fa", priority=1, data={"a": 1, "b": 2})
        deadline = time.time() + 3600
        r = c.put(f"/api/v1/workflows/{wid}", json={"priority": 9, "deadline": deadline,
                                                    "data": {"b": 3}})
        assert r.status_code == 200, r.text
        wf = _until(c, wid, lambda w: w["priority"] == 9, "the update")
    assert wf["data"] == {"a": 1, "b": 3} and wf["deadline"] == pytest.approx(deadline)


def test_pause_resume_cancel(stack: Stack) -> None:
    """Pause, resume, then DELETE cancels (the workflow stays, cancelled)."""
    with stack.client("planner") as c:
        wid = create(c, "fa")
        assert c.post(f"/api/v1/workflows/{wid}/pause").status_code == 200
        _until(c, wid, lambda w: w["state"].startswith("paus"), "paused")
        assert c.post(f"/api/v1/workflows/{wid}/resume", json={"reason": "go"}
                      ).status_code == 200
        _until(c, wid, lambda w: not w["state"].startswith("paus"), "resumed")
        r = c.delete(f"/api/v1/workflows/{wid}", headers={"X-Reason": "order withdrawn"})
        assert r.status_code == 200, r.text
        wf = _until(c, wid, lambda w: w["state"] in ("cancelled", "cancelling"), "cancelled")
        again = c.delete(f"/api/v1/workflows/{wid}")
    assert wf["state"] == "cancelled"
    assert again.status_code == 409 and "cancelled" in again.json()["error"]["message"]


def test_dependencies_cycle_and_cross_facility(stack: Stack) -> None:
    """A dependency is added and listed; one closing a cycle is refused naming it; one on
    a workflow of another facility is held by the hub (tests/test_hub_dependencies.py)."""
    with stack.client("planner") as c:
        first, third = create(c, "fa"), create(c, "fa")
        second = create(c, "fa", depends_on=[first])  # pending: it may take another
        r = c.post(f"/api/v1/workflows/{second}/dependencies", json={"source": third})
        assert r.status_code == 200, r.text
        listed = _until(c, second, lambda w: len(w["depends_on"]) == 2, "the dependency")
        cycle = c.post(f"/api/v1/workflows/{first}/dependencies", json={"source": second})
        other = create(c, "fb")
        cross = c.post(f"/api/v1/workflows/{second}/dependencies", json={"source": other})
    assert listed["depends_on"] == [first, third]
    with stack.client("viewer") as c:
        assert c.get(f"/api/v1/workflows/{second}/dependencies").json()["depends_on"] == [
            first, third]
    assert cycle.status_code == 409 and "cycle" in cycle.json()["error"]["message"]
    assert cross.status_code == 200, cross.text
    with stack.client("viewer") as c:
        deps = c.get(f"/api/v1/workflows/{second}/dependencies").json()["dependencies"]
    assert (other, "fb", True) in [(d["source"], d["facility"], d["cross_facility"])
                                   for d in deps]


def test_coordination_checkpoint_recover(stack: Stack) -> None:
    """Set the protocol, take a checkpoint (listed), restore it; retrying with no failed
    step is refused by the edge."""
    with stack.client("planner") as c:
        wid = create(c, "fa")
        coord = c.post(f"/api/v1/workflows/{wid}/coordination",
                       json={"protocol": "auction_based"})
        assert coord.status_code == 200, coord.text
        cp = c.post(f"/api/v1/workflows/{wid}/checkpoint", json={"label": "before"})
        assert cp.status_code == 200, cp.text
        cp_id = cp.json()["result"]["checkpoint"]
        listed = wait_for(lambda: cp_id in (got := c.get(
            f"/api/v1/workflows/{wid}/checkpoints").json())["checkpoints"] and got,
            what="the checkpoint in the view")
        retry = c.post(f"/api/v1/workflows/{wid}/recover", json={"strategy": "automatic_retry"})
        restore = c.post(f"/api/v1/workflows/{wid}/recover",
                         json={"strategy": "checkpoint_restore", "checkpoint": cp_id})
    assert _workflow(stack.client("viewer"), wid)["coordination"] == "auction_based"
    assert listed["checkpoints"][-1] == cp_id
    assert retry.status_code == 409 and "no failed step" in retry.json()["error"]["message"]
    assert restore.status_code == 200, restore.text


def test_sync_arrival_reported_for_a_person(stack: Stack) -> None:
    """A supervisor reports a fitter's arrival at an open barrier; the edge takes it (the
    fitter's own arrival came first: a repeat, recorded as such); a stranger is refused."""
    with stack.client("planner") as c:
        wid = create(c, "fc", template="api_meet")
        _until(c, wid, lambda w: w["steps"][0]["state"] == "done",
               f"the fitter's walk (agents {c.get('/api/v1/agents').json()})")
    with stack.client("supervisor") as c:
        r = c.post(f"/api/v1/workflows/{wid}/sync/meet/agent/fitter1")
        stranger = c.post(f"/api/v1/workflows/{wid}/sync/meet/agent/nobody")
    assert r.status_code == 200, r.text
    assert r.json()["result"]["step_id"] == "meet" and r.json()["result"]["released"] is False
    assert stranger.status_code == 409 and "nobody" in stranger.json()["error"]["message"]


def test_agent_workflows_lists_what_the_agent_did(stack: Stack) -> None:
    """GET /agents/{id}/workflows lists a workflow in which the agent did a step."""
    with stack.client("planner") as c:
        wid = create(c, "fc", template="api_meet")
        _until(c, wid, lambda w: w["steps"][0]["state"] == "done", "the fitter's walk")
        trail = c.get(f"/api/v1/workflows/{wid}/events", params={"limit": 500}).json()
        [fitter] = {e["data"]["agent"] for e in trail["items"] if e["kind"] == "step_assigned"}
        jobs = c.get(f"/api/v1/agents/{fitter}/workflows").json()
    assert wid in {w["id"] for w in jobs["items"]}


def test_conflict_resolved_through_the_api(stack: Stack) -> None:
    """A deadline that cannot be met is a conflict; a supervisor resolves it by id."""
    with stack.client("planner") as c:
        wid = create(c, "fb", deadline=time.time() + 1)
        conflict = wait_for(lambda: next((k for k in c.get(
            "/api/v1/conflicts", params={"facility": "fb"}).json()["items"]
            if k["workflow_id"] == wid), None), what="the deadline conflict")
    with stack.client("supervisor") as c:
        r = c.post(f"/api/v1/conflicts/{conflict['id']}/resolve",
                   json={"resolution": "customer agreed to wait"})
        missing = c.post("/api/v1/conflicts/k999999/resolve", json={})
        settled = wait_for(lambda: next((k for k in c.get(
            "/api/v1/conflicts", params={"facility": "fb", "status": "resolved"}).json()[
                "items"] if k["id"] == conflict["id"]), None), what="the resolution")
    assert conflict["rule"] == "deadline_at_risk"
    assert r.status_code == 200, r.text
    assert "customer agreed to wait" in settled["resolution"]
    assert missing.status_code == 404


def test_batch_dry_run_then_pause(stack: Stack) -> None:
    """A dry run counts what a batch would take; the batch then pauses exactly those."""
    with stack.client("planner") as c:
        made = {create(c, "fb", template="api_pick") for _ in range(2)}
        body = {"action": "pause", "filter": {"facility": "fb", "state": "active"}}
        dry = c.post("/api/v1/workflows/batch", json={**body, "dry_run": True}).json()
        done = c.post("/api/v1/workflows/batch", json=body).json()
        assert done["errors"] == {}, done
        for wid in made:
            _until(c, wid, lambda w: w["state"].startswith("paus"), "the batch pause")
    assert made <= set(dry["workflow_ids"]) and dry["count"] == len(dry["workflow_ids"])
    assert dry["commands"] == [] and done["count"] == dry["count"]
    assert len(done["commands"]) == done["count"] and done["errors"] == {}


def test_safety_stop_and_release(stack: Stack) -> None:
    """A zone stop and its release go to the edge; the release of no stop is refused."""
    with stack.client("supervisor") as c:
        stop = c.post("/api/v1/facilities/fa/stop", json={"zone": "cold_room",
                                                          "reason": "spill"})
        release = c.post("/api/v1/facilities/fa/release", json={"zone": "cold_room"})
        again = c.post("/api/v1/facilities/fa/release", json={"zone": "cold_room"})
    assert stop.status_code == 200, stop.text
    assert release.status_code == 200, release.text
    assert again.status_code == 409


def test_state_sync_asks_the_edges(stack: Stack) -> None:
    """POST /state/sync asks every edge (or one) to replay what the hub lacks."""
    with stack.client("supervisor") as c:
        every = c.post("/api/v1/state/sync").json()
        one = c.post("/api/v1/state/sync", json={"facility": "fb"}).json()
        unknown = c.post("/api/v1/state/sync", json={"facility": "nowhere"})
    assert {r["facility"] for r in every["requested"]} == {"fa", "fb", "fc"}
    assert [r["facility"] for r in one["requested"]] == ["fb"]
    assert unknown.status_code == 404
