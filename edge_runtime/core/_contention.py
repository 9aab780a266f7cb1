"""Resource-contention conflict rules (docs/design.md §6, issue 9 item 4): two claims on one agent
or one exclusive resource. Each is raised where Fleetflow really lets two claims meet:

- ``agent_double_booked`` (``resource``) — a step that only one agent may take (its
  ``agents.allowed`` names one, or its workflow's ``agents`` leave one) becomes ready while
  that agent holds a step of another workflow. Allocation never gives a busy agent a second
  step, so this is the one way two steps claim one agent at once; a report from an agent on a
  step it does not hold is refused as stale input instead (nothing changes, so there is
  nothing to record).
- ``resource_claimed_twice`` (``resource``) — a step becomes ready needing an exclusive
  resource (its ``resources``) that another workflow's running step holds. A resource a
  workflow holds across steps (``hold_until``) is not this rule's: such waits are the
  wait-for graph's (``_deadlock``), which a strategy moving one step could not settle.
- ``window_overlap`` (``temporal``) — a step takes a resource while the first step of
  another workflow that needs it is predicted to start (the longest chain of estimates
  before it, and not before a rescheduled slot) inside the holder's predicted window (its
  assignment plus its ``estimated_duration_s``): the clash is seen before it happens.

Steps of one workflow never contend with each other: its template orders them. Each pair of
claims contends for a thing once, whatever the rule (``Contest.key``): a loser that claims
again, or a predicted overlap that comes true, waits in the queue as settled. The
conflict is settled at once by its strategy (``_strategies``); one escalated to an operator
is resolved by itself once the claims no longer contend.
"""

from __future__ import annotations

from edge_runtime.core._conflict import Conflicts
from edge_runtime.core._contention_model import Contest, contest_of, predicted_start
from edge_runtime.core._context import Context
from edge_runtime.core._effects import Append
from edge_runtime.core._state import FacilityState, QueueKey, StepRun, WorkflowRun
from edge_runtime.core._strategies import Strategies
from edge_runtime.core._strategies_config import CONTENTION_RULES
from edge_runtime.core._template import AGENT_STEP_KINDS

__all__ = ["Contention", "pinned_agent"]


def pinned_agent(wf: WorkflowRun, st: StepRun) -> str | None:
    """The one agent ``st`` may go to, if its policy and its workflow leave only one."""
    policy = st.spec.agents
    members = wf.allowed_agents
    if policy.allowed:
        able = [a for a in policy.allowed if members is None or a in members]
    elif members is not None:
        able = [a for a in members if a not in policy.forbidden]
    else:
        return None
    return able[0] if len(able) == 1 else None


