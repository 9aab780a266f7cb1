"""The VDA 5050 JSON codec: spec-shaped examples, mutations, round-trips and fuzzing."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from topics import (
    VDA_KINDS,
    VDA_SCHEMA_VERSIONS,
    ProtocolError,
    VdaKind,
    decode_vda,
    encode_vda,
    vda_instant_actions,
    vda_schema,
    vda_schema_version_for,
    vda_version_of,
)

DATA = Path(__file__).parent / "data" / "vda5050"


def fixture(kind: str) -> dict[str, Any]:
    """A fresh copy of the spec-shaped example of ``kind``."""
    loaded: dict[str, Any] = json.loads((DATA / f"{kind}.json").read_text("utf-8"))
    return loaded


def raw(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode()


def refused(message: dict[str, Any] | bytes, kind: VdaKind) -> ProtocolError:
    payload = message if isinstance(message, bytes) else raw(message)
    with pytest.raises(ProtocolError) as info:
        decode_vda(payload, kind)
    return info.value


@pytest.mark.parametrize("kind", VDA_KINDS)
def test_examples_validate(kind: VdaKind) -> None:
    """Each spec-shaped example decodes to exactly what its JSON says."""
    message = fixture(kind)
    assert decode_vda((DATA / f"{kind}.json").read_bytes(), kind) == message


@pytest.mark.parametrize("kind", VDA_KINDS)
def test_examples_round_trip(kind: VdaKind) -> None:
    """encode_vda gives compact JSON that decodes back to the same message."""
    message = fixture(kind)
    payload = encode_vda(message, kind)
    assert b": " not in payload and b"\n" not in payload
    assert decode_vda(payload, kind) == message


@pytest.mark.parametrize("kind", VDA_KINDS)
def test_version_2_0_accepted(kind: VdaKind) -> None:
    """A spec-shaped message with version 2.0.0 passes the 2.0.0 schemas."""
    message = {**fixture(kind), "version": "2.0.0"}
    assert decode_vda(raw(message), kind) == message


@pytest.mark.parametrize(
    ("kind", "field"),
    [(k, f) for k in VDA_KINDS for f in vda_schema(k).get("required", []) if f != "version"],
)
def test_missing_required_field_refused(kind: VdaKind, field: str) -> None:
    """Dropping any required top-level field is a schema refusal naming the field."""
    message = fixture(kind)
    del message[field]
    error = refused(message, kind)
    assert error.reason == "schema"
    assert repr(field) in str(error)


def test_missing_nested_required_field_names_path() -> None:
    """A missing field deep in an order names its JSON path."""
    message = fixture("order")
    del message["nodes"][1]["actions"][0]["blockingType"]
    error = refused(message, "order")
    assert error.reason == "schema"
    assert "$.nodes[1].actions[0]" in str(error) and "'blockingType'" in str(error)


def _set(message: dict[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    target: Any = message
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return message


@pytest.mark.parametrize(
    ("kind", "path", "value", "json_path"),
    [
        ("connection", ("connectionState",), "MAYBE", "$.connectionState"),
        ("order", ("nodes", 1, "actions", 0, "blockingType"), "MEDIUM",
         "$.nodes[1].actions[0].blockingType"),
        ("state", ("operatingMode",), "AUTOPILOT", "$.operatingMode"),
        ("state", ("actionStates", 0, "actionStatus"), "DONE", "$.actionStates[0].actionStatus"),
        ("state", ("safetyState", "eStop"), "PANIC", "$.safetyState.eStop"),
        ("factsheet", ("typeSpecification", "agvKinematic"), "HOVER",
         "$.typeSpecification.agvKinematic"),
        ("instantActions", ("actions", 0, "blockingType"), "hard",
         "$.actions[0].blockingType"),
    ],
)
def test_wrong_enum_refused(
    kind: VdaKind, path: tuple[str | int, ...], value: str, json_path: str
) -> None:
    """A value outside an enum is a schema refusal naming its JSON path."""
    error = refused(_set(fixture(kind), path, value), kind)
    assert error.reason == "schema"
    assert json_path in str(error)


@pytest.mark.parametrize(
    ("kind", "path", "value"),
    [
        ("connection", ("headerId",), "3"),
        ("state", ("driving",), "no"),
        ("state", ("batteryState", "batteryCharge"), "76.5"),
        ("order", ("orderUpdateId",), 1.5),
        ("order", ("nodes",), {}),
        ("visualization", ("agvPosition", "x"), None),
        ("factsheet", ("physicalParameters", "speedMax"), [1.5]),
        ("instantActions", ("actions",), "startPause"),
    ],
)
def test_wrong_type_refused(kind: VdaKind, path: tuple[str | int, ...], value: Any) -> None:
    """A value of the wrong JSON type is a schema refusal."""
    error = refused(_set(fixture(kind), path, value), kind)
    assert error.reason == "schema"


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
@pytest.mark.parametrize("kind", ["state", "visualization"])
def test_nan_literals_refused(literal: bytes, kind: VdaKind) -> None:
    """NaN and Infinity literals are refused as not finite."""
    payload = raw(fixture(kind)).replace(b'"x": 14.24', b'"x": ' + literal)
    assert literal in payload
    assert refused(payload, kind).reason == "not_finite"


@pytest.mark.parametrize("version", ["1.1.0", "3.0.0", "0.9"])
@pytest.mark.parametrize("kind", VDA_KINDS)
def test_wrong_major_refused(version: str, kind: VdaKind) -> None:
    """A message of another major version is refused with reason ``version``."""
    error = refused({**fixture(kind), "version": version}, kind)
    assert error.reason == "version"
    assert version in str(error)


def test_major_is_a_parameter() -> None:
    """decode_vda(major=1) accepts 1.x and refuses 2.x (by version, before the schema)."""
    message = {**fixture("connection"), "version": "1.1.0"}
    assert decode_vda(raw(message), "connection", major=1) == message
    with pytest.raises(ProtocolError) as info:
        decode_vda(raw(fixture("connection")), "connection", major=1)
    assert info.value.reason == "version"


@pytest.mark.parametrize("version", ["two", "2", "2.1.0-rc1", "", 2.1])
def test_unreadable_version_refused(version: Any) -> None:
    """A version that is not [major].[minor].[patch] is refused with reason ``version``."""
    assert refused({**fixture("state"), "version": version}, "state").reason == "version"


def test_vda_version_of() -> None:
    """vda_version_of reads major, minor and patch; a two-part version has patch 0."""
    assert vda_version_of({"version": "2.1.0"}) == (2, 1, 0)
    assert vda_version_of({"version": "2.0"}) == (2, 0, 0)
    with pytest.raises(ProtocolError) as info:
        vda_version_of({})
    assert info.value.reason == "version"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "malformed"),
        (b"[]", "malformed"),
        (b'"state"', "malformed"),
        (b"{\"headerId\": 1,}", "malformed"),
        (b"\xff\xfe{}", "malformed"),
        ('{"serialNumber": "é"}'.encode("utf-16"), "malformed"),
        (b"{}" + b" " * (64 * 1024), "payload_too_large"),
    ],
)
def test_bad_payloads_refused(payload: bytes, reason: str) -> None:
    """Empty, non-object, broken, non-UTF-8 and oversize payloads are refused."""
    assert refused(payload, "state").reason == reason


def test_unknown_kind_refused() -> None:
    """A kind that VDA 5050 does not define is refused."""
    with pytest.raises(ProtocolError) as info:
        decode_vda(b"{}", "telemetry")  # type: ignore[arg-type]
    assert info.value.reason == "unknown_type"


def test_encode_refuses_invalid_messages() -> None:
    """encode_vda validates before encoding and refuses what a receiver would refuse."""
    message = fixture("connection")
    del message["connectionState"]
    with pytest.raises(ProtocolError) as info:
        encode_vda(message, "connection")
    assert info.value.reason == "schema"
    with pytest.raises(ProtocolError) as info:
        encode_vda([1], "connection")  # type: ignore[arg-type]
    assert info.value.reason == "malformed"


def test_validators_are_compiled_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Decoding many messages checks each kind's schema once: its validator is kept."""
    checked: list[object] = []
    check = Draft202012Validator.check_schema

    def counted(cls: object, schema: object, **kw: Any) -> None:
        checked.append(schema)
        check(schema, **kw)

    monkeypatch.setattr(Draft202012Validator, "check_schema", classmethod(counted))
    payloads = {kind: raw(fixture(kind)) for kind in VDA_KINDS}
    for _ in range(20):
        for kind, payload in payloads.items():
            decode_vda(payload, kind)
    assert len(checked) <= len(VDA_KINDS)


