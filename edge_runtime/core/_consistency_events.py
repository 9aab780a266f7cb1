"""The appliers of workflow-variable writes (``edge_runtime.core._consistency``): a base of
``Projection``, kept apart so each module stays one concern.

A write replaces ``WorkflowRun.data`` with a new dict (copy on write): the dict a
``workflow_created`` event carried is the workflow's first ``data``, and an event already
made must never change under the log that holds it.
"""

from __future__ import annotations

from typing import Any

from edge_runtime.core._event import Event
from edge_runtime.core._state import FacilityState, WorkflowRun

__all__ = ["ConsistencyEvents"]


class ConsistencyEvents:
    """``_on_<kind>`` appliers for ``data_written``, ``data_write_held`` and
    ``data_write_dropped``."""

    state: FacilityState

    def _on_data_written(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        """A step's outputs (``Step.sets``) become workflow variables: one more version."""
        assert wf is not None
        wf.data = {**wf.data, **d["values"]}
        wf.data_version += 1
        for name in d["values"]:
            wf.writers[name] = [d["step"], wf.data_version]
        if "conflict" in d:  # an operator chose the write that was held
            wf.held.pop(d["conflict"], None)

    def _on_data_write_held(self, wf: WorkflowRun | None, d: dict[str, Any],
                            ev: Event) -> None:
        """A concurrent write waits for an operator (the variable keeps its value)."""
        assert wf is not None
        wf.held[d["conflict"]] = [d["variable"], d["step"], d["value"], d["against"]]

    def _on_data_write_dropped(self, wf: WorkflowRun | None, d: dict[str, Any],
                               ev: Event) -> None:
        """The held write is not applied: the operator kept the value that stands."""
        assert wf is not None
        wf.held.pop(d["conflict"], None)
