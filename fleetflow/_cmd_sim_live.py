"""``fleetflow sim SCENARIO.yaml --live --broker mqtt://host:port``: the live mode's wiring.

Only wiring: check the options, run ``agents_sim.sim.run_live`` with a progress bar (or
``--json``), print the summary, hand the result to the report writer with ``--report``.
Every problem the user can fix — a bad URL or speed, a fault live mode cannot do yet, a
broker or edge that does not answer — is one line and exit status 2.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleetflow._cmd_edge import parse_broker
from fleetflow._errors import CliError

if TYPE_CHECKING:
    from agents_sim.sim import LiveResult, Scenario

__all__ = ["add_live_args", "print_live", "run_live_cmd"]


def add_live_args(p: argparse.ArgumentParser) -> None:
    """The options of ``--live``."""
    env = os.environ.get
    p.add_argument("--broker", default=env("FLEETFLOW_BROKER"),
                   help="--live: the stack's broker, mqtt://host:port (env FLEETFLOW_BROKER)")
    p.add_argument("--username", default=env("FLEETFLOW_SIM_USERNAME"),
                   help="--live: MQTT user of every connection (env FLEETFLOW_SIM_USERNAME; "
                        "default anonymous)")
    p.add_argument("--password", default=env("FLEETFLOW_SIM_PASSWORD"),
                   help="--live: its password (prefer env FLEETFLOW_SIM_PASSWORD)")
    p.add_argument("--speed", type=float, default=1.0, metavar="FACTOR",
                   help="--live: simulated seconds per wall second (default 1: real time)")
    p.add_argument("--connect-timeout", type=float, default=10.0, metavar="S",
                   help="--live: how long the broker and each edge may take to answer "
                        "(default %(default)s)")


def run_live_cmd(args: argparse.Namespace, scenario: Scenario) -> dict[str, Any]:
    """Run ``scenario`` live as the options say; its summary (``report`` included)."""
    if not args.broker:
        raise CliError("--live needs --broker mqtt://host:port (or env FLEETFLOW_BROKER)")
    host, port, tls = parse_broker(args.broker)
    if tls:
        raise CliError(f"--broker {args.broker!r}: mqtts is not supported by --live yet")
    if not (math.isfinite(args.speed) and 0 < args.speed <= 1000):
        raise CliError(f"--speed: {args.speed} is not a number in (0, 1000]")
    if not (math.isfinite(args.connect_timeout) and args.connect_timeout > 0):
        raise CliError(f"--connect-timeout: {args.connect_timeout} is not a positive number")
    if args.password is not None and args.username is None:
        raise CliError("--password needs --username (or env FLEETFLOW_SIM_USERNAME)")
    from agents_sim.sim import ScenarioError

    login = None if args.username is None else (args.username, args.password)
    try:
        result = _run(scenario, host, port, args, login)
    except ScenarioError as exc:
        raise CliError(str(exc)) from None
    except TimeoutError as exc:
        raise CliError(f"--live: {exc}") from None
    summary = result.summary()
    if args.report:
        from agents_sim.report import write_report

        write_report(result, Path(args.report))
        summary["report"] = str(args.report)
    return summary


def _run(scenario: Scenario, host: str, port: int, args: argparse.Namespace,
         login: tuple[str, str | None] | None) -> LiveResult:
    from agents_sim.sim import run_live

    if args.json:
        return run_live(scenario, host, port, seed=args.seed, speed=args.speed,
                        login=login, connect_timeout=args.connect_timeout)
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(),
               TextColumn("{task.completed:.0f}/{task.total:.0f} s simulated"),
               TimeElapsedColumn())
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task(f"live {scenario.name} x{args.speed:g}", total=scenario.duration_s)

        def step(done: float, planned: float) -> None:
            if done > planned:
                bar.update(task, description=f"live {scenario.name} (draining)",
                           total=scenario.duration_s + scenario.drain_s)
            bar.update(task, completed=done)

        return run_live(scenario, host, port, seed=args.seed, speed=args.speed, login=login,
                        connect_timeout=args.connect_timeout, progress=step)


def print_live(summary: dict[str, Any]) -> None:
    """The summary as a few lines."""
    print(f"scenario {summary['scenario']}  seed {summary['seed']}  live x{summary['speed']:g}"
          f"  {summary['sim_s']:.0f} s simulated in {summary['wall_s']:.2f} s")
    for fid, f in summary["facilities"].items():
        states = ", ".join(f"{k} {v}" for k, v in f.items()
                           if k not in ("workflows", "events", "missing"))
        print(f"  {fid}: {f['workflows']} workflows ({states or 'none'}), "
              f"{f['events']} events, {f['missing']} missing")
    if summary["refused"]:
        print(f"  {summary['refused']} workflow creations refused or unanswered")
    if "report" in summary:
        print(f"report: {summary['report']}")
    print("every workflow ended" if summary["all_terminal"] else "some workflows did not end")
