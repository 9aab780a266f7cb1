"""Topic names and identifiers: builders, parsers, and the identifier rule in models."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from topics import (
    AGENT_KINDS,
    EDGE_KINDS,
    VDA_KINDS,
    AgentState,
    AgentTopic,
    EdgeTopic,
    ProtocolError,
    VdaTopic,
    agent_topic,
    check_identifier,
    edge_topic,
    parse_topic,
    vda_topic,
)

IDENTIFIER_CHARS = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in "/+#$")
identifiers = st.text(alphabet=IDENTIFIER_CHARS, min_size=1, max_size=64)
"""Every identifier the protocol accepts."""

bad_identifiers = st.one_of(
    st.just(""),
    st.text(alphabet=IDENTIFIER_CHARS, min_size=65, max_size=100),
    st.builds(
        lambda a, bad, b: a + bad + b,
        st.text(alphabet=IDENTIFIER_CHARS, max_size=20),
        st.sampled_from(["/", "+", "#", "$", " ", "\t", "\n", "é", "\u00a0", "日本", "\x00"]),
        st.text(alphabet=IDENTIFIER_CHARS, max_size=20),
    ),
)
"""Empty, too long, or holding a topic separator, wildcard, '$', space or non-ASCII."""


@given(identifiers)
def test_valid_identifiers_pass(value: str) -> None:
    """Printable ASCII of 1 to 64 characters without / + # $ is an identifier."""
    assert check_identifier(value) == value


@given(bad_identifiers)
def test_bad_identifiers_refused(value: str) -> None:
    """An empty, over-long, wildcard-bearing or non-ASCII identifier raises ProtocolError."""
    with pytest.raises(ProtocolError) as info:
        check_identifier(value, "agent id")
    assert info.value.reason == "bad_identifier"
    assert "agent id" in str(info.value)


def test_non_string_identifier_refused() -> None:
    """A non-string identifier is refused with a sentence naming its type."""
    with pytest.raises(ProtocolError, match="must be a string, not int"):
        check_identifier(7)  # type: ignore[arg-type]


@given(identifiers, identifiers, st.sampled_from(AGENT_KINDS))
def test_agent_topic_round_trip(facility: str, agent_id: str, kind: str) -> None:
    """An agent topic parses back into the facility, agent and kind it was built from."""
    topic = agent_topic(facility, agent_id, kind)  # type: ignore[arg-type]
    assert parse_topic(topic) == AgentTopic(facility, agent_id, kind)  # type: ignore[arg-type]
    assert str(parse_topic(topic)) == topic


@given(identifiers, st.sampled_from(EDGE_KINDS))
def test_edge_topic_round_trip(facility: str, kind: str) -> None:
    """An edge topic parses back into its facility and kind."""
    topic = edge_topic(facility, kind)  # type: ignore[arg-type]
    assert parse_topic(topic) == EdgeTopic(facility, kind)  # type: ignore[arg-type]
    assert str(parse_topic(topic)) == topic


@given(identifiers, identifiers, st.sampled_from(VDA_KINDS))
def test_vda_topic_round_trip(manufacturer: str, serial: str, kind: str) -> None:
    """A VDA 5050 topic parses back into manufacturer, serial number and kind."""
    topic = vda_topic(manufacturer, serial, kind)  # type: ignore[arg-type]
    parsed = parse_topic(topic)
    assert parsed == VdaTopic(manufacturer, serial, kind)  # type: ignore[arg-type]
    assert str(parsed) == topic


@given(bad_identifiers, identifiers)
def test_builders_refuse_bad_identifiers(bad: str, good: str) -> None:
    """Every builder refuses a bad identifier in any position."""
    builds: list[Callable[[], str]] = [
        lambda: agent_topic(bad, good, "state"),
        lambda: agent_topic(good, bad, "event"),
        lambda: edge_topic(bad, "events"),
        lambda: vda_topic(bad, good, "state"),
        lambda: vda_topic(good, bad, "order"),
    ]
    for build in builds:
        with pytest.raises(ProtocolError) as info:
            build()
        assert info.value.reason == "bad_identifier"


@given(st.text(max_size=200))
def test_parse_topic_never_crashes(topic: str) -> None:
    """Any string either parses into a topic or raises ProtocolError."""
    try:
        parsed = parse_topic(topic)
    except ProtocolError as exc:
        assert exc.reason in ("bad_topic", "bad_identifier")
    else:
        assert str(parsed) == topic


@pytest.mark.parametrize(
    "topic",
    [
        "fleetflow/v1/hall-a/agent/r1/teleport",
        "fleetflow/v1/hall-a/agent/+/state",
        "fleetflow/v1/hall-a/edge/#",
        "fleetflow/v1/hall-a/agent/r1",
        "uagv/v2/acme/sn1/dance",
        "uagv/two/acme/sn1/state",
        "other/thing",
    ],
)
def test_parse_topic_refuses_strangers(topic: str) -> None:
    """Wildcards, unknown kinds, wrong shapes and foreign prefixes are refused."""
    with pytest.raises(ProtocolError):
        parse_topic(topic)


@given(bad_identifiers)
def test_models_refuse_bad_identifiers_with_validation_error(bad: str) -> None:
    """A bad identifier in a model is a pydantic ValidationError carrying the same sentence."""
    with pytest.raises(ValidationError) as info:
        AgentState(agent_id=bad, ts=1.0)
    with pytest.raises(ProtocolError) as direct:
        check_identifier(bad)
    assert direct.value.message in str(info.value)
