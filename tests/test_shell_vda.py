"""The shell's VDA 5050 bridge: AGV messages ↔ core agent inputs and commands, sans-IO."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

import agents_sim.vda_agv
from edge_runtime.core import Publish
from edge_runtime.facility import load_map
from edge_runtime.vda5050 import VdaBridge, VdaMaster
from fleetflow.__main__ import build_parser
from topics import (
    AgentConn,
    AgentState,
    Assign,
    ProtocolError,
    StepAccepted,
    StepDone,
    StepFailed,
    StepStarted,
    SyncArrival,
)

F = "f1"
ROOT = Path(__file__).resolve().parent.parent


def _bridge() -> VdaBridge:
    demo = load_map(ROOT / "maps" / "demo.yaml")
    return VdaBridge(F, VdaMaster(graph=demo.graph), ("transport",))


def _state(**kw: Any) -> dict[str, Any]:
    state: dict[str, Any] = {
        "headerId": 1, "timestamp": "2026-01-01T00:00:00.000Z", "version": "2.1.0",
        "manufacturer": "acme", "serialNumber": "agv1", "orderId": "", "orderUpdateId": 0,
        "lastNodeId": "dock", "lastNodeSequenceId": 0, "nodeStates": [], "edgeStates": [],
        "driving": False, "actionStates": [],
        "batteryState": {"batteryCharge": 64.0, "charging": False},
        "operatingMode": "AUTOMATIC", "errors": [],
        "safetyState": {"eStop": "NONE", "fieldViolation": False},
    }
    state.update(kw)
    return state


def _online(bridge: VdaBridge) -> list[Any]:
    conn = {"headerId": 0, "timestamp": "2026-01-01T00:00:00.000Z", "version": "2.1.0",
            "manufacturer": "acme", "serialNumber": "agv1", "connectionState": "ONLINE"}
    return bridge.inbound("acme", "agv1", "connection", conn, 1.0).inputs


def test_online_agv_becomes_a_robot_agent() -> None:
    """An ONLINE connection announces the AGV to the core under its serial number, as an
    agent the edge bids for (an AGV cannot answer a call for proposals)."""
    inputs = _online(_bridge())
    assert inputs == [AgentConn(agent_id="agv1", online=True, kind="robot",
                                capabilities=["transport"], liveness_s=60.0, ts=1.0,
                                bids=False)]


def test_state_becomes_agent_state() -> None:
    """A VDA state gives the core the AGV's node, battery, mode and e-stop."""
    bridge = _bridge()
    _online(bridge)
    inputs = bridge.inbound("acme", "agv1", "state",
                            _state(operatingMode="MANUAL",
                                   safetyState={"eStop": "MANUAL", "fieldViolation": False}),
                            2.0).inputs
    state = inputs[-1]
    assert isinstance(state, AgentState)
    assert (state.node, state.battery, state.mode, state.e_stop) == ("dock", 64.0, "manual", True)


def test_assign_becomes_an_order_and_started_is_translated_once() -> None:
    """The core's Assign becomes a routed order; the AGV taking it yields accepted+started."""
    bridge = _bridge()
    _online(bridge)
    bridge.inbound("acme", "agv1", "state", _state(), 2.0)
    assign = Assign(command_id="c1", workflow_id="w1", step_id="s1", kind="robot",
                    location="p2")
    effect = Publish(f"fleetflow/v1/{F}/agent/agv1/cmd", assign)
    assert bridge.handles(effect)
    out = bridge.command(effect, 3.0)
    assert [m.topic for m in out.messages] == ["uagv/v2/acme/agv1/order"]
    order = out.messages[0].message
    assert [n["nodeId"] for n in order["nodes"]] == ["dock", "a1", "a2", "p2"]
    running = _state(orderId=order["orderId"], driving=True, lastNodeId="dock",
                     nodeStates=[{"nodeId": n["nodeId"], "sequenceId": n["sequenceId"],
                                  "released": True} for n in order["nodes"][1:]],
                     edgeStates=[{"edgeId": e["edgeId"], "sequenceId": e["sequenceId"],
                                  "released": True} for e in order["edges"]])
    first = bridge.inbound("acme", "agv1", "state", running, 4.0).inputs
    again = bridge.inbound("acme", "agv1", "state", running, 5.0).inputs
    started = [i for i in first if isinstance(i, StepAccepted | StepStarted)]
    assert [type(i).__name__ for i in started] == ["StepAccepted", "StepStarted"]
    assert not any(isinstance(i, StepAccepted | StepStarted) for i in again)


def test_commands_for_native_agents_are_not_taken() -> None:
    """Commands for agents that are not AGVs pass the bridge by."""
    bridge = _bridge()
    _online(bridge)
    effect = Publish(f"fleetflow/v1/{F}/agent/r1/cmd",
                     Assign(command_id="c", workflow_id="w", step_id="s", kind="robot"))
    assert not bridge.handles(effect)


def test_serial_taken_by_another_manufacturer_is_refused() -> None:
    """Two AGVs with one serial number cannot both be the agent of that id."""
    bridge = _bridge()
    _online(bridge)
    with pytest.raises(ProtocolError) as err:
        bridge.inbound("other", "agv1", "state", _state(manufacturer="other"), 2.0)
    assert err.value.reason == "identity_mismatch"


