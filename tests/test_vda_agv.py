"""The test AGV follows VDA 5050 §6.6 order acceptance rule by rule, runs actions and
instant actions, and completes a robot step for the master in virtual time."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from agents_sim.vda_agv import AgvModel, Out
from edge_runtime.vda5050 import (
    ActionSpec,
    OrderPlan,
    PathNode,
    VdaMaster,
    VdaMessage,
    VdaStepDone,
    VdaStepFailed,
    VdaStepStarted,
)
from topics import decode_vda, encode_vda

M, S = "acme", "agv1"
T0 = 1_700_000_000.0


def line(n: int) -> list[PathNode]:
    """n nodes on a line, 2 m apart, from (0, 0)."""
    return [PathNode(f"n{i}", 2.0 * i, 0.0) for i in range(n)]


def agv(version: str = "2.1.0", **kw: Any) -> AgvModel:
    return AgvModel(M, S, node_id="n0", x=0.0, y=0.0, version=version, speed=2.0,
                    action_s=1.0, now=T0, **kw)


def order(plan: OrderPlan, start: int = 0, header: int = 0) -> dict[str, Any]:
    """A full order message from a plan, schema-checked."""
    msg = {"headerId": header, "timestamp": "2024-01-01T00:00:00Z", "version": "2.1.0",
           "manufacturer": M, "serialNumber": S, **plan.body(start)}
    return decode_vda(encode_vda(msg, "order"), "order")


def last_state(outs: list[Out]) -> dict[str, Any]:
    """The newest state among outputs, schema-checked."""
    states = [m for k, m in outs if k == "state"]
    assert states, "expected a state message"
    return decode_vda(encode_vda(states[-1], "state"), "state")


def run(model: AgvModel, until: float, dt: float = 0.1) -> list[Out]:
    """Step the AGV in virtual time; every output must validate."""
    outs: list[Out] = []
    t = model.now
    while t < until:
        t = min(until, t + dt)
        for kind, msg in model.step(t):
            encode_vda(msg, kind)  # type: ignore[arg-type]
            outs.append((kind, msg))
    return outs


def errors(model: AgvModel) -> list[str]:
    return [e["errorType"] for e in model.errors]


def instant(action_type: str, action_id: str) -> dict[str, Any]:
    return {"headerId": 0, "timestamp": "2024-01-01T00:00:00Z", "version": "2.1.0",
            "manufacturer": M, "serialNumber": S,
            "actions": [{"actionType": action_type, "actionId": action_id,
                         "blockingType": "HARD"}]}


# --- §6.6 acceptance, rule by rule -----------------------------------------------------


def test_a_valid_new_order_is_accepted_and_its_first_node_traversed() -> None:
    """(2)(4)(9): new orderId, start where the AGV stands → accepted, n0 passed."""
    a = agv()
    st = last_state(a.receive_order(order(OrderPlan("o1", line(3))), T0))
    assert (st["orderId"], st["orderUpdateId"], st["lastNodeId"]) == ("o1", 0, "n0")
    assert [n["nodeId"] for n in st["nodeStates"]] == ["n1", "n2"]
    assert [e["sequenceId"] for e in st["edgeStates"]] == [1, 3]


def test_a_malformed_order_is_refused_with_validation_error() -> None:
    """§6.6.4.1: edges that do not join the nodes → validationError, order not taken."""
    a = agv()
    bad = order(OrderPlan("o1", line(3)))
    bad["edges"][1]["startNodeId"] = "n0"
    st = last_state(a.receive_order(bad, T0))
    assert st["orderId"] == "" and errors(a) == ["validationError"]
    refs = {r["referenceKey"]: r["referenceValue"] for r in st["errors"][0]["errorReferences"]}
    assert refs["orderId"] == "o1"


def test_an_order_with_an_unknown_action_is_refused_with_order_error() -> None:
    """§6.6.4.2: an action the AGV cannot perform → orderError naming the action."""
    a = agv()
    bad = order(OrderPlan("o1", line(2), [ActionSpec("launchRocket")]))
    a.receive_order(bad, T0)
    assert errors(a) == ["orderError"] and a.order_id == ""
    assert a.errors[0]["errorReferences"][-1] == {"referenceKey": "actionId",
                                                  "referenceValue": "o1:a0"}


def test_a_2_0_agv_refuses_a_corridor_it_cannot_use() -> None:
    """A field the AGV cannot use (2.1's corridor) → orderError (§6.6.4.2)."""
    a = agv("2.0.0")
    path = [PathNode("n0", 0, 0), PathNode("n1", 2, 0, edge_in={"corridor": {
        "leftWidth": 1.0, "rightWidth": 1.0}})]
    a.receive_order(order(OrderPlan("o1", path)), T0)
    assert errors(a) == ["orderError"]


def test_the_warning_stays_until_a_new_order_is_accepted() -> None:
    """The rejection warning is reported until an order is taken, then cleared."""
    a = agv()
    a.receive_order(order(OrderPlan("o1", line(2), [ActionSpec("launchRocket")])), T0)
    assert errors(a) == ["orderError"]
    run(a, T0 + 1)
    assert errors(a) == ["orderError"]
    a.receive_order(order(OrderPlan("o2", line(2))), T0 + 1)
    assert errors(a) == []


def test_a_new_order_far_from_the_vehicle_is_refused() -> None:
    """(4): the first node is not where the AGV stands → noRouteError."""
    a = agv()
    far = [PathNode("n5", 10, 0), PathNode("n6", 12, 0)]
    a.receive_order(order(OrderPlan("o1", far)), T0)
    assert errors(a) == ["noRouteError"] and a.order_id == ""


def test_a_busy_vehicle_refuses_a_new_order_id() -> None:
    """(3): while executing o1, a different orderId is refused; o1 continues."""
    a = agv()
    a.receive_order(order(OrderPlan("o1", line(4))), T0)
    run(a, T0 + 0.5)
    a.receive_order(order(OrderPlan("o2", line(2))), T0 + 0.5)
    assert a.order_id == "o1" and errors(a) == ["orderError"]
    assert a.nodes


def test_a_lower_order_update_id_is_refused_and_the_order_continues() -> None:
    """§6.6.4.3: orderUpdateId lower than current → orderUpdateError, keep executing."""
    a = agv()
    plan = OrderPlan("o1", line(6), base_length=2)
    a.receive_order(order(plan), T0)
    upd = plan.extend(2)
    assert upd is not None
    a.receive_order(order(plan, start=1), T0)
    stale = copy.deepcopy(order(plan, start=1))
    stale["orderUpdateId"] = 0
    a.receive_order(stale, T0 + 0.1)
    assert a.order_update_id == 1 and errors(a) == ["orderUpdateError"]


def test_the_same_order_and_update_id_twice_is_discarded_silently() -> None:
    """§6.6.4.3: a duplicate (resend) changes nothing and publishes nothing."""
    a = agv()
    o = order(OrderPlan("o1", line(3)))
    a.receive_order(o, T0)
    a.step(T0)
    before = copy.deepcopy(a._body())
    assert a.receive_order(o, T0) == []
    assert a._body() == before and errors(a) == []


def test_an_update_is_stitched_at_the_decision_point() -> None:
    """(7): update starting at the last base node extends the base; horizon replaced."""
    a = agv()
    plan = OrderPlan("o1", line(5), base_length=2)
    st = last_state(a.receive_order(order(plan), T0))
    assert st["newBaseRequest"] is True  # one released node left and a horizon
    plan.extend(2)
    st = last_state(a.receive_order(order(plan, start=1), T0 + 0.1))
    assert st["orderUpdateId"] == 1 and not errors(a)
    assert [(n["nodeId"], n["released"]) for n in st["nodeStates"]] == [
        ("n1", True), ("n2", True), ("n3", True), ("n4", False)]


def test_an_update_not_starting_at_the_decision_point_is_refused() -> None:
    """(7): first node ≠ last base node → orderUpdateError."""
    a = agv()
    plan = OrderPlan("o1", line(5), base_length=2)
    a.receive_order(order(plan), T0)
    plan.extend(2)
    a.receive_order(order(plan, start=2), T0)
    assert errors(a) == ["orderUpdateError"] and a.order_update_id == 0


def test_an_update_continues_a_completed_order_from_the_last_node() -> None:
    """(8): when idle, an update must start at lastNodeId/lastNodeSequenceId."""
    a = agv()
    plan = OrderPlan("o1", line(4), base_length=2)
    a.receive_order(order(plan), T0)
    run(a, T0 + 3)  # drives n0 → n1 and stops at the decision point
    assert a.last_node_id == "n1" and a.nodes and not a.nodes[0].released
    plan.extend(2)
    st = last_state(a.receive_order(order(plan, start=1), T0 + 3))
    assert st["orderUpdateId"] == 1 and not errors(a)


def test_the_vehicle_stops_at_the_decision_point() -> None:
    """Without an update the AGV never enters the horizon."""
    a = agv()
    a.receive_order(order(OrderPlan("o1", line(4), base_length=2)), T0)
    run(a, T0 + 20)
    assert a.last_node_id == "n1" and (a.x, a.y) == (2.0, 0.0) and not a.driving


# --- driving, actions, instant actions -------------------------------------------------


def pick_order() -> dict[str, Any]:
    return order(OrderPlan("o1", line(3), [ActionSpec("pick", {"loadId": "L7",
                                                               "loadType": "EPAL"})]))


def test_the_vehicle_drives_then_picks_through_every_action_state() -> None:
    """Nodes are passed in order; pick goes WAITING→INITIALIZING→RUNNING→FINISHED."""
    a = agv()
    a.receive_order(pick_order(), T0)
    seen: list[str] = []
    for _, msg in run(a, T0 + 6, dt=0.05):
        if msg.get("actionStates"):
            status = msg["actionStates"][0]["actionStatus"]
            if not seen or seen[-1] != status:
                seen.append(status)
    assert seen == ["WAITING", "INITIALIZING", "RUNNING", "FINISHED"]
    assert a.last_node_id == "n2" and a.loads == [{"loadId": "L7", "loadType": "EPAL"}]


def test_an_injected_failure_fails_the_action_with_an_error() -> None:
    """fail_next("pick") → pick FAILED and a WARNING error referencing it."""
    a = agv()
    a.fail_next("pick")
    a.receive_order(pick_order(), T0)
    run(a, T0 + 6)
    assert a.actions["o1:a0"].status == "FAILED" and errors(a) == ["pickFailed"]


def test_cancel_order_fails_pending_actions_and_keeps_the_order_id() -> None:
    """§6.6.3: cancelOrder → actions FAILED, nodes cleared, cancel FINISHED, ids kept."""
    a = agv()
    a.receive_order(pick_order(), T0)
    run(a, T0 + 0.4)  # on the first edge
    st = last_state(a.receive_instant_actions(instant("cancelOrder", "c1"), T0 + 0.4))
    assert {s["actionId"]: s["actionStatus"] for s in st["actionStates"]}["c1"] == "RUNNING"
    run(a, T0 + 2)  # it stops on the next node
    assert a.actions["c1"].status == "FINISHED" and a.actions["o1:a0"].status == "FAILED"
    assert a.nodes == [] and a.last_node_id == "n1" and a.order_id == "o1"


def test_cancel_order_without_an_order_fails_with_no_order_to_cancel() -> None:
    """§6.6.3.2: FAILED and a noOrderToCancel warning referencing the actionId."""
    a = agv()
    a.receive_instant_actions(instant("cancelOrder", "c1"), T0)
    assert a.actions["c1"].status == "FAILED" and errors(a) == ["noOrderToCancel"]
    assert a.errors[0]["errorReferences"] == [{"referenceKey": "actionId",
                                               "referenceValue": "c1"}]


def test_pause_stops_driving_and_actions_and_resume_continues() -> None:
    """startPause freezes motion; stopPause resumes it; paused is reported."""
    a = agv()
    a.receive_order(pick_order(), T0)
    run(a, T0 + 0.5)
    st = last_state(a.receive_instant_actions(instant("startPause", "p1"), T0 + 0.5))
    x = a.x
    assert st["paused"] is True
    run(a, T0 + 3)
    assert a.x == x and not a.driving
    a.receive_instant_actions(instant("stopPause", "p2"), T0 + 3)
    run(a, T0 + 10)
    assert a.actions["o1:a0"].status == "FINISHED"


def test_state_and_factsheet_requests_are_answered() -> None:
    """stateRequest → a state; factsheetRequest → a schema-valid factsheet."""
    a = agv()
    outs = a.receive_instant_actions(instant("stateRequest", "s1"), T0)
    assert [k for k, _ in outs] == ["state"]
    outs = a.receive_instant_actions(instant("factsheetRequest", "f1"), T0)
    (fs,) = [m for k, m in outs if k == "factsheet"]
    encode_vda(fs, "factsheet")
    assert fs["vehicleConfig"]
    assert "vehicleConfig" not in agv("2.0.0").factsheet(T0)[1]
    assert "maps" not in agv("2.0.0").state(T0)[1]


def test_e_stop_halts_the_vehicle() -> None:
    """With an e-stop the AGV does not move and reports eStop."""
    a = agv()
    a.set_e_stop("MANUAL")
    a.receive_order(pick_order(), T0)
    outs = run(a, T0 + 5)
    assert a.x == 0.0 and last_state(outs or [a.state(T0 + 5)])["safetyState"]["eStop"] == \
        "MANUAL"


def test_state_is_published_on_change_and_periodically() -> None:
    """Idle: one state per interval; a change publishes at once."""
    a = AgvModel(M, S, node_id="n0", x=0, y=0, state_interval_s=1.0, now=T0)
    a.state(T0)
    assert run(a, T0 + 0.9) == []
    assert len(run(a, T0 + 1.05)) == 1
    a.set_field_violation(True)
    assert len(a.step(T0 + 1.1)) == 1


# --- the master and the AGV together, in virtual time ----------------------------------


@pytest.mark.parametrize("version", ["2.0.0", "2.1.0"])
def test_master_and_agv_complete_a_stitched_pick_step(version: str) -> None:
    """Drive 5 nodes released 2 at a time, then pick: the master reports the step done."""
    master = VdaMaster(base_length=2)
    a = AgvModel(M, S, node_id="n0", x=0, y=0, version=version, speed=2.0, action_s=1.0,
                 now=T0)
    results: list[Any] = []
    orders = []

    def feed(outs: list[Out], now: float) -> None:
        for kind, msg in outs:
            msg = decode_vda(encode_vda(msg, kind), kind)  # type: ignore[arg-type]
            for item in master.handle(f"uagv/v2/{M}/{S}/{kind}", msg, now):
                if isinstance(item, VdaMessage):
                    kind_in = item.topic.rsplit("/", 1)[1]
                    got = decode_vda(encode_vda(item.message, kind_in), kind_in)  # type: ignore[arg-type]
                    assert got["version"] == version
                    if kind_in == "order":
                        orders.append(got)
                        feed(a.receive_order(got, now), now)
                    else:
                        feed(a.receive_instant_actions(got, now), now)
                else:
                    results.append(item)

    feed([a.connection("ONLINE", T0), a.state(T0)], T0)
    for item in master.assign(M, S, workflow_id="wf", step_id="s", now=T0, path=line(5),
                              actions=[ActionSpec("pick", {"loadId": "L1"})]):
        assert isinstance(item, VdaMessage)
        orders.append(item.message)
        feed(a.receive_order(item.message, T0), T0)
    t = T0
    while t < T0 + 30 and not any(isinstance(r, VdaStepDone | VdaStepFailed) for r in results):
        t += 0.1
        feed(a.step(t), t)
    kinds = [type(r) for r in results]
    assert VdaStepStarted in kinds and kinds[-1] is VdaStepDone, results
    assert results[-1].outputs["loads"] == [{"loadId": "L1"}]
    assert [o["orderUpdateId"] for o in orders] == [0, 1, 2]
    assert not a.errors
