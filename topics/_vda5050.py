"""VDA 5050 2.x messages as JSON, checked against the official 2.1.0 JSON schemas.

Messages stay plain dicts (the schemas are the contract, and the VDA 5050 adapter maps
them field by field). 2.0.x messages validate against the 2.1 schemas too: 2.1 mostly added
optional fields. The schemas ship in ``topics/schemas/vda5050/`` under their own licence.

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

__all__ = ["VDA_SCHEMA_VERSION", "decode_vda", "encode_vda", "vda_schema", "vda_version_of"]

VDA_SCHEMA_VERSION = (2, 1, 0)
"""The version of the bundled schemas."""

_VERSION = re.compile(r"([0-9]{1,4})\.([0-9]{1,4})(?:\.([0-9]{1,4}))?")


@functools.cache
def vda_schema(kind: VdaKind) -> dict[str, Any]:
    """The bundled JSON schema of one VDA 5050 message kind."""
    if kind not in VDA_KINDS:
        raise ProtocolError("unknown_type", f"unknown VDA 5050 message kind {kind!r}")
    text = resources.files("topics").joinpath(f"schemas/vda5050/{kind}.schema").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@functools.cache
def _validator(kind: VdaKind) -> Draft202012Validator:
    """Compiled once per kind: building a validator costs far more than running it."""
    schema = vda_schema(kind)
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
    the schema (reason ``schema``, naming the JSON path).
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
    validator = _validator(kind)
    if validator.is_valid(message):
        return
    error = best_match(validator.iter_errors(message))
    text = error.message if len(error.message) <= 200 else error.message[:197] + "..."
    raise ProtocolError("schema", f"{what} at {error.json_path}: {text}")
