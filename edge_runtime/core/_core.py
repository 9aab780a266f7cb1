"""``Core``: the sans-IO workflow engine of one facility (docs/design.md §3-§6), by composition.

The core is one explicit state object (``FacilityState``), the ``Projection`` that alone
changes it, and components that each own one concern. ``handle(input, now)`` makes a
``Context`` (the state, ``now``, an effect sink), gives it to the component that takes the
input, and returns the effects: ``Append`` for every event, with the ``Publish``/
``SetTimer``/``Archive`` effects in the order the decisions made them.

To add a concern (auctions, conflict detection …): write a component class in its own
module that takes the collaborators it needs and returns ``handlers()`` for the inputs it
takes; build it in ``Core.__init__`` and add it to ``self.components``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from edge_runtime.core._agents import Agents
from edge_runtime.core._allocation import Allocation
from edge_runtime.core._archive import Archiver
from edge_runtime.core._auction import Auctions
from edge_runtime.core._batch import BatchAllocation
from edge_runtime.core._battery import BatteryRules, battery_rules
from edge_runtime.core._coalition import Coalitions
from edge_runtime.core._coalition_fair import TeamMatcher
from edge_runtime.core._commands import HubCommands
from edge_runtime.core._config import CoreConfig
from edge_runtime.core._confirm import Confirmations
from edge_runtime.core._conflict import Conflicts, ConflictView, conflict_view
from edge_runtime.core._consensus import Consensus
from edge_runtime.core._consistency import ConsistencyRules
from edge_runtime.core._contention import Contention
from edge_runtime.core._context import Context
from edge_runtime.core._deadlock import Deadlocks
from edge_runtime.core._effects import Effect
from edge_runtime.core._errors import CoreError
from edge_runtime.core._event import Event
from edge_runtime.core._flow import Flow
from edge_runtime.core._hierarchy import Hierarchy
from edge_runtime.core._leader import Leaders
from edge_runtime.core._lifecycle import Lifecycle
from edge_runtime.core._machine import Machine
from edge_runtime.core._projection import Projection
from edge_runtime.core._recovery import Recovery
from edge_runtime.core._reports import StepReports
from edge_runtime.core._resources import Resources
from edge_runtime.core._snapshot import dump_state, load_state
from edge_runtime.core._state import FacilityState
from edge_runtime.core._strategies import Strategies
from edge_runtime.core._sync import SyncPoints
from edge_runtime.core._template import Template
from edge_runtime.core._temporal import TemporalRules
from edge_runtime.core._timers import Restarted, TimerFired, Timers, armed_timers
from edge_runtime.core._views import AgentView, WorkflowView, agent_view, workflow_view
from edge_runtime.core._workqueues import WorkQueues
from topics import (
    AgentConn,
    AgentState,
    Bid,
    CommandAck,
    HubCommand,
    StepAccepted,
    StepDone,
    StepFailed,
    StepProgress,
    StepStarted,
    SubStepAssigned,
    SubStepDone,
    SyncArrival,
    Vote,
)

__all__ = ["Core", "Input"]

Input = (
    AgentConn | AgentState | Bid | StepAccepted | StepStarted | StepProgress | StepDone
    | StepFailed | SyncArrival | CommandAck | HubCommand | TimerFired | Restarted
    | Vote | SubStepAssigned | SubStepDone
)
"""Everything ``Core.handle`` accepts."""

_DEFAULT_CONFIG = CoreConfig()


class Core:
    """The deterministic workflow engine of one facility."""

    def __init__(
        self, facility: str, templates: Mapping[str, Template] = {},
        *, config: CoreConfig = _DEFAULT_CONFIG,
    ) -> None:
        self.config = config
        self.state = FacilityState(facility, templates)
        """Everything the events say (read it; only ``apply`` changes it)."""
        self.lifecycle = Lifecycle(self.state)
        self.projection = Projection(
            self.state, self.lifecycle, dedup_window=config.dedup_window,
            command_window=config.command_window, max_checkpoints=config.max_checkpoints,
        )
        # The components, each one concern; collaborators are passed in explicitly. Where
        # two need each other (allocation hands steps to coalitions and auctions, which
        # assign through it) the later one is attached to the earlier after it is built.
        allocation = Allocation(config.cost, config.stall_factor)
        allocation.resources = Resources(config.resource_order)  # acquisition order
        allocation.batch = BatchAllocation(allocation, config.batch_window_s)  # (_batch)
        if config.max_queued_per_agent > 0 or any(  # work queues on busy agents
                t.allocation.max_queued_per_agent for t in templates.values()):
            allocation.queues = WorkQueues(allocation, config.max_queued_per_agent,
                                           config.prefer_idle)
        sync = SyncPoints()
        flow = Flow(allocation, sync)
        recovery = Recovery(flow, allocation, sync,
                            manual_intervention=config.manual_intervention)
        flow.recovery = recovery  # failures while starting steps
        conflicts = Conflicts(config.exclusive_zones)
        self.temporal = TemporalRules(conflicts)
        self.consistency = ConsistencyRules(conflicts, config.concurrent_write,
                                            config.stale_command_s)
        self.battery: BatteryRules | None = battery_rules(config, conflicts, allocation)
        allocation.battery = self.battery
        agents = Agents(flow, allocation, conflicts, liveness_factor=config.liveness_factor,
                        battery_delta=config.battery_delta)
        confirmations = Confirmations(flow, allocation, sync, conflicts)
        teams = Coalitions(allocation, flow, recovery,
                           TeamMatcher(config.cost, config.team_patience), Leaders(config.cost))
        allocation.teams = agents.teams = teams  # coalition steps, all or none (_coalition)
        consensus = Consensus(flow)
        flow.consensus = consensus  # voted decision steps (_consensus)
        self.auctions = Auctions(allocation, flow, conflicts, confirmations, agents, config)
        allocation.auctions = self.auctions  # auction_based steps (_auction)
        self.contention = Contention(conflicts, Strategies(  # contention rules (_contention)
            conflicts, allocation, confirmations, config.cost, config.conflict_strategies))
        self.deadlocks = Deadlocks(allocation.resources, flow, allocation, conflicts,
                                   confirmations)  # the wait-for graph (_deadlock)
        self.archiver = Archiver(enabled=config.archive_terminal)
        reports = StepReports(agents, flow, allocation, sync, recovery, confirmations)
        reports.auctions, reports.teams, reports.consistency = (
            self.auctions, teams, self.consistency)
        commands = HubCommands(self.lifecycle, flow, allocation, sync, recovery, confirmations,
                               conflicts)
        commands.consistency = self.consistency
        self.workflow_deps = commands.deps
        timers = Timers(agents, flow, allocation, recovery, self.temporal)
        timers.auctions, timers.consensus = self.auctions, consensus
        self.components: tuple[Any, ...] = (
            agents, reports, confirmations, commands, timers, consensus, Hierarchy(allocation),
            # After ``confirmations``: it takes CommandAck first (a refused award is a
            # decline) and passes the rest on.
            self.auctions,
        )
        """The input-handling components, in the order their handlers are registered."""
        self._handlers: dict[type, Callable[[Context, Any], None]] = {}
        for component in self.components:
            self._handlers.update(component.handlers())

    @property
    def facility(self) -> str:
        """The facility this core runs."""
        return self.state.facility

    @property
    def workflow_machine(self) -> Machine:
        """This core's workflow machine (``.on(event, before=…, after=…)`` adds hooks)."""
        return self.lifecycle.workflow_machine

    @property
    def step_machine(self) -> Machine:
        """This core's step machine."""
        return self.lifecycle.step_machine

    def handle(self, input: Input, now: float) -> list[Effect]:
        """Process one input at time ``now``; the effects, or a ``CoreError`` (no change)."""
        handler = self._handlers.get(type(input))
        if handler is None:
            raise CoreError(f"the core does not take {type(input).__name__} inputs")
        ctx = Context(self.state, self.projection, now)
        handler(ctx, input)
        # Typed dependants of what changed (_workflow_deps); again at the end for what the
        # reviews below changed.
        reviewed = self.workflow_deps.review(ctx)
        self.contention.review(ctx)  # agents and resources claimed twice (_contention)
        if self.battery is not None:
            self.battery.review(ctx)
        state = self.state
        if state.auctions:
            self.auctions.review(ctx)  # auctions whose step moved on close (_auction)
        if state.holds and state.queue:
            self.deadlocks.check(ctx)  # a step waits: a cycle may have closed (_deadlock)
        if state.deadlines or state.open_conflicts:
            self.temporal.review(ctx)
        if len(ctx.effects) > reviewed:
            self.workflow_deps.review(ctx, reviewed)
        if ctx.archivable:
            self.archiver.archive_ready(ctx)
        return ctx.effects

    @property
    def needs_rebuild(self) -> bool:
        """An event failed halfway through being applied (e.g. a hook refused a transition):
        this core's state may be half changed and must be rebuilt from the log."""
        return self.projection.broken

    def apply(self, event: Event) -> None:
        """Fold one stored event into the state (replay)."""
        self.projection.apply(event)

    # --- reading ----------------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        """Seq of the last event applied (0 before any)."""
        return self.state.seq

    @property
    def transitions(self) -> int:
        """Workflow and step state changes applied so far (the benchmark counts them)."""
        return self.state.transitions

    def reply_seq(self, command_id: str) -> int | None:
        """Seq of the ``command_reply`` event of hub command ``command_id`` if it was applied
        (recently: ``CoreConfig.command_window``), else ``None``."""
        seq = self.state.commands.get(command_id)
        return seq or None

    def template(self, ref: str) -> Template:
        """The template ``name`` (newest version) or ``name@version``."""
        return self.state.template(ref)

    def armed_timers(self) -> dict[str, float]:
        """Step timers (retry, timeout, wait) the state expects, by id."""
        return armed_timers(self.state)

    def workflow(self, workflow_id: str) -> WorkflowView | None:
        """A read-only view of one workflow in memory, or ``None`` (also once it is archived:
        read archived ones through ``edge_runtime.store.WorkflowCache``)."""
        wf = self.state.workflows.get(workflow_id)
        return None if wf is None else workflow_view(wf, self.state)

    def workflows(self) -> dict[str, WorkflowView]:
        """Views of every workflow in memory (not the archived ones), oldest first."""
        state = self.state
        return {wid: workflow_view(wf, state) for wid, wf in state.workflows.items()}

    def archived(self, workflow_id: str) -> str | None:
        """``completed`` or ``cancelled`` if ``workflow_id`` was archived, else ``None``."""
        return self.state.archived.get(workflow_id)

    def archived_workflows(self) -> dict[str, str]:
        """Every archived workflow's terminal state, in archive order (a copy)."""
        return dict(self.state.archived)

    def agents(self) -> dict[str, AgentView]:
        """Views of every known agent."""
        return {aid: agent_view(a) for aid, a in self.state.agents.items()}

    def conflicts(self, *, open_only: bool = False) -> dict[str, ConflictView]:
        """Views of the conflicts in memory (every open one and the latest resolved ones),
        oldest first; ``open_only``: those not yet resolved."""
        return {cid: conflict_view(c) for cid, c in self.state.conflicts.items()
                if not open_only or c.status != "resolved"}

    def knows_agent(self, agent_id: str) -> bool:
        """Whether ``agent_id`` has announced itself (cheap: no view is built)."""
        return agent_id in self.state.agents

    def workflow_counts(self) -> dict[str, int]:
        """Workflows in memory by top-level state (``active``, ``paused``, ``failed`` …)."""
        counts: dict[str, int] = {}
        for wf in self.state.workflows.values():
            top = wf.state.split(".", 1)[0]
            counts[top] = counts.get(top, 0) + 1
        return counts

    def agent_counts(self) -> dict[str, int]:
        """Known agents by status; agents that are not online count as ``offline``."""
        counts: dict[str, int] = {}
        for agent in self.state.agents.values():
            status = agent.status if agent.online else "offline"
            counts[status] = counts.get(status, 0) + 1
        return counts

    def queue(self) -> list[tuple[str, str]]:
        """Steps waiting for an agent or a resource, in allocation order."""
        return [(k[3], k[4]) for k in self.state.queue]

    def resource_holds(self) -> dict[str, tuple[str, str]]:
        """Held resources: name -> (workflow, step)."""
        return dict(self.state.holds)

    def snapshot(self) -> bytes:
        """The whole state as deterministic msgpack bytes."""
        return dump_state(self.state)

    @classmethod
    def restore(
        cls, data: bytes, facility: str, templates: Mapping[str, Template] = {},
        config: CoreConfig = _DEFAULT_CONFIG,
    ) -> Core:
        """A core whose state is ``data`` (from ``snapshot``); replay the tail after it."""
        core = cls(facility, templates, config=config)
        load_state(core.state, data)
        return core
