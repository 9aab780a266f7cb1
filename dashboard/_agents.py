"""The Agents page's tables, from the hub's JSON: every agent with its status, battery and
work; the agents the edge bids for (VDA 5050 AGVs) with their mode, e-stop and open safety
conflicts; an agent's workflows; the facility's safety stops in force.

Link health of a VDA 5050 AGV as the edge's master sees it — orders and instant actions
not yet acknowledged, rejections, schema errors — is kept by the edge's VDA 5050 master and
its metrics, and is not carried to the hub yet: ``VDA_NOT_CARRIED`` says so on the page.
"""

from __future__ import annotations

from typing import Any

from dashboard._map import agent_status

__all__ = ["AGENT_RULES", "VDA_NOT_CARRIED", "agent_rows", "stop_label", "stops_in_force",
           "vda_rows", "workflow_rows"]

AGENT_RULES = ("e_stop", "operating_mode", "command_refused", "person_in_robot_zone",
               "facility_stop", "battery_below_need")
"""Conflict rules that name an agent's trouble (shown with the agent)."""
VDA_NOT_CARRIED = (
    "Not at the hub yet: orders and instant actions an AGV has not acknowledged, its "
    "rejections and schema errors stay with the edge's VDA 5050 master (the edge's "
    "/metrics); what the hub knows is shown: mode, e-stop, status, and the safety conflicts "
    "naming the AGV.")


def _pct(value: Any) -> str:
    return "—" if value is None else f"{float(value):.0f} %"


def agent_rows(agents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per agent, by id: what the table shows."""
    return [{
        "agent": a["id"], "facility": a.get("facility", ""), "kind": a.get("kind", ""),
        "status": agent_status(a), "node": a.get("node") or "—",
        "battery": _pct(a.get("battery")), "mode": a.get("mode", "automatic"),
        "work": "/".join(p for p in (a.get("workflow_id"), a.get("step_id")) if p) or "—",
        "capabilities": ", ".join(a.get("capabilities") or []),
        "lent to": a.get("lent_to") or "",
    } for a in sorted(agents, key=lambda a: str(a["id"]))]


def vda_rows(agents: list[dict[str, Any]],
             conflicts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The agents the edge bids for (``bids`` false: VDA 5050 AGVs, simple devices), with
    their mode, e-stop and the unresolved conflicts that name them."""
    rows = []
    for a in sorted(agents, key=lambda a: str(a["id"])):
        if a.get("bids", True):
            continue
        trouble = [f"{c['rule']} ({c['status']})" for c in conflicts
                   if a["id"] in c.get("participants", []) and c.get("status") != "resolved"
                   and c.get("rule") in AGENT_RULES]
        rows.append({
            "agv": a["id"], "online": "yes" if a.get("online") else "no",
            "mode": a.get("mode", "automatic"), "e-stop": "ENGAGED" if a.get("e_stop") else "off",
            "status": agent_status(a), "node": a.get("node") or "—",
            "battery": _pct(a.get("battery")),
            "safety conflicts": "; ".join(trouble) or "none",
        })
    return rows


def workflow_rows(workflows: list[dict[str, Any]], agent_id: str) -> list[dict[str, Any]]:
    """An agent's workflows: state, and the steps it holds in each."""
    return [{
        "workflow": w["id"], "facility": w.get("facility", ""), "template": w.get("template"),
        "state": w.get("state", ""),
        "its steps now": ", ".join(f"{s['id']} ({s['state']})" for s in w.get("steps", [])
                                   if s.get("agent") == agent_id) or "—",
        "priority": w.get("priority", 0),
    } for w in workflows]


def stops_in_force(conflicts: list[dict[str, Any]], facility: str) -> list[dict[str, Any]]:
    """The facility's safety stops not yet released (whole facility: ``resource`` None)."""
    return [c for c in conflicts if c.get("facility") == facility
            and c.get("rule") == "facility_stop" and c.get("status") != "resolved"]


def stop_label(stop: dict[str, Any]) -> str:
    """One line naming a stop's scope, its robots and why."""
    scope = f"zone {stop['resource']}" if stop.get("resource") else "the whole facility"
    robots = ", ".join(stop.get("participants") or []) or "no robot in scope"
    why = f" — {stop['detail']}" if stop.get("detail") else ""
    return f"🛑 {scope}: {robots}{why}"
