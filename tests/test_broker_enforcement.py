"""The ACL enforced by real brokers: the embedded amqtt broker and Mosquitto with the
generated config, both running the same scenarios with the same users."""

from __future__ import annotations

import getpass
import queue
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from broker import (
    BrokerProcess,
    Identity,
    PasswordFile,
    free_port,
    mosquitto,
    write_mosquitto_config,
)

USERS = {
    "ops": Identity("ops", "admin"),
    "a1": Identity("a1", "agent", facility="F1"),
    "a2": Identity("a2", "agent", facility="F1"),
    "edge1": Identity("edge1", "edge", facility="F1"),
    "edge2": Identity("edge2", "edge", facility="F2"),
    "hub": Identity("hub", "hub"),
    "agv7": Identity("agv7", "agv", manufacturer="Acme", serial="S7"),
}
WAIT = 5.0


def password(name: str) -> str:
    """Each test user's password."""
    return f"pw-{name}"


def make_passwd(path: Path) -> PasswordFile:
    """A user file holding USERS."""
    pf = PasswordFile(path)
    for ident in USERS.values():
        pf.add(ident, password(ident.name), iterations=50)
    return pf


@pytest.fixture(
    scope="module",
    params=["amqtt", pytest.param("mosquitto", marks=pytest.mark.mosquitto)],
)
def broker_port(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[int]:
    """A running broker (embedded amqtt, or Mosquitto with our generated config)."""
    tmp = tmp_path_factory.mktemp(request.param)
    pf = make_passwd(tmp / "passwd")
    port = free_port()
    if request.param == "amqtt":
        with BrokerProcess("127.0.0.1", port, pf.path):
            yield port
        return
    binary = request.getfixturevalue("mosquitto_bin")
    conf = write_mosquitto_config(tmp / "mosquitto", pf, host="127.0.0.1", port=port,
                                  run_as=getpass.getuser())
    with mosquitto(conf, port, binary):
        yield port


class Client:
    """A paho client whose callbacks only hand results to queues."""

    def __init__(self, port: int, user: str | None, pw: str | None = None,
                 *, client_id: str = "", will: tuple[str, bytes] | None = None) -> None:
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.connacks: queue.Queue[Any] = queue.Queue()
        self.subacks: queue.Queue[list[int]] = queue.Queue()
        self.paho = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                protocol=mqtt.MQTTv311)
        if user is not None:
            self.paho.username_pw_set(user, password(user) if pw is None else pw)
        if will is not None:
            self.paho.will_set(will[0], will[1], qos=1)
        self.paho.on_connect = lambda c, u, f, rc, p: self.connacks.put(rc)
        self.paho.on_message = lambda c, u, m: self.messages.put((m.topic, bytes(m.payload)))
        self.paho.on_subscribe = lambda c, u, mid, rcs, p: self.subacks.put(
            [int(r.value) for r in rcs])
        self.paho.connect("127.0.0.1", port)
        self.paho.loop_start()
        self.rc = self.connacks.get(timeout=WAIT)

    def subscribe(self, *filters: str) -> list[int]:
        """Subscribe (QoS 1) and return the SUBACK codes."""
        self.paho.subscribe([(f, 1) for f in filters])
        return self.subacks.get(timeout=WAIT)

    def publish(self, topic: str, payload: bytes) -> None:
        """Publish at QoS 1 and wait for the PUBACK."""
        self.paho.publish(topic, payload, qos=1).wait_for_publish(WAIT)

    def next(self) -> tuple[str, bytes]:
        """The next message received."""
        return self.messages.get(timeout=WAIT)

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self.paho.disconnect()
        self.paho.loop_stop()


@pytest.fixture
def connect(broker_port: int) -> Iterator[Any]:
    """``connect(user, ...)`` opens a client on the broker; all are closed afterwards."""
    clients: list[Client] = []

    def _connect(user: str | None, pw: str | None = None, **kw: Any) -> Client:
        c = Client(broker_port, user, pw, **kw)
        clients.append(c)
        return c

    yield _connect
    for c in clients:
        c.close()


def T(facility: str, rest: str) -> str:
    """A native topic."""
    return f"fleetflow/v1/{facility}/{rest}"


