"""Inbound MQTT messages → core inputs, or a ``Reject`` saying why not (docs/design.md §9).

Checks run cheapest first: the topic (ours? which kind?), then the codec (size, msgpack or
JSON, limits, NaN, schema), then identity (an agent speaks only for itself on its own
topics), then whether the agent ever announced itself. A rejected message produces
nothing but its ``Reject``: it never reaches the core.

>>> from topics import AgentState, encode
>>> intake = Intake("f1", known_agent=lambda agent_id: agent_id == "r1")
>>> ok = intake.decode("fleetflow/v1/f1/agent/r1/state", encode(AgentState(agent_id="r1", ts=1)))
>>> type(ok).__name__
'AgentState'
>>> bad = intake.decode("fleetflow/v1/f1/agent/r2/state", encode(AgentState(agent_id="r1", ts=1)))
>>> bad.reason
'identity_mismatch'
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from topics import (
    DEFAULT_LIMITS,
    AgentConn,
    AgentEvent,
    AgentState,
    AgentTopic,
    EdgeTopic,
    ErrorReport,
    HubCommand,
    Limits,
    ProtocolError,
    VdaKind,
    VdaTopic,
    decode_agent_conn,
    decode_agent_event,
    decode_agent_state,
    decode_hub_command,
    decode_vda,
    parse_topic,
)

__all__ = ["REJECT_REASONS", "Inbound", "Intake", "Reject", "VdaInbound"]

REJECT_REASONS: dict[str, str] = {
    "bad_topic": "the topic is not a Fleetflow or VDA 5050 topic the edge reads",
    "wrong_facility": "the topic names another facility",
    "payload_too_large": "the payload is larger than the size limit",
    "malformed": "the payload is not msgpack (native) / JSON (VDA 5050), or not an envelope",
    "version": "unknown envelope version, or a VDA 5050 major version other than 2",
    "unknown_type": "the message type is unknown",
    "unexpected_type": "a known message type that does not belong on this topic",
    "schema": "a field is missing, of the wrong type, out of range or unknown",
    "bad_identifier": "an identifier is empty, too long or has characters topics forbid",
    "not_finite": "a number is NaN or infinite",
    "too_deep": "the payload nests too deeply",
    "too_large": "a string, list or map is longer than its limit",
    "identity_mismatch": "the payload's agent id is not the one in the topic",
    "unknown_agent": "an agent sent state or events without announcing itself on conn first",
}
"""Every reason the intake rejects with; the core's refusals add their own reasons."""


@dataclass(frozen=True, slots=True)
class Reject:
    """A message the edge refused: what goes on ``edge/errors`` and into the reject metric."""

    reason: str
    message: str
    topic: str
    agent_id: str | None = None
    command_id: str | None = None
    """For a refused hub command: its id."""

    def report(self, ts: float) -> ErrorReport:
        """The ``ErrorReport`` for this rejection."""
        return ErrorReport(
            reason=self.reason, message=self.message[:1024], topic=self.topic[:512],
            agent_id=self.agent_id if self.agent_id is None else self.agent_id[:64],
            command_id=None if self.command_id is None else self.command_id[:64], ts=ts,
        )


@dataclass(frozen=True, slots=True)
class VdaInbound:
    """A validated VDA 5050 message from an AGV, for the VDA master."""

    manufacturer: str
    serial_number: str
    kind: VdaKind
    message: dict[str, Any]


Inbound = AgentConn | AgentState | AgentEvent | HubCommand | VdaInbound
"""What a valid inbound message becomes."""

_VDA_INBOUND_KINDS = ("state", "connection", "factsheet", "visualization")
_TOPIC_CACHE_MAX = 8192
"""Parsed topics remembered (a facility's agents repeat theirs); cleared when full."""


