"""The Overview page's figures, read from the hub and turned into tables (plain functions).

One ``read`` per refresh asks the hub for its facilities, the workflow count per state
(``count`` of a one-item page: index counts, no record read), the agents, the unresolved
conflicts and ``/performance/system``; ``Sample`` s of successive reads (kept in the
session) give the charts: events per second per facility (from each facility's
``applied_seq``), workflows finished per minute, and the API's latency.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from dashboard._api import HubApi

__all__ = [
    "HISTORY", "STATES", "Overview", "Sample", "agent_rows", "change_rows", "conflict_rows",
    "facility_rows", "feed", "read", "sample", "throughput_rows",
]

STATES = ("pending", "active", "pausing", "paused", "cancelling", "completed", "failed",
          "cancelled")
"""The workflow machine's top-level states (edge_runtime/core/_machine.py)."""
FINISHED = ("completed", "failed", "cancelled")
RATE_WINDOW_S = 30.0
"""Seconds the Overview's rates are averaged over."""
HISTORY = 300
"""Samples kept per session (10 minutes at the default 2 s refresh)."""
FEED_PAGE = 1000
"""Changes read per request of the change feed (its most)."""


@dataclass(frozen=True)
class Overview:
    """One read of everything the page shows."""

    at: float
    facilities: list[dict[str, Any]]
    states: dict[str, int]
    """Workflows per top-level state, all facilities."""
    per_facility: dict[str, int]
    """Workflows (any state) per facility."""
    agents: list[dict[str, Any]]
    agents_total: int
    conflicts: list[dict[str, Any]]
    """Unresolved ones (open and escalated)."""
    system: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Sample:
    """What the charts need from one read."""

    at: float
    applied: dict[str, int]
    """Each facility's applied seq (one per event)."""
    finished: int
    ingest_per_s: float
    api_p50_ms: float | None
    api_p99_ms: float | None


def read(hub: HubApi, now: float) -> Overview:
    """Everything the Overview shows, from the hub (``ApiError`` if it fails)."""
    facilities: list[dict[str, Any]] = hub.get("/facilities")
    states = {s: int(hub.get("/workflows", state=s, limit=1)["count"]) for s in STATES}
    per_facility = {f["id"]: int(hub.get("/workflows", facility=f["id"], limit=1)["count"])
                    for f in facilities}
    first = hub.get("/agents", limit=500)
    agents = first["items"] if not first.get("next_cursor") else hub.pages("/agents")
    conflicts = [*hub.pages("/conflicts", status="open", most=1000),
                 *hub.pages("/conflicts", status="escalated", most=1000)]
    return Overview(now, facilities, states, per_facility, agents, int(first["count"]),
                    conflicts, hub.get("/performance/system"))


def sample(view: Overview) -> Sample:
    """The chart figures of one read."""
    api = view.system.get("api", {})
    return Sample(view.at, {f["id"]: int(f.get("applied_seq", 0)) for f in view.facilities},
                  sum(view.states.get(s, 0) for s in FINISHED),
                  float(view.system.get("ingest_events_per_s", 0.0)),
                  api.get("p50_ms"), api.get("p99_ms"))


def _ago(t: float | None, now: float) -> str:
    if t is None:
        return "never"
    s = max(0.0, now - t)
    return f"{s:.0f} s ago" if s < 120 else f"{s / 60:.0f} min ago"


def facility_rows(view: Overview) -> list[dict[str, Any]]:
    """One row per facility: its edge's status, how far the hub's view lags, its
    workflows."""
    return [{
        "facility": f["id"],
        "edge": "online" if f.get("online") else "offline",
        "view": "stale" if f.get("stale") else "current",
        "lag (events)": int(f.get("lag", 0)),
        "applied seq": int(f.get("applied_seq", 0)),
        "edge seq": int(f.get("edge_seq", 0)),
        "last event": _ago(f.get("last_event_at"), view.at),
        "workflows": view.per_facility.get(f["id"], 0),
    } for f in sorted(view.facilities, key=lambda f: str(f["id"]))]


def agent_rows(agents: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Agents counted by facility and status (``offline`` for those not online)."""
    counts = Counter((a["facility"], a.get("status", "idle") if a.get("online") else "offline")
                     for a in agents)
    return [{"facility": f, "status": s, "agents": n} for (f, s), n in sorted(counts.items())]


def conflict_rows(conflicts: Iterable[dict[str, Any]], now: float) -> list[dict[str, Any]]:
    """Unresolved conflicts, oldest first, with their age."""
    rows = [{
        "conflict": c["id"], "facility": c["facility"], "type": c.get("type", ""),
        "rule": c.get("rule", ""), "status": c.get("status", ""),
        "participants": ", ".join(c.get("participants") or []),
        "age (s)": round(max(0.0, now - c["detected_at"])) if c.get("detected_at") else None,
    } for c in conflicts]
    return sorted(rows, key=lambda r: -(r["age (s)"] or 0))


def throughput_rows(history: Sequence[Sample], window_s: float = RATE_WINDOW_S
                    ) -> list[dict[str, Any]]:
    """Per sample after the first: events per second per facility and workflows finished
    per minute over the last ``window_s`` seconds (or since the first sample: a rate over
    one 2 s refresh jumps between 0 and 30 a minute), and the API's p50/p99 latency (ms)."""
    rows: list[dict[str, Any]] = []
    start = 0
    for i in range(1, len(history)):
        after = history[i]
        while start < i - 1 and after.at - history[start + 1].at >= window_s:
            start += 1
        before = history[start]
        dt = after.at - before.at
        if dt <= 0:
            continue
        row: dict[str, Any] = {"at": after.at}
        for f, seq in sorted(after.applied.items()):
            row[f"{f} events/s"] = max(0, seq - before.applied.get(f, seq)) / dt
        row["finished/min"] = max(0, after.finished - before.finished) * 60 / dt
        row["API p50 ms"] = after.api_p50_ms
        row["API p99 ms"] = after.api_p99_ms
        rows.append(row)
    return rows


def feed(hub: HubApi, since: str | None, pages: int = 5
         ) -> tuple[list[dict[str, Any]], str | None, bool]:
    """The hub's change feed (``GET /events``) after token ``since`` (from its start if
    ``None``), at most ``pages`` requests: the changes, the token to poll on next, and
    whether more were left (a session catching up with a long feed)."""
    items: list[dict[str, Any]] = []
    for _ in range(pages):
        got = hub.get("/events", since=since, limit=FEED_PAGE)
        items.extend(got["items"])
        since = got.get("next") or since
        if len(got["items"]) < FEED_PAGE:
            return items, since, False
    return items, since, True


def change_rows(changes: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Changes as rows, newest first: facility, seq, event kind, workflow."""
    rows = [{"facility": c["event"]["facility"], "seq": c["event"]["seq"],
             "event": c["event"]["kind"], "workflow": c["event"].get("workflow_id") or ""}
            for c in changes]
    return rows[::-1]
