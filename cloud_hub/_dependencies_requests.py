"""What the API does with dependencies before any command leaves: find which facility each
source runs in, refuse bad conditions (the edge's own ``check_dependency``), and describe a
workflow's dependencies from its record plus the hub's cross-facility ones.

Kept apart from the routes so ``POST /workflows`` (creation with dependencies) and
``POST /workflows/{id}/dependencies`` share one reading of the seed's shape.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from cloud_hub._dependencies import Dependencies
from cloud_hub._dependencies_graph import CrossDependency
from cloud_hub._errors_http import ApiError
from cloud_hub._model import WorkflowOut
from cloud_hub._service import HubService, NotFound
from edge_runtime.core import CoreError, check_dependency

__all__ = [
    "DependenciesOut", "DependencyEdgeOut", "check_conditions", "creation_dependencies",
    "describe", "graph_of", "source_facility",
]


class DependencyEdgeOut(BaseModel):
    """One dependency of a workflow: what it waits for and how it stands."""

    source: str
    facility: str
    """Where the source runs."""
    type: str = "sequential"
    conditions: dict[str, Any] = Field(default_factory=dict)
    cross_facility: bool = False
    status: str = "waiting"
    """``waiting`` or ``resolved`` (cross-facility: as the hub sent it), else the edge's."""
    verdict: str | None = None
    """Cross-facility: ``release``, ``fail``, ``skip`` (or ``dropped``) once resolved."""
    reason: str = ""


class DependenciesOut(BaseModel):
    """The workflows this one waits for (``depends_on``: their ids; ``dependencies``: each
    with its type and status) and those that wait for it (``dependants``,
    ``facility/workflow``)."""

    workflow_id: str
    facility: str
    depends_on: list[str]
    dependencies: list[DependencyEdgeOut] = Field(default_factory=list)
    dependants: list[str] = Field(default_factory=list)


def graph_of(service: HubService) -> Dependencies:
    """The hub's dependency graph (501 from a service that keeps none)."""
    graph = getattr(service, "dependencies", None)
    if not isinstance(graph, Dependencies):
        raise ApiError(501, "not_implemented", "this hub keeps no dependency graph")
    return graph


def check_conditions(type_: str, conditions: dict[str, Any], where: str) -> None:
    """422 naming ``where`` if ``conditions`` do not fit ``type_`` (or a CEL is bad)."""
    try:
        check_dependency(type_, conditions)
    except CoreError as exc:
        raise ApiError(422, "validation_error", f"{where}: {exc}") from None


def source_facility(service: HubService, source: str, where: str) -> str:
    """The facility of workflow ``source``; 422 naming ``where`` if no facility has it."""
    try:
        return service.facility_of(source)
    except NotFound:
        raise ApiError(422, "validation_error",
                       f"{where}: no facility has workflow {source!r}") from None


def creation_dependencies(service: HubService, facility: str, depends_on: list[str],
                          dependencies: list[tuple[str, str, dict[str, Any]]]
                          ) -> dict[str, Any]:
    """``create_workflow``'s dependency arguments for a workflow of ``facility``: plain
    local prerequisites stay in ``depends_on``; typed ones and those of other facilities
    go in ``dependencies`` (with ``facility`` when it is another one)."""
    local: list[str] = []
    typed: list[dict[str, Any]] = []
    for i, source in enumerate(depends_on):
        f = source_facility(service, source, f"body.depends_on.{i}")
        if f == facility:
            local.append(source)
        else:
            typed.append({"depends_on": source, "type": "sequential", "conditions": {},
                          "facility": f})
    for i, (source, type_, conditions) in enumerate(dependencies):
        where = f"body.dependencies.{i}"
        check_conditions(type_, conditions, where)
        f = source_facility(service, source, where)
        spec: dict[str, Any] = {"depends_on": source, "type": type_,
                                "conditions": conditions}
        if f != facility:
            spec["facility"] = f
        typed.append(spec)
    if len(typed) > 64:
        raise ApiError(422, "validation_error", "body: at most 64 typed or cross-facility "
                                                "dependencies")
    out: dict[str, Any] = {"depends_on": local}
    if typed:
        out["dependencies"] = typed
    return out


def describe(wf: WorkflowOut, graph: Dependencies) -> DependenciesOut:
    """Every dependency of ``wf`` (its record's, with the hub's verdicts on the
    cross-facility ones) and its dependants."""
    cross = {(d.source_facility, d.source): d for d in graph.of_target(wf.facility, wf.id)}
    pending = wf.state.split(".", 1)[0] == "pending"
    found: dict[tuple[str, str], DependencyEdgeOut] = {}
    for source in wf.depends_on:
        found[(wf.facility, source)] = DependencyEdgeOut(
            source=source, facility=wf.facility, status="waiting" if pending else "resolved")
    for d in wf.dependencies:
        f = d.facility or wf.facility
        found[(f, d.source)] = DependencyEdgeOut(
            source=d.source, facility=f, type=d.type, conditions=d.conditions,
            cross_facility=f != wf.facility, status=d.status)
    for (f, source), c in cross.items():
        found[(f, source)] = _cross_out(c)
    return DependenciesOut(workflow_id=wf.id, facility=wf.facility, depends_on=wf.depends_on,
                           dependencies=[found[k] for k in sorted(found)],
                           dependants=graph.dependants(wf.facility, wf.id))


def _cross_out(c: CrossDependency) -> DependencyEdgeOut:
    return DependencyEdgeOut(source=c.source, facility=c.source_facility, type=c.type,
                             conditions=c.conditions, cross_facility=True, status=c.status,
                             verdict=c.verdict, reason=c.reason)
