"""Loading a scenario: YAML (a file, a text or a mapping) into a ``Scenario``, then the
checks that its parts fit together — maps and templates loaded, every step location a map
node, every step kind and capability served by the fleet, every fault target present, the
agent model fields sensible for their kind. Any problem raises ``ScenarioError`` whose
message starts with the field's path (``facilities[0].fleet[1].speed: …``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from agents_sim._sim_cross import check_cross_facility
from agents_sim._sim_scenario import (
    DEFAULT_TEMPLATES,
    SIMULATED_FAULTS,
    FacilitySpec,
    Fault,
    FleetSpec,
    Scenario,
    ScenarioError,
)
from agents_sim._sim_vda import check_vda_entry
from edge_runtime.core import TemplateError
from edge_runtime.facility import FacilityMap, MapError, load_map
from edge_runtime.templates import load_template, load_templates

__all__ = ["load_scenario"]


def _field_path(loc: tuple[int | str, ...]) -> str:
    parts = [p for p in loc if isinstance(p, int) or not (
        p[:1] == "_" or "[" in p or p in ("str", "dict[str,any]", "list[str]"))]
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "scenario"


def load_scenario(source: str | Path | Mapping[str, Any], base_dir: str | Path | None = None
                  ) -> Scenario:
    """Validate a scenario from a file (``Path``), a YAML text or a mapping, and load the maps
    and templates it names (relative paths from the file's directory, else ``base_dir``,
    else the working directory). ``ScenarioError`` names the first bad field."""
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    data: Any = source
    if isinstance(source, Path):
        try:
            data = yaml.safe_load(source.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ScenarioError(f"{source}: cannot read: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise ScenarioError(f"{source}: not valid YAML: {exc}") from None
        base = source.resolve().parent if base_dir is None else base
    elif isinstance(source, str):
        try:
            data = yaml.safe_load(source)
        except yaml.YAMLError as exc:
            raise ScenarioError(f"scenario: not valid YAML: {exc}") from None
    if not isinstance(data, Mapping):
        raise ScenarioError("scenario: a scenario is a mapping (name, duration_s, facilities …)")
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ScenarioError(f"{_field_path(first['loc'])}: {first['msg']}") from None
    _check(scenario, base)
    return scenario


def _check(s: Scenario, base: Path) -> None:
    ids = [f.id for f in s.facilities]
    for i, fid in enumerate(ids):
        if fid in ids[:i]:
            raise ScenarioError(f"facilities[{i}].id: facility {fid!r} is named twice")
    for i, f in enumerate(s.facilities):
        _load_parts(f, f"facilities[{i}]", base)
        _check_fleet(f, f"facilities[{i}]")
        _check_arrivals(f, f"facilities[{i}]")
    check_cross_facility(s, lambda f, name, at: _check_template(s.facility(f), name, at))
    for i, fault in enumerate(s.faults):
        where = f"faults[{i}]"
        if fault.type not in SIMULATED_FAULTS:
            raise ScenarioError(f"{where}.type: {fault.type!r} is not yet simulated "
                                f"(simulated: {', '.join(SIMULATED_FAULTS)})")
        if fault.node is not None and fault.type != "zone_intrusion":
            raise ScenarioError(f"{where}.node: only a zone_intrusion takes a node")
        if fault.type in ("edge_drop", "broker_restart"):
            if fault.target not in ids:
                raise ScenarioError(f"{where}.target: {fault.type} names a facility; no "
                                    f"facility {fault.target!r}")
            continue
        facility, _, agent = fault.target.rpartition("/")
        owners = [f.id for f in s.facilities
                  if (not facility or f.id == facility) and agent in f.agent_ids()]
        if not owners:
            raise ScenarioError(f"{where}.target: no agent {fault.target!r} in any "
                                "facility's fleet")
        if len(owners) > 1:
            raise ScenarioError(f"{where}.target: {agent!r} is in {', '.join(owners)}; "
                                "name it as facility/agent")
        if fault.type == "zone_intrusion":
            _check_intrusion(s.facility(owners[0]), fault, agent, where)
        if fault.type == "battery_depletion" and not any(
                agent == f"{e.id_prefix or e.kind}-{n}" and e.kind == "robot"
                for e in s.facility(owners[0]).fleet for n in range(1, e.count + 1)):
            raise ScenarioError(f"{where}.target: {agent!r} is not a robot; only robots "
                                "have a battery to deplete")


def _check_intrusion(f: FacilitySpec, fault: Fault, agent: str, where: str) -> None:
    kinds = {f"{e.id_prefix or e.kind}-{n}": e.kind for e in f.fleet
             for n in range(1, e.count + 1)}
    if kinds[agent] != "human":
        raise ScenarioError(f"{where}.target: {agent!r} is not a person; a zone intrusion "
                            "is a person stepping into a robot's zone")
    m = f.facility_map
    if fault.node is None:
        raise ScenarioError(f"{where}.node: a zone_intrusion needs the node the person "
                            "steps onto")
    if m is None or fault.node not in m.nodes:
        raise ScenarioError(f"{where}.node: {fault.node!r} is not a node of {f.id}'s map")
    if not m.exclusive_zones(fault.node):
        raise ScenarioError(f"{where}.node: {fault.node!r} lies in no exclusive zone")


def _load_parts(f: FacilitySpec, where: str, base: Path) -> None:
    try:
        if isinstance(f.map, str):
            f._map = load_map(base / f.map)
        elif f.map is not None:
            f._map = FacilityMap.from_dict(f.map)
    except MapError as exc:
        raise ScenarioError(f"{where}.map: {exc}") from None
    try:
        if isinstance(f.templates, str):
            directory = base / f.templates
            if not directory.is_dir():
                raise ScenarioError(f"{where}.templates: {directory} is not a directory")
            f._templates = load_templates(directory)
            return
        for j, item in enumerate(f.templates):
            path = base / item if Path(item).suffix in (".yaml", ".yml", ".json") else (
                DEFAULT_TEMPLATES / f"{item}.yaml")
            if not path.is_file():
                raise ScenarioError(f"{where}.templates[{j}]: no template file {path}")
            t = load_template(path)
            f._templates[t.name] = f._templates[t.key] = t
    except TemplateError as exc:
        raise ScenarioError(f"{where}.templates: {exc}") from None


def _check_fleet(f: FacilitySpec, where: str) -> None:
    nodes = f.facility_map.nodes if f.facility_map is not None else None
    seen: set[str] = set()
    for j, entry in enumerate(f.fleet):
        at = f"{where}.fleet[{j}]"
        if entry.kind == "ai":
            for name in ("speed", "node", "battery", "drain_per_m", "accept_delay_s"):
                if getattr(entry, name) is not None:
                    raise ScenarioError(f"{at}.{name}: an ai agent has no {name}")
        if entry.kind != "robot":
            for name in ("battery", "drain_per_m"):
                if getattr(entry, name) is not None:
                    raise ScenarioError(f"{at}.{name}: only robots have a {name}")
        if entry.kind != "human" and entry.accept_delay_s is not None:
            raise ScenarioError(f"{at}.accept_delay_s: only people have an acceptance delay")
        _check_model(entry, at, f.facility_map)
        check_vda_entry(f, entry, at)
        if entry.node is not None and (nodes is None or entry.node not in nodes):
            raise ScenarioError(f"{at}.node: {entry.node!r} is not a node of the map")
        prefix = entry.id_prefix or entry.kind
        if prefix in seen:
            raise ScenarioError(f"{at}.id_prefix: {prefix!r} is used by another fleet entry")
        seen.add(prefix)


MODEL_FIELDS = {
    "robot": ("charge_below", "charge_to", "charge_per_s", "mtbf_h", "repair_s",
              "estop_mtbf_h", "estop_s"),
    "human": ("shifts", "break_every_s", "break_s", "no_show_prob", "refuse_prob"),
    "ai": ("fail_prob",),
}
"""The richer model's fields, by the agent kind that has them."""