# --- versions: 2.0 traffic against the 2.0.0 schemas, 2.1 against the 2.1.0 ones ----------


@pytest.mark.parametrize(("version", "schema"), [
    ("2.0.0", (2, 0, 0)), ("2.0.3", (2, 0, 0)), ("2.0", (2, 0, 0)), ("2.1.0", (2, 1, 0)),
    ("2.3.1", (2, 1, 0)), ("two", (2, 1, 0)),
])
def test_the_schema_version_follows_the_message_version(
        version: str, schema: tuple[int, int, int]) -> None:
    """2.0.x is checked against the 2.0.0 schemas, everything else against 2.1.0."""
    assert vda_schema_version_for({"version": version}) == schema


def test_a_2_0_factsheet_without_header_is_refused_but_a_2_1_one_passes() -> None:
    """The 2.0.0 factsheet schema requires headerId; the 2.1.0 one does not."""
    message = fixture("factsheet")
    del message["headerId"]
    assert decode_vda(raw(message), "factsheet") == message
    error = refused({**message, "version": "2.0.0"}, "factsheet")
    assert error.reason == "schema" and "'headerId'" in str(error)


def test_a_2_0_order_is_held_to_the_2_0_ranges() -> None:
    """allowedDeviationTheta below 0 is refused in 2.0.0 and allowed down to -pi in 2.1.0."""
    message = fixture("order")
    message["nodes"][0]["nodePosition"]["allowedDeviationTheta"] = -0.5
    assert decode_vda(raw(message), "order") == message
    error = refused({**message, "version": "2.0.0"}, "order")
    assert "$.nodes[0].nodePosition.allowedDeviationTheta" in str(error)


