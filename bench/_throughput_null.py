"""The baseline of ``fleetflow bench throughput``: a *null edge*, in a process of its own.

It speaks the edge's protocol to the same agents' process and the same hub side, with the
same messages per workflow: for a ``create_workflow`` it publishes ``workflow_created``,
``workflow_started`` and the ``command_reply``; it assigns each of the three steps to a free
agent (``step_assigned`` event + ``Assign`` command), echoes the agent's ``step_accepted``,
``step_started`` and ``step_done`` as events, ends with ``workflow_completed`` and
``workflow_archived``, and sends one ``EventAck`` per agent per batch. Like the edge it reads
messages on paho's network thread (the edge's ``BufferedClient``), decodes them with the
protocol's decoders, handles them in batches on a loop thread and acknowledges QoS 1
messages after publishing.

What it leaves out is exactly the edge's own work: no core (state machines, dependency and
allocation rules, timers), no RocksDB commit, no event checks, no durable outbox (nothing
is resent: on loopback nothing is lost). Its rate is what the messaging alone allows.

``python -m bench._throughput_null --port P --facility F`` prints ``ready`` once subscribed.
"""

from __future__ import annotations

import argparse
import itertools
import queue
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.wire import nodelay
from broker import stop_process
from edge_runtime.shell import BufferedClient
from topics import (
    AgentConn,
    Assign,
    CommandAck,
    EventAck,
    HubCommand,
    ProtocolError,
    StepDone,
    agent_topic,
    decode_agent_conn,
    decode_agent_event,
    decode_hub_command,
    edge_topic,
    encode,
    pack_edge_events,
)

__all__ = ["run_null_edge"]

_STEPS = ("t1", "t2", "t3")


@dataclass(slots=True)
class _Event:
    seq: int
    hlc: int
    kind: str
    workflow_id: str | None
    data: dict[str, Any] = field(default_factory=dict)


class NullEdge:
    """The null edge's state: free agents, ready steps, and what the batch will publish."""

    def __init__(self, client: BufferedClient, facility: str) -> None:
        self.client, self.facility = client, facility
        self.inbox: queue.SimpleQueue[tuple[bytes, bytes, int, int]] = queue.SimpleQueue()
        self.free: deque[str] = deque()
        self.ready: deque[tuple[str, int]] = deque()
        """(workflow id, step index) waiting for an agent."""
        self.events: list[_Event] = []
        self.out: list[tuple[str, bytes]] = []
        self.acked: dict[str, list[str]] = {}
        self.outbox: dict[str, bytes] = {}
        """Command id → Assign payload, until its ``CommandAck`` (kept, never resent)."""
        self._seq = itertools.count(1)
        self._cmd_ids = itertools.count(1)
        self._events_topic = edge_topic(facility, "events")

    def on_raw(self, topic: bytes, payload: bytes, mid: int, qos: int) -> None:
        """paho's network thread: queue it for the loop."""
        self.inbox.put((topic, payload, mid, qos))

    def loop(self, stop: threading.Event) -> None:
        """Take batches of up to 512 messages, handle them, publish, then acknowledge."""
        while not stop.is_set():
            try:
                batch = [self.inbox.get(timeout=0.05)]
            except queue.Empty:
                continue
            while len(batch) < 512:
                try:
                    batch.append(self.inbox.get_nowait())
                except queue.Empty:
                    break
            for topic, payload, _mid, _qos in batch:
                with suppress(ProtocolError, IndexError, ValueError, AttributeError):
                    self._handle(topic.decode(), payload)
            self._assign()
            self._flush(batch)

    def _handle(self, topic: str, payload: bytes) -> None:
        kind = topic.rsplit("/", 1)[1]
        if kind == "event":
            self._agent_event(payload)
        elif kind == "conn":
            conn: AgentConn = decode_agent_conn(payload)
            if conn.online:
                self.free.append(conn.agent_id)
                self._emit("agent_joined", None, {"agent": conn.agent_id})
        elif kind == "cmd":
            cmd: HubCommand = decode_hub_command(payload)
            workflow_id = str(cmd.args.get("workflow_id"))
            data = {"template": cmd.args.get("template"), "version": 1}
            self._emit("workflow_created", workflow_id, data)
            self._emit("workflow_started", workflow_id, {})
            self._emit("command_reply", workflow_id,
                       {"cmd": cmd.command_id, "action": cmd.action, "result": {}})
            self.ready.append((workflow_id, 0))

    def _agent_event(self, payload: bytes) -> None:
        event = decode_agent_event(payload)
        self.acked.setdefault(event.agent_id, []).append(event.event_id)
        if isinstance(event, CommandAck):
            self.outbox.pop(event.command_id, None)
            return
        workflow_id: str = event.workflow_id  # type: ignore[union-attr]
        step_id: str = event.step_id  # type: ignore[union-attr]
        self._emit(event.type, workflow_id, {"step": step_id, "agent": event.agent_id,
                                             "attempt": 1})
        if isinstance(event, StepDone):
            self.free.append(event.agent_id)
            index = _STEPS.index(step_id) + 1
            if index < len(_STEPS):
                self.ready.append((workflow_id, index))
            else:
                self._emit("workflow_completed", workflow_id, {})
                self._emit("workflow_archived", workflow_id, {})

    def _assign(self) -> None:
        while self.ready and self.free:
            (workflow_id, index), agent_id = self.ready.popleft(), self.free.popleft()
            step_id = _STEPS[index]
            self._emit("step_assigned", workflow_id, {"step": step_id, "agent": agent_id,
                                                      "attempt": 1})
            command_id = f"a{next(self._cmd_ids)}"
            payload = encode(Assign(command_id=command_id, workflow_id=workflow_id,
                                    step_id=step_id, kind="robot", ts=time.time()))
            self.outbox[command_id] = payload
            self.out.append((agent_topic(self.facility, agent_id, "cmd"), payload))

    def _emit(self, kind: str, workflow_id: str | None, data: dict[str, Any]) -> None:
        seq = next(self._seq)
        self.events.append(_Event(seq, int(time.time() * 1000) << 16, kind, workflow_id, data))

    def _flush(self, batch: list[tuple[bytes, bytes, int, int]]) -> None:
        now = time.time()
        client = self.client
        with client.one_wakeup():
            for payload in pack_edge_events(self.events, self.facility):
                client.publish(self._events_topic, payload, qos=1)
            for topic, payload in self.out:
                client.publish(topic, payload, qos=1)
            for agent_id, ids in self.acked.items():
                ack = EventAck(command_id=f"k{next(self._cmd_ids)}", ts=now, event_ids=ids)
                client.publish(agent_topic(self.facility, agent_id, "cmd"), encode(ack), qos=1)
            for _topic, _payload, mid, qos in batch:
                if qos:
                    client.ack(mid, qos)
        self.events.clear()
        self.out.clear()
        self.acked.clear()


