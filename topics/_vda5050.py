"""VDA 5050 2.x messages as JSON, checked against the official JSON schemas of their version.

Messages stay plain dicts (the schemas are the contract, and the VDA 5050 adapter maps
them field by field). Both schema releases ship in ``topics/schemas/vda5050/{2.0.0,2.1.0}/``
under their own licence: a message whose ``version`` is 2.0.x is checked against the 2.0.0
schemas, anything else (2.1.x, a later 2.x minor, or a version too broken to read, which
``decode_vda`` refuses before any schema) against the 2.1.0 ones.

Instant actions: the 2.0.0 and 2.1.0 documents and schemas name the array ``actions``; an
early 2.0 draft schema, which fielded 2.0 AGVs follow, named it ``instantActions``.
Neither schema forbids extra properties, so a message may carry both. The codec accepts
either key, or both with equal contents (validating the array under ``actions``), and
refuses both with different contents; ``vda_instant_actions`` reads the array from
whichever key holds it.

``format`` keywords (``date-time``) are annotations only, as Draft 2020-12 defaults to:
vehicles in the field send timestamps in many ISO 8601 shapes, and refusing them would
lose state for no safety gain.
"""

from __future__ import annotations

import functools
import json
import re
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from topics._errors import ProtocolError
from topics._limits import DEFAULT_LIMITS, Limits, check_size, check_tree
from topics._names import VDA_KINDS, VdaKind

__all__ = [
    "INSTANT_ACTION_KEYS",
    "VDA_SCHEMA_VERSION",
    "VDA_SCHEMA_VERSIONS",
    "decode_vda",
    "encode_vda",
    "vda_instant_actions",
    "vda_schema",
    "vda_schema_version_for",
    "vda_version_of",
]

VDA_SCHEMA_VERSIONS: tuple[tuple[int, int, int], ...] = ((2, 0, 0), (2, 1, 0))
"""The versions of the bundled schemas, oldest first."""

VDA_SCHEMA_VERSION = VDA_SCHEMA_VERSIONS[-1]
"""The newest bundled schema version (2.1.0)."""

INSTANT_ACTION_KEYS = ("actions", "instantActions")
"""Where an ``instantActions`` message may hold its array: the document's name first, then
the early 2.0 draft schema's."""

_VERSION = re.compile(r"([0-9]{1,4})\.([0-9]{1,4})(?:\.([0-9]{1,4}))?")


@functools.cache
def vda_schema(kind: VdaKind, version: tuple[int, int, int] = VDA_SCHEMA_VERSION
               ) -> dict[str, Any]:
    """The bundled JSON schema of one VDA 5050 message kind, in one bundled ``version``."""
    if kind not in VDA_KINDS:
        raise ProtocolError("unknown_type", f"unknown VDA 5050 message kind {kind!r}")
    if version not in VDA_SCHEMA_VERSIONS:
        raise ProtocolError("version", f"no bundled VDA 5050 schemas for {version!r}")
    folder = ".".join(map(str, version))
    path = f"schemas/vda5050/{folder}/{kind}.schema"
    schema: dict[str, Any] = json.loads(resources.files("topics").joinpath(path).read_text("utf-8"))
    return schema


@functools.cache
def _validator(kind: VdaKind, version: tuple[int, int, int]) -> Draft202012Validator:
    """Compiled once per kind and version: building a validator costs far more than running
    it."""
    schema = vda_schema(kind, version)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def vda_version_of(message: dict[str, Any]) -> tuple[int, int, int]:
    """``(major, minor, patch)`` of a message's ``version`` field ("2.1.0"; "2.0" reads as
    2.0.0); ``ProtocolError`` with reason ``version`` if it is missing or unreadable."""
    version = message.get("version") if isinstance(message, dict) else None
    if not isinstance(version, str):
        raise ProtocolError("version", f"VDA 5050 version {version!r} is not a string")
    match = _VERSION.fullmatch(version)
    if match is None:
        raise ProtocolError(
            "version", f"VDA 5050 version {version[:32]!r} is not [major].[minor].[patch]"
        )
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch or 0)


def vda_schema_version_for(message: dict[str, Any]) -> tuple[int, int, int]:
    """The bundled schema version a message is checked against: 2.0.0 for a ``version`` of
    2.0.x, else 2.1.0 (minor versions are backward compatible; ``decode_vda`` refuses an
    unreadable version before it gets here)."""
    try:
        major, minor, _ = vda_version_of(message)
    except ProtocolError:
        return VDA_SCHEMA_VERSION
    return (2, 0, 0) if (major, minor) == (2, 0) else VDA_SCHEMA_VERSION


