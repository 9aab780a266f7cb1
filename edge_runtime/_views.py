"""Read-only views of the projection for the shell, the hub and tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edge_runtime._projection import Agent, StepRun, WorkflowRun

__all__ = ["AgentView", "StepView", "WorkflowView", "agent_view", "workflow_view"]


@dataclass(frozen=True, slots=True)
class StepView:
    """One step of a workflow, as it stands."""

    id: str
    kind: str
    state: str
    attempt: int
    failures: int
    agent: str | None
    outputs: dict[str, Any] | None
    error: str | None
    progress: float
    compensates: str | None


@dataclass(frozen=True, slots=True)
class WorkflowView:
    """One workflow, as it stands; ``state`` is the full dotted path in the hierarchy."""

    id: str
    template: str
    version: int
    state: str
    resumes_to: str | None
    """While paused: the active substate ``resume`` returns to."""
    priority: int
    deadline: float | None
    data: dict[str, Any]
    steps: dict[str, StepView]
    awaiting_operator: tuple[str, ...]
    depends_on: tuple[str, ...]
    checkpoints: tuple[str, ...]
    rolling_back: bool
    reason: str


@dataclass(frozen=True, slots=True)
class AgentView:
    """One agent, as the edge knows it."""

    id: str
    kind: str
    capabilities: tuple[str, ...]
    online: bool
    status: str
    node: str | None
    battery: float | None
    task: tuple[str, str] | None
    available: bool


def _step_view(st: StepRun) -> StepView:
    return StepView(
        st.id, st.spec.kind, st.state, st.attempt, st.failures, st.agent,
        None if st.outputs is None else dict(st.outputs), st.error, st.progress, st.comp_of,
    )


def workflow_view(wf: WorkflowRun) -> WorkflowView:
    """Copy ``wf`` into a view."""
    return WorkflowView(
        wf.id, wf.template.name, wf.template.version, wf.state, wf.history, wf.priority,
        wf.deadline, dict(wf.data), {sid: _step_view(st) for sid, st in wf.steps.items()},
        tuple(wf.awaiting), tuple(wf.depends_on), tuple(wf.checkpoints),
        wf.rollback is not None, wf.reason,
    )


def agent_view(agent: Agent) -> AgentView:
    """Copy ``agent`` into a view."""
    return AgentView(
        agent.id, agent.kind, tuple(sorted(agent.caps)), agent.online, agent.status,
        agent.node, agent.battery, agent.task, agent.available,
    )
