"""The sans-IO behaviour of one simulated native agent (robot, person or AI).

``AgentBehaviour`` is a deterministic state machine in the style of the edge core: it is fed
commands and the time, and answers with the messages the agent sends. It owns no socket,
no clock and no randomness of its own (random choices come from a seed), so the same object
runs under the paho runner in real time and could run in virtual time (no simulator drives
it yet).

    on_command(cmd, now) -> list[Outgoing]     # replies due right now
    tick(now)            -> list[Outgoing]     # whatever fell due since the last call
    next_wakeup()        -> float | None       # when ``tick`` has something to say next

Who the agent is (``AgentSpec``) and what it sends (``Outgoing``) are in
``agents_sim._native_spec``.
"""

from __future__ import annotations

import hashlib
import random
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Literal

from agents_sim._native_spec import DEFAULT_DURATION_S, AgentSpec, Failure, Outgoing
from topics import (
    AgentConn,
    AgentState,
    Assign,
    Award,
    Bid,
    Cancel,
    Cfp,
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

_SEEN_COMMANDS = 1024
"""How many command ids an agent remembers to ignore redelivered duplicates."""


@dataclass(slots=True)
class _Step:
    """The step an agent works on, as a timeline of events still to send."""

    assign: Assign
    plan: list[tuple[float, str]]
    """(due time, what) pairs still ahead, in time order; what ∈ started/progress/done/…."""
    failure: Failure | None = None
    paused_at: float | None = None


@dataclass(slots=True)
class _Counters:
    events: int = 0
    fail_hits: dict[str, int] = field(default_factory=dict)


def ai_outputs(seed: int, agent_id: str, workflow_id: str, step_id: str, attempt: int
               ) -> dict[str, Any]:
    """Deterministic outputs of an AI step: ``{"defect": bool, "score": float}``.

    The same seed, agent, workflow, step and attempt always give the same answer.
    >>> ai_outputs(1, "ai-1", "wf", "inspect", 1) == ai_outputs(1, "ai-1", "wf", "inspect", 1)
    True
    """
    rng = random.Random(_digest(seed, agent_id, workflow_id, step_id, attempt))
    score = round(rng.uniform(0.5, 1.0), 3)
    return {"defect": score < 0.6, "score": score}


def _digest(*parts: object) -> int:
    text = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")


class AgentBehaviour:
    """One agent's protocol behaviour; see the module docstring for the three calls."""

    def __init__(self, spec: AgentSpec, now: float = 0.0) -> None:
        self.spec = spec
        """Who this agent is."""
        self.node: str | None = spec.node
        """Where it is now (the location of its last step)."""
        self.battery = 100.0
        """State of charge, drained a little by every robot step."""
        self.dead = False
        """Set by an injected ``die`` fault: the agent sends nothing any more."""
        self.step: _Step | None = None
        """The step in hand, if any."""
        self.queue: list[Assign] = []
        """Assignments accepted while busy, started in order."""
        self.waiting: dict[tuple[str, str], float] = {}
        """Sync points (workflow, sync step) reached and not released yet → next re-send."""
        self.completed: list[str] = []
        """``workflow_id/step_id`` of every step done, in order (for tests and KPIs)."""
        self._seen: OrderedDict[str, None] = OrderedDict()
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
        """Apply a command from the edge; a command id seen before changes nothing."""
        if self.dead:
            return []
        command_id: str = getattr(cmd, "command_id", "")
        if command_id in self._seen:
            return []
        self._seen[command_id] = None
        if len(self._seen) > _SEEN_COMMANDS:
            self._seen.popitem(last=False)
        out: list[Outgoing] = []
        if isinstance(cmd, Assign):
            out += self._on_assign(cmd, now)
        elif isinstance(cmd, Cfp):
            out += self._on_cfp(cmd, now)
        elif isinstance(cmd, Cancel):
            self._on_cancel(cmd, now)
            self.waiting.pop((cmd.workflow_id, cmd.step_id), None)  # dismissed from a barrier
        elif isinstance(cmd, Pause):
            self._on_pause(cmd, now)
        elif isinstance(cmd, Resume):
            self._on_resume(cmd, now)
        elif isinstance(cmd, SyncRelease):
            self._on_release(cmd)
        elif isinstance(cmd, Award):
            pass  # the Assign that goes with an award carries everything we need
        return out + self.tick(now)

    def tick(self, now: float) -> list[Outgoing]:
        """Everything due by ``now``: step events in order, then a state if one is due."""
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
        if not self.dead and now >= self._next_state:
            out.append(Outgoing("state", self.state(now), qos=0))
            self._next_state = now + self.spec.state_period_s
        return out

    def next_wakeup(self) -> float | None:
        """The earliest time ``tick`` has something to send; None once dead."""
        if self.dead:
            return None
        due = self._next_state
        step = self.step
        if step is not None and step.paused_at is None and step.plan:
            due = min(due, step.plan[0][0])
        return min(due, *self.waiting.values()) if self.waiting else due

    def _retry_at(self, now: float) -> float:
        retry = self.spec.sync_retry_s
        return float("inf") if retry is None else now + retry

    def state(self, now: float) -> AgentState:
        """The agent's current ``AgentState``."""
        step = self.step
        status: Literal["idle", "busy", "paused"] = "idle"
        if step is not None:
            status = "paused" if step.paused_at is not None else "busy"
        return AgentState(
            agent_id=self.spec.agent_id, ts=now, status=status, node=self.node,
            battery=round(self.battery, 2) if self.spec.kind == "robot" else None,
            workflow_id=step.assign.workflow_id if step else None,
            step_id=step.assign.step_id if step else None,
        )

    # --- commands ------------------------------------------------------------------------

    def _on_assign(self, cmd: Assign, now: float) -> list[Outgoing]:
        if self.step is not None:
            self.queue.append(cmd)
            return [self._event(StepAccepted, cmd, now)]
        self._start(cmd, now)
        return [self._event(StepAccepted, cmd, now)]

    def _start(self, cmd: Assign, now: float) -> None:
        duration = self._duration(cmd)
        plan: list[tuple[float, str]] = [(now, "started")]
        failure = self._failure_for(cmd)
        n = self.spec.progress_steps
        for i in range(1, n + 1):
            plan.append((now + duration * i / (n + 1), "progress"))
        plan.append((now + duration, "done"))
        if failure is not None:
            cut = now + duration * failure.at
            plan = [p for p in plan if p[0] < cut] + [(cut, failure.mode)]
        self.step = _Step(cmd, plan, failure=failure)

    def _on_cfp(self, cmd: Cfp, now: float) -> list[Outgoing]:
        if not set(cmd.capabilities) <= set(self.spec.capabilities):
            return []
        busy = (1 if self.step is not None else 0) + len(self.queue)
        distance = 0.0 if cmd.location in (None, self.node) else 10.0
        jitter = (_digest(self.spec.seed, self.spec.agent_id, cmd.cfp_id) % 1000) / 1000
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

    def _on_cancel(self, cmd: Cancel, now: float) -> None:
        self.queue = [
            a for a in self.queue if (a.workflow_id, a.step_id) != (cmd.workflow_id, cmd.step_id)
        ]
        if self._matches(cmd):
            self._finish(now)  # abandoned: the edge already knows, so nothing is reported

    def _on_pause(self, cmd: Pause, now: float) -> None:
        if self._matches(cmd) and self.step is not None and self.step.paused_at is None:
            self.step.paused_at = now
            self._next_state = now

    def _on_resume(self, cmd: Resume, now: float) -> None:
        step = self.step
        if self._matches(cmd) and step is not None and step.paused_at is not None:
            held = now - step.paused_at
            step.plan = [(t + held, what) for t, what in step.plan]
            step.paused_at = None
            self._next_state = now

    def _on_release(self, cmd: SyncRelease) -> None:
        self.waiting.pop((cmd.workflow_id, cmd.step_id), None)

    def arrive(self, workflow_id: str, step_id: str, now: float) -> list[Outgoing]:
        """Reach the sync point ``step_id`` and wait there for its ``SyncRelease`` (or a
        ``Cancel`` naming it). The edge keeps the arrival even if the barrier is not open yet;
        it is repeated only every ``sync_retry_s`` as a safety net.
        """
        if self.dead:
            return []
        self.waiting[(workflow_id, step_id)] = self._retry_at(now)
        return [self._sync_arrival(workflow_id, step_id, now)]

    def _sync_arrival(self, workflow_id: str, step_id: str, now: float) -> Outgoing:
        return Outgoing("event", SyncArrival(
            event_id=self._event_id(now), agent_id=self.spec.agent_id, ts=now,
            workflow_id=workflow_id, step_id=step_id,
        ), qos=1)

    # --- step timeline -------------------------------------------------------------------

    def _advance(self, step: _Step, what: str, now: float) -> list[Outgoing]:
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
        outputs = self._outputs(a)
        self.completed.append(f"{a.workflow_id}/{a.step_id}")
        self._finish(now)
        out = [self._event(StepDone, a, now, outputs=outputs)]
        if a.sync_point is not None:
            out += self.arrive(a.workflow_id, a.sync_point, now)
        return out

    def _finish(self, now: float) -> None:
        self.step = None
        self._next_state = min(self._next_state, now)  # report the change at once
        if self.queue:  # the next queued step starts now; it was accepted when queued
            self._start(self.queue.pop(0), now)

    def _outputs(self, a: Assign) -> dict[str, Any]:
        if self.spec.kind == "ai":
            # The model's typed verdict wins over a synthetic value of the same name.
            return self._named_outputs(a) | ai_outputs(
                self.spec.seed, self.spec.agent_id, a.workflow_id, a.step_id, a.attempt)
        out: dict[str, Any] = {"agent": self.spec.agent_id}
        if a.location is not None:
            out["location"] = a.location
        return out | self._named_outputs(a)

    def _named_outputs(self, a: Assign) -> dict[str, Any]:
        """A synthetic value for every output the ``Assign`` says the step must produce."""
        return {n: f"{n}-{a.workflow_id}-{a.step_id}-{a.attempt}"[:256] for n in a.outputs}

    def _duration(self, cmd: Assign) -> float:
        raw = cmd.params.get("duration_s")
        base = float(raw) if isinstance(raw, int | float) and raw >= 0 else (
            DEFAULT_DURATION_S[self.spec.kind]
        )
        return base / self.spec.speed

    def _failure_for(self, cmd: Assign) -> Failure | None:
        for failure in self.spec.failures:
            if failure.match not in (cmd.step_id, cmd.action):
                continue
            key = f"{cmd.workflow_id}/{cmd.step_id}/{failure.match}"
            hits = self._counters.fail_hits.get(key, 0)
            if failure.times and hits >= failure.times:
                continue
            self._counters.fail_hits[key] = hits + 1
            return failure
        return None

    def _event_id(self, now: float) -> str:
        self._counters.events += 1
        return f"{self.spec.agent_id[:40]}-{self._counters.events}"

    def _event(self, cls: type[Any], a: Assign, now: float, **extra: Any) -> Outgoing:
        msg = cls(
            event_id=self._event_id(now), agent_id=self.spec.agent_id, ts=now,
            workflow_id=a.workflow_id, step_id=a.step_id, attempt=a.attempt, **extra,
        )
        return Outgoing("event", msg, qos=1)
