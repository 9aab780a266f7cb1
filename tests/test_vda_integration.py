"""Over a real Mosquitto broker: the test AGV (its own process, paho) and ``VdaMaster``
complete a robot step, and a killed AGV's will reaches the master."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from broker import stop_process
from edge_runtime.vda5050 import (
    ActionSpec,
    PathNode,
    VdaAgvLost,
    VdaAgvOnline,
    VdaMaster,
    VdaMessage,
    VdaStepDone,
    VdaStepFailed,
    VdaStepStarted,
)
from topics import decode_vda, encode_vda

pytestmark = pytest.mark.mosquitto
ROOT = Path(__file__).resolve().parents[1]
M = "acme"


def start_agv(port: int, serial: str, version: str = "2.1.0") -> subprocess.Popen[bytes]:
    """The test AGV as its own process, standing on n0 at (0, 0)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "agents_sim.vda_agv", "--port", str(port), "--manufacturer", M,
         "--serial", serial, "--version", version, "--node", "n0", "--x", "0", "--y", "0",
         "--speed", "4", "--action-s", "1", "--state-interval", "1"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


class MasterLoop:
    """``VdaMaster`` behind a paho client: decode, handle, encode, publish."""

    def __init__(self, port: int, master: VdaMaster) -> None:
        self.master = master
        self.inbox: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.outcomes: list[Any] = []
        self.sent: list[dict[str, Any]] = []
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="master",
                                  protocol=mqtt.MQTTv311)
        self.client.on_message = lambda c, u, msg: self.inbox.put(msg)
        self.client.connect("127.0.0.1", port)
        for topic in master.subscriptions():
            qos = 1 if topic.endswith("connection") else 0
            self.client.subscribe(topic, qos)
        self.client.loop_start()

    def publish(self, out: list[Any]) -> None:
        for item in out:
            if isinstance(item, VdaMessage):
                kind = item.topic.rsplit("/", 1)[1]
                self.sent.append(item.message)
                self.client.publish(item.topic, encode_vda(item.message, kind), qos=0)  # type: ignore[arg-type]
            else:
                self.outcomes.append(item)

    def run_until(self, cond: type, timeout: float) -> Any:
        """Pump messages until an outcome of type ``cond`` (or a failure) shows up."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for o in self.outcomes:
                if isinstance(o, cond):
                    return o
            try:
                msg = self.inbox.get(timeout=0.1)
            except queue.Empty:
                self.publish(self.master.tick(time.time()))
                continue
            kind = msg.topic.rsplit("/", 1)[1]
            decoded = decode_vda(msg.payload, kind)  # type: ignore[arg-type]
            self.publish(self.master.handle(msg.topic, decoded, time.time()))
        raise AssertionError(f"no {cond.__name__} within {timeout}s; got {self.outcomes}")

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.mark.parametrize("version", ["2.0.0", "2.1.0"])
def test_a_robot_step_drives_three_nodes_and_picks(mosquitto_port: int, version: str) -> None:
    """Order (released 2 nodes at a time, stitched), 3 edges, pick: done over MQTT."""
    agv = start_agv(mosquitto_port, "agv1", version)
    loop = MasterLoop(mosquitto_port, VdaMaster(base_length=2))
    try:
        online = loop.run_until(VdaAgvOnline, 10)
        assert online.version == version
        path = [PathNode(f"n{i}", 2.0 * i, 0.0) for i in range(4)]
        loop.publish(loop.master.assign(M, "agv1", workflow_id="wf", step_id="s1",
                                        now=time.time(), path=path,
                                        actions=[ActionSpec("pick", {"stationName": "rack",
                                                                     "loadId": "L9",
                                                                     "loadType": "EPAL"})]))
        loop.run_until(VdaStepStarted, 10)
        done = loop.run_until(VdaStepDone, 20)
        assert not any(isinstance(o, VdaStepFailed) for o in loop.outcomes)
        assert done.outputs["node"] == "n3"
        assert done.outputs["loads"] == [{"loadId": "L9", "loadType": "EPAL"}]
        orders = [m for m in loop.sent if "nodes" in m]
        assert [m["orderUpdateId"] for m in orders][:2] == [0, 1]
        assert all(m["version"] == version for m in loop.sent)
    finally:
        loop.close()
        stop_process(agv, 5)


def test_a_killed_agv_is_reported_lost_by_its_will(mosquitto_port: int) -> None:
    """SIGKILL → the broker publishes CONNECTIONBROKEN → the master fails the step."""
    agv = start_agv(mosquitto_port, "agv2")
    loop = MasterLoop(mosquitto_port, VdaMaster())
    try:
        loop.run_until(VdaAgvOnline, 10)
        path = [PathNode(f"n{i}", 20.0 * i, 0.0) for i in range(3)]  # a long way
        loop.publish(loop.master.assign(M, "agv2", workflow_id="wf", step_id="s1",
                                        now=time.time(), path=path))
        loop.run_until(VdaStepStarted, 10)
        agv.kill()
        agv.wait(5)
        lost = loop.run_until(VdaAgvLost, 10)
        assert lost.reason == "CONNECTIONBROKEN"
        failed = loop.run_until(VdaStepFailed, 1)
        assert failed.error_type == "agv_lost" and failed.retryable
    finally:
        loop.close()
        stop_process(agv, 5)


def test_a_graceful_stop_announces_offline(mosquitto_port: int) -> None:
    """SIGTERM → the AGV publishes OFFLINE before disconnecting."""
    agv = start_agv(mosquitto_port, "agv3")
    loop = MasterLoop(mosquitto_port, VdaMaster())
    try:
        loop.run_until(VdaAgvOnline, 10)
        stop_process(agv, 5)
        assert agv.returncode == 0, agv.stderr.read() if agv.stderr else b""
        assert loop.run_until(VdaAgvLost, 10).reason == "OFFLINE"
    finally:
        loop.close()
        stop_process(agv, 5)
