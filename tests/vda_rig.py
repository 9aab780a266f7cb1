"""A ``VdaBridge`` (with its ``VdaMaster``) and the real test AGV (``AgvModel``) wired to each
other in virtual time, without a broker: every message passes the VDA 5050 schemas on its
way, as on the wire, and may be dropped (QoS 0). The core is played by the test: it reads
``inputs`` and sends commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agents_sim.vda_agv import AgvModel, Out
from edge_runtime.core import Publish
from edge_runtime.facility import load_map
from edge_runtime.vda5050 import VdaBridge, VdaMaster, VdaTranslation
from topics import Assign, CommandAck, Message, StepDone, decode_vda, encode_vda

F, M, S = "f1", "acme", "agv1"
T0 = 1_700_000_000.0
ROOT = Path(__file__).resolve().parent.parent
DEMO = load_map(ROOT / "maps" / "demo.yaml")


def wire(message: dict[str, Any], kind: str) -> dict[str, Any]:
    """``message`` as it arrives: encoded, checked and decoded as on MQTT."""
    return decode_vda(encode_vda(json.loads(json.dumps(message)), kind), kind)  # type: ignore[arg-type]


class Rig:
    """The edge's VDA side and one test AGV standing on ``dock`` of the demo map."""

    def __init__(self, version: str = "2.1.0", instant_key: str = "actions",
                 speed: float = 1.0, bridge: VdaBridge | None = None,
                 agv: AgvModel | None = None, now: float = T0) -> None:
        self.now = now
        self.bridge = bridge or VdaBridge(F, VdaMaster(graph=DEMO.graph))
        self.agv = agv or AgvModel(M, S, node_id="dock", x=0.0, y=0.0, map_id="demo_floor",
                                   version=version, speed=speed, action_s=1.0,
                                   state_interval_s=1.0, instant_key=instant_key,  # type: ignore[arg-type]
                                   now=now)
        self.inputs: list[Message] = []
        """Core inputs the bridge made, in order."""
        self.sent: list[tuple[str, dict[str, Any]]] = []
        """(kind, message) the master sent to the AGV, delivered or not."""
        self.deliver = True
        """False: what the master sends is lost on the way (QoS 0)."""
        self.records: dict[bytes, bytes] = {}
        """The durable records as an edge store would hold them (``commit``)."""
        self._tick_at = now
        if agv is None:
            self.feed(self.agv.connection("ONLINE", now))
            self.feed(self.agv.state(now))

    def feed(self, out: Out) -> None:
        """One message of the AGV reaches the bridge."""
        kind, message = out
        self.take(self.bridge.inbound(M, S, kind, wire(message, kind), self.now))

    def take(self, translation: VdaTranslation) -> None:
        """Record the bridge's core inputs; deliver its messages to the AGV."""
        self.inputs.extend(translation.inputs)  # type: ignore[arg-type]
        for msg in translation.messages:
            kind = msg.topic.rsplit("/", 1)[1]
            self.sent.append((kind, msg.message))
            if not self.deliver:
                continue
            got = wire(msg.message, kind)
            outs = (self.agv.receive_order(got, self.now) if kind == "order"
                    else self.agv.receive_instant_actions(got, self.now))
            for out in outs:
                self.feed(out)

    def command(self, message: Message) -> None:
        """The core sends ``message`` to the AGV's agent."""
        effect = Publish(f"fleetflow/v1/{F}/agent/{S}/cmd", message)
        assert self.bridge.handles(effect)
        self.take(self.bridge.command(effect, self.now))

    def assign(self, step: str = "s1", location: str = "pack", command_id: str = "a1",
               attempt: int = 1) -> None:
        self.command(Assign(command_id=command_id, workflow_id="w1", step_id=step,
                            kind="robot", location=location, attempt=attempt))

    def run(self, seconds: float, dt: float = 0.1) -> None:
        """Let ``seconds`` of virtual time pass: the AGV drives, the master ticks each second."""
        end = self.now + seconds
        while self.now < end - 1e-9:
            self.now = round(self.now + dt, 6)
            for out in self.agv.step(self.now):
                self.feed(out)
            if self.now - self._tick_at >= 1.0:
                self._tick_at = self.now
                self.take(self.bridge.tick(self.now))

    def run_until(self, what: Any, seconds: float = 60.0, dt: float = 0.1) -> None:
        """Run until ``what(self)`` holds; fails after ``seconds``."""
        end = self.now + seconds
        while not what(self):
            assert self.now < end, f"not within {seconds}s; inputs {self.kinds()[-12:]}"
            self.run(dt, dt)

    def commit(self) -> None:
        """What the edge does with every batch: store the changed records."""
        for key, value in self.bridge.changed().items():
            if value is None:
                self.records.pop(key, None)
            else:
                self.records[key] = value

    def kinds(self) -> list[str]:
        return [type(i).__name__ for i in self.inputs]

    def acks(self) -> list[tuple[str, str, str]]:
        """(command id, outcome, reason) of every ``CommandAck`` made, in order."""
        return [(i.command_id, i.outcome, i.reason) for i in self.inputs
                if isinstance(i, CommandAck)]

    def done(self) -> list[StepDone]:
        return [i for i in self.inputs if isinstance(i, StepDone)]

    def instants(self, action_type: str) -> list[dict[str, Any]]:
        """The instant-action messages of one type sent to the AGV."""
        return [m for k, m in self.sent
                if k == "instantActions" and m["actions"][0]["actionType"] == action_type]

    def orders(self) -> list[str]:
        """The orderIds sent, each once, in order."""
        return list(dict.fromkeys(m["orderId"] for k, m in self.sent if k == "order"))
