"""``fleetflow bench core|e2e|alloc|hub|sim|throughput|soak|chaos``: benchmarks printing JSON.

The workloads live in the ``bench`` package; this module only parses flags and prints.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
from typing import Any

from fleetflow._errors import CliError


def register(sub: Any) -> None:
    """Add ``bench`` with its workloads (``core`` … ``chaos``)."""
    p = sub.add_parser("bench", help="run a benchmark and print its figures (JSON with --json)")
    which = p.add_subparsers(dest="workload", metavar="WORKLOAD", required=True)
    core = which.add_parser(
        "core", help="edge core vs transitions' HierarchicalMachine; store vs bare RocksDB"
    )
    core.add_argument("--quick", action="store_true", help="a smaller run (under 20 s)")
    core.add_argument("--json", action="store_true", help="print one JSON object")
    core.add_argument(
        "--only", choices=("transitions", "store"), help="run one half of the benchmark"
    )
    core.set_defaults(handler=_run_core)
    e2e = which.add_parser("e2e", help="edge ingest and reaction time through a real broker")
    e2e.add_argument("--broker", choices=("mosquitto", "embedded"), default="mosquitto")
    e2e.add_argument("--quick", action="store_true", help="a smaller run (under 30 s)")
    e2e.add_argument("--json", action="store_true", help="print one JSON object")
    e2e.add_argument("--agents", type=int, default=500, help="simulated agents (default 500)")
    e2e.add_argument("--rate", type=float, default=2000.0, help="offered msg/s (default 2000)")
    e2e.set_defaults(handler=_run_e2e)
    tput = which.add_parser(
        "throughput", help="workflows completed per second, hub command to durable completion")
    tput.add_argument("--quick", action="store_true", help="a smaller run (about 25 s)")
    tput.add_argument("--json", action="store_true", help="print one JSON object")
    tput.add_argument("--agents", type=int, default=None, help="scripted robots (200; quick 50)")
    tput.add_argument("--seconds", type=float, default=None,
                      help="measured seconds per round (10; quick 3)")
    tput.add_argument("--rounds", type=int, default=None, help="rounds, median reported (3)")
    tput.add_argument("--window", type=int, default=None,
                      help="workflows kept outstanding (default: 5 per agent, at least 200)")
    tput.set_defaults(handler=_run_throughput)
    alloc = which.add_parser(
        "alloc", help="batch allocation and work queues on a grid map vs scipy's optimum"
    )
    alloc.add_argument("--quick", action="store_true", help="a smaller run (under 10 s)")
    alloc.add_argument("--json", action="store_true", help="print one JSON object")
    alloc.add_argument("--tasks", type=int, default=None, help="tasks to allocate (1000)")
    alloc.add_argument("--agents", type=int, default=None, help="robots (200)")
    alloc.add_argument("--grid", type=int, default=None, help="grid side, nodes (50)")
    alloc.add_argument("--ratio-n", type=int, default=None,
                       help="tasks and robots of the cost-ratio instance (200)")
    alloc.add_argument("--reps", type=int, default=None, help="repetitions (3)")
    alloc.set_defaults(handler=_run_alloc)
    hub = which.add_parser(
        "hub", help="cloud hub: ingest from many facilities at once; the read API under load")
    hub.add_argument("--quick", action="store_true", help="a smaller run (about a minute)")
    hub.add_argument("--json", action="store_true", help="print one JSON object")
    hub.add_argument("--broker", choices=("mosquitto", "embedded"), default=None,
                     help="broker (default: Mosquitto if installed, else the embedded one)")
    hub.add_argument("--facilities", type=int, default=10, help="facilities streaming (10)")
    hub.add_argument("--events", type=int, default=None,
                     help="events per facility (20000; quick 1000)")
    hub.add_argument("--clients", type=int, default=50, help="concurrent API clients (50)")
    hub.add_argument("--seconds", type=float, default=None,
                     help="seconds of each API load (10; quick 2)")
    hub.add_argument("--rate", type=float, default=20.0,
                     help="requests per second each client offers (20); 0: closed loop")
    hub.set_defaults(handler=_run_hub)
    sim = which.add_parser(
        "sim", help="the simulator, virtual mode: 1,000 agents, 8 simulated hours, vs its cores")
    sim.add_argument("--quick", action="store_true", help="15 simulated minutes (seconds)")
    sim.add_argument("--json", action="store_true", help="print one JSON object")
    sim.add_argument("--hours", type=float, default=None,
                     help="simulated hours of arrivals (8; quick 0.25)")
    sim.add_argument("--seed", type=int, default=None, help="override the scenario's seed")
    sim.set_defaults(handler=_run_sim)
    soak = which.add_parser(
        "soak", help="1,000 agents at 1 Hz plus workflows against one edge on Mosquitto, 5 min")
    soak.add_argument("--json", action="store_true", help="print one JSON object")
    soak.add_argument("--seconds", type=float, default=300.0,
                      help="seconds of load (300; at least 10)")
    soak.add_argument("--agents", type=int, default=1000, help="simulated agents (1000)")
    soak.add_argument("--rate", type=float, default=5.0, help="workflows created per second (5)")
    soak.set_defaults(handler=_run_soak)
    chaos = which.add_parser(
        "chaos", help="3 facilities, bridged brokers, hub, 300+ live agents under seeded faults")
    chaos.add_argument("--quick", action="store_true",
                       help="a quarter of the fleet, 90 s of arrivals (about 5 minutes)")
    chaos.add_argument("--json", action="store_true", help="print one JSON object")
    chaos.add_argument("--seed", type=int, default=13, help="seed of the faults (13)")
    chaos.add_argument("--keep", action="store_true",
                       help="keep the run's directory (stores and logs; kept anyway on failure)")
    chaos.set_defaults(handler=_run_chaos)


def _context(name: str, quick: bool) -> dict[str, Any]:
    return {
        "benchmark": name,
        "quick": quick,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def _print(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        json.dump(result, sys.stdout, sort_keys=False)
        sys.stdout.write("\n")
        return
    width = max(len(k) for k in result)
    for key, value in result.items():
        shown = f"{value:,.3f}" if isinstance(value, float) else str(value)
        print(f"{key:<{width}}  {shown}")


def _run_core(args: argparse.Namespace) -> int:
    from bench import core_store, core_transitions

    result = _context("core", args.quick)
    if args.only in (None, "transitions"):
        result.update(core_transitions.run(quick=args.quick))
    if args.only in (None, "store"):
        result.update(core_store.run(quick=args.quick))
    _print(result, args.json)
    return 0


def _run_e2e(args: argparse.Namespace) -> int:
    from bench import e2e

    if args.agents < 1 or args.rate <= 0:
        raise CliError("--agents must be at least 1 and --rate above 0")
    result = _context("e2e", args.quick)
    result.update(e2e.run(broker=args.broker, quick=args.quick, agents=args.agents, rate=args.rate))
    _print(result, args.json)
    return 0


def _run_throughput(args: argparse.Namespace) -> int:
    from bench import throughput

    if any(v is not None and v < 1 for v in (args.agents, args.rounds, args.window)):
        raise CliError("--agents, --rounds and --window must be at least 1")
    if args.seconds is not None and args.seconds <= 0:
        raise CliError("--seconds must be above 0")
    result = _context("throughput", args.quick)
    result.update(throughput.run(quick=args.quick, agents=args.agents, seconds=args.seconds,
                                 rounds=args.rounds, window=args.window))
    _print(result, args.json)
    return 0


def _run_alloc(args: argparse.Namespace) -> int:
    from bench import alloc

    sizes = (args.tasks, args.agents, args.grid, args.ratio_n, args.reps)
    if any(v is not None and v < 1 for v in sizes) or (args.grid is not None and args.grid < 2):
        raise CliError("--tasks, --agents, --ratio-n and --reps must be at least 1, --grid 2")
    result = _context("alloc", args.quick)
    result.update(alloc.run(quick=args.quick, tasks=args.tasks, agents=args.agents,
                            grid=args.grid, ratio_n=args.ratio_n, reps=args.reps))
    _print(result, args.json)
    return 0


def _run_hub(args: argparse.Namespace) -> int:
    from bench import hub

    if args.facilities < 1 or args.clients < 1 or (args.events is not None and args.events < 1):
        raise CliError("--facilities, --clients and --events must be at least 1")
    if (args.seconds is not None and args.seconds <= 0) or args.rate < 0:
        raise CliError("--seconds must be above 0 and --rate not below 0")
    result = _context("hub", args.quick)
    result.update(hub.run(quick=args.quick, facilities=args.facilities, events=args.events,
                          clients=args.clients, seconds=args.seconds,
                          per_client_rate=args.rate or None, broker=args.broker))
    _print(result, args.json)
    return 0


def _run_sim(args: argparse.Namespace) -> int:
    from bench import sim

    if args.hours is not None and not 0 < args.hours <= 1000:
        raise CliError("--hours must be above 0 and at most 1000")
    if args.seed is not None and args.seed < 0:
        raise CliError("--seed must not be negative")
    result = _context("sim", args.quick)
    result.update(sim.run(quick=args.quick, hours=args.hours, seed=args.seed))
    _print(result, args.json)
    return 0


def _run_soak(args: argparse.Namespace) -> int:
    from bench import soak

    if args.seconds < 10 or args.agents < 1 or args.rate <= 0:
        raise CliError("--seconds must be at least 10, --agents at least 1, --rate above 0")
    result = _context("soak", args.seconds < soak.SOAK_S)
    result.update(soak.run(seconds=args.seconds, agents=args.agents, rate=args.rate))
    _print(result, args.json)
    return 0 if result["ok"] else 1


def _run_chaos(args: argparse.Namespace) -> int:
    from bench import chaos

    if args.seed < 0:
        raise CliError("--seed must not be negative")
    result = _context("chaos", args.quick)
    result.update(chaos.run_chaos(seed=args.seed, quick=args.quick, keep=args.keep,
                                  say=lambda line: print(line, file=sys.stderr, flush=True)))
    _print(result, args.json)
    return 0 if result["ok"] else 1
