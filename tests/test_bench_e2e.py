"""Smoke test of the end-to-end benchmark (quick mode) on Mosquitto."""

from __future__ import annotations

import time

import psutil
import pytest

from bench import e2e

pytestmark = [pytest.mark.slow, pytest.mark.mosquitto]


def _children() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


def test_quick_run_reports_every_figure_and_cleans_up(mosquitto_bin: str) -> None:
    """A quick run measures raw, ingest and reaction figures and leaves no process behind."""
    before = _children()
    started = time.monotonic()
    result = e2e.run(broker="mosquitto", quick=True, agents=200, rate=1000)
    assert time.monotonic() - started < 60
    assert result["broker"] == "mosquitto" and result["quick"] is True
    assert result["raw_received"] == result["raw_sent"] == 10_000
    assert result["raw_subscriber_msgs_per_s"] > 0
    # The edge handled (and committed) every state it received, and received nearly all.
    assert result["edge_handled"] >= 0.99 * result["edge_sent"]
    assert result["edge_ingest_msgs_per_s"] > 0
    assert result["ratio_vs_raw_subscriber"] == pytest.approx(
        result["edge_ingest_msgs_per_s"] / result["raw_subscriber_msgs_per_s"], abs=0.01)
    assert result["reaction_samples"] > 20
    assert 0 < result["reaction_p50_ms"] <= result["reaction_p99_ms"] <= result["reaction_max_ms"]
    assert result["offered_msgs_per_s"] == pytest.approx(1000, rel=0.2)
    assert _children() <= before


def test_unknown_broker_is_refused() -> None:
    """Asking for a broker kind the benchmark does not know raises a clear error."""
    with pytest.raises(ValueError, match="mosquitto"):
        e2e.run(broker="rabbitmq", quick=True)
