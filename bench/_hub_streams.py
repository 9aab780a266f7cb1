"""The hub benchmark's input: each facility's ``edge/events`` stream as its edge makes it,
and the publisher processes that stream them through the broker at once.

A facility's stream comes from a real sans-IO ``Core`` driven by a ``ScriptedFleet`` (robots
say hello, workflows of the 5-step bench template are created, every step is assigned,
accepted, started and done), packed exactly as the edge packs what it publishes
(``topics.pack_edge_events``, one payload per event). Workflow and agent ids carry the
facility's name, as in a real deployment where ids are unique across the hub.

Each publisher is a process of its own (``python -m bench._hub_streams``), as each edge is:
it reads its payloads from a file, connects, says ``ready``, and on ``go`` publishes the
retained ``edge/status``, then every event at the edge's QoS (1) as fast as paho takes
them, then the status again with its high-water seq, and prints when it published the
first and last (``time.time()`` stamps).
"""

from __future__ import annotations

import argparse
import json
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.core_transitions import bench_template
from broker import stop_process
from edge_runtime.core import Append, Core
from edge_runtime.testing import ScriptedFleet
from topics import EdgeStatus, encode, pack_edge_events

__all__ = ["TEMPLATE_YAML", "Publisher", "facility_stream", "read_payloads", "write_payloads"]

EDGE_EVENTS_QOS = 1
"""The QoS an edge publishes its events at (``edge_runtime.shell``: at least once)."""
TEMPLATE_YAML = """\
name: bench_seq
version: 1
steps:
""" + "".join(
    f"  - {{id: s{i}, kind: robot, capabilities: [carry]"
    f"{', after: [s' + str(i - 1) + ']' if i > 1 else ''}}}\n" for i in range(1, 6))
"""``bench_template()`` as the file the hub loads (its replicas need the edge's templates)."""


def facility_stream(facility: str, events: int, agents: int = 20) -> list[bytes]:
    """At least ``events`` packed ``edge/events`` payloads of ``facility``, in seq order."""
    template = bench_template()
    fleet = ScriptedFleet(Core(facility, {"bench_seq": template}))
    for i in range(agents):
        fleet.agent(f"{facility}-r{i:03d}", "robot", ["carry"])
    out: list[bytes] = []
    n = 0
    while len(out) < events:
        for _ in range(agents):
            fleet.create("bench_seq", f"{facility}-w{n:06d}")
            n += 1
        fleet.run()
        appended = [e.event for e in fleet.effects if isinstance(e, Append)]
        out.extend(pack_edge_events(appended, facility))
        fleet.effects.clear()
        fleet.fed.clear()
    return out


def write_payloads(path: Path, payloads: list[bytes]) -> None:
    """Length-prefixed payloads, for a publisher process to read."""
    with open(path, "wb") as f:
        for p in payloads:
            f.write(struct.pack(">I", len(p)))
            f.write(p)


def read_payloads(path: Path) -> list[bytes]:
    data = Path(path).read_bytes()
    out, pos = [], 0
    while pos < len(data):
        (n,) = struct.unpack_from(">I", data, pos)
        out.append(data[pos + 4:pos + 4 + n])
        pos += 4 + n
    return out


class Publisher:
    """One facility's publisher process (its own interpreter, as an edge is)."""

    def __init__(self, port: int, facility: str, payloads_file: Path) -> None:
        self.facility = facility
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench._hub_streams", "--port", str(port),
             "--facility", facility, "--payloads", str(payloads_file)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if line != "ready":
            stop_process(self.proc)
            raise RuntimeError(f"the publisher of {facility} did not start (said {line!r})")

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def result(self, timeout: float = 300.0) -> dict[str, float]:
        """``{"first", "last", "published"}`` once every event was published and acked."""
        out, _ = self.proc.communicate(timeout=timeout)
        return dict(json.loads(out.strip().splitlines()[-1]))

    def stop(self) -> None:
        stop_process(self.proc)


def _main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench._hub_streams",
                                description="one facility's edge/events publisher")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--facility", required=True)
    p.add_argument("--payloads", type=Path, required=True)
    args = p.parse_args(argv)
    payloads = read_payloads(args.payloads)
    topic = f"fleetflow/v1/{args.facility}/edge/events"
    status_topic = f"fleetflow/v1/{args.facility}/edge/status"
    up, acked = threading.Event(), threading.Event()
    count = {"acked": 0}

    def on_publish(*_a: object) -> None:
        count["acked"] += 1
        if count["acked"] >= len(payloads) + 2:
            acked.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-edge-{args.facility}",
                         protocol=mqtt.MQTTv311)
    client.max_inflight_messages_set(0)
    client.max_queued_messages_set(0)
    client.on_connect = lambda *_a: up.set()
    client.on_publish = on_publish
    client.connect("127.0.0.1", args.port, keepalive=30)
    client.loop_start()
    if not up.wait(10):
        print("no-connect", flush=True)
        return 1
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return 1
    status = EdgeStatus(facility=args.facility, online=True, high_water_seq=0, ts=time.time())
    client.publish(status_topic, encode(status), qos=1, retain=True)
    first = time.time()
    for payload in payloads:
        client.publish(topic, payload, qos=EDGE_EVENTS_QOS)
    last = time.time()
    status = EdgeStatus(facility=args.facility, online=True, high_water_seq=len(payloads),
                        ts=time.time())
    client.publish(status_topic, encode(status), qos=1, retain=True)
    acked.wait(120)
    client.disconnect()
    client.loop_stop()
    print(json.dumps({"first": first, "last": last, "published": len(payloads),
                      "acked": count["acked"]}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
