"""The appliers of the events of cancels and pauses that wait for agents
(``edge_runtime.core._confirm``): a base of ``Projection``, kept apart so each module stays
one concern."""

from __future__ import annotations

from typing import Any

from edge_runtime.core._event import Event
from edge_runtime.core._lifecycle import Lifecycle
from edge_runtime.core._state import FacilityState, WorkflowRun

__all__ = ["ConfirmationEvents"]


class ConfirmationEvents:
    """``_on_<kind>`` appliers for ``workflow_cancelling``, ``workflow_pausing``,
    ``step_cancelling``, ``pause_confirmed`` and ``command_refused``."""

    state: FacilityState
    lifecycle: Lifecycle

    def _on_workflow_cancelling(self, wf: WorkflowRun | None, d: dict[str, Any],
                                ev: Event) -> None:
        """Nothing more starts or waits; the held steps stay held until confirmed."""
        assert wf is not None
        for st in wf.steps.values():
            if st.state in ("ready", "allocating"):
                self.state.dequeue(wf, st)
            st.retry_at = None
            if st.unconfirmed is not None and st.unconfirmed[1] == "pause":
                st.unconfirmed = None
        wf.awaiting.clear()
        wf.reason = d["reason"]
        self.lifecycle.workflow(wf, "begin_cancel")

    def _on_workflow_pausing(self, wf: WorkflowRun | None, d: dict[str, Any],
                             ev: Event) -> None:
        assert wf is not None
        for sid, cmd in d["steps"].items():
            wf.steps[sid].unconfirmed = [cmd, "pause", ""]
        self._unqueue_workflow(wf)  # type: ignore[attr-defined]  # WorkQueueEvents
        self.lifecycle.workflow(wf, "begin_pause")

    def _on_step_cancelling(self, wf: WorkflowRun | None, d: dict[str, Any],
                            ev: Event) -> None:
        assert wf is not None
        st = wf.steps[d["step"]]
        st.unconfirmed = [d["cmd"], "cancel", d["then"]]
        self.lifecycle.step(wf, st, "withdraw")

    def _on_pause_confirmed(self, wf: WorkflowRun | None, d: dict[str, Any],
                            ev: Event) -> None:
        assert wf is not None
        wf.steps[d["step"]].unconfirmed = None

    def _on_command_refused(self, wf: WorkflowRun | None, d: dict[str, Any],
                            ev: Event) -> None:
        """The agent goes on with the step: it is back where it was before the cancel."""
        assert wf is not None
        st = wf.steps[d["step"]]
        st.unconfirmed = None
        if st.state == "cancelling":
            self.lifecycle.step(wf, st, "go_on")
