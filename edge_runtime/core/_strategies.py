"""Conflict strategies (docs/design.md §6): how a contention conflict (``_contention``) is settled.

The strategy of a conflict is the claimant's template's ``conflict_strategies`` entry for
its rule, else for its type, else the facility's (``CoreConfig.conflict_strategies``), else
``DEFAULT_STRATEGY``. Claims rank as the allocation queue does: higher priority, then older
workflow, then earlier step. The *loser* is the lower-ranked claim — except that a holder
that has started (work in progress) is never moved by a strategy, and a predicted
``window_overlap`` always moves the future claim (the holder's window is under way).

- ``priority`` — the higher-ranked claim gets the agent or resource, the other waits: a
  waiting claimant stays queued; a holder that has not started is withdrawn (cancel,
  confirmed, back in the queue, behind the claimant).
- ``negotiation`` — both claims propose alternatives (``_strategies_negotiation``); each
  proposal is a ``conflict_proposal`` event, the choice a ``conflict_negotiated`` event.
- ``reallocation`` — the loser gets another free able agent, or a free alternative resource
  its template names; none: escalated.
- ``rescheduling`` — the loser starts no earlier than the end of the winner's slot (predicted
  from ``estimated_duration_s``): ``step_rescheduled`` (the step is pending with that
  ``retry_at``; the ``retry:`` timer brings it back).
- ``operator`` — escalated (``conflict_escalated``); ``resolve_conflict`` with a ``choice``
  settles it by that strategy, without one leaves the claimant waiting.

A strategy that cannot settle its conflict escalates it. Safety conflicts never come here.
"""

from __future__ import annotations

from collections.abc import Mapping

from edge_runtime.core._allocation import Allocation
from edge_runtime.core._command_args import ConflictArgs
from edge_runtime.core._config import CostFunction
from edge_runtime.core._confirm import Confirmations
from edge_runtime.core._conflict import Conflicts
from edge_runtime.core._contention_model import Contest, contest_of, step_estimate
from edge_runtime.core._context import Context
from edge_runtime.core._errors import CoreError
from edge_runtime.core._state import Conflict, StepRun, WorkflowRun
from edge_runtime.core._strategies_config import (
    CONTENTION_RULES,
    DEFAULT_STRATEGY,
    check_strategies,
)
from edge_runtime.core._strategies_negotiation import Move, able_free, proposals

__all__ = ["Strategies"]

_NO_NOTE = ConflictArgs.model_fields["resolution"].default
"""``resolve_conflict``'s resolution when the operator wrote none."""


def _name(wf: WorkflowRun, st: StepRun) -> str:
    return f"{wf.id}.{st.id}"


