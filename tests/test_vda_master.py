"""The sans-IO VDA 5050 master: orders, stitching, queueing, instant actions, versions,
and how AGV state maps to step outcomes."""

from __future__ import annotations

import itertools
import re
from typing import Any

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_runtime.vda5050 import (
    ActionSpec,
    OrderPlan,
    PathNode,
    VdaAgvLost,
    VdaMaster,
    VdaMessage,
    VdaPaused,
    VdaSafety,
    VdaStepCancelled,
    VdaStepDone,
    VdaStepFailed,
    VdaStepProgress,
    VdaStepStarted,
    actions_for,
    path_from_graph,
)
from topics import ProtocolError, encode_vda

M, S = "acme", "agv1"
T0 = 1_700_000_000.0
PICK = ActionSpec("pick", {"stationName": "rack_a", "loadId": "L1", "loadType": "EPAL"})


def line(n: int) -> list[PathNode]:
    """n nodes on a line, 2 m apart."""
    return [PathNode(f"n{i}", 2.0 * i, 0.0) for i in range(n)]


def state(version: str = "2.1.0", header: int = 0, **fields: Any) -> dict[str, Any]:
    """A schema-valid AGV state; ``fields`` override."""
    msg: dict[str, Any] = {
        "headerId": header, "timestamp": "2024-01-01T00:00:00.00Z", "version": version,
        "manufacturer": M, "serialNumber": S, "orderId": "", "orderUpdateId": 0,
        "lastNodeId": "n0", "lastNodeSequenceId": 0, "nodeStates": [], "edgeStates": [],
        "driving": False, "actionStates": [], "operatingMode": "AUTOMATIC", "errors": [],
        "batteryState": {"batteryCharge": 80.0, "charging": False},
        "safetyState": {"eStop": "NONE", "fieldViolation": False},
    }
    msg.update(fields)
    encode_vda(msg, "state")
    return msg


def conn(value: str, version: str = "2.1.0") -> dict[str, Any]:
    """A connection message."""
    return {"headerId": 0, "timestamp": "2024-01-01T00:00:00.00Z", "version": version,
            "manufacturer": M, "serialNumber": S, "connectionState": value}


def messages(out: list[Any]) -> list[VdaMessage]:
    """Only the messages of an output; each one must pass the schema."""
    msgs = [x for x in out if isinstance(x, VdaMessage)]
    for m in msgs:
        encode_vda(m.message, m.topic.rsplit("/", 1)[1])  # type: ignore[arg-type]
    return msgs


def outcomes(out: list[Any]) -> list[Any]:
    """Only the outcomes of an output."""
    return [x for x in out if not isinstance(x, VdaMessage)]


def online(master: VdaMaster, version: str = "2.1.0", **fields: Any) -> list[Any]:
    """Announce the AGV and its first (idle) state."""
    master.handle(f"uagv/v2/{M}/{S}/connection", conn("ONLINE", version), T0)
    return master.handle(f"uagv/v2/{M}/{S}/state", state(version, **fields), T0)


def order_state(order: dict[str, Any], version: str = "2.1.0", **fields: Any) -> dict[str, Any]:
    """The state of an AGV that accepted ``order`` and stands on its first node."""
    nodes = order["nodes"][1:]
    base = dict(
        orderId=order["orderId"], orderUpdateId=order["orderUpdateId"],
        lastNodeId=order["nodes"][0]["nodeId"],
        lastNodeSequenceId=order["nodes"][0]["sequenceId"],
        nodeStates=[{k: n[k] for k in ("nodeId", "sequenceId", "released")} for n in nodes],
        edgeStates=[{k: e[k] for k in ("edgeId", "sequenceId", "released")}
                    for e in order["edges"]],
        actionStates=[{"actionId": a["actionId"], "actionStatus": "WAITING"}
                      for n in order["nodes"] for a in n["actions"]],
    )
    base.update(fields)
    return state(version, **base)


def send_state(master: VdaMaster, now: float = T0 + 1, **kw: Any) -> list[Any]:
    return master.handle(f"uagv/v2/{M}/{S}/state", state(**kw), now)


def assign(master: VdaMaster, step: str = "s1", n: int = 4, **kw: Any) -> list[Any]:
    return master.assign(M, S, workflow_id="wf1", step_id=step, now=T0, path=line(n),
                         actions=[PICK], **kw)


