"""What the lending routes take and give: a loan's record and the request bodies."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from cloud_hub._api_bodies import Id, WriteIn
from cloud_hub._service import HubError

__all__ = ["BookingStrategy", "Invalid", "LendIn", "LoanOut", "ReturnIn"]

BookingStrategy = Literal["priority", "manual"]
"""How a double-booking of a shared agent or resource is settled: ``priority`` (the edge's
strategy: the higher-priority workflow keeps it) or ``manual`` (left open for
``POST /api/v1/conflicts/{id}/resolve`` with ``keep:<facility>``)."""


class Invalid(HubError):
    """A request that names things that exist but asks what cannot be (lend to itself)."""

    code = "invalid"
    status = 422


class LendIn(WriteIn):
    """``POST …/lend``: the facility that has it now and the one that may use it."""

    from_facility: Id
    to_facility: Id
    strategy: BookingStrategy | None = None
    """How a double-booking of it is settled (default: the hub's)."""


class ReturnIn(WriteIn):
    """``POST …/return``: end the loan (``from_facility`` only when it is lent by two)."""

    from_facility: Id | None = None


class LoanOut(BaseModel):
    """A loan the hub recorded and how it stands at the lender's edge."""

    model_config = ConfigDict(extra="forbid")

    id: str
    """``<kind>:<name>:<from_facility>``."""
    kind: Literal["agent", "resource"]
    name: str
    from_facility: str
    to_facility: str
    status: Literal["lending", "lent", "returning", "returned", "refused"] = "lending"
    """``lending``/``returning`` until the lender's edge applied the command."""
    strategy: BookingStrategy = "priority"
    who: str = ""
    reason: str = ""
    command_id: str = ""
    """The last command sent for it (``lend_*`` or ``reclaim_*``)."""
    created_at: float = 0.0
    updated_at: float = 0.0
    error: str | None = Field(default=None, description="why the edge refused it")
