"""The edge under soak: a real ``python -m fleetflow edge`` process, its template, and what
the soak reads from outside it — resident memory and CPU time from ``/proc``, counters from
its Prometheus endpoint.

The template is a chain of ``STEPS`` robot steps needing the ``soak`` capability, each
taking ``STEP_S`` seconds (``params.duration_s``, which the simulated agents honour).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents_sim.mqtt_hub import wait_edge_online
from broker import free_port, stop_process

__all__ = ["FACILITY", "STEPS", "STEP_S", "TEMPLATE", "SoakEdge", "proc_cpu_s", "proc_rss_kb",
           "run_soak_edge"]

FACILITY = "soak"
"""The edge's facility."""
TEMPLATE = "soak-chain"
"""The template every soak workflow is created from."""
STEPS = 3
"""Steps per workflow (a chain)."""
STEP_S = 2.0
"""Seconds each step takes an agent."""
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass
class SoakEdge:
    """The running edge: its process, data directory, log and metrics port."""

    process: subprocess.Popen[bytes]
    data: Path
    """Its ``--data`` directory (the store is inside)."""
    log: Path
    metrics_port: int

    def counters(self, name: str) -> dict[str, float]:
        """Every sample of the metric ``name``: its labels joined as ``k=v,…`` → value."""
        from prometheus_client.parser import text_string_to_metric_families

        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            text = resp.read().decode()
        return {",".join(f"{k}={v}" for k, v in sorted(s.labels.items())): float(s.value)
                for family in text_string_to_metric_families(text)
                for s in family.samples if s.name == name}

    def log_tail(self, lines: int = 5) -> str:
        """The last lines of the edge's output (for error messages)."""
        text = self.log.read_text(errors="replace").strip().splitlines()
        return " | ".join(text[-lines:])


def proc_rss_kb(pid: int) -> int:
    """Resident set size of process ``pid`` in KiB (``VmRSS`` of /proc/PID/status)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def proc_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` used so far (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def _template() -> dict[str, Any]:
    steps: list[dict[str, Any]] = []
    for i in range(STEPS):
        step: dict[str, Any] = {"id": f"s{i}", "kind": "robot", "capabilities": ["soak"],
                                "params": {"duration_s": STEP_S},
                                "estimated_duration_s": STEP_S, "timeout_s": 120}
        if i:
            step["after"] = [f"s{i - 1}"]
        steps.append(step)
    return {"name": TEMPLATE, "version": 1, "steps": steps}


@contextmanager
def run_soak_edge(port: int, scratch: Path) -> Iterator[SoakEdge]:
    """Start the edge on the broker at ``port`` with its files under ``scratch``; yields it
    once its retained status says online, and stops it (SIGTERM, then SIGKILL) on the way
    out if it still runs."""
    templates = scratch / "templates"
    templates.mkdir()
    (templates / f"{TEMPLATE}.json").write_text(json.dumps(_template()))
    metrics_port = free_port()
    log_path = scratch / "edge.log"
    log = open(log_path, "wb")  # noqa: SIM115 (closed below)
    cmd = [sys.executable, "-m", "fleetflow", "edge", "--facility", FACILITY,
           "--broker", f"mqtt://127.0.0.1:{port}", "--data", str(scratch / "edge-data"),
           "--templates", str(templates), "--metrics-port", str(metrics_port),
           "--log-level", "WARNING"]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    edge = SoakEdge(proc, scratch / "edge-data", log_path, metrics_port)
    try:
        if not wait_edge_online("127.0.0.1", port, FACILITY, username=None, timeout=60,
                                give_up=lambda: proc.poll() is not None,
                                client_id="soak-edge-watch"):
            raise RuntimeError(f"the edge did not come online (exit status {proc.poll()}): "
                               + edge.log_tail())
        yield edge
    finally:
        stop_process(proc)
        log.close()

