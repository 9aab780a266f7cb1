"""The appliers of auction events (``edge_runtime.core._auction``): a base of ``Projection``,
kept apart so each module stays one concern. The step itself moves through the usual events
(``step_ready``, ``step_assigned``, ``step_requeued``); these only keep the auction."""

from __future__ import annotations

from typing import Any

from edge_runtime.core._auction_model import AWARDED, BACKOFF, DECIDING, ESCALATED, Auction
from edge_runtime.core._event import Event
from edge_runtime.core._state import FacilityState, WorkflowRun

__all__ = ["AuctionEvents"]


class AuctionEvents:
    """``_on_<kind>`` appliers for ``cfp_opened``, ``bid_received``, ``step_awarded``,
    ``award_declined``, ``award_unanswered``, ``cfp_no_bids`` and ``auction_closed``."""

    state: FacilityState

    def _drop_auction(self, cfp_id: str) -> None:
        auction = self.state.auctions.pop(cfp_id)
        del self.state.auction_of[auction.key]

    def _on_cfp_opened(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        assert wf is not None
        if "replaces" in d:  # the next round of the same auction
            self._drop_auction(d["replaces"])
        auction = Auction(d["cfp"], wf.id, d["step"], d["round"], list(d["invited"]),
                          d["deadline"], list(d.get("excluded", ())))
        self.state.auctions[auction.id] = auction
        self.state.auction_of[auction.key] = auction.id

    def _on_bid_received(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        self.state.auctions[d["cfp"]].bids[d["agent"]] = [d["cost"], d["eta"],
                                                          d.get("proxy", False)]

    def _on_step_awarded(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        auction = self.state.auctions[d["cfp"]]
        auction.phase, auction.winner, auction.attempt = AWARDED, d["agent"], d["attempt"]
        auction.due, auction.award_cmd = d["until"], d["cmd"]

    def _fell_through(self, d: dict[str, Any]) -> None:
        auction = self.state.auctions[d["cfp"]]
        auction.excluded.append(d["agent"])
        auction.phase, auction.winner, auction.due = DECIDING, None, None

    def _on_award_declined(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        self._fell_through(d)

    def _on_award_unanswered(self, wf: WorkflowRun | None, d: dict[str, Any],
                             ev: Event) -> None:
        self._fell_through(d)

    def _on_cfp_no_bids(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        auction = self.state.auctions[d["cfp"]]
        retry_at = d["retry_at"]  # None after the last round: an operator decides
        auction.phase = BACKOFF if retry_at is not None else ESCALATED
        auction.winner, auction.due = None, retry_at

    def _on_auction_closed(self, wf: WorkflowRun | None, d: dict[str, Any], ev: Event) -> None:
        self._drop_auction(d["cfp"])
