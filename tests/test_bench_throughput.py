"""Smoke test of ``fleetflow bench throughput --quick --json`` on Mosquitto: it runs, workflows
really complete end to end, and every figure is reported.

The figures themselves (≥ 300 workflows/s) are what the benchmark is for; no test asserts a
rate: a test must not be a timed benchmark.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.mosquitto]

ROOT = Path(__file__).resolve().parent.parent

FIGURES = {
    "benchmark", "quick", "agents", "template_steps", "agent_events_per_step", "window",
    "rounds", "workflows_completed_per_s", "steps_completed_per_s", "events_per_s",
    "latency_p50_ms", "latency_p99_ms", "load_avg_1m", "baseline_null_edge_workflows_per_s",
    "ratio_vs_null_edge", "rounds_workflows_per_s", "rounds_null_edge_workflows_per_s",
    "edge_rounds", "null_edge_rounds", "agent_stats", "hub_refused", "duration_s",
}


def _children() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


def test_quick_run_completes_workflows_and_reports_every_figure(mosquitto_bin: str) -> None:
    """A quick run completes workflows on the edge and the null edge, reports every figure,
    and leaves no process behind."""
    before = _children()
    env = {**os.environ, "PATH": f"{Path(mosquitto_bin).parent}{os.pathsep}"
                                 f"{os.environ.get('PATH', '')}"}
    proc = subprocess.run(
        [sys.executable, "-m", "fleetflow", "bench", "throughput", "--quick", "--json",
         "--agents", "20", "--seconds", "1.5", "--rounds", "1"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not FIGURES - result.keys(), f"missing figures: {FIGURES - result.keys()}"
    assert result["benchmark"] == "throughput" and result["agents"] == 20
    edge_round = result["edge_rounds"][0]
    assert edge_round["workflows"] > 0 and edge_round["drained"]
    assert result["workflows_completed_per_s"] > 0
    assert result["steps_completed_per_s"] >= result["workflows_completed_per_s"]
    assert result["null_edge_rounds"][0]["workflows"] > 0
    stats = result["agent_stats"]
    assert stats["assigns"] >= 3 * edge_round["workflows"] and stats["errors"] == 0
    assert result["hub_refused"] == 0
    assert _children() <= before


def test_bad_options_are_refused() -> None:
    """A non-positive agent count is refused with a clear error, before anything starts."""
    proc = subprocess.run(
        [sys.executable, "-m", "fleetflow", "bench", "throughput", "--agents", "0"],
        cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "--agents" in proc.stderr
