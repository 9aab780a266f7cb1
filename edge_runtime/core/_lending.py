"""Agents and resources lent to another facility (hub actions ``lend_agent``,
``reclaim_agent``, ``lend_resource``, ``reclaim_resource`` and ``release_booking``).

An agent id (or a resource name) known to more than one facility is *shared*: a forklift
serving two adjacent halls talks to both facilities' topics. A loan says which facility
may use it now. Edges stay autonomous, so a loan only keeps *this* facility off the thing:

- a lent agent is not ``Agent.available`` (``lent_to``): it gets no new step here, a step
  it holds runs to its end (the reply says whether it is free now);
- a lent resource makes local steps needing it wait as if it were held
  (``Resources.free``); lending one a local step holds now is refused;
- ``release_booking`` is the hub's resolution of a double-booking made across facilities
  (during a partition both edges may book the same agent): it lends the agent (or
  resource) to the facility that keeps it and takes this facility's step off it the way
  an operator's ``reassign`` does (the agent is told to cancel; the step waits for another
  agent once the cancel is confirmed, ``_confirm``).

Every decision is an event (``agent_lent`` …, applied in ``_lending_events``), so replay
rebuilds the loans exactly and snapshots keep them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edge_runtime.core._allocation import Allocation
from edge_runtime.core._command_args import BadArguments, parse_args
from edge_runtime.core._confirm import Confirmations
from edge_runtime.core._context import Context
from edge_runtime.core._errors import CoreError, UnknownEntity
from edge_runtime.core._lending_args import (
    LendAgentArgs,
    LendResourceArgs,
    ReclaimAgentArgs,
    ReclaimResourceArgs,
    ReleaseBookingArgs,
)
from edge_runtime.core._lookup import find_step, find_workflow
from edge_runtime.core._state import Agent, FacilityState, StepRun, WorkflowRun
from topics import HubCommand

__all__ = ["Lending", "known_resources"]

_HELD = ("assigned", "preparing", "executing", "validating", "cleanup")
"""Step states in which an agent holds the step (``_confirm``)."""


def known_resources(state: FacilityState) -> set[str]:
    """Every resource name this facility's templates (or its live steps) use."""
    names: set[str] = set(state.holds) | set(state.lent_resources)
    for template in state.templates.values():
        for step in template.steps:
            names.update(step.resources)
    for wf in state.workflows.values():
        for st in wf.steps.values():
            names.update(st.spec.resources)
    return names


