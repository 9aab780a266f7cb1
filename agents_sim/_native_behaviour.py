"""The sans-IO behaviour of one simulated native agent (robot, person or AI).

``AgentBehaviour`` is a deterministic state machine in the style of the edge core: it is fed
commands and the time, and answers with the messages the agent sends. It owns no socket,
no clock and no randomness of its own (random choices come from a seed), so the same object
runs under the paho runner in real time and could run in virtual time (no simulator drives
it yet).

    on_command(cmd, now) -> list[Outgoing]     # replies due right now
    tick(now)            -> list[Outgoing]     # whatever fell due since the last call
    next_wakeup()        -> float | None       # when ``tick`` has something to say next
    on_edge_online(now)  -> list[Outgoing]     # the edge is back: every unacked event

Delivery (docs/protocol.md, "Delivery"): every event goes through an outbox and is resent
until an ``EventAck`` names it; every command gets a ``CommandAck`` (a redelivered one too,
without being applied again). That half lives in ``agents_sim._native_delivery``. Who the
agent is (``AgentSpec``) and what it sends (``Outgoing``) are in ``agents_sim._native_spec``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from agents_sim._native_delivery import AgentDelivery, Answer
from agents_sim._native_spec import AgentSpec, Outgoing
from agents_sim._native_state import agent_state
from agents_sim._native_work import Step, ai_outputs, digest, pick_failure, plan_step, step_outputs
from topics import (
    AgentConn,
    AgentState,
    Assign,
    Award,
    Bid,
    Cancel,
    Cfp,
    CommandAck,
    EventAck,
    Message,
    Pause,
    Resume,
    StepAccepted,
    StepDone,
    StepFailed,
    StepProgress,
    StepStarted,
    SyncArrival,
    SyncRelease,
)

__all__ = ["AgentBehaviour", "ai_outputs"]


@dataclass(slots=True)
class _Counters:
    events: int = 0
    fail_hits: dict[str, int] = field(default_factory=dict)



class AgentBehaviour:
    """One agent's protocol behaviour; see the module docstring for the three calls."""

    def __init__(self, spec: AgentSpec, now: float = 0.0, incarnation: str = "") -> None:
        """``incarnation`` goes into every event id (``{agent}-{incarnation}-{n}``): a
        restarted simulator must not repeat the ids of its previous run, which the edge
        would drop as duplicates. Empty (the default) gives ``{agent}-{n}``."""
        self.spec = spec
        """Who this agent is."""
        self.node: str | None = spec.node
        """Where it is now (the location of its last step)."""
        self.battery = 100.0
        """State of charge, drained a little by every robot step."""
        self.dead = False
        """Set by an injected ``die`` fault: the agent sends nothing any more."""
        self.step: Step | None = None
        """The step in hand, if any."""
        self.queue: list[Assign] = []
        """Assignments accepted while busy, started in order."""
        self.waiting: dict[tuple[str, str], float] = {}
        """Sync points (workflow, sync step) reached and not released yet → next re-send."""
        self.completed: list[str] = []
        """``workflow_id/step_id`` of every step done, in order (for tests and KPIs)."""
        self.delivery = AgentDelivery(spec.outbox_limit)
        """Events awaiting the edge's ``EventAck``, and the commands answered."""
        self._id_prefix = f"{spec.agent_id[:40]}-{incarnation[:12] + '-' if incarnation else ''}"
        self._next_state = now
        self._counters = _Counters()

    # --- the three sans-IO calls ---------------------------------------------------------

    def hello(self, now: float) -> list[Outgoing]:
        """The retained online announcement and a first state."""
        return [Outgoing("conn", self.conn(True, now), qos=1, retain=True), *self.tick(now)]

    def conn(self, online: bool, now: float) -> AgentConn:
        """This agent's ``AgentConn``; the offline one is its MQTT will."""
        return AgentConn(
            agent_id=self.spec.agent_id, online=online, kind=self.spec.kind,
            capabilities=list(self.spec.capabilities), liveness_s=self.spec.liveness_s, ts=now,
        )

    def on_command(self, cmd: Message, now: float) -> list[Outgoing]:
        """Apply a command from the edge and acknowledge it (``CommandAck`` first, then the
        events it caused). A command id answered before is acknowledged again with the
        same outcome and not applied again; an ``EventAck`` just clears the outbox."""
        if self.dead:
            return []
        if isinstance(cmd, EventAck):
            self.delivery.on_event_ack(cmd)
            return self.tick(now)
        out = self.delivery.due(now)  # older events first: resends keep the sending order
        command_id: str = getattr(cmd, "command_id", "")
        before = self.delivery.answered(command_id)
        if before is not None:
            pending = self.delivery.outbox.get(before.ack_event_id)
            if pending is not None:  # our first ack is still unacknowledged: send it again
                self.delivery.stats.resent += 1
                return [*out, pending, *self.tick(now)]
        ack_id = self._event_id(now)  # before the events it causes: ids follow sending order
        if before is not None:
            fresh: list[Outgoing] = []
            reason = before.reason
        else:
            fresh, reason = self._apply(cmd, now)
        ack = CommandAck(
            event_id=ack_id, agent_id=self.spec.agent_id, ts=now,
            command_id=command_id, outcome="refused" if reason else "done", reason=reason,
        )
        self.delivery.remember(command_id, Answer(ack.outcome, reason, ack.event_id))
        out += self.delivery.keep([Outgoing("event", ack, qos=1), *fresh], now)
        return out + self.tick(now)

    def _apply(self, cmd: Message, now: float) -> tuple[list[Outgoing], str]:
        """Apply a command seen for the first time: the events it causes, and why it is
        refused ('' when it is done)."""
        if isinstance(cmd, Assign):
            return self._on_assign(cmd, now), ""
        if isinstance(cmd, Cfp):
            return self._on_cfp(cmd, now), ""  # considered, whether or not it bids
        if isinstance(cmd, Cancel):
            return [], self._on_cancel(cmd, now)
        if isinstance(cmd, Pause):
            return [], self._on_pause(cmd, now)
        if isinstance(cmd, Resume):
            return [], self._on_resume(cmd, now)
        if isinstance(cmd, SyncRelease):
            return [], self._on_release(cmd)
        if isinstance(cmd, Award):
            return [], ""  # the Assign that goes with an award carries everything we need
        return [], f"unsupported: {getattr(cmd, 'type', type(cmd).__name__)}"

    def on_edge_online(self, now: float) -> list[Outgoing]:
        """The edge (re)announced itself online: send every unacknowledged event now, in
        sending order, and restart their resend schedules."""
        if self.dead:
            return []
        return self.delivery.resend_all(now) + self.tick(now)

    def tick(self, now: float) -> list[Outgoing]:
        """Everything due by ``now``: resends of unacknowledged events, new step events in
        order, then a state if one is due."""
        if self.dead:
            return []
        out = self.delivery.due(now)
        out += self.delivery.keep(self._step_events(now), now)
        if now >= self._next_state:
            out.append(Outgoing("state", self.state(now), qos=0))
            self._next_state = now + self.spec.state_period_s
        return out

    def _step_events(self, now: float) -> list[Outgoing]:
        out: list[Outgoing] = []
        while not self.dead and self.step is not None and self.step.paused_at is None:
            step = self.step
            if not step.plan or step.plan[0][0] > now:
                break
            _, what = step.plan.pop(0)
            out += self._advance(step, what, now)
        for (wf, sid), at in list(self.waiting.items()):
            if at <= now and not self.dead:
                self.waiting[(wf, sid)] = self._retry_at(now)
                out.append(self._sync_arrival(wf, sid, now))
        return out

    def next_wakeup(self) -> float | None:
        """The earliest time ``tick`` has something to send; None once dead."""
        if self.dead:
            return None
        due = self._next_state
        step = self.step
        if step is not None and step.paused_at is None and step.plan:
            due = min(due, step.plan[0][0])
        resend = self.delivery.next_due()
        if resend is not None:
            due = min(due, resend)
        return min(due, *self.waiting.values()) if self.waiting else due

    def _retry_at(self, now: float) -> float:
        retry = self.spec.sync_retry_s
        return float("inf") if retry is None else now + retry

    def state(self, now: float) -> AgentState:
        """The agent's current ``AgentState`` (validated as ever; built without pydantic's
        validation when every value is known valid: ``agents_sim._native_state``)."""
        step = self.step
        status: Literal["idle", "busy", "paused"] = "idle"
        if step is not None:
            status = "paused" if step.paused_at is not None else "busy"
        return agent_state(
            self.spec.agent_id, now, status, self.node,
            round(self.battery, 2) if self.spec.kind == "robot" else None,
            step.assign.workflow_id if step else None,
            step.assign.step_id if step else None,
        )

    # --- commands ------------------------------------------------------------------------

    def _on_assign(self, cmd: Assign, now: float) -> list[Outgoing]:
        if self.step is not None:
            self.queue.append(cmd)
            return [self._event(StepAccepted, cmd, now)]
        self._start(cmd, now)
        return [self._event(StepAccepted, cmd, now)]

    def _start(self, cmd: Assign, now: float) -> None:
        failure = pick_failure(self.spec, cmd, self._counters.fail_hits)
        self.step = plan_step(self.spec, cmd, now, failure)

    def _on_cfp(self, cmd: Cfp, now: float) -> list[Outgoing]:
        if not set(cmd.capabilities) <= set(self.spec.capabilities):
            return []
        busy = (1 if self.step is not None else 0) + len(self.queue)
        distance = 0.0 if cmd.location in (None, self.node) else 10.0
        jitter = (digest(self.spec.seed, self.spec.agent_id, cmd.cfp_id) % 1000) / 1000
        cost = round(distance + busy * 20.0 + (100 - self.battery) * 0.1 + jitter, 3)
        bid = Bid(
            event_id=self._event_id(now), agent_id=self.spec.agent_id, ts=now,
            cfp_id=cmd.cfp_id, cost=cost, eta_s=round(distance + busy * 10.0, 3),
        )
        return [Outgoing("event", bid, qos=1)]

    def _matches(self, cmd: Cancel | Pause | Resume) -> bool:
        step = self.step
        if step is None:
            return False
        wf, sid = cmd.workflow_id, cmd.step_id
        return (wf is None or wf == step.assign.workflow_id) and (
            sid is None or sid == step.assign.step_id
        )

    def _on_cancel(self, cmd: Cancel, now: float) -> str:
        """Drop the step (held, queued, or a barrier waited at); refused if none is here."""
        key = (cmd.workflow_id, cmd.step_id)
        queued = len(self.queue)
        self.queue = [a for a in self.queue if (a.workflow_id, a.step_id) != key]
        found = len(self.queue) < queued
        found |= self.waiting.pop(key, None) is not None  # dismissed from a barrier
        if self._matches(cmd):
            found = True
            self._finish(now)  # abandoned: the edge already knows, so nothing is reported
        return "" if found else f"not_held: no step {cmd.workflow_id}/{cmd.step_id} here"

    def _on_pause(self, cmd: Pause, now: float) -> str:
        """Hold the matching step (done if it is held already); refused without one."""
        if not self._matches(cmd) or self.step is None:
            return "not_held: no matching step in hand"
        if self.step.paused_at is None:
            self.step.paused_at = now
            self._next_state = now
        return ""

    def _on_resume(self, cmd: Resume, now: float) -> str:
        """Go on with the matching step (done if it runs already); refused without one."""
        step = self.step
        if not self._matches(cmd) or step is None:
            return "not_held: no matching step in hand"
        if step.paused_at is not None:
            held = now - step.paused_at
            step.plan = [(t + held, what) for t, what in step.plan]
            step.paused_at = None
            self._next_state = now
        return ""

    def _on_release(self, cmd: SyncRelease) -> str:
        """Leave the barrier; refused if the agent does not wait there."""
        if self.waiting.pop((cmd.workflow_id, cmd.step_id), None) is None:
            return f"not_waiting: not at sync point {cmd.workflow_id}/{cmd.step_id}"
        return ""

    def arrive(self, workflow_id: str, step_id: str, now: float) -> list[Outgoing]:
        """Reach the sync point ``step_id`` and wait there for its ``SyncRelease`` (or a
        ``Cancel`` naming it). The edge keeps the arrival even if the barrier is not open yet;
        it is repeated only every ``sync_retry_s`` as a safety net.
        """
        if self.dead:
            return []
        self.waiting[(workflow_id, step_id)] = self._retry_at(now)
        return self.delivery.keep([self._sync_arrival(workflow_id, step_id, now)], now)

    def _sync_arrival(self, workflow_id: str, step_id: str, now: float) -> Outgoing:
        return Outgoing("event", SyncArrival(
            event_id=self._event_id(now), agent_id=self.spec.agent_id, ts=now,
            workflow_id=workflow_id, step_id=step_id,
        ), qos=1)

    # --- step timeline -------------------------------------------------------------------

    def _advance(self, step: Step, what: str, now: float) -> list[Outgoing]:
        a = step.assign
        if what == "started":
            return [self._event(StepStarted, a, now)]
        if what == "progress":
            done = self.spec.progress_steps - sum(1 for _, w in step.plan if w == "progress")
            fraction = round(done / (self.spec.progress_steps + 1), 3)
            return [self._event(StepProgress, a, now, progress=fraction)]
        if what == "fail":
            failure = step.failure
            assert failure is not None
            self._finish(now)
            return [self._event(
                StepFailed, a, now, error_type=failure.error_type,
                retryable=failure.retryable, message=f"injected {failure.error_type}",
            )]
        if what == "die":
            self.dead = True
            return []
        # done
        self.node = a.location or self.node
        if self.spec.kind == "robot":
            self.battery = max(0.0, self.battery - 0.5)
        outputs = step_outputs(self.spec, a)
        self.completed.append(f"{a.workflow_id}/{a.step_id}")
        self._finish(now)
        out = [self._event(StepDone, a, now, outputs=outputs)]
        if a.sync_point is not None:
            self.waiting[(a.workflow_id, a.sync_point)] = self._retry_at(now)
            out.append(self._sync_arrival(a.workflow_id, a.sync_point, now))
        return out

    def _finish(self, now: float) -> None:
        self.step = None
        self._next_state = min(self._next_state, now)  # report the change at once
        if self.queue:  # the next queued step starts now; it was accepted when queued
            self._start(self.queue.pop(0), now)

    def _event_id(self, now: float) -> str:
        self._counters.events += 1
        return f"{self._id_prefix}{self._counters.events}"

    def _event(self, cls: type[Any], a: Assign, now: float, **extra: Any) -> Outgoing:
        msg = cls(
            event_id=self._event_id(now), agent_id=self.spec.agent_id, ts=now,
            workflow_id=a.workflow_id, step_id=a.step_id, attempt=a.attempt, **extra,
        )
        return Outgoing("event", msg, qos=1)
