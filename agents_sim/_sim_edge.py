"""One facility's real edge core under SimPy time, with no broker (the virtual mode).

``SimEdge`` plays the edge shell's part for a ``Core``: agents' messages become core
inputs (an agent event the core refuses is refused in the agent's ``EventAck``, as the
shell does), ``Publish`` effects become the agents' commands (over their ``SimLink``),
``SetTimer`` effects become SimPy timeouts that feed ``TimerFired`` back, and every
``Append`` is kept — the facility's event log, in order. Every event the core took is
acknowledged to its agent in one ``EventAck`` per instant, like the shell's one per batch;
every command is kept and resent (after 1 s, then doubling waits up to 30 s, and at once
when the agent comes online) until the agent's ``CommandAck`` names it, like the shell's
command outbox.
"""

from __future__ import annotations

import itertools
from functools import partial
from typing import Any

import simpy

from agents_sim._native_spec import Outgoing
from agents_sim._sim_calls import call_at_delay
from edge_runtime.core import (
    Append,
    Archive,
    CancelTimer,
    Core,
    CoreError,
    Effect,
    Event,
    Input,
    Publish,
    SetTimer,
    Template,
    TimerFired,
    WorkflowView,
    decode_workflow_record,
)
from topics import AgentConn, AgentState, CommandAck, EventAck, HubCommand, Message

__all__ = ["SimEdge", "step_estimate"]

FIRST_RESEND_S = 1.0
"""An unacknowledged command is sent again after this, then after waits doubling …"""
MAX_RESEND_S = 30.0
"""… up to this (as the edge shell's command outbox)."""
TERMINAL_KINDS = {"workflow_completed": "completed", "workflow_failed": "failed",
                  "workflow_cancelled": "cancelled"}
"""Events that end a workflow, and the state they leave it in."""


def step_estimate(templates: dict[str, Template], a: Any) -> float | None:
    """``estimated_duration_s`` of an assigned step (``a``: its ``Assign``) from its
    workflow's template in ``templates`` (workflow id -> template), if known."""
    template = templates.get(a.workflow_id)
    if template is None:
        return None
    try:
        return float(template.step(a.step_id).estimated_duration_s)
    except KeyError:
        return None  # a compensation step: the agent's default


