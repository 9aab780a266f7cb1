"""What a contention conflict is about, read from the state: the contested agent or
resource, the claim that holds it and the claim that wants it (``_contention``,
``_strategies``). Plain reading; nothing here decides or changes anything.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_runtime.core._state import Conflict, FacilityState, StepRun, WorkflowRun

__all__ = ["HELD_NOT_STARTED", "Contest", "contest_of", "predicted_start", "step_estimate"]

HELD_NOT_STARTED = ("assigned", "preparing")
"""A holder in these states has not started work: a strategy may still move it. Work in
progress is never interrupted by a strategy (only by an operator's ``operator_action``)."""


def step_estimate(st: StepRun) -> float:
    """How long ``st`` is expected to take (a wait step: its duration; barriers and
    decisions: no time)."""
    spec = st.spec
    if spec.kind == "wait":
        return spec.duration_s or 0.0
    return 0.0 if spec.kind in ("decision", "sync") else spec.estimated_duration_s


def predicted_start(wf: WorkflowRun, st: StepRun, now: float) -> float:
    """When the pending ``st`` is predicted to start: ``now`` plus the longest chain of
    estimates of its unfinished predecessors, and not before its ``retry_at``."""
    finish: dict[str, float] = {}
    start = 0.0
    for sid, other in wf.steps.items():  # template order: predecessors come first
        begin = max((finish.get(p, 0.0) for p in other.preds), default=0.0)
        if sid == st.id:
            start = begin
            break
        done = other.state in ("done", "skipped", "compensated")
        finish[sid] = begin + (0.0 if done else step_estimate(other))
    return max(now + start, st.retry_at or 0.0)


@dataclass(frozen=True, slots=True)
class Contest:
    """Two claims on one agent or resource: ``holder`` has it, ``claimant`` wants it."""

    rule: str
    thing: str
    """The contested agent id (``agent_double_booked``) or resource name."""
    holder_wf: WorkflowRun
    holder: StepRun
    claimant_wf: WorkflowRun
    claimant: StepRun

    @property
    def on_agent(self) -> bool:
        """The contested thing is an agent (else a resource)."""
        return self.rule == "agent_double_booked"

    def key(self) -> str:
        """One conflict per rule, thing and pair of claims, whichever claimed first: a
        settled pair is not raised again when the loser claims anew."""
        a = f"{self.holder_wf.id}/{self.holder.id}"
        b = f"{self.claimant_wf.id}/{self.claimant.id}"
        first, second = sorted((a, b))
        return f"{self.rule}:{self.thing}:{first}|{second}"

    def claims(self) -> list[list[str]]:
        """``[[holder workflow, step], [claimant workflow, step]]``."""
        return [[self.holder_wf.id, self.holder.id], [self.claimant_wf.id, self.claimant.id]]

    def holder_end(self, now: float) -> float:
        """When the holder is predicted to let go: its assignment plus its estimate (now,
        if that has passed)."""
        start = self.holder.assigned_at if self.holder.assigned_at is not None else now
        return max(now, start + step_estimate(self.holder))

    def holder_elapsed(self, now: float) -> float:
        """Work the holder would lose if it moved: time since it was assigned."""
        start = self.holder.assigned_at
        return 0.0 if start is None else max(0.0, now - start)

    def holder_movable(self) -> bool:
        """The holder may still be moved: an agent holds it and has not started, no cancel
        or pause of it waits for the agent (its workflow is running), and it is not a
        coalition step."""
        holder = self.holder
        return (holder.state in HELD_NOT_STARTED and holder.agent is not None
                and holder.unconfirmed is None and self.holder_wf.state.startswith("active")
                and not holder.team)  # a coalition moves as one, not for one member

    def still_contended(self, state: FacilityState) -> bool:
        """The holder still holds the thing and the claimant still waits for it."""
        held = (self.holder_wf.id, self.holder.id)
        if self.on_agent:
            agent = state.agents.get(self.thing)
            holds = agent is not None and agent.task == held
        else:
            holds = state.holds.get(self.thing) == held
        waiting = ("pending",) if self.rule == "window_overlap" else ("allocating", "pending")
        return holds and self.claimant.state in waiting


def contest_of(state: FacilityState, conflict: Conflict) -> Contest | None:
    """The contest a contention conflict records (``None`` if a claim left memory)."""
    if len(conflict.claims) != 2:
        return None
    (hw, hs), (cw, cs) = conflict.claims
    hwf, cwf = state.workflows.get(hw), state.workflows.get(cw)
    holder = hwf.steps.get(hs) if hwf is not None else None
    claimant = cwf.steps.get(cs) if cwf is not None else None
    if hwf is None or cwf is None or holder is None or claimant is None:
        return None
    thing = conflict.key.split(":", 2)[1]
    return Contest(conflict.rule, thing, hwf, holder, cwf, claimant)