class Intake:
    """Decoder and gatekeeper of one facility's inbound messages."""

    def __init__(
        self,
        facility: str,
        *,
        limits: Limits = DEFAULT_LIMITS,
        known_agent: Callable[[str], bool] = lambda agent_id: True,
        vda_interface: str = "uagv",
        vda_major: int = 2,
    ) -> None:
        self.facility = facility
        """Only topics of this facility are accepted."""
        self.limits = limits
        """Size and shape limits handed to the codecs."""
        self.known_agent = known_agent
        """Whether an agent id has announced itself (asked for state and events only)."""
        self.vda_interface = vda_interface
        """First level of VDA 5050 topics."""
        self.vda_major = vda_major
        """The one VDA 5050 major version accepted."""
        self._topics: dict[str, AgentTopic | EdgeTopic | VdaTopic] = {}

    def decode(self, topic: str, payload: bytes) -> Inbound | Reject:
        """Decode and check one inbound message; never raises."""
        parsed = self._topics.get(topic)
        if parsed is None:
            try:
                parsed = parse_topic(topic, interface=self.vda_interface)
            except ProtocolError as exc:
                return Reject(exc.reason, exc.message, topic)
            if len(self._topics) >= _TOPIC_CACHE_MAX:
                self._topics.clear()
            self._topics[topic] = parsed  # immutable, and parsing is pure: safe to share
        try:
            if isinstance(parsed, AgentTopic):
                return self._agent(parsed, topic, payload)
            if isinstance(parsed, EdgeTopic):
                return self._edge(parsed, topic, payload)
            return self._vda(parsed, topic, payload)
        except ProtocolError as exc:
            agent = (parsed.agent_id if isinstance(parsed, AgentTopic) else
                     parsed.serial_number if isinstance(parsed, VdaTopic) else None)
            return Reject(exc.reason, exc.message, topic, agent)

    def _agent(self, parsed: AgentTopic, topic: str, payload: bytes) -> Inbound | Reject:
        agent = parsed.agent_id
        if parsed.facility != self.facility:
            return Reject("wrong_facility", f"topic is for facility {parsed.facility!r}, "
                                            f"this edge runs {self.facility!r}", topic, agent)
        message: AgentConn | AgentState | AgentEvent
        if parsed.kind == "state":
            message = decode_agent_state(payload, self.limits)
        elif parsed.kind == "event":
            message = decode_agent_event(payload, self.limits)
        elif parsed.kind == "conn":
            message = decode_agent_conn(payload, self.limits)
        else:
            return Reject("bad_topic", "the edge does not read agent command topics", topic, agent)
        if message.agent_id != agent:
            return Reject(
                "identity_mismatch",
                f"a message on {agent!r}'s topic speaks for agent {message.agent_id!r}",
                topic, agent,
            )
        if not isinstance(message, AgentConn) and not self.known_agent(agent):
            return Reject(
                "unknown_agent",
                f"agent {agent!r} has not announced itself on its conn topic", topic, agent,
            )
        return message

    def _edge(self, parsed: EdgeTopic, topic: str, payload: bytes) -> Inbound | Reject:
        if parsed.facility != self.facility:
            return Reject("wrong_facility", f"topic is for facility {parsed.facility!r}, "
                                            f"this edge runs {self.facility!r}", topic)
        if parsed.kind != "cmd":
            return Reject("bad_topic", f"the edge does not read edge/{parsed.kind}", topic)
        return decode_hub_command(payload, self.limits)

    def _vda(self, parsed: VdaTopic, topic: str, payload: bytes) -> Inbound | Reject:
        agent = parsed.serial_number
        if not re.fullmatch(rf"v{self.vda_major}", parsed.major):
            return Reject("version", f"VDA 5050 topic major version {parsed.major!r}; this edge "
                                     f"speaks v{self.vda_major}", topic, agent)
        if parsed.kind not in _VDA_INBOUND_KINDS:
            return Reject("bad_topic", f"the edge does not read VDA 5050 {parsed.kind} "
                                       "(it sends those)", topic, agent)
        message = decode_vda(payload, parsed.kind, self.limits, self.vda_major)
        for field, expected in (("manufacturer", parsed.manufacturer),
                                ("serialNumber", parsed.serial_number)):
            if message.get(field) != expected:
                return Reject(
                    "identity_mismatch",
                    f"a VDA 5050 {parsed.kind} on {expected!r}'s topic has "
                    f"{field} {message.get(field)!r}", topic, agent,
                )
        return VdaInbound(parsed.manufacturer, parsed.serial_number, parsed.kind, message)
