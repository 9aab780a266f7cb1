"""``fleetflow templates check``: do the templates parse, and fit a map and a fleet?

``fleetflow templates check [--templates DIR|FILE] [--map FILE] [--capabilities LIST |
--fleet up]`` reads every ``*.yaml``/``*.yml``/``*.json`` template, validates it as the edge
would (YAML, fields, steps and their order, CEL conditions), then checks each step's
location against the map and each agent a step asks for against the fleet
(``edge_runtime.fit``). One line per problem, each starting with the template's full path;
exit status 0 when all fit, 1 when something does not, 2 when the command itself cannot
run (a missing directory or map, a bad ``--capabilities``). See docs/workflows.md,
"Checking templates".
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from fleetflow._errors import CliError

__all__ = ["register"]

_ROOT = Path(__file__).resolve().parents[1]
_SUFFIXES = (".yaml", ".yml", ".json")


def register(sub: Any) -> None:
    """Add ``templates`` and its ``check`` sub-subcommand."""
    p = sub.add_parser("templates", help="check workflow templates against a map and a fleet")
    modes = p.add_subparsers(dest="templates_command", metavar="{check}", required=True)
    check = modes.add_parser(
        "check", help="validate templates, their locations on a map and the capabilities "
                      "they ask of a fleet (exit 0 fit, 1 problems, 2 bad input)")
    check.add_argument("--templates", metavar="DIR|FILE",
                       default=os.environ.get("FLEETFLOW_TEMPLATES", str(_ROOT / "templates")),
                       help="a templates directory or one template file (default: the "
                            "shipped templates, or env FLEETFLOW_TEMPLATES)")
    check.add_argument("--map", metavar="FILE",
                       default=os.environ.get("FLEETFLOW_MAP", str(_ROOT / "maps" / "demo.yaml")),
                       help="facility map the locations must be on (default: the demo map, "
                            "or env FLEETFLOW_MAP; 'none': skip the location check)")
    fleet = check.add_mutually_exclusive_group()
    fleet.add_argument("--capabilities", metavar="LIST",
                       help="the fleet's capabilities, comma-separated: 'lift' (any kind) or "
                            "'robot:lift' (robots only), e.g. robot:tote_carrier,human:picking")
    fleet.add_argument("--fleet", choices=("up",),
                       help="'up': the simulated fleet of `fleetflow up` (and of "
                            "agents_sim.native.mixed_fleet)")
    check.set_defaults(handler=_check)


def _files(where: Path) -> list[Path]:
    """The template files to check; ``CliError`` if there is nothing to read."""
    if where.is_file():
        return [where]
    if not where.is_dir():
        raise CliError(f"--templates {where}: no such file or directory")
    files = sorted(p for p in where.iterdir() if p.suffix in _SUFFIXES and p.is_file())
    if not files:
        raise CliError(f"--templates {where}: no *.yaml, *.yml or *.json file in it")
    return files


def _fleet(args: argparse.Namespace) -> list[tuple[str | None, frozenset[str]]] | None:
    """The fleet to check against, or ``None`` (capabilities not checked)."""
    from topics import ProtocolError, check_identifier

    if args.fleet == "up":
        from agents_sim.native import mixed_fleet

        return [(s.kind, frozenset(s.capabilities)) for s in mixed_fleet(4)]
    if args.capabilities is None:
        return None
    by_kind: dict[str | None, set[str]] = {}
    for item in (i.strip() for i in args.capabilities.split(",")):
        if not item:
            continue
        kind, colon, cap = item.rpartition(":")
        if colon and kind not in ("robot", "human", "ai"):
            raise CliError(f"--capabilities {item!r}: the kind before ':' must be robot, "
                           "human or ai")
        try:
            check_identifier(cap, "capability")
        except ProtocolError as exc:
            raise CliError(f"--capabilities {item!r}: {exc}") from None
        by_kind.setdefault(kind or None, set()).add(cap)
    if not by_kind:
        raise CliError("--capabilities is empty; list some, e.g. robot:lift,human:picking")
    return [(kind, frozenset(caps)) for kind, caps in by_kind.items()]


def _check(args: argparse.Namespace) -> int:
    from edge_runtime.core import Template, TemplateError
    from edge_runtime.facility import FacilityMap, MapError, load_map
    from edge_runtime.fit import capability_problems, location_problems
    from edge_runtime.templates import load_template

    files = _files(Path(args.templates).absolute())
    facility_map: FacilityMap | None = None
    map_path: Path | None = None
    if args.map.lower() != "none":
        map_path = Path(args.map).absolute()
        try:
            facility_map = load_map(map_path)
        except (MapError, OSError) as exc:
            raise CliError(f"--map {map_path}: {exc}") from None
    fleet = _fleet(args)
    problems: list[str] = []
    seen: dict[str, Path] = {}
    checked: list[Template] = []
    for path in files:
        try:
            template = load_template(path)
        except TemplateError as exc:
            text = str(exc)
            problems.append(text if text.startswith(str(path)) else f"{path}: {text}")
            continue
        if template.key in seen:
            problems.append(f"{path}: template {template.key} is also defined in "
                            f"{seen[template.key]} (the edge keeps only one)")
        seen[template.key] = path
        checked.append(template)
        if facility_map is not None:
            where = f"map {facility_map.map_id} ({map_path})"
            problems += [f"{path}: {p}"
                         for p in location_problems(template, facility_map.nodes, where)]
        if fleet is not None:
            problems += [f"{path}: {p}" for p in capability_problems(template, fleet)]
    for line in problems:
        print(line)
    against = [what for what, on in (("map", facility_map), ("fleet", fleet)) if on]
    print(f"{len(checked)} of {len(files)} templates valid"
          + (f", checked against the {' and '.join(against)}" if against else "")
          + f": {len(problems) or 'no'} problem{'s' if len(problems) != 1 else ''}")
    return 1 if problems else 0
