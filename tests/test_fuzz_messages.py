"""Fuzzing every inbound message type: VDA 5050 from its schemas, native messages, the
hub's REST bodies. Valid inputs are accepted and round-trip; mutated ones (wrong types,
NaN/Inf, huge strings, deep nesting, unknown fields, garbage) are refused with
``ProtocolError`` (a 422 ``ValidationError`` for REST bodies) and nothing else.

Random bytes, random msgpack/JSON and truncations through every decoder are in
tests/test_topics_codec.py and tests/test_topics_vda5050.py; the live HTTP API is fuzzed
by schemathesis in tests/test_hub_api_schema.py. This file adds what those do not cover.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from cloud_hub._api_bodies import (
    BatchIn,
    CheckpointIn,
    ConflictResolveIn,
    CoordinationIn,
    DependencyIn,
    RecoverIn,
    StateSyncIn,
    StopIn,
    WorkflowCreateIn,
    WorkflowUpdateIn,
)
from cloud_hub._bookings_model import LendIn, ReturnIn
from fuzz.schema_strategies import vda_message
from tests.test_topics_codec import KIND_DECODER, any_message
from topics import VDA_KINDS, Message, ProtocolError, VdaKind, decode_vda, encode, encode_vda

DATA = Path(__file__).parent / "data" / "vda5050"
SLOW = settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))

# --- VDA 5050: messages generated from the bundled 2.0.0 / 2.1.0 schemas --------------------


@SLOW
@given(vda_message())
def test_schema_generated_vda_messages_are_accepted_and_round_trip(
        case: tuple[VdaKind, dict[str, Any]]) -> None:
    """Any message valid against its version's schema decodes, and re-encodes to itself."""
    kind, message = case
    payload = json.dumps(message).encode()
    assert decode_vda(payload, kind) == message
    assert decode_vda(encode_vda(message, kind), kind) == message


