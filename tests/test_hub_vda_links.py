"""``GET /api/v1/facilities/{id}/vda`` against a real ``fleetflow hub`` on a real Mosquitto
with a real edge (``fa``): the ``VdaLinks`` an edge publishes retained on ``edge/vda`` is
put on the wire by a test client, as the edge does (it is the hub's input); the API serves
it, a newer one replaces it, bad ones are refused and counted and change nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from hub_stack import Stack, run_stack, wait_for
from paho.mqtt.enums import CallbackAPIVersion

from topics import EdgeStatus, VdaAgvError, VdaLink, VdaLinks, edge_topic, encode

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, mosquitto_bin: str) -> Iterator[Stack]:
    """Mosquitto, the edge of ``fa`` and the hub."""
    yield from run_stack(tmp_path_factory.mktemp("vda"), mosquitto_bin, facilities=("fa",))


@pytest.fixture(scope="module")
def wire(stack: Stack) -> Iterator[mqtt.Client]:
    """A test MQTT client on the stack's broker (anonymous, as the edges there are)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    client.connect("127.0.0.1", stack.mqtt_port)
    client.loop_start()
    try:
        yield client
    finally:
        client.loop_stop()
        client.disconnect()


def _publish(wire: mqtt.Client, facility: str, payload: bytes, kind: str = "vda") -> None:
    """Publish retained at QoS 1 on ``facility``'s edge topic, as the edge does."""
    wire.publish(edge_topic(facility, kind), payload, qos=1,  # type: ignore[arg-type]
                 retain=kind == "vda").wait_for_publish(5)


def _links(ts: float, *, unacked: float | None, rejections: int) -> VdaLinks:
    return VdaLinks(facility="fa", ts=ts, left_out=2, links=[
        VdaLink(agent_id="acme-agv1", manufacturer="acme", serial_number="agv1",
                version="2.0.0", connection="ONLINE", state_age_s=0.4,
                operating_mode="AUTOMATIC", order_id="o-7", order_unacked_s=unacked,
                instants_unacked=2, oldest_instant_s=3.5, rejections=rejections,
                schema_errors=1, errors=[VdaAgvError(error_type="noRoute", level="FATAL",
                                                     description="blocked at n3")]),
        VdaLink(agent_id="acme-agv2", manufacturer="acme", serial_number="agv2",
                connection="CONNECTIONBROKEN", lost=True)])


def _get(stack: Stack, facility: str = "fa", role: str | None = "viewer") -> Any:
    with stack.client(role) as c:
        return c.get(f"/api/v1/facilities/{facility}/vda")


def _stats(stack: Stack) -> dict[str, Any]:
    with stack.client("viewer") as c:
        return dict(c.get("/api/v1/performance/system").json()["vda_links"])


def test_the_api_shows_what_the_edge_published(stack: Stack, wire: mqtt.Client) -> None:
    """A viewer reads fa's links as published: every figure, the errors, left_out, the
    edge's ts, when the hub received it and that the edge is online."""
    _publish(wire, "fa", encode(_links(1000.0, unacked=6.5, rejections=3)))
    body = wait_for(lambda: (r := _get(stack)).status_code == 200 and r.json()["ts"] == 1000.0
                    and r.json(), what="fa's links at the hub")
    assert body["facility"] == "fa" and body["left_out"] == 2 and body["edge_online"] is True
    assert body["received_at"] is not None and body["age_s"] >= 0
    one, two = body["links"]
    assert one == {
        "agent_id": "acme-agv1", "manufacturer": "acme", "serial_number": "agv1",
        "version": "2.0.0", "connection": "ONLINE", "lost": False, "state_age_s": 0.4,
        "operating_mode": "AUTOMATIC", "order_id": "o-7", "order_unacked_s": 6.5,
        "instants_unacked": 2, "oldest_instant_s": 3.5, "rejections": 3, "schema_errors": 1,
        "errors": [{"error_type": "noRoute", "level": "FATAL",
                    "description": "blocked at n3"}]}
    assert two["agent_id"] == "acme-agv2" and two["lost"] is True
    assert two["connection"] == "CONNECTIONBROKEN" and two["version"] is None


def test_a_newer_message_replaces_it(stack: Stack, wire: mqtt.Client) -> None:
    """The next message is what the API serves, whole (not merged with the last)."""
    _publish(wire, "fa", encode(_links(1001.0, unacked=None, rejections=4)))
    body = wait_for(lambda: (r := _get(stack).json())["ts"] == 1001.0 and r,
                    what="the newer message")
    assert body["links"][0]["order_unacked_s"] is None
    assert body["links"][0]["rejections"] == 4


def test_bad_messages_are_refused_counted_and_change_nothing(stack: Stack,
                                                             wire: mqtt.Client) -> None:
    """Bytes that are not a VdaLinks, fb's links on fa's topic and links of a facility the
    hub never heard of are refused (counted by reason in the hub's figures and /metrics);
    fa's links stay as they were and the hub keeps serving."""
    _publish(wire, "fa", encode(_links(1002.0, unacked=1.0, rejections=5)))
    before = wait_for(lambda: (r := _get(stack).json())["ts"] == 1002.0 and r)
    refused = _stats(stack)["refused"]
    other = _links(1003.0, unacked=9.0, rejections=9).model_copy(update={"facility": "fb"})
    _publish(wire, "fa", b"\x93\x01\xa9vda_links\xc1")  # 0xc1 is never msgpack
    _publish(wire, "fa", encode(other))
    _publish(wire, "zz", encode(other.model_copy(update={"facility": "zz"})))

    def counted() -> bool:
        now = _stats(stack)["refused"]
        return all(now.get(k, 0) > refused.get(k, 0)
                   for k in ("malformed", "facility_mismatch", "unknown_facility"))

    wait_for(counted, what="three refusals counted")
    after = _get(stack).json()
    assert {k: v for k, v in after.items() if k != "age_s"} == \
        {k: v for k, v in before.items() if k != "age_s"}
    assert _get(stack, "zz").status_code == 404
    with stack.client(None) as c:
        assert c.get("/health").json()["status"] == "ok"
        metrics = c.get("/metrics").text
    assert 'fleetflow_hub_vda_links_refused_total{reason="facility_mismatch"}' in metrics
    assert "hub refused a VDA 5050 link report" in stack.output("hub")


def test_a_facility_never_heard_on_edge_vda_has_no_links(stack: Stack,
                                                         wire: mqtt.Client) -> None:
    """A facility whose edge reported its status but no links: empty, ``received_at`` null;
    an empty retained payload (the retained message cleared) forgets fa's links too."""
    _publish(wire, "fq", encode(EdgeStatus(facility="fq", online=True)), kind="status")
    body = wait_for(lambda: (r := _get(stack, "fq")).status_code == 200 and r.json())
    assert body["links"] == [] and body["received_at"] is None and body["ts"] is None
    assert body["edge_online"] is True
    _publish(wire, "fa", b"")
    body = wait_for(lambda: (r := _get(stack).json())["received_at"] is None and r)
    assert body["links"] == [] and body["left_out"] == 0


def test_tokens_and_unknown_facilities(stack: Stack) -> None:
    """No token: 401; a facility no edge of which reported: 404; the answer's model is in
    the OpenAPI."""
    assert _get(stack, role=None).status_code == 401
    r = _get(stack, "nowhere")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    with stack.client(None) as c:
        spec = c.get("/openapi.json").json()
    op = spec["paths"]["/api/v1/facilities/{facility_id}/vda"]["get"]
    assert op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/VdaLinksOut")
    assert "order_unacked_s" in spec["components"]["schemas"]["VdaLinkOut"]["properties"]
