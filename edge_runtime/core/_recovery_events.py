"""The appliers of recovery events (``edge_runtime.core._recovery``): checkpoints, saga
rollbacks, recovered workflows and steps waiting for an operator — a base of
``Projection``, kept apart so each module stays one concern."""

from __future__ import annotations

from typing import Any

from edge_runtime.core._event import Event
from edge_runtime.core._lifecycle import Lifecycle
from edge_runtime.core._resources_events import ResourceEvents
from edge_runtime.core._state import FacilityState, StepRun, WorkflowRun, compensation_step

__all__ = ["RecoveryEvents"]


class RecoveryEvents(ResourceEvents):
    """``_on_<kind>`` appliers for ``checkpoint_taken``, ``checkpoint_restored``,
    ``compensation_started``, ``rollback_finished``, ``workflow_recovered`` and
    ``operator_needed`` (on ``ResourceEvents``: a restore or a rollback ends the workflow's
    resource spans)."""

    state: FacilityState
    lifecycle: Lifecycle
    max_checkpoints: int

    def _on_checkpoint_taken(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        wf.checkpoints[d["id"]] = d
        while len(wf.checkpoints) > self.max_checkpoints:
            del wf.checkpoints[next(iter(wf.checkpoints))]

    def _on_checkpoint_restored(self, wf: WorkflowRun | None, d: dict[str, Any], e: Event) -> None:
        assert wf is not None
        cp = wf.checkpoints[d["id"]]
        self._drop_spans(wf)
        for st in list(wf.steps.values()):
            if st.state in ("ready", "allocating"):
                self.state.dequeue(wf, st)
            self.state.release(wf, st)
            if st.comp_of is not None:
                del wf.steps[st.id]
        for sid, (state, attempt, failures, outputs, done_seq) in cp["steps"].items():
            st = wf.steps[sid]
            # Finished steps keep their result; anything in flight starts over. Agents still
            # waiting at a barrier stay arrived; a released barrier's agents have left.
            if st.state in ("done", "compensated"):
                st.arrived = []
            st.state = state if state in ("done", "skipped", "compensated") else "pending"
            st.attempt, st.failures, st.outputs, st.done_seq = attempt, failures, outputs, done_seq
            st.retry_at, st.error, st.progress = None, None, 0.0
        wf.data = dict(cp["data"])
        wf.awaiting.clear()
        wf.rollback = None
        wf.reason = ""
        self.lifecycle.workflow(wf, "restore")

    def _on_compensation_started(self, wf: WorkflowRun | None, d: dict[str, Any], e: Event) -> None:
        assert wf is not None
        wf.rollback = d["then"]
        self._drop_spans(wf)
        for st in wf.steps.values():
            if st.state in ("ready", "allocating"):
                self.state.dequeue(wf, st)
            if st.state not in ("done", "skipped", "compensated", "pending", "failed"):
                self.state.release(wf, st)
                self.lifecycle.step_uncounted(st, "requeue")
            st.retry_at = None
        wf.awaiting.clear()
        prev: tuple[str, ...] = ()
        for sid in d["steps"]:
            comp = wf.steps[sid].spec.compensation
            assert comp is not None
            run = StepRun(compensation_step(sid, comp), prev)
            run.comp_of = sid
            wf.steps[run.id] = run
            prev = (run.id,)
        self.lifecycle.summarise(wf)

    def _on_rollback_finished(self, wf: WorkflowRun | None, d: dict[str, Any], e: Event) -> None:
        assert wf is not None
        wf.rollback = None
        for sid in [s for s, st in wf.steps.items() if st.comp_of is not None]:
            del wf.steps[sid]
        for sid in d["reset"]:
            st = wf.steps[sid]
            self.state.release(wf, st)
            if st.state == "compensated":
                st.arrived = []  # a released barrier's agents have left
            if st.state != "pending":
                self.lifecycle.step_uncounted(st, "reset")
            st.outputs, st.done_seq, st.failures, st.error = None, 0, 0, None

    def _on_workflow_recovered(self, wf: WorkflowRun | None, d: dict[str, Any], e: Event) -> None:
        assert wf is not None
        wf.reason = ""
        wf.ended_hlc = 0
        self.lifecycle.workflow(wf, "recover")

    def _on_operator_needed(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        wf.awaiting.append(d["step"])
