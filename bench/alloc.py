"""Benchmark: batch allocation and work queues of the real core on a grid facility map.

Two figures (issue 9), each with a baseline measured in the same run:

* ``alloc_s`` — wall time for the core to allocate ``tasks`` (1,000) single-step robot
  workflows over ``agents`` (200) robots: every task ends up assigned to a robot or queued
  on one (``max_queued_per_agent`` = tasks / agents - 1). The tasks are created within one
  batch window (``batch_window_s``) and allocated when it closes. Costs are ``map_cost``
  on a ``grid`` x ``grid`` (50 x 50) ``FacilityMap`` — shortest paths, computed once per
  robot's node and cached by the map as in the edge; each repetition builds a fresh map,
  so those Dijkstra runs are timed too. Baseline: the same run with no window (each task
  assigned greedily the moment it is created), ``greedy_alloc_s``.
* ``cost_ratio_vs_optimal`` — total travel cost of the core's assignment of ``ratio_n``
  (200) tasks to as many robots, in one window, over the optimum of scipy's
  ``linear_sum_assignment`` on the same cost matrix (scipy: a bench-only dependency).
  Baseline: the greedy one-at-a-time assignment's ratio, ``greedy_cost_ratio``, and
  scipy's own time, ``scipy_s``.

Figures are medians over ``reps`` repetitions with different random placements (seeded).
Plain functions, no CLI: ``fleetflow bench alloc`` calls ``run``.
"""

from __future__ import annotations

import gc
import random
import statistics
import time
from typing import Any

from edge_runtime.core import Core, CoreConfig, Template, TimerFired
from edge_runtime.facility import FacilityMap
from edge_runtime.shell import map_cost
from edge_runtime.templates import load_template
from topics import AgentConn, AgentState, HubCommand

__all__ = ["grid_map", "run", "run_alloc", "run_ratio"]

WINDOW_S = 1.0
START = 1000.0


def grid_map(n: int) -> FacilityMap:
    """An ``n`` x ``n`` grid of nodes ``g<x>_<y>`` 1 m apart, 4-connected both ways."""
    nodes = {f"g{x}_{y}": {"x": x, "y": y} for x in range(n) for y in range(n)}
    edges = [[f"g{x}_{y}", f"g{x + 1}_{y}"] for x in range(n - 1) for y in range(n)]
    edges += [[f"g{x}_{y}", f"g{x}_{y + 1}"] for x in range(n) for y in range(n - 1)]
    return FacilityMap.from_dict({"map_id": "grid", "nodes": nodes, "edges": edges})


def _templates(locations: list[str]) -> dict[str, Template]:
    """One single-step robot template per task location (the step's ``location``)."""
    return {f"t_{loc}": load_template({"name": f"t_{loc}", "steps": [{
        "id": "go", "kind": "robot", "location": loc, "estimated_duration_s": 60}]})
        for loc in dict.fromkeys(locations)}


def _placement(rng: random.Random, grid: int, count: int) -> list[str]:
    return [f"g{rng.randrange(grid)}_{rng.randrange(grid)}" for _ in range(count)]


def _fleet_core(fmap: FacilityMap, templates: dict[str, Template], robots: list[str],
                config: dict[str, Any]) -> Core:
    """A core whose ``robots`` (at these nodes) have joined; nothing timed yet."""
    core = Core("bench", templates, config=CoreConfig(cost=map_cost(fmap), **config))
    for i, node in enumerate(robots):
        aid = f"r{i:04d}"
        core.handle(AgentConn(agent_id=aid, online=True, kind="robot", liveness_s=3600),
                    START)
        core.handle(AgentState(agent_id=aid, ts=START, node=node), START)
    return core


def _allocate(core: Core, tasks: list[str], window: bool) -> float:
    """Create one workflow per task location (and close the window); seconds taken."""
    creates = [HubCommand(command_id=f"c{i}", action="create_workflow",
                          args={"template": f"t_{loc}", "workflow_id": f"w{i:05d}"})
               for i, loc in enumerate(tasks)]
    now = START + 0.001
    gc.collect()
    t0 = time.perf_counter()
    for cmd in creates:
        core.handle(cmd, now)
    if window:
        core.handle(TimerFired("alloc:batch"), START + WINDOW_S)
    return time.perf_counter() - t0


