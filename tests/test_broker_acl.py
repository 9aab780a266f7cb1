"""The pure ACL: ``allowed(identity, action, topic)`` and its topic matching."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker import Bridge, Identity, allowed, filter_covers, mosquitto_acl, rules, topic_matches
from topics import ProtocolError, agent_topic, edge_topic, vda_topic

ident = st.text(alphabet="abcXY09-_.", min_size=1, max_size=8)
agent_kinds = st.sampled_from(["state", "event", "cmd", "conn"])
edge_kinds = st.sampled_from(["events", "cmd", "status", "errors", "vda"])
vda_kinds = st.sampled_from(
    ["order", "instantActions", "state", "visualization", "connection", "factsheet"])

A1 = Identity("a1", "agent", facility="F1")
EDGE = Identity("e1", "edge", facility="F1")
HUB = Identity("hub", "hub")
ADMIN = Identity("root", "admin")
AGV = Identity("truck", "agv", manufacturer="Acme", serial="S7")


@pytest.mark.parametrize(
    ("who", "action", "topic", "expected"),
    [
        (A1, "publish", "fleetflow/v1/F1/agent/a1/state", True),
        (A1, "publish", "fleetflow/v1/F1/agent/a1/event", True),
        (A1, "publish", "fleetflow/v1/F1/agent/a1/conn", True),
        (A1, "publish", "fleetflow/v1/F1/agent/a1/cmd", False),
        (A1, "publish", "fleetflow/v1/F1/agent/a2/state", False),
        (A1, "publish", "fleetflow/v1/F2/agent/a1/state", False),
        (A1, "publish", "fleetflow/v1/F1/edge/events", False),
        (A1, "subscribe", "fleetflow/v1/F1/agent/a1/cmd", True),
        (A1, "subscribe", "fleetflow/v1/F1/agent/a1/conn", True),
        (A1, "subscribe", "fleetflow/v1/F1/agent/a1/state", False),
        (A1, "subscribe", "fleetflow/v1/F1/agent/+/cmd", False),
        (A1, "subscribe", "fleetflow/v1/F1/agent/a1/#", False),
        (A1, "receive", "fleetflow/v1/F1/agent/a1/cmd", True),
        (A1, "receive", "fleetflow/v1/F1/agent/a2/cmd", False),
        (EDGE, "publish", "fleetflow/v1/F1/agent/a1/cmd", True),
        (EDGE, "subscribe", "fleetflow/v1/F1/#", True),
        (EDGE, "subscribe", "fleetflow/v1/+/edge/events", False),
        (EDGE, "subscribe", "fleetflow/#", False),
        (EDGE, "receive", "fleetflow/v1/F2/edge/cmd", False),
        (EDGE, "publish", "uagv/v2/Acme/S7/order", True),
        (EDGE, "subscribe", "uagv/#", True),
        (HUB, "subscribe", "fleetflow/v1/+/edge/events", True),
        (HUB, "subscribe", "fleetflow/v1/+/edge/status", True),
        (HUB, "subscribe", "fleetflow/v1/+/edge/+", False),
        (HUB, "subscribe", "fleetflow/v1/#", False),
        (HUB, "receive", "fleetflow/v1/F9/edge/events", True),
        (HUB, "receive", "fleetflow/v1/F9/agent/a1/state", False),
        (HUB, "publish", "fleetflow/v1/F9/edge/cmd", True),
        (HUB, "publish", "fleetflow/v1/F9/edge/events", False),
        (HUB, "subscribe", "fleetflow/v1/+/edge/vda", True),
        (HUB, "receive", "fleetflow/v1/F9/edge/vda", True),
        (HUB, "publish", "fleetflow/v1/F9/edge/vda", False),
        (EDGE, "publish", "fleetflow/v1/F1/edge/vda", True),
        (EDGE, "publish", "fleetflow/v1/F2/edge/vda", False),
        (A1, "receive", "fleetflow/v1/F1/edge/vda", False),
        (AGV, "receive", "fleetflow/v1/F1/edge/vda", False),
        (ADMIN, "subscribe", "#", True),
        (ADMIN, "publish", "anything/at/all", True),
        (AGV, "publish", "uagv/v2/Acme/S7/state", True),
        (AGV, "publish", "uagv/v2/Acme/S7/factsheet", True),
        (AGV, "publish", "uagv/v2/Acme/S7/order", False),
        (AGV, "publish", "uagv/v2/Acme/S8/state", False),
        (AGV, "subscribe", "uagv/v2/Acme/S7/order", True),
        (AGV, "subscribe", "uagv/v2/Acme/S7/instantActions", True),
        (AGV, "subscribe", "uagv/v2/Acme/S7/+", False),
        (AGV, "receive", "uagv/v2/Acme/S8/order", False),
    ],
)
def test_allowed_table(who: Identity, action: str, topic: str, expected: bool) -> None:
    """Each role gets exactly the access of the ACL table in docs/broker.md."""
    assert allowed(who, action, topic) is expected  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["", "a/+/b", "a/#/b", "a/b#", "a+/b"])
def test_malformed_topics_are_denied(bad: str) -> None:
    """Wildcards in a published topic, and malformed filters, are denied even to admin."""
    assert not allowed(ADMIN, "publish", bad)
    if bad and bad not in ("a/+/b",):
        assert not allowed(ADMIN, "subscribe", bad)


def test_leading_wildcard_does_not_match_dollar_topics() -> None:
    """'#' does not cover $SYS topics (MQTT 3.1.1 §4.7.2)."""
    assert not topic_matches("#", "$SYS/broker/load")
    assert not allowed(ADMIN, "subscribe", "$SYS/#")


@pytest.mark.parametrize(
    ("pattern", "topic", "expected"),
    [("a/#", "a", True), ("a/#", "a/b/c", True), ("a/+", "a", False), ("a/+", "a/b", True),
     ("a/+/c", "a/b/c", True), ("a", "a/b", False), ("+/+", "a/b", True), ("#", "a", True)],
)
def test_topic_matches(pattern: str, topic: str, expected: bool) -> None:
    """MQTT 3.1.1 matching of a filter against a concrete topic."""
    assert topic_matches(pattern, topic) is expected


@pytest.mark.parametrize(
    ("name", "role", "kw"),
    [("a1", "agent", {}), ("e1", "edge", {}), ("t", "agv", {"manufacturer": "M"}),
     ("h", "hub", {"facility": "F1"}), ("a/1", "agent", {"facility": "F"}),
     ("a:1", "admin", {}), ("x", "root", {}), ("a1", "agent", {"facility": "F#"})],
)
def test_bad_identities_are_refused(name: str, role: str, kw: dict[str, str]) -> None:
    """Missing or superfluous scope, wildcard characters and unknown roles are refused."""
    with pytest.raises(ProtocolError):
        Identity(name, role, **kw)  # type: ignore[arg-type]


@given(me=ident, other=ident, facility=ident, kind=agent_kinds)
def test_agent_never_speaks_for_another(me: str, other: str, facility: str, kind: str) -> None:
    """No agent may publish on, or read, any topic of another agent."""
    if me == other:
        return
    who = Identity(me, "agent", facility=facility)
    topic = agent_topic(facility, other, kind)  # type: ignore[arg-type]
    assert not allowed(who, "publish", topic)
    assert not allowed(who, "receive", topic)
    assert not allowed(who, "subscribe", topic)


@given(mine=ident, theirs=ident, kind=edge_kinds, agent=ident, akind=agent_kinds)
def test_edge_is_confined_to_its_facility(
    mine: str, theirs: str, kind: str, agent: str, akind: str
) -> None:
    """An edge does everything in its facility and nothing in another."""
    edge = Identity("edge", "edge", facility=mine)
    for action in ("publish", "receive", "subscribe"):
        assert allowed(edge, action, edge_topic(mine, kind))  # type: ignore[arg-type]
        assert allowed(edge, action, agent_topic(mine, agent, akind))  # type: ignore[arg-type]
        if theirs != mine:
            assert not allowed(edge, action, edge_topic(theirs, kind))  # type: ignore[arg-type]


@given(m=ident, s=ident, m2=ident, s2=ident, kind=vda_kinds)
def test_agv_is_confined_to_its_serial(m: str, s: str, m2: str, s2: str, kind: str) -> None:
    """An AGV writes only its own reports and reads only its own orders."""
    agv = Identity("agv", "agv", manufacturer=m, serial=s)
    own = vda_topic(m, s, kind)  # type: ignore[arg-type]
    writes = kind in ("state", "visualization", "connection", "factsheet")
    assert allowed(agv, "publish", own) is writes
    assert allowed(agv, "receive", own) is not writes
    if (m2, s2) != (m, s):
        foreign = vda_topic(m2, s2, kind)  # type: ignore[arg-type]
        assert not allowed(agv, "publish", foreign)
        assert not allowed(agv, "receive", foreign)


levels = st.lists(st.sampled_from(["fleetflow", "v1", "F1", "F2", "agent", "edge", "a1",
                                   "events", "cmd", "state", "uagv"]), min_size=1, max_size=6)


@st.composite
def topic_and_filter(draw: st.DrawFn) -> tuple[str, str]:
    """A concrete topic and a filter made from it with some levels wildcarded."""
    parts = draw(levels)
    filt = [draw(st.sampled_from([p, p, "+"])) for p in parts]
    cut = draw(st.integers(0, len(filt)))
    if cut < len(filt) and draw(st.booleans()):
        filt = [*filt[:cut], "#"]
    return "/".join(parts), "/".join(filt)


identities = st.sampled_from([A1, EDGE, HUB, ADMIN, AGV, Identity("a2", "agent", facility="F2")])


@given(identity=identities, tf=topic_and_filter())
def test_a_granted_subscription_only_yields_readable_topics(
    identity: Identity, tf: tuple[str, str]
) -> None:
    """If a filter may be subscribed, every topic it matches may be received."""
    topic, topic_filter = tf
    assert topic_matches(topic_filter, topic)
    if allowed(identity, "subscribe", topic_filter):
        assert allowed(identity, "receive", topic)


@given(tf=topic_and_filter(), other=topic_and_filter())
def test_filter_covers_is_consistent_with_matching(
    tf: tuple[str, str], other: tuple[str, str]
) -> None:
    """A pattern covering a filter matches every topic that filter matches."""
    topic, topic_filter = tf
    pattern = other[1]
    if filter_covers(pattern, topic_filter):
        assert topic_matches(pattern, topic)


def test_mosquitto_acl_lists_each_users_rules() -> None:
    """The Mosquitto ACL has a `user` block per identity with exactly its rules."""
    text = mosquitto_acl([A1, HUB])
    blocks = text.split("\nuser ")[1:]
    assert [b.splitlines()[0] for b in blocks] == ["a1", "hub"]
    a1_lines = [ln for ln in blocks[0].splitlines()[1:] if ln.startswith("topic ")]
    assert a1_lines == [f"topic {r.access} {r.pattern}" for r in rules(A1)]
    assert "topic read fleetflow/v1/F1/agent/a1/cmd" in a1_lines


def test_mosquitto_acl_and_bridge_carry_edge_vda() -> None:
    """The generated ACL lets the hub read every edge's edge/vda, and a facility broker's
    bridge forwards its edge/vda (QoS 1) to the cloud broker."""
    hub_block = mosquitto_acl([HUB]).split("\nuser hub\n")[1]
    assert "topic read fleetflow/v1/+/edge/vda" in hub_block.splitlines()
    section = Bridge("cloud", 1883, "F1", "bridge-f1", "secret").section()
    assert "topic fleetflow/v1/F1/edge/vda out 1" in section.splitlines()