class SimEdge:
    """A facility's ``Core`` driven by SimPy: the inputs it gets, the effects it returns."""

    def __init__(self, env: simpy.Environment, core: Core, epoch: float) -> None:
        self.env = env
        self.core = core
        self.epoch = epoch
        self.events: list[Event] = []
        """Every event the core appended, in ``seq`` order: the facility's log."""
        self.records: dict[str, bytes] = {}
        """Final records of archived workflows (what the shell would store), by id."""
        self.outcome: dict[str, str] = {}
        """Every workflow created: its last state (``active`` until it ended)."""
        self.rejected = 0
        """Inputs the core refused (a late report of a requeued step, …)."""
        self.agents: dict[str, Any] = {}
        """Agent id -> its ``SimAgent`` (set by the runner); commands go to its link."""
        self.templates: dict[str, Template] = {}
        """Workflow id -> its template, for the agents' work-time estimates."""
        self._timers: dict[str, float] = {}
        """Timer id -> when (simulated seconds) it is due."""
        self._flying: dict[str, float] = {}
        """Timer id -> when the earliest SimPy timeout on its way for it fires."""
        self._tokens = itertools.count(1)
        self._acks: dict[str, list[str]] = {}
        self._refused: dict[str, dict[str, str]] = {}
        self._ack_ids = itertools.count(1)
        self._flush_armed = False
        self._outbox: dict[tuple[str, str], tuple[Message, float, int]] = {}
        """(agent, command id) -> the command, its current resend wait, its timer token."""
        self.up = True
        """False while an ``edge_drop`` lasts: the edge runs (its timers fire) but every
        message to or from it is lost."""
        self.dropped = 0
        """Messages lost while the edge was cut off."""
        self.vda: Any = None
        """The facility's VDA 5050 master for its VDA robots (``agents_sim._sim_vda_edge``
        ``VdaEdge``), if any: it takes the core's commands for them."""

    @property
    def now(self) -> float:
        """The edge's clock: the scenario epoch plus simulated seconds."""
        return self.epoch + self.env.now

    def feed(self, item: Input) -> list[Effect] | None:
        """Hand one input to the core now and carry out its effects; ``None`` if refused."""
        try:
            effects = self.core.handle(item, self.now)
        except CoreError:
            self.rejected += 1
            return None
        self._carry(effects)
        return effects

    def _carry(self, effects: list[Effect]) -> None:
        """Carry out the core's effects, in order."""
        for effect in effects:
            if isinstance(effect, Append):
                self._appended(effect.event)
            elif isinstance(effect, Publish):
                self._publish(effect.topic, effect.message)
            elif isinstance(effect, SetTimer):
                self._arm(effect.timer_id, effect.at)
            elif isinstance(effect, CancelTimer):
                self._timers.pop(effect.timer_id, None)
            elif isinstance(effect, Archive):
                self.records[effect.workflow_id] = effect.record

    def create(self, command_id: str, args: dict[str, Any], template: Template) -> bool:
        """A hub ``create_workflow`` command (a scenario arrival); False if refused."""
        self.templates[str(args["workflow_id"])] = template
        return self.feed(HubCommand(command_id=command_id, action="create_workflow",
                                    args=args, ts=self.now)) is not None

    def from_agent(self, agent_id: str, out: Outgoing) -> None:
        """A message of an agent reached the edge."""
        if not self.up:
            self.dropped += 1
            return
        msg = out.message
        if isinstance(msg, CommandAck):
            self._outbox.pop((agent_id, msg.command_id), None)
        elif isinstance(msg, AgentConn) and msg.online:
            self._online(agent_id)
        if isinstance(msg, AgentConn | AgentState):
            self.feed(msg)  # type: ignore[arg-type]
            return
        event_id: str | None = getattr(msg, "event_id", None)
        try:
            effects = self.core.handle(msg, self.now)  # type: ignore[arg-type]
        except CoreError as exc:
            self.rejected += 1
            if isinstance(msg, CommandAck):  # the shell takes every command_ack
                self._acks.setdefault(agent_id, []).append(msg.event_id)
                self._arm_flush()
            elif event_id is not None:
                self._refused.setdefault(agent_id, {})[event_id] = str(exc)[:1024]
                self._arm_flush()
            return
        if event_id is not None:
            self._acks.setdefault(agent_id, []).append(event_id)
            self._arm_flush()
        self._carry(effects)

    def workflow(self, workflow_id: str) -> WorkflowView | None:
        """A workflow as the core holds it, or from its record once archived."""
        view = self.core.workflow(workflow_id)
        if view is None and workflow_id in self.records:
            return decode_workflow_record(self.records[workflow_id])
        return view

    def estimate(self, a: Any) -> float | None:
        """The template's ``estimated_duration_s`` of an assigned step, if known."""
        return step_estimate(self.templates, a)

    # --- effects -------------------------------------------------------------------------

    def _appended(self, event: Event) -> None:
        self.events.append(event)
        wf = event.workflow_id
        if wf is None:
            return
        if event.kind == "workflow_created" or event.kind == "workflow_recovered":
            self.outcome[wf] = "active"
        elif event.kind in TERMINAL_KINDS:
            self.outcome[wf] = TERMINAL_KINDS[event.kind]

    def _publish(self, topic: str, message: Message) -> None:
        if self.vda is not None and self.vda.command(topic, message):
            return  # a VDA 5050 robot's: an order or instant actions, via the master
        parts = topic.split("/")
        if len(parts) < 6 or parts[3] != "agent":
            return  # nothing listens on edge topics in virtual mode
        if not isinstance(message, EventAck):  # kept until the agent's CommandAck
            self._keep(parts[4], message, FIRST_RESEND_S, FIRST_RESEND_S)
        self._send(parts[4], message)

    def _send(self, agent_id: str, message: Message) -> None:
        agent = self.agents.get(agent_id)
        if not self.up:
            self.dropped += 1
        elif agent is not None:
            agent.link.send(agent.receive, message)

    # --- the command outbox (the shell's ``Delivery``): resent until acknowledged ---------

    def _keep(self, agent_id: str, message: Message, after: float, wait: float) -> None:
        key = (agent_id, str(getattr(message, "command_id", "")))
        token = next(self._tokens)
        self._outbox[key] = (message, wait, token)
        call_at_delay(self.env, after, partial(self._due, key, token))

    def _due(self, key: tuple[str, str], token: int, _: object = None) -> None:
        entry = self._outbox.get(key)
        if entry is None or entry[2] != token:
            return  # acknowledged, or rescheduled since
        message, wait, _ = entry
        wait = min(wait * 2, MAX_RESEND_S)
        self._send(key[0], message)
        self._keep(key[0], message, wait, wait)

    def _online(self, agent_id: str) -> None:
        """The agent (re)connected: every command waiting for it goes now, in order."""
        for key, (message, _, _) in list(self._outbox.items()):
            if key[0] == agent_id:
                self._send(agent_id, message)
                self._keep(agent_id, message, FIRST_RESEND_S, FIRST_RESEND_S)

    def _arm(self, timer_id: str, at: float) -> None:
        """Arm (or re-arm) a timer. A timer re-armed later — each agent's liveness timer,
        at every state — makes no new SimPy timeout: the one on its way wakes up first
        and waits on for the rest (``_fire``)."""
        due = self.env.now + max(0.0, at - self.now)
        self._timers[timer_id] = due
        flying = self._flying.get(timer_id)
        if flying is None or flying > due:
            self._launch(timer_id, due)

    def _launch(self, timer_id: str, due: float) -> None:
        self._flying[timer_id] = due
        call_at_delay(self.env, due - self.env.now, partial(self._fire, timer_id, due))

    def _fire(self, timer_id: str, when: float, _: object = None) -> None:
        if self._flying.get(timer_id) == when:
            del self._flying[timer_id]
        due = self._timers.get(timer_id)
        if due is None:
            return  # cancelled (or fired) since
        if due > self.env.now:  # re-armed later since: wait on
            if timer_id not in self._flying:
                self._launch(timer_id, due)
            return
        del self._timers[timer_id]
        self.feed(TimerFired(timer_id))

    def _arm_flush(self) -> None:
        if not self._flush_armed:
            self._flush_armed = True
            call_at_delay(self.env, 0.0, self._flush)

    def _flush(self, _: object = None) -> None:
        """One ``EventAck`` per agent for what the core took or refused this instant."""
        self._flush_armed = False
        for agent_id in dict.fromkeys([*self._acks, *self._refused]):
            agent = self.agents.get(agent_id)
            ack = EventAck(command_id=f"k{next(self._ack_ids)}", ts=self.now,
                           event_ids=self._acks.get(agent_id, [])[:4096],
                           refused=self._refused.get(agent_id, {}))
            if not self.up:
                self.dropped += 1
            elif agent is not None:
                agent.link.send(agent.receive, ack)
        self._acks.clear()
        self._refused.clear()

