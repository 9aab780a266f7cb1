"""Smoke test of ``fleetflow bench hub --json --quick``: it runs end to end (publisher
processes, Mosquitto, a hub in this process and one as ``fleetflow hub``, the API under 50
clients) and reports every figure.

The figures themselves are what the command is for (docs/benchmarks.md); no test checks
them against the targets.
"""

from __future__ import annotations

import json

import psutil
import pytest

from bench.core_transitions import bench_template
from bench.hub import facility_stream
from edge_runtime.core import Core, Event
from fleetflow.__main__ import main
from topics import unpack_edge_event

pytestmark = [pytest.mark.slow, pytest.mark.mosquitto]

RATES = {
    "worker_only_events_per_s", "raw_receive_msgs_per_s", "hub_inprocess_events_per_s",
    "hub_ingest_events_per_s", "hub_ingest_events_per_cpu_s", "api_get_per_s",
    "health_per_s", "api_list_per_s", "api_get_closed_loop_per_s", "health_closed_loop_per_s",
}
LATENCIES = {
    "api_get_p50_ms", "api_get_p99_ms", "health_p50_ms", "health_p99_ms", "api_list_p99_ms",
    "cache_memory_p99_ms", "cache_warm_p99_ms", "cache_storage_p99_ms",
}
RATIOS = {"ratio_hub_vs_raw_receive", "ratio_hub_vs_worker_only",
          "ratio_inprocess_vs_raw_receive", "ratio_api_get_p99_vs_health_p99"}


def _children() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


def test_quick_run_prints_every_figure_and_cleans_up(
        mosquitto_bin: str, capsys: pytest.CaptureFixture[str]) -> None:
    """One JSON object, every figure positive, every event made durable, no process left."""
    before = _children()
    assert main(["bench", "hub", "--json", "--quick"]) == 0
    result = json.loads(capsys.readouterr().out)
    missing = (RATES | LATENCIES | RATIOS) - result.keys()
    assert not missing, f"missing figures: {missing}"
    assert (result["benchmark"], result["broker"], result["facilities"], result["clients"]) \
        == ("hub", "mosquitto", 10, 50)
    assert all(result[k] > 0 for k in RATES | LATENCIES | RATIOS), result
    total = result["events_total"]
    assert total >= 10 * 1000
    # Every published event was applied and committed, by every hub that ingested them.
    assert result["hub_ingest_events"] == result["hub_inprocess_events"] == total
    assert result["worker_only_events"] == result["hub_events_applied"] == total
    assert result["api_get_errors"] == result["health_errors"] == 0
    assert result["cache_memory_hits"] + result["cache_warm_hits"] >= result["api_get_requests"]
    assert _children() <= before


def test_a_facility_stream_replays_into_a_fresh_replica() -> None:
    """The benchmark's events are a real edge's: a fresh core applies them all, in order."""
    payloads = facility_stream("hall-x", 300)
    replica = Core("hall-x", {"bench_seq": bench_template()})
    for p in payloads:
        seq, hlc, facility, kind, wid, data = unpack_edge_event(p)
        assert facility == "hall-x"
        replica.apply(Event(seq, hlc, kind, wid, data))
    assert replica.last_seq == len(payloads) >= 300
    assert all(w.startswith("hall-x-") for w in replica.archived_workflows())


def test_bad_sizes_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """Sizes below one are refused with a message, not a traceback."""
    assert main(["bench", "hub", "--facilities", "0"]) != 0
    assert "--facilities" in capsys.readouterr().err