# --- order building --------------------------------------------------------------------


def test_nodes_get_even_and_edges_odd_sequence_ids() -> None:
    """Nodes are numbered 0,2,4… and edges 1,3,5…, edges joining neighbours."""
    m = VdaMaster()
    online(m)
    (msg,) = messages(assign(m, n=4))
    order = msg.message
    assert msg.topic == f"uagv/v2/{M}/{S}/order"
    assert [n["sequenceId"] for n in order["nodes"]] == [0, 2, 4, 6]
    assert [e["sequenceId"] for e in order["edges"]] == [1, 3, 5]
    assert [(e["startNodeId"], e["endNodeId"]) for e in order["edges"]] == [
        ("n0", "n1"), ("n1", "n2"), ("n2", "n3")]
    assert order["orderUpdateId"] == 0


def test_final_node_carries_the_steps_actions_as_hard_blocking() -> None:
    """pick with stationName/loadId/loadType sits on the last node only, HARD blocking."""
    m = VdaMaster()
    online(m)
    order = messages(assign(m))[0].message
    assert all(n["actions"] == [] for n in order["nodes"][:-1])
    (action,) = order["nodes"][-1]["actions"]
    assert action["actionType"] == "pick" and action["blockingType"] == "HARD"
    assert {p["key"]: p["value"] for p in action["actionParameters"]} == {
        "stationName": "rack_a", "loadId": "L1", "loadType": "EPAL"}


def test_base_length_releases_a_prefix_and_leaves_a_horizon() -> None:
    """With base_length=2 the first two nodes and the edge between are released."""
    m = VdaMaster(base_length=2)
    online(m)
    order = messages(assign(m, n=5))[0].message
    assert [n["released"] for n in order["nodes"]] == [True, True, False, False, False]
    assert [e["released"] for e in order["edges"]] == [True, False, False, False]


def test_new_base_request_stitches_an_update_onto_the_decision_point() -> None:
    """newBaseRequest → same orderId, orderUpdateId 1, first node = last base node."""
    m = VdaMaster(base_length=2)
    online(m)
    first = messages(assign(m, n=5))[0].message
    out = m.handle(f"uagv/v2/{M}/{S}/state",
                   order_state(first, newBaseRequest=True), T0 + 1)
    (upd,) = messages(out)
    update = upd.message
    assert update["orderId"] == first["orderId"] and update["orderUpdateId"] == 1
    assert update["nodes"][0] == first["nodes"][1]  # the stitching node, unchanged
    assert [n["sequenceId"] for n in update["nodes"]] == [2, 4, 6, 8]
    assert [n["released"] for n in update["nodes"]] == [True, True, True, False]
    assert [e["sequenceId"] for e in update["edges"]] == [3, 5, 7]


def test_no_second_update_before_the_first_is_acknowledged() -> None:
    """Repeated newBaseRequest states do not release more until the AGV took update 1."""
    m = VdaMaster(base_length=2)
    online(m)
    first = messages(assign(m, n=6))[0].message
    assert messages(m.handle(f"uagv/v2/{M}/{S}/state",
                             order_state(first, newBaseRequest=True), T0 + 1))
    again = m.handle(f"uagv/v2/{M}/{S}/state", order_state(first, newBaseRequest=True), T0 + 2)
    assert messages(again) == []


