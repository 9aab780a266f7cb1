"""Synchronization points (docs/design.md §6): barriers released when every participant arrived.

The participants of a sync step are the agents that did its participant steps. An arrival
is recorded whenever it comes — also before the barrier opens, while another participant
is still on its way — and the barrier releases everyone (``SyncRelease``) once all are
there. A timeout fails the sync step like any other step.
"""

from __future__ import annotations

from edge_runtime.core._context import Context
from edge_runtime.core._state import StepRun, WorkflowRun
from topics import Cancel, SyncRelease

__all__ = ["SyncPoints"]


class SyncPoints:
    """Opens, releases and dismisses the barriers of workflows."""

    def participants(self, wf: WorkflowRun, st: StepRun) -> list[str]:
        """Agents that must arrive at sync step ``st``: those of its finished participant
        steps, once each, in ``participants`` order (a skipped participant names nobody)."""
        agents: list[str] = []
        for p in st.spec.participants:
            part = wf.steps[p]
            if part.state == "done" and part.last_agent and part.last_agent not in agents:
                agents.append(part.last_agent)
        return agents

    def open(self, ctx: Context, wf: WorkflowRun, st: StepRun) -> None:
        """The sync step ``st`` is ready: open the barrier (and release it at once if every
        participant is there already)."""
        spec = st.spec
        timeout_at = None if spec.timeout_s is None else ctx.now + spec.timeout_s
        ctx.emit("step_ready", wf.id, {
            "step": st.id, "agents": self.participants(wf, st), "timeout_at": timeout_at,
        })
        if not self.release(ctx, wf, st, armed=False) and timeout_at is not None:
            ctx.set_timer(f"timeout:{wf.id}/{st.id}", timeout_at)

    def release(self, ctx: Context, wf: WorkflowRun, st: StepRun, *, armed: bool = True) -> bool:
        """If every participant of the open barrier ``st`` arrived, release them; released?

        ``armed``: its timeout timer was set (and is cancelled now)."""
        expected: list[str] = (st.outputs or {}).get("agents", [])
        if st.state != "executing" or any(a not in st.arrived for a in expected):
            return False
        if armed and st.timeout_at is not None:
            ctx.cancel_timer(f"timeout:{wf.id}/{st.id}")
        # An agent that arrived but is no longer a participant (its step was redone by
        # another) is waiting too: release it as well.
        for aid in [*expected, *(a for a in st.arrived if a not in expected)]:
            self.send_release(ctx, wf, st, aid, ctx.state.seq + 1)
        ctx.emit("step_done", wf.id, {"step": st.id, "outputs": {"agents": expected}})
        return True

    def send_release(
        self, ctx: Context, wf: WorkflowRun, st: StepRun, agent_id: str, seq: int,
    ) -> None:
        """``SyncRelease`` for the barrier released by event ``seq`` (a stable command id, so
        a re-sent one is a duplicate to the agent)."""
        ctx.send(agent_id, SyncRelease.model_construct(
            command_id=f"s{seq}-{agent_id}"[:64], ts=ctx.now, workflow_id=wf.id,
            step_id=st.id,
        ))

    def dismiss(self, ctx: Context, wf: WorkflowRun, reason: str) -> None:
        """The workflow ends: tell agents waiting at its unreleased barriers to leave."""
        for st in wf.steps.values():
            if st.spec.kind == "sync" and st.state != "done":
                for aid in st.arrived:
                    if aid:
                        ctx.send(aid, Cancel.model_construct(
                            command_id=f"c{ctx.state.seq + 1}-{st.id}"[:64], ts=ctx.now,
                            workflow_id=wf.id, step_id=st.id, reason=reason,
                        ))
