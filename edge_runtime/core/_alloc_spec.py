"""What a template says about allocation policy: ``Template.allocation`` (work queues).

Kept apart from ``_template`` so the rules live with the work queues that read them
(``_workqueues``); ``_template`` only carries the field. Each field left out falls back to
the facility's ``CoreConfig``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["AllocationPolicy"]


class AllocationPolicy(BaseModel):
    """A template's overrides of the facility's allocation policy (docs/design.md §6: "per facility
    with template overrides")."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    max_queued_per_agent: int | None = Field(default=None, ge=0, le=1000)
    """Its steps may be queued on a busy agent that has fewer than this many queued (0:
    never queued); ``None``: ``CoreConfig.max_queued_per_agent``."""
    prefer_idle: bool | None = None
    """Its steps go to a free agent before a busy one whatever the cost; ``None``:
    ``CoreConfig.prefer_idle``."""
