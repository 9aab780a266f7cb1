"""Shared agents across facilities, end to end: a real Mosquitto, real ``fleetflow edge``
processes for ``fa`` and ``fb`` (and ``fc``), a real ``fleetflow hub`` serving the API, and
one MQTT test client that is the *same* agent in ``fa`` and ``fb`` (a forklift serving two
halls). Double-bookings are made on purpose (both edges allocate the agent at once) and
the hub detects them as ``x-`` conflicts and settles them (docs/hub.md, "Shared agents and
resources across facilities")."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hub_stack import Stack, create, run_stack, wait_for
from lending_rig import SharedAgent

from bench.wire import Wire
from topics import HubCommand, edge_topic, encode

pytestmark = pytest.mark.slow
_NUMBERS = itertools.count(1)
"""A new shared agent id per test: what one test lent or double-booked stays its own."""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, mosquitto_bin: str) -> Iterator[Stack]:
    """One stack for the module's tests (each uses its own shared agent)."""
    yield from run_stack(tmp_path_factory.mktemp("hubbookings"), mosquitto_bin)


@pytest.fixture
def shared(stack: Stack) -> Iterator[SharedAgent]:
    """A shared agent named after the test, in ``fa`` and ``fb``, seen by the hub in both."""
    agent = SharedAgent(stack.mqtt_port, f"fork{next(_NUMBERS)}", ("fa", "fb"))
    try:
        with stack.client("viewer") as c:
            wait_for(lambda: {a["facility"] for a in c.get(
                "/api/v1/agents", params={"limit": 500}).json()["items"]
                if a["id"] == agent.id} == {"fa", "fb"}, 30, f"the hub to see {agent.id}")
        yield agent
    finally:
        agent.close()


def _hub_conflict(c: httpx.Client, agent_id: str) -> dict[str, Any] | None:
    items = c.get("/api/v1/conflicts", params={"facility": "*"}).json()["items"]
    found = [x for x in items if x["resource"] == agent_id]
    return found[-1] if found else None


def _step(c: httpx.Client, wid: str, step: str = "fetch") -> dict[str, Any]:
    [found] = [s for s in c.get(f"/api/v1/workflows/{wid}").json()["steps"]
               if s["id"] == step]
    return found  # type: ignore[no-any-return]


def _agent(c: httpx.Client, facility: str, agent_id: str) -> dict[str, Any]:
    [found] = [a for a in c.get("/api/v1/agents", params={"facility": facility,
                                                          "limit": 500}).json()["items"]
               if a["id"] == agent_id]
    return found  # type: ignore[no-any-return]


def test_double_booking_is_detected_and_settled_by_priority(stack: Stack,
                                                             shared: SharedAgent) -> None:
    """Both edges give the shared agent a step; the hub opens an ``x-`` double_booking
    conflict naming both, the lower-priority facility's step is taken off the agent (which
    is lent away there), and the conflict is resolved."""
    with stack.client("planner") as c:
        wa = create(c, "fa", priority=5, agents=[shared.id])
        wb = create(c, "fb", priority=1, agents=[shared.id])
        conflict = wait_for(lambda: _hub_conflict(c, shared.id), 30, "a hub conflict")
        done = wait_for(lambda: (x := _hub_conflict(c, shared.id)) and
                        x["status"] == "resolved" and x, 30,
                        lambda: f"the conflict resolved: {_hub_conflict(c, shared.id)}")
        assert conflict["id"].startswith("x-") and conflict["facility"] == "*"
        assert conflict["type"] == "double_booking" and conflict["strategy"] == "priority"
        assert sorted(conflict["participants"]) == [f"fa/{wa}/fetch", f"fb/{wb}/fetch"]
        assert done["resolution"] == "kept by fa"
        assert ("fb", wb, "fetch") in shared.cancels
        assert _step(c, wa)["agent"] == shared.id
        assert _step(c, wb)["state"] == "allocating" and _step(c, wb)["agent"] is None
        assert _agent(c, "fb", shared.id)["lent_to"] == "fa"
        assert _agent(c, "fa", shared.id)["lent_to"] is None
        loan = wait_for(lambda: [x for x in c.get("/api/v1/loans").json()
                                 if x["id"] == f"agent:{shared.id}:fb"
                                 and x["status"] == "lent"], 20, "the hub's loan recorded")
        assert (loan[0]["who"], loan[0]["to_facility"]) == ("hub", "fa")


