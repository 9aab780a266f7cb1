"""Cross-facility workflows of a scenario (``cross_facility``): their checks at load and their
arrivals in a virtual run (docs/simulator.md, "Hub in virtual runs and cross-facility
workflows").

Each arrival creates a ``source`` workflow in one facility and, at the same instant, a
``target`` in another whose ``create_workflow.dependencies`` names the source there
(``{depends_on, type, conditions, facility}``): the target's edge records the dependency as
external and holds the target ``pending`` until the hub's ``resolve_dependency``. Ids are
``{facility}-x{arrival index}-{n}`` (a facility's own arrivals are ``{facility}-{index}-{n}``),
and the times come from ``arrive`` with a ``random.Random`` of the seed and the arrival's
index, so adding a pair leaves every other draw as it was.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Generator, Mapping
from typing import Any

import simpy

from agents_sim._sim_arrivals import arrive, create_args
from agents_sim._sim_edge import SimEdge
from agents_sim._sim_scenario import CrossFacilityArrival, Scenario, ScenarioError
from edge_runtime.core import CoreError, check_dependency

__all__ = ["check_cross_facility", "cross_arrivals", "cross_ids"]


def check_cross_facility(s: Scenario, check_template: Callable[[str, str, str], None]
                         ) -> None:
    """Refuse a bad ``cross_facility`` entry naming the field. ``check_template(facility,
    template, where)``: the loader's own check that a facility runs a template (loaded,
    its locations on the map, its steps served by the fleet)."""
    if s.cross_facility and s.hub is None:
        raise ScenarioError("cross_facility: cross-facility workflows need the hub's "
                            "aggregation: add hub: {} (round_s 0.2, latency_s 0.05 by "
                            "default) to the scenario")
    if s.hub is not None:
        _check_agent_ids(s)
    ids = [f.id for f in s.facilities]
    for i, x in enumerate(s.cross_facility):
        at = f"cross_facility[{i}]"
        given = [n for n in ("rate_per_h", "every_s", "at") if getattr(x, n) is not None]
        if len(given) != 1:
            raise ScenarioError(f"{at}: give exactly one of rate_per_h, every_s, at "
                                f"(given: {', '.join(given) or 'none'})")
        for side in ("source", "target"):
            end = getattr(x, side)
            if end.facility not in ids:
                raise ScenarioError(f"{at}.{side}.facility: no facility {end.facility!r} "
                                    f"(facilities: {', '.join(ids)})")
            check_template(end.facility, end.template, f"{at}.{side}.template")
        if x.source.facility == x.target.facility:
            raise ScenarioError(f"{at}.target.facility: {x.target.facility!r} is the "
                                "source's facility too; a dependency within a facility "
                                "needs no hub")
        try:
            check_dependency(x.type, x.conditions)
        except CoreError as exc:
            raise ScenarioError(f"{at}.conditions: {exc}") from None


def _check_agent_ids(s: Scenario) -> None:
    """With the hub, an agent id in two facilities is one machine they share (docs/hub.md,
    "Shared agents and resources across facilities"): the hub would settle double-bookings
    of it. A scenario's fleets are separate machines, so their ids must differ."""
    owner: dict[str, str] = {}
    for i, f in enumerate(s.facilities):
        for j, entry in enumerate(f.fleet):
            for n in range(1, entry.count + 1):
                aid = f"{entry.id_prefix or entry.kind}-{n}"
                other = owner.setdefault(aid, f.id)
                if other != f.id:
                    raise ScenarioError(
                        f"facilities[{i}].fleet[{j}].id_prefix: agent {aid!r} is in "
                        f"{other!r} too; with the hub an id in two facilities is one shared "
                        "machine (docs/hub.md): give the fleet entries distinct id_prefix")


def cross_ids(x: CrossFacilityArrival, index: int, n: int) -> tuple[str, str]:
    """The source's and the target's workflow ids of the ``n``-th pair of arrival ``index``."""
    return (f"{x.source.facility}-x{index}-{n}", f"{x.target.facility}-x{index}-{n}")


def cross_arrivals(env: simpy.Environment, s: Scenario, seed: int, index: int,
                   edges: Mapping[str, SimEdge]) -> Generator[simpy.Event, Any, None]:
    """The pairs of ``s.cross_facility[index]`` over the run, created on their edges."""
    x = s.cross_facility[index]
    rng = random.Random(f"{seed}/cross_facility/{index}")
    src, tgt = edges[x.source.facility], edges[x.target.facility]
    src_t = s.facility(x.source.facility).loaded_templates[x.source.template]
    tgt_t = s.facility(x.target.facility).loaded_templates[x.target.template]

    def fire(n: int) -> None:
        sid, tid = cross_ids(x, index, n)
        src.create(f"create-{sid}", create_args(sid, src_t, x.source, src.now), src_t)
        args = create_args(tid, tgt_t, x.target, tgt.now)
        args["dependencies"] = [{"depends_on": sid, "type": x.type,
                                 "conditions": dict(x.conditions),
                                 "facility": x.source.facility}]
        tgt.create(f"create-{tid}", args, tgt_t)

    yield from arrive(env, x, rng, s.duration_s, fire)