class Contention:
    """Detects contention after each input and hands each conflict to its strategy."""

    def __init__(self, conflicts: Conflicts, strategies: Strategies) -> None:
        self.conflicts = conflicts
        self.strategies = strategies
        for rule in CONTENTION_RULES:
            conflicts.choosers[rule] = strategies.choose

    def review(self, ctx: Context) -> None:
        """Look at the steps this input made ready or assigned, and at escalated
        contention conflicts whose claims may have stopped contending."""
        state = ctx.state
        if state.open_conflicts:
            self._settle_gone(ctx)
        if not state.queue and not state.holds:
            return  # nothing waits and no resource is held: nothing can contend
        readied: list[tuple[str, str]] = []
        assigned: list[tuple[str, str]] = []
        for effect in list(ctx.effects):
            if not isinstance(effect, Append):
                continue
            event = effect.event
            if event.kind == "step_ready" and event.workflow_id is not None:
                readied.append((event.workflow_id, event.data["step"]))
            elif event.kind == "step_assigned" and event.workflow_id is not None:
                assigned.append((event.workflow_id, event.data["step"]))
        for wid, sid in readied:
            wf = state.workflows.get(wid)
            st = wf.steps.get(sid) if wf is not None else None
            if wf is not None and st is not None and st.state == "allocating":
                contest = self._claim(state, wf, st)
                if contest is not None:
                    self._raise(ctx, contest, "")
        for wid, sid in assigned:
            wf = state.workflows.get(wid)
            st = wf.steps.get(sid) if wf is not None else None
            if wf is not None and st is not None and st.spec.resources and st.agent:
                self._windows(ctx, wf, st)

    def _claim(self, state: FacilityState, wf: WorkflowRun, st: StepRun) -> Contest | None:
        """The contest the waiting ``st`` is in, if another workflow holds what it needs."""
        if st.spec.kind not in AGENT_STEP_KINDS:
            return None
        # A step queued on a busy agent by design (work queues, ``_workqueues``) is not
        # double-booking it: it is that agent's next step.
        pinned = pinned_agent(wf, st) if st.queued_on is None else None
        agent = state.agents.get(pinned) if pinned is not None else None
        if agent is not None and agent.online and agent.task is not None \
                and agent.task[0] != wf.id:
            holder = self._step(state, agent.task)
            if holder is not None:
                return Contest("agent_double_booked", agent.id, holder[0], holder[1], wf, st)
        for res in st.spec.resources:
            held = state.holds.get(res)
            if held is not None and held[0] != wf.id:
                holder = self._step(state, held)
                # Held across steps (a span): the wait-for graph's concern (_deadlock).
                if holder is not None and res not in holder[0].spans:
                    return Contest("resource_claimed_twice", res, holder[0], holder[1], wf, st)
        return None

    @staticmethod
    def _step(state: FacilityState, ref: tuple[str, str]) -> tuple[WorkflowRun, StepRun] | None:
        wf = state.workflows.get(ref[0])
        st = wf.steps.get(ref[1]) if wf is not None else None
        return None if wf is None or st is None else (wf, st)

    def _windows(self, ctx: Context, hwf: WorkflowRun, hst: StepRun) -> None:
        """``hst`` just took its resources: the step of another workflow predicted to need
        one of them first, if inside its window, overlaps it. Only that first one: the
        claims behind it queue as usual (one conflict per pair would grow with the square
        of a busy station's queue)."""
        now = ctx.now
        end = Contest("window_overlap", "", hwf, hst, hwf, hst).holder_end(now)
        wanted = [r for r in hst.spec.resources if r not in hwf.spans]
        if not wanted:
            return
        first: tuple[float, QueueKey, str, WorkflowRun, StepRun] | None = None
        for wf in ctx.state.workflows.values():
            if wf.id == hwf.id or not wf.state.startswith("active"):
                continue
            for st in wf.steps.values():
                if st.state != "pending" or not st.spec.resources:
                    continue
                shared = [r for r in wanted if r in st.spec.resources]
                if shared:
                    start = predicted_start(wf, st, now)
                    if start < end and (first is None or (start, wf.step_key(st)) < first[:2]):
                        first = (start, wf.step_key(st), shared[0], wf, st)
        if first is not None:
            _, _, res, wf, st = first
            self._raise(ctx, Contest("window_overlap", res, hwf, hst, wf, st),
                        f"; predicted to start at {first[0]:.0f}, before {end:.0f}")

    def _raise(self, ctx: Context, contest: Contest, note: str) -> None:
        """Record the conflict (once per pair of claims) and settle it by its strategy."""
        key = contest.key()
        state = ctx.state
        if _raised_before(state, key):  # open ones are in ``conflicts`` too
            return
        strategy = self.strategies.strategy_for(contest)
        holder = f"{contest.holder_wf.id}.{contest.holder.id}"
        claimant = f"{contest.claimant_wf.id}.{contest.claimant.id}"
        what = f"agent {contest.thing}" if contest.on_agent else contest.thing
        participants = [contest.thing] if contest.on_agent else [
            a for a in (contest.holder.agent,) if a is not None]
        conflict = self.conflicts.detect(
            ctx, key, contest.rule, participants, None if contest.on_agent else contest.thing,
            strategy, f"{claimant} claims {what}, held by {holder}{note}",
            contest.claimant_wf.id, CONTENTION_RULES[contest.rule], contest.claims())
        self.strategies.settle(ctx, conflict, contest, strategy)

    def _settle_gone(self, ctx: Context) -> None:
        """Escalated contention conflicts whose claims no longer contend resolve."""
        state = ctx.state
        for conflict in [c for c in state.open_conflicts.values() if c.rule in CONTENTION_RULES]:
            contest = contest_of(state, conflict)
            if contest is None or not contest.still_contended(state):
                self.conflicts.resolve(ctx, conflict, "the claims no longer contend")


def _raised_before(state: FacilityState, key: str) -> bool:
    """This pair of claims already contended for this thing (by any rule: a predicted
    overlap settled earlier covers the claim when it comes): that outcome stands."""
    about = key.split(":", 1)[1]
    return any(c.key.split(":", 1)[1] == about for c in state.conflicts.values()
               if c.rule in CONTENTION_RULES)
