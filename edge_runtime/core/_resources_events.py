"""The appliers of resources held across steps and of deadlock victims (``_resources``,
``_deadlock``): a base of ``Projection``, kept apart so each module stays one concern.

A span (``WorkflowRun.spans``) begins with the ``step_assigned`` that carries ``holds`` and
ends when its end step ends (``step_done``, ``step_skipped``, ``step_decided``), or with the
workflow: it ending, failing or being cancelled, a rollback starting, a checkpoint restored,
or the workflow chosen as a deadlock's victim (``resources_released``).
"""

from __future__ import annotations

from typing import Any

from edge_runtime.core._event import Event
from edge_runtime.core._lifecycle import Lifecycle
from edge_runtime.core._state import FacilityState, StepRun, WorkflowRun

__all__ = ["ResourceEvents"]

_WAITING = ("ready", "allocating")
_ENDED = ("done", "failed", "skipped", "compensated")


class ResourceEvents:
    """``_on_<kind>`` appliers for ``deadlock_detected`` and ``resources_released``, and the
    span hooks the step and workflow appliers call."""

    state: FacilityState
    lifecycle: Lifecycle

    def _hold_across(self, wf: WorkflowRun, st: StepRun, d: dict[str, Any]) -> None:
        """``step_assigned``: the resources it holds past the step (its own ``hold_until``,
        and those claimed early to keep the global order) become the workflow's."""
        holds = d.get("holds")
        if not holds:
            return
        for res, end in holds.items():
            self.state.holds[res] = (wf.id, st.id)
            old = wf.spans.get(res)
            wf.spans[res] = [old[0] if old else st.id, end]

    def _end_spans(self, wf: WorkflowRun, st: StepRun) -> None:
        """``st`` ended: the spans it ends release their resources (unless another running
        step of the workflow uses one as its own: that step's hold goes on until it ends)."""
        if not wf.spans:
            return
        for res in [r for r, span in wf.spans.items() if span[1] == st.id]:
            del wf.spans[res]
            holder = self.state.holds.get(res)
            if holder is not None and holder[0] == wf.id:
                user = wf.steps.get(holder[1])
                if (user is None or user is st or user.agent is None
                        or res not in user.spec.resources):
                    del self.state.holds[res]

    def _drop_spans(self, wf: WorkflowRun) -> None:
        """The workflow lets go of everything it holds across steps."""
        if not wf.spans:
            return
        holds = self.state.holds
        for res in wf.spans:
            holder = holds.get(res)
            if holder is not None and holder[0] == wf.id:
                del holds[res]
        wf.spans.clear()

    def _on_deadlock_detected(self, wf: WorkflowRun | None, d: dict[str, Any],
                              ev: Event) -> None:
        """The cycle is for the log and the hub; its conflict entity is the state."""

    def _on_resources_released(self, wf: WorkflowRun | None, d: dict[str, Any],
                               ev: Event) -> None:
        """A deadlock's victim lets go of ``resources`` and its steps ``reset`` go back to
        pending: waiting ones leave the queue, finished ones lose their results, wait and
        sync steps under way start over."""
        assert wf is not None
        state = self.state
        for res in d["resources"]:
            wf.spans.pop(res, None)
            holder = state.holds.get(res)
            if holder is not None and holder[0] == wf.id:
                del state.holds[res]
        for sid in d["reset"]:
            st = wf.steps[sid]
            if st.state in _WAITING:
                state.dequeue(wf, st)
            state.release(wf, st)
            # Ended steps are reset; waiting ones, and wait or sync steps under way, requeued.
            self.lifecycle.step_quietly(st, "reset" if st.state in _ENDED else "requeue")
            st.arrived = []
            if sid in wf.awaiting:
                wf.awaiting.remove(sid)
            st.outputs, st.done_seq, st.error, st.retry_at, st.progress = None, 0, None, None, 0.0
        self.lifecycle.summarise(wf)
