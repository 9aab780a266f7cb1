"""Benchmark: the fleet simulator's virtual mode on the 1,000-agent stress scenario.

``fleetflow bench sim`` runs ``scenarios/stress_1000.yaml`` (four halls of 100 robots,
100 people and 50 AI agents; eight simulated hours of arrivals, then the drain until every
workflow ended) with ``agents_sim.sim.run_virtual`` and reports:

* ``wall_s`` — wall seconds of the whole run (target: at most 60 for eight hours);
* ``sim_events_per_s`` — the cores' log events made per wall second (``events`` /
  ``wall_s``); ``inputs`` — the messages and timers the cores were handed;
* the load: workflows created and completed, and the agents' utilisation by kind (busy
  seconds over agents x run length, ``agents_sim.report.kpis``).

Baseline, from the same run: every input each core was handed (``record_inputs``) is
fed again, in order and at the same times, to a fresh core of the same configuration —
with no SimPy, no agents, no links. ``core_replay_s`` is what the edge cores alone cost
for that run, the floor no simulator of these cores can go under; ``sim_overhead`` =
``wall_s`` / ``core_replay_s`` is what simulating the agents, the links and time adds on
top. ``replay_identical`` checks that the replay gave the very same log (hash): the cores
are deterministic and the run fed them everything. Both sides run with the cyclic garbage
collector paused, as ``run_virtual`` runs its simulation.

Plain functions, no CLI: ``fleetflow bench sim`` calls ``run``.
"""

from __future__ import annotations

import gc
import time
from pathlib import Path
from typing import Any

from agents_sim.report import kpis
from agents_sim.sim import SimResult, facility_core, load_scenario, log_hash, run_virtual
from edge_runtime.core import Core, CoreError, Event

__all__ = ["STRESS", "replay", "run"]

STRESS = Path(__file__).resolve().parents[1] / "scenarios" / "stress_1000.yaml"
"""The scenario benchmarked."""
QUICK_HOURS = 0.25
"""Simulated hours of arrivals of a ``--quick`` run (the full run: the scenario's 8)."""


def replay(result: SimResult) -> tuple[float, dict[str, list[Event]]]:
    """Feed every recorded input of ``result`` to fresh cores; wall seconds and the logs."""
    cores: dict[str, Core] = {f.id: facility_core(f) for f in result.scenario.facilities}
    logs: dict[str, list[Event]] = {fid: [] for fid in cores}
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()  # as ``run_virtual`` runs its simulation: the same footing for both sides
    try:
        t0 = time.perf_counter()
        for fid, inputs in result.inputs.items():
            core, log = cores[fid], logs[fid]
            for item, now in inputs:
                try:
                    effects = core.handle(item, now)
                except CoreError:
                    continue
                log.extend(e.event for e in effects if hasattr(e, "event"))
        return time.perf_counter() - t0, logs
    finally:
        if was_enabled:
            gc.enable()


def run(*, quick: bool = False, hours: float | None = None, seed: int | None = None,
        scenario_path: Path = STRESS) -> dict[str, Any]:
    """Run the stress scenario for ``hours`` of arrivals (8; quick 0.25) and its baseline."""
    scenario = load_scenario(scenario_path)
    if hours is None:
        hours = QUICK_HOURS if quick else scenario.duration_s / 3600
    if not 0 < hours <= 1000:
        raise ValueError(f"hours: {hours} is not in (0, 1000]")
    scenario = scenario.model_copy(update={"duration_s": hours * 3600})
    gc.collect()
    t0 = time.perf_counter()
    result = run_virtual(scenario, seed, record_inputs=True)
    wall_s = time.perf_counter() - t0
    events = sum(len(log) for log in result.events.values())
    inputs = sum(len(i) for i in result.inputs.values())
    core_s, logs = replay(result)
    k = kpis(result.events, duration_s=result.sim_s)
    return {
        "scenario": scenario.name, "seed": result.seed,
        "agents": sum(len(f.agent_ids()) for f in scenario.facilities),
        "facilities": len(scenario.facilities),
        "arrival_hours": hours, "sim_s": round(result.sim_s, 1),
        "wall_s": round(wall_s, 3),
        "events": events, "inputs": inputs,
        "sim_events_per_s": round(events / wall_s, 1),
        "sim_s_per_wall_s": round(result.sim_s / wall_s, 1),
        "workflows": k.workflows["created"], "completed": k.workflows["completed"],
        "all_terminal": result.all_terminal,
        "utilisation_by_kind": {kind: None if u is None else round(u, 3)
                                for kind, u in sorted(k.utilisation_by_kind.items())},
        "core_replay_s": round(core_s, 3),
        "core_events_per_s": round(events / core_s, 1) if core_s else None,
        "sim_overhead": round(wall_s / core_s, 2) if core_s else None,
        "replay_identical": log_hash(logs) == result.log_hash,
        "log_hash": result.log_hash,
    }