def test_agv_arrives_at_its_sync_point_when_its_step_is_done() -> None:
    """An AGV cannot speak the sync protocol: when its step is done, the bridge arrives for it."""
    bridge = _bridge()
    _online(bridge)
    bridge.inbound("acme", "agv1", "state", _state(), 2.0)
    assign = Assign(command_id="c1", workflow_id="w1", step_id="bring", kind="robot",
                    location="p2", sync_point="handover")
    order = bridge.command(Publish(f"fleetflow/v1/{F}/agent/agv1/cmd", assign), 3.0
                           ).messages[0].message
    last = order["nodes"][-1]
    running = _state(orderId=order["orderId"], driving=True, lastNodeId="dock",
                     nodeStates=[{"nodeId": n["nodeId"], "sequenceId": n["sequenceId"],
                                  "released": True} for n in order["nodes"][1:]],
                     edgeStates=[{"edgeId": e["edgeId"], "sequenceId": e["sequenceId"],
                                  "released": True} for e in order["edges"]])
    bridge.inbound("acme", "agv1", "state", running, 4.0)
    arrived = _state(orderId=order["orderId"], lastNodeId=last["nodeId"],
                     lastNodeSequenceId=last["sequenceId"])
    inputs = bridge.inbound("acme", "agv1", "state", arrived, 9.0).inputs
    done = [i for i in inputs if isinstance(i, StepDone | SyncArrival)]
    assert [type(i).__name__ for i in done] == ["StepDone", "SyncArrival"]
    arrival = done[1]
    assert (arrival.agent_id, arrival.workflow_id, arrival.step_id) == ("agv1", "w1", "handover")
    again = bridge.inbound("acme", "agv1", "state", arrived, 10.0).inputs
    assert not any(isinstance(i, SyncArrival) for i in again)


def test_the_documented_test_agv_stands_on_the_shipped_map(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """docs/vda5050.md and the help start the test AGV on a node of maps/demo.yaml, as its map."""
    demo = load_map(ROOT / "maps" / "demo.yaml")
    monkeypatch.setenv("COLUMNS", "1000")  # argparse wraps help at the terminal's width
    with pytest.raises(SystemExit):
        build_parser().parse_args(["edge", "--help"])
    edge_help = capsys.readouterr().out
    for text in ((ROOT / "docs" / "vda5050.md").read_text(), edge_help,
                 agents_sim.vda_agv.__doc__ or ""):
        commands = re.findall(r"agents_sim\.vda_agv ([^`]*?--map-id \w+)", text)
        assert commands, text[:200]
        for command in commands:
            node = re.search(r"--node (\S+)", command)
            assert node and node[1] in demo.nodes, command
            assert command.split()[-1] == demo.map_id, command


@pytest.mark.parametrize(("node", "location", "message"), [
    ("n0", "pack", "agv1 stands on n0, which is not on map demo_floor"),
    ("", "pack", "agv1 reports no lastNodeId: where it stands on map demo_floor is unknown"),
    ("dock", "nowhere", "the step's location nowhere is not on map demo_floor"),
    ("", None, "agv1 reports no lastNodeId and the step has no location: there is nowhere "
               "to send it"),
])
def test_an_order_that_cannot_be_planned_fails_its_step_saying_why(
        node: str, location: str | None, message: str) -> None:
    """AGV off the map or of unknown place, goal off the map: the step fails at once, in words."""
    bridge = _bridge()
    _online(bridge)
    bridge.inbound("acme", "agv1", "state", _state(lastNodeId=node), 2.0)
    assign = Assign(command_id="c1", workflow_id="w1", step_id="s1", kind="robot",
                    location=location)
    out = bridge.command(Publish(f"fleetflow/v1/{F}/agent/agv1/cmd", assign), 3.0)
    (failed,) = out.inputs
    assert out.messages == [] and isinstance(failed, StepFailed)
    assert (failed.step_id, failed.error_type, failed.message) == ("s1", "no_route", message)


def test_state_of_an_agv_lost_by_its_connection_does_not_bring_it_back() -> None:
    """After CONNECTIONBROKEN, a state alone does not give the core the AGV again (it would
    rejoin and be assigned steps the master fails as agv_lost); a new ONLINE does."""
    bridge = _bridge()
    _online(bridge)
    broken = {"headerId": 1, "timestamp": "2026-01-01T00:00:00.000Z", "version": "2.1.0",
              "manufacturer": "acme", "serialNumber": "agv1",
              "connectionState": "CONNECTIONBROKEN"}
    lost = bridge.inbound("acme", "agv1", "connection", broken, 2.0).inputs
    assert lost == [AgentConn(agent_id="agv1", online=False, ts=2.0)]
    assert bridge.inbound("acme", "agv1", "state", _state(), 3.0).inputs == []
    assert _online(bridge)[0].online
    assert isinstance(bridge.inbound("acme", "agv1", "state", _state(), 4.0).inputs[-1],
                      AgentState)
