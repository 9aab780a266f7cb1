"""The appliers of typed and external workflow dependencies' events
(``edge_runtime.core._workflow_deps``): a base of ``Projection``, kept apart so each module
stays one concern."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from edge_runtime.core._event import Event
from edge_runtime.core._state import FacilityState, WorkflowRun

__all__ = ["WorkflowDepEvents"]

_STATUS = {"release": "released", "fail": "failed", "skip": "skipped"}


class WorkflowDepEvents:
    """``_on_dependency_resolved``, and recording the typed entries of ``workflow_created``
    and ``dependency_added``."""

    state: FacilityState

    def _add_deps(self, wf: WorkflowRun, entries: Iterable[dict[str, Any]]) -> None:
        """Each entry ``{depends_on, type, conditions, facility}`` waits; a local source
        lists ``wf`` among its dependents (it stays in memory until ``wf`` no longer waits).
        ``deps`` stays ``None`` on workflows without any (most of them)."""
        workflows = self.state.workflows
        for d in entries:
            facility = d["facility"]
            if wf.deps is None:
                wf.deps = []
            wf.deps.append([d["depends_on"], d["type"], d["conditions"], facility, "waiting"])
            if facility is None:
                src = workflows.get(d["depends_on"])
                if src is not None:
                    src.dependents.append(wf.id)

    def _on_dependency_resolved(self, wf: WorkflowRun | None, d: dict[str, Any],
                                ev: Event) -> None:
        """A dependency was decided: its status; a ``data_flow`` release's values merge into
        the target's data (copy on write: an event's dict never changes under the log)."""
        assert wf is not None and wf.deps is not None
        for entry in wf.deps:
            if entry[0] == d["depends_on"] and entry[3] == d["facility"]:
                entry[4] = _STATUS[d["verdict"]]
                break
        if d["data"]:
            wf.data = {**wf.data, **d["data"]}
