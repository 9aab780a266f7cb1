"""Who may publish, subscribe to and receive which topic (docs/design.md §9), as a pure function.

The rules of each role are MQTT topic patterns with the identity's own values filled in;
the same rules drive the amqtt plugin (through :func:`allowed`) and the generated
Mosquitto ACL file (through :func:`rules`), so both brokers enforce one policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from topics import AGENT_KINDS, NATIVE_PREFIX, ProtocolError, check_identifier

__all__ = [
    "ROLES",
    "Access",
    "Action",
    "Identity",
    "Role",
    "Rule",
    "allowed",
    "filter_covers",
    "rules",
    "topic_matches",
]

Role = Literal["agent", "edge", "hub", "admin", "agv"]
ROLES: tuple[Role, ...] = ("agent", "edge", "hub", "admin", "agv")
Action = Literal["publish", "subscribe", "receive"]
Access = Literal["read", "write", "readwrite"]

_VDA_PREFIX = "uagv/v2"
_AGV_WRITES = ("state", "visualization", "connection", "factsheet")
_AGV_READS = ("order", "instantActions")


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated MQTT user and what it stands for.

    ``agent``: ``name`` is the agent id, ``facility`` required. ``edge``: ``facility``
    required. ``agv`` (a VDA 5050 vehicle): ``manufacturer`` and ``serial`` required, the
    name is free. ``hub`` and ``admin``: nothing else.
    """

    name: str
    """The MQTT username (for an agent: its agent id)."""
    role: Role
    """One of :data:`ROLES`."""
    facility: str | None = None
    """The facility of an agent or an edge."""
    manufacturer: str | None = None
    """The VDA 5050 manufacturer of an AGV."""
    serial: str | None = None
    """The VDA 5050 serial number of an AGV."""

    def __post_init__(self) -> None:
        check_identifier(self.name, "user name")
        if ":" in self.name:
            # Mosquitto's password file splits at the first ':'.
            raise ProtocolError("bad_identifier", f"user name {self.name!r} contains ':'")
        if self.role not in ROLES:
            raise ProtocolError(
                "bad_role", f"role {self.role!r} is not one of {', '.join(ROLES)}"
            )
        needs = {
            "agent": ("facility",),
            "edge": ("facility",),
            "agv": ("manufacturer", "serial"),
        }.get(self.role, ())
        for field in ("facility", "manufacturer", "serial"):
            value = getattr(self, field)
            if field in needs:
                if value is None:
                    raise ProtocolError(
                        "bad_identity", f"role {self.role} needs a {field} (user {self.name!r})"
                    )
                check_identifier(value, field)
            elif value is not None:
                raise ProtocolError(
                    "bad_identity", f"role {self.role} takes no {field} (user {self.name!r})"
                )


@dataclass(frozen=True, slots=True)
class Rule:
    """One line of an ACL: an access mode on a topic pattern (MQTT wildcards allowed)."""

    access: Access
    """``read`` (subscribe and receive), ``write`` (publish) or ``readwrite``."""
    pattern: str
    """An MQTT topic filter."""


def rules(identity: Identity) -> tuple[Rule, ...]:
    """The ACL of ``identity``: everything not matched by one of these rules is denied."""
    role = identity.role
    if role == "admin":
        return (Rule("readwrite", "#"),)
    if role == "agent":
        base = f"{NATIVE_PREFIX}/{identity.facility}/agent/{identity.name}"
        access: dict[str, Access] = {
            "state": "write", "event": "write", "conn": "readwrite", "cmd": "read"
        }
        return (
            *(Rule(access[kind], f"{base}/{kind}") for kind in AGENT_KINDS),
            # Its edge's retained status: an agent resends unacknowledged events at once
            # when the edge comes back online (docs/protocol.md, "Delivery").
            Rule("read", f"{NATIVE_PREFIX}/{identity.facility}/edge/status"),
        )
    if role == "edge":
        # The edge is VDA 5050 master control; VDA topics carry no facility, so an edge
        # may speak to every AGV on its broker.
        return (
            Rule("readwrite", f"{NATIVE_PREFIX}/{identity.facility}/#"),
            Rule("readwrite", "uagv/#"),
        )
    if role == "hub":
        return (
            Rule("read", f"{NATIVE_PREFIX}/+/edge/events"),
            Rule("read", f"{NATIVE_PREFIX}/+/edge/status"),
            Rule("read", f"{NATIVE_PREFIX}/+/edge/errors"),  # refusals of its commands
            Rule("read", f"{NATIVE_PREFIX}/+/edge/vda"),  # VDA 5050 link health (retained)
            Rule("write", f"{NATIVE_PREFIX}/+/edge/cmd"),
        )
    base = f"{_VDA_PREFIX}/{identity.manufacturer}/{identity.serial}"
    return (
        *(Rule("write", f"{base}/{kind}") for kind in _AGV_WRITES),
        *(Rule("read", f"{base}/{kind}") for kind in _AGV_READS),
    )


def allowed(identity: Identity, action: Action, topic: str) -> bool:
    """May ``identity`` do ``action`` on ``topic``?

    ``publish`` and ``receive`` take a concrete topic; ``subscribe`` takes a topic filter,
    allowed only when *every* topic it can match is readable (so a subscription never
    needs per-message filtering to stay inside the ACL).
    """
    wanted: tuple[Access, ...] = ("write", "readwrite") if action == "publish" else (
        "read", "readwrite"
    )
    if action == "subscribe":
        if not _valid_filter(topic):
            return False
        return any(
            r.access in wanted and filter_covers(r.pattern, topic) for r in rules(identity)
        )
    if not topic or "+" in topic or "#" in topic:
        return False
    return any(r.access in wanted and topic_matches(r.pattern, topic) for r in rules(identity))


def _valid_filter(topic_filter: str) -> bool:
    if not topic_filter:
        return False
    levels = topic_filter.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            return False
        if "+" in level and level != "+":
            return False
    return True


def topic_matches(pattern: str, topic: str) -> bool:
    """Does the MQTT filter ``pattern`` match the concrete ``topic``? (MQTT 3.1.1 §4.7)"""
    return filter_covers(pattern, topic)


def filter_covers(pattern: str, topic_filter: str) -> bool:
    """Is every topic matched by ``topic_filter`` also matched by ``pattern``?

    For a concrete topic this is plain MQTT matching. Topics starting with ``$`` are not
    matched by a leading wildcard (MQTT 3.1.1 §4.7.2).
    """
    if topic_filter.startswith("$") and pattern[:1] in ("+", "#"):
        return False
    p = pattern.split("/")
    f = topic_filter.split("/")
    for i, level in enumerate(p):
        if level == "#":
            return True
        if i >= len(f):
            return False
        if f[i] == "#":
            return False
        if level == "+":
            continue
        if f[i] != level:
            return False
    # "a/#" also matches "a" itself: the loop returned at the "#" before running out.
    return len(f) == len(p)