def vda_instant_actions(message: dict[str, Any]) -> list[Any]:
    """The instant-action array of an ``instantActions`` message, under ``actions`` or
    ``instantActions`` (the early 2.0 draft's name); ``ProtocolError`` (reason ``schema``)
    if neither holds an array, or both are present with different contents."""
    present = [key for key in INSTANT_ACTION_KEYS if key in message]
    if not present:
        raise ProtocolError("schema", "VDA 5050 instantActions has no 'actions' array (nor "
                                      "'instantActions', its early 2.0 draft name)")
    if len(present) == 2 and message["actions"] != message["instantActions"]:
        raise ProtocolError("schema", "VDA 5050 instantActions carries 'actions' and "
                                      "'instantActions' with different contents; which to "
                                      "perform is ambiguous")
    actions = message[present[0]]
    if not isinstance(actions, list):
        raise ProtocolError("schema", f"VDA 5050 instantActions at $.{present[0]}: "
                                      f"{type(actions).__name__} is not an array")
    return actions


def encode_vda(message: dict[str, Any], kind: VdaKind, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """Validate ``message`` as a VDA 5050 ``kind`` and return it as compact UTF-8 JSON."""
    what = f"VDA 5050 {kind}"
    if not isinstance(message, dict):
        raise ProtocolError("malformed", f"{what} must be a JSON object (a dict)")
    check_tree(message, limits, what)
    _check_schema(message, kind, what)
    try:
        payload = json.dumps(
            message, ensure_ascii=False, allow_nan=False, separators=(",", ":")
        ).encode("utf-8")
    except ValueError as exc:  # a lone surrogate in a string cannot be UTF-8
        raise ProtocolError("malformed", f"{what} does not encode: {exc}") from None
    check_size(payload, limits, what)
    return payload


def decode_vda(
    payload: bytes, kind: VdaKind, limits: Limits = DEFAULT_LIMITS, major: int = 2
) -> dict[str, Any]:
    """Parse and validate a VDA 5050 ``kind`` payload; any failure is a ``ProtocolError``.

    Order: size, UTF-8, JSON (``NaN``/``Infinity`` literals refused), ``check_tree``
    (overflowing numbers such as ``1e999`` are refused there as not finite), the
    ``version`` major (reason ``version``; a missing version is left to the schema), then
    the schema of the message's version (reason ``schema``, naming the JSON path). An
    ``instantActions`` message may hold its array under ``actions`` or ``instantActions``
    (see the module docstring); it is returned as received, so read the array with
    ``vda_instant_actions``.
    """
    what = f"VDA 5050 {kind}"
    if kind not in VDA_KINDS:
        raise ProtocolError("unknown_type", f"unknown VDA 5050 message kind {kind!r}")
    if not isinstance(payload, bytes | bytearray):
        raise ProtocolError("malformed", f"payload must be bytes, not {type(payload).__name__}")
    check_size(payload, limits, what)
    message = _parse(payload, what)
    if not isinstance(message, dict):
        raise ProtocolError("malformed", f"{what} is not a JSON object")
    check_tree(message, limits, what)
    if "version" in message:
        got = vda_version_of(message)
        if got[0] != major:
            raise ProtocolError(
                "version",
                f"{what} has version {message['version']!r}; this endpoint speaks {major}.x",
            )
    _check_schema(message, kind, what)
    return message


def _parse(payload: bytes | bytearray, what: str) -> Any:
    try:
        text = payload.decode("utf-8")  # VDA 5050 §6.1: UTF-8; json.loads would guess UTF-16
        return json.loads(text, parse_constant=_refuse_constant)
    except ProtocolError:
        raise
    except RecursionError:
        raise ProtocolError("too_deep", f"{what} nests too deeply to parse") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, int digits limit
        raise ProtocolError("malformed", f"{what} is not JSON: {str(exc)[:160]}") from None


def _refuse_constant(name: str) -> Any:
    raise ProtocolError("not_finite", f"JSON literal {name} is not a finite number")


def _check_schema(message: dict[str, Any], kind: VdaKind, what: str) -> None:
    alias = kind == "instantActions" and "actions" not in message
    if kind == "instantActions":
        actions = vda_instant_actions(message)  # one key, or both agreeing
        if alias:  # the early 2.0 draft's key alone: validate its array where the schema has it
            message = {**message, "actions": actions}
    validator = _validator(kind, vda_schema_version_for(message))
    if validator.is_valid(message):
        return
    error = best_match(validator.iter_errors(message))
    path = error.json_path
    if alias and (path == "$.actions" or path.startswith(("$.actions.", "$.actions["))):
        path = "$.instantActions" + path[len("$.actions"):]
    text = error.message if len(error.message) <= 200 else error.message[:197] + "..."
    raise ProtocolError("schema", f"{what} at {path}: {text}")
