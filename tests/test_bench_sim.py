"""Smoke test of ``fleetflow bench sim --quick``: it runs and reports its figures.

The figures themselves are what the command is for (docs/benchmarks.md); no test here
checks a time against a target.
"""

from __future__ import annotations

import json

import pytest

from fleetflow.__main__ import main

FIGURES = {
    "wall_s", "sim_events_per_s", "events", "inputs", "sim_s", "workflows", "completed",
    "utilisation_by_kind", "core_replay_s", "core_events_per_s", "sim_overhead",
    "replay_identical",
}


def test_a_quick_run_reports_every_figure_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    """--quick prints one JSON object: 1,000 agents did work, every figure is positive."""
    assert main(["bench", "sim", "--quick", "--json", "--hours", "0.05"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert not FIGURES - result.keys(), f"missing figures: {FIGURES - result.keys()}"
    assert (result["benchmark"], result["agents"], result["facilities"]) == ("sim", 1000, 4)
    assert result["wall_s"] > 0 and result["sim_events_per_s"] > 0
    assert result["core_replay_s"] > 0 and result["sim_overhead"] > 0
    assert result["completed"] == result["workflows"] > 0
    assert set(result["utilisation_by_kind"]) == {"ai", "human", "robot"}
    assert result["utilisation_by_kind"]["robot"] > 0
    assert result["replay_identical"] is True  # the baseline fed the cores the same inputs


def test_bad_hours_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """--hours of zero is refused with a message naming it, not a traceback."""
    assert main(["bench", "sim", "--hours", "0"]) != 0
    assert "--hours" in capsys.readouterr().err