def test_double_booking_made_while_the_hub_is_down(stack: Stack, shared: SharedAgent) -> None:
    """Edges are autonomous: with the hub stopped, both book the shared agent (commands
    straight on ``edge/cmd``); the restarted hub catches up, finds the double-booking and
    settles it for the higher-priority facility."""
    wa, wb = f"down-a-{shared.id}", f"down-b-{shared.id}"
    stack.stop("hub")
    try:
        wire = Wire(stack.mqtt_port, f"planner-{shared.id}", [])
        for facility, wid, priority in (("fa", wa, 1), ("fb", wb, 4)):
            wire.publish(edge_topic(facility, "cmd"), encode(HubCommand(
                command_id=f"c-{wid}", action="create_workflow", args={
                    "template": "api_pick", "workflow_id": wid, "priority": priority,
                    "agents": [shared.id]})), qos=1).wait_for_publish(5)
        wire.close()
        time.sleep(1.0)  # both edges assign it meanwhile
    finally:
        stack.start("hub")
    with stack.client("viewer") as c:
        done = wait_for(lambda: (x := _hub_conflict(c, shared.id)) and
                        x["status"] == "resolved" and x, 60,
                        lambda: f"the conflict resolved: {_hub_conflict(c, shared.id)}")
        assert sorted(done["participants"]) == [f"fa/{wa}/fetch", f"fb/{wb}/fetch"]
        assert done["resolution"] == "kept by fb"
        assert _step(c, wb)["agent"] == shared.id
        assert _step(c, wa)["agent"] is None and _agent(c, "fa", shared.id)["lent_to"] == "fb"


def test_manual_loan_waits_for_an_operator(stack: Stack, shared: SharedAgent) -> None:
    """Lending an agent that is busy (its step runs on) and the borrower booking it makes
    a double-booking; with a ``manual`` loan it stays open until ``keep:<facility>``,
    then the lender's step is taken off it."""
    with stack.client("planner") as c, stack.client("supervisor") as s:
        wa = create(c, "fa", agents=[shared.id])
        wait_for(lambda: _step(c, wa)["agent"] == shared.id, 20, "fa to assign it")
        r = s.post(f"/api/v1/agents/{shared.id}/lend", json={
            "from_facility": "fa", "to_facility": "fb", "strategy": "manual",
            "reason": "hall B is short"})
        assert r.status_code == 200, r.text
        assert (r.json()["status"], r.json()["strategy"]) == ("lent", "manual")
        wb = create(c, "fb", priority=9, agents=[shared.id])
        conflict = wait_for(lambda: _hub_conflict(c, shared.id), 30, "a hub conflict")
        time.sleep(1.0)  # rounds go by: a manual conflict is left alone
        assert _hub_conflict(c, shared.id)["status"] == "open"  # type: ignore[index]
        assert _step(c, wa)["agent"] == shared.id and not shared.cancels
        bad = s.post(f"/api/v1/conflicts/{conflict['id']}/resolve",
                     json={"resolution": "keep:fc"})
        r = s.post(f"/api/v1/conflicts/{conflict['id']}/resolve",
                   json={"resolution": "keep:fb", "reason": "B's order is urgent"})
        assert r.status_code in (200, 202), r.text
        assert r.json()["action"] == "release_booking" and r.json()["facility"] == "fa"
        done = wait_for(lambda: (x := _hub_conflict(c, shared.id)) and
                        x["status"] == "resolved" and x, 30, "the conflict resolved")
        assert bad.status_code == 422 and "fc" in bad.json()["error"]["message"]
        assert done["resolution"] == "kept by fb"
        assert _step(c, wb)["agent"] == shared.id
        wait_for(lambda: _step(c, wa)["state"] == "allocating", 20, "fa's step requeued")


