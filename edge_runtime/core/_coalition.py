"""Coalition steps (issue 9 item 2): a step that needs several agents at once.

Its life, every decision an event:

1. **Allocated as one unit** (``team_assigned``): every role gets its agent in one event,
   or the step keeps waiting with no agent held for it (``_coalition_fair``). Each member
   gets an ``Assign`` naming its ``role`` and the whole ``team``.
2. **The members meet** at the step: each sends ``sync_arrival`` for the step itself
   (``sync_arrived``); once all are there the step executes (``team_met``) and each member
   gets a ``SyncRelease``.
3. **Released together**: each member's ``step_done`` is recorded (``member_done``); the
   step is done (``step_done``, the members' outputs merged in role order) when the last
   one reports, and only then are the members freed — all at once.

A member lost, gone offline or failing: under ``direct`` (and every protocol but
``leader_follower``) the step goes back to be allocated as a unit — the other members are
told to ``Cancel`` and every member is freed (``step_requeued``, or ``step_failed`` for a
failure, retried by its policy). Under ``leader_follower`` the member is dropped
(``member_dropped``) and the rest go on; a dropped leader is replaced (``_leader``). A
timeout fails the step like any other, cancelling every member.
"""

from __future__ import annotations

import bisect
from typing import Any

from edge_runtime.core._allocation import Allocation
from edge_runtime.core._coalition_fair import TeamMatcher
from edge_runtime.core._context import Context
from edge_runtime.core._errors import StaleInput
from edge_runtime.core._flow import Flow
from edge_runtime.core._leader import LEADER_FOLLOWER, Leaders
from edge_runtime.core._recovery import Recovery
from edge_runtime.core._state import Agent, StepRun, WorkflowRun
from topics import (
    Assign,
    Cancel,
    StepAccepted,
    StepDone,
    StepFailed,
    StepProgress,
    StepStarted,
    SyncArrival,
    SyncRelease,
)

__all__ = ["Coalitions"]

_MEMBER_STATES = ("assigned", "preparing", "executing")
"""States in which members report on a coalition step (``cancelling``: the lead's, as for
any step, through ``_confirm``)."""


