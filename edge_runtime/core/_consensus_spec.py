"""What a template says about a voted decision point (``consensus``, docs/design.md §6).

Kept apart from ``_template`` so the vote's rules live with the protocol that reads them;
``_template`` only carries the field and calls ``check_vote`` while it validates a step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from topics import Identifier

__all__ = ["VOTER_KINDS", "VoteSpec", "check_vote"]

VOTER_KINDS = ("robot", "human", "ai")
"""A vote participant that is not a step id names every online agent of this kind."""


class VoteSpec(BaseModel):
    """How a decision step is put to a vote when its workflow runs ``consensus``."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    participants: tuple[Identifier, ...] = Field(min_length=1, max_length=64)
    """Who votes: a step id (the agent that did that step, once it is done) or an agent
    kind (every online agent of that kind when the vote opens)."""
    quorum: float = Field(default=0.5, gt=0, le=1)
    """Share of the voters whose votes make the vote count (rounded up, at least one)."""
    timeout_s: float = Field(default=60.0, gt=0, le=1e7)
    """How long the vote stays open; then what the votes say if the quorum voted and
    one branch leads, else ``default``."""
    default: Literal["then", "else"] = "else"
    """The branch taken when the vote is not decisive (timeout, tie, nobody to vote)."""
    question: str = Field(default="", max_length=1024)
    """What the voters are asked (their ``ballot``); the step's description if empty."""


class _StepLike(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def kind(self) -> str: ...


def check_vote(i: int, vote: VoteSpec, steps: Sequence[_StepLike],
               index: Mapping[str, int]) -> None:
    """``ValueError`` (naming the field) if a participant is neither an agent step of the
    template nor an agent kind."""
    for who in vote.participants:
        if who in index:
            if steps[index[who]].kind not in VOTER_KINDS:
                raise ValueError(f"steps[{i}].vote.participants: {who!r} is not done by an "
                                 "agent")
        elif who not in VOTER_KINDS:
            raise ValueError(f"steps[{i}].vote.participants: {who!r} is neither a step nor "
                             f"an agent kind ({', '.join(VOTER_KINDS)})")
