"""What a live run reads back: every facility's events from ``edge/events``, deduped by seq.

``EventCollector`` subscribes to each facility's ``edge/events`` and retained
``edge/status``. The retained status gives the edge's high-water ``seq`` when the run
starts (its ``base``): events up to it are history of the stack, not of this run, and are
ignored. Events come at least once — republished by a ``replay`` (ours or a hub's), or
twice across a reconnect — so they are kept by ``seq``, the first copy winning. At the end
``fill_gaps`` asks each edge to ``replay`` any seq it missed (the hub's gap repair,
docs/hub.md) and waits for them; ``ask_replays`` asks without waiting, during a run's
drain. ``events()`` gives each facility's log as the core's ``Event`` s in ``seq`` order —
what ``agents_sim.report`` reads.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Sequence

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agents_sim._sim_live_mqtt import Login
from edge_runtime.core import Event
from topics import (
    EdgeTopic,
    HubCommand,
    ProtocolError,
    decode_edge_event,
    decode_edge_status,
    edge_topic,
    encode,
    parse_topic,
)

__all__ = ["EventCollector"]

TERMINAL_KINDS = {"workflow_completed": "completed", "workflow_failed": "failed",
                  "workflow_cancelled": "cancelled"}
"""Events that end a workflow, and the state they leave it in."""


class EventCollector:
    """Every event the edges of ``facilities`` publish from the run's start on."""

    def __init__(self, host: str, port: int, facilities: Sequence[str], *, login: Login,
                 tag: str) -> None:
        self.facilities = tuple(facilities)
        self.base: dict[str, int] = {}
        """Facility -> the edge's high-water seq when the collector first heard its status."""
        self.high: dict[str, int] = {}
        """Facility -> the highest seq the edge announced (status) or sent (events)."""
        self.online: dict[str, bool] = {}
        """Facility -> the edge's latest status."""
        self.errors: list[str] = []
        """Messages that did not decode, as sentences."""
        self._events: dict[str, dict[int, Event]] = {f: {} for f in self.facilities}
        self._lock = threading.Lock()
        self._host, self._port = host, port
        self._asked: dict[str, float] = {}
        """Facility -> when its edge was last asked to replay a gap (monotonic)."""
        self._connected: str | None = None
        """None until the broker answered the CONNECT: then "ok" or its refusal."""
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311,
                                   client_id=f"sim-events-{tag}-{secrets.token_hex(2)}")
        self._client.max_queued_messages_set(0)
        if login is not None:
            self._client.username_pw_set(*login)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message

    def start(self, timeout: float) -> None:
        """Connect and wait until every edge's retained status told its seq and that it is
        online; ``TimeoutError`` naming the facilities not heard from."""
        self._client.connect_async(self._host, self._port)
        self._client.loop_start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                missing = [f for f in self.facilities
                           if f not in self.base or not self.online.get(f)]
            if not missing:
                return
            time.sleep(0.05)
        self.stop()
        where = f"{self._host}:{self._port}"
        if self._connected is None:
            raise TimeoutError(f"no MQTT broker answered at {where} within {timeout} s")
        if self._connected != "ok":
            raise TimeoutError(f"the broker at {where} refused the connection: "
                               f"{self._connected}")
        raise TimeoutError(f"no online edge/status from {', '.join(missing)} on "
                           f"{self._host}:{self._port} within {timeout} s — is the edge of "
                           "each facility running?")

    def stop(self) -> None:
        """Disconnect."""
        self._client.disconnect()
        self._client.loop_stop()

    # --- paho side -----------------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, _u: object, _f: object, reason: object,
                    _p: object) -> None:
        if getattr(reason, "is_failure", False):
            self._connected = str(reason)  # bad credentials …: start() says so
            return
        self._connected = "ok"
        client.subscribe([(edge_topic(f, k), 1) for f in self.facilities
                          for k in ("status", "events")])

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        try:
            where = parse_topic(msg.topic)
            if not isinstance(where, EdgeTopic) or where.facility not in self._events:
                return
            f = where.facility
            if where.kind == "status":
                status = decode_edge_status(bytes(msg.payload))
                with self._lock:
                    self.base.setdefault(f, status.high_water_seq)
                    self.online[f] = status.online
                    self.high[f] = max(self.high.get(f, 0), status.high_water_seq)
            elif where.kind == "events":
                e = decode_edge_event(bytes(msg.payload))
                with self._lock:
                    if f in self.base and e.seq > self.base[f]:
                        self._events[f].setdefault(e.seq, Event(
                            e.seq, e.hlc, e.kind, e.workflow_id, dict(e.data)))
                        self.high[f] = max(self.high.get(f, 0), e.seq)
        except ProtocolError as exc:  # never raise in a paho callback
            self.errors.append(f"{msg.topic}: {exc.reason}: {exc.message}")

    # --- reading -------------------------------------------------------------------------

    def outcomes(self, prefix: str) -> dict[str, dict[str, str]]:
        """Facility -> workflow id (those starting with ``prefix``) -> its state so far
        (``active`` until a terminal event came)."""
        out: dict[str, dict[str, str]] = {}
        with self._lock:
            for f, log in self._events.items():
                states: dict[str, str] = {}
                for seq in sorted(log):
                    e = log[seq]
                    wf = e.workflow_id
                    if wf is None or not wf.startswith(prefix):
                        continue
                    if e.kind in ("workflow_created", "workflow_recovered"):
                        states[wf] = "active"
                    elif e.kind in TERMINAL_KINDS:
                        states[wf] = TERMINAL_KINDS[e.kind]
                out[f] = states
        return out

    def missing(self) -> dict[str, list[int]]:
        """Facility -> the seqs after its base, up to its high-water mark, not heard."""
        with self._lock:
            return {f: [s for s in range(self.base.get(f, 0) + 1, self.high.get(f, 0) + 1)
                        if s not in self._events[f]] for f in self.facilities}

    def fill_gaps(self, timeout: float) -> dict[str, list[int]]:
        """Ask each edge to replay what was missed and wait up to ``timeout`` s; returns
        what is still missing (facility -> seqs, empty when none)."""
        deadline = time.monotonic() + timeout
        while True:
            missing = self.ask_replays()
            if not any(missing.values()) or time.monotonic() > deadline:
                return missing
            time.sleep(0.1)

    def ask_replays(self, every_s: float = 2.0) -> dict[str, list[int]]:
        """Ask each edge with a gap (at most every ``every_s`` s per edge) to replay it;
        returns what is missing. Without it, an event missed while the broker restarted
        — the terminal event of a workflow, say — would hold a run's end to its drain."""
        missing = self.missing()
        for f, seqs in missing.items():
            if seqs and time.monotonic() - self._asked.get(f, -1e9) >= every_s:
                self._asked[f] = time.monotonic()
                cmd = HubCommand(command_id=f"sim-replay-{secrets.token_hex(4)}",
                                 action="replay", ts=time.time(),
                                 args={"from_seq": seqs[0], "to_seq": seqs[-1]})
                self._client.publish(edge_topic(f, "cmd"), encode(cmd), qos=1)
        return missing

    def events(self) -> dict[str, list[Event]]:
        """Facility -> its events of this run, in ``seq`` order."""
        with self._lock:
            return {f: [log[s] for s in sorted(log)] for f, log in self._events.items()}
