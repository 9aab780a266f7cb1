"""Scenarios of the fleet simulator: YAML documents validated with errors that name the field.

A scenario names facilities (a map, workflow templates, a fleet, workflow arrivals), the
faults to inject, the simulated duration and the seed (docs/simulator.md, "Scenarios").
``load_scenario`` reads one from a file, a YAML text or a mapping, loads the maps and
templates it names, checks that they fit together (every step location is a map node,
every step kind and capability is served by the fleet, every fault target exists) and
refuses a fault type the simulator cannot carry out yet. Any problem raises
``ScenarioError`` whose message starts with the field's path, e.g.
``facilities[0].fleet[1].speed: …``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from edge_runtime.core import Template, TemplateError
from edge_runtime.facility import FacilityMap, MapError, load_map
from edge_runtime.templates import load_template, load_templates
from topics import Identifier

__all__ = [
    "FAULT_TYPES",
    "SIMULATED_FAULTS",
    "Arrival",
    "CoreSettings",
    "FacilitySpec",
    "Fault",
    "FleetSpec",
    "Scenario",
    "ScenarioError",
    "load_scenario",
]

FAULT_TYPES = ("agent_failure", "battery_depletion", "network_drop", "edge_drop",
               "zone_intrusion", "broker_restart")
"""Every fault type a scenario may name."""
SIMULATED_FAULTS = FAULT_TYPES
"""The fault types the virtual runner carries out (a type it could not would be refused at
load as "not yet simulated")."""
DEFAULT_TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
"""Where template *names* (``templates: [pick_and_deliver]``) are looked up."""

Seconds = Annotated[float, Field(ge=0, le=1e7, allow_inf_nan=False)]


class ScenarioError(ValueError):
    """A scenario that cannot be run; the message starts with the bad field's path."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False,
                              use_attribute_docstrings=True)


class FleetSpec(_Strict):
    """``count`` agents of one kind, ids ``{id_prefix}-1`` … ``{id_prefix}-{count}``."""

    kind: Literal["robot", "human", "ai"]
    count: int = Field(default=1, ge=1, le=100_000)
    id_prefix: Identifier | None = None
    """Defaults to the kind (``robot-1``, ``human-1``, ``ai-1``)."""
    capabilities: list[Identifier] = Field(default_factory=list, max_length=64)
    node: Identifier | None = None
    """Map node the agents start at (robots and people; default: the first charger, else
    the first node)."""
    speed: float | None = Field(default=None, gt=0, le=100)
    """Travel speed in m/s along the map (robot default 1.0, person 1.2; not for AI)."""
    battery: float | None = Field(default=None, ge=0, le=100)
    """Robots: state of charge at the start, percent (default 100)."""
    drain_per_m: float | None = Field(default=None, ge=0, le=100)
    """Robots: battery percent spent per metre driven (default 0.01)."""
    accept_delay_s: float | None = Field(default=None, ge=0, le=86_400)
    """People: mean delay (exponential) before they take up an assignment (default 5)."""
    duration_cv: float = Field(default=0.2, ge=0, le=5)
    """Spread of work (and AI compute) time around the step's ``estimated_duration_s``: the
    coefficient of variation of a seeded lognormal draw (0: always the estimate)."""
    progress_steps: int = Field(default=1, ge=0, le=20)
    """``step_progress`` messages per step."""
    state_period_s: float = Field(default=5.0, gt=0, le=3600)
    """How often each agent reports its state."""
    liveness_s: float = Field(default=15.0, gt=0, le=3600)
    """The liveness window each agent promises (the edge loses it after 1.5 times this)."""


class Arrival(_Strict):
    """Workflows of one template arriving over the run: exactly one of ``rate_per_h``
    (Poisson), ``every_s`` (fixed interval, first at ``every_s``) or ``at`` (given times)."""

    template: Identifier
    rate_per_h: float | None = Field(default=None, gt=0, le=1e6)
    every_s: float | None = Field(default=None, gt=0, le=1e7)
    at: list[Seconds] | None = Field(default=None, max_length=100_000)
    priority: int = Field(default=0, ge=-1000, le=1000)
    deadline_s: float | None = Field(default=None, gt=0, le=1e7)
    """Deadline, seconds after creation."""
    data: dict[str, Any] = Field(default_factory=dict)
    """Workflow variables (override the template's)."""


class CoreSettings(_Strict):
    """The edge core's tunables a scenario may set (``edge_runtime.core.CoreConfig``)."""

    manual_intervention: bool = False
    """Wait for an operator once retries are exhausted; off by default in a simulation
    (nobody would come), so such a workflow fails."""
    liveness_factor: float = Field(default=1.5, gt=0, le=100)
    stall_factor: float | None = Field(default=None, gt=0, le=1000)
    max_queued_per_agent: int = Field(default=0, ge=0, le=1000)
    batch_window_s: float = Field(default=0.0, ge=0, le=3600)
    battery_per_meter: float = Field(default=0.0, ge=0, le=100)
    """The ``battery_below_need`` rule (off while the three battery figures are 0)."""
    battery_per_action: float = Field(default=0.0, ge=0, le=100)
    battery_reserve: float = Field(default=0.0, ge=0, le=100)


