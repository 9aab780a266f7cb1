"""The native msgpack codec: round-trips, envelopes, refusals, and fuzzing every decoder."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from topics import (
    MESSAGE_TYPES,
    AgentCommand,
    AgentConn,
    AgentEvent,
    AgentState,
    Assign,
    Bid,
    EdgeEvent,
    Message,
    ProtocolError,
    StepDone,
    VdaAgvError,
    VdaLink,
    decode,
    decode_agent_command,
    decode_agent_conn,
    decode_agent_event,
    decode_agent_state,
    decode_edge_event,
    decode_edge_status,
    decode_error_report,
    decode_hub_command,
    decode_vda_links,
    encode,
)

IDENTIFIER_CHARS = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in "/+#$")
ident = st.text(alphabet=IDENTIFIER_CHARS, min_size=1, max_size=64)
opt_ident = st.none() | ident
ts = st.floats(min_value=0, max_value=1e11)
text = st.text(max_size=200)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
data = st.dictionaries(
    st.text(max_size=20),
    st.recursive(
        json_scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                    max_size=4),
        max_leaves=12,
    ),
    max_size=6,
)
"""Free-form workflow data: JSON-like, finite, string keys."""

# One strategy per field name; FIELD_OVERRIDES covers names whose type differs by class.
FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "agent_id": ident, "event_id": ident, "command_id": ident, "workflow_id": ident,
    "step_id": ident, "cfp_id": ident, "facility": ident, "error_type": ident,
    "node": opt_ident, "action": opt_ident, "location": opt_ident, "sync_point": opt_ident,
    "ts": ts, "deadline_ts": ts, "online": st.booleans(), "e_stop": st.booleans(),
    "retryable": st.booleans(), "bids": st.booleans(),
    "kind": st.sampled_from(["robot", "human", "ai"]),
    "capabilities": st.lists(ident, max_size=5),
    "liveness_s": st.floats(min_value=0.001, max_value=3600),
    "status": st.sampled_from(["idle", "busy", "charging", "error", "paused"]),
    "x": st.none() | st.floats(min_value=-1e6, max_value=1e6),
    "y": st.none() | st.floats(min_value=-1e6, max_value=1e6),
    "battery": st.none() | st.floats(min_value=0, max_value=100),
    "mode": st.sampled_from(["automatic", "manual", "service"]),
    "attempt": st.integers(min_value=1, max_value=1000),
    "cost": st.floats(min_value=0, max_value=1e9),
    "eta_s": st.floats(min_value=0, max_value=1e7),
    "progress": st.floats(min_value=0, max_value=1),
    "outputs": data, "params": data, "inputs": data, "data": data, "args": data,
    "message": text, "reason": text,
    "timeout_s": st.none() | st.floats(min_value=0.001, max_value=1e7),
    "seq": st.integers(min_value=1, max_value=2**63 - 1),
    "hlc": st.integers(min_value=0, max_value=2**63 - 1),
    "high_water_seq": st.integers(min_value=0, max_value=2**63 - 1),
    "consistency": st.sampled_from(["strong", "eventual", "bounded_staleness"]),
    "topic": st.text(max_size=100),
    "outcome": st.sampled_from(["done", "refused"]),
    "event_ids": st.lists(ident, max_size=5),
    "refused": st.dictionaries(ident, text, max_size=3),
    "vote_id": ident, "choice": st.sampled_from(["then", "else"]), "question": text,
    "then": st.lists(ident, max_size=5), "otherwise": st.lists(ident, max_size=5),
    "sub_id": ident, "member": ident, "description": text,
    "role": opt_ident, "team": st.lists(ident, max_size=5), "leader": ident,
    "target": opt_ident,
}
FIELDS["links"] = st.lists(st.builds(
    VdaLink, agent_id=ident, manufacturer=ident, serial_number=ident,
    connection=st.sampled_from(["ONLINE", "OFFLINE", "CONNECTIONBROKEN", "UNKNOWN"]),
    state_age_s=st.none() | st.floats(min_value=0, max_value=1e9),
    order_unacked_s=st.none() | st.floats(min_value=0, max_value=1e9),
    instants_unacked=st.integers(min_value=0, max_value=1000),
    rejections=st.integers(min_value=0, max_value=1000),
    errors=st.lists(st.builds(VdaAgvError, error_type=ident,
                              level=st.sampled_from(["WARNING", "FATAL"]),
                              description=st.text(max_size=100)), max_size=3)), max_size=3)
FIELDS["left_out"] = st.integers(min_value=0, max_value=10_000)
FIELD_OVERRIDES: dict[tuple[str, str], st.SearchStrategy[Any]] = {
    ("edge_event", "kind"): ident,
    ("edge_event", "workflow_id"): opt_ident,
    ("pause", "workflow_id"): opt_ident, ("pause", "step_id"): opt_ident,
    ("resume", "workflow_id"): opt_ident, ("resume", "step_id"): opt_ident,
    ("state", "workflow_id"): opt_ident, ("state", "step_id"): opt_ident,
    ("assign", "outputs"): st.lists(ident, max_size=5),
    ("error_report", "reason"): ident,
    ("error_report", "agent_id"): st.none() | ident,
    ("hub_command", "action"): st.sampled_from([
        "create_workflow", "cancel_workflow", "pause_workflow", "resume_workflow",
        "operator_action", "add_dependency", "replay", "checkpoint", "resolve_conflict",
        "set_coordination",
    ]),
}


def model_strategy(name: str, cls: type[Message]) -> st.SearchStrategy[Message]:
    """Valid instances of ``cls``: required fields always, defaulted ones sometimes."""
    required: dict[str, st.SearchStrategy[Any]] = {}
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for field, info in cls.model_fields.items():
        if field == "type":
            continue
        strategy = FIELD_OVERRIDES.get((name, field), FIELDS[field])
        (required if info.is_required() else optional)[field] = strategy
    return st.fixed_dictionaries(required, optional=optional).map(lambda kw: cls(**kw))


any_message = st.one_of([model_strategy(n, c) for n, c in MESSAGE_TYPES.items()])

DECODERS: list[Callable[[bytes], Message]] = [
    decode_agent_state, decode_agent_event, decode_agent_conn, decode_agent_command,
    decode_hub_command, decode_edge_event, decode_edge_status, decode_error_report,
    decode_vda_links,
]
KIND_DECODER: dict[str, Callable[[bytes], Message]] = {
    "conn": decode_agent_conn, "state": decode_agent_state,
    **dict.fromkeys(["bid", "step_accepted", "step_started", "step_progress", "step_done",
                     "step_failed", "sync_arrival", "command_ack", "vote", "substep_assigned",
                     "substep_done"], decode_agent_event),
    **dict.fromkeys(["assign", "cfp", "award", "pause", "resume", "cancel", "sync_release",
                     "event_ack", "follow", "ballot"], decode_agent_command),
    "edge_event": decode_edge_event, "hub_command": decode_hub_command,
    "edge_status": decode_edge_status, "error_report": decode_error_report,
    "vda_links": decode_vda_links,
}


def test_every_message_type_has_a_strategy_and_decoder() -> None:
    """The test tables cover every native message type."""
    assert set(KIND_DECODER) == set(MESSAGE_TYPES)
    for name, cls in MESSAGE_TYPES.items():
        model_strategy(name, cls)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(any_message)
def test_every_message_round_trips(message: Message) -> None:
    """encode → decode gives back an equal model, through decode() and the topic helper."""
    payload = encode(message)
    assert decode(payload, type(message)) == message
    name = message.type  # type: ignore[attr-defined]
    assert KIND_DECODER[name](payload) == message


@given(any_message)
def test_envelope_shape(message: Message) -> None:
    """The payload is the msgpack array [1, type, body] and the body omits ``type``."""
    version, name, body = msgpack.unpackb(encode(message))
    assert version == 1
    assert MESSAGE_TYPES[name] is type(message)
    assert "type" not in body


def test_union_expected_types() -> None:
    """decode() accepts a union such as AgentEvent and refuses members outside it."""
    bid = Bid(event_id="e1", agent_id="r1", ts=1.0, cfp_id="c1", cost=3.5)
    assert decode(encode(bid), AgentEvent) == bid
    assert decode(encode(bid), Bid | StepDone) == bid
    with pytest.raises(ProtocolError) as info:
        decode(encode(bid), AgentCommand)
    assert info.value.reason == "unexpected_type"


def test_wrong_topic_kind_refused() -> None:
    """A state message on the event topic is refused as unexpected, naming what was expected."""
    payload = encode(AgentState(agent_id="r1", ts=1.0))
    with pytest.raises(ProtocolError, match="expected bid") as info:
        decode_agent_event(payload)
    assert info.value.reason == "unexpected_type"


def _envelope(*items: Any) -> bytes:
    return msgpack.packb(list(items))


STATE_BODY = {"agent_id": "r1", "ts": 1.0, "battery": 50.0}


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "malformed"),
        (b"\xc1", "malformed"),
        (msgpack.packb({"a": 1}), "malformed"),
        (_envelope(1, "state"), "malformed"),
        (_envelope(2, "state", STATE_BODY), "version"),
        (_envelope(True, "state", STATE_BODY), "version"),
        (_envelope(1, "teleport", STATE_BODY), "unknown_type"),
        (_envelope(1, 7, STATE_BODY), "malformed"),
        (_envelope(1, "state", [1, 2]), "malformed"),
        (_envelope(1, "state", {**STATE_BODY, "battery": 150.0}), "schema"),
        (_envelope(1, "state", {**STATE_BODY, "battery": "50"}), "schema"),
        (_envelope(1, "state", {**STATE_BODY, "colour": "red"}), "schema"),
        (_envelope(1, "state", {"ts": 1.0}), "schema"),
        (_envelope(1, "state", {**STATE_BODY, "agent_id": "a/b"}), "bad_identifier"),
        (_envelope(1, "state", {**STATE_BODY, "battery": math.nan}), "not_finite"),
        (_envelope(1, "state", {**STATE_BODY, 3: "x"}), "schema"),
        (_envelope(1, "state", STATE_BODY) + b"\x00", "malformed"),
    ],
)
def test_bad_payloads_refused_with_reason(payload: bytes, reason: str) -> None:
    """Each kind of bad state payload is refused with its own reason code."""
    with pytest.raises(ProtocolError) as info:
        decode_agent_state(payload)
    assert info.value.reason == reason


def test_schema_error_names_the_field() -> None:
    """A schema refusal says which field failed, why, and what it got."""
    with pytest.raises(ProtocolError) as info:
        decode_agent_state(_envelope(1, "state", {**STATE_BODY, "battery": 150.0}))
    assert str(info.value).startswith("state message: field battery: ")
    assert "less than or equal to 100" in str(info.value)
    assert "150.0" in str(info.value)


def test_strict_wire_types() -> None:
    """The wire is strict: no string-to-number or int-to-bool coercion."""
    for body in ({**STATE_BODY, "ts": "1.0"}, {**STATE_BODY, "e_stop": 1}):
        with pytest.raises(ProtocolError) as info:
            decode_agent_state(_envelope(1, "state", body))
        assert info.value.reason == "schema"


def test_non_bytes_payload_refused() -> None:
    """A str payload is refused as malformed, not decoded by accident."""
    with pytest.raises(ProtocolError) as info:
        decode_agent_state("hello")  # type: ignore[arg-type]
    assert info.value.reason == "malformed"


def test_encode_refuses_unencodable_data() -> None:
    """encode() refuses data a receiver would refuse (NaN, sets, non-string keys)."""
    for bad in ({"v": math.inf}, {"v": {1, 2}}, {"v": {1: "a"}}, {"v": "\ud800"}):
        event = EdgeEvent(seq=1, hlc=0, facility="f", kind="k", data=bad)
        with pytest.raises(ProtocolError):
            encode(event)


def test_encode_refuses_foreign_objects() -> None:
    """encode() only takes native message models."""
    with pytest.raises(ProtocolError) as info:
        encode(Message())
    assert info.value.reason == "unknown_type"


def test_decode_rejects_non_message_expected() -> None:
    """Asking decode() for a non-message type is a programming error (TypeError)."""
    with pytest.raises(TypeError):
        decode(b"", int)


# --- fuzzing: anything in, model or ProtocolError out --------------------------------------

msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats() | st.text(max_size=20) | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=5)
    | st.dictionaries(st.text(max_size=10) | st.integers(-9, 9) | st.binary(max_size=4), inner,
                      max_size=5),
    max_leaves=20,
)


def _only_protocol_errors(payload: bytes) -> None:
    for decoder in DECODERS:
        try:
            result = decoder(payload)
        except ProtocolError as exc:
            assert exc.reason and str(exc)
        else:
            assert isinstance(result, Message)


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_random_bytes_give_protocol_errors(payload: bytes) -> None:
    """Random bytes fed to every decoder give a model or ProtocolError, nothing else."""
    _only_protocol_errors(payload)


@settings(max_examples=300)
@given(msgpack_values)
def test_random_msgpack_gives_protocol_errors(value: Any) -> None:
    """Random msgpack structures fed to every decoder give ProtocolError, nothing else."""
    _only_protocol_errors(msgpack.packb(value, use_bin_type=True))


@st.composite
def near_envelopes(draw: st.DrawFn) -> bytes:
    """Envelopes with a real type and real field names but random values."""
    name = draw(st.sampled_from(sorted(MESSAGE_TYPES)))
    fields = sorted(f for f in MESSAGE_TYPES[name].model_fields if f != "type")
    body = draw(st.dictionaries(st.sampled_from(fields), msgpack_values, max_size=len(fields)))
    version = draw(st.sampled_from([1, 1, 1, 0, 2, "1"]))
    return msgpack.packb([version, name, body], use_bin_type=True)


@settings(max_examples=400)
@given(near_envelopes())
def test_near_valid_envelopes_give_protocol_errors(payload: bytes) -> None:
    """Well-formed envelopes with random field values give a model or ProtocolError."""
    _only_protocol_errors(payload)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(any_message, st.data())
def test_truncated_payloads_give_protocol_errors(message: Message, draw: st.DataObject) -> None:
    """A valid payload cut short anywhere is refused with ProtocolError."""
    payload = encode(message)
    cut = draw.draw(st.integers(min_value=0, max_value=len(payload) - 1))
    _only_protocol_errors(payload[:cut])


def test_conn_and_assign_examples() -> None:
    """Hand-written messages decode through their topic helpers."""
    conn = AgentConn(agent_id="picker-3", online=False, kind="human", capabilities=["pick"])
    assert decode_agent_conn(encode(conn)) == conn
    assign = Assign(command_id="c9", workflow_id="wf1", step_id="s1", kind="ai",
                    inputs={"scan": [1, 2.5, {"ok": True}]})
    assert decode_agent_command(encode(assign)) == assign