def test_an_unacknowledged_order_is_resent_unchanged() -> None:
    """QoS 0 may drop an order: after resend_after_s it goes again with the same ids."""
    m = VdaMaster(resend_after_s=5)
    online(m)
    first = messages(assign(m))[0].message
    assert messages(send_state(m, now=T0 + 1)) == []
    (again,) = messages(send_state(m, now=T0 + 6))
    assert again.message["orderId"] == first["orderId"]
    assert again.message["headerId"] == first["headerId"] + 1
    assert again.message["nodes"] == first["nodes"]


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 12), base=st.integers(1, 6), step=st.integers(1, 5))
def test_updates_cover_the_route_with_stable_sequence_ids(n: int, base: int, step: int) -> None:
    """However the route is released, updates chain and sequence ids never change."""
    plan = OrderPlan("o1", line(n), [PICK], base_length=base)
    msgs = [plan.body()]
    while (body := plan.extend(step)) is not None:
        msgs.append(body)
    for prev, cur in itertools.pairwise(msgs):
        last_base = [x for x in prev["nodes"] if x["released"]][-1]
        assert cur["nodes"][0]["nodeId"] == last_base["nodeId"]
        assert cur["nodes"][0]["sequenceId"] == last_base["sequenceId"]
        assert cur["orderUpdateId"] == prev["orderUpdateId"] + 1
    for body in msgs:
        for node in body["nodes"]:
            assert node["sequenceId"] == 2 * int(node["nodeId"][1:])
        released = [x["released"] for x in body["nodes"]]
        assert released == sorted(released, reverse=True)  # base first, then horizon
        header = {"headerId": 0, "timestamp": "2024-01-01T00:00:00Z", "version": "2.1.0",
                  "manufacturer": M, "serialNumber": S}
        encode_vda({**header, **body}, "order")
    assert all(x["released"] for x in msgs[-1]["nodes"])


def test_path_from_graph_follows_the_shortest_route() -> None:
    """The helper walks the cheapest path and carries coordinates and edge fields."""
    g: nx.DiGraph[str] = nx.DiGraph()
    for name, x in (("a", 0), ("b", 5), ("c", 10), ("d", 5)):
        g.add_node(name, x=x, y=0 if name != "d" else 9, map_id="f1")
    g.add_edge("a", "b", vda={"maxSpeed": 1.0})
    g.add_edge("b", "c")
    g.add_edge("a", "d")
    g.add_edge("d", "c")
    path = path_from_graph(g, "a", "c")
    assert [p.node_id for p in path] == ["a", "b", "c"]
    assert path[1].edge_in == {"maxSpeed": 1.0} and path[2].map_id == "f1"


# --- queueing and instant actions ------------------------------------------------------


def test_busy_agv_gets_no_new_order_until_it_is_free() -> None:
    """A second step waits in the queue and is sent once the first order is done."""
    m = VdaMaster()
    online(m)
    first = messages(assign(m, "s1"))[0].message
    assert messages(assign(m, "s2")) == []
    done = order_state(first, lastNodeId="n3", lastNodeSequenceId=6, nodeStates=[],
                       edgeStates=[], actionStates=[{"actionId": first["nodes"][-1]["actions"][0]
                                                     ["actionId"], "actionStatus": "FINISHED"}])
    out = m.handle(f"uagv/v2/{M}/{S}/state", done, T0 + 10)
    assert any(isinstance(o, VdaStepDone) and o.step_id == "s1" for o in outcomes(out))
    (nxt,) = messages(out)
    assert nxt.message["orderId"] != first["orderId"] and "s2" in nxt.message["orderId"]


def test_an_agv_running_a_foreign_order_is_busy() -> None:
    """nodeStates in the AGV's state (someone else's order) hold our order back."""
    m = VdaMaster()
    online(m, nodeStates=[{"nodeId": "x", "sequenceId": 2, "released": True}])
    assert messages(assign(m)) == []


def test_a_queued_step_is_cancelled_without_touching_the_agv() -> None:
    """Cancelling a queued step drops it and sends nothing."""
    m = VdaMaster()
    online(m)
    assign(m, "s1")
    assign(m, "s2")
    out = m.cancel(M, S, workflow_id="wf1", step_id="s2", now=T0)
    assert messages(out) == [] and isinstance(outcomes(out)[0], VdaStepCancelled)


def test_cancel_of_a_running_step_sends_cancel_order_and_waits_for_it() -> None:
    """cancelOrder goes out; the step counts as cancelled when that action FINISHED."""
    m = VdaMaster()
    online(m)
    first = messages(assign(m))[0].message
    m.handle(f"uagv/v2/{M}/{S}/state", order_state(first), T0 + 1)
    (msg,) = messages(m.cancel(M, S, workflow_id="wf1", step_id="s1", now=T0 + 2))
    (action,) = msg.message["actions"]
    assert msg.topic.endswith("/instantActions") and action["actionType"] == "cancelOrder"
    after = order_state(first, nodeStates=[], edgeStates=[],
                        actionStates=[{"actionId": action["actionId"],
                                       "actionStatus": "FINISHED"}])
    out = m.handle(f"uagv/v2/{M}/{S}/state", after, T0 + 3)
    assert [type(o) for o in outcomes(out)] == [VdaStepCancelled]