@contextmanager
def run_null_edge(port: int, facility: str, scratch: Path) -> Iterator[subprocess.Popen[str]]:
    """The null edge's process, once subscribed; stopped on the way out."""
    log = open(scratch / "null-edge.log", "wb")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench._throughput_null", "--port", str(port),
         "--facility", facility],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"the null edge did not start (said {line!r})")
        yield proc
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        stop_process(proc)
        log.close()


def main(argv: list[str]) -> int:
    """Run the null edge until stdin closes."""
    p = argparse.ArgumentParser(prog="python -m bench._throughput_null")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--facility", required=True)
    args = p.parse_args(argv)
    client = BufferedClient(CallbackAPIVersion.VERSION2, client_id=f"null-edge-{args.facility}",
                            protocol=mqtt.MQTTv311, manual_ack=True)
    client.max_inflight_messages_set(0)
    client.max_queued_messages_set(0)
    edge = NullEdge(client, args.facility)
    client.on_raw_message = edge.on_raw
    ready = threading.Event()
    f = args.facility
    subs = [(f"fleetflow/v1/{f}/agent/+/event", 1), (f"fleetflow/v1/{f}/agent/+/conn", 1),
            (edge_topic(f, "cmd"), 1)]
    def on_connect(c: mqtt.Client, *_a: object) -> None:
        nodelay(c)  # Nagle's algorithm meets delayed ACKs: 40 ms stalls
        c.subscribe(subs)

    client.on_connect = on_connect
    client.on_subscribe = lambda *_a: ready.set()
    client.connect("127.0.0.1", args.port, keepalive=30)
    client.loop_start()
    stop = threading.Event()
    loop = threading.Thread(target=edge.loop, args=(stop,), name="null-loop", daemon=True)
    try:
        if not ready.wait(10):
            print("no-subscribe", flush=True)
            return 1
        loop.start()
        print("ready", flush=True)
        sys.stdin.read()
    finally:
        stop.set()
        client.disconnect()
        client.loop_stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
