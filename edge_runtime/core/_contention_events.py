"""The appliers of the contention strategies' events (``edge_runtime.core._strategies``): a
base of ``Projection``, kept apart so each module stays one concern."""

from __future__ import annotations

from typing import Any

from edge_runtime.core._event import Event
from edge_runtime.core._lifecycle import Lifecycle
from edge_runtime.core._state import FacilityState, StepRun, WorkflowRun

__all__ = ["ContentionEvents", "swap_resource"]


def swap_resource(st: StepRun, resource: str, to: str) -> None:
    """``st`` claims ``to`` instead of ``resource`` from now on.

    The step's spec is replaced by a copy naming ``to``: every reader of
    ``spec.resources`` (allocation, holds, release) then sees the new claim unchanged."""
    spec = st.spec
    st.spec = spec.model_copy(update={
        "resources": tuple(to if r == resource else r for r in spec.resources)})


class ContentionEvents:
    """``_on_<kind>`` appliers for ``step_rescheduled``, ``resource_swapped``,
    ``conflict_proposal`` and ``conflict_negotiated``."""

    state: FacilityState
    lifecycle: Lifecycle

    def _on_step_rescheduled(self, wf: WorkflowRun | None, d: dict[str, Any],
                             ev: Event) -> None:
        """The step starts no earlier than ``at``: a waiting one leaves the queue and is
        pending until then (the ``retry:`` timer brings it back); a held one keeps its
        agent until the cancel sent with it is confirmed, then waits the same way."""
        assert wf is not None
        st = wf.steps[d["step"]]
        if st.state in ("ready", "allocating"):
            self.state.dequeue(wf, st)
            self.lifecycle.step(wf, st, "requeue")
        st.retry_at = d["at"]

    def _on_resource_swapped(self, wf: WorkflowRun | None, d: dict[str, Any],
                             ev: Event) -> None:
        assert wf is not None
        swap_resource(wf.steps[d["step"]], d["resource"], d["to"])

    def _on_conflict_proposal(self, wf: WorkflowRun | None, d: dict[str, Any],
                              ev: Event) -> None:
        """A participant's alternative in a negotiation: a record, no state changes."""

    def _on_conflict_negotiated(self, wf: WorkflowRun | None, d: dict[str, Any],
                                ev: Event) -> None:
        """The proposal a negotiation chose: a record; the events after it carry it out."""