def cancel_refused_on_the_way(m: VdaMaster) -> dict[str, Any]:
    """A running order whose cancelOrder the AGV refused as a message; the order sent."""
    online(m)
    first = messages(assign(m))[0].message
    m.handle(f"uagv/v2/{M}/{S}/state", order_state(first), T0 + 1)
    messages(m.cancel(M, S, workflow_id="wf1", step_id="s1", now=T0 + 2))
    running = order_state(first, errors=[{
        "errorType": "validationError", "errorLevel": "WARNING",
        "errorReferences": [{"referenceKey": "topic", "referenceValue": "instantActions"}]}])
    assert outcomes(m.handle(f"uagv/v2/{M}/{S}/state", running, T0 + 3)) == []
    return first


def test_an_order_ending_without_its_cancel_order_frees_the_agv() -> None:
    """An AGV that refused (or never got) cancelOrder and ends the order short of its goal
    has stopped: the step is cancelled and the AGV is free again."""
    m = VdaMaster()
    first = cancel_refused_on_the_way(m)
    dropped = order_state(first, nodeStates=[], edgeStates=[], lastNodeId="n1",
                          lastNodeSequenceId=2, actionStates=[])
    out = m.handle(f"uagv/v2/{M}/{S}/state", dropped, T0 + 4)
    assert [type(o) for o in outcomes(out)] == [VdaStepCancelled]
    assert not m.sessions[(M, S)].busy


def test_an_order_finished_despite_its_cancel_order_is_done_and_frees_the_agv() -> None:
    """An AGV that never ran our cancelOrder and finished the order: the step is done (the
    core flags it), not cancelled, and the AGV is free again."""
    m = VdaMaster()
    first = cancel_refused_on_the_way(m)
    finished = order_state(first, nodeStates=[], edgeStates=[], lastNodeId="n3",
                           lastNodeSequenceId=6,
                           actionStates=[{"actionId": f"{first['orderId']}:a0",
                                          "actionStatus": "FINISHED"}])
    out = m.handle(f"uagv/v2/{M}/{S}/state", finished, T0 + 4)
    assert [type(o) for o in outcomes(out)] == [VdaStepDone]
    assert not m.sessions[(M, S)].busy


@pytest.mark.parametrize(
    ("method", "action_type", "blocking"),
    [("pause", "startPause", "HARD"), ("resume", "stopPause", "HARD"),
     ("request_state", "stateRequest", "NONE"),
     ("request_factsheet", "factsheetRequest", "NONE")],
)
def test_each_instant_action_is_a_valid_message(method: str, action_type: str,
                                                blocking: str) -> None:
    """Instant actions carry a fresh actionId and validate against the schema."""
    m = VdaMaster()
    online(m)
    (a,) = messages(getattr(m, method)(M, S, T0))
    (b,) = messages(getattr(m, method)(M, S, T0))
    assert a.topic == f"uagv/v2/{M}/{S}/instantActions"
    assert a.message["actions"][0]["actionType"] == action_type
    assert a.message["actions"][0]["blockingType"] == blocking
    assert a.message["actions"][0]["actionId"] != b.message["actions"][0]["actionId"]
    assert b.message["headerId"] == a.message["headerId"] + 1


@pytest.mark.parametrize("method", ["pause", "resume", "request_state", "request_factsheet"])
def test_a_2_0_agv_gets_instant_actions_under_both_keys(method: str) -> None:
    """2.0 AGVs read `actions` (document) or `instantActions` (early draft): both are sent."""
    m = VdaMaster()
    online(m, "2.0.0")
    (msg,) = messages(getattr(m, method)(M, S, T0))
    assert msg.message["version"] == "2.0.0"
    assert msg.message["instantActions"] == msg.message["actions"]
    assert msg.message["instantActions"] is not msg.message["actions"]


def test_cancel_order_reaches_a_2_0_agv_under_both_keys() -> None:
    """The cancelOrder withdrawing a running step carries both keys for a 2.0 AGV."""
    m = VdaMaster()
    online(m, "2.0.0")
    first = messages(assign(m))[0].message
    m.handle(f"uagv/v2/{M}/{S}/state", order_state(first, "2.0.0"), T0 + 1)
    (msg,) = messages(m.cancel(M, S, workflow_id="wf1", step_id="s1", now=T0 + 2))
    assert [a["actionType"] for a in msg.message["instantActions"]] == ["cancelOrder"]
    assert msg.message["instantActions"] == msg.message["actions"]


