"""How coalition and ``leader_follower`` events change the state (a ``Projection`` mixin).

The decisions are made in ``_coalition`` and ``_leader``; these appliers only record what
the events say. A coalition step holds every member at once (each member's ``task`` names
it) from ``team_assigned`` until the step ends, when ``FacilityState.release`` frees them
together; before that, no agent is ever marked as held for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edge_runtime.core._event import Event
from edge_runtime.core._lifecycle import Lifecycle
from edge_runtime.core._state import FacilityState, StepRun, WorkflowRun

__all__ = ["CoalitionEvents"]


class CoalitionEvents:
    """Appliers of ``team_assigned``, ``team_met``, ``member_done``, ``member_dropped``,
    ``leader_elected`` and ``team_passed``."""

    state: FacilityState
    lifecycle: Lifecycle

    if TYPE_CHECKING:  # from ``ResourceEvents``, another mixin of ``Projection``
        def _hold_across(self, wf: WorkflowRun, st: StepRun, d: dict[str, Any]) -> None: ...

    def _on_team_assigned(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        state = self.state
        st = wf.steps[d["step"]]
        if st.state == "pending":
            st.retry_at = None
            self.lifecycle.step_quietly(st, "ready")
            self.lifecycle.step_quietly(st, "allocate")
        else:
            state.dequeue(wf, st)
        st.team = dict(d["team"])
        st.agent = d["lead"]
        st.attempt = d["attempt"]
        st.timeout_at = d["timeout_at"]
        st.stall_at = d.get("stall_at")
        st.progress = 0.0
        st.avoid = None
        st.arrived = []
        st.members_done = {}
        st.passes = 0
        key = (wf.id, st.id)
        if key in state.starving:
            state.starving.remove(key)
        for aid in st.team.values():
            agent = state.agents[aid]
            agent.task = key
            state.set_idle(agent)
        for res in st.spec.resources:
            state.holds[res] = key
        self._hold_across(wf, st, d)
        self.lifecycle.step(wf, st, "assign")

    def _on_team_met(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        st = wf.steps[d["step"]]
        self.lifecycle.step_quietly(st, "prepare")
        self.lifecycle.step(wf, st, "execute")

    def _on_member_done(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        wf.steps[d["step"]].members_done[d["agent"]] = d["outputs"]

    def _on_member_dropped(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        st = wf.steps[d["step"]]
        aid = d["agent"]
        st.team = {role: a for role, a in st.team.items() if a != aid}
        if aid in st.arrived:
            st.arrived.remove(aid)
        st.members_done.pop(aid, None)
        if st.agent == aid:
            st.agent = next(iter(st.team.values()))
        agent = self.state.agents[aid]
        if agent.task == (wf.id, st.id):
            agent.task = None
            self.state.set_idle(agent)

    def _on_leader_elected(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        wf.steps[d["step"]].agent = d["leader"]

    def _on_team_passed(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        st = wf.steps[d["step"]]
        st.passes = d["passes"]
        if d["starving"]:
            state = self.state
            # Forget steps that stopped waiting meanwhile (ended, skipped, cancelled).
            state.starving = [key for key in state.starving if _waiting(state, key)]
            state.starving.append((wf.id, st.id))


def _waiting(state: FacilityState, key: tuple[str, str]) -> bool:
    """Whether coalition step ``key`` (workflow, step) still waits to be formed."""
    wf = state.workflows.get(key[0])
    st = wf.steps.get(key[1]) if wf is not None else None
    return st is not None and st.state == "allocating"