@pytest.mark.parametrize("version", VDA_SCHEMA_VERSIONS)
def test_bundled_schemas_name_the_action_type_as_the_document_does(
        version: tuple[int, int, int]) -> None:
    """Every bundled schema is valid Draft 2020-12; actions require ``actionType``."""
    for kind in VDA_KINDS:
        Draft202012Validator.check_schema(vda_schema(kind, version))
    item = vda_schema("instantActions", version)["properties"]["actions"]["items"]
    assert "actionType" in item["required"] and "actionName" not in item["properties"]


# --- instant actions under `actions` (the document) or `instantActions` (early 2.0 draft) --


def _instant(version: str = "2.0.0", **arrays: Any) -> dict[str, Any]:
    message = {k: v for k, v in fixture("instantActions").items() if k != "actions"}
    return {**message, "version": version, **arrays}


@pytest.mark.parametrize("version", ["2.0.0", "2.1.0"])
@pytest.mark.parametrize("keys", [("actions",), ("instantActions",),
                                  ("actions", "instantActions")])
def test_instant_actions_are_read_under_either_key(version: str, keys: tuple[str, ...]) -> None:
    """One key, or both with equal arrays, decodes and encodes; the message stays as sent."""
    actions = fixture("instantActions")["actions"]
    message = _instant(version, **{k: copy.deepcopy(actions) for k in keys})
    assert decode_vda(encode_vda(message, "instantActions"), "instantActions") == message
    assert vda_instant_actions(message) == actions


def test_instant_actions_under_both_keys_must_agree() -> None:
    """``actions`` and ``instantActions`` with different arrays are refused, naming both."""
    actions = fixture("instantActions")["actions"]
    message = _instant(actions=actions, instantActions=actions[:1])
    with pytest.raises(ProtocolError) as info:
        encode_vda(message, "instantActions")
    for error in (refused(message, "instantActions"), info.value):
        assert error.reason == "schema"
        assert "'actions'" in str(error) and "'instantActions'" in str(error)


def test_an_instant_action_under_the_draft_key_is_validated_there() -> None:
    """A bad action under ``instantActions`` is refused with that key's JSON path."""
    actions = fixture("instantActions")["actions"]
    del actions[1]["blockingType"]
    error = refused(_instant(instantActions=actions), "instantActions")
    assert error.reason == "schema" and "$.instantActions[1]" in str(error)


def test_an_instant_actions_message_without_either_key_is_refused() -> None:
    """No array at all is a schema refusal naming ``actions``."""
    error = refused(_instant(), "instantActions")
    assert error.reason == "schema" and "'actions'" in str(error)
    with pytest.raises(ProtocolError):
        vda_instant_actions(_instant(instantActions={"actionId": "x"}))


# --- hypothesis: round-trips of generated messages ----------------------------------------

