"""What a template says about a composite step (``hierarchical``, docs/design.md §6): the team
its lead may split it among.

Kept apart from ``_template``: it only carries the field (``composite``; ``team`` is a
coalition's) and calls ``check_composite``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from topics import Identifier

__all__ = ["CompositeSpec", "check_composite"]


class CompositeSpec(BaseModel):
    """The team a lead may split its composite step among: agents named here, and any
    agent with every capability listed."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    members: tuple[Identifier, ...] = Field(default=(), max_length=256)
    capabilities: tuple[Identifier, ...] = Field(default=(), max_length=64)

    def admits(self, agent_id: str, caps: frozenset[str]) -> bool:
        """Whether the agent ``agent_id`` with ``caps`` belongs to the team."""
        return agent_id in self.members or (
            bool(self.capabilities) and caps.issuperset(self.capabilities))


def check_composite(i: int, kind: str, composite: CompositeSpec) -> None:
    """``ValueError`` if a composite step is not done by an agent (its lead), or its team
    names nobody."""
    if kind not in ("robot", "human", "ai"):
        raise ValueError(f"steps[{i}].composite: only a step done by an agent (its lead) "
                         "is composite")
    if not composite.members and not composite.capabilities:
        raise ValueError(f"steps[{i}].composite: name members or capabilities")
