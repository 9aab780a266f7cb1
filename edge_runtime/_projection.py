"""The facility's state as a projection of its events (DESIGN §4).

``Projection.apply(event)`` is the only code that changes state; the core's ``handle``
decides which events to make and applies each one, and a replay applies the stored ones.
Nothing here reads a clock or iterates a ``set`` (hash order differs between processes):
every collection that is iterated is a list or an insertion-ordered dict, so the same
events give the same state and the same ``snapshot()`` bytes.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from edge_runtime._core_errors import CoreError, TemplateError
from edge_runtime._event import Event
from edge_runtime._machine import STEP_MACHINE, WORKFLOW_MACHINE, WORKFLOW_TERMINAL
from edge_runtime._template import Compensation, Step, Template

__all__ = ["Agent", "Projection", "StepRun", "WorkflowRun"]

_EMPTY: dict[str, Any] = {}


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
        """Sync steps: the participants' agents (``agent=""`` until they arrive)."""
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
        "data",
        "deadline",
        "dependents",
        "depends_on",
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


class Projection:
    """Agents, workflows, resource holds, the allocation queue and the duplicate filters."""

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
        self.transitions = 0
        """Workflow and step state changes applied so far (the benchmark counts them)."""
        self._apply: dict[str, Callable[[WorkflowRun | None, dict[str, Any], Event], None]] = {
            name.removeprefix("_on_"): getattr(self, name)
            for name in dir(self) if name.startswith("_on_")
        }

    # --- reading ----------------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        """Seq of the last event applied (0 before any)."""
        return self._seq

    @property
    def last_hlc(self) -> int:
        """HLC of the last event applied."""
        return self._hlc

    def template(self, ref: str) -> Template:
        """The template ``name`` (newest version) or ``name@version``."""
        try:
            return self._templates[ref]
        except KeyError:
            known = ", ".join(sorted(k for k in self._templates if "@" not in k)) or "none"
            raise TemplateError(f"unknown template {ref!r}; known: {known}") from None

    # --- applying ---------------------------------------------------------------------

    def apply(self, event: Event) -> None:
        """Update the projection with ``event`` (the next in seq order)."""
        if event.seq != self._seq + 1:
            raise CoreError(f"event seq {event.seq} does not follow {self._seq}")
        handler = self._apply.get(event.kind)
        if handler is None:
            raise CoreError(f"unknown event kind {event.kind!r}")
        data = event.data
        wf = self._workflows.get(event.workflow_id) if event.workflow_id else None
        handler(wf, data, event)
        eid = data.get("eid")
        if eid is not None:
            self._remember(self._agents[data["agent"]], eid)
        self._seq = event.seq
        self._hlc = event.hlc

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

    # agents

    def _on_agent_joined(self, _: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        agent = self._agents.get(d["agent"])
        if agent is None or agent.kind != d["kind"]:
            if agent is not None:
                self._idle_remove(agent)
            agent = self._agents[d["agent"]] = Agent(
                d["agent"], d["kind"], tuple(d["caps"]), d["liveness"]
            )
        agent.caps = frozenset(d["caps"])
        agent.liveness = d["liveness"]
        agent.online = True
        self._set_idle(agent)

    def _idle_remove(self, agent: Agent) -> None:
        agent.online = False
        self._set_idle(agent)

    def _on_agent_updated(self, _: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        agent = self._agents[d["agent"]]
        agent.status = d["status"]
        agent.node = d["node"]
        agent.battery = d["battery"]
        agent.mode = d["mode"]
        agent.e_stop = d["e_stop"]
        self._set_idle(agent)

    def _on_agent_lost(self, _: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        self._idle_remove(self._agents[d["agent"]])

    # workflows

    def _on_workflow_created(self, _: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert ev.workflow_id is not None
        template = self.template(f"{d['template']}@{d['version']}")
        wf = WorkflowRun(ev.workflow_id, template, d["priority"], d["deadline"], d["data"], ev.seq)
        self._workflows[wf.id] = wf
        for dep in d["depends_on"]:
            self._link(self._workflows[dep], wf)

    def _link(self, before: WorkflowRun, after: WorkflowRun) -> None:
        before.dependents.append(after.id)
        after.depends_on.append(before.id)

    def _on_workflow_started(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        self._wf_fire(wf, "start")

    def _on_workflow_completed(self, wf: WorkflowRun | None, d: dict[str, Any], e: Event) -> None:
        assert wf is not None
        self._wf_fire(wf, "complete")

    def _end(self, wf: WorkflowRun, event: str, reason: str) -> None:
        for st in wf.steps.values():
            if st.state in ("ready", "allocating"):
                self._dequeue(wf, st)
            self._release(wf, st)
            st.retry_at = None
        wf.awaiting.clear()
        wf.reason = reason
        self._wf_fire(wf, event)

    def _on_workflow_failed(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        self._end(wf, "fail", d["reason"])

    def _on_workflow_cancelled(self, wf: WorkflowRun | None, d: dict[str, Any], e: Event) -> None:
        assert wf is not None
        self._end(wf, "cancel", d["reason"])

    def _on_workflow_paused(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        self._wf_fire(wf, "pause")

    def _on_workflow_resumed(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        self._wf_fire(wf, "resume")

    def _on_workflow_recovered(self, wf: WorkflowRun | None, d: dict[str, Any], e: Event) -> None:
        assert wf is not None
        wf.reason = ""
        self._wf_fire(wf, "recover")

    def _on_dependency_added(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        if "depends_on" in d:
            self._link(self._workflows[d["depends_on"]], wf)
        else:
            st = wf.steps[d["step"]]
            st.preds = (*st.preds, d["after"])

    def _on_checkpoint_taken(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        wf.checkpoints[d["id"]] = d
        while len(wf.checkpoints) > self._max_checkpoints:
            del wf.checkpoints[next(iter(wf.checkpoints))]

    def _on_checkpoint_restored(self, wf: WorkflowRun | None, d: dict[str, Any], e: Event) -> None:
        assert wf is not None
        cp = wf.checkpoints[d["id"]]
        for st in list(wf.steps.values()):
            if st.state in ("ready", "allocating"):
                self._dequeue(wf, st)
            self._release(wf, st)
            if st.comp_of is not None:
                del wf.steps[st.id]
        for sid, (state, attempt, failures, outputs, done_seq) in cp["steps"].items():
            st = wf.steps[sid]
            # Finished steps keep their result; anything in flight starts over.
            st.state = state if state in ("done", "skipped", "compensated") else "pending"
            st.attempt, st.failures, st.outputs, st.done_seq = attempt, failures, outputs, done_seq
            st.retry_at, st.error, st.arrived, st.progress = None, None, [], 0.0
        wf.data = dict(cp["data"])
        wf.awaiting.clear()
        wf.rollback = None
        wf.reason = ""
        self._wf_fire(wf, "restore")

    def _on_compensation_started(self, wf: WorkflowRun | None, d: dict[str, Any], e: Event) -> None:
        assert wf is not None
        wf.rollback = d["then"]
        for st in wf.steps.values():
            if st.state in ("ready", "allocating"):
                self._dequeue(wf, st)
            if st.state not in ("done", "skipped", "compensated", "pending", "failed"):
                self._release(wf, st)
                STEP_MACHINE.fire(st, "requeue")
            st.retry_at = None
        wf.awaiting.clear()
        prev: tuple[str, ...] = ()
        for sid in d["steps"]:
            comp = wf.steps[sid].spec.compensation
            assert comp is not None
            run = StepRun(_compensation_step(sid, comp), prev)
            run.comp_of = sid
            wf.steps[run.id] = run
            prev = (run.id,)
        self._summarise(wf)

    def _on_rollback_finished(self, wf: WorkflowRun | None, d: dict[str, Any], e: Event) -> None:
        assert wf is not None
        wf.rollback = None
        for sid in [s for s, st in wf.steps.items() if st.comp_of is not None]:
            del wf.steps[sid]
        for sid in d["reset"]:
            st = wf.steps[sid]
            self._release(wf, st)
            if st.state != "pending":
                STEP_MACHINE.fire(st, "reset")
            st.outputs, st.done_seq, st.failures, st.error = None, 0, 0, None

    def _on_command_reply(self, _: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        self._commands[d["cmd"]] = None
        if len(self._commands) > self._command_window:
            del self._commands[next(iter(self._commands))]

    # steps

    def _on_step_ready(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        st = wf.steps[d["step"]]
        st.retry_at = None
        STEP_MACHINE.fire(st, "ready")
        self.transitions += 1
        kind = st.spec.kind
        if kind == "wait":
            st.wait_until = d.get("until")
            self._step_fire(wf, st, "execute")
        elif kind == "sync":
            st.arrived = [""] * len(d["agents"])
            st.outputs = {"agents": list(d["agents"])}
            st.timeout_at = d["timeout_at"]
            self._step_fire(wf, st, "execute")
        else:
            self._step_fire(wf, st, "allocate")
            self._enqueue(wf, st)

    def _on_step_assigned(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        st = wf.steps[d["step"]]
        if st.state == "pending":
            st.retry_at = None
            STEP_MACHINE.fire(st, "ready")
            STEP_MACHINE.fire(st, "allocate")
            self.transitions += 2
        else:
            self._dequeue(wf, st)
        agent = self._agents[d["agent"]]
        st.agent = agent.id
        st.attempt = d["attempt"]
        st.timeout_at = d["timeout_at"]
        st.progress = 0.0
        st.avoid = None
        agent.task = (wf.id, st.id)
        self._set_idle(agent)
        for res in st.spec.resources:
            self._holds[res] = (wf.id, st.id)
        self._step_fire(wf, st, "assign")

    def _on_step_accepted(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        self._step_fire(wf, wf.steps[d["step"]], "prepare")

    def _on_step_started(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        st = wf.steps[d["step"]]
        if st.state == "assigned":
            self._step_fire(wf, st, "prepare")
        self._step_fire(wf, st, "execute")

    def _on_step_progress(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        wf.steps[d["step"]].progress = d["progress"]

    def _on_step_done(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        st = wf.steps[d["step"]]
        state = st.state
        if state == "assigned":
            self._step_fire(wf, st, "prepare")
            state = "preparing"
        if state in ("preparing", "ready"):
            self._step_fire(wf, st, "execute")
        self._step_fire(wf, st, "validate")
        self._step_fire(wf, st, "clean_up")
        st.outputs = d["outputs"]
        st.progress = 1.0
        st.done_seq = ev.seq
        self._release(wf, st)
        self._step_fire(wf, st, "finish")
        if st.comp_of is not None:
            self._step_fire(wf, wf.steps[st.comp_of], "compensate")

    def _on_step_failed(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        st = wf.steps[d["step"]]
        if st.state in ("ready", "allocating"):
            self._dequeue(wf, st)
        self._release(wf, st)
        st.error = d["error"]
        if d["counts"]:
            st.failures += 1
        self._step_fire(wf, st, "fail")

    def _on_step_retry(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        st = wf.steps[d["step"]]
        st.retry_at = d["at"]
        if d.get("fresh"):
            st.failures = 0
        if st.id in wf.awaiting:
            wf.awaiting.remove(st.id)
        self._step_fire(wf, st, "retry")

    def _on_step_requeued(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        st = wf.steps[d["step"]]
        if st.state in ("ready", "allocating"):
            self._dequeue(wf, st)
        st.avoid = d.get("avoid")
        self._release(wf, st)
        if st.id in wf.awaiting:
            wf.awaiting.remove(st.id)
            STEP_MACHINE.fire(st, "retry")
        else:
            STEP_MACHINE.fire(st, "requeue")
        self.transitions += 1
        self._summarise(wf)

    def _on_step_skipped(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        st = wf.steps[d["step"]]
        if st.state in ("ready", "allocating"):
            self._dequeue(wf, st)
        if st.id in wf.awaiting:
            wf.awaiting.remove(st.id)
        st.error = d["reason"]
        self._step_fire(wf, st, "skip")

    def _on_step_decided(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        st = wf.steps[d["step"]]
        for event in ("ready", "execute", "validate", "clean_up"):
            self._step_fire(wf, st, event)
        st.outputs = {"result": d["result"]}
        st.done_seq = ev.seq
        self._step_fire(wf, st, "finish")

    def _on_sync_arrived(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        st = wf.steps[d["step"]]
        assert st.outputs is not None
        st.arrived[st.outputs["agents"].index(d["agent"])] = d["agent"]

    def _on_operator_needed(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        wf.awaiting.append(d["step"])


def _compensation_step(step_id: str, comp: Compensation) -> Step:
    return Step(
        id=f"{step_id}.undo", kind=comp.kind, action=comp.action,
        capabilities=comp.capabilities, location=comp.location, params=comp.params,
        timeout_s=comp.timeout_s,
    )


def is_terminal(wf: WorkflowRun) -> bool:
    """Whether the workflow ended (completed, failed or cancelled)."""
    return wf.state in WORKFLOW_TERMINAL
