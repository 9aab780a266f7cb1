"""The hub benchmark's ingest phases: the same facility streams (``bench._hub_streams``)
received by a bare paho subscriber, applied by the hub's worker alone from memory, and
ingested end to end by a real hub — in this process, and as ``fleetflow hub`` in its own.

End to end, the clock runs from the first publish (the earliest publisher's stamp) to the
moment the hub's applied count, which the worker raises only after a round's batch is
committed (synced) to RocksDB, reaches every event published.
"""

from __future__ import annotations

import http.client
import json
import queue
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench._hub_streams import Publisher, write_payloads
from bench.wire import raw_subscriber
from broker import free_port, stop_process
from cloud_hub import Hub, HubConfig, TokenStore
from cloud_hub._cache import WorkflowLru
from cloud_hub._commands import CommandBook, Waiters
from cloud_hub._ingest import Ingest
from cloud_hub._link import LinkItem
from cloud_hub._store import HubStore
from cloud_hub._worker import Worker, young_collections_less_often
from edge_runtime.templates import load_templates
from topics import unpack_edge_event

__all__ = ["HubProcess", "hub_inprocess_phase", "hub_process_phase", "raw_phase",
           "worker_only_phase"]

Streams = dict[str, list[bytes]]
STALL_S = 15.0
"""An ingest that applies nothing new for this long is over: what was lost on the way is
never replayed here (the publishers are not edges; a hub would ask a real edge for it), and
the figures say how many events were made durable of how many published."""


def _total(streams: Streams) -> int:
    return sum(len(p) for p in streams.values())


def _publish_all(port: int, streams: Streams, scratch: Path,
                 applied: Callable[[], int] | None, timeout: float = 300.0,
                 poll_s: float = 0.005) -> dict[str, Any]:
    """Start one publisher per facility, let them all go at once, and wait until
    ``applied()`` reaches every event (``None``: until they published); the timings."""
    total = _total(streams)
    pubs: list[Publisher] = []
    try:
        for f, payloads in streams.items():
            path = scratch / f"{f}.payloads"
            if not path.exists():
                write_payloads(path, payloads)
            pubs.append(Publisher(port, f, path))
        base = applied() if applied is not None else 0
        for p in pubs:
            p.go()
        end, done = time.monotonic() + timeout, base
        last_change = time.time()
        while applied is not None and done - base < total and time.monotonic() < end \
                and time.time() - last_change < STALL_S:
            time.sleep(poll_s)
            now_done = applied()
            if now_done != done:
                done, last_change = now_done, time.time()
        results = [p.result() for p in pubs]
    finally:
        for p in pubs:
            p.stop()
    first = min(r["first"] for r in results)
    last_publish = max(r["last"] for r in results)
    got = done - base
    elapsed = max(1e-9, last_change - first)
    return {"events": got, "published": total, "seconds": round(elapsed, 3), "first": first,
            "events_per_s": round(got / elapsed),
            "publish_seconds": round(last_publish - first, 3)}


# --- baseline 1: a bare paho subscriber ---------------------------------------------------

def raw_phase(port: int, streams: Streams, scratch: Path, qos: int) -> dict[str, Any]:
    """A bare paho subscriber process on every facility's ``edge/events`` at ``qos``."""
    total = _total(streams)
    sub = raw_subscriber(port, "fleetflow/v1/+/edge/events", total, qos=qos)
    try:
        res = _publish_all(port, streams, scratch, None)
        out, _ = sub.communicate(timeout=300)
    finally:
        stop_process(sub)
    got = json.loads(out.strip().splitlines()[-1])
    # From the first publish to the last message received (both time.time() stamps).
    elapsed = max(1e-9, got["last"] - res["first"])
    return {"raw_receive_msgs_per_s": round(got["received"] / elapsed),
            "raw_received": got["received"], "raw_sent": total}


# --- baseline 2: the worker alone, from memory --------------------------------------------

def worker_only_phase(streams: Streams, templates: Path, batch_max: int) -> dict[str, Any]:
    """The hub's worker (with the hub's round observers) applying the same payloads in
    rounds of ``batch_max``, from memory, into a fresh store (synced commits, as in the
    hub): no broker, no network thread."""
    items = [LinkItem("message", f"fleetflow/v1/{f}/edge/events", p)
             for f, payloads in streams.items() for p in payloads]
    # Interleave facilities as a shared subscription delivers them.
    items.sort(key=lambda it: _seq_key(it.payload))
    with tempfile.TemporaryDirectory(prefix="fleetflow-bench-hub-worker-") as tmp:
        config = HubConfig(data_dir=Path(tmp), templates_dir=templates, batch_max=batch_max)
        store = HubStore(Path(tmp) / "hub.rocksdb")
        try:
            ingest = Ingest(store, load_templates(templates), config.snapshot_every)
            worker = Worker(config, store, ingest, CommandBook(store), Waiters(),
                            WorkflowLru(config.cache_size), queue.SimpleQueue())
            # What watches each round in a real hub (dependencies, loans) watches here too.
            worker.observers.extend(Hub(config)._observers)
            worker.load(time.time())
            young_collections_less_often()  # as Worker.run does
            t0 = time.perf_counter()
            for i in range(0, len(items), batch_max):
                worker.round(items[i:i + batch_max], time.time())
            elapsed = time.perf_counter() - t0
            applied = worker.applied_total
        finally:
            store.close()
    return {"worker_only_events_per_s": round(applied / max(1e-9, elapsed)),
            "worker_only_events": applied, "worker_only_seconds": round(elapsed, 3)}


