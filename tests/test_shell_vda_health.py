"""``edge/vda`` through a real edge: ``fleetflow edge --vda`` as its own process on a real
Mosquitto, a VDA 5050 test AGV beside it, and a subscriber reading the retained
``VdaLinks``."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agents_sim.vda_agv import run_agv
from broker import stop_process
from topics import VdaLink, VdaLinks, decode_vda_links, edge_topic

pytestmark = pytest.mark.mosquitto
F = "vdah"
ROOT = Path(__file__).resolve().parents[1]
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else sys.executable
TOPIC = edge_topic(F, "vda")


class Watcher:
    """Subscribes to ``edge/vda`` and keeps every ``VdaLinks`` (with its retain flag)."""

    def __init__(self, port: int, name: str) -> None:
        self.got: list[tuple[VdaLinks, bool]] = []
        self._cond = threading.Condition()
        subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name)
        self.client.on_connect = lambda c, *_: c.subscribe(TOPIC, qos=1)
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert subscribed.wait(10), "the watcher did not subscribe"

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.got.append((decode_vda_links(bytes(msg.payload)), bool(msg.retain)))
            self._cond.notify_all()

    def wait_for(self, what: Callable[[VdaLinks, bool], bool], timeout: float = 30.0,
                 ) -> VdaLinks:
        """The first message (from now on, or already kept) for which ``what`` holds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for links, retained in self.got:
                    if what(links, retained):
                        return links
                left = deadline - time.monotonic()
                assert left > 0, f"timed out; last {self.got[-1:]}"
                self._cond.wait(min(left, 0.2))

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def edge(mosquitto_port: int, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """An edge running the VDA master on the demo map."""
    (tmp_path / "templates").mkdir()
    with open(tmp_path / "edge.log", "wb") as log:
        proc = subprocess.Popen(
            [PYTHON, "-m", "fleetflow", "edge", "--facility", F, "--broker",
             f"mqtt://127.0.0.1:{mosquitto_port}", "--data", str(tmp_path / "data"),
             "--templates", str(tmp_path / "templates"), "--map",
             str(ROOT / "maps" / "demo.yaml"), "--metrics-port", "0", "--vda"],
            cwd=ROOT, stdout=log, stderr=log)
    try:
        yield proc
    finally:
        stop_process(proc, 10)


def agv1(links: VdaLinks) -> VdaLink | None:
    return next((x for x in links.links if x.agent_id == "agv1"), None)


def refused(links: VdaLinks) -> int:
    """agv1's schema_errors (-1 while it is not listed)."""
    link = agv1(links)
    return -1 if link is None else link.schema_errors


def test_edge_publishes_link_health_and_counts_refused_agv_messages(
        edge: subprocess.Popen[bytes], mosquitto_port: int) -> None:
    """The edge publishes a retained VdaLinks naming its AGV; a state failing the schema and
    one speaking for another AGV each count in that AGV's schema_errors."""
    watcher = Watcher(mosquitto_port, "watcher")
    runner = run_agv("127.0.0.1", mosquitto_port, "acme", "agv1", "2.1.0", node_id="dock",
                     x=0.0, y=0.0, map_id="demo_floor", speed=1.0, state_interval_s=1.0)
    sender = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="intruder")
    try:
        first = watcher.wait_for(lambda m, _r: (x := agv1(m)) is not None and
                                 x.connection == "ONLINE" and x.state_age_s is not None)
        assert first.facility == F and first.left_out == 0
        assert refused(first) == 0
        late = Watcher(mosquitto_port, "late")  # joins later: gets the retained message
        try:
            late.wait_for(lambda m, retained: retained and agv1(m) is not None)
        finally:
            late.close()
        sender.connect("127.0.0.1", mosquitto_port)
        sender.loop_start()
        topic = "uagv/v2/acme/agv1/state"
        sender.publish(topic, json.dumps({"headerId": "nope"}), qos=1).wait_for_publish(5)
        watcher.wait_for(lambda m, _r: refused(m) == 1)
        with runner.lock:
            _, state = runner.model.state(time.time())
        sender.publish(topic, json.dumps({**state, "serialNumber": "agv2"}),
                       qos=1).wait_for_publish(5)
        last = watcher.wait_for(lambda m, _r: refused(m) == 2)
        assert agv1(last).connection == "ONLINE" and not agv1(last).lost  # type: ignore[union-attr]
        assert edge.poll() is None
    finally:
        sender.loop_stop()
        sender.disconnect()
        runner.stop()
        watcher.close()
