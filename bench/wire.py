"""Plumbing of the end-to-end benchmark (and of tests that need the same): a broker of
either kind on a free port, plain paho clients, and the raw subscriber process.

Everything here is measured against, never measured. The raw subscriber runs in a process
of its own, like the edge, so that both sides of the benchmark's ratio pay for one process
each: ``python -m bench.wire --port P --count N --topic T``.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from broker import BrokerProcess, free_port, mosquitto, stop_process

__all__ = ["Wire", "nodelay", "raw_subscriber", "start_broker", "tmpdir"]


@contextmanager
def start_broker(kind: str, workdir: Path) -> Iterator[int]:
    """Run a broker of ``kind`` (``mosquitto`` | ``embedded``) that admits anonymous clients.

    Yields its port; the broker is stopped (and killed if need be) on the way out.
    """
    port = free_port()
    if kind == "embedded":
        with BrokerProcess("127.0.0.1", port, workdir / "passwd", allow_anonymous_dev=True,
                           log_file=workdir / "broker.log"):
            yield port
        return
    if kind != "mosquitto":
        raise ValueError(f"broker must be 'mosquitto' or 'embedded', not {kind!r}")
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
    with mosquitto(conf, port):
        yield port


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
        """Messages received as ``(topic, payload, perf_counter)`` when there is no handler."""
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


def tmpdir() -> tempfile.TemporaryDirectory[str]:
    """A scratch directory for broker files and the edge's data."""
    return tempfile.TemporaryDirectory(prefix="fleetflow-bench-e2e-")


# --- the raw subscriber ----------------------------------------------------------------------

def raw_subscriber(port: int, topic: str, count: int, qos: int = 0) -> subprocess.Popen[str]:
    """Start the baseline subscriber process (subscribed at ``qos``); it prints ``ready``
    once subscribed, then, once ``count`` messages arrived (or 3 s passed without any), one
    JSON line ``{"received", "first", "last"}`` (``time.time()`` stamps)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.wire", "--port", str(port), "--count", str(count),
         "--topic", topic, "--qos", str(qos)],
        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if line != "ready":
        stop_process(proc)
        raise RuntimeError(f"the raw subscriber did not start (said {line!r})")
    return proc


def _raw_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.wire",
                                description="the benchmark's raw subscriber")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--qos", type=int, choices=(0, 1), default=0)
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
    client.on_connect = lambda c, *_a: c.subscribe(args.topic, args.qos)
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


if __name__ == "__main__":
    raise SystemExit(_raw_main(sys.argv[1:]))
