"""Smoke test of the end-to-end benchmark (quick mode) on Mosquitto: it runs and reports.

The figures themselves are what ``fleetflow bench`` is for; no test asserts them.
"""

from __future__ import annotations

import psutil
import pytest

from bench import e2e

pytestmark = [pytest.mark.slow, pytest.mark.mosquitto]

FIGURES = {
    "raw_subscriber_msgs_per_s", "raw_sent", "raw_received", "raw_runs_msgs_per_s",
    "edge_ingest_msgs_per_s", "edge_sent", "edge_handled", "ingest_runs_msgs_per_s",
    "ratio_vs_raw_subscriber", "edge_input_latency_p99_le_ms", "reaction_p50_ms",
    "reaction_p99_ms", "reaction_max_ms", "reaction_samples", "offered_msgs_per_s",
    "offered_events_per_s", "reaction_seconds", "workflows", "duration_s",
}


def _children() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


def test_quick_run_reports_every_figure_and_cleans_up(mosquitto_bin: str) -> None:
    """A quick run echoes its settings, reports every figure, and leaves no process behind."""
    before = _children()
    result = e2e.run(broker="mosquitto", quick=True, agents=200, rate=1000)
    assert {k: result[k] for k in ("broker", "quick", "agents", "flood_messages")} == {
        "broker": "mosquitto", "quick": True, "agents": 200, "flood_messages": 10_000}
    assert not FIGURES - result.keys(), f"missing figures: {FIGURES - result.keys()}"
    assert result["raw_sent"] == result["edge_sent"] == 10_000
    assert _children() <= before


def test_unknown_broker_is_refused() -> None:
    """Asking for a broker kind the benchmark does not know raises a clear error."""
    with pytest.raises(ValueError, match="mosquitto"):
        e2e.run(broker="rabbitmq", quick=True)
