"""Smoke test of ``fleetflow bench alloc`` at a small size: it runs and reports its figures.

The figures themselves are what the command is for (docs/benchmarks.md); no test times
anything.
"""

from __future__ import annotations

import json

import pytest

from bench import alloc
from fleetflow.__main__ import main

FIGURES = {
    "alloc_s", "alloc_s_runs", "placed", "greedy_alloc_s", "cost_ratio_vs_optimal",
    "cost_ratio_runs", "greedy_cost_ratio", "scipy_s",
}


def test_a_small_run_reports_every_figure_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    """The command prints one JSON object with every figure; the ratio is never below 1."""
    assert main(["bench", "alloc", "--json", "--tasks", "60", "--agents", "12", "--grid", "8",
                 "--ratio-n", "12", "--reps", "2"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert not FIGURES - result.keys(), f"missing figures: {FIGURES - result.keys()}"
    assert (result["benchmark"], result["tasks"], result["agents"], result["reps"]) == (
        "alloc", 60, 12, 2)
    assert result["placed"] == 60  # every task assigned or queued on a robot
    assert len(result["alloc_s_runs"]) == len(result["cost_ratio_runs"]) == 2
    assert result["cost_ratio_vs_optimal"] >= 1.0
    assert result["greedy_cost_ratio"] >= result["cost_ratio_vs_optimal"]


def test_the_batch_matches_scipys_optimum_on_a_grid_instance() -> None:
    """On a 30-robot instance the core's batch costs what linear_sum_assignment does."""
    ratio, _ = alloc.run_ratio(n=30, grid=12, seed=3)
    assert ratio == pytest.approx(1.0)


def test_bad_sizes_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """Sizes below one are refused with a message, not a traceback."""
    assert main(["bench", "alloc", "--tasks", "0"]) != 0
    assert "--tasks" in capsys.readouterr().err
