"""Appliers of the work-queue events (``_workqueues``), mixed into ``Projection``.

``step_queued_on_agent`` puts a ready step on a busy agent's queue instead of the facility
queue. Leaving that queue needs no event of its own in most cases: every event that takes a
waiting step out of the facility queue (assigned, failed, skipped, requeued, its workflow
cancelled, failed, restored or rolled back) goes through ``FacilityState.dequeue``, which
knows agent queues too. Two events send queued steps back to the facility queue as a
consequence, applied here: the agent is lost (``agent_lost``, or it came back as another
kind), and the step's workflow is paused (``workflow_pausing`` / ``workflow_paused``) —
paused work must not hold a place in a busy agent's line.
"""

from __future__ import annotations

from typing import Any

from edge_runtime.core._event import Event
from edge_runtime.core._lifecycle import Lifecycle
from edge_runtime.core._state import Agent, FacilityState, WorkflowRun

__all__ = ["WorkQueueEvents"]


class WorkQueueEvents:
    """``_on_step_queued_on_agent``, and the hooks that give queued steps back."""

    state: FacilityState
    lifecycle: Lifecycle

    def _on_step_queued_on_agent(self, wf: WorkflowRun | None, d: dict[str, Any],
                                 ev: Event) -> None:
        assert wf is not None
        st = wf.steps[d["step"]]
        state = self.state
        if st.state == "pending":  # ready now: straight from pending to waiting
            st.retry_at = None
            self.lifecycle.step_quietly(st, "ready")
            self.lifecycle.step(wf, st, "allocate")
        else:
            state.dequeue(wf, st)  # from the facility queue (or another agent's)
        agent = state.agents[d["agent"]]
        agent.queued.append((wf.id, st.id))
        st.queued_on = agent.id
        state.agent_queued += 1

    def _on_step_unqueued(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        st = wf.steps[d["step"]]
        self.state.dequeue(wf, st)
        self.state.enqueue(wf, st)

    def _unqueue_agent(self, agent: Agent) -> None:
        """The agent is lost: what was queued on it waits in the facility queue again."""
        state = self.state
        for wid, sid in list(agent.queued):
            wf = state.workflows[wid]
            st = wf.steps[sid]
            state.dequeue(wf, st)
            state.enqueue(wf, st)

    def _unqueue_workflow(self, wf: WorkflowRun) -> None:
        """The workflow is pausing: its queued steps wait in the facility queue (skipped
        there while it is paused)."""
        state = self.state
        if not state.agent_queued:
            return
        for st in wf.steps.values():
            if st.queued_on is not None:
                state.dequeue(wf, st)
                state.enqueue(wf, st)
