"""What ``GET /api/v1/facilities/{id}/vda`` answers: a facility's VDA 5050 link health as
its edge last published it on ``edge/vda`` (``topics.VdaLinks``), with when the hub got it
and whether the edge is online (``_vda_links`` keeps them)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["VdaAgvErrorOut", "VdaLinkOut", "VdaLinksOut"]


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class VdaAgvErrorOut(_Out):
    """One error in the AGV's last ``state`` (VDA 5050 ``errors``)."""

    error_type: str
    level: Literal["WARNING", "FATAL"]
    description: str = ""


class VdaLinkOut(_Out):
    """One AGV's link to its edge's VDA 5050 master, as the edge last published it."""

    agent_id: str
    """The AGV as an agent of the edge: its serial number, as the edge's bridge names it."""
    manufacturer: str
    serial_number: str
    version: str | None = None
    """The VDA 5050 version its headers carry; None before any message."""
    connection: Literal["ONLINE", "OFFLINE", "CONNECTIONBROKEN", "UNKNOWN"] = "UNKNOWN"
    lost: bool = False
    """Silent past the master's timeout: its step was handed back."""
    state_age_s: float | None = None
    """Seconds since its last ``state`` (at the edge's ``ts``); None before any."""
    operating_mode: str | None = None
    order_id: str | None = None
    """The order it runs, if any."""
    order_unacked_s: float | None = None
    """Seconds the order (or its update) has waited for the AGV to report it; None when
    acknowledged or without an order."""
    instants_unacked: int = 0
    """Instant actions sent that it has not reported yet."""
    oldest_instant_s: float | None = None
    """Seconds the oldest of them has waited."""
    rejections: int = 0
    """Orders or updates it rejected since the edge started."""
    schema_errors: int = 0
    """Its messages the edge refused (schema, size, identity) since the edge started."""
    errors: list[VdaAgvErrorOut] = Field(default_factory=list)


class VdaLinksOut(_Out):
    """A facility's VDA 5050 links (``GET /facilities/{id}/vda``)."""

    facility: str
    links: list[VdaLinkOut] = Field(default_factory=list)
    """By agent id; empty when the edge never published any (``received_at`` null)."""
    left_out: int = 0
    """AGVs the edge left out of its message for want of room."""
    ts: float | None = None
    """When the edge made the message (its clock)."""
    received_at: float | None = None
    """When the hub received it (the hub's clock); None: never heard on ``edge/vda``."""
    age_s: float | None = None
    """Seconds since ``received_at`` (figures are as of then; the edge republishes at most
    once a second while they change)."""
    edge_online: bool = False
    """The facility's edge is online (its status): if not, the figures are its last."""
