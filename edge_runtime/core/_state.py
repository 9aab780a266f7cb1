"""What the facility's projection holds (DESIGN §4): agents, workflow runs, step runs and
the indexes kept beside them (idle agents, allocation queue, resource holds, duplicate filters).

``ProjectionState`` owns that data and the primitive mutations that keep the indexes
consistent (``_release``, ``_set_idle``, ``_enqueue`` …); how each *event* changes it is
``_projection.Projection``. Nothing here reads a clock or iterates a ``set`` (hash order
differs between processes): every collection that is iterated is a list or an
insertion-ordered dict, so the same events give the same state.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Mapping
from typing import Any

from edge_runtime.core._errors import TemplateError
from edge_runtime.core._machine import STEP_MACHINE, WORKFLOW_MACHINE, WORKFLOW_TERMINAL
from edge_runtime.core._template import Compensation, Step, Template

__all__ = [
    "Agent", "ProjectionState", "StepRun", "WorkflowRun", "_compensation_step", "is_terminal",
]


class Agent:
    """What the edge knows of one agent (read-only outside the projection)."""

    __slots__ = (
        "battery", "caps", "e_stop", "id", "kind", "liveness", "mode", "node", "online",
        "recent", "recent_ids", "status", "task",
    )

    def __init__(self, agent_id: str, kind: str, caps: tuple[str, ...], liveness: float) -> None:
        self.id = agent_id
        self.kind = kind
        self.caps: frozenset[str] = frozenset(caps)
        self.liveness = liveness
        """Seconds within which a state message must come, or the agent is lost."""
        self.online = True
        self.status = "idle"
        self.node: str | None = None
        self.battery: float | None = None
        self.mode = "automatic"
        self.e_stop = False
        self.task: tuple[str, str] | None = None
        """``(workflow_id, step_id)`` the agent is assigned to, if any."""
        self.recent: deque[str] = deque()
        """Last event ids from this agent, oldest first (duplicate filter window)."""
        self.recent_ids: dict[str, None] = {}

    @property
    def available(self) -> bool:
        """Online, unassigned, able and in automatic mode."""
        return (
            self.online and self.task is None and not self.e_stop and self.mode == "automatic"
            and self.status in ("idle", "busy")
        )


class StepRun:
    """One step of one workflow: its lifecycle state and attempt bookkeeping."""

    __slots__ = (
        "agent",
        "arrived",
        "attempt",
        "avoid",
        "comp_of",
        "done_seq",
        "error",
        "failures",
        "history",
        "id",
        "last_agent",
        "outputs",
        "preds",
        "progress",
        "retry_at",
        "spec",
        "state",
        "timeout_at",
        "wait_until",
    )

    def __init__(self, spec: Step, preds: tuple[str, ...]) -> None:
        self.spec = spec
        self.id: str = spec.id
        self.state = "pending"
        self.history: str | None = None
        self.preds = preds
        """Steps that must end first (the template's, plus any added later)."""
        self.attempt = 0
        """Assignments made so far; ``Assign.attempt`` of the current one."""
        self.failures = 0
        """Failures counted against ``retry.max_attempts`` (a lost agent is not one)."""
        self.agent: str | None = None
        self.outputs: dict[str, Any] | None = None
        self.error: str | None = None
        self.retry_at: float | None = None
        self.timeout_at: float | None = None
        self.wait_until: float | None = None
        self.progress = 0.0
        self.arrived: list[str] = []
        """Sync steps: agents that arrived, in order (possibly before the barrier opened)."""
        self.done_seq = 0
        """Seq of the event that finished the step (orders a saga rollback)."""
        self.avoid: str | None = None
        """Agent not to give the step to again (operator ``reassign``)."""
        self.comp_of: str | None = None
        """For a compensation step: the step it undoes."""
        self.last_agent: str | None = None
        """Agent that last held the step (a sync point waits for it; reassign avoids it)."""


class WorkflowRun:
    """One workflow instance."""

    __slots__ = (
        "awaiting",
        "checkpoints",
        "created_hlc",
        "data",
        "deadline",
        "dependents",
        "depends_on",
        "ended_hlc",
        "history",
        "id",
        "order",
        "priority",
        "reason",
        "rollback",
        "state",
        "steps",
        "template",
    )

    def __init__(
        self, workflow_id: str, template: Template, priority: int, deadline: float | None,
        data: dict[str, Any], order: int,
    ) -> None:
        self.id = workflow_id
        self.template = template
        self.state = WORKFLOW_MACHINE.initial
        self.history: str | None = None
        self.priority = priority
        self.deadline = deadline
        self.data = data
        self.order = order
        """Seq of the creating event: older first among equal priorities."""
        self.steps: dict[str, StepRun] = {
            s.id: StepRun(s, template.predecessors(s.id)) for s in template.steps
        }
        self.awaiting: list[str] = []
        """Steps whose retries are exhausted, waiting for an operator."""
        self.checkpoints: dict[str, dict[str, Any]] = {}
        self.depends_on: list[str] = []
        self.dependents: list[str] = []
        self.rollback: str | None = None
        """While compensating: what follows (``abort`` or ``retry``)."""
        self.reason = ""
        """Why the workflow failed or was cancelled."""
        self.created_hlc = 0
        """HLC of the creating event (its time: ``hlc >> 16`` ms)."""
        self.ended_hlc = 0
        """HLC of the event that ended it (completed, failed, cancelled); 0 while it runs."""

    def step_key(self, st: StepRun) -> tuple[int, int, int, str, str]:
        """Allocation order: higher priority, older workflow, earlier step first."""
        index = self.template._index.get(st.id, 1000 + len(st.id))
        return (-self.priority, self.order, index, self.id, st.id)


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


class ProjectionState:
    """Agents, workflows, resource holds, the allocation queue and the duplicate filters.

    Subclassed by ``Projection`` (the event appliers); never changed except through it.
    """

    def __init__(
        self, facility: str, templates: Mapping[str, Template], dedup_window: int,
        command_window: int, max_checkpoints: int,
    ) -> None:
        self.facility = facility
        self._templates: dict[str, Template] = {}
        for template in templates.values():
            self._templates[template.key] = template
            best = self._templates.get(template.name)
            if best is None or best.version < template.version:
                self._templates[template.name] = template
        self._dedup_window = dedup_window
        self._command_window = command_window
        self._max_checkpoints = max_checkpoints
        self._seq = 0
        self._hlc = 0
        self._agents: dict[str, Agent] = {}
        self._idle: dict[str, list[str]] = {}
        """Available agents by kind, sorted by id."""
        self._workflows: dict[str, WorkflowRun] = {}
        self._holds: dict[str, tuple[str, str]] = {}
        """Resource name -> (workflow, step) holding it."""
        self._queue: list[tuple[int, int, int, str, str]] = []
        """Steps waiting for an agent or a resource, in allocation order."""
        self._commands: dict[str, None] = {}
        """Recent hub command ids, oldest first (duplicate filter window)."""
        self._archived: dict[str, str] = {}
        """Archived workflows, in archive order: id -> ``completed`` or ``cancelled``.

        All that stays in memory of a finished workflow (its record is in the store): enough
        to refuse a duplicate id and to start a workflow that depends on it."""
        self.transitions = 0
        """Workflow and step state changes applied so far (the benchmark counts them)."""

    # --- reading ----------------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        """Seq of the last event applied (0 before any)."""
        return self._seq

    @property
    def last_hlc(self) -> int:
        """HLC of the last event applied."""
        return self._hlc

    def _state_of(self, workflow_id: str) -> str | None:
        """State of a live or archived workflow; ``None`` if there never was one."""
        wf = self._workflows.get(workflow_id)
        return wf.state if wf is not None else self._archived.get(workflow_id)

    def template(self, ref: str) -> Template:
        """The template ``name`` (newest version) or ``name@version``."""
        try:
            return self._templates[ref]
        except KeyError:
            known = ", ".join(sorted(k for k in self._templates if "@" not in k)) or "none"
            raise TemplateError(f"unknown template {ref!r}; known: {known}") from None

    # --- keeping the indexes consistent -------------------------------------------------

    def _remember(self, agent: Agent, eid: str) -> None:
        agent.recent.append(eid)
        agent.recent_ids[eid] = None
        if len(agent.recent) > self._dedup_window:
            del agent.recent_ids[agent.recent.popleft()]

    def _step_fire(self, wf: WorkflowRun, st: StepRun, event: str) -> None:
        STEP_MACHINE.fire(st, event)
        self.transitions += 1
        self._summarise(wf)

    def _summarise(self, wf: WorkflowRun) -> None:
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
        if state == "paused":
            wf.history = _RANK_DEST[rank]
        elif state.startswith("active.") and state != _RANK_DEST[rank]:
            WORKFLOW_MACHINE.fire(wf, _RANK_EVENT[rank])
            self.transitions += 1

    def _wf_fire(self, wf: WorkflowRun, event: str) -> None:
        WORKFLOW_MACHINE.fire(wf, event)
        self.transitions += 1

    def _set_idle(self, agent: Agent) -> None:
        idle = self._idle.setdefault(agent.kind, [])
        i = bisect.bisect_left(idle, agent.id)
        present = i < len(idle) and idle[i] == agent.id
        if agent.available and not present:
            idle.insert(i, agent.id)
        elif present and not agent.available:
            del idle[i]

    def _enqueue(self, wf: WorkflowRun, st: StepRun) -> None:
        bisect.insort(self._queue, wf.step_key(st))

    def _dequeue(self, wf: WorkflowRun, st: StepRun) -> None:
        key = wf.step_key(st)
        i = bisect.bisect_left(self._queue, key)
        if i < len(self._queue) and self._queue[i] == key:
            del self._queue[i]

    def _release(self, wf: WorkflowRun, st: StepRun) -> None:
        """Free the step's agent and resources, and forget its timers."""
        if st.agent is not None:
            agent = self._agents[st.agent]
            if agent.task == (wf.id, st.id):
                agent.task = None
                self._set_idle(agent)
            st.last_agent = st.agent
            st.agent = None
        for res in st.spec.resources:
            if self._holds.get(res) == (wf.id, st.id):
                del self._holds[res]
        st.timeout_at = None
        st.wait_until = None

    def _idle_remove(self, agent: Agent) -> None:
        agent.online = False
        self._set_idle(agent)


def _compensation_step(step_id: str, comp: Compensation) -> Step:
    return Step(
        id=f"{step_id}.undo", kind=comp.kind, action=comp.action,
        capabilities=comp.capabilities, location=comp.location, params=comp.params,
        timeout_s=comp.timeout_s,
    )


def is_terminal(wf: WorkflowRun) -> bool:
    """Whether the workflow ended (completed, failed or cancelled)."""
    return wf.state in WORKFLOW_TERMINAL