def test_valid_agent_message_arrives(connect: Any) -> None:
    """An agent's own state reaches the edge of its facility."""
    edge = connect("edge1")
    assert edge.subscribe(T("F1", "agent/+/state")) == [1]
    connect("a1").publish(T("F1", "agent/a1/state"), b"hello")
    assert edge.next() == (T("F1", "agent/a1/state"), b"hello")


def test_agent_cannot_publish_as_another_agent(connect: Any) -> None:
    """A message an agent publishes on another agent's topic never arrives."""
    ops = connect("ops")
    ops.subscribe("fleetflow/#")
    a1 = connect("a1")
    a1.publish(T("F1", "agent/a2/state"), b"forged")
    a1.publish(T("F1", "agent/a2/event"), b"forged")
    a1.publish(T("F2", "agent/a1/state"), b"other facility")
    a1.publish(T("F1", "edge/events"), b"as the edge")
    a1.publish(T("F1", "agent/a1/event"), b"control")
    assert ops.next() == (T("F1", "agent/a1/event"), b"control")
    assert ops.messages.empty()


def test_agent_cannot_read_another_agents_cmd(connect: Any) -> None:
    """An agent subscribed to another agent's cmd receives only its own commands."""
    a2 = connect("a2")
    a2.subscribe(T("F1", "agent/a1/cmd"))
    a2.subscribe(T("F1", "agent/a2/cmd"))
    edge = connect("edge1")
    edge.publish(T("F1", "agent/a1/cmd"), b"for a1")
    edge.publish(T("F1", "agent/a2/cmd"), b"for a2")
    assert a2.next() == (T("F1", "agent/a2/cmd"), b"for a2")
    assert a2.messages.empty()


def test_agent_wildcard_subscription_sees_only_its_own(connect: Any) -> None:
    """A wildcard subscription does not widen what an agent receives."""
    a2 = connect("a2")
    a2.subscribe("#")
    a2.subscribe(T("F1", "agent/a2/cmd"))
    edge = connect("edge1")
    edge.publish(T("F1", "agent/a1/cmd"), b"for a1")
    edge.publish(T("F1", "edge/events"), b"events")
    edge.publish(T("F1", "agent/a2/cmd"), b"for a2")
    assert a2.next() == (T("F1", "agent/a2/cmd"), b"for a2")
    assert a2.messages.empty()


def test_agent_reads_its_edges_status(connect: Any) -> None:
    """An agent may read its facility's edge status (to resend when the edge is back)."""
    a1 = connect("a1")
    a1.subscribe(T("F1", "edge/status"))
    edge = connect("edge1")
    edge.publish(T("F1", "edge/status"), b"online")
    assert a1.next() == (T("F1", "edge/status"), b"online")


@pytest.mark.parametrize(
    ("user", "pw"),
    [("a1", "wrong"), ("nobody", "pw-nobody"), (None, None), ("a1", "")],
    ids=["wrong-password", "unknown-user", "anonymous", "empty-password"],
)
def test_bad_credentials_are_refused(connect: Any, user: str | None, pw: str | None) -> None:
    """A wrong password, an unknown user or no user at all gets CONNACK refused."""
    client = connect(user, pw)
    assert client.rc.is_failure


def _utf8(text: str) -> bytes:
    data = text.encode()
    return len(data).to_bytes(2, "big") + data


def connect_with_will_and_drop(port: int, user: str, will_topic: str) -> int:
    """CONNECT (raw MQTT 3.1.1) with a QoS 1 will, then drop the socket without
    DISCONNECT, so that an accepted will fires; returns the CONNACK code."""
    payload = (_utf8(f"will-{user}-{time.monotonic_ns()}") + _utf8(will_topic)
               + _utf8("offline") + _utf8(user) + _utf8(password(user)))
    variable = _utf8("MQTT") + bytes([4, 0x80 | 0x40 | 0x08 | 0x04 | 0x02, 0, 60])
    body = variable + payload
    assert len(body) < 128
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as s:
        s.sendall(bytes([0x10, len(body)]) + body)
        connack = s.recv(4)
    return connack[3]


