"""Cancel and pause mean what the robot did (docs/decisions.md, "Cancel and pause").

A workflow whose steps are held by agents is not ``cancelled`` or ``paused`` when the hub
says so, but when the agents confirm: until then it is ``cancelling`` or ``pausing``, and
each step told to stop is ``cancelling``. The confirmation is the agent's ``CommandAck`` for
that command id (a VDA 5050 AGV's is made by the VDA bridge from the instant action's
result). An agent that refuses, or finishes a step it was told to cancel, is recorded as a
``command_refused`` event and reported on ``edge/errors``, never as done. An agent that
stops by failing, or is lost, has stopped: that confirms a cancel too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from edge_runtime.core._allocation import Allocation
from edge_runtime.core._conflict import Conflicts
from edge_runtime.core._context import Context
from edge_runtime.core._effects import Publish
from edge_runtime.core._flow import Flow
from edge_runtime.core._state import StepRun, WorkflowRun
from edge_runtime.core._sync import SyncPoints
from topics import Cancel, CommandAck, ErrorReport, Pause, Resume, edge_topic

__all__ = ["Confirmations"]

_HELD = ("assigned", "preparing", "executing", "validating", "cleanup")
"""Step states in which an agent holds the step and must confirm a cancel or a pause."""

Then = Literal["requeue", "avoid"]
"""After a confirmed cancel the step waits to be allocated again (``avoid``: not to the
agent that held it, an operator's reassign)."""


class Confirmations:
    """Cancels and pauses that wait for the agents; handles ``CommandAck``."""

    def __init__(self, flow: Flow, allocation: Allocation, sync: SyncPoints,
                 conflicts: Conflicts) -> None:
        self.flow = flow
        self.conflicts = conflicts
        self.allocation = allocation
        self.sync = sync

    def handlers(self) -> dict[type, Callable[[Context, Any], None]]:
        """The inputs this component takes."""
        return {CommandAck: self.ack}

    # --- what the hub and operators ask ------------------------------------------------

    def cancel(self, ctx: Context, wf: WorkflowRun, reason: str) -> None:
        """Cancel ``wf``: at once if no agent holds a step of it, else ``cancelling``."""
        self.sync.dismiss(ctx, wf, reason)
        held = [st for st in wf.steps.values() if st.agent is not None and st.state in _HELD]
        for st in held:
            self.withdraw(ctx, wf, st, reason, "requeue")
        if held:
            ctx.emit("workflow_cancelling", wf.id, {"reason": reason})
        else:
            ctx.emit("workflow_cancelled", wf.id, {"reason": reason})
            self.flow.propagate(ctx, wf)

    def withdraw(self, ctx: Context, wf: WorkflowRun, st: StepRun, reason: str,
                 then: Then) -> None:
        """Tell the agent holding ``st`` to stop; the step is ``cancelling`` until it confirms."""
        assert st.agent is not None
        cmd = f"c{ctx.state.seq + 1}-{st.id}"[:64]
        for aid in st.team.values() if st.team else (st.agent,):  # a coalition: all members
            ctx.send(aid, Cancel.model_construct(
                command_id=cmd, ts=ctx.now, workflow_id=wf.id, step_id=st.id, reason=reason))
        ctx.emit("step_cancelling", wf.id, {
            "step": st.id, "agent": st.agent, "cmd": cmd, "then": then, "reason": reason})

    def pause(self, ctx: Context, wf: WorkflowRun) -> None:
        """Pause ``wf``: at once if no agent holds a step of it, else ``pausing``."""
        steps: dict[str, str] = {}
        for st in wf.steps.values():
            if st.agent is not None and st.state in _HELD:
                cmd = f"p{ctx.state.seq + 1}-{st.id}"[:64]
                for aid in st.team.values() if st.team else (st.agent,):
                    ctx.send(aid, Pause.model_construct(
                        command_id=cmd, ts=ctx.now, workflow_id=wf.id, step_id=st.id))
                steps[st.id] = cmd
        if steps:
            ctx.emit("workflow_pausing", wf.id, {"steps": steps})
        else:
            ctx.emit("workflow_paused", wf.id, {})

    def resume(self, ctx: Context, wf: WorkflowRun, reason: str = "") -> None:
        """Resume ``wf`` where it paused; agents holding its steps are told to go on."""
        ctx.emit("workflow_resumed", wf.id, {"reason": reason} if reason else {})
        for st in wf.steps.values():
            if st.agent is not None:
                for aid in st.team.values() if st.team else (st.agent,):
                    ctx.send(aid, Resume.model_construct(
                        command_id=f"r{ctx.state.seq}-{st.id}"[:64], ts=ctx.now,
                        workflow_id=wf.id, step_id=st.id))
        self.flow.advance(ctx, wf)
        self.allocation.allocate_waiting(ctx)

    # --- what the agents answer --------------------------------------------------------

    def ack(self, ctx: Context, m: CommandAck) -> None:
        """An agent's reply to a command: it confirms (or refuses) a cancel or a pause we
        wait for; any other reply (an assign's, a repeat) changes nothing."""
        agent = ctx.state.agents.get(m.agent_id)
        if agent is None or agent.task is None:
            return
        wf = ctx.state.workflows.get(agent.task[0])
        st = wf.steps.get(agent.task[1]) if wf is not None else None
        if wf is None or st is None or st.unconfirmed is None \
                or st.unconfirmed[0] != m.command_id:
            return
        what = st.unconfirmed[1]
        if m.outcome == "refused":
            self.refused(ctx, wf, st, "refused", m.reason or "refused")
            if what == "pause" and wf.state == "pausing":
                self.resume(ctx, wf, f"{m.agent_id} refused to pause: {m.reason}"[:200])
                return
        elif what == "cancel":
            self.stopped(ctx, wf, st, "cancel confirmed")
            return
        else:
            ctx.emit("pause_confirmed", wf.id,
                     {"step": st.id, "agent": m.agent_id, "cmd": m.command_id})
        self.flow.advance(ctx, wf)

    def stopped(self, ctx: Context, wf: WorkflowRun, st: StepRun, reason: str,
                eid: str | None = None) -> None:
        """The agent of the ``cancelling`` step ``st`` stopped: the step waits again.
        ``eid``: the agent's event that said so (remembered, so a redelivery is dropped)."""
        assert st.unconfirmed is not None and st.agent is not None
        avoid = st.agent if st.unconfirmed[2] == "avoid" else None
        if st.timeout_at is not None:
            ctx.cancel_timer(f"timeout:{wf.id}/{st.id}")
        data: dict[str, Any] = {"step": st.id, "reason": reason, "avoid": avoid}
        if eid is not None:
            data.update(agent=st.agent, eid=eid)
        ctx.emit("step_requeued", wf.id, data)
        self.flow.advance(ctx, wf)
        self.allocation.allocate_waiting(ctx)

    def finished_anyway(self, ctx: Context, wf: WorkflowRun, st: StepRun) -> None:
        """The agent finished the step it was told to cancel: say so before it is done."""
        self.refused(ctx, wf, st, "finished", "finished the step instead of stopping")

    def refused(self, ctx: Context, wf: WorkflowRun, st: StepRun,
                outcome: Literal["refused", "finished"], reason: str) -> None:
        """Record and report that the agent did not do what ``st.unconfirmed`` asked."""
        assert st.unconfirmed is not None and st.agent is not None
        cmd, what = st.unconfirmed[0], st.unconfirmed[1]
        ctx.emit("command_refused", wf.id, {
            "step": st.id, "agent": st.agent, "cmd": cmd, "command": what,
            "outcome": outcome, "reason": reason[:512],
        })
        facility = ctx.state.facility
        report = ErrorReport.model_construct(
            reason="command_refused", agent_id=st.agent, ts=ctx.now, topic="",
            command_id=None,
            message=f"{st.agent} {outcome} the {what} of {wf.id}.{st.id} ({cmd}): "
                    f"{reason}"[:1024],
        )
        ctx.effects.append(Publish(edge_topic(facility, "errors"), report, 0))
        self.conflicts.refused(ctx, st.agent, wf.id, report.message)
