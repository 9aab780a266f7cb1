"""Moving workflows and steps through their machines (docs/design.md §5), counting transitions.

A workflow's ``active`` substate summarises what its steps are doing: after each step
transition ``Lifecycle.step`` moves the workflow to the substate of its most advanced step
(executing beats validating beats cleanup …). Used by the projection only: state changes
only when an event is applied.
"""

from __future__ import annotations

from edge_runtime.core._machine import Machine, step_machine, workflow_machine
from edge_runtime.core._state import FacilityState, StepRun, WorkflowRun

__all__ = ["Lifecycle"]

# How a workflow's active substate summarises its steps (lowest rank wins).
_RANK = {
    "executing": 0, "validating": 1, "cleanup": 2, "assigned": 3, "preparing": 3,
    "ready": 5, "allocating": 5, "failed": 5,
}
_RANK_EVENT = ("execute", "validate", "clean_up", "prepare", "synchronize", "wait_resource")
_RANK_DEST = (
    "active.executing.step_execution", "active.executing.step_validation",
    "active.executing.step_cleanup", "active.executing.step_preparation",
    "active.synchronizing", "active.waiting_for_resource",
)


class Lifecycle:
    """The workflow and step machines of one core, and the transition count."""

    def __init__(self, state: FacilityState) -> None:
        self.state = state
        self.workflow_machine: Machine = workflow_machine()
        """This core's workflow machine (add hooks with ``.on``)."""
        self.step_machine: Machine = step_machine()
        """This core's step machine (add hooks with ``.on``)."""

    def workflow(self, wf: WorkflowRun, event: str) -> None:
        """Fire ``event`` on the workflow."""
        self.workflow_machine.fire(wf, event)
        self.state.transitions += 1

    def step(self, wf: WorkflowRun, st: StepRun, event: str) -> None:
        """Fire ``event`` on the step, then re-summarise the workflow."""
        self.step_machine.fire(st, event)
        self.state.transitions += 1
        self.summarise(wf)

    def step_quietly(self, st: StepRun, event: str) -> None:
        """Fire ``event`` on the step without re-summarising (several moves in a row)."""
        self.step_machine.fire(st, event)
        self.state.transitions += 1

    def step_uncounted(self, st: StepRun, event: str) -> None:
        """Fire ``event`` on the step as a bookkeeping move the benchmark does not count."""
        self.step_machine.fire(st, event)

    def summarise(self, wf: WorkflowRun) -> None:
        """Move the workflow's active substate to what its steps are doing."""
        rank = 9
        for st in wf.steps.values():
            r = _RANK.get(st.state, 9)
            if r == 0 and st.spec.kind == "sync":
                r = 4
            elif r == 9 and st.retry_at is not None:
                r = 5
            if r < rank:
                rank = r
                if r == 0:
                    break
        if rank == 9:
            return
        state = wf.state
        if state == "paused" or state == "pausing":
            wf.history = _RANK_DEST[rank]
        elif state.startswith("active.") and state != _RANK_DEST[rank]:
            self.workflow_machine.fire(wf, _RANK_EVENT[rank])
            self.state.transitions += 1
