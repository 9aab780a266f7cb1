"""``fleetflow sim SCENARIO.yaml --virtual``: run a simulator scenario (agents_sim.sim).

Only wiring: load the scenario, run it with a progress bar, print the log hash and a
summary (``--json``: one JSON object), and hand the result to the report writer with
``--report DIR``. ``--live`` is wired in ``fleetflow._cmd_sim_live``, ``--replay STORE``
(no scenario) in ``fleetflow._cmd_sim_replay``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleetflow._cmd_sim_live import add_live_args, print_live, run_live_cmd
from fleetflow._cmd_sim_replay import add_replay_args, refuse_replay_options, run_replay_cmd
from fleetflow._errors import CliError

if TYPE_CHECKING:
    from agents_sim.sim import SimResult


def register(sub: Any) -> None:
    """Add the ``sim`` subcommand."""
    p = sub.add_parser("sim", help="run a simulator scenario: robots, people and AI agents "
                                   "against real edge cores (virtual time)")
    p.add_argument("scenario", metavar="SCENARIO.yaml", nargs="?",
                   help="the scenario file (not with --replay)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--virtual", action="store_true",
                      help="in-process, simulated time, no broker (the default)")
    mode.add_argument("--live", action="store_true",
                      help="the agents over MQTT against a running stack (--broker)")
    mode.add_argument("--replay", metavar="STORE",
                      help="feed an edge's recorded inputs (--record-inputs) through a core "
                           "again and report where the outcome differs (exit 1 if it does)")
    p.add_argument("--seed", type=int, default=None, help="override the scenario's seed")
    p.add_argument("--report", metavar="DIR", help="write the KPI report (JSON, plots) here")
    p.add_argument("--json", action="store_true", help="print one JSON object, no progress")
    add_live_args(p)
    add_replay_args(p)
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    if args.replay:
        if args.scenario:
            raise CliError("--replay STORE takes no scenario")
        return run_replay_cmd(args)
    refuse_replay_options(args)
    if not args.scenario:
        raise CliError("a SCENARIO.yaml is required (or --replay STORE)")
    if args.seed is not None and not 0 <= args.seed < 2**63:
        raise CliError(f"--seed: {args.seed} is not between 0 and 2**63-1")
    from agents_sim.sim import ScenarioError, load_scenario, run_virtual

    try:
        scenario = load_scenario(Path(args.scenario))
    except ScenarioError as exc:
        raise CliError(str(exc)) from None
    if args.live:
        live = run_live_cmd(args, scenario)
        if args.json:
            print(json.dumps(live, sort_keys=True))
        else:
            print_live(live)
        return 0
    started = time.perf_counter()
    run = run_virtual if args.json else _with_progress
    # The hub's aggregation in-process (cloud_hub.VirtualHub, its store in a temporary
    # directory the run removes), for a scenario with hub: or cross_facility.
    hub: Any = None
    if scenario.hub is not None or scenario.cross_facility:
        from cloud_hub import VirtualHub

        hub = VirtualHub
    result = run(scenario, args.seed, hub=hub)
    wall_s = time.perf_counter() - started
    summary = result.summary() | {"wall_s": round(wall_s, 3)}
    if args.report:
        summary["report"] = _report(result, Path(args.report))
    if args.json:
        print(json.dumps(summary, sort_keys=True))
    else:
        _print(summary)
    return 0


def _with_progress(scenario: Any, seed: int | None, hub: Any = None) -> SimResult:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from agents_sim.sim import run_virtual

    columns = (TextColumn("{task.description}"), BarColumn(),
               TextColumn("{task.completed:.0f}/{task.total:.0f} s simulated"),
               TimeElapsedColumn())
    with Progress(*columns, transient=True, console=None) as bar:
        task = bar.add_task(f"sim {scenario.name}", total=scenario.duration_s)

        def step(done: float, planned: float) -> None:
            if done > planned:  # draining: workflows still running after the arrivals
                bar.update(task, description=f"sim {scenario.name} (draining)",
                           total=scenario.duration_s + scenario.drain_s)
            bar.update(task, completed=done)

        return run_virtual(scenario, seed, progress=step, hub=hub)


def _report(result: SimResult, directory: Path) -> str:
    """Write SIM-KPI's report if that part is there; what happened, for the summary."""
    try:
        from agents_sim.report import write_report  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        print("fleetflow sim: --report skipped: the report writer (agents_sim.report) "
              "is not available yet", file=sys.stderr)
        return "skipped: no report writer"
    write_report(result, directory)
    return str(directory)


def _print(summary: dict[str, Any]) -> None:
    print(f"scenario {summary['scenario']}  seed {summary['seed']}  "
          f"{summary['sim_s']:.0f} s simulated in {summary['wall_s']:.2f} s")
    for fid, f in summary["facilities"].items():
        states = ", ".join(f"{k} {v}" for k, v in f.items()
                           if k not in ("workflows", "events", "rejected"))
        print(f"  {fid}: {f['workflows']} workflows ({states or 'none'}), "
              f"{f['events']} events, {f['rejected']} inputs refused")
    if "hub" in summary:
        h = summary["hub"]
        deps = h["dependencies"]
        verdicts = ", ".join(f"{k} {v}" for k, v in deps["resolved"].items()) or "none"
        print(f"  hub: {h['events_applied']} events, {deps['total']} cross-facility "
              f"dependencies (resolved: {verdicts}; waiting {deps['waiting']}), "
              f"state hash {h['state_hash']}")
    if "report" in summary:
        print(f"report: {summary['report']}")
    print(f"log hash {summary['log_hash']}")
