"""The embedded broker's fixes to amqtt 0.12 (broker/_amqtt_broker.py, docs/broker.md).

Each defect is shown on amqtt's own ``Broker`` (run the same way, in its own process), and
shown fixed on ``fleetflow broker``.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from broker import BrokerProcess, check_amqtt_version, free_port, mqtt_ready, stop_process

_STOCK = """
import asyncio, sys
from amqtt.broker import Broker
from broker import BrokerSettings, amqtt_config
async def main():
    b = Broker(amqtt_config(BrokerSettings(port=int(sys.argv[1]), allow_anonymous_dev=True,
                                           passwd=sys.argv[2])))
    await b.start()
    await asyncio.Event().wait()
asyncio.run(main())
"""


@contextmanager
def _broker(kind: str, tmp: Path) -> Iterator[tuple[int, Path]]:
    """``fleetflow broker`` ("ours") or amqtt's stock ``Broker`` ("stock"), anonymous dev."""
    port = free_port()
    log = tmp / f"{kind}.log"
    if kind == "ours":
        with BrokerProcess(port=port, passwd=tmp / "passwd", allow_anonymous_dev=True,
                           log_file=log):
            yield port, log
        return
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-c", _STOCK, str(port), str(tmp / "passwd")],
                                stdout=out, stderr=out, cwd=Path(__file__).parents[1])
    try:
        deadline = time.monotonic() + 15
        while not mqtt_ready("127.0.0.1", port):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        yield port, log
    finally:
        stop_process(proc)


def _client(port: int, cid: str, *, clean: bool = True,
            on_message: Callable[[mqtt.MQTTMessage], None] | None = None,
            subscribe: list[tuple[str, int]] | None = None) -> mqtt.Client:
    """A connected paho client; returns once its subscriptions are acknowledged."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv311,
                    clean_session=clean)
    subscribed = threading.Event()
    connected = threading.Event()
    if on_message is not None:
        c.on_message = lambda _c, _u, m: on_message(m)
    c.on_subscribe = lambda *_: subscribed.set()

    def on_connect(client: mqtt.Client, *_: Any) -> None:
        connected.set()
        if subscribe:
            client.subscribe(subscribe)

    c.on_connect = on_connect
    c.connect("127.0.0.1", port)
    c.loop_start()
    assert connected.wait(10), f"{cid} did not connect"
    if subscribe:
        assert subscribed.wait(10), f"{cid} got no SUBACK"
    return c


def _close(*clients: mqtt.Client) -> None:
    for c in clients:
        c.disconnect()
        c.loop_stop()


def _subscribe_during_broadcasts(port: int, messages: int = 1500, churn: int = 50
                                 ) -> tuple[dict[str, int], int, int]:
    """Subscribers count QoS 1 messages while ``churn`` clients connect and subscribe.

    Returns lost messages per subscriber, churn clients never acknowledged, and messages
    that reached a subscriber on a topic it did not subscribe to."""
    got: dict[str, set[int]] = {}
    foreign = [0]

    def counter(name: str) -> Callable[[mqtt.MQTTMessage], None]:
        got[name] = set()

        def on_message(m: mqtt.MQTTMessage) -> None:
            if m.topic.startswith("t/"):
                got[name].add(int(m.payload))
            else:
                foreign[0] += 1
        return on_message

    early = [_client(port, f"early{i}", on_message=counter(f"early{i}"),
                     subscribe=[("t/data" if i == 0 else "t/+", 1)]) for i in range(2)]
    pub = _client(port, "pub")
    for k in range(churn):
        pub.publish(f"r/{k}/conn", b"online", qos=1, retain=True)
    unacked = [0]
    churned: list[mqtt.Client] = []

    def churn_clients() -> None:
        for j in range(churn):
            try:
                churned.append(_client(port, f"churn{j}", clean=j % 2 == 0,
                                       subscribe=[(f"r/{j}/#", 1), ("x/#", 1), (f"u/{j}", 1)]))
            except AssertionError:
                unacked[0] += 1
            time.sleep(0.01)

    worker = threading.Thread(target=churn_clients)
    worker.start()
    time.sleep(0.2)
    late = _client(port, "late", on_message=counter("late"), subscribe=[("t/#", 1)])
    for n in range(messages):
        pub.publish("t/data", str(n).encode(), qos=1)
        if n % 50 == 0:
            time.sleep(0.01)
    worker.join()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(len(s) < messages for s in got.values()):
        time.sleep(0.1)
    # "late" subscribed while messages flowed: it owes only what followed its SUBACK.
    lost = {name: messages - len(s) for name, s in got.items() if name != "late"}
    if got["late"]:
        lost["late"] = messages - min(got["late"]) - len(got["late"])
    _close(*early, pub, late, *churned)
    return lost, unacked[0], foreign[0]


def test_subscribes_during_broadcasts_lose_no_message_and_no_connection(tmp_path: Path) -> None:
    """50 clients subscribe while QoS 1 messages flow: none lost, none dropped, no traceback."""
    with _broker("ours", tmp_path) as (port, log):
        for _ in range(2):
            lost, unacked, foreign = _subscribe_during_broadcasts(port)
            assert lost == {"early0": 0, "early1": 0, "late": 0}
            assert unacked == 0 and foreign == 0
        text = log.read_text()
    assert "Traceback" not in text and "RuntimeError" not in text, text[-3000:]


def _retained_to_a_resumed_session(port: int) -> list[str]:
    """Topics a persistent session receives on reconnecting, subscribed only to ``t/#``."""
    watcher = _client(port, "watcher", subscribe=[("r/#", 1)])
    pub = _client(port, "pub")
    pub.publish("r/1/conn", b"online", qos=1, retain=True).wait_for_publish(5)
    first = _client(port, "resumer", clean=False, subscribe=[("t/#", 1)])
    _close(first)
    seen: list[str] = []
    again = _client(port, "resumer", clean=False, on_message=lambda m: seen.append(m.topic))
    time.sleep(1.0)
    _close(again, watcher, pub)
    return seen