def run_alloc(*, tasks: int, agents: int, grid: int, seed: int,
              window: bool = True) -> tuple[float, int]:
    """Seconds to allocate ``tasks`` over ``agents``, and how many ended assigned or queued."""
    rng = random.Random(seed)
    robots, locations = _placement(rng, grid, agents), _placement(rng, grid, tasks)
    queued = max(0, -(-tasks // agents) - 1)
    config: dict[str, Any] = {"max_queued_per_agent": queued}
    if window:
        config["batch_window_s"] = WINDOW_S
    core = _fleet_core(grid_map(grid), _templates(locations), robots, config)
    seconds = _allocate(core, locations, window)
    placed = sum(1 for wf in core.state.workflows.values()
                 if wf.steps["go"].agent is not None or wf.steps["go"].queued_on is not None)
    return seconds, placed


def run_ratio(*, n: int, grid: int, seed: int, window: bool = True) -> tuple[float, float]:
    """The core's total cost over scipy's optimum for ``n`` tasks and ``n`` robots, and
    scipy's time."""
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    rng = random.Random(seed)
    robots, locations = _placement(rng, grid, n), _placement(rng, grid, n)
    fmap = grid_map(grid)
    core = _fleet_core(fmap, _templates(locations), robots,
                       {"batch_window_s": WINDOW_S} if window else {})
    _allocate(core, locations, window)
    node = {f"r{i:04d}": robots[i] for i in range(n)}
    total = 0.0
    for i, loc in enumerate(locations):
        wf = core.state.workflows[f"w{i:05d}"]
        agent = wf.steps["go"].agent
        assert agent is not None, f"task {i} was not assigned"
        total += fmap.path_cost(node[agent], loc)
    matrix = np.array([[fmap.path_cost(r, loc) for r in robots] for loc in locations])
    t0 = time.perf_counter()
    rows, cols = linear_sum_assignment(matrix)
    scipy_s = time.perf_counter() - t0
    optimum = float(matrix[rows, cols].sum())
    return (total / optimum if optimum else 1.0), scipy_s


def run(*, quick: bool = False, tasks: int | None = None, agents: int | None = None,
        grid: int | None = None, ratio_n: int | None = None, reps: int | None = None,
        ) -> dict[str, Any]:
    """All figures, medians over ``reps`` seeded repetitions."""
    tasks = tasks or (200 if quick else 1000)
    agents = agents or (40 if quick else 200)
    grid = grid or (20 if quick else 50)
    ratio_n = ratio_n or (40 if quick else 200)
    reps = reps or (1 if quick else 3)
    alloc, greedy, ratio, greedy_ratio, scipy_s = [], [], [], [], []
    placed = tasks
    for seed in range(reps):
        seconds, got = run_alloc(tasks=tasks, agents=agents, grid=grid, seed=seed)
        alloc.append(seconds)
        placed = min(placed, got)
        greedy.append(run_alloc(tasks=tasks, agents=agents, grid=grid, seed=seed,
                                window=False)[0])
        r, s = run_ratio(n=ratio_n, grid=grid, seed=seed)
        ratio.append(r)
        scipy_s.append(s)
        greedy_ratio.append(run_ratio(n=ratio_n, grid=grid, seed=seed, window=False)[0])
    return {
        "tasks": tasks, "agents": agents, "grid": grid, "ratio_n": ratio_n, "reps": reps,
        "alloc_s": round(statistics.median(alloc), 4),
        "alloc_s_runs": [round(x, 4) for x in alloc],
        "placed": placed,
        "greedy_alloc_s": round(statistics.median(greedy), 4),
        "cost_ratio_vs_optimal": round(statistics.median(ratio), 4),
        "cost_ratio_runs": [round(x, 4) for x in ratio],
        "greedy_cost_ratio": round(statistics.median(greedy_ratio), 4),
        "scipy_s": round(statistics.median(scipy_s), 5),
    }
