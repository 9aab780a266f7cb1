"""The hub's side of ``fleetflow bench throughput``: creates workflows, watches them finish.

``HubLoad`` publishes ``create_workflow`` hub commands on the edge's ``edge/cmd`` exactly as
the hub does (``agents_sim._hub_client``: a ``HubCommand`` at QoS 1, kept until the edge's
``command_reply`` event names its id — or an ``edge/errors`` report refuses it — and resent
after 1 s, doubling to 30 s, and at once when ``edge/status`` turns online). It keeps a
*window* of workflows outstanding (created, not completed): each ``workflow_completed`` event
on ``edge/events`` sends the next create, so the edge is offered work at saturation.

The edge publishes an event only after its batch is committed to RocksDB, so a
``workflow_completed`` seen here is durable. Events are read with ``unpack_edge_event`` (the
envelope and fields, no validation): the benchmark counts them; validating them is the
hub's cost, not the edge's. Everything runs on the client's network thread (the edge's
``BufferedClient``), with one resend thread.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agents_sim.native import Outbox
from bench.wire import nodelay
from edge_runtime.shell import BufferedClient
from topics import (
    HubCommand,
    ProtocolError,
    decode_edge_status,
    decode_error_report,
    edge_topic,
    encode,
    unpack_edge_event,
)

__all__ = ["HubLoad", "Tally"]


@dataclass(slots=True)
class Tally:
    """Counts of what the edge published, at one moment."""

    at: float
    completed: int
    steps: int
    events: int
    joined: int


@dataclass
class _Counts:
    completed: int = 0
    steps: int = 0
    events: int = 0
    joined: int = 0
    replies: int = 0
    refused: int = 0
    resent: int = 0
    created: int = 0
    done_at: list[tuple[float, float]] = field(default_factory=list)
    """(perf_counter at completion, seconds since its create was first sent)."""


class HubLoad:
    """Creates workflows of ``template`` on ``facility``'s edge, keeping ``window`` open."""

    def __init__(self, port: int, facility: str, template: str, prefix: str = "tw") -> None:
        self.facility, self.template, self.prefix = facility, template, prefix
        self.counts = _Counts()
        self.window = 0
        """Workflows to keep outstanding; 0: send no new creates."""
        self.lock = threading.Lock()
        self._created: dict[str, float] = {}
        """Workflow id → perf_counter of its create: outstanding workflows."""
        self._box: Outbox[str, bytes] = Outbox(limit=1_000_000)
        self._ids = itertools.count(1)
        self._online: bool | None = None
        self._cmd_topic = edge_topic(facility, "cmd")
        self._stop = threading.Event()
        client = BufferedClient(CallbackAPIVersion.VERSION2, client_id=f"bench-hub-{prefix}",
                                protocol=mqtt.MQTTv311, manual_ack=True)
        client.max_inflight_messages_set(0)
        client.max_queued_messages_set(0)
        client.on_raw_message = self._on_raw
        ready = threading.Event()
        subs = [(edge_topic(facility, "events"), 1), (edge_topic(facility, "errors"), 0),
                (edge_topic(facility, "status"), 1)]

        def on_connect(c: mqtt.Client, *_a: object) -> None:
            nodelay(c)  # Nagle's algorithm meets delayed ACKs: 40 ms stalls
            c.subscribe(subs)

        client.on_connect = on_connect
        client.on_subscribe = lambda *_a: ready.set()
        client.connect("127.0.0.1", port, keepalive=30)
        client.loop_start()
        self.client = client
        if not ready.wait(10):
            self.close()
            raise RuntimeError(f"the benchmark's hub could not subscribe on port {port}")
        self._resender = threading.Thread(target=self._resend_loop, name="hub-resend",
                                          daemon=True)
        self._resender.start()

    # --- the load ------------------------------------------------------------------------

    def offer(self, window: int) -> None:
        """Keep ``window`` workflows outstanding from now on (0: stop creating)."""
        with self.lock, self.client.one_wakeup():
            self.window = window
            self._top_up()

    @property
    def outstanding(self) -> int:
        """Workflows created and not completed yet."""
        return len(self._created)

    def tally(self) -> Tally:
        """The counts now."""
        c = self.counts
        with self.lock:
            return Tally(time.perf_counter(), c.completed, c.steps, c.events, c.joined)

    def _top_up(self) -> None:
        now = time.time()
        while len(self._created) < self.window:
            workflow_id = f"{self.prefix}{next(self._ids)}"
            command = HubCommand(command_id=f"c-{workflow_id}", action="create_workflow",
                                 args={"template": self.template, "workflow_id": workflow_id},
                                 ts=now)
            payload = encode(command)
            self._created[workflow_id] = time.perf_counter()
            self._box.keep(command.command_id, payload, now)
            self.client.publish(self._cmd_topic, payload, qos=1)
            self.counts.created += 1

    # --- what the edge publishes (network thread) ----------------------------------------

    def _on_raw(self, topic: bytes, payload: bytes, mid: int, qos: int) -> None:
        try:
            if topic.endswith(b"/events"):
                self._on_event(payload)
            elif topic.endswith(b"/errors"):
                report = decode_error_report(payload)
                with self.lock:
                    if report.command_id and self._box.ack(report.command_id) is not None:
                        self.counts.refused += 1
            else:
                self._on_status(decode_edge_status(payload).online)
        except ProtocolError:
            pass
        if qos:
            self.client.ack(mid, qos)

    def _on_event(self, payload: bytes) -> None:
        _seq, _hlc, _facility, kind, workflow_id, data = unpack_edge_event(payload)
        c = self.counts
        with self.lock:
            c.events += 1
            if kind == "step_done":
                c.steps += 1
            elif kind == "command_reply":
                if self._box.ack(str(data.get("cmd"))) is not None:
                    c.replies += 1
            elif kind == "workflow_completed" and workflow_id is not None:
                created = self._created.pop(workflow_id, None)
                if created is not None:
                    now = time.perf_counter()
                    c.completed += 1
                    c.done_at.append((now, now - created))
                    if self.window:
                        with self.client.one_wakeup():
                            self._top_up()
            elif kind == "agent_joined":
                c.joined += 1

    def _on_status(self, online: bool) -> None:
        came_back = online and self._online is False
        self._online = online
        if came_back:
            with self.lock, self.client.one_wakeup():
                self._publish_again(self._box.resend_all(time.time()))

    def _resend_loop(self) -> None:
        while not self._stop.wait(0.25):
            with self.lock, self.client.one_wakeup():
                self._publish_again(self._box.due(time.time()))

    def _publish_again(self, payloads: list[bytes]) -> None:
        for payload in payloads:
            self.client.publish(self._cmd_topic, payload, qos=1)
        self.counts.resent += len(payloads)

    def drain(self, timeout: float) -> bool:
        """Stop creating and wait until every workflow completed; ``False`` on timeout."""
        self.offer(0)
        deadline = time.monotonic() + timeout
        while self.outstanding and time.monotonic() < deadline:
            time.sleep(0.05)
        return not self.outstanding

    def wait_joined(self, count: int, timeout: float) -> None:
        """Wait until the edge announced ``count`` ``agent_joined`` events."""
        deadline = time.monotonic() + timeout
        while self.counts.joined < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the edge announced {self.counts.joined} of {count} agents")
            time.sleep(0.05)

    def close(self) -> None:
        """Stop resending and disconnect."""
        self._stop.set()
        self.client.disconnect()
        self.client.loop_stop()
