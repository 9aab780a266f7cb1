"""Scenarios of the fleet simulator: YAML documents validated with errors that name the field.

A scenario names facilities (a map, workflow templates, a fleet, workflow arrivals), the
faults to inject, the simulated duration and the seed (docs/simulator.md, "Scenarios").
These are its models; ``load_scenario`` (``_sim_scenario_load``) reads one, loads the maps
and templates it names and checks that they fit together. Any problem raises
``ScenarioError`` whose message starts with the field's path, e.g.
``facilities[0].fleet[1].speed: …``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from edge_runtime.core import Template
from edge_runtime.facility import FacilityMap
from topics import Identifier

__all__ = [
    "FAULT_TYPES",
    "SIMULATED_FAULTS",
    "Arrival",
    "CoreSettings",
    "CrossFacilityArrival",
    "CrossFacilityEnd",
    "FacilitySpec",
    "Fault",
    "FleetSpec",
    "HubSettings",
    "Scenario",
    "ScenarioError",
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
    charge_below: float | None = Field(default=None, gt=0, le=100)
    """Robots: battery percent under which an idle robot drives to the nearest charger of
    the map and charges, unavailable meanwhile (default: it never charges)."""
    charge_to: float | None = Field(default=None, gt=0, le=100)
    """Robots: battery percent a charge ends at (default 100)."""
    charge_per_s: float | None = Field(default=None, gt=0, le=100)
    """Robots: battery percent gained per second at a charger (default 0.05)."""
    mtbf_h: float | None = Field(default=None, gt=0, le=1e5)
    """Robots: mean hours between breakdowns, exponential (default: none)."""
    repair_s: float | None = Field(default=None, gt=0, le=1e7)
    """Robots: mean seconds a repair takes, exponential (default 600)."""
    shifts: list[tuple[Seconds, Seconds]] | None = Field(default=None, max_length=10_000)
    """People: on-shift windows ``[start_s, end_s]`` in simulated seconds, in order and
    not overlapping; offline outside them (default: always on shift)."""
    break_every_s: float | None = Field(default=None, gt=0, le=1e7)
    """People: a break after about this many seconds (default: no breaks)."""
    break_s: float | None = Field(default=None, gt=0, le=1e7)
    """People: seconds a break lasts (default 900)."""
    no_show_prob: float | None = Field(default=None, ge=0, le=1)
    """People: probability of missing a whole shift (needs ``shifts``; default 0)."""
    refuse_prob: float | None = Field(default=None, ge=0, le=1)
    """People: probability of declining an assignment (default 0)."""
    fail_prob: float | None = Field(default=None, ge=0, le=1)
    """AI agents: probability that an attempt fails (``model_error``; default 0)."""
    protocol: Literal["native", "vda5050"] = "native"
    """Robots: what they speak to the edge — Fleetflow's native protocol, or VDA 5050
    (the test AGV model, ``agents_sim._sim_vda``; the edge runs its VDA master for them)."""
    vda_version: Literal["2.0.0", "2.1.0"] | None = None
    """VDA 5050 robots: the protocol version in their headers (default 2.1.0)."""
    manufacturer: Identifier | None = None
    """VDA 5050 robots: the ``manufacturer`` of their topics (default ``fleetflow``); the
    serial number is the agent id."""
    instant_key: Literal["actions", "instantActions"] | None = None
    """VDA 5050 2.0 robots: the one key they read instant actions from (default
    ``actions``; ``instantActions`` as some fielded 2.0 AGVs, docs/vda5050.md)."""
    estop_mtbf_h: float | None = Field(default=None, gt=0, le=1e5)
    """Robots: mean hours between e-stops, exponential (default: none)."""
    estop_s: float | None = Field(default=None, gt=0, le=1e7)
    """Robots: mean seconds until an e-stop is released, exponential (default 30)."""


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
    coordination: Literal["direct", "auction_based", "leader_follower", "consensus",
                          "hierarchical"] | None = None
    """How the workflows' steps find their agents (default: the template's; see
    docs/coordination.md), e.g. ``auction_based``: the agents bid."""


class HubSettings(_Strict):
    """The hub in a virtual run (present: its aggregation runs, ``agents_sim._sim_hub``)."""

    round_s: float = Field(default=0.2, gt=0, le=60)
    """Simulated seconds between two rounds of the hub's worker (the hub's own is 0.2)."""
    latency_s: float = Field(default=0.05, ge=0, le=10)
    """One-way delay of every message between an edge and the hub."""


class CrossFacilityEnd(_Strict):
    """One side of a cross-facility workflow: a workflow of ``template`` in ``facility``."""

    facility: Identifier
    template: Identifier
    priority: int = Field(default=0, ge=-1000, le=1000)
    deadline_s: float | None = Field(default=None, gt=0, le=1e7)
    """Deadline, seconds after creation."""
    data: dict[str, Any] = Field(default_factory=dict)
    coordination: Literal["direct", "auction_based", "leader_follower", "consensus",
                          "hierarchical"] | None = None


class CrossFacilityArrival(_Strict):
    """Pairs arriving over the run (timing as ``Arrival``: exactly one of ``rate_per_h``,
    ``every_s``, ``at``): a ``source`` workflow in one facility and a ``target`` in another
    that depends on it (``type``, ``conditions``: docs/workflows.md, "Typed dependencies
    between workflows"); the target's edge holds it until the hub resolves the dependency."""

    source: CrossFacilityEnd
    target: CrossFacilityEnd
    type: Literal["sequential", "parallel", "conditional", "resource_based",
                  "data_flow"] = "sequential"
    conditions: dict[str, Any] = Field(default_factory=dict)
    rate_per_h: float | None = Field(default=None, gt=0, le=1e6)
    every_s: float | None = Field(default=None, gt=0, le=1e7)
    at: list[Seconds] | None = Field(default=None, max_length=100_000)


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
    hub: HubSettings | None = None
    """The hub's aggregation in virtual runs (docs/simulator.md, "Hub in virtual runs")."""
    cross_facility: list[CrossFacilityArrival] = Field(default_factory=list, max_length=1000)
    """Workflows whose dependency crosses facilities (they need ``hub``)."""

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
