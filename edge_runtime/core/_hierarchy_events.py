"""The appliers of sub-step events (``edge_runtime.core._hierarchy``): a base of
``Projection``, kept apart so each module stays one concern."""

from __future__ import annotations

from typing import Any

from edge_runtime.core._event import Event
from edge_runtime.core._state import FacilityState, StepRun, WorkflowRun

__all__ = ["HierarchyEvents"]


class HierarchyEvents:
    """``_on_<kind>`` appliers for ``substep_assigned``, ``substep_reassigned`` and
    ``substep_done``: the member holds its sub-step (and nothing else) until it is done,
    given to another, or the composite step's attempt ends (``FacilityState.release``)."""

    state: FacilityState

    def _hold(self, wf: WorkflowRun, st: StepRun, sub_id: str, member_id: str) -> None:
        member = self.state.agents[member_id]
        member.sub_task = (wf.id, st.id, sub_id)
        self.state.set_idle(member)
        st.subs[sub_id] = [member_id, "assigned"]

    def _free(self, wf: WorkflowRun, st: StepRun, sub_id: str) -> None:
        member = self.state.agents[st.subs[sub_id][0]]
        if member.sub_task == (wf.id, st.id, sub_id):
            member.sub_task = None
            self.state.set_idle(member)

    def _on_substep_assigned(self, wf: WorkflowRun | None, d: dict[str, Any],
                             ev: Event) -> None:
        assert wf is not None
        self._hold(wf, wf.steps[d["step"]], d["sub"], d["member"])

    def _on_substep_reassigned(self, wf: WorkflowRun | None, d: dict[str, Any],
                               ev: Event) -> None:
        assert wf is not None
        st = wf.steps[d["step"]]
        self._free(wf, st, d["sub"])
        self._hold(wf, st, d["sub"], d["member"])

    def _on_substep_done(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        st = wf.steps[d["step"]]
        self._free(wf, st, d["sub"])
        st.subs[d["sub"]][1] = "done"
