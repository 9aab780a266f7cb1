"""``Core``: the sans-IO workflow engine of one facility (DESIGN §3-§6).

``handle(input, now)`` validates the input, decides, makes events (each applied at once) and
returns the effects: ``Append`` for every event, then the ``Publish``/``SetTimer`` effects.
No clocks, sockets, randomness or threads: ``now`` is the only time there is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from edge_runtime.core._commands import Commands
from edge_runtime.core._effects import CancelTimer, Effect, SetTimer
from edge_runtime.core._engine import CoreConfig
from edge_runtime.core._errors import CoreError, IllegalTransition, StaleInput, UnknownEntity
from edge_runtime.core._machine import WORKFLOW_TERMINAL
from edge_runtime.core._projection import Agent, StepRun, WorkflowRun
from edge_runtime.core._snapshot import dump_projection, load_projection
from edge_runtime.core._template import Template
from edge_runtime.core._views import AgentView, WorkflowView, agent_view, workflow_view
from topics import (
    AgentConn,
    AgentState,
    Bid,
    HubCommand,
    StepAccepted,
    StepDone,
    StepFailed,
    StepProgress,
    StepStarted,
    SyncArrival,
)

__all__ = ["Core", "Input", "Restarted", "TimerFired"]


@dataclass(frozen=True, slots=True)
class TimerFired:
    """A timer the core asked for (``SetTimer``) is due."""

    timer_id: str


@dataclass(frozen=True, slots=True)
class Restarted:
    """The shell (re)started after replay: re-arm every timer, liveness windows from ``now``."""


Input = (
    AgentConn | AgentState | Bid | StepAccepted | StepStarted | StepProgress | StepDone
    | StepFailed | SyncArrival | HubCommand | TimerFired | Restarted
)
"""Everything ``Core.handle`` accepts."""

_DEFAULT_CONFIG = CoreConfig()
_STEP_EVENT_STATES = {
    StepAccepted: ("assigned",),
    StepStarted: ("assigned", "preparing"),
    StepProgress: ("assigned", "preparing", "executing"),
    StepDone: ("assigned", "preparing", "executing"),
    StepFailed: ("assigned", "preparing", "executing"),
}


class Core(Commands):
    """The deterministic workflow engine of one facility."""

    def __init__(
        self, facility: str, templates: Mapping[str, Template] = {},
        *, config: CoreConfig = _DEFAULT_CONFIG,
    ) -> None:
        super().__init__(facility, dict(templates), config)
        self._handlers: dict[type, Callable[[Any], None]] = {
            AgentConn: self._agent_conn, AgentState: self._agent_state,
            StepAccepted: self._step_event, StepStarted: self._step_event,
            StepProgress: self._step_event, StepDone: self._step_event,
            StepFailed: self._step_event, SyncArrival: self._sync_arrival, Bid: self._bid,
            HubCommand: self._hub_command, TimerFired: self._timer, Restarted: self._restarted,
        }

    def handle(self, input: Input, now: float) -> list[Effect]:
        """Process one input at time ``now``; the effects, or a ``CoreError`` (no change)."""
        handler = self._handlers.get(type(input))
        if handler is None:
            raise CoreError(f"the core does not take {type(input).__name__} inputs")
        fx: list[Effect] = []
        self._fx = fx
        self._now = now
        handler(input)
        if self._candidates:
            self._archive_ready()
        self._fx = []
        return fx

    # --- agents -----------------------------------------------------------------------

    def _agent(self, agent_id: str) -> Agent:
        agent = self._agents.get(agent_id)
        if agent is None:
            raise UnknownEntity(f"agent {agent_id} has not announced itself on its conn topic")
        return agent

    def _liveness_timer(self, agent: Agent) -> None:
        at = self._now + agent.liveness * self.config.liveness_factor
        self._fx.append(SetTimer(f"liveness:{agent.id}", at))

    def _agent_conn(self, m: AgentConn) -> None:
        agent = self._agents.get(m.agent_id)
        if not m.online:
            if agent is not None and agent.online:
                self._fx.append(CancelTimer(f"liveness:{agent.id}"))
                self._lose(agent, "offline")
            return
        caps = list(dict.fromkeys(m.capabilities))
        if (
            agent is None or not agent.online or agent.kind != m.kind
            or agent.caps != frozenset(caps) or agent.liveness != m.liveness_s
        ):
            if agent is not None and agent.task is not None and agent.kind != m.kind:
                self._lose(agent, "changed kind")
            self._emit("agent_joined", None, {
                "agent": m.agent_id, "kind": m.kind, "caps": caps, "liveness": m.liveness_s,
            })
        self._liveness_timer(self._agents[m.agent_id])
        self._allocate_waiting()

    def _agent_state(self, m: AgentState) -> None:
        agent = self._agent(m.agent_id)
        # Allocation only when the agent becomes available: an agent that already was had
        # its chance when the queue last changed, and scanning the queue for each periodic
        # state would cost O(waiting steps) per message.
        was_available = agent.available
        if not agent.online:
            self._emit("agent_joined", None, {
                "agent": agent.id, "kind": agent.kind, "caps": sorted(agent.caps),
                "liveness": agent.liveness,
            })
        battery = m.battery
        if (
            agent.status != m.status or agent.node != m.node or agent.mode != m.mode
            or agent.e_stop != m.e_stop or (battery is None) != (agent.battery is None)
            or (battery is not None and agent.battery is not None
                and abs(battery - agent.battery) >= self.config.battery_delta)
        ):
            self._emit("agent_updated", None, {
                "agent": agent.id, "status": m.status, "node": m.node, "battery": battery,
                "mode": m.mode, "e_stop": m.e_stop,
            })
        self._liveness_timer(agent)
        if agent.available and not was_available:
            self._allocate_waiting()

    def _lose(self, agent: Agent, reason: str) -> None:
        """Mark ``agent`` lost; its running step goes back to be allocated again."""
        self._emit("agent_lost", None, {"agent": agent.id, "reason": reason})
        if agent.task is not None:
            wf = self._workflows[agent.task[0]]
            st = wf.steps[agent.task[1]]
            if st.timeout_at is not None:
                self._fx.append(CancelTimer(f"timeout:{wf.id}/{st.id}"))
            self._emit("step_requeued", wf.id, {"step": st.id, "reason": f"agent {reason}"})
            self._advance(wf)
        self._allocate_waiting()

    def _bid(self, m: Bid) -> None:
        self._agent(m.agent_id)
        raise StaleInput(f"no call for proposals {m.cfp_id} is open (allocation is direct)")

    def _step_of(
        self, m: StepAccepted | StepStarted | StepProgress | StepDone | StepFailed | SyncArrival,
    ) -> tuple[Agent, WorkflowRun, StepRun] | None:
        """Validate a step event; ``None`` for a duplicate (already applied)."""
        agent = self._agent(m.agent_id)
        if m.event_id in agent.recent_ids:
            return None
        wf = self._workflows.get(m.workflow_id)
        if wf is None:
            state = self._archived.get(m.workflow_id)
            if state is not None:
                raise StaleInput(f"workflow {m.workflow_id} is {state} (archived); it takes "
                                 "no more step events")
            raise UnknownEntity(f"unknown workflow {m.workflow_id!r}")
        st = wf.steps.get(m.step_id)
        if st is None:
            raise UnknownEntity(f"workflow {wf.id} has no step {m.step_id!r}")
        return agent, wf, st

    def _step_event(self, m: StepAccepted | StepStarted | StepProgress | StepDone | StepFailed
                    ) -> None:
        found = self._step_of(m)
        if found is None:
            return
        agent, wf, st = found
        if st.agent != agent.id or st.attempt != m.attempt:
            raise StaleInput(
                f"{m.type} from {agent.id} for {wf.id}.{st.id} attempt {m.attempt}: the step "
                f"is held by {st.agent or 'nobody'} (attempt {st.attempt})"
            )
        if st.state not in _STEP_EVENT_STATES[type(m)]:
            raise IllegalTransition(
                f"step {wf.id}.{st.id} is {st.state}; {m.type} applies only when it is "
                + " or ".join(_STEP_EVENT_STATES[type(m)])
            )
        base: dict[str, Any] = {"step": st.id, "agent": agent.id, "eid": m.event_id}
        if isinstance(m, StepAccepted):
            self._emit("step_accepted", wf.id, base)
        elif isinstance(m, StepStarted):
            self._emit("step_started", wf.id, base)
        elif isinstance(m, StepProgress):
            self._emit("step_progress", wf.id, {**base, "progress": m.progress})
        elif isinstance(m, StepFailed):
            self._fail_step(wf, st, m.error_type, m.message, retryable=m.retryable,
                            extra={"agent": agent.id, "eid": m.event_id})
            self._allocate_waiting()
        else:
            missing = [o for o in st.spec.outputs if o not in m.outputs]
            if missing:
                self._fail_step(
                    wf, st, "invalid_output", f"missing outputs: {', '.join(missing)}",
                    retryable=True, extra={"agent": agent.id, "eid": m.event_id},
                )
            else:
                if st.timeout_at is not None:
                    self._fx.append(CancelTimer(f"timeout:{wf.id}/{st.id}"))
                base["outputs"] = m.outputs
                self._emit("step_done", wf.id, base)
                self._advance(wf)
            self._allocate_waiting()

    def _sync_arrival(self, m: SyncArrival) -> None:
        """Record an arrival whenever it comes; release the barrier once all are there.

        An arrival before the barrier opens (another participant is still on its way) is
        kept; a repeat is a no-op, and one after the release gets the release again.
        """
        found = self._step_of(m)
        if found is None:
            return
        agent, wf, st = found
        if st.spec.kind != "sync":
            raise StaleInput(f"{wf.id}.{st.id} is a {st.spec.kind} step, not a sync point")
        if wf.state in WORKFLOW_TERMINAL:
            raise StaleInput(f"workflow {wf.id} is {wf.state}; its sync points are closed")
        if st.state == "done":
            released = (st.outputs or {}).get("agents", [])
            if agent.id not in released and agent.id not in st.arrived:
                raise StaleInput(f"{agent.id} is not a participant of {wf.id}.{st.id}")
            self._send_release(wf, st, agent.id, st.done_seq)
            return
        if st.state not in ("pending", "executing", "failed"):
            raise StaleInput(f"sync point {wf.id}.{st.id} is {st.state}")
        if agent.id in st.arrived:
            return
        if agent.id not in self._sync_agents(wf, st):
            raise StaleInput(
                f"{agent.id} is not a participant of {wf.id}.{st.id}: it finished none of "
                + ", ".join(st.spec.participants)
            )
        self._emit("sync_arrived", wf.id, {"step": st.id, "agent": agent.id, "eid": m.event_id})
        if self._release_sync(wf, st):
            self._advance(wf)

    # --- timers -----------------------------------------------------------------------

    def _timer(self, m: TimerFired) -> None:
        kind, _, rest = m.timer_id.partition(":")
        if kind == "liveness":
            agent = self._agents.get(rest)
            if agent is not None and agent.online:
                self._lose(agent, "silent")
            return
        wf_id, _, sid = rest.partition("/")
        wf = self._workflows.get(wf_id)
        st = wf.steps.get(sid) if wf is not None else None
        if wf is None or st is None:
            return  # a timer for something that no longer exists: nothing to do
        now = self._now
        if kind == "retry":
            if st.state == "pending" and st.retry_at is not None and st.retry_at <= now:
                self._advance(wf)
        elif kind == "timeout":
            if st.timeout_at is not None and st.timeout_at <= now and st.state in (
                "assigned", "preparing", "executing"
            ):
                self._cancel_running(wf, "timeout", only=st.id)
                self._fail_step(wf, st, "timeout", f"no result within {st.spec.timeout_s} s",
                                retryable=True)
                self._allocate_waiting()
        elif (
            kind == "wait" and st.state == "executing" and st.wait_until is not None
            and st.wait_until <= now
        ):
            self._emit("step_done", wf.id, {"step": st.id, "outputs": {}})
            self._advance(wf)

    def _restarted(self, _: Restarted) -> None:
        for agent in self._agents.values():
            if agent.online:
                self._liveness_timer(agent)
        for timer_id, at in self.armed_timers().items():
            self._fx.append(SetTimer(timer_id, at))
        # Finished workflows a log from before archiving (or archive_terminal=False) left.
        self._candidates.extend(
            wid for wid, wf in self._workflows.items() if wf.state in ("completed", "cancelled")
        )

    # --- reading ----------------------------------------------------------------------

    def armed_timers(self) -> dict[str, float]:
        """Step timers (retry, timeout, wait) the projection expects, by id.

        Liveness timers are not here: a restarted shell sends ``Restarted`` instead, which
        re-arms these and gives every online agent a fresh liveness window from its ``now``.
        """
        timers: dict[str, float] = {}
        for wf in self._workflows.values():
            for st in wf.steps.values():
                key = f"{wf.id}/{st.id}"
                if st.retry_at is not None and st.state == "pending":
                    timers[f"retry:{key}"] = st.retry_at
                if st.timeout_at is not None:
                    timers[f"timeout:{key}"] = st.timeout_at
                if st.wait_until is not None:
                    timers[f"wait:{key}"] = st.wait_until
        return timers

    def workflow(self, workflow_id: str) -> WorkflowView | None:
        """A read-only view of one workflow in memory, or ``None`` (also once it is archived:
        read archived ones through ``edge_runtime.store.WorkflowCache``)."""
        wf = self._workflows.get(workflow_id)
        return None if wf is None else workflow_view(wf)

    def workflows(self) -> dict[str, WorkflowView]:
        """Views of every workflow in memory (not the archived ones), oldest first."""
        return {wid: workflow_view(wf) for wid, wf in self._workflows.items()}

    def archived(self, workflow_id: str) -> str | None:
        """``completed`` or ``cancelled`` if ``workflow_id`` was archived, else ``None``."""
        return self._archived.get(workflow_id)

    def archived_workflows(self) -> dict[str, str]:
        """Every archived workflow's terminal state, in archive order (a copy)."""
        return dict(self._archived)

    def agents(self) -> dict[str, AgentView]:
        """Views of every known agent."""
        return {aid: agent_view(a) for aid, a in self._agents.items()}

    def knows_agent(self, agent_id: str) -> bool:
        """Whether ``agent_id`` has announced itself (cheap: no view is built)."""
        return agent_id in self._agents

    def workflow_counts(self) -> dict[str, int]:
        """Workflows in memory by top-level state (``active``, ``paused``, ``failed`` …)."""
        counts: dict[str, int] = {}
        for wf in self._workflows.values():
            top = wf.state.split(".", 1)[0]
            counts[top] = counts.get(top, 0) + 1
        return counts

    def agent_counts(self) -> dict[str, int]:
        """Known agents by status; agents that are not online count as ``offline``."""
        counts: dict[str, int] = {}
        for agent in self._agents.values():
            status = agent.status if agent.online else "offline"
            counts[status] = counts.get(status, 0) + 1
        return counts

    def queue(self) -> list[tuple[str, str]]:
        """Steps waiting for an agent or a resource, in allocation order."""
        return [(k[3], k[4]) for k in self._queue]

    def resource_holds(self) -> dict[str, tuple[str, str]]:
        """Held resources: name -> (workflow, step)."""
        return dict(self._holds)

    def snapshot(self) -> bytes:
        """The whole projection as deterministic msgpack bytes."""
        return dump_projection(self)

    @classmethod
    def restore(
        cls, data: bytes, facility: str, templates: Mapping[str, Template] = {},
        config: CoreConfig = _DEFAULT_CONFIG,
    ) -> Core:
        """A core whose projection is ``data`` (from ``snapshot``); replay the tail after it."""
        core = cls(facility, templates, config=config)
        load_projection(core, data)
        return core
