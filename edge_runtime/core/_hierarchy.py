"""``hierarchical`` (docs/design.md §6): a team lead splits its composite step among its team.

A step with ``composite`` in a workflow whose coordination is ``hierarchical`` is allocated
to one agent, its lead, as usual. The lead then reports how it splits the work: each
``SubStepAssigned`` gives a sub-step to a member of its team (``substep_assigned``), or
gives an open one to another member (``substep_reassigned``); ``SubStepDone`` closes one
(``substep_done``). The edge checks each report — from the agent holding the step at that
attempt, a member of the step's team, available (a member holding a step or a sub-step is
busy with it) — and a member holding a sub-step takes no other work. The lead's
``step_done`` is refused while a sub-step is open. When the step's attempt ends any other
way (the lead lost or failed, the workflow cancelled) its members are freed
(``FacilityState.release``) and a new attempt starts with no sub-steps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edge_runtime.core._allocation import Allocation
from edge_runtime.core._context import Context
from edge_runtime.core._errors import StaleInput, UnknownEntity
from edge_runtime.core._lookup import find_reported
from edge_runtime.core._state import Agent, StepRun, WorkflowRun
from topics import SubStepAssigned, SubStepDone

__all__ = ["Hierarchy", "refuse_open_substeps"]

_HELD = ("assigned", "preparing", "executing")


def refuse_open_substeps(wf: WorkflowRun, st: StepRun) -> None:
    """``StaleInput`` if the composite step ``st`` still has sub-steps not done (its lead
    reported it done too early)."""
    open_subs = [sid for sid, (_, state) in st.subs.items() if state != "done"]
    if open_subs:
        raise StaleInput(f"{wf.id}.{st.id} is not done: sub-steps {', '.join(open_subs)} "
                         "are still open")


class Hierarchy:
    """Handles a team lead's ``SubStepAssigned`` and ``SubStepDone``."""

    def __init__(self, allocation: Allocation) -> None:
        self.allocation = allocation

    def handlers(self) -> dict[type, Callable[[Context, Any], None]]:
        """The inputs this component takes."""
        return {SubStepAssigned: self.assigned, SubStepDone: self.done}

    def _find(self, ctx: Context,
              m: SubStepAssigned | SubStepDone) -> tuple[Agent, WorkflowRun, StepRun] | None:
        """The lead, workflow and composite step of a report; ``None`` for a duplicate."""
        found = find_reported(ctx.state, m.agent_id, m.event_id, m.workflow_id, m.step_id)
        if found is None:
            return None
        lead, wf, st = found
        where = f"{m.type} for {wf.id}.{st.id}"
        if st.spec.composite is None or wf.coordination != "hierarchical":
            raise StaleInput(f"{where}: not a composite step of a hierarchical workflow")
        if st.agent != lead.id or st.attempt != m.attempt:
            raise StaleInput(f"{where} attempt {m.attempt} from {lead.id}: the step is held "
                             f"by {st.agent or 'nobody'} (attempt {st.attempt})")
        if st.state not in _HELD or not wf.state.startswith("active"):
            raise StaleInput(f"{where}: the step is {st.state}, the workflow {wf.state}")
        return lead, wf, st

    def assigned(self, ctx: Context, m: SubStepAssigned) -> None:
        """The lead gives sub-step ``m.sub_id`` to ``m.member`` (again: to another one)."""
        found = self._find(ctx, m)
        if found is None:
            return
        lead, wf, st = found
        composite = st.spec.composite
        assert composite is not None
        where = f"sub-step {m.sub_id} of {wf.id}.{st.id}"
        member = ctx.state.agents.get(m.member)
        if member is None:
            raise UnknownEntity(f"{where}: agent {m.member} has not announced itself")
        allowed = wf.allowed_agents is None or member.id in wf.allowed_agents
        if member.id == lead.id or not allowed or not composite.admits(member.id, member.caps):
            raise StaleInput(f"{where}: {member.id} is not in {lead.id}'s team")
        previous = st.subs.get(m.sub_id)
        if previous is not None and previous[1] == "done":
            raise StaleInput(f"{where} is done already")
        if previous is not None and previous[0] == member.id:
            raise StaleInput(f"{where}: {member.id} holds it already")
        if not member.available:
            busy = member.task or member.sub_task
            raise StaleInput(f"{where}: {member.id} is not available"
                             + (f" (it holds {'/'.join(busy)})" if busy else ""))
        data: dict[str, Any] = {"step": st.id, "sub": m.sub_id, "agent": lead.id,
                                "member": member.id, "eid": m.event_id}
        if m.description:
            data["description"] = m.description
        if previous is None:
            ctx.emit("substep_assigned", wf.id, data)
            return
        ctx.emit("substep_reassigned", wf.id, {**data, "previous": previous[0]})
        self.allocation.allocate_waiting(ctx)  # the member it had is free again

    def done(self, ctx: Context, m: SubStepDone) -> None:
        """The lead reports sub-step ``m.sub_id`` done: its member is free again."""
        found = self._find(ctx, m)
        if found is None:
            return
        lead, wf, st = found
        sub = st.subs.get(m.sub_id)
        if sub is None or sub[1] == "done":
            raise StaleInput(f"sub-step {m.sub_id} of {wf.id}.{st.id} is "
                             + ("done already" if sub else "unknown"))
        ctx.emit("substep_done", wf.id, {"step": st.id, "sub": m.sub_id, "agent": lead.id,
                                         "member": sub[0], "eid": m.event_id})
        self.allocation.allocate_waiting(ctx)
