"""``edge/vda``: the health of an edge's VDA 5050 links, one ``VdaLink`` per AGV.

The edge's VDA 5050 master knows what its events do not carry: orders and instant actions
an AGV has not acknowledged yet, orders it rejected, messages from it that failed the schema.
The edge publishes them retained (``VdaLinks``) when they change, at most once a second; the
hub keeps the latest per facility and serves them (``GET /facilities/{id}/vda``). It is a
status, like ``edge/status``: not an event, not in the log, counted since the edge started.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from topics._base import Identifier, Message, Timestamp

__all__ = ["MAX_LINKS", "VdaAgvError", "VdaLink", "VdaLinks"]

Age = Annotated[float, Field(ge=0, le=1e9)]
"""Seconds since something happened (finite, non-negative)."""
Count = Annotated[int, Field(ge=0, lt=2**53)]
MAX_LINKS = 100
"""AGVs in one message: with 8 errors of 256 characters each, 100 stay under the 64 KiB
payload limit only if most are healthy, so the edge also checks the encoded size."""


class VdaAgvError(Message):
    """One error an AGV reports in its last ``state`` (VDA 5050 §6.10.6, ``errors``)."""

    error_type: Annotated[str, Field(max_length=128)]
    level: Literal["WARNING", "FATAL"]
    description: Annotated[str, Field(max_length=256)] = ""
    """Cut to 256 characters by the edge."""


class VdaLink(Message):
    """One AGV's link to its master."""

    agent_id: Identifier
    """The AGV as an agent of the edge's core: its serial number (``VdaBridge``)."""
    manufacturer: Identifier
    serial_number: Identifier
    version: Annotated[str, Field(max_length=32)] | None = None
    """The protocol version its headers carry (``2.0.0``, ``2.1.0``); None before any."""
    connection: Literal["ONLINE", "OFFLINE", "CONNECTIONBROKEN", "UNKNOWN"] = "UNKNOWN"
    lost: bool = False
    """Silent past the master's timeout: its step was handed back."""
    state_age_s: Age | None = None
    """Seconds since its last ``state``; None before any."""
    operating_mode: Annotated[str, Field(max_length=32)] | None = None
    order_id: Annotated[str, Field(max_length=128)] | None = None
    """The order it runs, if any."""
    order_unacked_s: Age | None = None
    """Seconds the order (or its last update) has been sent without the AGV reporting it in
    a ``state``; None when acknowledged or when there is no order."""
    instants_unacked: Count = 0
    """Instant actions sent that the AGV has not reported yet."""
    oldest_instant_s: Age | None = None
    """Seconds the oldest of them has waited."""
    rejections: Count = 0
    """Orders or updates it rejected (§6.6.4) since the edge started."""
    schema_errors: Count = 0
    """Its messages the edge refused (schema, size, identity) since the edge started."""
    errors: list[VdaAgvError] = Field(default_factory=list, max_length=8)
    """The errors in its last ``state`` (the first 8)."""


class VdaLinks(Message):
    """``edge/vda``: every AGV the edge's master has heard of, retained."""

    type: Literal["vda_links"] = "vda_links"
    facility: Identifier
    links: list[VdaLink] = Field(default_factory=list, max_length=MAX_LINKS)
    """Sorted by agent id. An edge with more AGVs than fit (``MAX_LINKS``, and the payload
    limit) keeps those most in need (lost, unacknowledged, with errors)."""
    left_out: Count = 0
    """AGVs not in ``links`` for want of room."""
    ts: Timestamp = 0.0
