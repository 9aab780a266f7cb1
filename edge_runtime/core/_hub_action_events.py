"""The appliers of the hub actions' events (``edge_runtime.core._hub_actions``): a base of
``Projection``, kept apart so each module stays one concern."""

from __future__ import annotations

import bisect
from typing import Any

from edge_runtime.core._event import Event
from edge_runtime.core._state import FacilityState, WorkflowRun

__all__ = ["HubActionEvents"]


class HubActionEvents:
    """``_on_<kind>`` applier for ``workflow_updated``."""

    state: FacilityState

    def _on_workflow_updated(self, wf: WorkflowRun | None, d: dict[str, Any],
                             ev: Event) -> None:
        """The hub changed the workflow's priority, deadline or data.

        A new priority re-keys its steps waiting in the facility queue (the key starts with
        it); steps queued on a busy agent keep their place there. Data is merged copy on
        write (like ``data_written``: an event's dict never changes under the log) and counts
        as one more ``data_version``, so a step assigned before it and finishing after it
        saw older data (``StepRun.seen_version``)."""
        assert wf is not None
        state = self.state
        if "priority" in d:
            queue = state.queue
            waiting = []
            for st in wf.steps.values():
                key = wf.step_key(st)
                i = bisect.bisect_left(queue, key)
                if st.queued_on is None and i < len(queue) and queue[i] == key:
                    del queue[i]
                    waiting.append(st)
            wf.priority = d["priority"]
            for st in waiting:
                state.enqueue(wf, st)
        if "deadline" in d:
            state.deadlines += (d["deadline"] is not None) - (wf.deadline is not None)
            wf.deadline = d["deadline"]
        if "data" in d:
            wf.data = {**wf.data, **d["data"]}
            wf.data_version += 1
        if "labels" in d:  # copy on write; ``None`` removes a label
            labels = {**(wf.labels or {}), **d["labels"]}
            wf.labels = {k: v for k, v in labels.items() if v is not None} or None
