"""The Coordination page's tables, from ``GET /api/v1/coordination`` (one entry per
facility): running auctions and their bids, sync points (who arrived, who is awaited),
teams with their leader and followers, votes — and the arrivals a supervisor may report.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Arrival", "arrivals", "auction_rows", "bid_rows", "sync_rows", "team_rows",
           "vote_rows"]

Arrival = tuple[str, str, str]
"""``(workflow_id, sync step, agent)``: an arrival a supervisor may report."""


def _names(items: list[str]) -> str:
    return ", ".join(items) or "—"


def _in(at: float | None, now: float) -> str:
    if at is None:
        return "—"
    left = at - now
    return f"in {left:.0f} s" if left >= 0 else f"{-left:.0f} s ago"


def _each(views: list[dict[str, Any]], part: str) -> list[tuple[str, dict[str, Any]]]:
    return [(v["facility"], item) for v in views for item in v.get(part, [])]


def auction_rows(views: list[dict[str, Any]], now: float) -> list[dict[str, Any]]:
    """One row per running auction."""
    return [{
        "facility": f, "auction": a["id"], "step": f"{a['workflow_id']}/{a['step_id']}",
        "phase": a["phase"], "round": a["round"], "invited": _names(a["invited"]),
        "bids": len(a["bids"]), "awaited": _names(a["awaited"]),
        "winner": a.get("winner") or "—", "next": _in(a.get("due"), now),
    } for f, a in _each(views, "auctions")]


def bid_rows(views: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every bid of every running auction, cheapest first within an auction."""
    rows = []
    for f, a in _each(views, "auctions"):
        for b in sorted(a["bids"], key=lambda b: (b["cost"], b["eta_s"], b["agent"])):
            rows.append({"facility": f, "auction": a["id"], "agent": b["agent"],
                         "cost": b["cost"], "eta (s)": b["eta_s"],
                         "by": "the edge (proxy)" if b.get("proxy") else "the agent",
                         "winner": "🏆" if a.get("winner") == b["agent"] else ""})
    return rows


def sync_rows(views: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per open sync point."""
    return [{
        "facility": f, "sync point": f"{s['workflow_id']}/{s['step_id']}", "state": s["state"],
        "arrived": _names(s["arrived"]), "awaited": _names(s["awaited"]),
        "steps to finish": _names(s.get("steps_to_finish", [])),
    } for f, s in _each(views, "sync_points")]


def arrivals(views: list[dict[str, Any]]) -> list[Arrival]:
    """The arrivals still awaited at open sync points (what the control offers)."""
    return [(s["workflow_id"], s["step_id"], agent)
            for _, s in _each(views, "sync_points") for agent in s["awaited"]]


def team_rows(views: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per team holding a step (leader/follower groups, composite steps)."""
    return [{
        "facility": f, "step": f"{t['workflow_id']}/{t['step_id']}", "protocol": t["protocol"],
        "state": t["state"], "leader": t.get("leader") or "—",
        "followers": _names(t["followers"]),
        "members": ", ".join(f"{role}: {agent}" for role, agent in t["members"].items()),
    } for f, t in _each(views, "teams")]


def vote_rows(views: list[dict[str, Any]], now: float) -> list[dict[str, Any]]:
    """One row per vote: tally, who is awaited, and the result once closed."""
    rows = []
    for f, v in _each(views, "votes"):
        tally = {"then": 0, "else": 0}
        for choice in v["votes"].values():
            tally[choice] = tally.get(choice, 0) + 1
        rows.append({
            "facility": f, "decision": f"{v['workflow_id']}/{v['step_id']}",
            "voters": _names(v["voters"]), "quorum": v["quorum"],
            "then": tally["then"], "else": tally["else"], "awaited": _names(v["awaited"]),
            "closes": "closed" if v.get("result") else _in(v["deadline"], now),
            "result": f"{v['result']} ({v.get('reason')})" if v.get("result") else "open",
        })
    return rows
