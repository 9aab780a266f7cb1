"""An open auction (contract net, docs/coordination.md "``auction_based``") as plain data.

Kept apart from the protocol (``_auction``) so the state (``_state.FacilityState.auctions``)
and the snapshot can hold it without importing the component. Nothing here decides: the
appliers in ``_auction_events`` change it, and these rows are how a snapshot stores it.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AWARDED",
    "BACKOFF",
    "BIDDING",
    "DECIDING",
    "ESCALATED",
    "Auction",
    "auction_from_row",
    "auction_row",
]

BIDDING = "bidding"
"""Calls for proposals are out; bids are taken until ``due`` (the bid deadline)."""
AWARDED = "awarded"
"""The step went to ``winner``; it must accept or start it by ``due``."""
BACKOFF = "backoff"
"""No usable bid: a new round is called at ``due``."""
ESCALATED = "escalated"
"""No usable bid in the last round: the step waits for an operator (a ``no_bids``
conflict); resolving it calls afresh."""
DECIDING = "deciding"
"""Between an award that fell through and the next decision (within one input)."""


class Auction:
    """One round of a call for proposals for one step, and what came of it."""

    __slots__ = ("attempt", "award_cmd", "bids", "deadline", "due", "excluded", "id",
                 "invited", "phase", "round", "step_id", "winner", "workflow_id")

    def __init__(self, cfp_id: str, workflow_id: str, step_id: str, round_: int,
                 invited: list[str], deadline: float, excluded: list[str]) -> None:
        self.id = cfp_id
        self.workflow_id = workflow_id
        self.step_id = step_id
        self.round = round_
        """1 for the first call; each re-announcement after a round without bids adds 1."""
        self.invited = invited
        """Agents the call went to (or the edge bid for), in id order."""
        self.deadline = deadline
        """Bids are taken until then."""
        self.excluded = excluded
        """Agents that declined or ignored an award of this auction: never awarded again in
        it, and not called again in its later rounds."""
        self.bids: dict[str, list[Any]] = {}
        """Agent -> ``[cost, eta_s, proxy]``, in arrival order."""
        self.phase = BIDDING
        self.due: float | None = deadline
        """When its timer (``auction:<id>``) fires: the bid deadline, the award timeout or
        the next round; ``None`` while deciding."""
        self.winner: str | None = None
        self.attempt = 0
        """The step attempt the award made (``Assign.attempt``)."""
        self.award_cmd = ""
        """Command id of the ``Award`` sent to the winner."""

    @property
    def key(self) -> tuple[str, str]:
        """``(workflow_id, step_id)``: one auction per step at a time."""
        return (self.workflow_id, self.step_id)


def auction_row(a: Auction) -> list[Any]:
    """``a`` as a snapshot row (lists only: deterministic bytes)."""
    return [a.id, a.workflow_id, a.step_id, a.round, a.invited, a.deadline, a.excluded,
            [[aid, *bid] for aid, bid in a.bids.items()], a.phase, a.due, a.winner,
            a.attempt, a.award_cmd]


def auction_from_row(row: list[Any]) -> Auction:
    """The auction ``auction_row`` wrote."""
    (cfp_id, wid, sid, round_, invited, deadline, excluded, bids, phase, due, winner,
     attempt, award_cmd) = row[:13]
    a = Auction(cfp_id, wid, sid, round_, invited, deadline, excluded)
    a.bids = {b[0]: list(b[1:]) for b in bids}
    a.phase, a.due, a.winner, a.attempt, a.award_cmd = phase, due, winner, attempt, award_cmd
    return a