class FacilitySpec(_Strict):
    """One facility: its map, templates, fleet and workflow arrivals."""

    id: Identifier
    map: str | dict[str, Any] | None = None
    """A map file (relative to the scenario file) or an inline map document."""
    templates: str | list[str]
    """A directory of templates (relative to the scenario file), or a list of template
    files (``.yaml``/``.yml``/``.json``) and names of the shipped ``templates/``."""
    fleet: list[FleetSpec] = Field(min_length=1, max_length=1000)
    arrivals: list[Arrival] = Field(default_factory=list, max_length=1000)
    core: CoreSettings = Field(default_factory=CoreSettings)

    _map: FacilityMap | None = PrivateAttr(default=None)
    _templates: dict[str, Template] = PrivateAttr(default_factory=dict)

    @property
    def facility_map(self) -> FacilityMap | None:
        """The loaded map (``None`` without one)."""
        return self._map

    @property
    def loaded_templates(self) -> dict[str, Template]:
        """The loaded templates by name and by ``name@version``."""
        return self._templates

    def agent_ids(self) -> list[str]:
        """Every agent's id, fleet entry by entry."""
        return [f"{f.id_prefix or f.kind}-{i}" for f in self.fleet for i in range(1, f.count + 1)]


class Fault(_Strict):
    """A fault injected at ``at_s``: ``target`` is an agent (``agent`` or
    ``facility/agent``), or a facility for ``edge_drop``; ``duration_s`` ends it (an agent
    repaired, a link back), without it the fault lasts."""

    at_s: Seconds
    type: Literal["agent_failure", "battery_depletion", "network_drop", "edge_drop",
                  "zone_intrusion", "broker_restart"]
    target: Identifier | Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]+/[A-Za-z0-9_.:-]+$")]
    duration_s: float | None = Field(default=None, gt=0, le=1e7)
    node: Identifier | None = None
    """``zone_intrusion`` only: the node (in an exclusive zone) the person steps onto."""


class Scenario(_Strict):
    """A whole scenario."""

    name: Identifier
    seed: int = Field(default=0, ge=0, lt=2**63)
    duration_s: float = Field(gt=0, le=1e7)
    """Workflows arrive during this long (simulated seconds)."""
    drain_s: float = Field(default=3600.0, ge=0, le=1e7)
    """After ``duration_s`` the run goes on at most this long, until every workflow ended."""
    latency_s: float = Field(default=0.01, ge=0, le=10)
    """One-way delay of every message between an agent and its edge."""
    facilities: list[FacilitySpec] = Field(min_length=1, max_length=100)
    faults: list[Fault] = Field(default_factory=list, max_length=10_000)

    def facility(self, facility_id: str) -> FacilitySpec:
        """The facility ``facility_id``."""
        for f in self.facilities:
            if f.id == facility_id:
                return f
        raise KeyError(facility_id)

    def fault_target(self, fault: Fault) -> tuple[str, str]:
        """(facility, agent) a fault on an agent hits."""
        facility, _, agent = fault.target.rpartition("/")
        for f in self.facilities:
            if (not facility or f.id == facility) and agent in f.agent_ids():
                return f.id, agent
        raise KeyError(fault.target)


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
        if entry.node is not None and (nodes is None or entry.node not in nodes):
            raise ScenarioError(f"{at}.node: {entry.node!r} is not a node of the map")
        prefix = entry.id_prefix or entry.kind
        if prefix in seen:
            raise ScenarioError(f"{at}.id_prefix: {prefix!r} is used by another fleet entry")
        seen.add(prefix)


def _check_arrivals(f: FacilitySpec, where: str) -> None:
    nodes = f.facility_map.nodes if f.facility_map is not None else None
    for j, arrival in enumerate(f.arrivals):
        at = f"{where}.arrivals[{j}]"
        given = [n for n in ("rate_per_h", "every_s", "at") if getattr(arrival, n) is not None]
        if len(given) != 1:
            raise ScenarioError(f"{at}: give exactly one of rate_per_h, every_s, at "
                                f"(given: {', '.join(given) or 'none'})")
        template = f.loaded_templates.get(arrival.template)
        if template is None:
            raise ScenarioError(f"{at}.template: no template {arrival.template!r} "
                                f"(loaded: {', '.join(sorted(f.loaded_templates)) or 'none'})")
        for step in template.steps:
            places = [step.location] + ([step.compensation.location]
                                        if step.compensation is not None else [])
            for place in places:
                if nodes is not None and place is not None and place not in nodes:
                    raise ScenarioError(
                        f"{at}.template: step {step.id!r} of {template.name} is at "
                        f"{place!r}, which is not a node of the facility's map")
            if step.kind in ("robot", "human", "ai") and not any(
                    e.kind == step.kind and set(step.capabilities) <= set(e.capabilities)
                    for e in f.fleet):
                raise ScenarioError(
                    f"{at}.template: step {step.id!r} of {template.name} needs a "
                    f"{step.kind} with {sorted(step.capabilities)}; the fleet has none")
