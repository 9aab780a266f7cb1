"""The read models of the coordination under way in a facility (``GET /api/v1/coordination``,
built by ``_coordination``): auctions and bids, sync points, teams, votes."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["AuctionOut", "BidOut", "CoordinationOut", "SyncPointOut", "TeamOut", "VoteOut"]


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class BidOut(_Out):
    """One bid of an auction; ``proxy``: the edge bid for the agent (a VDA 5050 AGV)."""

    agent: str
    cost: float
    eta_s: float
    proxy: bool = False


class AuctionOut(_Out):
    """A call for proposals for one step (``auction_based``, docs/coordination.md)."""

    id: str
    workflow_id: str
    step_id: str
    round: int
    phase: str
    """``bidding``, ``awarded`` (the winner must accept), ``backoff`` (no bid: called again
    at ``due``), ``escalated`` (an operator must act) or ``deciding``."""
    invited: list[str]
    bids: list[BidOut]
    """In arrival order."""
    awaited: list[str]
    """Invited agents that have not bid (nor been left out)."""
    winner: str | None = None
    deadline: float
    due: float | None = None


class SyncPointOut(_Out):
    """An open barrier: released when every participant arrived."""

    workflow_id: str
    step_id: str
    state: str
    participants: list[str]
    """Its participant steps."""
    expected: list[str]
    """Agents that did a participant step: each must arrive."""
    arrived: list[str]
    awaited: list[str]
    """Expected agents not arrived yet."""
    steps_to_finish: list[str] = Field(default_factory=list)
    """Participant steps not done yet (their agents are not known before)."""


class TeamOut(_Out):
    """A team holding a step: a coalition (``leader_follower``: ``leader`` leads, the rest
    follow) or a composite step's lead and the members given parts (``hierarchical``)."""

    workflow_id: str
    step_id: str
    protocol: str
    state: str
    leader: str | None
    members: dict[str, str]
    """Role (or sub-step) → agent."""
    followers: list[str]


class VoteOut(_Out):
    """A vote on a decision step (``consensus``)."""

    workflow_id: str
    step_id: str
    id: str
    voters: list[str]
    quorum: int
    """Votes needed for the result to count."""
    votes: dict[str, str]
    """Agent → ``then`` or ``else``."""
    awaited: list[str]
    deadline: float
    default: str
    result: str | None = None
    """Once closed: the branch taken; ``reason`` says why."""
    reason: str | None = None


class CoordinationOut(_Out):
    """One facility's coordination under way."""

    facility: str
    seq: int
    """The replica's seq when this view was built."""
    auctions: list[AuctionOut] = Field(default_factory=list)
    sync_points: list[SyncPointOut] = Field(default_factory=list)
    teams: list[TeamOut] = Field(default_factory=list)
    votes: list[VoteOut] = Field(default_factory=list)