def _check_model(entry: FleetSpec, at: str, fmap: FacilityMap | None) -> None:
    for kind, names in MODEL_FIELDS.items():
        for name in names:
            if entry.kind != kind and getattr(entry, name) is not None:
                people = {"robot": "robots", "human": "people", "ai": "AI agents"}[kind]
                raise ScenarioError(f"{at}.{name}: only {people} have a {name}")
    if entry.charge_below is not None and (fmap is None or not fmap.chargers):
        raise ScenarioError(f"{at}.charge_below: the facility's map has no charger node")
    if entry.charge_to is not None and entry.charge_to <= (entry.charge_below or 0):
        raise ScenarioError(f"{at}.charge_to: {entry.charge_to} is not above charge_below")
    for name in ("charge_to", "charge_per_s"):
        if getattr(entry, name) is not None and entry.charge_below is None:
            raise ScenarioError(f"{at}.{name}: needs charge_below (when to charge)")
    if entry.repair_s is not None and entry.mtbf_h is None:
        raise ScenarioError(f"{at}.repair_s: needs mtbf_h (breakdowns to repair)")
    if entry.estop_s is not None and entry.estop_mtbf_h is None:
        raise ScenarioError(f"{at}.estop_s: needs estop_mtbf_h (e-stops to release)")
    if entry.break_s is not None and entry.break_every_s is None:
        raise ScenarioError(f"{at}.break_s: needs break_every_s (how often)")
    if entry.no_show_prob is not None and not entry.shifts:
        raise ScenarioError(f"{at}.no_show_prob: needs shifts (the shifts to miss)")
    last = -1.0
    for k, (start, end) in enumerate(entry.shifts or []):
        if not start < end:
            raise ScenarioError(f"{at}.shifts[{k}]: start {start} is not before end {end}")
        if start < last:
            raise ScenarioError(f"{at}.shifts[{k}]: starts before the previous shift ends")
        last = end


def _check_arrivals(f: FacilitySpec, where: str) -> None:
    for j, arrival in enumerate(f.arrivals):
        at = f"{where}.arrivals[{j}]"
        given = [n for n in ("rate_per_h", "every_s", "at") if getattr(arrival, n) is not None]
        if len(given) != 1:
            raise ScenarioError(f"{at}: give exactly one of rate_per_h, every_s, at "
                                f"(given: {', '.join(given) or 'none'})")
        _check_template(f, arrival.template, f"{at}.template")


def _check_template(f: FacilitySpec, name: str, at: str) -> None:
    """``f`` runs template ``name``: loaded, its locations on the map, its steps served."""
    nodes = f.facility_map.nodes if f.facility_map is not None else None
    template = f.loaded_templates.get(name)
    if template is None:
        raise ScenarioError(f"{at}: no template {name!r} "
                            f"(loaded: {', '.join(sorted(f.loaded_templates)) or 'none'})")
    for step in template.steps:
        places = [step.location] + ([step.compensation.location]
                                    if step.compensation is not None else [])
        for place in places:
            if nodes is not None and place is not None and place not in nodes:
                raise ScenarioError(
                    f"{at}: step {step.id!r} of {template.name} is at "
                    f"{place!r}, which is not a node of the facility's map")
        if step.kind in ("robot", "human", "ai") and not any(
                e.kind == step.kind and set(step.capabilities) <= set(e.capabilities)
                for e in f.fleet):
            raise ScenarioError(
                f"{at}: step {step.id!r} of {template.name} needs a "
                f"{step.kind} with {sorted(step.capabilities)}; the fleet has none")
