"""The ``auction_based`` protocol (contract net, docs/design.md §6; docs/coordination.md).

A ready step of a workflow whose ``coordination`` is ``auction_based`` is not given to the
cheapest agent at once: it waits in the queue while a call for proposals (``Cfp``) goes to
every available agent that may take it, and the edge bids itself, from the facility map,
battery and work in hand, for the agents that cannot (``Agent.bids`` false: VDA 5050 AGVs,
simple devices). At the bid deadline, or once every invited agent bid, the lowest cost wins
(then the lowest ETA, then the agent id): ``Award``, then the usual ``Assign``. A winner
that declines (``step_failed`` or a refused command before it accepted) or stays silent for
``award_timeout_s`` is left out of the auction and the next best bid wins. A round without
a usable bid is called again after a doubling backoff; after ``auction_rounds`` rounds the
step waits for an operator (a ``no_bids`` conflict). Every decision is an event.

``review`` runs after each input while auctions are open: an auction whose step or
workflow moved on (cancelled, paused, failed, restored, the winner lost, the protocol
changed) is closed there, so its timer, when it fires, finds nothing and does nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edge_runtime.core._agents import Agents
from edge_runtime.core._allocation import Allocation
from edge_runtime.core._auction_bids import callable_agents, fits, proxy_bid, ranked
from edge_runtime.core._auction_model import AWARDED, BACKOFF, BIDDING, ESCALATED, Auction
from edge_runtime.core._config import CoreConfig
from edge_runtime.core._confirm import Confirmations
from edge_runtime.core._conflict import Conflicts
from edge_runtime.core._context import Context
from edge_runtime.core._errors import StaleInput
from edge_runtime.core._flow import Flow
from edge_runtime.core._state import Agent, FacilityState, StepRun, WorkflowRun
from topics import Award, Bid, Cancel, Cfp, CommandAck

__all__ = ["PROTOCOL", "Auctions", "auction_timers"]

PROTOCOL = "auction_based"


def _timer(auction: Auction) -> str:
    return f"auction:{auction.id}"


class Auctions:
    """Calls for proposals, takes bids, awards steps and re-awards what falls through."""

    def __init__(self, allocation: Allocation, flow: Flow, conflicts: Conflicts,
                 confirmations: Confirmations, agents: Agents, config: CoreConfig) -> None:
        self.allocation = allocation
        self.flow = flow
        self.conflicts = conflicts
        self.confirmations = confirmations
        self.agents = agents
        self.cost = config.cost
        self.bid_window_s = config.bid_window_s
        self.award_timeout_s = config.award_timeout_s
        self.backoff_s = config.auction_backoff_s
        self.rounds = config.auction_rounds

    def handlers(self) -> dict[type, Callable[[Context, Any], None]]:
        """Bids; and command acknowledgements, before ``Confirmations`` (registered after
        it): a refused award is a decline, any other acknowledgement is passed on."""
        return {Bid: self.bid, CommandAck: self.ack}

    # --- calling for proposals --------------------------------------------------------

    def open(self, ctx: Context, wf: WorkflowRun, st: StepRun,
             after: Auction | None = None) -> None:
        """Call for proposals for the waiting step ``st`` (the next round of ``after``),
        unless one is open (or waits for an operator), or nobody may take it now."""
        state = ctx.state
        if after is None and ((wf.id, st.id) in state.auction_of
                              or wf.coordination != PROTOCOL):
            return
        excluded = after.excluded if after is not None else []
        invited: list[Agent] = []
        if st.state == "allocating" and wf.state.startswith("active") \
                and self._resources_free(state, wf, st):
            invited = [a for a in callable_agents(state, wf, st, excluded)
                       if self._charged(a, wf, st)]
        if not invited:
            if after is not None:  # the step waits; the next allocation calls afresh
                self.close(ctx, after, "nobody to call")
            return
        cfp = f"cfp{state.seq + 1}"
        now = ctx.now
        deadline = now + self.bid_window_s
        data: dict[str, Any] = {"cfp": cfp, "step": st.id, "round": 1, "deadline": deadline,
                                "invited": [a.id for a in invited]}
        if after is not None:
            data.update(round=after.round + 1, replaces=after.id, excluded=list(excluded))
        ctx.emit("cfp_opened", wf.id, data)
        spec = st.spec
        for agent in invited:
            if agent.bids:
                ctx.send(agent.id, Cfp.model_construct(
                    command_id=f"{cfp}-{agent.id}"[:64], ts=now, cfp_id=cfp, workflow_id=wf.id,
                    step_id=st.id, capabilities=list(spec.capabilities),
                    location=spec.location, deadline_ts=deadline))
        for agent in invited:
            if not agent.bids:
                cost, eta = proxy_bid(self.cost, agent, wf, st)
                ctx.emit("bid_received", wf.id, {"cfp": cfp, "agent": agent.id, "cost": cost,
                                                 "eta": eta, "proxy": True})
        auction = state.auctions[cfp]
        if len(auction.bids) == len(auction.invited):
            self.award(ctx, wf, st, auction)  # only proxies: nobody to wait for
        else:
            ctx.set_timer(_timer(auction), deadline)

    def bid(self, ctx: Context, m: Bid) -> None:
        """A bid from an invited agent, before the deadline, for an open call; anything
        else is refused (``StaleInput``) and changes nothing."""
        agent = self.agents.known(ctx, m.agent_id)
        if m.event_id in agent.recent_ids:
            return  # a redelivery of a bid already taken
        state = ctx.state
        auction = state.auctions.get(m.cfp_id)
        if auction is None:
            raise StaleInput(f"no call for proposals {m.cfp_id} is open")
        if auction.phase != BIDDING or ctx.now > auction.deadline:
            raise StaleInput(f"call for proposals {m.cfp_id} closed at {auction.deadline}")
        if agent.id not in auction.invited:
            raise StaleInput(f"{agent.id} was not called to bid in {m.cfp_id}")
        if agent.id in auction.bids:
            raise StaleInput(f"{agent.id} already bid in {m.cfp_id}")
        wf = state.workflows[auction.workflow_id]
        ctx.emit("bid_received", wf.id, {"cfp": auction.id, "agent": agent.id,
                                         "cost": m.cost, "eta": m.eta_s, "eid": m.event_id})
        if len(auction.bids) == len(auction.invited):
            self.award(ctx, wf, wf.steps[auction.step_id], auction)  # everyone bid

    # --- awarding ---------------------------------------------------------------------

    def award(self, ctx: Context, wf: WorkflowRun, st: StepRun, auction: Auction) -> None:
        """Give ``st`` to the best usable bid: ``step_awarded``, ``Award``, then the usual
        assignment; with none, the next round (or, after the last, an operator)."""
        state = ctx.state
        if self._resources_free(state, wf, st):
            for aid, cost, eta in ranked(auction.bids):
                agent = state.agents.get(aid)
                if aid in auction.excluded or agent is None or not agent.available \
                        or not fits(wf, st, agent) or not self._charged(agent, wf, st):
                    continue
                cmd = f"w{state.seq + 1}"
                until = ctx.now + self.award_timeout_s
                ctx.emit("step_awarded", wf.id, {
                    "cfp": auction.id, "step": st.id, "agent": aid, "cost": cost, "eta": eta,
                    "attempt": st.attempt + 1, "cmd": cmd, "until": until})
                ctx.send(aid, Award.model_construct(command_id=cmd, ts=ctx.now,
                                                    cfp_id=auction.id, workflow_id=wf.id,
                                                    step_id=st.id))
                self.allocation.assign(ctx, wf, st, agent)
                ctx.set_timer(_timer(auction), until)
                return
        self._no_bids(ctx, wf, st, auction)

    def _resources_free(self, state: FacilityState, wf: WorkflowRun, st: StepRun) -> bool:
        """Whether the step's resources may be acquired now (as direct allocation sees it:
        ``_resources``, in the global order, its own workflow's spans allowed)."""
        if not st.spec.resources:
            return True
        resources = self.allocation.resources
        return resources.free(state, wf, st, resources.plan(wf, st)[0])

    def _charged(self, agent: Agent, wf: WorkflowRun, st: StepRun) -> bool:
        """Whether ``agent``'s battery covers ``st`` (``_battery``; always, when off)."""
        battery = self.allocation.battery
        return battery is None or battery.fits(agent, wf, st)

    def _no_bids(self, ctx: Context, wf: WorkflowRun, st: StepRun, auction: Auction) -> None:
        """No usable bid this round: call again after a doubling backoff; after the last
        round, ask an operator (``no_bids``, a resource conflict): the auction waits, and
        calls afresh once the conflict is resolved."""
        last = auction.round >= self.rounds
        retry_at = None if last else ctx.now + self.backoff_s * 2 ** (auction.round - 1)
        ctx.emit("cfp_no_bids", wf.id, {"cfp": auction.id, "round": auction.round,
                                        "retry_at": retry_at})
        if retry_at is not None:
            ctx.set_timer(_timer(auction), retry_at)
        else:
            detail = (f"nobody took {wf.id}.{st.id}: no usable bid in {auction.round} "
                      "calls for proposals")
            conflict = self.conflicts.detect(ctx, f"no_bids:{wf.id}/{st.id}", "no_bids", [],
                                             None, "operator", detail, wf.id, "resource")
            ctx.emit("conflict_escalated", None, {"id": conflict.id, "reason": detail})
        if st.state == "pending":  # taken back from a winner: it waits in the queue again
            self.flow.advance(ctx, wf)

    def _awarded_to(self, state: FacilityState, wf: WorkflowRun, st: StepRun,
                    agent_id: str) -> Auction | None:
        """The auction that awarded ``st`` to ``agent_id``, if the agent has not yet
        accepted or started it."""
        cfp = state.auction_of.get((wf.id, st.id))
        auction = state.auctions[cfp] if cfp is not None else None
        if (auction is None or auction.phase != AWARDED or auction.winner != agent_id
                or st.agent != agent_id or st.attempt != auction.attempt
                or st.state != "assigned"):
            return None
        return auction

    def fall_through(self, ctx: Context, wf: WorkflowRun, st: StepRun, auction: Auction,
                     kind: str, reason: str, eid: str | None = None) -> None:
        """The winner declined (``award_declined``) or stayed silent (``award_unanswered``):
        it is left out of this auction, the step is taken back, the next best bid wins."""
        winner = auction.winner
        assert winner is not None
        data: dict[str, Any] = {"cfp": auction.id, "agent": winner, "reason": reason[:256]}
        if eid is not None:
            data["eid"] = eid
        ctx.emit(kind, wf.id, data)
        if kind == "award_unanswered":  # should it wake up, it must not do the step
            ctx.send(winner, Cancel.model_construct(
                command_id=f"c{ctx.state.seq}-{st.id}"[:64], ts=ctx.now, workflow_id=wf.id,
                step_id=st.id, reason="award withdrawn: not answered"))
        if st.timeout_at is not None:
            ctx.cancel_timer(f"timeout:{wf.id}/{st.id}")
        ctx.emit("step_requeued", wf.id, {"step": st.id, "reason": f"{winner}: {reason}"[:256]})
        self.award(ctx, wf, st, auction)

    def declined(self, ctx: Context, wf: WorkflowRun, st: StepRun, agent_id: str,
                 reason: str, eid: str) -> bool:
        """``agent_id`` reports ``st`` failed: before it accepted an award that is a decline
        (the next bid wins, no failure is counted); True if it was one."""
        auction = self._awarded_to(ctx.state, wf, st, agent_id)
        if auction is None:
            return False
        self.fall_through(ctx, wf, st, auction, "award_declined", reason, eid)
        return True

    def ack(self, ctx: Context, m: CommandAck) -> None:
        """A refused ``Award``/``Assign`` from a winner that has not accepted is a decline;
        every other acknowledgement goes to ``Confirmations``."""
        state = ctx.state
        agent = state.agents.get(m.agent_id)
        if m.outcome == "refused" and agent is not None and agent.task is not None \
                and m.event_id not in agent.recent_ids:
            wf = state.workflows.get(agent.task[0])
            st = wf.steps.get(agent.task[1]) if wf is not None else None
            if wf is not None and st is not None and st.unconfirmed is None and self.declined(
                    ctx, wf, st, agent.id, f"refused: {m.reason}", m.event_id):
                return
        self.confirmations.ack(ctx, m)

    # --- time and housekeeping --------------------------------------------------------

    def fired(self, ctx: Context, cfp_id: str) -> None:
        """``auction:<cfp>`` is due: close the bidding, withdraw an unanswered award, or call
        the next round. A timer of a closed auction, or an early one, does nothing."""
        state = ctx.state
        auction = state.auctions.get(cfp_id)
        if auction is None or auction.due is None or auction.due > ctx.now:
            return
        wf = state.workflows[auction.workflow_id]
        st = wf.steps[auction.step_id]
        if auction.phase == BIDDING:
            self.award(ctx, wf, st, auction)
        elif auction.phase == BACKOFF:
            self.open(ctx, wf, st, after=auction)
        elif auction.phase == AWARDED and auction.winner is not None and self._awarded_to(
                state, wf, st, auction.winner) is not None:
            self.fall_through(ctx, wf, st, auction, "award_unanswered",
                              f"no answer within {self.award_timeout_s} s")

    def close(self, ctx: Context, auction: Auction, reason: str) -> None:
        """End ``auction`` (``auction_closed``) and forget its timer."""
        ctx.emit("auction_closed", auction.workflow_id, {"cfp": auction.id,
                                                         "reason": reason[:256]})
        ctx.cancel_timer(_timer(auction))

    def review(self, ctx: Context) -> None:
        """After an input: close auctions whose step or workflow moved on (a step taken
        from its winner is called afresh; a ``no_bids`` conflict is settled), and call
        afresh for a step whose ``no_bids`` conflict an operator resolved."""
        state = ctx.state
        for auction in list(state.auctions.values()):
            wf = state.workflows.get(auction.workflow_id)
            st = wf.steps.get(auction.step_id) if wf is not None else None
            reason = _moved_on(wf, st, auction)
            key = f"no_bids:{auction.workflow_id}/{auction.step_id}"
            conflict = state.open_conflicts.get(key)
            if reason is None and auction.phase == ESCALATED and conflict is None:
                reason = "an operator resolved no_bids: calling afresh"
            if reason is None:
                continue
            self.close(ctx, auction, reason)
            if conflict is not None and auction.phase == ESCALATED:
                self.conflicts.resolve(ctx, conflict, "the step no longer waits for bids")
            if wf is not None and st is not None:
                self.open(ctx, wf, st)


def _moved_on(wf: WorkflowRun | None, st: StepRun | None, auction: Auction) -> str | None:
    """Why ``auction`` no longer applies, or ``None`` if it still does."""
    if wf is None or st is None:
        return "the workflow left memory"
    if not wf.state.startswith("active"):
        return f"the workflow is {wf.state}"
    if wf.coordination != PROTOCOL:
        return f"the workflow's protocol is now {wf.coordination}"
    if auction.phase in (BIDDING, BACKOFF, ESCALATED) and st.state != "allocating":
        return f"the step is {st.state}"
    if auction.phase == AWARDED:
        if st.agent != auction.winner or st.attempt != auction.attempt:
            return f"the step left {auction.winner}"
        if st.state != "assigned":
            return f"{auction.winner} took the step"
    return None


def auction_timers(state: FacilityState) -> dict[str, float]:
    """The timers open auctions expect (``Restarted`` re-arms them)."""
    return {_timer(a): a.due for a in state.auctions.values() if a.due is not None}