def test_a_2_1_agv_gets_instant_actions_under_actions_only() -> None:
    """The 2.1 document and schema name the array `actions`; nothing else is sent."""
    m = VdaMaster()
    online(m, "2.1.0")
    (msg,) = messages(m.pause(M, S, T0))
    assert "instantActions" not in msg.message and msg.message["actions"]


# --- versions and headers --------------------------------------------------------------


def test_each_agv_is_answered_in_its_own_version() -> None:
    """A 2.0.0 AGV gets 2.0.0 orders without corridors; a 2.1.0 AGV keeps them."""
    corridor = {"leftWidth": 0.5, "rightWidth": 0.5}
    path = [PathNode("n0", 0, 0), PathNode("n1", 2, 0, edge_in={"corridor": corridor})]
    sent = {}
    for version in ("2.0.0", "2.1.0"):
        m = VdaMaster()
        online(m, version)
        (msg,) = messages(m.assign(M, S, workflow_id="w", step_id="s", now=T0, path=path))
        sent[version] = msg.message
    assert sent["2.0.0"]["version"] == "2.0.0" and "corridor" not in sent["2.0.0"]["edges"][0]
    assert sent["2.1.0"]["version"] == "2.1.0" and sent["2.1.0"]["edges"][0]["corridor"] == corridor


def test_a_later_2x_minor_is_answered_in_2_1_and_map_actions_never_reach_2_0() -> None:
    """2.3.1 hears 2.1.0; downloadMap to a 2.0 AGV is refused before sending."""
    m = VdaMaster()
    online(m, "2.3.1")
    assert messages(m.request_state(M, S, T0))[0].message["version"] == "2.1.0"
    m2 = VdaMaster()
    online(m2, "2.0.0")
    with pytest.raises(ValueError, match=r"2\.1"):
        m2.instant_action(M, S, "downloadMap", T0, {"mapId": "a", "mapVersion": "1"})


def test_header_ids_count_per_topic_and_timestamps_are_iso_utc() -> None:
    """order and instantActions each count from 0; timestamps end in Z with milliseconds."""
    m = VdaMaster()
    online(m)
    o = messages(assign(m))[0].message
    i1 = messages(m.request_state(M, S, T0 + 0.5))[0].message
    i2 = messages(m.request_state(M, S, T0 + 1))[0].message
    assert (o["headerId"], i1["headerId"], i2["headerId"]) == (0, 0, 1)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", i1["timestamp"])
    assert i1["timestamp"] == "2023-11-14T22:13:20.500Z"


def test_messages_from_the_wrong_agv_or_version_are_refused_and_change_nothing() -> None:
    """A header/topic mismatch or a 1.x version raises ProtocolError; no session appears."""
    m = VdaMaster()
    with pytest.raises(ProtocolError) as err:
        m.handle(f"uagv/v2/{M}/other/state", state(), T0)
    assert err.value.reason == "identity"
    with pytest.raises(ProtocolError) as err:
        m.handle(f"uagv/v2/{M}/{S}/state", state(version="1.1.0"), T0)
    assert err.value.reason == "version"
    assert m.sessions == {}


# --- state → outcomes ------------------------------------------------------------------


def started(m: VdaMaster, n: int = 4) -> dict[str, Any]:
    online(m)
    first = messages(assign(m, n=n))[0].message
    out = m.handle(f"uagv/v2/{M}/{S}/state", order_state(first), T0 + 1)
    assert [type(o) for o in outcomes(out)] == [VdaStepStarted, VdaStepProgress]
    return first


def test_progress_follows_last_node_sequence_id() -> None:
    """Passing n2 of n0..n3 reports 2/3 progress."""
    m = VdaMaster()
    first = started(m)
    out = m.handle(f"uagv/v2/{M}/{S}/state",
                   order_state(first, lastNodeId="n2", lastNodeSequenceId=4,
                               nodeStates=[{"nodeId": "n3", "sequenceId": 6, "released": True}]),
                   T0 + 2)
    (p,) = outcomes(out)
    assert isinstance(p, VdaStepProgress) and p.progress == pytest.approx(4 / 6)


