"""Timers (time is an input): what a due timer means, and re-arming them after a restart.

Timer ids say what they are for: ``liveness:<agent>``, ``retry:<wf>/<step>``,
``timeout:<wf>/<step>``, ``wait:<wf>/<step>``, ``stall:<wf>/<step>``, ``vote:<wf>/<step>``,
``alloc:batch`` (the batch window, ``_batch``),
``auction:<cfp>`` and ``deadline:<wf>``.
A timer for something that moved on
(the step finished, the workflow was archived) changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edge_runtime.core._agents import Agents
from edge_runtime.core._allocation import Allocation
from edge_runtime.core._auction import Auctions, auction_timers
from edge_runtime.core._consensus import Consensus
from edge_runtime.core._context import Context
from edge_runtime.core._flow import Flow
from edge_runtime.core._machine import WORKFLOW_TERMINAL
from edge_runtime.core._recovery import Recovery
from edge_runtime.core._state import FacilityState
from edge_runtime.core._temporal import TemporalRules

__all__ = ["Restarted", "TimerFired", "Timers", "armed_timers"]


@dataclass(frozen=True, slots=True)
class TimerFired:
    """A timer the core asked for (``SetTimer``) is due."""

    timer_id: str


@dataclass(frozen=True, slots=True)
class Restarted:
    """The shell (re)started after replay: re-arm every timer, liveness windows from ``now``."""


class Timers:
    """Handles ``TimerFired`` and ``Restarted``."""

    consensus: Consensus | None = None
    """Set by the core: closes votes at their deadline (``_consensus``)."""
    auctions: Auctions | None = None
    """Set by the core: ``auction:<cfp>`` closes bidding, withdraws awards (``_auction``)."""

    def __init__(
        self, agents: Agents, flow: Flow, allocation: Allocation, recovery: Recovery,
        temporal: TemporalRules,
    ) -> None:
        self.agents = agents
        self.temporal = temporal
        self.flow = flow
        self.allocation = allocation
        self.recovery = recovery

    def handlers(self) -> dict[type, Callable[[Context, Any], None]]:
        """The inputs this component takes."""
        return {TimerFired: self.fired, Restarted: self.restarted}

    def fired(self, ctx: Context, m: TimerFired) -> None:
        """A timer is due: lose a silent agent, retry, time out or end a wait."""
        kind, _, rest = m.timer_id.partition(":")
        if kind == "liveness":
            self.agents.silent(ctx, rest)
            return
        if kind == "alloc":  # the batch window ended (_batch)
            self.allocation.allocate_waiting(ctx)
            return
        if kind == "auction" and self.auctions is not None:
            self.auctions.fired(ctx, rest)
            return
        if kind == "deadline":
            deadlined = ctx.state.workflows.get(rest)
            if deadlined is not None and deadlined.deadline is not None:
                self.temporal.check_deadline(ctx, deadlined)
            return
        wf_id, _, sid = rest.partition("/")
        wf = ctx.state.workflows.get(wf_id)
        st = wf.steps.get(sid) if wf is not None else None
        if wf is None or st is None:
            return  # a timer for something that no longer exists: nothing to do
        now = ctx.now
        if kind == "retry":
            if st.state == "pending" and st.retry_at is not None and st.retry_at <= now:
                self.flow.advance(ctx, wf)
        elif kind == "timeout":
            if st.timeout_at is not None and st.timeout_at <= now and st.state in (
                "assigned", "preparing", "executing"
            ):
                self.recovery.cancel_running(ctx, wf, "timeout", only=st.id)
                self.recovery.fail_step(ctx, wf, st, "timeout",
                                        f"no result within {st.spec.timeout_s} s",
                                        retryable=True)
                self.allocation.allocate_waiting(ctx)
        elif kind == "stall":
            self.temporal.stalled(ctx, wf, st)
        elif kind == "vote" and self.consensus is not None:
            self.consensus.expired(ctx, wf, st)
        elif (
            kind == "wait" and st.state == "executing" and st.wait_until is not None
            and st.wait_until <= now
        ):
            ctx.emit("step_done", wf.id, {"step": st.id, "outputs": {}})
            self.flow.advance(ctx, wf)

    def restarted(self, ctx: Context, _: Restarted) -> None:
        """Re-arm every timer the state expects; archive what an older log left finished."""
        state = ctx.state
        for agent in state.agents.values():
            if agent.online:
                self.agents.arm_liveness(ctx, agent)
        for timer_id, at in armed_timers(state).items():
            ctx.set_timer(timer_id, at)
        if self.allocation.batch is not None:  # a batch window's timer (_batch)
            self.allocation.batch.rearm(ctx)
        # Finished workflows a log from before archiving (or archive_terminal=False) left.
        ctx.archivable.extend(
            wid for wid, wf in state.workflows.items() if wf.state in ("completed", "cancelled")
        )


def armed_timers(state: FacilityState) -> dict[str, float]:
    """Step timers (retry, timeout, wait) the state expects, by id.

    Liveness timers are not here: a restarted shell sends ``Restarted`` instead, which
    re-arms these and gives every online agent a fresh liveness window from its ``now``.
    """
    timers: dict[str, float] = {}
    for wf in state.workflows.values():
        if wf.deadline is not None and wf.state not in WORKFLOW_TERMINAL:
            timers[f"deadline:{wf.id}"] = wf.deadline
        for st in wf.steps.values():
            key = f"{wf.id}/{st.id}"
            if st.retry_at is not None and st.state == "pending":
                timers[f"retry:{key}"] = st.retry_at
            if st.timeout_at is not None:
                timers[f"timeout:{key}"] = st.timeout_at
            if st.wait_until is not None:
                timers[f"wait:{key}"] = st.wait_until
            if st.stall_at is not None:
                timers[f"stall:{key}"] = st.stall_at
            if st.ballot is not None and st.state == "executing" and "result" not in st.ballot:
                timers[f"vote:{key}"] = st.ballot["deadline"]
    timers.update(auction_timers(state))
    return timers
