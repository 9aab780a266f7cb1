"""Plumbing of the end-to-end benchmark: brokers, paho clients, the raw subscriber process.

Everything here is measured against, never measured: it starts a broker of either kind on a
free port, connects plain paho clients, and runs the baseline subscriber in a process of
its own (like the edge, so that both sides of the ratio pay for one process each).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

__all__ = ["MOSQUITTO", "Wire", "free_port", "mosquitto", "raw_subscriber", "start_broker"]

MOSQUITTO = "/usr/sbin/mosquitto"


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def start_broker(kind: str, workdir: Path) -> Iterator[int]:
    """Run a broker of ``kind`` (``mosquitto`` | ``embedded``) that admits anonymous clients.

    Yields its port; the broker is stopped (and killed if need be) on the way out.
    """
    from broker import BrokerProcess

    port = free_port()
    if kind == "embedded":
        embedded = BrokerProcess("127.0.0.1", port, workdir / "passwd", allow_anonymous_dev=True,
                                 log_file=workdir / "broker.log")
        embedded.start()
        try:
            yield port
        finally:
            embedded.stop()
        return
    if kind != "mosquitto":
        raise ValueError(f"broker must be 'mosquitto' or 'embedded', not {kind!r}")
    binary = shutil.which("mosquitto") or MOSQUITTO
    if not os.path.exists(binary):
        raise FileNotFoundError("mosquitto is not installed (apt-get install mosquitto)")
    conf = workdir / "mosquitto.conf"
    # Benchmark broker: nothing persisted, no queue limits that would drop QoS 0 bursts.
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "max_queued_messages 0\nmax_inflight_messages 0\nlog_dest none\n"
        # Nagle's algorithm meets delayed ACKs: without this, small QoS 1 messages wait
        # up to 40 ms on Linux. Latency-sensitive deployments set it too (docs/benchmarks-e2e.md).
        "set_tcp_nodelay true\n"
        + ("user root\n" if os.geteuid() == 0 else "")
    )
    with mosquitto(conf, port, binary):
        yield port


@contextmanager
def mosquitto(conf: Path, port: int, binary: str | None = None
              ) -> Iterator[subprocess.Popen[bytes]]:
    """Run Mosquitto with the config file ``conf`` until it answers MQTT on ``port``.

    Raises ``RuntimeError`` with Mosquitto's own last words if it exits or stays silent for
    10 s; stops it (SIGTERM, then SIGKILL) on the way out.
    """
    from broker import mqtt_ready

    binary = binary or shutil.which("mosquitto") or MOSQUITTO
    log = conf.with_suffix(".log")
    with open(log, "wb") as out:
        proc = subprocess.Popen([binary, "-c", str(conf)], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 10
        while not mqtt_ready("127.0.0.1", port):
            if proc.poll() is not None or time.monotonic() > deadline:
                said = log.read_text(errors="replace").strip().splitlines()[-3:]
                raise RuntimeError(f"mosquitto did not start on port {port}: "
                                   f"{' / '.join(said) or 'no output'}")
            time.sleep(0.02)
        yield proc
    finally:
        stop_process(proc)


def stop_process(proc: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout``."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def nodelay(client: mqtt.Client) -> None:
    """Turn Nagle's algorithm off on ``client``'s socket (paho leaves it on)."""
    sock = client.socket()
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Wire:
    """A paho client that queues what it receives, stamped with ``time.perf_counter``.

    ``handler``, if given, is called on paho's thread for each message (keep it short).
    """

    def __init__(self, port: int, name: str, subscriptions: list[tuple[str, int]],
                 handler: Callable[[str, bytes, float], None] | None = None) -> None:
        self.inbox: queue.SimpleQueue[tuple[str, bytes, float]] = queue.SimpleQueue()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name,
                                  protocol=mqtt.MQTTv311)
        self.client.max_inflight_messages_set(0)  # 0 = unlimited: never throttle QoS 1
        self.client.max_queued_messages_set(0)
        self._handler = handler
        ready = threading.Event()
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_a: ready.set()
        def on_connect(c: mqtt.Client, *_a: object) -> None:
            nodelay(c)
            if subscriptions:
                c.subscribe(subscriptions)
            else:
                ready.set()

        self.client.on_connect = on_connect
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        if not ready.wait(10):
            self.close()
            raise RuntimeError(f"benchmark client {name} could not subscribe on port {port}")

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        at = time.perf_counter()
        payload = bytes(msg.payload)
        if self._handler is not None:
            self._handler(msg.topic, payload, at)
        else:
            self.inbox.put((msg.topic, payload, at))

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False
                ) -> mqtt.MQTTMessageInfo:
        """Publish without waiting."""
        return self.client.publish(topic, payload, qos=qos, retain=retain)

    def close(self) -> None:
        """Disconnect and stop paho's thread."""
        self.client.disconnect()
        self.client.loop_stop()


# --- the raw subscriber: `python -m bench._e2e_wire --port P --count N --topic T` -----------

def raw_subscriber(port: int, topic: str, count: int) -> subprocess.Popen[str]:
    """Start the baseline subscriber process; it prints ``ready`` once subscribed, then, once
    ``count`` messages arrived (or 3 s passed without any), one JSON line
    ``{"received", "first", "last"}`` (``time.time()`` stamps)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench._e2e_wire", "--port", str(port), "--count", str(count),
         "--topic", topic],
        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if line != "ready":
        stop_process(proc)
        raise RuntimeError(f"the raw subscriber did not start (said {line!r})")
    return proc


def _raw_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--topic", required=True)
    args = p.parse_args(argv)
    got = {"received": 0, "first": 0.0, "last": 0.0}
    done = threading.Event()

    def on_message(_c: mqtt.Client, _u: object, _m: mqtt.MQTTMessage) -> None:
        now = time.time()
        if not got["received"]:
            got["first"] = now
        got["received"] += 1
        got["last"] = now
        if got["received"] >= args.count:
            done.set()

    ready = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"raw-sub-{os.getpid()}",
                         protocol=mqtt.MQTTv311)
    client.on_message = on_message
    client.on_subscribe = lambda *_a: ready.set()
    client.on_connect = lambda c, *_a: c.subscribe(args.topic, 0)
    client.connect("127.0.0.1", args.port, keepalive=30)
    client.loop_start()
    if not ready.wait(10):
        print("no-subscribe", flush=True)
        return 1
    print("ready", flush=True)
    seen = -1
    while not done.wait(3.0):  # give up after 3 s without a single new message
        if got["received"] == seen and seen > 0:
            break
        seen = int(got["received"])
    client.disconnect()
    client.loop_stop()
    print(json.dumps(got), flush=True)
    return 0


def tmpdir() -> tempfile.TemporaryDirectory[str]:
    """A scratch directory for broker files and the edge's data."""
    return tempfile.TemporaryDirectory(prefix="fleetflow-bench-e2e-")


if __name__ == "__main__":
    raise SystemExit(_raw_main(sys.argv[1:]))
