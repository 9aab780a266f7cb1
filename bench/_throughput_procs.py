"""Processes of ``fleetflow bench throughput``: the edge under test, the agents' process,
and the CPU time each of them (and the broker) used.

The edge is a real ``python -m fleetflow edge`` with a fresh RocksDB store and one 3-step
sequential template; the agents run in ``python -m bench._throughput_agents``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from bench._throughput_agents import CAPABILITY
from broker import free_port, stop_process

__all__ = ["STEPS", "TEMPLATE", "cpu_seconds", "find_pid", "run_agents", "run_edge"]

TEMPLATE = "bench-three"
"""The benchmark's template: three sequential robot steps."""
STEPS = 3


def template() -> dict[str, Any]:
    """``t1`` → ``t2`` → ``t3``, each a robot step asking for the agents' capability."""
    steps: list[dict[str, Any]] = []
    for i in range(1, STEPS + 1):
        step: dict[str, Any] = {"id": f"t{i}", "kind": "robot", "capabilities": [CAPABILITY],
                                "estimated_duration_s": 1.0}
        if i > 1:
            step["after"] = [f"t{i - 1}"]
        steps.append(step)
    return {"name": TEMPLATE, "version": 1, "steps": steps}


@contextmanager
def run_edge(port: int, facility: str, scratch: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A real edge for ``facility`` on the broker at ``port``, files under ``scratch``;
    yields its process once it is connected, and stops it on the way out."""
    templates = scratch / "templates"
    templates.mkdir()
    (templates / f"{TEMPLATE}.json").write_text(json.dumps(template()))
    metrics_port = free_port()
    log_path = scratch / "edge.log"
    cmd = [sys.executable, "-m", "fleetflow", "edge", "--facility", facility,
           "--broker", f"mqtt://127.0.0.1:{port}", "--data", str(scratch / "edge-data"),
           "--templates", str(templates), "--metrics-port", str(metrics_port),
           "--log-level", "WARNING"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            _wait_connected(proc, metrics_port, log_path)
            yield proc
        finally:
            stop_process(proc)


def _wait_connected(proc: subprocess.Popen[bytes], metrics_port: int, log: Path) -> None:
    deadline = time.monotonic() + 30
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    while True:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-3:]
            raise RuntimeError("the edge process exited: " + " | ".join(tail))
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                text = resp.read().decode()
            if any(line.startswith("fleetflow_edge_connected 1") for line in text.splitlines()):
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("the edge did not connect to the broker within 30 s")
        time.sleep(0.1)


@contextmanager
def run_agents(port: int, facility: str, agents: int, prefix: str, progress: int,
               log: IO[bytes]) -> Iterator[subprocess.Popen[str]]:
    """The agents' process, once it announced its agents; on the way out its stdin is
    closed (it prints its stats: ``proc.stats``) and it is stopped."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench._throughput_agents", "--port", str(port), "--facility",
         facility, "--agents", str(agents), "--prefix", prefix, "--progress", str(progress)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"the benchmark's agents did not start (said {line!r})")
        yield proc
    finally:
        if proc.stdin is not None and not proc.stdin.closed:
            proc.stdin.close()
        stop_process(proc)


def agent_stats(proc: subprocess.Popen[str], timeout: float = 10.0) -> dict[str, Any]:
    """Close the agents' stdin and read the stats line they print before exiting."""
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.close()
    proc.wait(timeout)
    lines = proc.stdout.read().strip().splitlines()
    return dict(json.loads(lines[-1])) if lines else {}


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of process ``pid`` so far (``None`` if unknown)."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICK


def find_pid(needle: str) -> int | None:
    """The pid of a process whose command line contains ``needle`` (the broker's)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode():
                return int(entry.name)
        except (OSError, UnicodeDecodeError):
            continue
    return None
