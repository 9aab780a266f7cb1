"""Benchmark: the workflow core against ``transitions``' HierarchicalMachine.

The workload: ``n_workflows`` workflows of a 5-step sequential robot template, each walked
through its whole nested lifecycle (create → initializing → executing, each step
preparation → execution → validation → cleanup → completed) by a scripted fleet of robots.
Workflows run in batches as large as the fleet, so no workflow ever waits for a robot and
every workflow goes through exactly the same transitions.

What counts as a transition (the same on both sides): one state change of a workflow in the
docs/design.md §5 hierarchy, or one state change of a step in its lifecycle. Per workflow that is
1 (start) + 5 x 4 (step_preparation, step_execution, step_validation, step_cleanup)
+ 1 (complete) = 22 workflow transitions and 5 x 8 (ready, allocating, assigned, preparing,
executing, validating, cleanup, done) = 40 step transitions: 62.

Our side is the whole ``Core.handle`` for every input (validation, decisions, events, effects,
Assign messages), so it does strictly more than the state machines; the ``transitions`` side
fires just the 62 triggers per workflow on pre-built models (model creation is not timed).
Both sides' inputs (our messages; their trigger lists) are built before the clock starts.

Plain functions, no CLI: ``fleetflow bench core`` calls ``run``.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from typing import Any

from edge_runtime.core import Append, Core, Event, Input, Template
from edge_runtime.templates import load_template
from edge_runtime.testing import ScriptedFleet

__all__ = [
    "TRANSITIONS_PER_WORKFLOW",
    "bench_template",
    "iter_workload_events",
    "make_workload",
    "measure_memory",
    "run",
    "run_core",
    "run_transitions_lib",
]

STEPS = 5
TRANSITIONS_PER_WORKFLOW = 1 + STEPS * 4 + 1 + STEPS * 8
"""Workflow (22) plus step (40) state changes of one benchmark workflow."""


def bench_template(steps: int = STEPS) -> Template:
    """A sequential template of ``steps`` robot steps (``s1`` … ``sN``)."""
    return load_template({
        "name": "bench_seq", "version": 1,
        "steps": [
            {"id": f"s{i}", "kind": "robot", "capabilities": ["carry"],
             "after": [f"s{i - 1}"] if i > 1 else []}
            for i in range(1, steps + 1)
        ],
    })


def _fleet(n_agents: int, progress_steps: int, steps: int) -> tuple[ScriptedFleet, Template]:
    template = bench_template(steps)
    fleet = ScriptedFleet(Core("bench", {"bench_seq": template}), progress_steps=progress_steps)
    for i in range(n_agents):
        fleet.agent(f"r{i:05d}", "robot", ["carry"])
    return fleet, template


def make_workload(
    n_workflows: int = 10_000, *, n_agents: int = 100, progress_steps: int = 0,
    steps: int = STEPS,
) -> tuple[dict[str, Template], list[tuple[Input, float]]]:
    """Templates and the ``(input, now)`` list that walks ``n_workflows`` to completion.

    Built by running a scripted fleet against a throw-away core, so the inputs are exactly
    what real agents would send (assignments, attempts, event ids) and a fresh core fed
    them produces the same events.
    """
    fleet, template = _fleet(n_agents, progress_steps, steps)
    for start in range(0, n_workflows, n_agents):
        for i in range(start, min(start + n_agents, n_workflows)):
            fleet.create("bench_seq", f"w{i:06d}")
        fleet.run()
        fleet.effects.clear()
    return {"bench_seq": template}, fleet.fed


def iter_workload_events(
    n_workflows: int = 10_000, *, events_per_workflow: int = 100, n_agents: int = 100,
    steps: int = STEPS,
) -> Iterator[Event]:
    """About ``n_workflows * events_per_workflow`` events of a real run, streamed.

    For the store's benchmarks: 10,000 workflows x 100 gives ~1,000,000 events (progress
    reports pad each step). Events come out in seq order; nothing is kept in memory.
    """
    base = 4 * steps + 3  # created, started, completed, reply + 4 per step
    progress = max(0, (events_per_workflow - base) // steps)
    fleet, _ = _fleet(n_agents, progress, steps)
    for start in range(0, n_workflows, n_agents):
        for i in range(start, min(start + n_agents, n_workflows)):
            fleet.create("bench_seq", f"w{i:06d}")
        fleet.run()
        for effect in fleet.effects:
            if isinstance(effect, Append):
                yield effect.event
        fleet.effects.clear()
        fleet.fed.clear()


def run_core(templates: dict[str, Template], inputs: list[tuple[Input, float]]) -> tuple[
        float, int, Core]:
    """Feed ``inputs`` to a fresh core; (seconds, transitions counted, the core)."""
    core = Core("bench", templates)
    handle = core.handle
    gc.collect()
    t0 = time.perf_counter()
    for item, now in inputs:
        handle(item, now)
    elapsed = time.perf_counter() - t0
    return elapsed, core.transitions, core


_WF_STATES: list[Any] = [
    "pending",
    {"name": "active", "children": [
        "initializing",
        {"name": "executing", "children": [
            "step_preparation", "step_execution", "step_validation", "step_cleanup"]},
        "waiting_for_resource", "synchronizing"]},
    "paused", "completed", "failed", "cancelled",
]
_WF_TRANSITIONS: list[Any] = [
    ["start", "pending", "active_initializing"],
    ["prepare", "active", "active_executing_step_preparation"],
    ["execute", "active", "active_executing_step_execution"],
    ["validate", "active", "active_executing_step_validation"],
    ["clean_up", "active", "active_executing_step_cleanup"],
    ["wait_resource", "active", "active_waiting_for_resource"],
    ["synchronize", "active", "active_synchronizing"],
    ["complete", "active", "completed"],
    ["pause", "active", "paused"],
    ["cancel", ["pending", "active", "paused"], "cancelled"],
    ["fail", ["pending", "active", "paused"], "failed"],
]
_STEP_STATES = ["pending", "ready", "allocating", "assigned", "preparing", "executing",
                "validating", "cleanup", "done", "failed", "skipped", "compensated"]
_STEP_TRANSITIONS: list[Any] = [
    ["ready", "pending", "ready"], ["allocate", "ready", "allocating"],
    ["assign", "allocating", "assigned"], ["prepare", "assigned", "preparing"],
    ["execute", "preparing", "executing"], ["validate", "executing", "validating"],
    ["clean_up", "validating", "cleanup"], ["finish", "cleanup", "done"],
    ["fail", ["ready", "allocating", "assigned", "preparing", "executing"], "failed"],
]


def run_transitions_lib(n_workflows: int, steps: int = STEPS) -> tuple[float, int]:
    """The same hierarchy and trigger sequence on ``transitions``; (seconds, transitions)."""
    from transitions import Machine
    from transitions.extensions import HierarchicalMachine

    class Model:
        state: str

    wfs = [Model() for _ in range(n_workflows)]
    step_models = [[Model() for _ in range(steps)] for _ in range(n_workflows)]
    HierarchicalMachine(model=wfs, states=_WF_STATES, transitions=_WF_TRANSITIONS,
                        initial="pending", auto_transitions=False)
    Machine(model=[s for group in step_models for s in group], states=_STEP_STATES,
            transitions=_STEP_TRANSITIONS, initial="pending", auto_transitions=False)
    # The trigger script, built before timing: (model, trigger) in workload order.
    script: list[tuple[Any, str]] = []
    for wf, group in zip(wfs, step_models, strict=True):
        script.append((wf, "start"))
        for st in group:
            script += [(st, "ready"), (st, "allocate"), (st, "assign"), (wf, "prepare"),
                       (st, "prepare"), (st, "execute"), (wf, "execute"), (st, "validate"),
                       (wf, "validate"), (st, "clean_up"), (wf, "clean_up"), (st, "finish")]
        script.append((wf, "complete"))
    gc.collect()
    t0 = time.perf_counter()
    for model, trigger in script:
        model.trigger(trigger)
    elapsed = time.perf_counter() - t0
    assert all(w.state == "completed" for w in wfs)
    return elapsed, len(script)


def measure_memory(n_workflows: int = 10_000, n_agents: int = 100) -> dict[str, float]:
    """RSS growth (MB) of a core holding ``n_workflows`` active workflows."""
    import psutil

    proc = psutil.Process()
    gc.collect()
    before = proc.memory_info().rss
    fleet, _ = _fleet(n_agents, 0, STEPS)
    for i in range(n_workflows):
        fleet.create("bench_seq", f"m{i:06d}")
    fleet.fed.clear()
    fleet.effects.clear()
    gc.collect()
    after = proc.memory_info().rss
    active = fleet.core.workflow_counts().get("active", 0)
    # Growth is only meaningful in a fresh process (freed memory is reused, not returned).
    return {"active_workflows": active, "rss_growth_mb": round((after - before) / 2**20, 1),
            "rss_mb": round(after / 2**20, 1),
            "snapshot_mb": round(len(fleet.core.snapshot()) / 2**20, 2)}


def run(n_workflows: int = 10_000, quick: bool = False) -> dict[str, Any]:
    """Run the comparison; a flat dict of figures (``ratio_vs_transitions`` must be ≥ 5)."""
    if quick:
        n_workflows = min(n_workflows, 1_000)
    templates, inputs = make_workload(n_workflows)
    core_s, core_n, core = run_core(templates, inputs)
    expected = n_workflows * TRANSITIONS_PER_WORKFLOW
    if core_n != expected:
        raise AssertionError(f"core made {core_n} transitions, expected {expected}")
    # Completed workflows are archived (dropped from memory) once nothing waits for them.
    done = core.workflow_counts().get("completed", 0) + sum(
        1 for state in core.archived_workflows().values() if state == "completed")
    lib_s, lib_n = run_transitions_lib(n_workflows)
    core_rate = core_n / core_s
    lib_rate = lib_n / lib_s
    return {
        "n_workflows": n_workflows,
        "completed": done,
        "inputs": len(inputs),
        "events": core.last_seq,
        "transitions": core_n,
        "core_seconds": round(core_s, 3),
        "transitions_lib_seconds": round(lib_s, 3),
        "core_transitions_per_s": round(core_rate),
        "core_inputs_per_s": round(len(inputs) / core_s),
        "core_events_per_s": round(core.last_seq / core_s),
        "transitions_lib_per_s": round(lib_rate),
        "ratio_vs_transitions": round(core_rate / lib_rate, 2),
    }