def test_will_on_a_foreign_topic_never_speaks(connect: Any, broker_port: int) -> None:
    """An agent's will on another agent's topic is refused at CONNECT (amqtt) or never
    published (Mosquitto); a will on its own topic is."""
    ops = connect("ops")
    ops.subscribe("fleetflow/#")
    rc = connect_with_will_and_drop(broker_port, "a1", T("F1", "agent/a2/conn"))
    assert connect_with_will_and_drop(broker_port, "a1", T("F1", "agent/a1/conn")) == 0
    assert ops.next() == (T("F1", "agent/a1/conn"), b"offline")
    connect("a1").publish(T("F1", "agent/a1/state"), b"control")
    assert ops.next() == (T("F1", "agent/a1/state"), b"control")
    assert ops.messages.empty()
    assert rc in (0, 5)


def test_edge_cannot_read_another_facility(connect: Any) -> None:
    """The edge of F1 receives F1 traffic but nothing of F2."""
    edge1 = connect("edge1")
    edge1.subscribe(T("F2", "#"))
    edge1.subscribe(T("F1", "#"))
    ops = connect("ops")
    ops.publish(T("F2", "edge/cmd"), b"F2")
    ops.publish(T("F1", "edge/cmd"), b"F1")
    assert edge1.next() == (T("F1", "edge/cmd"), b"F1")
    assert edge1.messages.empty()


def test_edge_cannot_write_another_facility(connect: Any) -> None:
    """The edge of F1 cannot command F2's agents."""
    a2 = connect("a2")
    a2.subscribe(T("F1", "agent/a2/cmd"))
    edge2 = connect("edge2")
    edge2.publish(T("F1", "agent/a2/cmd"), b"from F2")
    connect("edge1").publish(T("F1", "agent/a2/cmd"), b"from F1")
    assert a2.next() == (T("F1", "agent/a2/cmd"), b"from F1")
    assert a2.messages.empty()


def test_hub_reads_edge_events_and_writes_edge_cmd(connect: Any) -> None:
    """The hub reads every facility's edge events and commands an edge."""
    hub = connect("hub")
    hub.subscribe("fleetflow/v1/+/edge/events")
    connect("edge2").publish(T("F2", "edge/events"), b"seq 1")
    assert hub.next() == (T("F2", "edge/events"), b"seq 1")
    edge1 = connect("edge1")
    edge1.subscribe(T("F1", "edge/cmd"))
    hub.publish(T("F1", "edge/cmd"), b"do it")
    assert edge1.next() == (T("F1", "edge/cmd"), b"do it")


def test_hub_cannot_read_agent_topics_or_write_agent_cmd(connect: Any) -> None:
    """The hub sees no agent traffic and cannot command agents directly."""
    hub = connect("hub")
    hub.subscribe(T("F1", "agent/+/state"))
    hub.subscribe("fleetflow/v1/+/edge/status")
    a1 = connect("a1")
    a1.subscribe(T("F1", "agent/a1/cmd"))
    hub.publish(T("F1", "agent/a1/cmd"), b"bypass the edge")
    a1.publish(T("F1", "agent/a1/state"), b"state")
    connect("edge1").publish(T("F1", "edge/status"), b"online")
    assert hub.next() == (T("F1", "edge/status"), b"online")
    assert hub.messages.empty()
    assert a1.messages.empty()


def test_vda_agv_is_scoped_to_its_serial(connect: Any) -> None:
    """An AGV publishes only its own state and reads only its own order."""
    edge = connect("edge1")
    edge.subscribe("uagv/#")
    agv = connect("agv7")
    agv.subscribe("uagv/v2/Acme/S8/order")
    agv.subscribe("uagv/v2/Acme/S7/order")
    agv.publish("uagv/v2/Acme/S8/state", b"not me")
    agv.publish("uagv/v2/Acme/S7/order", b"self-order")
    agv.publish("uagv/v2/Acme/S7/state", b"me")
    assert edge.next() == ("uagv/v2/Acme/S7/state", b"me")
    assert edge.messages.empty()
    edge.publish("uagv/v2/Acme/S8/order", b"order S8")
    edge.publish("uagv/v2/Acme/S7/order", b"order S7")
    assert agv.next() == ("uagv/v2/Acme/S7/order", b"order S7")
    assert agv.messages.empty()
