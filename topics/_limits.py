"""Limits on what a decoder accepts, and the walk that enforces them on decoded values.

Both codecs (msgpack native, JSON VDA 5050) decode into plain Python values first, run
``check_tree`` over them, and only then hand them to pydantic or jsonschema: that way NaN,
infinities, absurd nesting and odd map keys are refused also inside free-form ``data`` /
``outputs`` dicts, which the schemas cannot see into.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from topics._errors import ProtocolError

__all__ = ["DEFAULT_LIMITS", "Limits", "check_size", "check_tree"]

_INT_MIN = -(2**63)
_INT_END = 2**64
"""msgpack carries int64 and uint64; anything wider cannot round-trip."""


@dataclass(frozen=True, slots=True)
class Limits:
    """What one message may contain at most. Frozen: share one instance freely."""

    max_payload_bytes: int = 64 * 1024
    """Encoded size, checked before parsing."""
    max_string_length: int = 16 * 1024
    """Characters in any one string (map keys included)."""
    max_items: int = 4096
    """Entries in any one list or map."""
    max_depth: int = 32
    """Nesting of lists and maps; the message body itself is depth 1."""

    def __post_init__(self) -> None:
        for name in ("max_payload_bytes", "max_string_length", "max_items", "max_depth"):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise ValueError(f"Limits.{name} must be a positive integer, not {value!r}")


DEFAULT_LIMITS = Limits()
"""64 KiB payloads, 16 Ki-character strings, 4096 items per collection, depth 32."""


def check_size(
    payload: bytes | bytearray, limits: Limits = DEFAULT_LIMITS, what: str = "message"
) -> None:
    """Refuse a payload over ``limits.max_payload_bytes`` (reason ``payload_too_large``)."""
    if len(payload) > limits.max_payload_bytes:
        raise ProtocolError(
            "payload_too_large",
            f"{what} is {len(payload)} bytes; at most {limits.max_payload_bytes} are allowed",
        )


class _Refusal(Exception):
    """Raised deep in the walk; each frame on the way out adds its key to ``path``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.path: list[str | int] = []


def check_tree(value: object, limits: Limits = DEFAULT_LIMITS, what: str = "message") -> None:
    """Refuse a decoded value that breaks ``limits`` or is not plain JSON-like data.

    Accepted: ``None``, ``bool``, 64-bit ``int``, finite ``float``, ``str``, and lists
    (or tuples) and string-keyed maps of these. The ``ProtocolError`` names the path, e.g.
    ``$.outputs.scan[2]``, and has reason ``not_finite``, ``too_deep``, ``too_large`` or
    ``schema``.
    """
    try:
        _walk(value, 1, limits)
    except _Refusal as refusal:
        raise ProtocolError(
            refusal.reason, f"{what}: {refusal.detail} at {_render(refusal.path)}"
        ) from None


def _render(path: list[str | int]) -> str:
    """``['outputs', 'scan', 2]`` (collected innermost first) → ``$.outputs.scan[2]``."""
    parts = ["$"]
    for key in reversed(path):
        parts.append(f"[{key}]" if isinstance(key, int) else f".{key}")
    return "".join(parts)


def _walk(value: object, depth: int, limits: Limits) -> None:
    # Exact type tests first: this runs on every decoded message, and `type(x) is` is the
    # cheapest dispatch Python has. Subclasses fall through to the isinstance branch.
    kind = type(value)
    if kind is str:
        if len(value) > limits.max_string_length:  # type: ignore[arg-type]
            raise _Refusal(
                "too_large",
                f"a string of {len(value)} characters is longer than "  # type: ignore[arg-type]
                f"{limits.max_string_length}",
            )
    elif kind is float:
        if not math.isfinite(value):  # type: ignore[arg-type]
            raise _Refusal("not_finite", f"{value!r} is not a finite number")
    elif kind is dict:
        _walk_map(value, depth, limits)  # type: ignore[arg-type]
    elif kind is list or kind is tuple:
        _walk_list(value, depth, limits)  # type: ignore[arg-type]
    elif kind is int:
        if not _INT_MIN <= value < _INT_END:  # type: ignore[operator]
            raise _Refusal("schema", "an integer does not fit in 64 bits")
    elif value is None or kind is bool:
        pass
    elif isinstance(value, str | float | int | dict | list | tuple):
        _walk(_plain(value), depth, limits)
    else:
        raise _Refusal("schema", f"a {kind.__name__} is not plain data")


def _plain(value: Any) -> object:
    """The builtin value of an instance of a builtin's subclass (a ``StrEnum`` member …)."""
    base: Any = next(
        b for b in (bool, str, int, float, dict, list, tuple) if isinstance(value, b)
    )
    return base(value)


def _walk_map(value: dict[object, object], depth: int, limits: Limits) -> None:
    if depth > limits.max_depth:
        raise _Refusal("too_deep", f"nesting is deeper than {limits.max_depth} levels")
    if len(value) > limits.max_items:
        raise _Refusal("too_large", f"a map of {len(value)} entries has more than "
                                    f"{limits.max_items}")
    max_string = limits.max_string_length
    isfinite = math.isfinite
    for key, item in value.items():
        if type(key) is not str:
            raise _Refusal("schema", f"map key {key!r} is not a string")
        if len(key) > max_string:
            raise _Refusal("too_large", f"a map key of {len(key)} characters is longer than "
                                        f"{limits.max_string_length}")
        # Flat scalars are the common case (a state message is all of them): test the
        # cheap ones inline instead of paying a call each.
        kind = type(item)
        if (
            item is None
            or kind is bool
            or (kind is str and len(item) <= max_string)  # type: ignore[arg-type]
            or (kind is float and isfinite(item))  # type: ignore[arg-type]
        ):
            continue
        try:
            _walk(item, depth + 1, limits)
        except _Refusal as refusal:
            refusal.path.append(key)
            raise


def _walk_list(value: list[object] | tuple[object, ...], depth: int, limits: Limits) -> None:
    if depth > limits.max_depth:
        raise _Refusal("too_deep", f"nesting is deeper than {limits.max_depth} levels")
    if len(value) > limits.max_items:
        raise _Refusal("too_large", f"a list of {len(value)} items has more than "
                                    f"{limits.max_items}")
    for index, item in enumerate(value):
        try:
            _walk(item, depth + 1, limits)
        except _Refusal as refusal:
            refusal.path.append(index)
            raise