name = st.text(min_size=1, max_size=40)
number = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e9, max_value=1e9)
header = st.fixed_dictionaries({
    "headerId": st.integers(min_value=0, max_value=2**32),
    "timestamp": st.just("2024-05-14T09:22:04.00Z"),
    "version": st.sampled_from(["2.0.0", "2.1.0", "2.1.3"]),
    "manufacturer": name,
    "serialNumber": name,
})
param_value = st.recursive(
    st.booleans() | number | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=6,
)
action = st.fixed_dictionaries(
    {"actionType": name, "actionId": name,
     "blockingType": st.sampled_from(["NONE", "SOFT", "HARD"])},
    optional={"actionDescription": st.text(max_size=50),
              "actionParameters": st.lists(st.fixed_dictionaries(
                  {"key": name, "value": param_value}), max_size=4)},
)


@st.composite
def vda_messages(draw: st.DrawFn) -> tuple[VdaKind, dict[str, Any]]:
    """Valid messages: generated connection/instantActions/visualization, or a spec
    example with a fresh header and random positions and ids."""
    kind: VdaKind = draw(st.sampled_from(VDA_KINDS))
    head = draw(header)
    if kind == "connection":
        state = draw(st.sampled_from(["ONLINE", "OFFLINE", "CONNECTIONBROKEN"]))
        return kind, {**head, "connectionState": state}
    if kind == "instantActions":
        actions = draw(st.lists(action, max_size=5))
        keys = draw(st.sampled_from([("actions",), ("instantActions",),
                                     ("actions", "instantActions")]))
        return kind, {**head, **{k: copy.deepcopy(actions) for k in keys}}
    if kind == "visualization":
        position = {"x": draw(number), "y": draw(number), "theta": draw(number),
                    "mapId": draw(name), "positionInitialized": draw(st.booleans())}
        return kind, {**head, "agvPosition": position,
                      "velocity": {"vx": draw(number), "vy": draw(number)}}
    message = {**fixture(kind), **head}
    if kind == "order":
        message["orderId"] = draw(name)
        for node in message["nodes"]:
            node["nodePosition"]["x"] = draw(number)
            node["actions"] = draw(st.lists(action, max_size=2))
    elif kind == "state":
        message["lastNodeId"] = draw(name)
        message["batteryState"]["batteryCharge"] = draw(st.floats(0, 100))
        message["agvPosition"]["y"] = draw(number)
    return kind, message


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(vda_messages())
def test_generated_messages_round_trip(case: tuple[VdaKind, dict[str, Any]]) -> None:
    """Any valid VDA message survives encode_vda → decode_vda unchanged."""
    kind, message = case
    assert decode_vda(encode_vda(message, kind), kind) == message


# --- fuzzing: anything in, dict or ProtocolError out --------------------------------------


def _dict_or_protocol_error(payload: bytes) -> None:
    for kind in VDA_KINDS:
        try:
            result = decode_vda(payload, kind)
        except ProtocolError as exc:
            assert exc.reason and str(exc)
        else:
            assert isinstance(result, dict)


@settings(max_examples=200)
@given(st.binary(max_size=200))
def test_random_bytes_give_protocol_errors(payload: bytes) -> None:
    """Random bytes fed to decode_vda for every kind give ProtocolError, nothing else."""
    _dict_or_protocol_error(payload)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                max_size=4),
    max_leaves=15,
)


@settings(max_examples=200)
@given(json_values)
def test_random_json_gives_protocol_errors(value: Any) -> None:
    """Random JSON (NaN and huge numbers included) gives a dict or ProtocolError."""
    _dict_or_protocol_error(json.dumps(value).encode())


@st.composite
def mutated_examples(draw: st.DrawFn) -> bytes:
    """A spec example with one random spot replaced by random JSON."""
    message = copy.deepcopy(fixture(draw(st.sampled_from(VDA_KINDS))))
    target: Any = message
    while True:
        keys = list(target) if isinstance(target, dict) else list(range(len(target)))
        if not keys:
            break
        key = draw(st.sampled_from(keys))
        child = target[key]
        if isinstance(child, dict | list) and child and draw(st.booleans()):
            target = child
            continue
        target[key] = draw(json_values)
        break
    return json.dumps(message).encode()


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_examples())
def test_mutated_examples_give_protocol_errors(payload: bytes) -> None:
    """Spec examples with a random spot replaced give a dict or ProtocolError."""
    _dict_or_protocol_error(payload)
