"""The native wire format: msgpack ``[version, type, body]`` envelopes around the models.

``encode`` turns a model into bytes; ``decode`` (and one helper per topic kind) turns any
bytes into the expected model or raises ``ProtocolError``, never anything else. Decoding
runs in four steps, cheapest first: size, msgpack (with length caps), ``check_tree`` (depth,
NaN/Inf, map keys), then pydantic in strict mode (no ``"1"`` → ``1`` coercion on the wire).

``edge/events`` payloads have a positional body and a fast path of their own
(``_edge_events``), because an edge makes one per event and keeps exactly those bytes in its
store; ``check_edge_event`` applies the model's and ``encode``'s rules to an event without
building a model.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar, cast, overload

import msgpack
from pydantic import ValidationError

from topics._edge_events import (
    EDGE_EVENT_FIELDS,
    EventFields,
    edge_event_body,
    pack_edge_events,
    unpack_edge_event,
)
from topics._errors import ProtocolError
from topics._limits import DEFAULT_LIMITS, Limits, check_size, check_tree
from topics._links import VdaLinks
from topics._models import (
    AgentCommand,
    AgentConn,
    AgentEvent,
    AgentState,
    Assign,
    Award,
    Ballot,
    Bid,
    Cancel,
    Cfp,
    CommandAck,
    EdgeEvent,
    EdgeStatus,
    ErrorReport,
    EventAck,
    Follow,
    HubCommand,
    IdentifierError,
    Message,
    Pause,
    Resume,
    StepAccepted,
    StepDone,
    StepFailed,
    StepProgress,
    StepStarted,
    SubStepAssigned,
    SubStepDone,
    SyncArrival,
    SyncRelease,
    Vote,
)
from topics._names import check_identifier

__all__ = [
    "EDGE_EVENT_FIELDS",
    "ENVELOPE_VERSION",
    "MESSAGE_TYPES",
    "EventFields",
    "check_edge_event",
    "decode",
    "decode_agent_command",
    "decode_agent_conn",
    "decode_agent_event",
    "decode_agent_state",
    "decode_edge_event",
    "decode_edge_status",
    "decode_error_report",
    "decode_hub_command",
    "decode_vda_links",
    "encode",
    "pack_edge_events",
    "unpack_edge_event",
    "validation_problem",
]

ENVELOPE_VERSION = 1
"""First element of every envelope; a reader refuses others with reason ``version``."""

M = TypeVar("M", bound=Message)
_Table = Mapping[str, type[Message]]


def _type_name(cls: type[Message]) -> str:
    return cast(str, cls.model_fields["type"].default)


def _table(*classes: type[Message]) -> _Table:
    return types.MappingProxyType({_type_name(cls): cls for cls in classes})


MESSAGE_TYPES: _Table = _table(
    AgentConn, AgentState,
    Bid, StepAccepted, StepStarted, StepProgress, StepDone, StepFailed, SyncArrival, CommandAck,
    Assign, Cfp, Award, Pause, Resume, Cancel, SyncRelease, EventAck,
    Vote, SubStepAssigned, SubStepDone, Ballot, Follow,
    EdgeEvent, HubCommand, EdgeStatus, ErrorReport, VdaLinks,
)
"""Every native message class by its ``type`` name (the envelope's second element)."""

_CLASS_NAMES = {cls: name for name, cls in MESSAGE_TYPES.items()}


def encode(message: Message, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """The envelope ``[1, type, body]`` of ``message`` as msgpack bytes.

    The body is checked like an inbound one (free-form ``data`` may hold anything a model
    accepts as ``Any``), so a sender learns at once what a receiver would refuse.
    """
    name = _CLASS_NAMES.get(type(message))
    if name is None:
        raise ProtocolError("unknown_type", f"{type(message).__name__} is not a native message")
    body = message.model_dump(exclude={"type"})
    check_tree(body, limits, f"{name} message")
    try:
        if type(message) is EdgeEvent:  # its body is an array: the one encoder of edge/events
            payload = pack_edge_events((message,), message.facility, limits)[0]
        else:
            payload = msgpack.packb([ENVELOPE_VERSION, name, body], use_bin_type=True)
    except (ValueError, TypeError, OverflowError) as exc:  # lone surrogates in a str, …
        raise ProtocolError("malformed", f"{name} message does not encode: {exc}") from None
    check_size(payload, limits, f"{name} message")
    return payload


@overload
def decode(payload: bytes, expected: type[M], limits: Limits = ...) -> M: ...
@overload
def decode(payload: bytes, expected: object, limits: Limits = ...) -> Message: ...
def decode(payload: bytes, expected: object, limits: Limits = DEFAULT_LIMITS) -> Message:
    """Decode ``payload`` into ``expected`` (a message class or a union such as
    ``AgentEvent``), or raise ``ProtocolError``."""
    return _decode(payload, _table_of(expected), limits)


def _table_of(expected: object) -> _Table:
    """The classes a type expression allows: ``AgentState``, ``Bid | StepDone``, ``AgentEvent``."""
    if typing.get_origin(expected) is typing.Annotated:
        expected = typing.get_args(expected)[0]
    if typing.get_origin(expected) in (typing.Union, types.UnionType):
        classes = typing.get_args(expected)
    else:
        classes = (expected,)
    for cls in classes:
        if cls not in _CLASS_NAMES:
            raise TypeError(f"{cls!r} is not a native message class")
    return _table(*classes)


_STATE = _table(AgentState)
_CONN = _table(AgentConn)
_EVENT = _table_of(AgentEvent)
_COMMAND = _table_of(AgentCommand)
_EDGE_EVENT = _table(EdgeEvent)
_HUB_COMMAND = _table(HubCommand)
_EDGE_STATUS = _table(EdgeStatus)
_ERROR_REPORT = _table(ErrorReport)
_VDA_LINKS = _table(VdaLinks)


def decode_agent_state(payload: bytes, limits: Limits = DEFAULT_LIMITS) -> AgentState:
    """``agent/{id}/state`` payload → ``AgentState``."""
    return cast(AgentState, _decode(payload, _STATE, limits))


def decode_agent_event(payload: bytes, limits: Limits = DEFAULT_LIMITS) -> AgentEvent:
    """``agent/{id}/event`` payload → one of the ``AgentEvent`` classes."""
    return cast(AgentEvent, _decode(payload, _EVENT, limits))


def decode_agent_conn(payload: bytes, limits: Limits = DEFAULT_LIMITS) -> AgentConn:
    """``agent/{id}/conn`` payload → ``AgentConn``."""
    return cast(AgentConn, _decode(payload, _CONN, limits))


def decode_agent_command(payload: bytes, limits: Limits = DEFAULT_LIMITS) -> AgentCommand:
    """``agent/{id}/cmd`` payload → one of the ``AgentCommand`` classes."""
    return cast(AgentCommand, _decode(payload, _COMMAND, limits))


def decode_edge_event(payload: bytes, limits: Limits = DEFAULT_LIMITS) -> EdgeEvent:
    """``edge/events`` payload → ``EdgeEvent``."""
    return cast(EdgeEvent, _decode(payload, _EDGE_EVENT, limits))


def decode_hub_command(payload: bytes, limits: Limits = DEFAULT_LIMITS) -> HubCommand:
    """``edge/cmd`` payload → ``HubCommand``."""
    return cast(HubCommand, _decode(payload, _HUB_COMMAND, limits))


def decode_edge_status(payload: bytes, limits: Limits = DEFAULT_LIMITS) -> EdgeStatus:
    """``edge/status`` payload → ``EdgeStatus``."""
    return cast(EdgeStatus, _decode(payload, _EDGE_STATUS, limits))


def decode_error_report(payload: bytes, limits: Limits = DEFAULT_LIMITS) -> ErrorReport:
    """``edge/errors`` payload → ``ErrorReport``."""
    return cast(ErrorReport, _decode(payload, _ERROR_REPORT, limits))


def decode_vda_links(payload: bytes, limits: Limits = DEFAULT_LIMITS) -> VdaLinks:
    """``edge/vda`` payload → ``VdaLinks``."""
    return cast(VdaLinks, _decode(payload, _VDA_LINKS, limits))


def _decode(payload: object, allowed: _Table, limits: Limits) -> Message:
    if not isinstance(payload, bytes | bytearray):
        raise ProtocolError("malformed", f"payload must be bytes, not {type(payload).__name__}")
    check_size(payload, limits)
    envelope = _unpack(payload, limits)
    if type(envelope) is not list or len(envelope) != 3:
        raise ProtocolError("malformed", "payload is not a [version, type, body] envelope")
    version, name, body = envelope
    if type(version) is not int or version != ENVELOPE_VERSION:
        raise ProtocolError(
            "version", f"envelope version {version!r} is not {ENVELOPE_VERSION}, "
                       "the one this build reads"
        )
    if type(name) is not str:
        raise ProtocolError("malformed", f"message type {name!r} is not a string")
    cls = allowed.get(name)
    if cls is None:
        expected = ", ".join(allowed)
        if name in MESSAGE_TYPES:
            raise ProtocolError(
                "unexpected_type", f"a {name!r} message is not expected here; expected {expected}"
            )
        raise ProtocolError(
            "unknown_type", f"unknown message type {name[:64]!r}; expected {expected}"
        )
    if cls is EdgeEvent and type(body) is list:
        body = edge_event_body(body)
    if type(body) is not dict:
        raise ProtocolError("malformed", f"{name} message body is not a map")
    check_tree(body, limits, f"{name} message")
    try:
        return cls.model_validate(body, strict=True)
    except ValidationError as exc:
        raise validation_problem(exc, f"{name} message") from None


def _unpack(payload: bytes | bytearray, limits: Limits) -> Any:
    try:
        return msgpack.unpackb(
            payload,
            raw=False,
            strict_map_key=False,  # check_tree names a non-string key better than msgpack
            max_str_len=limits.max_string_length * 4,  # msgpack counts UTF-8 bytes
            max_bin_len=limits.max_string_length,
            max_array_len=limits.max_items,
            max_map_len=limits.max_items,
            max_ext_len=limits.max_string_length,
        )
    except msgpack.StackError:
        raise ProtocolError("too_deep", "payload nests deeper than msgpack allows") from None
    except Exception as exc:  # msgpack raises many unrelated types; all mean "not msgpack"
        text = str(exc)
        if "exceeds max_" in text:
            raise ProtocolError("too_large", f"payload has {text}") from None
        raise ProtocolError(
            "malformed", f"payload is not one msgpack value ({type(exc).__name__}: {text[:120]})"
        ) from None


def validation_problem(exc: ValidationError, what: str) -> ProtocolError:
    """A pydantic ``ValidationError`` as a ``ProtocolError`` naming the first failing field.

    The reason is ``bad_identifier`` when that field failed the identifier rule, else
    ``schema``.
    """
    errors = exc.errors(include_url=False)
    first = errors[0]
    field = ".".join(str(part) for part in first["loc"]) or "(body)"
    text = first["msg"].removeprefix("Value error, ")
    if first["type"] not in ("missing", "value_error"):
        text += f" (got {_short(first.get('input'))})"
    more = f"; and {len(errors) - 1} more problem(s)" if len(errors) > 1 else ""
    ctx = first.get("ctx") or {}
    reason = "bad_identifier" if isinstance(ctx.get("error"), IdentifierError) else "schema"
    return ProtocolError(reason, f"{what}: field {field}: {text}{more}")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_INT_END = 2**63
_MODEL_MAX_STR = 1024  # Message's str_max_length: it applies to the keys of ``data`` too
_CHECKED: set[str] = set()  # identifiers found valid (event kinds, facilities, workflow ids)


def _identifier(value: object) -> bool:
    if value in _CHECKED:
        return True
    try:
        check_identifier(value)  # type: ignore[arg-type]
    except ProtocolError:
        return False
    if len(_CHECKED) >= 65536:
        _CHECKED.clear()
    _CHECKED.add(value)  # type: ignore[arg-type]
    return True


def check_edge_event(event: EventFields, facility: str) -> None:
    """Refuse, with ``encode``'s own error, an event ``encode(EdgeEvent(...))`` would refuse.

    The model's rules (seq and hlc ranges, identifiers, data keys) and ``encode``'s
    structure walk, without building the model: every event an edge commits is streamed,
    and a pydantic round trip per event cost more than the core's transition. What the
    plain tests cannot vouch for goes through ``encode`` itself, which raises as always
    (pydantic's ``ValidationError`` or ``ProtocolError``). The payload size is checked by
    ``pack_edge_events``; an event that passes gets ``encode``'s very bytes from it.
    """
    seq, hlc, kind, workflow_id, data = (event.seq, event.hlc, event.kind, event.workflow_id,
                                         event.data)
    if (type(seq) is int and type(hlc) is int and 1 <= seq < _INT_END and 0 <= hlc < _INT_END
            and type(kind) is str and type(data) is dict
            and all(type(k) is str and len(k) <= _MODEL_MAX_STR for k in data)
            and _identifier(facility) and _identifier(kind)
            and (workflow_id is None or (type(workflow_id) is str
                                         and _identifier(workflow_id)))):
        body = {"seq": seq, "hlc": hlc, "facility": facility, "kind": kind,
                "workflow_id": workflow_id, "data": data}
        try:
            check_tree(body, DEFAULT_LIMITS, "edge_event message")
            return
        except ProtocolError:
            pass  # encode says it again, in the same words
    payload = encode(EdgeEvent(seq=seq, hlc=hlc, facility=facility, kind=kind,
                               workflow_id=workflow_id, data=data))
    if pack_edge_events((event,), facility)[0] != payload:  # a bool seq, made int by the model
        raise ProtocolError(
            "schema", "edge_event message: a field is not of its plain type (int, str, dict), "
                      "so its payload would not be encode's"
        )
