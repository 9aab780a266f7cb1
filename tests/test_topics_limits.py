"""Limits: payload size, non-finite numbers, nesting depth, string and collection sizes."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from topics import (
    DEFAULT_LIMITS,
    EdgeEvent,
    Limits,
    ProtocolError,
    StepDone,
    check_tree,
    decode_agent_event,
    decode_agent_state,
    decode_edge_event,
    decode_vda,
    encode,
    encode_vda,
)

STEP = {"event_id": "e1", "agent_id": "r1", "ts": 1.0, "workflow_id": "wf", "step_id": "s"}


def _step_done(outputs: Any) -> bytes:
    return msgpack.packb([1, "step_done", {**STEP, "outputs": outputs}])


def _nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for _ in range(depth):
        value = {"k": value}
    return value


def test_defaults() -> None:
    """The defaults are 64 KiB payloads and depth 32, and the instance is frozen."""
    assert DEFAULT_LIMITS.max_payload_bytes == 64 * 1024
    assert DEFAULT_LIMITS.max_depth == 32
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT_LIMITS.max_depth = 3  # type: ignore[misc]


@pytest.mark.parametrize("field", ["max_payload_bytes", "max_string_length", "max_items",
                                   "max_depth"])
def test_limits_must_be_positive(field: str) -> None:
    """A zero or non-integer limit is refused when the Limits is made."""
    with pytest.raises(ValueError, match=field):
        Limits(**{field: 0})
    with pytest.raises(ValueError, match=field):
        Limits(**{field: 1.5})  # type: ignore[arg-type]


def test_oversize_payload_refused_before_parsing() -> None:
    """A payload over the limit is refused as too large even if it is garbage."""
    with pytest.raises(ProtocolError) as info:
        decode_agent_state(b"\xc1" * (64 * 1024 + 1))
    assert info.value.reason == "payload_too_large"


def test_payload_limit_is_configurable() -> None:
    """A smaller max_payload_bytes refuses what the default accepts, on both sides."""
    event = EdgeEvent(seq=1, hlc=1, facility="f", kind="k", data={"blob": "x" * 500})
    payload = encode(event)
    assert decode_edge_event(payload) == event
    small = Limits(max_payload_bytes=200)
    for act in (lambda: encode(event, small), lambda: decode_edge_event(payload, small)):
        with pytest.raises(ProtocolError) as info:
            act()
        assert info.value.reason == "payload_too_large"


def test_encode_refuses_oversize_message() -> None:
    """encode() will not produce a payload a default receiver would refuse."""
    event = EdgeEvent(seq=1, hlc=1, facility="f", kind="k",
                      data={f"k{i}": "y" * 1000 for i in range(70)})
    with pytest.raises(ProtocolError) as info:
        encode(event)
    assert info.value.reason == "payload_too_large"


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_deep_in_outputs_refused(bad: float) -> None:
    """NaN/Inf deep inside free-form outputs is refused, and the path is named."""
    outputs = {"scan": [1.0, {"points": [[0.0, 1.0], [2.0, bad]]}]}
    with pytest.raises(ProtocolError) as info:
        decode_agent_event(_step_done(outputs))
    assert info.value.reason == "not_finite"
    assert "$.outputs.scan[1].points[1][1]" in str(info.value)


def test_non_finite_in_vda_action_parameter_refused() -> None:
    """An overflowing number (1e999 → inf) inside a VDA action parameter is refused."""
    raw = (b'{"headerId":1,"timestamp":"t","version":"2.1.0","manufacturer":"m",'
           b'"serialNumber":"s","actions":[{"actionId":"a","actionType":"x",'
           b'"blockingType":"NONE","actionParameters":[{"key":"k","value":[1e999]}]}]}')
    with pytest.raises(ProtocolError) as info:
        decode_vda(raw, "instantActions")
    assert info.value.reason == "not_finite"
    assert "$.actions[0].actionParameters[0].value[0]" in str(info.value)


def test_too_deep_nesting_refused() -> None:
    """Outputs nested beyond max_depth are refused; a higher limit lets them through."""
    payload = _step_done(_nested(40))
    with pytest.raises(ProtocolError) as info:
        decode_agent_event(payload)
    assert info.value.reason == "too_deep"
    done = decode_agent_event(payload, Limits(max_depth=64))
    assert isinstance(done, StepDone)


def test_msgpack_stack_exhaustion_refused() -> None:
    """Nesting deeper than msgpack's own stack is a ProtocolError, not a crash."""
    with pytest.raises(ProtocolError) as info:
        decode_agent_event(b"\x91" * 5000 + b"\x00")
    assert info.value.reason in ("too_deep", "malformed")


def test_too_deep_vda_json_refused() -> None:
    """Deeply nested JSON is refused, whether the parser or the depth check stops it."""
    for depth in (100, 30_000):
        with pytest.raises(ProtocolError) as info:
            decode_vda(b'{"x":' + b"[" * depth + b"]" * depth + b"}", "state")
        assert info.value.reason == "too_deep"


def test_long_strings_and_big_collections_refused() -> None:
    """Strings and collections over their limits are refused as too large."""
    limits = Limits(max_string_length=100, max_items=10)
    for outputs in ({"s": "x" * 101}, {"l": list(range(11))}, {str(i): i for i in range(11)}):
        with pytest.raises(ProtocolError) as info:
            decode_agent_event(_step_done(outputs), limits)
        assert info.value.reason == "too_large"


def test_vda_encode_applies_limits() -> None:
    """encode_vda refuses NaN and oversize messages before producing bytes."""
    message = {"headerId": 1, "timestamp": "t", "version": "2.1.0", "manufacturer": "m",
               "serialNumber": "s", "connectionState": "ONLINE"}
    assert encode_vda(message, "connection")
    with pytest.raises(ProtocolError) as info:
        encode_vda({**message, "headerId": math.nan}, "connection")
    assert info.value.reason == "not_finite"
    with pytest.raises(ProtocolError) as info:
        encode_vda(message, "connection", Limits(max_payload_bytes=50))
    assert info.value.reason == "payload_too_large"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ({1: "a"}, "schema"),
        ({"a": b"bytes"}, "schema"),
        ({"a": {1, 2}}, "schema"),
        ({"a": 2**64}, "schema"),
        ({"a": [math.nan]}, "not_finite"),
    ],
)
def test_check_tree_refusals(value: Any, reason: str) -> None:
    """check_tree refuses non-string keys, non-JSON values, huge ints and NaN."""
    with pytest.raises(ProtocolError) as info:
        check_tree(value)
    assert info.value.reason == reason


json_like = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=5),
    max_leaves=30,
)


@given(json_like)
def test_check_tree_accepts_plain_data(value: Any) -> None:
    """Finite, string-keyed JSON-like data within the limits passes check_tree."""
    check_tree(value)