def test_lender_that_keeps_it_takes_it_back(stack: Stack, shared: SharedAgent) -> None:
    """A lender whose running step outranks the borrower's booking keeps the agent: the
    borrower's step is taken off it and the lender reclaims it (no loan left both ways)."""
    with stack.client("planner") as c, stack.client("supervisor") as s:
        wa = create(c, "fa", priority=8, agents=[shared.id])
        wait_for(lambda: _step(c, wa)["agent"] == shared.id, 20, "fa to assign it")
        r = s.post(f"/api/v1/agents/{shared.id}/lend",
                   json={"from_facility": "fa", "to_facility": "fb"})
        assert r.status_code == 200 and r.json()["strategy"] == "priority", r.text
        wb = create(c, "fb", priority=2, agents=[shared.id])
        done = wait_for(lambda: (x := _hub_conflict(c, shared.id)) and
                        x["status"] == "resolved" and x, 30, "the conflict resolved")
        wait_for(lambda: _agent(c, "fa", shared.id)["lent_to"] is None, 20, "fa reclaimed it")
        loan = wait_for(lambda: [x for x in s.get("/api/v1/loans").json()
                                 if x["id"] == f"agent:{shared.id}:fa"
                                 and x["status"] == "returned"], 20, "the loan ended")
        assert done["resolution"] == "kept by fa" and loan
        assert _step(c, wa)["agent"] == shared.id
        assert _step(c, wb)["agent"] is None and _agent(c, "fb", shared.id)["lent_to"] == "fa"


def test_lend_and_return_an_agent(stack: Stack, shared: SharedAgent) -> None:
    """Lend: the lender's edge shows the loan and ``GET /loans`` lists it; return: it
    works there again."""
    with stack.client("supervisor") as s:
        r = s.post(f"/api/v1/agents/{shared.id}/lend", json={
            "from_facility": "fb", "to_facility": "fa"})
        assert r.status_code == 200, r.text
        wait_for(lambda: _agent(s, "fb", shared.id)["lent_to"] == "fa", 20, "the loan shown")
        loans = {x["id"]: x for x in s.get("/api/v1/loans").json()}
        back = s.post(f"/api/v1/agents/{shared.id}/return", json={"reason": "done"})
        assert back.status_code == 200, back.text
        wait_for(lambda: _agent(s, "fb", shared.id)["lent_to"] is None, 20, "returned")
        again = s.post(f"/api/v1/agents/{shared.id}/return")
    loan = loans[f"agent:{shared.id}:fb"]
    assert (loan["status"], loan["to_facility"], loan["who"]) == ("lent", "fa",
                                                                  "supervisor-user")
    assert back.json()["status"] == "returned"
    assert again.status_code == 404


def test_lend_checks_what_it_is_asked(stack: Stack) -> None:
    """Unknown agent: 404; to the same facility: 422; unknown resource: the edge's 409;
    no token: 401; a viewer: 403 — and nothing is recorded."""
    body = {"from_facility": "fa", "to_facility": "fb"}
    with stack.client("supervisor") as s, stack.client("viewer") as v, \
            stack.client(None) as anon:
        before = s.get("/api/v1/loans").json()
        ghost = s.post("/api/v1/agents/ghost/lend", json=body)
        same = s.post("/api/v1/agents/ghost/lend", json={**body, "to_facility": "fa"})
        res = s.post("/api/v1/resources/nowhere/lend", json=body)
        unauth = anon.post("/api/v1/agents/ghost/lend", json=body)
        viewer = v.post("/api/v1/agents/ghost/lend", json=body)
        bad = s.post("/api/v1/agents/ghost/lend", json={"from_facility": "fa"})
        after = [x for x in s.get("/api/v1/loans").json() if x["status"] != "refused"]
    assert ghost.status_code == 404 and "ghost" in ghost.json()["error"]["message"]
    assert same.status_code == 422 and "itself" in same.json()["error"]["message"]
    assert res.status_code == 409 and "no resource 'nowhere'" in res.json()["error"]["message"]
    assert (unauth.status_code, viewer.status_code, bad.status_code) == (401, 403, 422)
    assert after == [x for x in before if x["status"] != "refused"]
