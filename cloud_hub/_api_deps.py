"""What every route takes besides its own arguments and its caller (``cloud_hub._auth``'s
``require``): the hub, the consistency level, the staleness bound of a read, the reason of
a write, and paging.

The dependencies are ``async def`` although they never await: FastAPI runs a plain ``def``
dependency in its thread pool, one hop per dependency per request, which cost more than
the reads themselves under 50 concurrent clients (docs/benchmarks.md, "Cloud hub")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Query, Request

from cloud_hub._model import Consistency
from cloud_hub._service import HubService

__all__ = [
    "ConsistencyDep", "Paging", "ReasonHeader", "consistency_of", "hub", "paging",
    "read_staleness", "write_reason",
]


async def hub(request: Request) -> HubService:
    """The hub the app serves."""
    service: HubService = request.app.state.hub
    return service


async def consistency_of(
    consistency: Annotated[Consistency | None, Query(
        description="strong (wait for the edge), eventual (202 + command id) or "
                    "bounded_staleness; overrides the X-Consistency header")] = None,
    x_consistency: Annotated[Consistency | None, Header(
        description="The consistency level, when the query does not give one")] = None,
) -> Consistency | None:
    """The level asked for (query first, then header); ``None``: the hub's default."""
    return consistency or x_consistency


ConsistencyDep = Annotated[Consistency | None, Depends(consistency_of)]


async def read_staleness(
    request: Request,
    level: ConsistencyDep,
    max_staleness_s: Annotated[float | None, Query(
        gt=0, le=86_400, description="bounded_staleness reads: the bound in seconds "
                                     "(default: the hub's)")] = None,
) -> float | None:
    """The staleness bound of a read: one only under ``bounded_staleness``."""
    if level != "bounded_staleness":
        return None
    default: float = request.app.state.default_staleness_s
    return max_staleness_s if max_staleness_s is not None else default


ReasonHeader = Annotated[str | None, Header(
    max_length=1024, description="Why (when the body gives no reason)")]


def write_reason(body_reason: str, x_reason: str | None) -> str:
    """A write's reason: the body's, else the ``X-Reason`` header's."""
    return body_reason or (x_reason or "")


@dataclass(frozen=True, slots=True)
class Paging:
    """A list request's cursor and page size."""

    cursor: str | None
    limit: int


async def paging(
    cursor: Annotated[str | None, Query(max_length=512, description=(
        "next_cursor of the previous page"))] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Paging:
    """Cursor paging of every list."""
    return Paging(cursor, limit)
