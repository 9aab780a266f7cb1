"""Coordination messages (docs/design.md §6, docs/coordination.md): contract-net bids, consensus
votes, team-lead sub-steps, and what the edge sends for them."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from topics._base import Identifier, Text, Timestamp, _AgentEventBase, _CommandBase, _StepEventBase

__all__ = ["Award", "Ballot", "Bid", "Cfp", "Follow", "SubStepAssigned", "SubStepDone", "Vote"]

# --- agent → edge ------------------------------------------------------------------------


class Bid(_AgentEventBase):
    """A proposal answering a ``cfp``."""

    type: Literal["bid"] = "bid"
    cfp_id: Identifier
    cost: float = Field(ge=0, le=1e9)
    eta_s: float = Field(default=0.0, ge=0, le=1e7)


class Vote(_AgentEventBase):
    """A voter's choice (``then``/``else``) on the ``ballot`` ``vote_id`` (``consensus``)."""

    type: Literal["vote"] = "vote"
    vote_id: Identifier
    workflow_id: Identifier
    step_id: Identifier
    choice: Literal["then", "else"]


class SubStepAssigned(_StepEventBase):
    """A team lead gives part ``sub_id`` of its composite step to ``member`` (again: to
    another member) (``hierarchical``)."""

    type: Literal["substep_assigned"] = "substep_assigned"
    sub_id: Identifier
    member: Identifier
    description: Text = ""


class SubStepDone(_StepEventBase):
    """A team lead's part ``sub_id`` is done (``hierarchical``)."""

    type: Literal["substep_done"] = "substep_done"
    sub_id: Identifier


# --- edge → agent ------------------------------------------------------------------------


class Cfp(_CommandBase):
    """Call for proposals: bid on this step if you can."""

    type: Literal["cfp"] = "cfp"
    cfp_id: Identifier
    workflow_id: Identifier
    step_id: Identifier
    capabilities: list[Identifier] = Field(default_factory=list, max_length=64)
    location: Identifier | None = None
    deadline_ts: Timestamp


class Award(_CommandBase):
    """Your bid won (the matching ``assign`` follows or is included by id)."""

    type: Literal["award"] = "award"
    cfp_id: Identifier
    workflow_id: Identifier
    step_id: Identifier


class Follow(_CommandBase):
    """``leader_follower`` coalition steps: who leads, where it heads and how far it is.

    Sent to every member when a leader is elected (the leader finds its own id in
    ``leader``), and to the followers whenever the leader reports progress."""

    type: Literal["follow"] = "follow"
    workflow_id: Identifier
    step_id: Identifier
    leader: Identifier
    target: Identifier | None = None
    """The node the team heads to (the step's ``location``)."""
    progress: float = Field(default=0.0, ge=0, le=1)
    """The leader's last reported progress: the pace to keep."""


class Ballot(_CommandBase):
    """Vote on this decision point before ``deadline_ts``: send a ``vote`` (``consensus``);
    ``then``/``otherwise``: the steps each choice leads to."""

    type: Literal["ballot"] = "ballot"
    vote_id: Identifier
    workflow_id: Identifier
    step_id: Identifier
    question: Text = ""
    then: list[Identifier] = Field(default_factory=list, max_length=256)
    otherwise: list[Identifier] = Field(default_factory=list, max_length=256)
    deadline_ts: Timestamp
