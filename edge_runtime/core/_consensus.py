"""``consensus`` (docs/design.md §6): agents vote on a decision point; a quorum majority decides.

A decision step with a ``vote`` in a workflow whose coordination is ``consensus`` is not
decided by its condition: the edge opens a vote (``vote_opened``: the voters, the votes
needed, the deadline), sends each voter a ``Ballot``, records each valid ``Vote`` event
(``vote_cast``) and closes the vote (``vote_closed``, then the usual ``step_decided``) as
soon as the outcome can no longer change: once the quorum voted and one branch leads by
more than the votes still to come. When every voter voted with a tie, or the deadline
passes without a quorum or a lead, the template's default branch is taken. Outside
``consensus`` the step is decided by its condition, or takes the default if it has none.

Votes are counted in the order they were recorded and voters are kept in a list, so a
replay closes the same vote with the same tally.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from edge_runtime.core._context import Context
from edge_runtime.core._errors import StaleInput
from edge_runtime.core._lookup import find_reported
from edge_runtime.core._state import StepRun, WorkflowRun
from topics import Ballot, Vote

if TYPE_CHECKING:
    from edge_runtime.core._flow import Flow

__all__ = ["Consensus", "vote_timer"]

_CLOSED_WORKFLOW = ("completed", "failed", "cancelled", "cancelling")


def vote_timer(wf: WorkflowRun, st: StepRun) -> str:
    """The id of the timer that closes the vote of ``st`` at its deadline."""
    return f"vote:{wf.id}/{st.id}"


class Consensus:
    """Opens votes on decision points, takes the votes, and closes them."""

    def __init__(self, flow: Flow) -> None:
        self.flow = flow

    def handlers(self) -> dict[type, Callable[[Context, Any], None]]:
        """The inputs this component takes."""
        return {Vote: self.cast}

    # --- opening ------------------------------------------------------------------------

    def decides(self, ctx: Context, wf: WorkflowRun, st: StepRun) -> bool:
        """Called by ``Flow`` for a decision step whose time came: open its vote (or take
        its default if it has neither a vote to hold nor a condition); ``False`` if its
        condition decides it as usual."""
        vote = st.spec.vote
        if vote is None:
            return False
        if wf.coordination != "consensus":
            if st.spec.condition is not None:
                return False
            self._decide(ctx, wf, st, vote.default, "not_voted", None)
            return True
        voters = self.voters(ctx, wf, st)
        if not voters:
            self._decide(ctx, wf, st, vote.default, "no_voters", None)
            return True
        vote_id = f"v{ctx.state.seq + 1}"
        deadline = ctx.now + vote.timeout_s
        needed = max(1, math.ceil(round(vote.quorum * len(voters), 9)))
        ctx.emit("vote_opened", wf.id, {
            "step": st.id, "vote": vote_id, "voters": voters, "quorum": needed,
            "deadline": deadline, "default": vote.default,
        })
        question = vote.question or st.spec.description
        for aid in voters:
            ctx.send(aid, Ballot.model_construct(
                command_id=f"{vote_id}-{aid}"[:64], ts=ctx.now, vote_id=vote_id,
                workflow_id=wf.id, step_id=st.id, question=question,
                then=list(st.spec.then), otherwise=list(st.spec.otherwise),
                deadline_ts=deadline,
            ))
        ctx.set_timer(vote_timer(wf, st), deadline)
        return True

    @staticmethod
    def voters(ctx: Context, wf: WorkflowRun, st: StepRun) -> list[str]:
        """Who votes, in ``participants`` order, each once: the agent that did each named
        step (if it is done), and every online agent of each named kind (by id) — only
        agents the workflow allows."""
        assert st.spec.vote is not None
        agents = ctx.state.agents
        voters: list[str] = []
        for who in st.spec.vote.participants:
            part = wf.steps.get(who)
            if part is not None:
                found = [part.last_agent] if part.state == "done" and part.last_agent else []
            else:
                found = sorted(a.id for a in agents.values() if a.kind == who and a.online)
            for aid in found:
                allowed = wf.allowed_agents is None or aid in wf.allowed_agents
                if allowed and aid not in voters:
                    voters.append(aid)
        return voters

    # --- voting -------------------------------------------------------------------------

    def cast(self, ctx: Context, m: Vote) -> None:
        """A voter's choice: recorded if the vote is open and it has not voted yet."""
        found = find_reported(ctx.state, m.agent_id, m.event_id, m.workflow_id, m.step_id)
        if found is None:
            return  # a redelivered vote, recorded already
        agent, wf, st = found
        ballot = st.ballot
        where = f"vote {m.vote_id} on {wf.id}.{st.id}"
        if ballot is None or ballot["id"] != m.vote_id:
            raise StaleInput(f"{where}: no such vote is open")
        if st.state != "executing" or "result" in ballot or wf.state in _CLOSED_WORKFLOW:
            raise StaleInput(f"{where} is closed")
        if ctx.now > ballot["deadline"]:
            raise StaleInput(f"{where}: too late, the deadline was {ballot['deadline']}")
        if agent.id not in ballot["voters"]:
            raise StaleInput(f"{where}: {agent.id} is not a voter")
        if agent.id in ballot["votes"]:
            raise StaleInput(f"{where}: {agent.id} voted already "
                             f"({ballot['votes'][agent.id]})")
        ctx.emit("vote_cast", wf.id, {
            "step": st.id, "vote": m.vote_id, "agent": agent.id, "choice": m.choice,
            "eid": m.event_id,
        })
        outcome = _outcome(ballot, final=False)
        if outcome is not None:
            ctx.cancel_timer(vote_timer(wf, st))
            self._close(ctx, wf, st, *outcome)

    def expired(self, ctx: Context, wf: WorkflowRun, st: StepRun) -> None:
        """The vote's deadline came (its timer): close it with what was voted."""
        ballot = st.ballot
        if (ballot is None or "result" in ballot or st.state != "executing"
                or ballot["deadline"] > ctx.now or wf.state in _CLOSED_WORKFLOW):
            return  # decided already, or a timer of something that moved on
        outcome = _outcome(ballot, final=True)
        assert outcome is not None
        self._close(ctx, wf, st, *outcome)

    # --- closing ------------------------------------------------------------------------

    def _close(self, ctx: Context, wf: WorkflowRun, st: StepRun, choice: str,
               reason: str) -> None:
        ballot = st.ballot
        assert ballot is not None
        choices = list(ballot["votes"].values())
        ctx.emit("vote_closed", wf.id, {
            "step": st.id, "vote": ballot["id"], "choice": choice, "reason": reason,
            "tally": {"then": choices.count("then"), "else": choices.count("else")},
        })
        self._decide(ctx, wf, st, choice, reason, ballot["id"])

    def _decide(self, ctx: Context, wf: WorkflowRun, st: StepRun, choice: str, reason: str,
                vote_id: str | None) -> None:
        data: dict[str, Any] = {"step": st.id, "result": choice == "then", "reason": reason}
        if vote_id is not None:
            data["vote"] = vote_id
        ctx.emit("step_decided", wf.id, data)
        self.flow.advance(ctx, wf)


def _outcome(ballot: dict[str, Any], *, final: bool) -> tuple[str, str] | None:
    """``(choice, reason)`` if the vote is decided now, else ``None``.

    Decisive: the quorum voted and one branch leads by more than the votes still to come
    (``majority``). Everyone voted without a lead: the default (``tie``). At the deadline
    (``final``): the leading branch if the quorum voted, else the default (``timeout``).
    """
    votes = list(ballot["votes"].values())
    then, other = votes.count("then"), votes.count("else")
    to_come = len(ballot["voters"]) - len(votes)
    leader = "then" if then > other else "else"
    quorate = len(votes) >= ballot["quorum"]
    if quorate and abs(then - other) > to_come:
        return leader, "majority"
    if to_come == 0:
        return ballot["default"], "tie"
    if not final:
        return None
    if quorate and then != other:
        return leader, "majority"
    return ballot["default"], "timeout"