class Strategies:
    """Chooses and carries out the strategy of each contention conflict."""

    def __init__(self, conflicts: Conflicts, allocation: Allocation,
                 confirmations: Confirmations, cost: CostFunction | None,
                 table: Mapping[str, str]) -> None:
        try:
            check_strategies(table)
        except ValueError as exc:
            raise CoreError(f"CoreConfig.{exc}") from None
        self.conflicts = conflicts
        self.allocation = allocation
        self.confirmations = confirmations
        self.cost = cost
        self.table = table
        """The facility's strategy table (rule or type -> strategy)."""

    def strategy_for(self, contest: Contest) -> str:
        """The claimant's template's choice, else the facility's, else the default."""
        rule = contest.rule
        type_ = CONTENTION_RULES[rule]
        override = contest.claimant_wf.template.conflict_strategies
        for table in (override, self.table):
            chosen = table.get(rule) or table.get(type_)
            if chosen:
                return chosen
        return DEFAULT_STRATEGY[rule]

    # --- settling -----------------------------------------------------------------------

    def settle(self, ctx: Context, conflict: Conflict, contest: Contest, strategy: str) -> None:
        """Carry out ``strategy`` on the just detected ``conflict``, or escalate it."""
        if strategy == "operator":
            self._escalate(ctx, conflict, "strategy operator: an operator decides")
            return
        move = self._plan(ctx, conflict, contest, strategy)
        if isinstance(move, str):
            self._escalate(ctx, conflict, f"{strategy} cannot settle it: {move}")
            return
        self._carry_out(ctx, conflict, contest, move)
        self.conflicts.resolve(ctx, conflict, f"{strategy}: {_describe(contest, move)}")

    def choose(self, ctx: Context, conflict: Conflict, choice: str, text: str) -> None:
        """``resolve_conflict`` with a ``choice``: settle by that strategy now; refused,
        changing nothing, if it cannot."""
        contest = contest_of(ctx.state, conflict)
        if contest is None or not contest.still_contended(ctx.state):
            self.conflicts.resolve(ctx, conflict, f"operator: {text} (no longer contended)")
            return
        move = self._plan(ctx, conflict, contest, choice)
        if isinstance(move, str):
            raise CoreError(f"conflict {conflict.id}: {choice} cannot settle it: {move}")
        self._carry_out(ctx, conflict, contest, move)
        note = "" if text == _NO_NOTE else f" ({text})"
        self.conflicts.resolve(ctx, conflict,
                               f"operator chose {choice}: {_describe(contest, move)}{note}")

    def _escalate(self, ctx: Context, conflict: Conflict, reason: str) -> None:
        ctx.emit("conflict_escalated", None, {"id": conflict.id, "reason": reason[:512]})

    def _plan(self, ctx: Context, conflict: Conflict, contest: Contest,
              strategy: str) -> Move | str:
        """What ``strategy`` does here, or why it cannot (a string). Only negotiation emits
        events here (its proposals), and only when it has some: then it always chooses."""
        if strategy == "priority":
            return _priority(contest)
        if strategy == "negotiation":
            return self._negotiate(ctx, conflict, contest)
        holder_loses = _holder_loses(contest)
        if strategy == "rescheduling":
            if holder_loses:
                at = ctx.now + step_estimate(contest.claimant)
                return Move("holder", "slot", at)
            return Move("claimant", "slot", contest.holder_end(ctx.now))
        return self._reallocate(ctx, contest, holder_loses)

    def _reallocate(self, ctx: Context, contest: Contest, holder_loses: bool) -> Move | str:
        state = ctx.state
        wf, st = ((contest.holder_wf, contest.holder) if holder_loses
                  else (contest.claimant_wf, contest.claimant))
        if contest.on_agent:
            free = able_free(state, self.cost, wf, st, contest.thing)
            if free:
                return Move("holder" if holder_loses else "claimant", "agent", free[0][1])
            return f"no other able agent is free for {_name(wf, st)}"
        if holder_loses:
            return f"{_name(wf, st)} holds {contest.thing}: it cannot swap it while held"
        for alt in st.spec.alternatives.get(contest.thing, ()):
            if alt not in state.holds and alt not in st.spec.resources:
                return Move("claimant", "resource", alt)
        return f"no free alternative to {contest.thing} for {_name(wf, st)}"

    def _negotiate(self, ctx: Context, conflict: Conflict, contest: Contest) -> Move | str:
        found = proposals(ctx.state, self.cost, contest, ctx.now)
        if not found:  # never: the claimant can always wait for a slot; kept for safety
            return "no proposal"
        names = {"claimant": f"{contest.claimant_wf.id}/{contest.claimant.id}",
                 "holder": f"{contest.holder_wf.id}/{contest.holder.id}"}
        for n, move in enumerate(found):
            ctx.emit("conflict_proposal", None, {
                "id": conflict.id, "n": n, "by": names[move.who], "option": move.option,
                "value": move.value, "delay": round(move.delay, 3)})
        best = min(range(len(found)), key=lambda i: (found[i].delay, i))
        move = found[best]
        ctx.emit("conflict_negotiated", None, {
            "id": conflict.id, "n": best, "by": names[move.who], "option": move.option,
            "value": move.value, "delay": round(move.delay, 3)})
        return move

    def _carry_out(self, ctx: Context, conflict: Conflict, contest: Contest,
                   move: Move) -> None:
        """Make ``move`` happen: the events, commands and timers it needs."""
        claimant = move.who == "claimant"
        wf, st = ((contest.claimant_wf, contest.claimant) if claimant
                  else (contest.holder_wf, contest.holder))
        reason = f"conflict {conflict.id}: {contest.thing} goes to " + (
            _name(contest.holder_wf, contest.holder) if claimant
            else _name(contest.claimant_wf, contest.claimant))
        if move.option == "slot":
            at = float(move.value or 0.0)
            ctx.emit("step_rescheduled", wf.id, {"step": st.id, "at": at,
                                                 "conflict": conflict.id})
            ctx.set_timer(f"retry:{wf.id}/{st.id}", at)
        elif move.option == "resource":
            ctx.emit("resource_swapped", wf.id, {
                "step": st.id, "resource": contest.thing, "to": move.value,
                "conflict": conflict.id})
            self.allocation.allocate_waiting(ctx)
            return
        elif move.option == "agent" and claimant:
            self.allocation.assign(ctx, wf, st, ctx.state.agents[str(move.value)])
            return
        if not claimant:  # the holder yields: told to stop, then waits (or goes elsewhere)
            self.confirmations.withdraw(ctx, wf, st, reason,
                                        "avoid" if move.option == "agent" else "requeue")


def _outranks(contest: Contest) -> bool:
    """The claimant comes before the holder in the allocation order."""
    return (contest.claimant_wf.step_key(contest.claimant)
            < contest.holder_wf.step_key(contest.holder))


def _holder_loses(contest: Contest) -> bool:
    """The holder is the claim that gives way: outranked, not started, not a prediction."""
    return (contest.rule != "window_overlap" and _outranks(contest)
            and contest.holder_movable())


def _priority(contest: Contest) -> Move:
    if _holder_loses(contest):
        return Move("holder", "wait")
    if _outranks(contest):
        h = _name(contest.holder_wf, contest.holder)
        c = _name(contest.claimant_wf, contest.claimant)
        why = "its window is under way" if contest.rule == "window_overlap" else "it started"
        return Move("claimant", "wait", text=f"{c} outranks {h}, but {why}: {c} is next "
                                              f"for {contest.thing}")
    return Move("claimant", "wait")


def _describe(contest: Contest, move: Move) -> str:
    """The outcome, as the resolution says it."""
    if move.text:
        return move.text
    h = _name(contest.holder_wf, contest.holder)
    c = _name(contest.claimant_wf, contest.claimant)
    thing = contest.thing
    loser, winner = (c, h) if move.who == "claimant" else (h, c)
    if move.option == "wait":
        return f"{winner} gets {thing}; {loser} waits"
    if move.option == "agent":
        return f"{loser} goes to {move.value}; {winner} gets {thing}"
    if move.option == "resource":
        return f"{loser} takes {move.value} instead of {thing}; {winner} keeps {thing}"
    return f"{winner} gets {thing}; {loser} starts no earlier than {float(move.value or 0):.1f}"
