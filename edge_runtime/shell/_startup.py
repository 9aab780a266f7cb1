"""What the edge says at start: the templates, map and VDA 5050 mode it loaded, and
whether the templates fit them (docs/edge.md, "Start-up log").

One INFO line per thing loaded; one WARNING line per template location missing from the map
and per agent a template asks for that no known agent is (``edge_runtime.fit``). Known
agents are those of the recovered projection (they joined before, online or not) and, with
``--vda``, the VDA 5050 AGVs (robots with ``--vda-capabilities``). Before any agent joined
there is nothing to compare with: one line says so instead of a warning per capability.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from edge_runtime.core import Core, Template
from edge_runtime.facility import FacilityMap
from edge_runtime.fit import capability_problems, distinct, location_problems, needs, words

__all__ = ["log_startup"]

_log = logging.getLogger("fleetflow.edge")


def log_startup(templates_dir: Path, templates: Mapping[str, Template],
                map_path: Path | None, facility_map: FacilityMap | None, core: Core,
                vda_capabilities: Sequence[str] | None) -> list[str]:
    """Log what was loaded and how the templates fit it; the warnings (for tests).

    ``vda_capabilities``: the VDA 5050 AGVs' capabilities when ``--vda`` is on, else
    ``None``."""
    loaded = distinct(templates)
    where = templates_dir.resolve()
    if loaded:
        _log.info("templates: %d from %s: %s", len(loaded), where,
                  ", ".join(t.key for t in loaded))
    else:
        _log.warning("templates: none loaded from %s (no *.yaml, *.yml or *.json there): "
                     "every create_workflow will be refused", where)
    if facility_map is not None and map_path is not None:
        _log.info("map: %s (map %s, %d nodes)", map_path.resolve(), facility_map.map_id,
                  len(facility_map.nodes))
    else:
        _log.info("map: none (no --map): allocation ignores travel, locations are unchecked")
    if vda_capabilities is None:
        _log.info("VDA 5050: off")
    else:
        _log.info("VDA 5050: on (every AGV joins as a robot with capabilities %s)",
                  words(vda_capabilities))
    warnings: list[str] = []
    if facility_map is not None:
        name = f"map {facility_map.map_id} ({map_path})"
        for t in loaded:
            warnings += [f"template {t.key}: {p}"
                         for p in location_problems(t, facility_map.nodes, name)]
    fleet = [(a.kind, frozenset(a.capabilities)) for a in core.agents().values()]
    if vda_capabilities is not None:
        fleet.append(("robot", frozenset(vda_capabilities)))
    if fleet:
        for t in loaded:
            warnings += [f"template {t.key}: {p}" for p in capability_problems(t, fleet)]
    elif any(needs(t) for t in loaded):
        _log.info("no agent has joined yet: the templates' capabilities are checked when "
                  "the edge starts again (or see `fleetflow templates check`)")
    for line in warnings:
        _log.warning("%s", line)
    return warnings
