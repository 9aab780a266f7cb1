"""Whether templates fit a facility: their locations on its map, the agents they ask for in
its fleet.

Nothing here is I/O: callers give the map's node names and the fleet's ``(kind,
capabilities)``; the edge logs what it returns at start (``edge_runtime.shell``) and
``fleetflow templates check`` prints it. A team member (``Step.team``) needs the step's
capabilities plus its own; a compensation step is checked like any other step.

>>> from edge_runtime.templates import load_template
>>> t = load_template("name: t\\nversion: 1\\nsteps: [{id: s, kind: robot, "
...                   "capabilities: [lift], location: bay}]")
>>> location_problems(t, {"dock"}, "map demo")
['step s: location bay is not on map demo']
>>> capability_problems(t, [("robot", frozenset({"camera"}))])
['step s: no robot agent has capabilities lift']
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from edge_runtime.core import Template

__all__ = [
    "Need", "capability_problems", "distinct", "location_problems", "locations", "needs",
    "unmet", "words",
]

Fleet = Iterable[tuple[str | None, frozenset[str]]]
"""Agents as ``(kind, capabilities)``; kind ``None``: an agent of any kind (a flat list of
capabilities given on the command line)."""


@dataclass(frozen=True, slots=True)
class Need:
    """One agent a template step asks for."""

    step: str
    """The step's id (``pick (compensation)``, ``lift_pallet[lead]`` for a team member)."""
    kind: str
    """``robot``, ``human`` or ``ai``."""
    capabilities: frozenset[str]
    """Every capability that one agent must have."""


def distinct(templates: Mapping[str, Template]) -> list[Template]:
    """Each template once (a loaded set holds the newest version twice: by ``name`` and by
    ``name@version``), by key."""
    return [templates[k] for k in sorted(k for k in templates if "@" in k)] or list(
        {t.key: t for t in templates.values()}.values())


def locations(template: Template) -> dict[str, list[str]]:
    """Map location -> the steps (compensations too) of ``template`` that happen there."""
    found: dict[str, list[str]] = {}
    for step in template.steps:
        if step.location is not None:
            found.setdefault(step.location, []).append(step.id)
        comp = step.compensation
        if comp is not None and comp.location is not None:
            found.setdefault(comp.location, []).append(f"{step.id} (compensation)")
    return found


def needs(template: Template) -> list[Need]:
    """Every agent the steps of ``template`` ask for, in step order."""
    out: list[Need] = []
    for step in template.steps:
        if step.kind in ("robot", "human", "ai"):
            if step.team:
                out.extend(Need(f"{step.id}[{m.role}]", m.kind or step.kind,
                                frozenset(step.capabilities) | frozenset(m.capabilities))
                           for m in step.team)
            else:
                out.append(Need(step.id, step.kind, frozenset(step.capabilities)))
        comp = step.compensation
        if comp is not None:
            out.append(Need(f"{step.id} (compensation)", comp.kind, frozenset(comp.capabilities)))
    return out


def unmet(need: Need, fleet: Fleet) -> bool:
    """Whether no agent of ``fleet`` can take ``need``. Entries of kind ``None`` are
    pooled: a flat list of capabilities of any kind meets a need it covers."""
    pooled: set[str] | None = None
    for kind, caps in fleet:
        if kind is None:
            pooled = (pooled or set()) | caps
        elif kind == need.kind and caps >= need.capabilities:
            return False
    return pooled is None or not need.capabilities <= pooled


def words(caps: Collection[str]) -> str:
    """Capabilities as the messages print them: ``a, b`` (sorted), or ``none``."""
    return ", ".join(sorted(caps)) or "none"


def location_problems(template: Template, nodes: Collection[str], where: str) -> list[str]:
    """One line per location of ``template`` that is not one of ``nodes`` (``where``: the
    map, as the message names it)."""
    return [f"step {', '.join(steps)}: location {loc} is not on {where}"
            for loc, steps in locations(template).items() if loc not in nodes]


def capability_problems(template: Template, fleet: Fleet) -> list[str]:
    """One line per agent ``template`` asks for that no agent of ``fleet`` is."""
    agents = list(fleet)
    return [f"step {n.step}: no {n.kind} agent has capabilities {words(n.capabilities)}"
            for n in needs(template) if unmet(n, agents)]
