"""The scripted agents of ``fleetflow bench throughput``, many in one process.

``python -m bench._throughput_agents --port P --facility F --agents N`` announces ``N``
robots (retained ``conn``, each with its own agent id and topics) and then works every
``Assign`` at once: ``step_accepted``, ``step_started``, ``--progress`` times ``step_progress``
and ``step_done``, with no hold time — the benchmark measures the edge at saturation, not
robots driving. The process keeps the delivery contract of docs/protocol.md, "Delivery":

- every copy of every command is answered with a ``CommandAck``; a command id is applied
  once (a resent ``Assign`` is acknowledged again, not worked again);
- every event it sends (acks included) waits in an outbox until an ``EventAck`` names it,
  and is resent after 1 s, doubling up to 30 s, and at once when ``edge/status`` turns
  online.

The broker runs without ACLs, so the agents share one MQTT connection subscribed to
``agent/+/cmd``: the edge never looks at which connection a message came from, only at its
topic and its ``agent_id``. The client is the edge's own ``BufferedClient`` (commands handled
on its network thread, no per-message thread hand-off), to keep the agents' CPU share small
on a 2-core machine. It prints ``ready`` once subscribed and announced, and, when its stdin
closes, one JSON line of what it did.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agents_sim.native import Outbox
from bench.wire import nodelay
from edge_runtime.shell import BufferedClient
from topics import (
    AgentConn,
    Assign,
    CommandAck,
    EventAck,
    ProtocolError,
    StepAccepted,
    StepDone,
    StepProgress,
    StepStarted,
    agent_topic,
    decode_agent_command,
    decode_edge_status,
    edge_topic,
    encode,
)

__all__ = ["CAPABILITY", "ScriptedAgents", "main"]

CAPABILITY = "tp"
"""What every benchmark agent can do (and every template step asks for)."""


class ScriptedAgents:
    """Answers commands for every agent on one connection; see the module docstring."""

    def __init__(self, client: BufferedClient, facility: str, progress: int) -> None:
        self.client = client
        self.facility = facility
        self.progress = progress
        self.lock = threading.Lock()
        self.box: Outbox[str, tuple[str, bytes]] = Outbox(limit=1_000_000)
        self.seen: set[str] = set()
        self.stats = {"commands": 0, "assigns": 0, "repeats": 0, "events": 0, "resent": 0,
                      "event_acks": 0, "refused": 0, "errors": 0}
        self._n = 0
        self._online: bool | None = None
        self._topics: dict[str, str] = {}

    def on_raw(self, topic: bytes, payload: bytes, mid: int, qos: int) -> None:
        """One message from the broker (paho's network thread: must not raise or block)."""
        try:
            if topic.endswith(b"/status"):
                self._on_status(payload)
            else:
                self._on_command(topic.split(b"/")[4].decode(), payload)
        except (ProtocolError, IndexError, UnicodeDecodeError):
            self.stats["errors"] += 1
        if qos:
            self.client.ack(mid, qos)

    def _on_command(self, agent_id: str, payload: bytes) -> None:
        cmd = decode_agent_command(payload)
        with self.lock, self.client.one_wakeup():
            if isinstance(cmd, EventAck):
                self.stats["event_acks"] += 1
                self.stats["refused"] += len(cmd.refused)
                for event_id in (*cmd.event_ids, *cmd.refused):
                    self.box.ack(event_id)
                return
            self.stats["commands"] += 1
            now = time.time()
            self._send(agent_id, CommandAck(event_id=self._eid(agent_id), agent_id=agent_id,
                                            ts=now, command_id=cmd.command_id), now)
            if cmd.command_id in self.seen:
                self.stats["repeats"] += 1
                return
            self.seen.add(cmd.command_id)
            if isinstance(cmd, Assign):
                self.stats["assigns"] += 1
                self._work(agent_id, cmd, now)

    def _work(self, agent_id: str, cmd: Assign, now: float) -> None:
        common: dict[str, Any] = {"agent_id": agent_id, "workflow_id": cmd.workflow_id,
                                  "step_id": cmd.step_id, "attempt": cmd.attempt, "ts": now}
        self._send(agent_id, StepAccepted(event_id=self._eid(agent_id), **common), now)
        self._send(agent_id, StepStarted(event_id=self._eid(agent_id), **common), now)
        for i in range(self.progress):
            self._send(agent_id, StepProgress(event_id=self._eid(agent_id),
                                              progress=(i + 1) / (self.progress + 1), **common),
                       now)
        self._send(agent_id, StepDone(event_id=self._eid(agent_id),
                                      outputs={"by": agent_id}, **common), now)

    def _send(self, agent_id: str, event: Any, now: float) -> None:
        topic = self._topics.get(agent_id)
        if topic is None:
            topic = self._topics[agent_id] = agent_topic(self.facility, agent_id, "event")
        payload = encode(event)
        self.box.keep(event.event_id, (topic, payload), now)
        self.client.publish(topic, payload, qos=1)
        self.stats["events"] += 1

    def _eid(self, agent_id: str) -> str:
        self._n += 1
        return f"{agent_id}-{self._n}"

    def _on_status(self, payload: bytes) -> None:
        online = decode_edge_status(payload).online
        came_back = online and self._online is False
        self._online = online
        if came_back:
            with self.lock, self.client.one_wakeup():
                self._publish_again(self.box.resend_all(time.time()))

    def resend_due(self) -> None:
        """Send again what waited too long for its ``EventAck`` (from the resend thread)."""
        with self.lock, self.client.one_wakeup():
            self._publish_again(self.box.due(time.time()))

    def _publish_again(self, items: list[tuple[str, bytes]]) -> None:
        for topic, payload in items:
            self.client.publish(topic, payload, qos=1)
        self.stats["resent"] += len(items)

    def announce(self, ids: list[str]) -> None:
        """Every agent's retained ``conn``: online, a robot able to do ``CAPABILITY``."""
        with self.client.one_wakeup():
            for agent_id in ids:
                self.client.publish(agent_topic(self.facility, agent_id, "conn"), encode(
                    AgentConn(agent_id=agent_id, online=True, kind="robot",
                              capabilities=[CAPABILITY], liveness_s=3600.0, ts=time.time())),
                    qos=1, retain=True)


def main(argv: list[str]) -> int:
    """Run the agents until stdin closes; print ``ready``, then one JSON line of stats."""
    p = argparse.ArgumentParser(prog="python -m bench._throughput_agents")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--facility", required=True)
    p.add_argument("--agents", type=int, required=True)
    p.add_argument("--prefix", default="tpa")
    p.add_argument("--progress", type=int, default=0)
    args = p.parse_args(argv)
    client = BufferedClient(CallbackAPIVersion.VERSION2, client_id=f"bench-agents-{args.prefix}",
                            protocol=mqtt.MQTTv311, manual_ack=True)
    client.max_inflight_messages_set(0)
    client.max_queued_messages_set(0)
    agents = ScriptedAgents(client, args.facility, args.progress)
    client.on_raw_message = agents.on_raw
    ready = threading.Event()
    subs = [(f"fleetflow/v1/{args.facility}/agent/+/cmd", 1),
            (edge_topic(args.facility, "status"), 1)]
    def on_connect(c: mqtt.Client, *_a: object) -> None:
        nodelay(c)  # Nagle's algorithm meets delayed ACKs: 40 ms stalls
        c.subscribe(subs)

    client.on_connect = on_connect
    client.on_subscribe = lambda *_a: ready.set()
    client.connect("127.0.0.1", args.port, keepalive=30)
    client.loop_start()
    stop = threading.Event()
    try:
        if not ready.wait(10):
            print("no-subscribe", flush=True)
            return 1
        agents.announce([f"{args.prefix}{i:04d}" for i in range(args.agents)])
        print("ready", flush=True)

        def resend() -> None:
            while not stop.wait(0.25):
                agents.resend_due()

        threading.Thread(target=resend, name="resend", daemon=True).start()
        sys.stdin.read()  # until the benchmark closes our stdin
    finally:
        stop.set()
        client.disconnect()
        client.loop_stop()
    with agents.lock:
        print(json.dumps({**agents.stats, "unacknowledged": len(agents.box)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