class Coalitions:
    """Allocates coalition steps as one unit and carries their members' reports."""

    def __init__(self, allocation: Allocation, flow: Flow, recovery: Recovery,
                 matcher: TeamMatcher, leaders: Leaders) -> None:
        self.allocation = allocation
        self.flow = flow
        self.recovery = recovery
        self.matcher = matcher
        self.leaders = leaders

    # --- allocation ------------------------------------------------------------------

    def offer(self, ctx: Context, wf: WorkflowRun, st: StepRun) -> None:
        """The coalition step ``st`` is ready: form its team now if it is first in line
        and one is free, else queue it (``step_ready``)."""
        queue = ctx.state.queue
        if not queue or wf.step_key(st) < queue[0] or self.only_teams_ahead(ctx, wf, st):
            team = self._match(ctx, wf, st)
            if team is not None:
                self.assign(ctx, wf, st, team)
                return
        ctx.emit("step_ready", wf.id, {"step": st.id})

    def only_teams_ahead(self, ctx: Context, wf: WorkflowRun, st: StepRun) -> bool:
        """Whether every step queued ahead of ``st`` is a coalition step still waiting for
        its team: they hold no agent, so ``st`` may take a free one now (no partial hold;
        a starving one keeps what it needs through ``TeamMatcher.blocked``)."""
        state = ctx.state
        queue = state.queue
        ahead = bisect.bisect_left(queue, wf.step_key(st))
        if ahead == 0:
            return False
        workflows = state.workflows
        for i in range(ahead):
            key = queue[i]
            if not workflows[key[3]].steps[key[4]].spec.team:
                return False
        return True

    def try_form(self, ctx: Context, wf: WorkflowRun, st: StepRun) -> None:
        """The queued coalition step ``st``: form its team if one is free, else count a
        pass (``_coalition_fair``)."""
        team = self._match(ctx, wf, st)
        if team is not None:
            self.assign(ctx, wf, st, team)
        else:
            self.matcher.passed(ctx, wf, st)

    def _match(self, ctx: Context, wf: WorkflowRun, st: StepRun) -> dict[str, str] | None:
        """A free team for ``st`` if its resources may be taken now (``_resources``)."""
        resources = self.allocation.resources
        if st.spec.resources and not resources.free(
            ctx.state, wf, st, resources.plan(wf, st)[0]
        ):
            return None
        return self.matcher.match(ctx.state, wf, st, blocked=self.matcher.blocked(ctx, wf, st))

    def assign(self, ctx: Context, wf: WorkflowRun, st: StepRun, team: dict[str, str]) -> None:
        """Give ``st`` to the whole ``team`` at once: the event, one ``Assign`` per member,
        the timeout; under ``leader_follower`` the leader's election."""
        spec = st.spec
        now = ctx.now
        attempt = st.attempt + 1
        timeout_at = None if spec.timeout_s is None else now + spec.timeout_s
        cmd = f"a{ctx.state.seq + 1}"
        members = list(team.values())
        data: dict[str, Any] = {
            "step": st.id, "team": team, "lead": members[0], "attempt": attempt, "cmd": cmd,
            "timeout_at": timeout_at,
        }
        stall = self.allocation.stall_factor
        if stall is not None:
            data["stall_at"] = now + spec.estimated_duration_s * stall
            ctx.set_timer(f"stall:{wf.id}/{st.id}", data["stall_at"])
        if spec.hold_until:  # resources held past the step (_resources)
            data["holds"] = self.allocation.resources.plan(wf, st)[1]
        ctx.emit("team_assigned", wf.id, data)
        inputs: dict[str, Any] = {}
        for name, source in spec.inputs.items():
            sid, _, out = source.partition(".")
            inputs[name] = (wf.steps[sid].outputs or {}).get(out)
        for i, member in enumerate(spec.team):
            aid = team[member.role]
            ctx.send(aid, Assign.model_construct(
                command_id=f"{cmd}-{i}", ts=now, workflow_id=wf.id, step_id=st.id,
                attempt=attempt, kind=ctx.state.agents[aid].kind, action=spec.action,
                location=spec.location, params=spec.params, inputs=inputs,
                timeout_s=spec.timeout_s, outputs=list(spec.outputs), sync_point=None,
                role=member.role, team=members,
            ))
        if timeout_at is not None:
            ctx.set_timer(f"timeout:{wf.id}/{st.id}", timeout_at)
        if wf.coordination == LEADER_FOLLOWER:
            self.leaders.elect(ctx, wf, st, "assigned")

    # --- members' reports ------------------------------------------------------------

    def _member(self, agent: Agent, wf: WorkflowRun, st: StepRun, attempt: int, what: str) -> None:
        """Refuse (``StaleInput``) a report from an agent not in the team at that attempt."""
        if agent.id not in st.team.values() or st.attempt != attempt:
            raise StaleInput(
                f"{what} from {agent.id} for {wf.id}.{st.id} attempt {attempt}: the team is "
                f"{', '.join(st.team.values()) or 'not formed'} (attempt {st.attempt})"
            )
        if st.state not in _MEMBER_STATES:
            raise StaleInput(f"coalition step {wf.id}.{st.id} is {st.state}; {what} applies "
                             "only while its team holds it")

    def report(self, ctx: Context, agent: Agent, wf: WorkflowRun, st: StepRun,
               m: StepAccepted | StepStarted | StepProgress | StepDone | StepFailed) -> bool:
        """A member's step report; ``False``: not a coalition matter (the usual handling
        applies: the lead's report while the step is being cancelled)."""
        if st.state == "cancelling":
            if agent.id == st.agent:
                return False
            if agent.id in st.team.values():
                return True  # the lead speaks for the team while it is told to stop
        self._member(agent, wf, st, m.attempt, m.type)
        base: dict[str, Any] = {"step": st.id, "agent": agent.id, "eid": m.event_id}
        if isinstance(m, StepProgress):
            if agent.id == st.agent:  # the lead's progress is the step's
                ctx.emit("step_progress", wf.id, {**base, "progress": m.progress})
                if wf.coordination == LEADER_FOLLOWER:
                    self.leaders.forward(ctx, wf, st)
        elif isinstance(m, StepDone):
            if st.state != "executing":
                raise StaleInput(f"{agent.id} reports {wf.id}.{st.id} done before its team "
                                 f"met (arrived: {', '.join(st.arrived) or 'nobody'})")
            if agent.id not in st.members_done:
                ctx.emit("member_done", wf.id, {**base, "outputs": m.outputs})
                self._finish_if_all_done(ctx, wf, st)
        elif isinstance(m, StepFailed):
            reason = f"failed: {m.error_type}"
            if wf.coordination == LEADER_FOLLOWER:
                self.drop(ctx, wf, st, agent.id, reason, m.event_id)
            else:
                self._cancel_others(ctx, wf, st, agent.id, reason)
                self.recovery.fail_step(ctx, wf, st, m.error_type, m.message,
                                        retryable=m.retryable, extra=base)
            self.allocation.allocate_waiting(ctx)
        # Accepted and started: each member is on its way; the meeting is what counts.
        return True

    def arrival(self, ctx: Context, agent: Agent, wf: WorkflowRun, st: StepRun,
                m: SyncArrival) -> None:
        """A member reached the step: record it; the team meets once all are there. A
        repeat (also one after the meeting: the release went out at QoS 1) changes nothing."""
        if agent.id in st.arrived and agent.id in st.team.values():
            return
        self._member(agent, wf, st, m.attempt, "sync_arrival")
        ctx.emit("sync_arrived", wf.id, {"step": st.id, "agent": agent.id, "eid": m.event_id})
        self._meet_if_all(ctx, wf, st)

    def _meet_if_all(self, ctx: Context, wf: WorkflowRun, st: StepRun) -> None:
        if st.state in ("assigned", "preparing") and all(
            a in st.arrived for a in st.team.values()
        ):
            ev = ctx.emit("team_met", wf.id, {"step": st.id, "team": list(st.team.values())})
            self._release(ctx, wf, st, list(st.team.values()), ev.seq)

    def _release(self, ctx: Context, wf: WorkflowRun, st: StepRun, members: list[str],
                 seq: int) -> None:
        """``SyncRelease`` for the meeting of event ``seq`` (a stable command id)."""
        for aid in members:
            ctx.send(aid, SyncRelease.model_construct(
                command_id=f"s{seq}-{aid}"[:64], ts=ctx.now, workflow_id=wf.id,
                step_id=st.id))

    def _finish_if_all_done(self, ctx: Context, wf: WorkflowRun, st: StepRun) -> None:
        """Every current member reported done: the step is done and frees them together."""
        if any(a not in st.members_done for a in st.team.values()):
            return
        outputs: dict[str, Any] = {}
        for aid in st.team.values():
            outputs.update(st.members_done[aid])
        missing = [o for o in st.spec.outputs if o not in outputs]
        if missing:
            self.recovery.fail_step(ctx, wf, st, "invalid_output",
                                    f"missing outputs: {', '.join(missing)}", retryable=True)
            return
        if st.timeout_at is not None:
            ctx.cancel_timer(f"timeout:{wf.id}/{st.id}")
        ctx.emit("step_done", wf.id, {"step": st.id, "outputs": outputs})
        self.flow.advance(ctx, wf)

    # --- members lost --------------------------------------------------------------

    def lost(self, ctx: Context, wf: WorkflowRun, st: StepRun, agent: Agent, reason: str) -> None:
        """Member ``agent`` of ``st`` is lost (silent, offline, changed kind)."""
        if wf.coordination == LEADER_FOLLOWER and st.state in _MEMBER_STATES:
            self.drop(ctx, wf, st, agent.id, f"agent {reason}")
            return
        self._cancel_others(ctx, wf, st, agent.id, f"{agent.id} {reason}")
        self._requeue(ctx, wf, st, f"agent {reason}")

    def drop(self, ctx: Context, wf: WorkflowRun, st: StepRun, aid: str, reason: str,
             eid: str | None = None) -> None:
        """``leader_follower``: ``aid`` leaves the team; the rest go on (a new leader if it
        led). The last member leaving sends the step back to be allocated. ``eid``: the
        member's event that said it failed (remembered: a redelivery is dropped)."""
        if list(st.team.values()) == [aid]:
            self._requeue(ctx, wf, st, f"last member {aid} {reason}")
            return
        was_leader = st.agent == aid
        data: dict[str, Any] = {"step": st.id, "agent": aid, "reason": reason}
        if eid is not None:
            data["eid"] = eid
        ctx.emit("member_dropped", wf.id, data)
        if was_leader:
            self.leaders.elect(ctx, wf, st, f"leader {aid} {reason}", previous=aid)
        if st.state == "executing":
            self._finish_if_all_done(ctx, wf, st)
        else:
            self._meet_if_all(ctx, wf, st)

    def _requeue(self, ctx: Context, wf: WorkflowRun, st: StepRun, reason: str) -> None:
        if st.timeout_at is not None:
            ctx.cancel_timer(f"timeout:{wf.id}/{st.id}")
        ctx.emit("step_requeued", wf.id, {"step": st.id, "reason": reason})
        self.flow.advance(ctx, wf)

    def _cancel_others(self, ctx: Context, wf: WorkflowRun, st: StepRun, aid: str,
                       reason: str) -> None:
        """Tell the members other than ``aid`` to abandon the step (it goes back whole)."""
        seq = ctx.state.seq + 1
        for other in st.team.values():
            if other != aid:
                ctx.send(other, Cancel.model_construct(
                    command_id=f"c{seq}-{other}"[:64], ts=ctx.now, workflow_id=wf.id,
                    step_id=st.id, reason=reason[:200]))
