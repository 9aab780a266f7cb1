"""A VDA 5050 test AGV on a real broker: ``AgvModel`` (sans-IO) driven by paho-mqtt.

``run_agv`` connects with the will ``connection`` = CONNECTIONBROKEN (retained, QoS 1),
announces ONLINE (retained), publishes its factsheet (retained) and state, then steps the
model in real time. Every message in and out is checked against the VDA 5050 schemas by
``topics.decode_vda`` / ``topics.encode_vda``. Whatever arrives that it cannot take — not
JSON, failing the schema, without the instant-action key it reads, on a topic it does not
read, or making the model raise — becomes a ``validationError`` in its state (§6.6.4.1),
never an exception in paho's callback: one raised there silently ends paho's network
thread, and the AGV would stay "online" but deaf. Run it alone with
``python -m agents_sim.vda_agv --help``; next to ``fleetflow edge --vda --map maps/demo.yaml``,
on a node of that map: ``python -m agents_sim.vda_agv --serial agv1 --node dock --x 0 --y 0
--map-id demo_floor`` (an AGV off the edge's map has every step it is given fail at once).
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agents_sim._vda_agv_model import AgvModel, InstantKey, Out
from topics import ProtocolError, VdaKind, decode_vda, encode_vda, vda_topic

__all__ = ["AgvModel", "AgvRunner", "InstantKey", "Out", "main", "run_agv"]

_log = logging.getLogger(__name__)
_READS: tuple[VdaKind, ...] = ("order", "instantActions")


class AgvRunner:
    """One AGV's MQTT connection and the thread that steps its model."""

    def __init__(self, model: AgvModel, host: str, port: int, *, username: str | None = None,
                 password: str | None = None, tick_s: float = 0.05,
                 interface: str = "uagv", major: str = "v2") -> None:
        self.model: AgvModel = model
        """The simulated vehicle; lock ``lock`` before touching it from another thread."""
        self.lock = threading.Lock()
        self.tick_s = tick_s
        self.interface, self.major = interface, major
        self.rejected: list[ProtocolError] = []
        """Inbound messages that failed validation (for tests)."""
        self.faults: list[str] = []
        """Unexpected exceptions caught in the MQTT callback or the stepping loop (a bug of
        the test AGV; for tests, which expect none)."""
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._thread: threading.Thread | None = None
        client_id = f"{model.manufacturer}.{model.serial_number}"
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv311)
        if username is not None:
            self.client.username_pw_set(username, password)
        with self.lock:
            _, will = model.connection("CONNECTIONBROKEN", time.time())
        self.client.will_set(self._topic("connection"), encode_vda(will, "connection"),
                             qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda _c, _u, msg: self.receive(msg.topic, msg.payload)
        self.host, self.port = host, port

    def _topic(self, kind: VdaKind) -> str:
        return vda_topic(self.model.manufacturer, self.model.serial_number, kind,
                         interface=self.interface, major=self.major)

    def _publish(self, outs: list[Out]) -> None:
        for kind, message in outs:
            payload = encode_vda(message, kind)  # type: ignore[arg-type]
            retain = kind in ("connection", "factsheet")  # §6.14, §6.15
            self.client.publish(self._topic(kind), payload,  # type: ignore[arg-type]
                                qos=1 if kind == "connection" else 0, retain=retain)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        if reason.is_failure:
            return
        try:
            client.subscribe([(self._topic(kind), 0) for kind in _READS])
            now = time.time()
            with self.lock:
                outs = [self.model.connection("ONLINE", now), self.model.factsheet(now),
                        self.model.state(now)]
            self._publish(outs)
        except Exception as exc:  # raised here, it would end paho's network thread
            _log.exception("test AGV %s failed to announce itself", self.model.serial_number)
            self.faults.append(f"connect: {type(exc).__name__}: {exc}")
            return
        self._connected.set()

    def receive(self, topic: str, payload: bytes | bytearray, now: float | None = None) -> None:
        """Take one MQTT message, as paho's callback does; never raises. Anything the AGV
        cannot take is answered with a ``validationError`` in its state."""
        now = time.time() if now is None else now
        last = topic.rsplit("/", 1)[-1][:64]
        try:
            kind = next((k for k in _READS if topic == self._topic(k)), None)
            if kind is None:
                self._invalid(None, f"unexpected topic {topic[:120]!r}", last, now)
                return
            self._receive(kind, payload, now)
        except Exception as exc:  # paho's network thread would die of it, silently
            _log.exception("test AGV %s failed on a message on %s", self.model.serial_number,
                           topic)
            self.faults.append(f"{topic}: {type(exc).__name__}: {exc}")
            self._invalid(None, f"message could not be processed ({type(exc).__name__})",
                          last, now)

    def _receive(self, kind: VdaKind, payload: bytes | bytearray, now: float) -> None:
        try:
            message = decode_vda(bytes(payload), kind)
        except ProtocolError as exc:
            self._invalid(exc, f"{exc.reason}: {exc.message}", kind, now)
            return
        with self.lock:
            if kind == "order":
                outs = self.model.receive_order(message, now)
            else:
                outs = self.model.receive_instant_actions(message, now)
        self._publish(outs)

    def _invalid(self, exc: ProtocolError | None, reason: str, topic: str, now: float) -> None:
        """Report a refused message as a ``validationError``; a failure to do even that is
        logged, not raised (the caller may be paho's network thread)."""
        if exc is not None:
            self.rejected.append(exc)
        try:
            with self.lock:
                outs = self.model.receive_invalid({}, reason, now, topic=topic)
            self._publish(outs)
        except Exception as again:
            _log.exception("test AGV %s could not report a refused message",
                           self.model.serial_number)
            self.faults.append(f"reporting {topic}: {type(again).__name__}: {again}")

    def _loop(self) -> None:
        while not self._stop.wait(self.tick_s):
            try:
                with self.lock:
                    outs = self.model.step(time.time())
                self._publish(outs)
            except Exception as exc:  # keep stepping: a dead loop would freeze the AGV
                _log.exception("test AGV %s failed to step", self.model.serial_number)
                self.faults.append(f"step: {type(exc).__name__}: {exc}")

    def start(self, timeout_s: float = 10.0) -> AgvRunner:
        """Connect, announce ONLINE and start stepping; raises TimeoutError if no CONNACK."""
        self.client.connect(self.host, self.port, keepalive=15)
        self.client.loop_start()
        if not self._connected.wait(timeout_s):
            self.client.loop_stop()
            raise TimeoutError(f"no connection to {self.host}:{self.port}")
        self._thread = threading.Thread(target=self._loop, name="vda-agv", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Graceful leave (§6.14): publish OFFLINE, then disconnect (no will)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self.lock:
            _, message = self.model.connection("OFFLINE", time.time())
        info = self.client.publish(self._topic("connection"), encode_vda(message, "connection"),
                                   qos=1, retain=True)
        info.wait_for_publish(2.0)
        self.client.disconnect()
        self.client.loop_stop()


def run_agv(broker_host: str, port: int, manufacturer: str, serial: str,
            version: str = "2.1.0", username: str | None = None, password: str | None = None,
            **model_kwargs: Any) -> AgvRunner:
    """Start a test AGV on a broker; ``model_kwargs`` go to ``AgvModel`` (``node_id``, ``x``,
    ``y`` are required). Call ``stop()`` on the result to leave gracefully."""
    model = AgvModel(manufacturer, serial, version=version, now=time.time(), **model_kwargs)
    return AgvRunner(model, broker_host, port, username=username, password=password).start()


def main(argv: list[str] | None = None) -> int:
    """``python -m agents_sim.vda_agv``: one test AGV until SIGTERM/SIGINT."""
    p = argparse.ArgumentParser(prog="python -m agents_sim.vda_agv", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=1883)
    p.add_argument("--manufacturer", default="fleetflow")
    p.add_argument("--serial", required=True)
    p.add_argument("--version", default="2.1.0", choices=["2.0.0", "2.1.0"])
    p.add_argument("--username")
    p.add_argument("--password")
    p.add_argument("--node", required=True,
                   help="node id the AGV stands on: a node of the edge's map (dock on "
                        "maps/demo.yaml), or its orders cannot be planned")
    p.add_argument("--x", type=float, required=True)
    p.add_argument("--y", type=float, required=True)
    p.add_argument("--map-id", default="map", help="mapId it reports (demo_floor for "
                   "maps/demo.yaml)")
    p.add_argument("--speed", type=float, default=1.0, help="m/s")
    p.add_argument("--action-s", type=float, default=2.0, help="seconds per node action")
    p.add_argument("--state-interval", type=float, default=30.0)
    p.add_argument("--fail", action="append", default=[], help="fail the next action of a type")
    p.add_argument("--refuse-instant", action="append", default=[], metavar="TYPE",
                   help="refuse every instant action of a type (FAILED, and a WARNING naming "
                        "it), e.g. cancelOrder or startPause")
    p.add_argument("--instant-key", default="actions", choices=["actions", "instantActions"],
                   help="the only key instant actions are read from: the document's "
                        "'actions', or 'instantActions' as an early 2.0 draft schema named it")
    args = p.parse_args(argv)
    # Handlers before connecting: a SIGTERM right after ONLINE must still stop cleanly.
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    runner = run_agv(args.host, args.port, args.manufacturer, args.serial, args.version,
                     args.username, args.password, node_id=args.node, x=args.x, y=args.y,
                     map_id=args.map_id, speed=args.speed, action_s=args.action_s,
                     state_interval_s=args.state_interval, instant_key=args.instant_key)
    with runner.lock:
        for action_type in args.fail:
            runner.model.fail_next(action_type)
        for action_type in args.refuse_instant:
            runner.model.refuse_instant(action_type)
    print(f"vda-agv {args.manufacturer}/{args.serial} online", flush=True)
    done.wait()
    runner.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
