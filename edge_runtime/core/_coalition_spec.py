"""The template side of coalition steps: ``Step.team``, and its checks.

A coalition step needs several agents at once — a robot and a person at a handover, two
robots for a joint carry. Its ``team`` lists one entry per member, each a ``role`` with the
kind of agent it needs (the step's kind unless it says) and the capabilities it needs on top
of the step's own. The step is allocated as one unit (``_coalition``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from topics import Identifier

if TYPE_CHECKING:
    from edge_runtime.core._template import Step

__all__ = ["MAX_TEAM", "TeamMember", "check_team", "member_kind"]

MAX_TEAM = 16
"""Most members a coalition step may name (the team is matched in one pass)."""


class TeamMember(BaseModel):
    """One member of a coalition step: its role, and the agent it needs."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    role: Identifier
    """Unique within the step; sent to the member in ``Assign.role``."""
    kind: Literal["robot", "human", "ai"] | None = None
    """The member's agent kind; ``None``: the step's ``kind``."""
    capabilities: tuple[Identifier, ...] = Field(default=(), max_length=64)
    """Needed on top of the step's ``capabilities``."""


def member_kind(step: Step, member: TeamMember) -> str:
    """The agent kind ``member`` of ``step`` needs."""
    return member.kind or step.kind


def check_team(i: int, step: Step) -> None:
    """Refuse a team that cannot be allocated as one unit (``ValueError`` naming the field)."""
    team = step.team
    if not team:
        return
    where = f"steps[{i}].team"
    if step.kind not in ("robot", "human", "ai"):
        raise ValueError(f"{where}: only robot, human and ai steps have a team")
    if len(team) < 2 or len(team) > MAX_TEAM:
        raise ValueError(f"{where}: a team has 2 to {MAX_TEAM} members, not {len(team)}")
    seen: list[str] = []
    for j, member in enumerate(team):
        if member.role in seen:
            raise ValueError(f"{where}[{j}].role: duplicate role {member.role!r}")
        seen.append(member.role)
