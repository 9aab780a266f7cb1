"""Finding the workflow or step a command names, with errors that say what is wrong."""

from __future__ import annotations

from edge_runtime.core._command_args import BadArguments
from edge_runtime.core._errors import IllegalTransition, StaleInput, UnknownEntity
from edge_runtime.core._state import Agent, FacilityState, StepRun, WorkflowRun

__all__ = ["find_reported", "find_step", "find_workflow"]


def find_workflow(state: FacilityState, workflow_id: str) -> WorkflowRun:
    """The live workflow ``workflow_id``; a clear error if it is archived or unknown."""
    wf = state.workflows.get(workflow_id)
    if wf is None:
        archived = state.archived.get(workflow_id)
        if archived is not None:
            raise IllegalTransition(f"workflow {workflow_id} is in {archived}; it accepts: "
                                    "nothing (it is final and archived)")
        raise UnknownEntity(f"unknown workflow {workflow_id!r}")
    return wf


def find_step(wf: WorkflowRun, step_id: str | None) -> StepRun:
    """The step ``step_id`` of ``wf``; ``BadArguments`` if none was named."""
    if step_id is None:
        raise BadArguments(f"workflow {wf.id}: this action needs a step_id")
    st = wf.steps.get(step_id)
    if st is None:
        raise UnknownEntity(f"workflow {wf.id} has no step {step_id!r}")
    return st


def find_reported(state: FacilityState, agent_id: str, event_id: str, workflow_id: str,
                  step_id: str) -> tuple[Agent, WorkflowRun, StepRun] | None:
    """The agent, live workflow and step an agent's event names (votes, sub-step reports);
    ``None`` if that event was applied already (a redelivery). An archived workflow takes
    no more events (``StaleInput``)."""
    agent = state.agents.get(agent_id)
    if agent is None:
        raise UnknownEntity(f"agent {agent_id} has not announced itself on its conn topic")
    if event_id in agent.recent_ids:
        return None
    wf = state.workflows.get(workflow_id)
    if wf is None:
        if workflow_id in state.archived:
            raise StaleInput(f"workflow {workflow_id} is archived; it takes no more events")
        raise UnknownEntity(f"unknown workflow {workflow_id!r}")
    st = wf.steps.get(step_id)
    if st is None:
        raise UnknownEntity(f"workflow {wf.id} has no step {step_id!r}")
    return agent, wf, st