class Lending:
    """Lends and reclaims agents and resources; settles a booking for another facility."""

    def __init__(self, allocation: Allocation, confirmations: Confirmations) -> None:
        self.allocation = allocation
        self.confirmations = confirmations

    def actions(self) -> dict[str, Callable[[Context, HubCommand], dict[str, Any]]]:
        """The hub command actions this component serves."""
        return {"lend_agent": self.lend_agent, "reclaim_agent": self.reclaim_agent,
                "lend_resource": self.lend_resource, "reclaim_resource": self.reclaim_resource,
                "release_booking": self.release_booking}

    # --- agents ----------------------------------------------------------------------------

    def lend_agent(self, ctx: Context, cmd: HubCommand) -> dict[str, Any]:
        """``lend_agent``: no new work here for the agent; idempotent for the same ``to``."""
        a: LendAgentArgs = parse_args(LendAgentArgs, cmd)
        agent = self._agent(ctx.state, a.agent_id)
        self._lend_agent(ctx, agent, a.to)
        return self._agent_reply(agent)

    def reclaim_agent(self, ctx: Context, cmd: HubCommand) -> dict[str, Any]:
        """``reclaim_agent``: the agent takes work here again (a no-op if it is not lent)."""
        a: ReclaimAgentArgs = parse_args(ReclaimAgentArgs, cmd)
        agent = self._agent(ctx.state, a.agent_id)
        if agent.lent_to is not None:
            ctx.emit("agent_reclaimed", None, {"agent": agent.id})
            self.allocation.allocate_waiting(ctx)
        return self._agent_reply(agent)

    def _lend_agent(self, ctx: Context, agent: Agent, to: str) -> None:
        self._other_facility(ctx, to)
        if agent.lent_to == to:
            return  # idempotent: a repeat changes nothing
        if agent.lent_to is not None:
            raise CoreError(f"agent {agent.id} is lent to {agent.lent_to}; reclaim it first")
        ctx.emit("agent_lent", None, {"agent": agent.id, "to": to})
        queued = list(agent.queued)
        for wid, sid in queued:  # work queued on it waits for another agent
            ctx.emit("step_unqueued", wid, {"step": sid, "agent": agent.id,
                                            "reason": f"the agent is lent to {to}"})
        if queued:
            self.allocation.allocate_waiting(ctx)

    @staticmethod
    def _agent(state: FacilityState, agent_id: str) -> Agent:
        agent = state.agents.get(agent_id)
        if agent is None:
            raise UnknownEntity(f"no agent {agent_id!r} in facility {state.facility}")
        return agent

    @staticmethod
    def _agent_reply(agent: Agent) -> dict[str, Any]:
        busy = "/".join(agent.task) if agent.task else None
        return {"agent": agent.id, "lent_to": agent.lent_to,
                "free": agent.task is None and agent.sub_task is None, "busy_with": busy}

    # --- resources -------------------------------------------------------------------------

    def lend_resource(self, ctx: Context, cmd: HubCommand) -> dict[str, Any]:
        """``lend_resource``: refused while a local step holds it; idempotent for ``to``."""
        a: LendResourceArgs = parse_args(LendResourceArgs, cmd)
        state = ctx.state
        self._resource(state, a.resource)
        holder = state.holds.get(a.resource)
        if holder is not None:
            raise CoreError(f"resource {a.resource} is held by {holder[0]}/{holder[1]}; it "
                            "can be lent once that step lets go of it")
        self._lend_resource(ctx, a.resource, a.to)
        return {"resource": a.resource, "lent_to": state.lent_resources.get(a.resource)}

    def reclaim_resource(self, ctx: Context, cmd: HubCommand) -> dict[str, Any]:
        """``reclaim_resource``: local steps may acquire it again (no-op if not lent)."""
        a: ReclaimResourceArgs = parse_args(ReclaimResourceArgs, cmd)
        state = ctx.state
        self._resource(state, a.resource)
        if a.resource in state.lent_resources:
            ctx.emit("resource_reclaimed", None, {"resource": a.resource})
            self.allocation.allocate_waiting(ctx)
        return {"resource": a.resource, "lent_to": None}

    def _lend_resource(self, ctx: Context, resource: str, to: str) -> None:
        self._other_facility(ctx, to)
        lent = ctx.state.lent_resources.get(resource)
        if lent == to:
            return
        if lent is not None:
            raise CoreError(f"resource {resource} is lent to {lent}; reclaim it first")
        ctx.emit("resource_lent", None, {"resource": resource, "to": to})

    @staticmethod
    def _resource(state: FacilityState, name: str) -> None:
        known = known_resources(state)
        if name not in known:
            raise UnknownEntity(f"no resource {name!r} in facility {state.facility}; known: "
                                f"{', '.join(sorted(known)) or 'none'}")

    # --- the hub's resolution of a double-booking ------------------------------------------

    def release_booking(self, ctx: Context, cmd: HubCommand) -> dict[str, Any]:
        """``release_booking``: lend the agent (or resource) to ``to`` and take this
        facility's step off it; ``released`` says whether the step still had it."""
        a: ReleaseBookingArgs = parse_args(ReleaseBookingArgs, cmd)
        state = ctx.state
        wf = find_workflow(state, a.workflow_id)
        st = find_step(wf, a.step_id)
        # Refuse a loan to this facility before the reclaim below emits anything: a refusal
        # must change nothing (found by fuzzing: it used to half-apply, forcing a rebuild).
        self._other_facility(ctx, a.to)
        why = a.reason or f"double-booking settled by the hub for {a.to}"
        if a.agent_id is not None:
            agent = self._agent(state, a.agent_id)
            if agent.lent_to not in (None, a.to):
                ctx.emit("agent_reclaimed", None, {"agent": agent.id})  # re-lent to ``to``
            self._lend_agent(ctx, agent, a.to)
            holds = st.agent == agent.id or agent.id in st.team.values()
        else:
            assert a.resource is not None
            self._resource(state, a.resource)
            if state.lent_resources.get(a.resource) not in (None, a.to):
                ctx.emit("resource_reclaimed", None, {"resource": a.resource})
            self._lend_resource(ctx, a.resource, a.to)
            holds = state.holds.get(a.resource) == (wf.id, st.id)
        released = holds and self._withdraw(ctx, wf, st, why)
        return {"workflow_id": wf.id, "step": st.id, "released": released,
                "to": a.to, "agent": a.agent_id, "resource": a.resource}

    def _withdraw(self, ctx: Context, wf: WorkflowRun, st: StepRun, why: str) -> bool:
        """Cancel the step's agent (unless a cancel is already under way); the step waits
        for allocation again once the agent confirmed."""
        if st.agent is None or st.state not in _HELD:
            return False
        if st.unconfirmed is None:
            self.confirmations.withdraw(ctx, wf, st, why, "avoid")
        self.allocation.allocate_waiting(ctx)
        return True

    @staticmethod
    def _other_facility(ctx: Context, to: str) -> None:
        if to == ctx.state.facility:
            raise BadArguments(f"cannot lend to {to}: it is this facility")
