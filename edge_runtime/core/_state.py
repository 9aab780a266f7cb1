"""The facility's state as plain data (docs/design.md §4): ``FacilityState`` and what it holds.

One explicit object: agents, workflow runs with their step runs, and the indexes kept
beside them (idle agents, the allocation queue, resource holds, duplicate filters). Events
change it through ``Projection.apply`` only; snapshots serialise it and replay rebuilds it.
The few methods here keep the indexes consistent with the data (like a sorted container);
they never decide anything.

Nothing here reads a clock or iterates a ``set`` (hash order differs between processes):
every collection that is iterated is a list or an insertion-ordered dict, so the same
events give the same state.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from typing import Any

from edge_runtime.core._auction_model import Auction
from edge_runtime.core._errors import TemplateError
from edge_runtime.core._parties import Agent, Conflict
from edge_runtime.core._template import Compensation, Step, Template

__all__ = [
    "Agent", "Conflict", "FacilityState", "QueueKey", "StepRun", "WorkflowRun",
    "compensation_step",
]

QueueKey = tuple[int, int, int, str, str]
"""Allocation order of a waiting step: (-priority, workflow order, step position, ids)."""


class StepRun:
    """One step of one workflow: its lifecycle state and attempt bookkeeping."""

    __slots__ = (
        "agent",
        "arrived",
        "assigned_at",
        "attempt",
        "avoid",
        "ballot",
        "comp_of",
        "done_seq",
        "error",
        "failures",
        "history",
        "id",
        "last_agent",
        "members_done",
        "outputs",
        "passes",
        "preds",
        "progress",
        "queued_on",
        "retry_at",
        "seen_version",
        "spec",
        "stall_at",
        "state",
        "subs",
        "team",
        "timeout_at",
        "unconfirmed",
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
        self.stall_at: float | None = None
        """When the agent holding the step is late (``CoreConfig.stall_factor``)."""
        self.unconfirmed: list[str] | None = None
        """``[command_id, what, then]`` of a ``cancel`` or ``pause`` sent to the step's agent
        and not yet confirmed (``then``: ``requeue`` or ``avoid`` after a cancel)."""
        self.queued_on: str | None = None
        """The busy agent this waiting step is queued on (``_workqueues``); ``None`` while
        it waits in the facility queue (or does not wait)."""
        self.assigned_at: float | None = None
        """When the step was last assigned (its event's HLC time): the start of the holder's
        predicted window (``_contention``)."""
        self.seen_version = 0
        """The workflow's ``data_version`` when the step was last assigned: a write made
        after it was concurrent with this step (``_consistency``)."""
        self.team: dict[str, str] = {}
        """Coalition steps: role -> agent of the members holding it now (``agent`` is the
        lead among them); empty while unallocated."""
        self.members_done: dict[str, dict[str, Any]] = {}
        """Coalition steps: members that reported done this attempt -> their outputs."""
        self.passes = 0
        """Coalition steps: times it could not be formed while some agent it could use was
        free (``_coalition_fair``); reset when it is allocated."""
        self.ballot: dict[str, Any] | None = None
        """Voted decision steps: the last vote (``_consensus``): ``id``, ``voters``,
        ``quorum`` (votes needed), ``deadline``, ``default``, ``votes`` (agent -> choice)
        and, once closed, ``result`` and ``reason``."""
        self.subs: dict[str, list[str]] = {}
        """Composite steps: sub-step id -> ``[member, "assigned" | "done"]``, in the order
        the lead gave them (``_hierarchy``); emptied when the step's attempt ends."""


class WorkflowRun:
    """One workflow instance."""

    __slots__ = (
        "allowed_agents",
        "awaiting",
        "checkpoints",
        "coordination",
        "created_hlc",
        "data",
        "data_version",
        "deadline",
        "dependents",
        "depends_on",
        "deps",
        "ended_hlc",
        "held",
        "history",
        "id",
        "labels",
        "last_hlc",
        "last_seq",
        "order",
        "priority",
        "reason",
        "rollback",
        "spans",
        "state",
        "steps",
        "template",
        "writers",
    )

    def __init__(
        self, workflow_id: str, template: Template, priority: int, deadline: float | None,
        data: dict[str, Any], order: int,
    ) -> None:
        self.id = workflow_id
        self.template = template
        self.state = "pending"
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
        """Plain sequential dependencies on workflows of this facility."""
        self.dependents: list[str] = []
        """Workflows that depend on this one here (plainly or typed)."""
        self.labels: dict[str, str] | None = None
        """What the operator tagged it with (``None``: nothing; saves memory)."""
        self.deps: list[list[Any]] | None = None
        """Typed and external dependencies (``_workflow_deps``): ``[depends_on, type,
        conditions, facility | None, status]`` each; ``None`` (most workflows) if none."""
        self.rollback: str | None = None
        """While compensating: what follows (``abort`` or ``retry``)."""
        self.reason = ""
        """Why the workflow failed or was cancelled."""
        self.created_hlc = 0
        """HLC of the creating event (its time: ``hlc >> 16`` ms)."""
        self.ended_hlc = 0
        """HLC of the event that ended it (completed, failed, cancelled); 0 while it runs."""
        self.coordination: str = template.coordination
        """Its allocation protocol (``_template.Protocol``): the template's unless the
        creating command or a ``set_coordination`` chose another."""
        self.allowed_agents: list[str] | None = None
        """Only these agents may take part in it (``None``: any able agent)."""
        self.data_version = 0
        """Writes applied to ``data`` by its steps (``_consistency``)."""
        self.writers: dict[str, list[Any]] = {}
        """Variable -> ``[step, data_version of the write]`` of its last write."""
        self.held: dict[str, list[Any]] = {}
        """Conflict id -> ``[variable, step, value, other step]``: a write held for an
        operator."""
        self.last_seq = 0
        """Seq of the last event about it (0: its creating event, ``order``)."""
        self.last_hlc = 0
        """HLC of the last event about it (0: its creating event's, ``created_hlc``)."""
        self.spans: dict[str, list[str]] = {}
        """Resources it holds across steps (``_resources``): name -> ``[step that acquired
        it, step whose end releases it]``. ``release`` of a step leaves these held."""

    def step_key(self, st: StepRun) -> QueueKey:
        """Allocation order: higher priority, older workflow, earlier step first."""
        return (-self.priority, self.order, self.template.position(st.id), self.id, st.id)


class FacilityState:
    """Everything the facility's events say: the one state object of a core."""

    def __init__(self, facility: str, templates: Mapping[str, Template]) -> None:
        self.facility = facility
        self.templates: dict[str, Template] = {}
        """By ``name@version``, and by ``name`` for the newest version."""
        for template in templates.values():
            self.templates[template.key] = template
            best = self.templates.get(template.name)
            if best is None or best.version < template.version:
                self.templates[template.name] = template
        self.seq = 0
        """Seq of the last event applied (0 before any)."""
        self.hlc = 0
        """HLC of the last event applied."""
        self.agents: dict[str, Agent] = {}
        self.idle: dict[str, list[str]] = {}
        """Available agents by kind, sorted by id."""
        self.workflows: dict[str, WorkflowRun] = {}
        """Workflows in memory (not archived), oldest first."""
        self.holds: dict[str, tuple[str, str]] = {}
        """Resource name -> (workflow, step) holding it."""
        self.queue: list[QueueKey] = []
        """Steps waiting for an agent or a resource, in allocation order."""
        self.commands: dict[str, int] = {}
        """Recent hub command ids, oldest first (duplicate filter window), with the seq of
        their ``command_reply`` event (0 if unknown: read from an older snapshot)."""
        self.archived: dict[str, str] = {}
        """Archived workflows, in archive order: id -> ``completed`` or ``cancelled``.

        All that stays in memory of a finished workflow (its record is in the store): enough
        to refuse a duplicate id and to start a workflow that depends on it."""
        self.transitions = 0
        """Workflow and step state changes applied so far (the benchmark counts them)."""
        self.conflicts: dict[str, Conflict] = {}
        """Conflicts by id, oldest first: every open one and the latest resolved ones."""
        self.open_conflicts: dict[str, Conflict] = {}
        """Conflicts not yet resolved, by key."""
        self.deadlines = 0
        self.starving: list[tuple[str, str]] = []
        """Coalition steps passed over ``CoreConfig.team_patience`` times, oldest first:
        steps queued after them leave them the agents they can use (``_coalition_fair``)."""
        """Workflows in memory with a deadline (the temporal rules look only if any)."""
        self.auctions: dict[str, Auction] = {}
        """Open auctions by call-for-proposals id, oldest first (``_auction``)."""
        self.auction_of: dict[tuple[str, str], str] = {}
        """``(workflow, step)`` -> its open auction's id (an index of ``auctions``)."""
        self.agent_queued = 0
        """Steps queued on busy agents (``Agent.queued``), all agents together: 0 lets
        allocation skip looking for queued work (``_workqueues``)."""
        self.lent_resources: dict[str, str] = {}
        """Resource name -> the facility it is lent to (``_lending``): local steps needing
        it wait as if it were held."""

    # --- reading ----------------------------------------------------------------------

    def state_of(self, workflow_id: str) -> str | None:
        """State of a live or archived workflow; ``None`` if there never was one."""
        wf = self.workflows.get(workflow_id)
        return wf.state if wf is not None else self.archived.get(workflow_id)

    def template(self, ref: str) -> Template:
        """The template ``name`` (newest version) or ``name@version``."""
        try:
            return self.templates[ref]
        except KeyError:
            known = ", ".join(sorted(k for k in self.templates if "@" not in k)) or "none"
            raise TemplateError(f"unknown template {ref!r}; known: {known}") from None

    # --- keeping the indexes consistent -------------------------------------------------

    def set_idle(self, agent: Agent) -> None:
        """Put ``agent`` in, or take it out of, the idle list of its kind."""
        idle = self.idle.setdefault(agent.kind, [])
        i = bisect.bisect_left(idle, agent.id)
        present = i < len(idle) and idle[i] == agent.id
        if agent.available and not present:
            idle.insert(i, agent.id)
        elif present and not agent.available:
            del idle[i]

    def enqueue(self, wf: WorkflowRun, st: StepRun) -> None:
        """``st`` waits for an agent or a resource."""
        bisect.insort(self.queue, wf.step_key(st))

    def dequeue(self, wf: WorkflowRun, st: StepRun) -> None:
        """``st`` no longer waits (no-op if it did not)."""
        if st.queued_on is not None:  # queued on a busy agent, not in the facility queue
            self.agents[st.queued_on].queued.remove((wf.id, st.id))
            self.agent_queued -= 1
            st.queued_on = None
            return
        key = wf.step_key(st)
        i = bisect.bisect_left(self.queue, key)
        if i < len(self.queue) and self.queue[i] == key:
            del self.queue[i]

    def release(self, wf: WorkflowRun, st: StepRun) -> None:
        """Free the step's agent and resources, and forget its timers."""
        if st.agent is not None:
            agent = self.agents[st.agent]
            if agent.task == (wf.id, st.id):
                agent.task = None
                self.set_idle(agent)
            st.last_agent = st.agent
            st.agent = None
        spans = wf.spans
        for res in st.spec.resources:
            if self.holds.get(res) == (wf.id, st.id) and res not in spans:
                del self.holds[res]
        if spans and not st.done_seq:  # it never finished: the spans it began are undone
            for res in [r for r, span in spans.items() if span[0] == st.id]:
                del spans[res]
                if self.holds.get(res, ("",))[0] == wf.id:
                    del self.holds[res]
        st.timeout_at = None
        st.wait_until = None
        st.stall_at = None
        if st.team:  # a coalition step: its other members are freed too
            for aid in st.team.values():
                member = self.agents[aid]
                if member.task == (wf.id, st.id):
                    member.task = None
                    self.set_idle(member)
            st.team = {}
        if st.subs:  # a composite step: members still on a sub-step of it are freed
            for sub_id, (aid, _) in st.subs.items():
                member = self.agents[aid]
                if member.sub_task == (wf.id, st.id, sub_id):
                    member.sub_task = None
                    self.set_idle(member)
            st.subs = {}


def compensation_step(step_id: str, comp: Compensation) -> Step:
    """The step that undoes ``step_id`` (``<id>.undo``), from its template's compensation."""
    return Step(
        id=f"{step_id}.undo", kind=comp.kind, action=comp.action,
        capabilities=comp.capabilities, location=comp.location, params=comp.params,
        timeout_s=comp.timeout_s,
    )