def test_resumed_session_gets_no_retained_message_of_other_filters(tmp_path: Path) -> None:
    """A reconnecting persistent session receives no retained message it did not subscribe to."""
    with _broker("ours", tmp_path) as (port, _):
        assert _retained_to_a_resumed_session(port) == []


def test_stock_amqtt_sends_other_filters_retained_messages(tmp_path: Path) -> None:
    """amqtt 0.12's own broker has defect 2 (why ``FleetflowBroker`` exists)."""
    with _broker("stock", tmp_path) as (port, _):
        assert _retained_to_a_resumed_session(port) == ["r/1/conn"]


def _delivered_qos(port: int) -> int:
    """QoS at which a QoS 1 subscriber receives a QoS 0 publish."""
    got: list[int] = []
    sub = _client(port, "sub", on_message=lambda m: got.append(m.qos), subscribe=[("q/#", 1)])
    pub = _client(port, "pub")
    pub.publish("q/1", b"x", qos=0)
    deadline = time.monotonic() + 5
    while not got and time.monotonic() < deadline:
        time.sleep(0.02)
    _close(sub, pub)
    assert got, "nothing delivered"
    return got[0]


def test_delivery_qos_is_capped_by_the_publishers(tmp_path: Path) -> None:
    """A QoS 0 publish reaches a QoS 1 subscription at QoS 0 [MQTT-3.8.4-6]."""
    with _broker("ours", tmp_path) as (port, _):
        assert _delivered_qos(port) == 0


def test_stock_amqtt_raises_delivery_qos(tmp_path: Path) -> None:
    """amqtt 0.12's own broker delivers at the subscription's QoS (defect 3)."""
    with _broker("stock", tmp_path) as (port, _):
        assert _delivered_qos(port) == 1


def test_broker_refuses_another_amqtt_version() -> None:
    """The patches name the amqtt release they were written for and check it at start."""
    check_amqtt_version()  # the installed one
    with pytest.raises(RuntimeError, match=r"patches amqtt 0\.12\.1"):
        check_amqtt_version("0.13.0")