def test_finished_order_completes_the_step_with_outputs() -> None:
    """All nodes traversed and pick FINISHED → done, with final node and loads."""
    m = VdaMaster()
    first = started(m)
    aid = first["nodes"][-1]["actions"][0]["actionId"]
    done = order_state(first, lastNodeId="n3", lastNodeSequenceId=6, nodeStates=[],
                       edgeStates=[], loads=[{"loadId": "L1", "loadType": "EPAL"}],
                       actionStates=[{"actionId": aid, "actionStatus": "FINISHED",
                                      "resultDescription": "L1"}])
    out = outcomes(m.handle(f"uagv/v2/{M}/{S}/state", done, T0 + 9))
    assert isinstance(out[-1], VdaStepDone)
    assert out[-1].outputs["node"] == "n3"
    assert out[-1].outputs["loads"] == [{"loadId": "L1", "loadType": "EPAL"}]
    assert out[-1].outputs["actions"] == ["L1"]
    assert m.session(M, S).active is None


def test_failed_action_fails_the_step_retryably() -> None:
    """pick FAILED → step failed, error_type action_failed, retryable."""
    m = VdaMaster()
    first = started(m)
    aid = first["nodes"][-1]["actions"][0]["actionId"]
    st_ = order_state(first, lastNodeId="n3", lastNodeSequenceId=6, nodeStates=[],
                      edgeStates=[], actionStates=[{"actionId": aid, "actionStatus": "FAILED"}])
    (f,) = [o for o in outcomes(m.handle(f"uagv/v2/{M}/{S}/state", st_, T0 + 9))
            if isinstance(o, VdaStepFailed)]
    assert f.error_type == "action_failed" and f.retryable


def test_fatal_error_fails_the_step_and_cancels_the_order() -> None:
    """A FATAL error mid-route fails the step and sends cancelOrder to free the AGV."""
    m = VdaMaster()
    first = started(m)
    st_ = order_state(first, errors=[{"errorType": "laserScanner", "errorLevel": "FATAL"}])
    out = m.handle(f"uagv/v2/{M}/{S}/state", st_, T0 + 2)
    (f,) = [o for o in outcomes(out) if isinstance(o, VdaStepFailed)]
    assert f.error_type == "agv_fatal_error"
    assert messages(out)[0].message["actions"][0]["actionType"] == "cancelOrder"


def test_warning_errors_do_not_fail_the_step() -> None:
    """A WARNING unrelated to the order leaves the step running."""
    m = VdaMaster()
    first = started(m)
    st_ = order_state(first, errors=[{"errorType": "batteryLow", "errorLevel": "WARNING"}])
    assert outcomes(m.handle(f"uagv/v2/{M}/{S}/state", st_, T0 + 2)) == []


@pytest.mark.parametrize(
    ("fields", "condition", "detail"),
    [({"safetyState": {"eStop": "MANUAL", "fieldViolation": False}}, "e_stop", "MANUAL"),
     ({"safetyState": {"eStop": "NONE", "fieldViolation": True}}, "field_violation",
      "protective field violated"),
     ({"operatingMode": "MANUAL"}, "operating_mode", "MANUAL")],
)
def test_safety_conditions_are_reported_when_they_start_and_end(
    fields: dict[str, Any], condition: str, detail: str
) -> None:
    """e-stop, field violation and a non-automatic mode each raise then clear a VdaSafety."""
    m = VdaMaster()
    online(m)
    (on,) = outcomes(send_state(m, **fields))
    assert on == VdaSafety(M, S, condition, True, detail)  # type: ignore[arg-type]
    assert outcomes(send_state(m, **fields)) == []  # edge-triggered
    (off,) = outcomes(send_state(m))
    assert off.condition == condition and not off.active


def test_no_order_is_sent_during_a_safety_condition() -> None:
    """An AGV in MANUAL mode keeps the step queued until it is AUTOMATIC again."""
    m = VdaMaster()
    online(m, operatingMode="MANUAL")
    assert messages(assign(m)) == []
    assert len(messages(send_state(m))) == 1


