"""The arguments of the lending actions (``HubCommand.args``), validated strictly like
``_command_args``: an unknown field or a missing one is ``BadArguments`` and changes
nothing."""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator

from edge_runtime.core._command_args import _Args
from topics import Identifier

__all__ = [
    "LendAgentArgs", "LendResourceArgs", "ReclaimAgentArgs", "ReclaimResourceArgs",
    "ReleaseBookingArgs",
]


class LendAgentArgs(_Args):
    """``lend_agent``: the agent takes no new work here; ``to`` may use it."""

    agent_id: Identifier
    to: Identifier
    reason: str = Field(default="", max_length=512)


class ReclaimAgentArgs(_Args):
    """``reclaim_agent``: the agent works here again."""

    agent_id: Identifier


class LendResourceArgs(_Args):
    """``lend_resource``: local steps needing it wait as if it were held."""

    resource: Identifier
    to: Identifier
    reason: str = Field(default="", max_length=512)


class ReclaimResourceArgs(_Args):
    """``reclaim_resource``: local steps may acquire it again."""

    resource: Identifier


class ReleaseBookingArgs(_Args):
    """``release_booking``: the hub settled a cross-facility double-booking for ``to``: the
    agent (or resource) is lent there and this facility's step leaves it."""

    agent_id: Identifier | None = None
    resource: Identifier | None = None
    workflow_id: Identifier
    step_id: Identifier
    to: Identifier
    reason: str = Field(default="", max_length=512)

    @model_validator(mode="after")
    def _one_thing(self) -> Self:
        if (self.agent_id is None) == (self.resource is None):
            raise ValueError("name exactly one of agent_id and resource")
        return self
