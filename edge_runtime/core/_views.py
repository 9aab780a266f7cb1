"""Read-only views of the projection for the shell, the hub and tests, and the final record
of an archived workflow (the same view, as msgpack bytes in the store's ``workflows`` family).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack

from edge_runtime.core._errors import CoreError
from edge_runtime.core._state import Agent, FacilityState, StepRun, WorkflowRun
from edge_runtime.core._waiting import WAITING_STATES, waiting_for

__all__ = [
    "AgentView", "StepView", "WorkflowView", "agent_view", "decode_workflow_record",
    "encode_workflow_record", "workflow_view",
]

_RECORD_FORMAT = 1

Dependency = tuple[str, str, dict[str, Any], str | None, str]
"""A typed dependency as a view shows it (``WorkflowView.dependencies``)."""


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
    waiting_for: str | None = None
    """Why a step waiting for an agent has none yet (``_waiting``: "no robot agent with capabilities
    lift has joined", a held resource …); ``None`` otherwise, and in archived records."""


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
    created_at: float | None = None
    """Unix seconds of the creating event (from its hybrid logical clock)."""
    ended_at: float | None = None
    """Unix seconds of the event that ended it; ``None`` while it runs."""
    coordination: str = "direct"
    """Its allocation protocol (docs/coordination.md)."""
    allowed_agents: tuple[str, ...] | None = None
    """Only these agents may take part in it; ``None``: any able agent."""
    dependencies: tuple[Dependency, ...] = ()
    """Its typed and external dependencies (``depends_on`` lists the plain ones):
    ``(depends_on, type, conditions, facility | None, status)``, status ``waiting``,
    ``released``, ``failed`` or ``skipped``."""
    labels: dict[str, str] | None = None
    """What the operator tagged it with (``create_workflow.labels``)."""


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
    queued: tuple[tuple[str, str], ...] = ()
    """``(workflow_id, step_id)`` queued on it, next first (work queues)."""
    lent_to: str | None = None
    """The facility it is lent to (``_lending``): no new work here meanwhile."""
    mode: str = "automatic"
    """Its operating mode as it last reported it (a VDA 5050 AGV's ``operatingMode``)."""
    e_stop: bool = False
    """Its emergency stop is engaged (it said so)."""
    bids: bool = True
    """It answers calls for proposals itself; ``False``: the edge bids for it (a VDA 5050
    AGV always, or a simple device)."""


def _step_view(st: StepRun, waiting: str | None = None) -> StepView:
    return StepView(
        st.id, st.spec.kind, st.state, st.attempt, st.failures, st.agent,
        None if st.outputs is None else dict(st.outputs), st.error, st.progress, st.comp_of,
        waiting,
    )


def _seconds(hlc: int) -> float | None:
    """The wall time an HLC carries (milliseconds in its upper bits); ``None`` for 0."""
    return (hlc >> 16) / 1000 if hlc else None


def workflow_view(wf: WorkflowRun, state: FacilityState | None = None) -> WorkflowView:
    """Copy ``wf`` into a view; with the facility's ``state``, each step waiting for an agent
    says why (``StepView.waiting_for``)."""
    steps = {sid: _step_view(st, None if state is None or st.state not in WAITING_STATES
                             else waiting_for(state, wf, st))
             for sid, st in wf.steps.items()}
    return WorkflowView(
        wf.id, wf.template.name, wf.template.version, wf.state, wf.history, wf.priority,
        wf.deadline, dict(wf.data), steps,
        tuple(wf.awaiting), tuple(wf.depends_on), tuple(wf.checkpoints),
        wf.rollback is not None, wf.reason, _seconds(wf.created_hlc), _seconds(wf.ended_hlc),
        wf.coordination, None if wf.allowed_agents is None else tuple(wf.allowed_agents),
        _dependencies(wf.deps), None if wf.labels is None else dict(wf.labels),
    )


def _dependencies(deps: list[list[Any]] | None) -> tuple[Dependency, ...]:
    """Copies of ``WorkflowRun.deps`` entries (or of a record's)."""
    return tuple((d[0], d[1], dict(d[2]), d[3], d[4]) for d in deps or ())


def encode_workflow_record(wf: WorkflowRun) -> bytes:
    """The final record of ``wf`` (what ``Archive`` stores): its view as msgpack."""
    steps = [
        [st.id, st.spec.kind, st.state, st.attempt, st.failures, st.agent, st.outputs,
         st.error, st.progress, st.comp_of]
        for st in wf.steps.values()
    ]
    return msgpack.packb([
        _RECORD_FORMAT, wf.id, wf.template.name, wf.template.version, wf.state, wf.history,
        wf.priority, wf.deadline, wf.data, steps, wf.awaiting, wf.depends_on,
        list(wf.checkpoints), wf.rollback is not None, wf.reason, _seconds(wf.created_hlc),
        _seconds(wf.ended_hlc), wf.coordination, wf.allowed_agents,
        # Optional tail: typed dependencies, then labels (only what is there is written).
        *([wf.deps] if wf.deps is not None or wf.labels else []),
        *([wf.labels] if wf.labels else []),
    ], use_bin_type=True)


def decode_workflow_record(raw: bytes) -> WorkflowView:
    """A ``WorkflowView`` from ``encode_workflow_record`` bytes; ``CoreError`` if they are not."""
    try:
        row = msgpack.unpackb(raw, raw=False, strict_map_key=False)
        if not isinstance(row, list) or row[0] != _RECORD_FORMAT:
            raise ValueError(f"format {row[0] if isinstance(row, list) else '?'}")
        (_, wid, template, version, state, history, priority, deadline, data, steps,
         awaiting, depends_on, checkpoints, rolling_back, reason, created_at, ended_at) = row[:17]
        # Records written before coordination existed end there: direct, any agent.
        coordination, allowed = row[17:19] if len(row) > 17 else ("direct", None)
        return WorkflowView(
            wid, template, version, state, history, priority, deadline, data,
            {s[0]: StepView(*s) for s in steps}, tuple(awaiting), tuple(depends_on),
            tuple(checkpoints), rolling_back, reason, created_at, ended_at, coordination,
            None if allowed is None else tuple(allowed),
            _dependencies(row[19] if len(row) > 19 else None),
            row[20] if len(row) > 20 else None,
        )
    except Exception as exc:  # msgpack and unpacking raise many types: all mean "not a record"
        raise CoreError(f"not a workflow record: {exc}") from None


def agent_view(agent: Agent) -> AgentView:
    """Copy ``agent`` into a view."""
    return AgentView(
        agent.id, agent.kind, tuple(sorted(agent.caps)), agent.online, agent.status,
        agent.node, agent.battery, agent.task, agent.available, tuple(agent.queued),
        agent.lent_to, agent.mode, agent.e_stop, agent.bids,
    )
