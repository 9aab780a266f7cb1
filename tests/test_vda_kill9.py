"""kill -9 of the edge (``fleetflow edge --vda``, its own process) while a VDA 5050 test AGV
drives an order: the AGV drives on, the restarted edge takes the order up again from its
records (docs/decisions.md, "The VDA 5050 master's state is a record"), and the step
completes — its first attempt, its one order, no timeout — on Mosquitto and on the embedded
broker."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from test_edge_e2e import Edge, F, Watch, _online
from test_edge_e2e import broker_port as broker_port  # the fixture: both brokers

from agents_sim.vda_agv import AgvRunner, run_agv
from edge_runtime.core import Event
from edge_runtime.store import EventStore, store_path
from topics import decode_vda

pytestmark = pytest.mark.slow
# dock → a1 → a2 → a3 → a4 → pack: 25 m at 1 m/s. The timeout would end the step if the
# restarted edge did not take its order up; the step needs ~25 s and gets 60.
TEMPLATE = """\
name: vda_long
steps:
  - {id: haul, kind: robot, capabilities: [transport], location: pack, timeout_s: 60}
"""


class Orders:
    """Records the orderId of every ``order`` message the AGV is sent."""

    def __init__(self, port: int) -> None:
        self.ids: list[str] = []
        subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="order-watch")
        self.client.on_connect = lambda c, *_: c.subscribe("uagv/v2/acme/agv1/order", 0)
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert subscribed.wait(10), "the order watch did not subscribe"

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self.ids.append(str(decode_vda(bytes(msg.payload), "order")["orderId"]))

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _until(runner: AgvRunner, check: Callable[[AgvRunner], bool], what: str,
           timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with runner.lock:
            if check(runner):
                return
        assert time.monotonic() < deadline, f"the AGV never {what}"
        time.sleep(0.05)


def _stored(edge: Edge) -> list[Event]:
    with EventStore(store_path(edge.data), F, read_only=True) as store:
        return list(store.read())


@pytest.mark.parametrize("broker_port", ["mosquitto", "amqtt"], indirect=True)
def test_kill9_of_the_edge_mid_order_and_the_step_completes_without_timeout(
        broker_port: int, tmp_path: Path) -> None:
    """The edge dies by SIGKILL with the AGV between two nodes of its order; restarted, it
    follows the same order to its end: the step is done with attempt 1, no step failed or
    was requeued, and the AGV was sent exactly one orderId."""
    edge = Edge(broker_port, tmp_path / "edge")
    (edge.templates / "vda_long.yaml").write_text(TEMPLATE)
    edge.start_args = ["--vda"]
    watch = Watch(broker_port)
    orders = Orders(broker_port)
    agv: AgvRunner | None = None
    try:
        edge.start()
        watch.wait_for(_online, 60)
        agv = run_agv("127.0.0.1", broker_port, "acme", "agv1", node_id="dock", x=0.0,
                      y=0.0, map_id="demo_floor", speed=1.0, action_s=0.5,
                      state_interval_s=1.0)
        watch.wait_for(lambda w: "agent_joined" in w.kinds(), 60)
        watch.command_until_replied("create_workflow", template="vda_long", workflow_id="w1")
        _until(agv, lambda r: r.model.last_node_id == "a1" and r.model.driving,
               "passed a1 and drove on")
        edge.signal(signal.SIGKILL)  # mid-order: between a1 and a2, four nodes to go
        edge.wait()
        time.sleep(1.0)
        with agv.lock:
            assert agv.model.driving and agv.model.order_id and len(agv.model.nodes) >= 3
        edge.start()
        deadline = time.monotonic() + 90
        while "workflow_completed" not in [e.kind for e in _stored(edge)]:
            assert time.monotonic() < deadline, [(e.kind, e.data) for e in _stored(edge)][-12:]
            time.sleep(0.5)
        edge.signal(signal.SIGTERM)
        assert edge.wait() == 0
        assert agv.faults == []
    finally:
        if agv is not None:
            agv.stop()
        orders.close()
        watch.close()
        edge.close()
    events = [e for e in _stored(edge) if e.workflow_id == "w1"]
    kinds = [e.kind for e in events]
    assigned = [e.data for e in events if e.kind == "step_assigned"]
    assert [(a["step"], a["attempt"]) for a in assigned] == [("haul", 1)]
    assert kinds.count("step_done") == 1 and "workflow_completed" in kinds
    assert not {"step_failed", "step_requeued", "step_cancelling"} & set(kinds), kinds
    assert orders.ids and len(set(orders.ids)) == 1, orders.ids
    assert "VDA 5050: 1 AGV sessions taken up, 1 with an order running" in edge.output()