def _spots(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a JSON value (dict keys and list indexes)."""
    found = [path] if path else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += _spots(child, (*path, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            found += _spots(child, (*path, i))
    return found


def _put(message: Any, path: tuple[Any, ...], value: Any) -> None:
    for step in path[:-1]:
        message = message[step]
    message[path[-1]] = value


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


BAD_VALUES = st.sampled_from([
    None, True, -1, 1e308, "x" * 20_000, [], {}, [[]], {"k": None}, "NaN", _nested(40),
])
"""Wrong types, a huge string, deep nesting: what a broken or hostile AGV might send."""


@SLOW
@given(vda_message(), st.data())
def test_mutated_vda_messages_are_refused_cleanly(
        case: tuple[VdaKind, dict[str, Any]], data: st.DataObject) -> None:
    """A valid message with one spot replaced by a bad value decodes or is a ProtocolError."""
    kind, message = case
    spots = _spots(message)
    mutated = copy.deepcopy(message)
    _put(mutated, data.draw(st.sampled_from(spots)), data.draw(BAD_VALUES))
    try:
        result = decode_vda(json.dumps(mutated).encode(), kind)
    except ProtocolError as exc:
        assert exc.reason and str(exc)
    else:
        assert result == mutated


@SLOW
@given(vda_message(), st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999"]),
       st.data())
def test_non_finite_numbers_in_vda_messages_are_refused(
        case: tuple[VdaKind, dict[str, Any]], literal: str, data: st.DataObject) -> None:
    """A NaN/Infinity literal or an overflowing number anywhere is refused as not finite."""
    kind, message = case
    mutated = copy.deepcopy(message)
    key = data.draw(st.sampled_from(sorted(mutated)))
    mutated[key] = "__HOLE__"
    payload = json.dumps(mutated).replace('"__HOLE__"', literal).encode()
    with pytest.raises(ProtocolError) as info:
        decode_vda(payload, kind)
    assert info.value.reason == "not_finite"


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(vda_message())
def test_unknown_vda_fields_are_tolerated(case: tuple[VdaKind, dict[str, Any]]) -> None:
    """Extra top-level fields pass (the schemas allow them; vendors add their own)."""
    kind, message = case
    message["vendorExtension"] = {"x": [1, 2]}
    assert decode_vda(json.dumps(message).encode(), kind) == message


@pytest.mark.parametrize("kind", VDA_KINDS)
@pytest.mark.parametrize(("payload", "reason"), [
    (b"[" * 100_000, "payload_too_large"),
    (b'{"a":' + b"[" * 2000 + b"]" * 2000 + b"}", "too_deep"),
    (b'{"a":' + b"[" * 30_000 + b"]" * 30_000 + b"}", "too_deep"),  # past Python's recursion
    (json.dumps({"version": "2.1.0", "s": "x" * 17_000}).encode(), "too_large"),
    (b"\xff\xfe{}", "malformed"),
])
def test_hostile_vda_payloads_are_refused(kind: VdaKind, payload: bytes, reason: str) -> None:
    """Oversized, absurdly nested, over-long or non-UTF-8 payloads are refused by reason."""
    with pytest.raises(ProtocolError) as info:
        decode_vda(payload, kind)
    assert info.value.reason == reason


def test_a_factsheet_listing_blocking_types_is_accepted() -> None:
    """A factsheet naming an action's blocking types (as the document says) is accepted —
    the bundled schemas are patched for it (topics/schemas/vda5050/README.md); a value
    outside NONE/SOFT/HARD is still refused."""
    message = json.loads((DATA / "factsheet.json").read_text("utf-8"))
    message["protocolFeatures"]["agvActions"] = [{
        "actionType": "pick", "actionScopes": ["NODE"], "blockingTypes": ["HARD"]}]
    assert decode_vda(json.dumps(message).encode(), "factsheet") == message
    message["protocolFeatures"]["agvActions"][0]["blockingTypes"] = ["SOMETIMES"]
    with pytest.raises(ProtocolError) as info:
        decode_vda(json.dumps(message).encode(), "factsheet")
    assert info.value.reason == "schema"


# --- native msgpack messages (strategies from tests/test_topics_codec.py) -------------------


def _body_of(message: Message) -> tuple[str, dict[str, Any]]:
    _, name, body = msgpack.unpackb(encode(message))
    return name, body


NATIVE_BAD = st.sampled_from([
    math.nan, math.inf, -math.inf, "x" * 20_000, _nested(40), b"\x00" * 3, {"k": math.nan},
    [math.inf], 2**70, -(2**70),
])
"""Values no field of any native message may hold, wherever they are put."""


@SLOW
@given(any_message, NATIVE_BAD, st.data())
def test_native_messages_with_a_hostile_value_are_refused(
        message: Message, bad: Any, data: st.DataObject) -> None:
    """Any field of any native message set to NaN/Inf, a huge string, deep nesting, raw
    bytes or a 70-bit integer is refused with ProtocolError, by its own topic's decoder."""
    name, body = _body_of(message)
    spots = _spots(body) or [("extra",)]
    mutated = copy.deepcopy(body)
    _put(mutated, data.draw(st.sampled_from(spots)), bad)
    try:
        payload = msgpack.packb([1, name, mutated], use_bin_type=True)
    except (OverflowError, ValueError):
        return  # msgpack itself cannot carry it: nothing reaches a decoder
    with pytest.raises(ProtocolError):
        KIND_DECODER[name](payload)


@SLOW
@given(any_message, st.text(min_size=1, max_size=12))
def test_native_messages_with_an_unknown_field_are_refused(
        message: Message, field: str) -> None:
    """An unknown top-level field is a schema refusal (the native wire is closed)."""
    name, body = _body_of(message)
    if field in body or field in type(message).model_fields:
        return
    payload = msgpack.packb([1, name, {**body, field: 1}], use_bin_type=True)
    with pytest.raises(ProtocolError) as info:
        KIND_DECODER[name](payload)
    assert info.value.reason in ("schema", "too_large")


# --- REST request bodies (the hub's pydantic models; a ValidationError is a 422) ------------

BODIES: list[type[BaseModel]] = [
    WorkflowCreateIn, WorkflowUpdateIn, DependencyIn, CoordinationIn, CheckpointIn, RecoverIn,
    ConflictResolveIn, StateSyncIn, StopIn, BatchIn, LendIn, ReturnIn,
]
CROSS_FIELD = {RecoverIn}
"""Bodies with rules between fields (a ``model_validator``) that their JSON schema cannot
state: a schema-valid body may still be a 422, naming the rule."""


@pytest.mark.parametrize("model", BODIES, ids=lambda m: m.__name__)
def test_schema_valid_rest_bodies_are_accepted_and_round_trip(model: type[BaseModel]) -> None:
    """A body valid against the OpenAPI schema is accepted and survives JSON unchanged."""
    from fuzz.schema_strategies import from_schema

    @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
    @given(from_schema(model.model_json_schema()))
    def check(body: dict[str, Any]) -> None:
        try:
            value = model.model_validate_json(json.dumps(body))
        except ValidationError as exc:
            assert model in CROSS_FIELD and exc.errors()[0]["type"] == "value_error", exc
            return
        assert model.model_validate_json(value.model_dump_json()) == value

    check()


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                max_size=4),
    max_leaves=12,
)


@pytest.mark.parametrize("model", BODIES, ids=lambda m: m.__name__)
def test_garbage_rest_bodies_give_validation_errors(model: type[BaseModel]) -> None:
    """Random JSON, NaN/Inf, huge strings and unknown fields give a ValidationError (422)
    and nothing else; never a value with NaN or an unknown field in it."""
    fields = sorted(model.model_fields)

    @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.dictionaries(st.sampled_from([*fields, "unknown"]), JSONISH | NATIVE_BAD,
                           max_size=len(fields) + 1) | JSONISH)
    def check(body: Any) -> None:
        try:
            value = model.model_validate(body)
        except ValidationError:
            return
        assert "unknown" not in body
        assert "NaN" not in value.model_dump_json() and "Infinity" not in \
            value.model_dump_json()

    check()
