"""``fleetflow sim --replay STORE``: an edge's recorded inputs through a core again (a what-if).

Only wiring: parse the overrides, call ``edge_runtime.replay.replay_store``, print its
summary (``--json``: the report as one JSON object) and, with ``--report DIR``, write the
replayed run's KPIs and plots (``agents_sim.report``). Exit 0: no difference; 1: the
replay differs; 2: bad input (no store, no inputs recorded, a bad override).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import yaml

from fleetflow._errors import CliError

EXIT_SAME, EXIT_DIFFERENT = 0, 1


def add_replay_args(p: argparse.ArgumentParser) -> None:
    """The options of ``--replay``."""
    p.add_argument("--templates", metavar="DIR",
                   help="replay: these templates instead of the recorded ones")
    p.add_argument("--strategy", action="append", default=[], metavar="RULE=STRATEGY",
                   help="replay: settle a contention rule or conflict type this way "
                        "(repeatable; as the edge's --conflict-strategy)")
    p.add_argument("--set", action="append", default=[], metavar="OPTION=VALUE",
                   help="replay: a core option (CoreConfig field; the value in YAML), e.g. "
                        "max_queued_per_agent=2 or stall_factor=1.5 (repeatable)")


def refuse_replay_options(args: argparse.Namespace) -> None:
    """``--templates``, ``--strategy`` and ``--set`` only go with ``--replay``."""
    given = [flag for flag, value in (("--templates", args.templates),
                                      ("--strategy", args.strategy), ("--set", args.set))
             if value]
    if given:
        raise CliError(f"{', '.join(given)} only go with --replay STORE")


def run_replay_cmd(args: argparse.Namespace) -> int:
    """Replay ``args.replay``; the exit code (0 same, 1 different)."""
    from edge_runtime.replay import ReplayError, replay_store

    store = Path(args.replay)
    if not store.exists():
        raise CliError(f"--replay: {store} does not exist")
    try:
        report = replay_store(store, templates=_templates(args.templates),
                              strategies=_pairs(args.strategy, "--strategy"),
                              config=_options(args.set))
    except ReplayError as exc:
        raise CliError(str(exc)) from None
    out = report.to_dict()
    if args.report:
        from agents_sim.report import write_report

        write_report({report.facility: report.events}, Path(args.report))
        out["report"] = args.report
    if args.json:
        print(json.dumps(out, sort_keys=True))
    else:
        print(report.summary())
        if args.report:
            print(f"report: {args.report}")
    return EXIT_SAME if report.identical else EXIT_DIFFERENT


def _templates(directory: str | None) -> dict[str, Any] | None:
    if directory is None:
        return None
    from edge_runtime.core import TemplateError
    from edge_runtime.templates import load_templates

    if not Path(directory).is_dir():
        raise CliError(f"--templates: {directory} is not a directory")
    try:
        templates = load_templates(directory)
    except TemplateError as exc:
        raise CliError(f"--templates: {exc}") from None
    if not templates:
        raise CliError(f"--templates: {directory} holds no templates (*.yaml, *.yml, *.json)")
    return templates


def _pairs(items: list[str], flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise CliError(f"{flag} {item!r}: write KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


def _options(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, text in _pairs(items, "--set").items():
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            raise CliError(f"--set {key}: {text!r} is not a YAML value") from None
        out[key] = tuple(value) if isinstance(value, list) else value
    return out
