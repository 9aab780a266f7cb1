"""``fleetflow bench throughput``: workflows completed per second, end to end, on one edge.

One run starts Mosquitto on a free port, a real ``python -m fleetflow edge`` (fresh RocksDB
store, one 3-step sequential template), ``agents`` scripted robots in a process of their own
(``bench._throughput_agents``: every command acknowledged, each applied once, events kept
until the edge's ``EventAck``), and, in this process, the hub's side (``bench._throughput_hub``:
``create_workflow`` hub commands on ``edge/cmd``, resent until their ``command_reply``).

Each round offers work at saturation — ``window`` workflows outstanding, a new create for
every completion —, lets ``warmup`` seconds pass, and counts over the next ``seconds``:

- ``workflows_completed_per_s``: ``workflow_completed`` events the edge published on
  ``edge/events`` (it publishes an event only once its batch is committed: durable);
- ``steps_completed_per_s`` (``step_done`` events), ``events_per_s`` (every event);
- latency from sending a workflow's create to seeing its completion, p50 and p99;
- the CPU each process used, as a share of one core.

Then the round drains (no new creates until every workflow finished). The baseline of the
same run, interleaved with the rounds: ``bench._throughput_null``, the same agents' process
and the same hub side against a *null edge* that speaks the same protocol with the same
messages but keeps no store, runs no core and checks nothing. Its rate is the ceiling the
messaging alone (broker, clients, agents, hub side) sets on this machine.
"""

from __future__ import annotations

import os
import statistics
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench._e2e_reaction import _ms, _quantile
from bench._throughput_hub import HubLoad, Tally
from bench._throughput_null import run_null_edge
from bench._throughput_procs import (
    STEPS,
    TEMPLATE,
    agent_stats,
    cpu_seconds,
    find_pid,
    run_agents,
    run_edge,
)
from bench.wire import start_broker, tmpdir

__all__ = ["run"]

FACILITY = "tput"
NULL_FACILITY = "tnul"


def run(quick: bool = False, agents: int | None = None, seconds: float | None = None,
        rounds: int | None = None, window: int | None = None, progress: int = 0
        ) -> dict[str, Any]:
    """Run the benchmark (``quick``: a short one, for tests); the figures."""
    agents = agents or (50 if quick else 200)
    seconds = seconds or (3.0 if quick else 10.0)
    rounds = rounds or (2 if quick else 3)
    window = window or max(200, 5 * agents)
    warmup = 1.0 if quick else 2.0
    if agents < 1 or seconds <= 0 or rounds < 1 or window < 1 or progress < 0:
        raise ValueError("agents, rounds and window must be at least 1, seconds above 0")
    started = time.monotonic()
    result: dict[str, Any] = {"quick": quick, "agents": agents, "template_steps": STEPS,
                              "agent_events_per_step": 4 + progress, "window": window,
                              "warmup_s": warmup, "seconds": seconds, "rounds": rounds}
    edge_rounds: list[dict[str, Any]] = []
    null_rounds: list[dict[str, Any]] = []
    with tmpdir() as scratch_dir, start_broker("mosquitto", Path(scratch_dir)) as port, \
            ExitStack() as stack:
        scratch = Path(scratch_dir)
        broker_pid = find_pid(str(scratch / "mosquitto.conf"))
        log = stack.enter_context(open(scratch / "agents.log", "wb"))
        edge = stack.enter_context(run_edge(port, FACILITY, scratch))
        null_edge = stack.enter_context(run_null_edge(port, NULL_FACILITY, scratch))
        hub = HubLoad(port, FACILITY, TEMPLATE, prefix="tw")  # before the agents: it
        stack.callback(hub.close)  # counts their agent_joined events
        null_hub = HubLoad(port, NULL_FACILITY, TEMPLATE, prefix="nw")
        stack.callback(null_hub.close)
        agents_proc = stack.enter_context(run_agents(port, FACILITY, agents, "tpa", progress,
                                                     log))
        null_agents = stack.enter_context(run_agents(port, NULL_FACILITY, agents, "tna",
                                                     progress, log))
        hub.wait_joined(agents, 30)
        null_hub.wait_joined(agents, 30)
        pids = {"edge": edge.pid, "agents": agents_proc.pid, "broker": broker_pid,
                "hub_side": os.getpid()}
        null_pids = {**pids, "edge": null_edge.pid, "agents": null_agents.pid}
        for _ in range(rounds):  # interleaved: a shared machine's noise hits both
            edge_rounds.append(_round(hub, pids, window, warmup, seconds))
            null_rounds.append(_round(null_hub, null_pids, window, warmup, seconds))
        result["hub_resent"] = hub.counts.resent
        result["hub_refused"] = hub.counts.refused
        result["agent_stats"] = agent_stats(agents_proc)
    result.update(_summary(edge_rounds, null_rounds))
    result["duration_s"] = round(time.monotonic() - started, 1)
    return result


def _round(hub: HubLoad, pids: dict[str, int | None], window: int, warmup: float,
           seconds: float) -> dict[str, Any]:
    """One saturated window on ``hub``'s edge, then a drain; the round's figures."""
    hub.offer(window)
    time.sleep(warmup)
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    load_before = os.getloadavg()[0]
    a = hub.tally()
    time.sleep(seconds)
    b = hub.tally()
    cpu_after = {name: cpu_seconds(pid) for name, pid in pids.items()}
    drained = hub.drain(60.0)
    elapsed = b.at - a.at
    with hub.lock:
        latencies = sorted(lat for at, lat in hub.counts.done_at if a.at <= at <= b.at)
    cpu: dict[str, float | None] = {}
    for name in pids:
        before, after = cpu_before[name], cpu_after[name]
        cpu[name] = None if before is None or after is None else round(
            (after - before) / elapsed, 3)
    return {**_rates(a, b), "p50_ms": _ms(_quantile(latencies, 0.5)),
            "p99_ms": _ms(_quantile(latencies, 0.99)), "cpu_cores": cpu,
            "load_avg_1m": round(max(load_before, os.getloadavg()[0]), 2),
            "drained": drained}


def _rates(a: Tally, b: Tally) -> dict[str, float]:
    elapsed = max(1e-9, b.at - a.at)
    return {"workflows_per_s": round((b.completed - a.completed) / elapsed, 1),
            "steps_per_s": round((b.steps - a.steps) / elapsed, 1),
            "events_per_s": round((b.events - a.events) / elapsed, 1),
            "workflows": b.completed - a.completed}


def _summary(edge: list[dict[str, Any]], null: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the rounds, the per-round figures, and the ratio to the baseline."""
    def median(rounds: list[dict[str, Any]], key: str) -> float:
        return round(float(statistics.median(r[key] for r in rounds)), 2)

    wf, null_wf = median(edge, "workflows_per_s"), median(null, "workflows_per_s")
    return {
        "workflows_completed_per_s": wf,
        "steps_completed_per_s": median(edge, "steps_per_s"),
        "events_per_s": median(edge, "events_per_s"),
        "latency_p50_ms": median(edge, "p50_ms"),
        "latency_p99_ms": median(edge, "p99_ms"),
        "load_avg_1m": median(edge, "load_avg_1m"),
        "baseline_null_edge_workflows_per_s": null_wf,
        "ratio_vs_null_edge": round(wf / null_wf, 3) if null_wf else 0.0,
        "rounds_workflows_per_s": [r["workflows_per_s"] for r in edge],
        "rounds_null_edge_workflows_per_s": [r["workflows_per_s"] for r in null],
        "edge_rounds": edge,
        "null_edge_rounds": null,
    }