def _seq_key(payload: bytes) -> int:
    return unpack_edge_event(payload)[0]


# --- the hub, in this process -------------------------------------------------------------

def hub_inprocess_phase(port: int, streams: Streams, scratch: Path,
                        templates: Path) -> dict[str, Any]:
    """A ``Hub`` in this process with a fresh store; every stream at once."""
    with tempfile.TemporaryDirectory(prefix="fleetflow-bench-hub-", dir=scratch) as data:
        hub = Hub(HubConfig(data_dir=Path(data), port=port, username=None,
                            templates_dir=templates)).start()
        try:
            _wait(lambda: hub.connected, "the in-process hub to subscribe")
            worker = hub._worker
            assert worker is not None
            res = _publish_all(port, streams, scratch, lambda: worker.applied_total)
            rounds = worker.rounds
        finally:
            hub.stop()
    return {"hub_inprocess_events_per_s": res["events_per_s"],
            "hub_inprocess_events": res["events"], "hub_inprocess_seconds": res["seconds"],
            "hub_inprocess_rounds": rounds}


# --- the hub as `fleetflow hub` -----------------------------------------------------------

class HubProcess:
    """``python -m fleetflow hub`` on a fresh data directory, with a viewer token (the
    benchmark's brokers admit anonymous clients: no MQTT user name)."""

    def __init__(self, broker_port: int, data: Path, templates: Path) -> None:
        data.mkdir(parents=True, exist_ok=True)
        self.token = TokenStore.in_dir(data).create("bench", "viewer")
        self.port = free_port()
        self.log = open(data / "hub.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fleetflow", "hub", "--broker",
             f"mqtt://127.0.0.1:{broker_port}", "--username", "", "--data", str(data),
             "--templates", str(templates), "--port", str(self.port),
             "--log-level", "WARNING"],
            stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL)
        try:
            _wait(lambda: self.system().get("link_connected"), "fleetflow hub to subscribe")
        except BaseException:
            self.stop()
            raise

    def get(self, path: str) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path, headers={"Authorization": f"Bearer {self.token}"})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def system(self) -> dict[str, Any]:
        if self.proc.poll() is not None:
            raise RuntimeError(f"fleetflow hub exited with {self.proc.returncode}")
        try:
            status, body = self.get("/api/v1/performance/system")
        except OSError:
            return {}
        return dict(json.loads(body)) if status == 200 else {}

    def settle(self, idle: float = 0.2, timeout: float = 30.0) -> float:
        """Wait until the hub process uses under ``idle`` of a CPU (its store's background
        compactions after an ingest, say); the seconds waited."""
        import psutil

        proc, t0 = psutil.Process(self.proc.pid), time.monotonic()
        proc.cpu_percent(None)
        while time.monotonic() - t0 < timeout:
            time.sleep(0.5)
            if proc.cpu_percent(None) < idle * 100:
                break
        return time.monotonic() - t0

    def applied(self) -> int:
        return int(self.system().get("events_applied", 0))

    def stop(self) -> None:
        stop_process(self.proc)
        self.log.close()


def hub_process_phase(hub: HubProcess, port: int, streams: Streams,
                      scratch: Path) -> dict[str, Any]:
    """Every stream at once into ``hub`` (its applied count polled over the API every
    50 ms: the polls are requests the hub serves meanwhile, so not too often)."""
    import psutil

    proc = psutil.Process(hub.proc.pid)
    cpu0 = sum(proc.cpu_times()[:2])
    res = _publish_all(port, streams, scratch, hub.applied, poll_s=0.05)
    cpu = sum(proc.cpu_times()[:2]) - cpu0
    return {"hub_ingest_events_per_s": res["events_per_s"], "hub_ingest_events": res["events"],
            "hub_ingest_events_per_cpu_s": round(res["events"] / max(1e-9, cpu)),
            "hub_ingest_cpu_s": round(cpu, 3),
            "hub_ingest_seconds": res["seconds"], "publish_seconds": res["publish_seconds"],
            "published_events": res["published"]}


def _wait(what: Callable[[], Any], name: str, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if what():
            return
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {name}")
