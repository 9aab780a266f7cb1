"""``edge/vda``'s ``VdaLinks``: its round-trip and what a receiver refuses."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from pydantic import ValidationError

from topics import (
    MAX_LINKS,
    ProtocolError,
    VdaAgvError,
    VdaLink,
    VdaLinks,
    decode_vda_links,
    edge_topic,
    encode,
    parse_topic,
)


def sample() -> VdaLinks:
    """Two AGVs: one waiting on an order with an error, one healthy."""
    return VdaLinks(facility="f1", ts=1_700_000_000.5, left_out=3, links=[
        VdaLink(agent_id="agv1", manufacturer="acme", serial_number="agv1", version="2.1.0",
                connection="ONLINE", state_age_s=0.4, operating_mode="AUTOMATIC",
                order_id="w1.s1.1.7", order_unacked_s=2.5, instants_unacked=1,
                oldest_instant_s=1.0, rejections=2, schema_errors=1,
                errors=[VdaAgvError(error_type="orderError", level="WARNING",
                                    description="busy")]),
        VdaLink(agent_id="agv2", manufacturer="acme", serial_number="agv2"),
    ])


def body(links: VdaLinks) -> dict[str, Any]:
    """The msgpack body of ``links``, to tamper with."""
    _, _, raw = msgpack.unpackb(encode(links))
    return dict(raw)


def pack(raw: dict[str, Any]) -> bytes:
    return msgpack.packb([1, "vda_links", raw])


def test_links_round_trip_on_the_edge_vda_topic() -> None:
    """Encoded and decoded, a VdaLinks is what it was; its topic is edge/vda."""
    links = sample()
    assert decode_vda_links(encode(links)) == links
    topic = edge_topic("f1", "vda")
    assert topic == "fleetflow/v1/f1/edge/vda" and parse_topic(topic).kind == "vda"  # type: ignore[union-attr]


def test_nan_is_refused() -> None:
    """A NaN age is refused by the model and by the decoder."""
    with pytest.raises(ValidationError):
        VdaLink(agent_id="a", manufacturer="m", serial_number="a", state_age_s=float("nan"))
    raw = body(sample())
    raw["links"][0]["order_unacked_s"] = float("nan")
    with pytest.raises(ProtocolError):
        decode_vda_links(pack(raw))


def test_too_many_links_are_refused() -> None:
    """More than MAX_LINKS links, or more than 8 errors on one, are refused."""
    one = VdaLink(agent_id="a", manufacturer="m", serial_number="a")
    with pytest.raises(ValidationError):
        VdaLinks(facility="f1", links=[one] * (MAX_LINKS + 1))
    raw = body(sample())
    raw["links"] = raw["links"][1:] * (MAX_LINKS + 1)
    with pytest.raises(ProtocolError):
        decode_vda_links(pack(raw))
    raw = body(sample())
    raw["links"][0]["errors"] = raw["links"][0]["errors"] * 9
    with pytest.raises(ProtocolError):
        decode_vda_links(pack(raw))


@pytest.mark.parametrize("where", ["message", "link", "error"])
def test_unknown_fields_are_refused(where: str) -> None:
    """A field the model does not know is refused wherever it appears."""
    raw = body(sample())
    target = {"message": raw, "link": raw["links"][0], "error": raw["links"][0]["errors"][0]}
    target[where]["surprise"] = 1
    with pytest.raises(ProtocolError) as exc:
        decode_vda_links(pack(raw))
    assert exc.value.reason == "schema"
