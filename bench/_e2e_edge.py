"""The edge under test of ``fleetflow bench e2e``: a real ``python -m fleetflow edge`` process.

It runs with a fresh store and the benchmark's chain template; the benchmark reads its
Prometheus metrics and watches its event stream for *markers*: a new agent announced after
a burst, whose ``agent_joined`` event proves that the edge handled and committed everything
sent before it (the edge handles its queue in order and publishes a batch's effects only
after the batch is durable).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.wire import Wire
from broker import free_port, stop_process
from topics import AgentConn, ProtocolError, agent_topic, decode_edge_event, edge_topic, encode

__all__ = [
    "CHAIN_STEPS",
    "FACILITY",
    "TEMPLATE",
    "EdgeUnderTest",
    "announce",
    "next_marker",
    "run_edge",
]

FACILITY = "bench"
"""The edge's facility."""
TEMPLATE = "bench-chain"
"""The workflow template the reaction phase creates workflows from."""
CHAIN_STEPS = 200
"""Steps per benchmark workflow (a chain: each step's successor is assigned on its done)."""
_MARKER = "bench-marker-"
_MARKERS = itertools.count(1)


def next_marker(phase: str) -> str:
    """A marker agent id not used before in this process."""
    return f"{_MARKER}{phase}-{next(_MARKERS)}"


@dataclass
class EdgeUnderTest:
    """The edge process, the benchmark's watcher of its events, and its metrics."""

    port: int
    """The broker's port."""
    metrics_port: int
    """Where the edge serves Prometheus metrics."""
    process: subprocess.Popen[bytes]
    events: Wire
    """Subscribed to the edge's event stream."""
    marker_seen: dict[str, float] = field(default_factory=dict)
    """Marker agent id → perf_counter when its edge event arrived."""
    lock: threading.Condition = field(default_factory=threading.Condition)

    def samples(self, name: str) -> list[tuple[dict[str, str], float]]:
        """Every sample called ``name`` of the edge's Prometheus metrics."""
        from prometheus_client.parser import text_string_to_metric_families

        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            text = resp.read().decode()
        return [(dict(s.labels), float(s.value))
                for family in text_string_to_metric_families(text)
                for s in family.samples if s.name == name]

    def counter(self, name: str, labels: dict[str, str]) -> float:
        """One sample of the edge's metrics (0 if absent)."""
        for have, value in self.samples(name):
            if all(have.get(k) == v for k, v in labels.items()):
                return value
        return 0.0

    def latency_buckets(self) -> dict[float, float]:
        """The edge's input-latency histogram: upper bound (s) → cumulative count."""
        return {float(labels["le"]): value for labels, value
                in self.samples("fleetflow_edge_input_latency_seconds_bucket")}

    def marker(self, pub: Wire, name: str, timeout: float = 120.0) -> float:
        """Announce agent ``name`` and wait until the edge published an event naming it;
        returns that moment (``time.perf_counter``)."""
        pub.publish(agent_topic(FACILITY, name, "conn"),
                    encode(AgentConn(agent_id=name, online=True, kind="robot", ts=time.time())),
                    qos=1)
        deadline = time.monotonic() + timeout
        with self.lock:
            while name not in self.marker_seen:
                left = deadline - time.monotonic()
                if left <= 0 or self.process.poll() is not None:
                    raise RuntimeError(f"the edge did not handle marker {name!r} "
                                       f"(exit status {self.process.poll()})")
                self.lock.wait(min(left, 0.5))
            return self.marker_seen[name]


@contextmanager
def run_edge(port: int, scratch: Path) -> Iterator[EdgeUnderTest]:
    """Start the edge on the broker at ``port`` with its files under ``scratch``; yields it
    once it is connected, and stops it on the way out."""
    templates = scratch / "templates"
    templates.mkdir()
    (templates / f"{TEMPLATE}.json").write_text(json.dumps(_chain_template()))
    metrics_port = free_port()
    log = open(scratch / "edge.log", "wb")  # noqa: SIM115 (closed below)
    cmd = [sys.executable, "-m", "fleetflow", "edge", "--facility", FACILITY,
           "--broker", f"mqtt://127.0.0.1:{port}", "--data", str(scratch / "edge-data"),
           "--templates", str(templates), "--metrics-port", str(metrics_port),
           "--log-level", "WARNING"]
    holder: list[EdgeUnderTest] = []

    def on_event(_topic: str, payload: bytes, at: float) -> None:
        if holder and _MARKER.encode() in payload:  # cheap filter before decoding
            edge = holder[0]
            with edge.lock:
                for name in _marker_names(payload):
                    edge.marker_seen.setdefault(name, at)
                edge.lock.notify_all()

    events = Wire(port, "bench-edge-watch", [(edge_topic(FACILITY, "events"), 1)], on_event)
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    edge = EdgeUnderTest(port, metrics_port, proc, events)
    holder.append(edge)
    try:
        _wait_connected(edge, scratch / "edge.log")
        yield edge
    finally:
        stop_process(proc)
        events.close()
        log.close()


def announce(edge: EdgeUnderTest, ids: list[str], workers: int) -> None:
    """Announce every agent (retained, the first ``workers`` able to work the chain) and
    wait until the edge has them all."""
    pub = Wire(edge.port, "bench-announce", [])
    try:
        for i, agent_id in enumerate(ids):
            caps = ["bench"] if i < workers else []
            pub.publish(agent_topic(FACILITY, agent_id, "conn"), encode(AgentConn(
                agent_id=agent_id, online=True, kind="robot", capabilities=caps,
                liveness_s=60.0, ts=time.time())), qos=1, retain=True)
        edge.marker(pub, f"{_MARKER}announce")
    finally:
        pub.close()


def _marker_names(payload: bytes) -> list[str]:
    """Marker agent ids mentioned in an edge event payload (decoded properly)."""
    try:
        event = decode_edge_event(payload)
    except ProtocolError:
        return []
    words = json.dumps(event.data).split('"')
    return [w for w in words if w.startswith(_MARKER)]


def _wait_connected(edge: EdgeUnderTest, log: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        if edge.process.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-3:]
            raise RuntimeError("the edge process exited: " + " | ".join(tail))
        try:
            if edge.counter("fleetflow_edge_connected", {}) == 1.0:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("the edge did not connect to the broker within 30 s")
        time.sleep(0.1)


def _chain_template() -> dict[str, Any]:
    steps: list[dict[str, Any]] = []
    for i in range(CHAIN_STEPS):
        step: dict[str, Any] = {"id": f"s{i}", "kind": "robot", "capabilities": ["bench"],
                                "estimated_duration_s": 0.5}
        if i:
            step["after"] = [f"s{i - 1}"]
        steps.append(step)
    return {"name": TEMPLATE, "version": 1, "steps": steps}
