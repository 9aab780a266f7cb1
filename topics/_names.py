"""Topic names: builders and parsers for the native and the VDA 5050 topics (docs/design.md §8)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from topics._errors import ProtocolError

__all__ = [
    "AGENT_KINDS",
    "EDGE_KINDS",
    "MAX_IDENTIFIER_LENGTH",
    "NATIVE_PREFIX",
    "VDA_KINDS",
    "AgentKind",
    "AgentTopic",
    "EdgeKind",
    "EdgeTopic",
    "VdaKind",
    "VdaTopic",
    "agent_topic",
    "check_identifier",
    "edge_topic",
    "parse_topic",
    "vda_topic",
]

NATIVE_PREFIX = "fleetflow/v1"
MAX_IDENTIFIER_LENGTH = 64

AgentKind = Literal["state", "event", "cmd", "conn"]
EdgeKind = Literal["events", "cmd", "status", "errors", "vda"]
VdaKind = Literal["order", "instantActions", "state", "visualization", "connection", "factsheet"]
AGENT_KINDS: tuple[AgentKind, ...] = ("state", "event", "cmd", "conn")
EDGE_KINDS: tuple[EdgeKind, ...] = ("events", "cmd", "status", "errors", "vda")
VDA_KINDS: tuple[VdaKind, ...] = (
    "order", "instantActions", "state", "visualization", "connection", "factsheet",
)

# Printable ASCII without the MQTT wildcards, the topic separator and '$' (reserved for
# broker topics); spaces are refused too, they are never intended in an identifier.
_IDENTIFIER = re.compile(r"[!-~]+")
_FORBIDDEN = set("/+#$")
# The same rule as one regex: the hot path (every decoded message) matches it once and
# only a refusal walks the slower checks above to say what exactly is wrong.
_VALID_IDENTIFIER = re.compile(r'[!"%-*,-.0-~]{1,64}')


def check_identifier(value: str, what: str = "identifier") -> str:
    """Return ``value`` if it may stand as one topic level, else raise ``ProtocolError``."""
    if isinstance(value, str) and _VALID_IDENTIFIER.fullmatch(value):
        return value
    if not isinstance(value, str):
        raise ProtocolError(
            "bad_identifier", f"{what} must be a string, not {type(value).__name__}"
        )
    if not value:
        raise ProtocolError("bad_identifier", f"{what} is empty")
    if len(value) > MAX_IDENTIFIER_LENGTH:
        raise ProtocolError(
            "bad_identifier",
            f"{what} is {len(value)} characters long; at most {MAX_IDENTIFIER_LENGTH} are allowed",
        )
    if not _IDENTIFIER.fullmatch(value):
        raise ProtocolError(
            "bad_identifier", f"{what} {value!r} must be printable ASCII without spaces"
        )
    bad = sorted(_FORBIDDEN.intersection(value))
    if bad:
        raise ProtocolError(
            "bad_identifier", f"{what} {value!r} contains {' '.join(bad)}, which topics forbid"
        )
    return value


@dataclass(frozen=True, slots=True)
class AgentTopic:
    """``fleetflow/v1/{facility}/agent/{agent_id}/{kind}``."""

    facility: str
    agent_id: str
    kind: AgentKind

    def __str__(self) -> str:
        return f"{NATIVE_PREFIX}/{self.facility}/agent/{self.agent_id}/{self.kind}"


@dataclass(frozen=True, slots=True)
class EdgeTopic:
    """``fleetflow/v1/{facility}/edge/{kind}``."""

    facility: str
    kind: EdgeKind

    def __str__(self) -> str:
        return f"{NATIVE_PREFIX}/{self.facility}/edge/{self.kind}"


@dataclass(frozen=True, slots=True)
class VdaTopic:
    """``{interface}/{major}/{manufacturer}/{serial_number}/{kind}`` (VDA 5050 §6.2)."""

    manufacturer: str
    serial_number: str
    kind: VdaKind
    interface: str = "uagv"
    major: str = "v2"

    def __str__(self) -> str:
        return (
            f"{self.interface}/{self.major}/{self.manufacturer}/{self.serial_number}/{self.kind}"
        )


def agent_topic(facility: str, agent_id: str, kind: AgentKind) -> str:
    """Build an agent topic, checking both identifiers."""
    if kind not in AGENT_KINDS:
        raise ProtocolError("bad_topic", f"unknown agent topic kind {kind!r}")
    check_identifier(facility, "facility")
    check_identifier(agent_id, "agent id")
    return f"{NATIVE_PREFIX}/{facility}/agent/{agent_id}/{kind}"


def edge_topic(facility: str, kind: EdgeKind) -> str:
    """Build an edge topic, checking the facility."""
    if kind not in EDGE_KINDS:
        raise ProtocolError("bad_topic", f"unknown edge topic kind {kind!r}")
    check_identifier(facility, "facility")
    return f"{NATIVE_PREFIX}/{facility}/edge/{kind}"


def vda_topic(
    manufacturer: str,
    serial_number: str,
    kind: VdaKind,
    *,
    interface: str = "uagv",
    major: str = "v2",
) -> str:
    """Build a VDA 5050 topic (``uagv/v2/{manufacturer}/{serialNumber}/{kind}``)."""
    if kind not in VDA_KINDS:
        raise ProtocolError("bad_topic", f"unknown VDA 5050 topic kind {kind!r}")
    check_identifier(interface, "interface name")
    check_identifier(major, "major version")
    check_identifier(manufacturer, "manufacturer")
    check_identifier(serial_number, "serial number")
    return f"{interface}/{major}/{manufacturer}/{serial_number}/{kind}"


def parse_topic(topic: str, *, interface: str = "uagv") -> AgentTopic | EdgeTopic | VdaTopic:
    """Parse a concrete topic into its typed form, or raise ``ProtocolError``."""
    if not isinstance(topic, str) or not topic:
        raise ProtocolError("bad_topic", "topic is empty")
    if len(topic) > 512:
        raise ProtocolError("bad_topic", f"topic is {len(topic)} characters long; at most 512")
    parts = topic.split("/")
    if len(parts) == 6 and parts[0] == "fleetflow" and parts[1] == "v1" and parts[3] == "agent":
        _, _, facility, _, agent_id, kind = parts
        if kind not in AGENT_KINDS:
            raise ProtocolError("bad_topic", f"unknown agent topic kind {kind!r} in {topic!r}")
        check_identifier(facility, "facility")
        check_identifier(agent_id, "agent id")
        return AgentTopic(facility, agent_id, kind)  # type: ignore[arg-type]
    if len(parts) == 5 and parts[0] == "fleetflow" and parts[1] == "v1" and parts[3] == "edge":
        _, _, facility, _, kind = parts
        if kind not in EDGE_KINDS:
            raise ProtocolError("bad_topic", f"unknown edge topic kind {kind!r} in {topic!r}")
        check_identifier(facility, "facility")
        return EdgeTopic(facility, kind)  # type: ignore[arg-type]
    if len(parts) == 5 and parts[0] == interface:
        _, major, manufacturer, serial, kind = parts
        if kind not in VDA_KINDS:
            raise ProtocolError("bad_topic", f"unknown VDA 5050 topic kind {kind!r} in {topic!r}")
        if not re.fullmatch(r"v[0-9]+", major):
            raise ProtocolError("bad_topic", f"VDA 5050 major version {major!r} is not like 'v2'")
        check_identifier(manufacturer, "manufacturer")
        check_identifier(serial, "serial number")
        return VdaTopic(manufacturer, serial, kind, interface, major)  # type: ignore[arg-type]
    raise ProtocolError("bad_topic", f"{topic!r} is not a Fleetflow or VDA 5050 topic")
