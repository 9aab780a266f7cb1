"""The shell's intake: every kind of bad inbound message is rejected with its reason."""

from __future__ import annotations

import json
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_runtime.shell import REJECT_REASONS, Intake, Reject, TimerHeap, VdaInbound
from topics import (
    AgentConn,
    AgentState,
    HubCommand,
    StepDone,
    encode,
)

F = "f1"
STATE = f"fleetflow/v1/{F}/agent/r1/state"
EVENT = f"fleetflow/v1/{F}/agent/r1/event"
CONN = f"fleetflow/v1/{F}/agent/r1/conn"
CMD = f"fleetflow/v1/{F}/edge/cmd"
VDA_STATE = "uagv/v2/acme/agv7/state"


def _intake(known: tuple[str, ...] = ("r1",)) -> Intake:
    return Intake(F, known_agent=lambda agent_id: agent_id in known)


def _state(**kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"agent_id": "r1", "ts": 1.0}
    body.update(kw)
    return body


def _raw(kind: str, body: dict[str, Any]) -> bytes:
    return msgpack.packb([1, kind, body], use_bin_type=True)


def _vda_state(**kw: Any) -> dict[str, Any]:
    state: dict[str, Any] = {
        "headerId": 1, "timestamp": "2026-01-01T00:00:00.000Z", "version": "2.1.0",
        "manufacturer": "acme", "serialNumber": "agv7", "orderId": "", "orderUpdateId": 0,
        "lastNodeId": "", "lastNodeSequenceId": 0, "nodeStates": [], "edgeStates": [],
        "driving": False, "actionStates": [],
        "batteryState": {"batteryCharge": 80.0, "charging": False},
        "operatingMode": "AUTOMATIC", "errors": [],
        "safetyState": {"eStop": "NONE", "fieldViolation": False},
    }
    state.update(kw)
    return state


def _reason(result: object) -> str:
    assert isinstance(result, Reject), f"expected a Reject, got {result!r}"
    return result.reason


def test_valid_messages_pass() -> None:
    """A valid state, event, conn and hub command decode into their models."""
    intake = _intake()
    assert isinstance(intake.decode(STATE, encode(AgentState(agent_id="r1", ts=1))), AgentState)
    done = StepDone(event_id="e1", agent_id="r1", ts=1, workflow_id="w", step_id="s")
    assert isinstance(intake.decode(EVENT, encode(done)), StepDone)
    conn = AgentConn(agent_id="r9", online=True)
    assert isinstance(intake.decode(f"fleetflow/v1/{F}/agent/r9/conn", encode(conn)), AgentConn)
    cmd = HubCommand(command_id="c1", action="checkpoint")
    assert isinstance(intake.decode(CMD, encode(cmd)), HubCommand)


@pytest.mark.parametrize(("topic", "payload", "reason"), [
    (STATE, b"\x00" * 70_000, "payload_too_large"),
    (STATE, b"\xc1\xc1 not msgpack", "malformed"),
    (STATE, _raw("state", _state(battery=float("nan"))), "not_finite"),
    (STATE, _raw("state", _state(battery=150)), "schema"),
    (STATE, _raw("state", _state(colour="red")), "schema"),
    (STATE, _raw("state", _state(node="a/b")), "bad_identifier"),
    (STATE, msgpack.packb([9, "state", _state()]), "version"),
    (STATE, _raw("teleport", _state()), "unknown_type"),
    (STATE, encode(HubCommand(command_id="c", action="checkpoint")), "unexpected_type"),
    (STATE, encode(AgentState(agent_id="r2", ts=1)), "identity_mismatch"),
    (f"fleetflow/v1/{F}/agent/ghost/state", encode(AgentState(agent_id="ghost", ts=1)),
     "unknown_agent"),
    ("fleetflow/v1/other/agent/r1/state", encode(AgentState(agent_id="r1", ts=1)),
     "wrong_facility"),
    ("some/random/topic", b"", "bad_topic"),
    (VDA_STATE.replace("/v2/", "/v1/"), json.dumps(_vda_state()).encode(), "version"),
    (VDA_STATE, json.dumps(_vda_state(version="1.1.0")).encode(), "version"),
    (VDA_STATE, json.dumps(_vda_state(serialNumber="agv8")).encode(), "identity_mismatch"),
    (VDA_STATE, b"{not json", "malformed"),
])
def test_bad_input_is_rejected_with_reason(topic: str, payload: bytes, reason: str) -> None:
    """Each kind of bad message becomes a Reject with its documented reason code."""
    result = _intake().decode(topic, payload)
    assert _reason(result) == reason
    assert reason in REJECT_REASONS
    report = result.report(5.0)  # type: ignore[union-attr]
    assert report.reason == reason and report.topic == topic[:512]


def test_conn_from_unannounced_agent_is_accepted() -> None:
    """An agent announcing itself on conn is let in even though it is not known yet."""
    conn = encode(AgentConn(agent_id="new", online=True))
    assert isinstance(_intake(()).decode(f"fleetflow/v1/{F}/agent/new/conn", conn), AgentConn)


def test_conn_for_another_agent_is_rejected() -> None:
    """An agent cannot announce (or will) another agent's presence."""
    conn = encode(AgentConn(agent_id="r2", online=False))
    assert _reason(_intake().decode(CONN, conn)) == "identity_mismatch"


def test_valid_vda_state_passes() -> None:
    """A schema-valid VDA 5050 2.x state on its own topic becomes a VdaInbound."""
    result = _intake().decode(VDA_STATE, json.dumps(_vda_state()).encode())
    assert isinstance(result, VdaInbound)
    assert (result.manufacturer, result.serial_number, result.kind) == ("acme", "agv7", "state")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=512), st.sampled_from([STATE, EVENT, CONN, CMD, VDA_STATE]))
def test_decode_never_raises(payload: bytes, topic: str) -> None:
    """Arbitrary bytes never make the intake raise: they are valid or a Reject."""
    result = _intake().decode(topic, payload)
    assert isinstance(result, Reject | AgentState | AgentConn | HubCommand | VdaInbound) or (
        type(result).__name__.startswith(("Step", "Bid", "Sync")))


def test_timer_heap_replaces_and_cancels() -> None:
    """Re-arming a timer replaces it; cancelled timers never fire; due pops in time order."""
    t = TimerHeap()
    t.set("a", 10.0)
    t.set("b", 2.0)
    t.set("c", 3.0)
    t.set("a", 1.0)
    t.cancel("c")
    assert t.next_at() == 1.0
    assert list(t.due(5.0)) == ["a", "b"]
    assert list(t.due(100.0)) == []
    assert len(t) == 0
