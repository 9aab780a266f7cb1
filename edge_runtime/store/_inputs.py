"""The ``inputs`` column family: what the edge's core was given, in order (``--record-inputs``).

Each value is one msgpack array ``[tag, now, body, refused]``:

- ``"m"``: a native message (agent message, hub command, a VDA 5050 AGV's derived input);
  ``body`` is its envelope, the wire form: the payload as it came, else ``topics.encode``;
- ``"t"``: ``TimerFired``; ``body`` is the timer id;
- ``"r"``: ``Restarted``; ``body`` is nil;
- ``"b"``: a boot record (the edge opened its core): ``body`` is a map of what the core was
  made with (``BootRecord``); ``now`` is the time of the open.

``now`` is the time the shell handed ``Core.handle``; ``refused`` the reason the core
refused the input (it raised), or nil. Keys are 8-byte big-endian counters from 0.
``edge_runtime.replay`` reads them back through the core.
"""

from __future__ import annotations

import functools
import operator
import typing
from dataclasses import dataclass, field
from typing import Any

import msgpack

from edge_runtime.core import Input, Restarted, TimerFired
from edge_runtime.store._errors import StoreError
from topics import Message, ProtocolError, decode, encode

__all__ = [
    "BootRecord", "RecordedInput", "decode_input", "encode_boot", "encode_input", "refusal",
]

_MESSAGE_INPUTS: Any = functools.reduce(operator.or_, [
    cls for cls in typing.get_args(Input) if isinstance(cls, type) and issubclass(cls, Message)])
"""The native message classes among the core's inputs (a union, for ``topics.decode``)."""
_RESTARTED = Restarted()


@dataclass(frozen=True)
class BootRecord:
    """What an edge made its core with when it opened it: enough to make the same core again."""

    facility: str
    last_seq: int
    """Events in the store when the core was opened (the recording starts after them)."""
    config: dict[str, Any] = field(default_factory=dict)
    """The ``CoreConfig`` fields that are data (``EdgeConfig.extra``: strategies, windows…)."""
    templates: dict[str, str] = field(default_factory=dict)
    """The templates' source documents, by file name."""
    map_name: str | None = None
    """The facility map's file name (its suffix says JSON or YAML), if the edge had one."""
    map_text: str | None = None
    """The facility map's document."""


@dataclass(frozen=True)
class RecordedInput:
    """One record of the ``inputs`` family."""

    index: int
    now: float
    input: Input | None
    """The core input; ``None`` for a boot record."""
    boot: BootRecord | None = None
    refused: str | None = None
    """Why the core refused it (it raised), or ``None``."""


def refusal(exc: BaseException) -> str:
    """How a refused input is recorded (and compared on replay): the core's reason, or the
    error's class if it has none."""
    return str(getattr(exc, "reason", None) or type(exc).__name__)


def encode_input(inbound: Input, now: float, refused: str | None = None,
                 payload: bytes | None = None) -> bytes:
    """The ``inputs`` value of one core input handled at ``now``; ``payload``: a native
    message's envelope as it came off the wire, kept as is (not encoded again)."""
    body: str | bytes | None
    if isinstance(inbound, TimerFired):
        tag, body = "t", inbound.timer_id
    elif isinstance(inbound, Restarted):
        tag, body = "r", None
    else:
        tag, body = "m", payload if payload is not None else encode(inbound)
    return msgpack.packb([tag, now, body, refused], use_bin_type=True)


def encode_boot(boot: BootRecord, now: float) -> bytes:
    """The ``inputs`` value of a boot record."""
    body = {"facility": boot.facility, "last_seq": boot.last_seq, "config": boot.config,
            "templates": boot.templates, "map_name": boot.map_name, "map_text": boot.map_text}
    try:
        return msgpack.packb(["b", now, body, None], use_bin_type=True)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"the edge's core options cannot be recorded: {exc}") from None


def decode_input(index: int, raw: bytes) -> RecordedInput:
    """The record at ``index``; ``StoreError`` naming it if it cannot be read."""
    try:
        tag, now, body, refused = msgpack.unpackb(raw, raw=False, use_list=True)
    except Exception as exc:  # msgpack raises many types; all mean "not a record"
        raise StoreError(f"input record {index} is not readable: {exc}") from None
    if tag == "m":
        try:
            message = decode(body, _MESSAGE_INPUTS)
        except ProtocolError as exc:
            raise StoreError(f"input record {index}: {exc}") from None
        return RecordedInput(index, now, message, refused=refused)  # type: ignore[arg-type]
    if tag == "t":
        return RecordedInput(index, now, TimerFired(body), refused=refused)
    if tag == "r":
        return RecordedInput(index, now, _RESTARTED, refused=refused)
    if tag == "b":
        config = {k: tuple(v) if isinstance(v, list) else v for k, v in body["config"].items()}
        boot = BootRecord(body["facility"], body["last_seq"], config, body["templates"],
                          body["map_name"], body["map_text"])
        return RecordedInput(index, now, None, boot=boot)
    raise StoreError(
        f"input record {index} has the unknown tag {tag!r} (written by a newer Fleetflow?)"
    )
