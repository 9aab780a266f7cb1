"""The edge's MQTT client publishes MQTT 3.1.1 QoS 0/1 messages without a lock per message:
they still reach the broker, in order, and every waiter learns of its own completion.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from conftest import run_mosquitto
from paho.mqtt.enums import CallbackAPIVersion

from edge_runtime.shell import BufferedClient

pytestmark = pytest.mark.mosquitto


@pytest.fixture
def broker(mosquitto_bin: str, tmp_path: Path) -> Iterator[int]:
    """A Mosquitto on a free port with no queue or in-flight limits."""
    with run_mosquitto(mosquitto_bin, tmp_path,
                       extra_conf="max_queued_messages 0\nmax_inflight_messages 0\n") as port:
        yield port


def _listener(port: int, got: list[bytes]) -> mqtt.Client:
    ready = threading.Event()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="lean-sub", protocol=mqtt.MQTTv311)
    c.on_message = lambda _c, _u, m: got.append(bytes(m.payload))
    c.on_subscribe = lambda *_a: ready.set()
    c.on_connect = lambda cl, *_a: cl.subscribe("lean/#", 1)
    c.connect("127.0.0.1", port)
    c.loop_start()
    assert ready.wait(10)
    return c


def _wait_for(got: list[bytes], n: int) -> None:
    deadline = time.monotonic() + 20
    while len(got) < n and time.monotonic() < deadline:
        time.sleep(0.02)


def test_many_threads_each_see_their_own_publish_complete(broker: int) -> None:
    """Threads waiting on their own QoS 1 publishes all return, each with its own published."""
    got: list[bytes] = []
    sub = _listener(broker, got)
    client = BufferedClient(CallbackAPIVersion.VERSION2, client_id="lean-pub",
                            protocol=mqtt.MQTTv311)
    client.max_inflight_messages_set(0)
    client.connect("127.0.0.1", broker)
    client.loop_start()
    done: list[bool] = []

    def worker(k: int) -> None:
        infos = [client.publish(f"lean/{k}", f"{k}-{i}".encode(), qos=1) for i in range(50)]
        for info in infos:
            info.wait_for_publish(10)
        done.append(all(info.is_published() for info in infos))

    try:
        threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert done == [True] * 8
        _wait_for(got, 400)
        for k in range(8):  # each publisher's messages arrive in its order
            assert [p for p in got if p.startswith(f"{k}-".encode())] == [
                f"{k}-{i}".encode() for i in range(50)]
    finally:
        client.disconnect()
        client.loop_stop()
        sub.disconnect()
        sub.loop_stop()


def test_a_qos1_publish_before_connecting_goes_out_once_connected(broker: int) -> None:
    """A QoS 1 message published while not yet connected is kept and sent on connecting."""
    got: list[bytes] = []
    sub = _listener(broker, got)
    client = BufferedClient(CallbackAPIVersion.VERSION2, client_id="lean-early",
                            protocol=mqtt.MQTTv311)
    try:
        info = client.publish("lean/early", b"kept", qos=1)
        assert info.rc == mqtt.MQTT_ERR_NO_CONN  # paho's answer; the message is kept
        client.connect("127.0.0.1", broker)
        client.loop_start()
        _wait_for(got, 1)
        assert got == [b"kept"]
    finally:
        client.disconnect()
        client.loop_stop()
        sub.disconnect()
        sub.loop_stop()