def test_manual_mode_clearing_the_order_fails_the_step() -> None:
    """The AGV drops its order on entering MANUAL: the step fails as order_aborted."""
    m = VdaMaster()
    first = started(m)
    aid = first["nodes"][-1]["actions"][0]["actionId"]
    st_ = order_state(first, operatingMode="MANUAL", nodeStates=[], edgeStates=[],
                      actionStates=[{"actionId": aid, "actionStatus": "FAILED"}])
    kinds = {type(o): o for o in outcomes(m.handle(f"uagv/v2/{M}/{S}/state", st_, T0 + 2))}
    assert VdaSafety in kinds and kinds[VdaStepFailed].retryable  # type: ignore[attr-defined]


def test_paused_flag_is_reported_on_change() -> None:
    """paused true then false gives VdaPaused(True) then VdaPaused(False)."""
    m = VdaMaster()
    online(m)
    assert outcomes(send_state(m, paused=True)) == [VdaPaused(M, S, True)]
    assert outcomes(send_state(m, paused=False)) == [VdaPaused(M, S, False)]


@pytest.mark.parametrize(("error_type", "retryable"),
                         [("orderError", False), ("validationError", False),
                          ("noRouteError", True), ("orderUpdateError", True)])
def test_order_rejection_fails_the_step(error_type: str, retryable: bool) -> None:
    """A rejection error referencing our orderId fails the step (retryable per type)."""
    m = VdaMaster()
    online(m)
    first = messages(assign(m))[0].message
    err = {"errorType": error_type, "errorLevel": "WARNING",
           "errorReferences": [{"referenceKey": "orderId", "referenceValue": first["orderId"]},
                               {"referenceKey": "orderUpdateId", "referenceValue": "0"}]}
    (f,) = outcomes(send_state(m, errors=[err]))
    assert isinstance(f, VdaStepFailed) and f.retryable is retryable
    assert f.error_type == error_type


def test_a_stale_rejection_of_another_order_is_ignored() -> None:
    """A standing orderError naming some other orderId does not fail our step."""
    m = VdaMaster()
    online(m)
    assign(m)
    err = {"errorType": "orderError", "errorLevel": "WARNING",
           "errorReferences": [{"referenceKey": "orderId", "referenceValue": "old"}]}
    assert outcomes(send_state(m, errors=[err])) == []


def test_a_refused_instant_action_does_not_fail_the_step() -> None:
    """A validationError about an instantActions message is not about the order."""
    m = VdaMaster()
    online(m)
    assign(m)
    err = {"errorType": "validationError", "errorLevel": "WARNING",
           "errorReferences": [{"referenceKey": "topic", "referenceValue": "instantActions"}]}
    assert outcomes(send_state(m, errors=[err])) == []


@pytest.mark.parametrize("how", ["CONNECTIONBROKEN", "OFFLINE"])
def test_lost_connection_fails_running_and_queued_steps(how: str) -> None:
    """The will (or a goodbye) makes the AGV lost; its steps fail retryably."""
    m = VdaMaster()
    online(m)
    assign(m, "s1")
    assign(m, "s2")
    out = outcomes(m.handle(f"uagv/v2/{M}/{S}/connection", conn(how), T0 + 3))
    assert out[0] == VdaAgvLost(M, S, how)  # type: ignore[arg-type]
    assert [(o.step_id, o.error_type, o.retryable) for o in out[1:]] == [
        ("s1", "agv_lost", True), ("s2", "agv_lost", True)]
    assert m.session(M, S).connection == how


def test_silence_beyond_the_liveness_window_loses_the_agv() -> None:
    """tick() after liveness_s without state reports STATE_TIMEOUT once."""
    m = VdaMaster(liveness_s=60)
    online(m)
    assert m.tick(T0 + 59) == []
    assert m.tick(T0 + 61) == [VdaAgvLost(M, S, "STATE_TIMEOUT")]
    assert m.tick(T0 + 62) == []


def test_assign_action_mapping() -> None:
    """pick becomes one HARD action; pure driving needs none; NaN is refused."""
    assert actions_for("pick", {"loadId": "L"}) == (ActionSpec("pick", {"loadId": "L"}),)
    assert actions_for(None, {}) == () and actions_for("move", {}) == ()
    with pytest.raises(ValueError):
        actions_for("drop", {"height": float("nan")})
