"""The core's decisions: what events follow from the projection (dependencies, allocation,
retries, rollback, propagation between workflows).

Every method here only *reads* the projection and calls ``_emit``, which makes the next
event and applies it at once, so each decision sees the effect of the previous one.
Nothing here raises once an input was accepted: a failing condition becomes a step failure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edge_runtime.core._effects import Append, Archive, CancelTimer, Effect, Publish, SetTimer
from edge_runtime.core._event import Event
from edge_runtime.core._expr import ExpressionError, evaluate_condition
from edge_runtime.core._machine import STEP_TERMINAL
from edge_runtime.core._projection import Agent, Projection, StepRun, WorkflowRun
from edge_runtime.core._template import Step, Template
from edge_runtime.core._views import encode_workflow_record
from topics import Assign, Cancel, SyncRelease, agent_topic

__all__ = ["CoreConfig", "CostFunction", "Engine"]

CostFunction = Callable[[Agent, Step, WorkflowRun], float]
"""Cost of giving a step to an agent (lower wins; ties go to the lower agent id)."""

_RUNNING = frozenset({"assigned", "preparing", "executing", "validating", "cleanup"})


@dataclass(frozen=True)
class CoreConfig:
    """Tunables of the workflow engine."""

    liveness_factor: float = 1.5
    """An agent is lost after ``liveness_s * liveness_factor`` without a state message."""
    dedup_window: int = 256
    """Event ids remembered per agent to drop redelivered agent events."""
    command_window: int = 4096
    """Hub command ids remembered to drop redelivered commands."""
    manual_intervention: bool = True
    """After retries are exhausted wait for an operator (else the workflow fails)."""
    max_checkpoints: int = 4
    """Recovery checkpoints kept per workflow (oldest dropped)."""
    battery_delta: float = 1.0
    """Battery changes smaller than this (percent) are not recorded as events."""
    cost: CostFunction | None = None
    """Allocation cost; ``None`` means 0 for every agent (the lowest id wins)."""
    archive_terminal: bool = True
    """Drop completed and cancelled workflows from memory once no pending workflow depends
    on them (event ``workflow_archived``, effect ``Archive`` with the final record)."""


class Engine(Projection):
    """Decision helpers shared by the input handlers of ``Core``."""

    def __init__(self, facility: str, templates: dict[str, Template], config: CoreConfig) -> None:
        super().__init__(
            facility, templates, config.dedup_window, config.command_window,
            config.max_checkpoints,
        )
        self.config = config
        self._fx: list[Effect] = []
        self._candidates: list[str] = []
        """Workflows that may have become archivable during this input (checked at its end)."""
        self._now = 0.0

    # --- making events ----------------------------------------------------------------

    def _emit(self, kind: str, workflow_id: str | None, data: dict[str, Any]) -> Event:
        hlc = max(self._hlc + 1, int(self._now * 1000) << 16)
        event = Event(self._seq + 1, hlc, kind, workflow_id, data)
        self.apply(event)
        self._fx.append(Append(event))
        return event

    def _send(self, agent_id: str, message: Any) -> None:
        self._fx.append(Publish(agent_topic(self.facility, agent_id, "cmd"), message, 1))

    # --- dependencies -----------------------------------------------------------------

    def _advance(self, wf: WorkflowRun) -> None:
        """Start every step whose dependencies are met; complete the workflow when done."""
        if not wf.state.startswith("active"):
            return
        now = self._now
        progressed = True
        while progressed:
            progressed = False
            for st in list(wf.steps.values()):
                if st.state != "pending" or (st.retry_at is not None and st.retry_at > now):
                    continue
                if wf.rollback is not None and st.comp_of is None:
                    continue
                if self._consider(wf, st):
                    progressed = True
        if wf.rollback is not None:
            if all(s.state == "done" for s in wf.steps.values() if s.comp_of is not None):
                self._finish_rollback(wf)
            return
        for st in wf.steps.values():
            if st.state not in STEP_TERMINAL:
                return
        self._emit("workflow_completed", wf.id, {})
        self._propagate(wf)

    def _consider(self, wf: WorkflowRun, st: StepRun) -> bool:
        """Start, skip or fail the pending step ``st`` if its predecessors allow; changed?"""
        steps = wf.steps
        any_done = not st.preds
        for p in st.preds:
            state = steps[p].state
            if state == "done":
                any_done = True
            elif state != "skipped":
                return False
        if not any_done:
            self._emit("step_skipped", wf.id, {"step": st.id, "reason": "no predecessor ran"})
            return True
        owner = wf.template._branch_of.get(st.id)
        if owner is not None:
            decided = steps[owner].outputs or {}
            taken = st.id in steps[owner].spec.then
            if decided.get("result") is not taken:
                self._emit("step_skipped", wf.id, {"step": st.id, "reason": f"{owner} chose"})
                return True
        spec = st.spec
        try:
            if spec.when is not None and not evaluate_condition(spec.when, self._context(wf)):
                self._emit("step_skipped", wf.id, {"step": st.id, "reason": "condition false"})
                return True
            if spec.kind == "decision":
                assert spec.condition is not None
                result = evaluate_condition(spec.condition, self._context(wf))
                self._emit("step_decided", wf.id, {"step": st.id, "result": result})
                return True
        except ExpressionError as exc:
            self._fail_step(wf, st, "condition_error", str(exc), retryable=False)
            return True
        for name, source in spec.inputs.items():
            sid, _, out = source.partition(".")
            if out not in (steps[sid].outputs or {}):
                self._fail_step(
                    wf, st, "missing_input", f"input {name}: {sid} gave no {out!r}",
                    retryable=False,
                )
                return True
        self._start_step(wf, st)
        return True

    def _context(self, wf: WorkflowRun) -> dict[str, Any]:
        outputs = {sid: s.outputs or {} for sid, s in wf.steps.items() if s.state == "done"}
        return {"data": wf.data, "outputs": outputs}

    def _start_step(self, wf: WorkflowRun, st: StepRun) -> None:
        spec = st.spec
        kind = spec.kind
        if kind == "wait":
            until = None if spec.duration_s is None else self._now + spec.duration_s
            self._emit("step_ready", wf.id, {"step": st.id, "until": until})
            if until is not None:
                self._fx.append(SetTimer(f"wait:{wf.id}/{st.id}", until))
        elif kind == "sync":
            timeout_at = None if spec.timeout_s is None else self._now + spec.timeout_s
            self._emit("step_ready", wf.id, {
                "step": st.id, "agents": self._sync_agents(wf, st), "timeout_at": timeout_at,
            })
            # Everyone may be there already (arrivals are recorded before the barrier opens).
            if not self._release_sync(wf, st, armed=False) and timeout_at is not None:
                self._fx.append(SetTimer(f"timeout:{wf.id}/{st.id}", timeout_at))
        else:
            queue = self._queue
            agent = None
            if not queue or wf.step_key(st) < queue[0]:
                agent = self._pick(wf, st)
            if agent is not None:
                self._assign(wf, st, agent)
            else:
                self._emit("step_ready", wf.id, {"step": st.id})

    # --- sync points (barriers) ---------------------------------------------------------

    def _sync_agents(self, wf: WorkflowRun, st: StepRun) -> list[str]:
        """Agents that must arrive at sync step ``st``: those of its finished participant
        steps, once each, in ``participants`` order (a skipped participant names nobody)."""
        agents: list[str] = []
        for p in st.spec.participants:
            part = wf.steps[p]
            if part.state == "done" and part.last_agent and part.last_agent not in agents:
                agents.append(part.last_agent)
        return agents

    def _release_sync(self, wf: WorkflowRun, st: StepRun, *, armed: bool = True) -> bool:
        """If every participant of the open barrier ``st`` arrived, release them; released?

        ``armed``: its timeout timer was set (and is cancelled now)."""
        expected: list[str] = (st.outputs or {}).get("agents", [])
        if st.state != "executing" or any(a not in st.arrived for a in expected):
            return False
        if armed and st.timeout_at is not None:
            self._fx.append(CancelTimer(f"timeout:{wf.id}/{st.id}"))
        # An agent that arrived but is no longer a participant (its step was redone by
        # another) is waiting too: release it as well.
        for aid in [*expected, *(a for a in st.arrived if a not in expected)]:
            self._send_release(wf, st, aid, self._seq + 1)
        self._emit("step_done", wf.id, {"step": st.id, "outputs": {"agents": expected}})
        return True

    def _send_release(self, wf: WorkflowRun, st: StepRun, agent_id: str, seq: int) -> None:
        """``SyncRelease`` for the barrier released by event ``seq`` (a stable command id, so
        a re-sent one is a duplicate to the agent)."""
        self._send(agent_id, SyncRelease.model_construct(
            command_id=f"s{seq}-{agent_id}"[:64], ts=self._now, workflow_id=wf.id,
            step_id=st.id,
        ))

    def _dismiss_waiting(self, wf: WorkflowRun, reason: str) -> None:
        """The workflow ends: tell agents waiting at its unreleased barriers to leave."""
        for st in wf.steps.values():
            if st.spec.kind == "sync" and st.state != "done":
                for aid in st.arrived:
                    if aid:
                        self._send(aid, Cancel.model_construct(
                            command_id=f"c{self._seq + 1}-{st.id}"[:64], ts=self._now,
                            workflow_id=wf.id, step_id=st.id, reason=reason,
                        ))

    # --- allocation -------------------------------------------------------------------

    def _pick(self, wf: WorkflowRun, st: StepRun) -> Agent | None:
        """The agent to give ``st`` to now, or ``None`` (none able, or a resource is held)."""
        idle = self._idle.get(st.spec.kind)
        if not idle:
            return None
        for res in st.spec.resources:
            if res in self._holds:
                return None
        caps = st.spec.capabilities
        agents = self._agents
        cost = self.config.cost
        best: Agent | None = None
        best_cost = 0.0
        for aid in idle:
            agent = agents[aid]
            if aid == st.avoid or (caps and not agent.caps.issuperset(caps)):
                continue
            if cost is None:
                return agent
            c = cost(agent, st.spec, wf)
            if best is None or c < best_cost:
                best, best_cost = agent, c
        return best

    def _assign(self, wf: WorkflowRun, st: StepRun, agent: Agent) -> None:
        spec = st.spec
        now = self._now
        attempt = st.attempt + 1
        timeout_at = None if spec.timeout_s is None else now + spec.timeout_s
        cmd = f"a{self._seq + 1}"
        self._emit("step_assigned", wf.id, {
            "step": st.id, "agent": agent.id, "attempt": attempt, "cmd": cmd,
            "timeout_at": timeout_at,
        })
        inputs: dict[str, Any] = {}
        for name, source in spec.inputs.items():
            sid, _, out = source.partition(".")
            inputs[name] = (wf.steps[sid].outputs or {}).get(out)
        self._send(agent.id, Assign.model_construct(
            command_id=cmd, ts=now, workflow_id=wf.id, step_id=st.id, attempt=attempt,
            kind=spec.kind, action=spec.action, location=spec.location, params=spec.params,
            inputs=inputs, timeout_s=spec.timeout_s, outputs=list(spec.outputs),
            sync_point=None if st.comp_of is not None else wf.template.sync_point(st.id),
        ))
        if timeout_at is not None:
            self._fx.append(SetTimer(f"timeout:{wf.id}/{st.id}", timeout_at))

    def _allocate_waiting(self) -> None:
        """Give queued steps, best first, to agents that are free now."""
        if not self._queue:
            return
        workflows = self._workflows
        for key in list(self._queue):
            if not any(self._idle.values()):
                return
            wf = workflows[key[3]]
            st = wf.steps[key[4]]
            if st.state != "allocating" or not wf.state.startswith("active"):
                continue
            agent = self._pick(wf, st)
            if agent is not None:
                self._assign(wf, st, agent)

    # --- failure, retry, rollback -----------------------------------------------------

    def _fail_step(
        self, wf: WorkflowRun, st: StepRun, error: str, message: str, *, retryable: bool,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Record a failure and decide: retry after backoff, ask an operator, or abort."""
        if st.timeout_at is not None:
            self._fx.append(CancelTimer(f"timeout:{wf.id}/{st.id}"))
        data = {"step": st.id, "error": error, "message": message, "retryable": retryable,
                "counts": True}
        if extra:
            data.update(extra)
        self._emit("step_failed", wf.id, data)
        policy = st.spec.retry
        if (
            retryable and error not in policy.non_retryable_errors
            and st.failures < policy.max_attempts
        ):
            at = self._now + policy.delay(st.failures)
            self._emit("step_retry", wf.id, {"step": st.id, "at": at})
            self._fx.append(SetTimer(f"retry:{wf.id}/{st.id}", at))
        elif self.config.manual_intervention or wf.rollback is not None:
            self._checkpoint(wf, "before_operator")
            self._emit("operator_needed", wf.id, {"step": st.id, "error": error})
        else:
            self._abort(wf, f"step {st.id} failed: {error}")

    def _cancel_running(self, wf: WorkflowRun, reason: str, only: str | None = None) -> None:
        """Tell the agents of the workflow's running steps (or of step ``only``) to stop."""
        for st in wf.steps.values():
            if st.agent is not None and st.state in _RUNNING and only in (None, st.id):
                self._send(st.agent, Cancel.model_construct(
                    command_id=f"c{self._seq + 1}-{st.id}"[:64], ts=self._now,
                    workflow_id=wf.id, step_id=st.id, reason=reason,
                ))

    def _abort(self, wf: WorkflowRun, reason: str) -> None:
        """Fail the workflow, first rolling back if its template says so."""
        if (
            wf.template.on_failure == "compensate" and wf.rollback is None
            and self._start_rollback(wf, None, "abort")
        ):
            return
        self._cancel_running(wf, reason)
        self._dismiss_waiting(wf, reason)
        self._emit("workflow_failed", wf.id, {"reason": reason})
        self._propagate(wf)
        self._allocate_waiting()

    def _start_rollback(self, wf: WorkflowRun, after: str | None, then: str) -> bool:
        """Compensate, newest first, the steps finished after ``after``; False if none."""
        floor = wf.steps[after].done_seq if after is not None else 0
        done = [s for s in wf.steps.values()
                if s.state == "done" and s.comp_of is None and s.done_seq > floor]
        todo = [s.id for s in sorted(done, key=lambda s: -s.done_seq) if s.spec.compensation]
        if not todo:
            return False
        self._checkpoint(wf, "before_rollback")
        self._cancel_running(wf, "rollback")
        self._emit("compensation_started", wf.id, {"steps": todo, "then": then})
        self._advance(wf)
        self._allocate_waiting()
        return True

    def _finish_rollback(self, wf: WorkflowRun) -> None:
        then = wf.rollback
        reset = [s.id for s in wf.steps.values() if s.comp_of is None and s.state != "done"]
        self._emit("rollback_finished", wf.id, {"reset": reset if then == "retry" else []})
        if then == "retry":
            self._advance(wf)
        else:
            self._dismiss_waiting(wf, "rolled back")
            self._emit("workflow_failed", wf.id, {"reason": "rolled back"})
            self._propagate(wf)

    def _checkpoint(self, wf: WorkflowRun, label: str) -> str:
        """Take a recovery checkpoint of ``wf`` (state, assignments, holds, data); its id."""
        cp_id = f"cp{self._seq + 1}"
        steps = {
            sid: [st.state, st.attempt, st.failures, st.outputs, st.done_seq]
            for sid, st in wf.steps.items() if st.comp_of is None
        }
        holds = {r: h[1] for r, h in self._holds.items() if h[0] == wf.id}
        assignments = {sid: st.agent for sid, st in wf.steps.items() if st.agent is not None}
        self._emit("checkpoint_taken", wf.id, {
            "id": cp_id, "label": label, "state": wf.state, "data": wf.data, "steps": steps,
            "holds": holds, "assignments": assignments,
        })
        return cp_id

    # --- between workflows ------------------------------------------------------------

    def _propagate(self, wf: WorkflowRun) -> None:
        """Start dependants whose dependencies all completed; fail those of a failure.

        ``wf`` just ended: it, and the workflows it waited for, may now be archived."""
        self._candidates.append(wf.id)
        self._candidates.extend(wf.depends_on)
        for dep_id in wf.dependents:
            dep = self._workflows.get(dep_id)
            if dep is None or dep.state != "pending":
                continue
            if wf.state != "completed":
                self._emit("workflow_failed", dep.id,
                           {"reason": f"dependency {wf.id} {wf.state}"})
                self._propagate(dep)
            else:
                self._start_if_ready(dep)

    def _start_if_ready(self, wf: WorkflowRun) -> None:
        """Start the pending ``wf`` if every workflow it depends on completed."""
        if wf.state == "pending" and all(
            self._state_of(d) == "completed" for d in wf.depends_on
        ):
            self._emit("workflow_started", wf.id, {})
            self._advance(wf)
            self._candidates.extend(wf.depends_on)

    def _archive_ready(self) -> None:
        """Archive each candidate that is completed or cancelled and that no pending workflow
        still waits for (failed ones stay: an operator may recover them)."""
        candidates, self._candidates = self._candidates, []
        if not self.config.archive_terminal:
            return
        workflows = self._workflows
        for wid in dict.fromkeys(candidates):
            wf = workflows.get(wid)
            if wf is None or wf.state not in ("completed", "cancelled"):
                continue
            if any(
                (dep := workflows.get(d)) is not None and dep.state == "pending"
                for d in wf.dependents
            ):
                continue
            record = encode_workflow_record(wf)
            self._emit("workflow_archived", wid, {"state": wf.state})
            self._fx.append(Archive(wid, record))
