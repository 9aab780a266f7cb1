"""The Agents page's tables, from the hub's JSON: every agent with its status, battery and
work; the agents the edge bids for (VDA 5050 AGVs) with their mode, e-stop and open safety
conflicts; the VDA 5050 links' health as the edge's master last reported it (``GET
/facilities/{id}/vda``: unacknowledged orders and instant actions, rejections, schema
errors, the AGV's errors) with the links that need attention; an agent's workflows; the
facility's safety stops in force.
"""

from __future__ import annotations

from typing import Any

from dashboard._map import agent_status

__all__ = ["AGENT_RULES", "ATTENTION_S", "agent_rows", "link_trouble", "stop_label",
           "stops_in_force", "vda_attention", "vda_link_rows", "vda_report_caption",
           "vda_rows", "workflow_rows"]

AGENT_RULES = ("e_stop", "operating_mode", "command_refused", "person_in_robot_zone",
               "facility_stop", "battery_below_need")
"""Conflict rules that name an agent's trouble (shown with the agent)."""
ATTENTION_S = 5.0
"""An order or instant action unacknowledged for longer than this needs attention (an AGV
reports what it received in its next ``state``, normally within a second or two)."""


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


def _secs(value: Any) -> str:
    """Seconds as the tables show them: tenths below 10 s, whole seconds above."""
    if value is None:
        return "—"
    v = float(value)
    return f"{v:.1f} s" if v < 10 else f"{v:.0f} s"


def link_trouble(link: dict[str, Any]) -> list[str]:
    """Why one VDA 5050 link needs attention (empty: healthy): lost, offline or broken
    connection, an order or instant action unacknowledged past ``ATTENTION_S``, any
    rejection or schema error, a FATAL error on the AGV."""
    out = []
    if link.get("lost"):
        out.append("lost")
    if link.get("connection") in ("OFFLINE", "CONNECTIONBROKEN"):
        out.append(f"connection {link['connection']}")
    unacked = link.get("order_unacked_s")
    if unacked is not None and float(unacked) > ATTENTION_S:
        out.append(f"order not acknowledged for {_secs(unacked)}")
    oldest, waiting = link.get("oldest_instant_s"), int(link.get("instants_unacked") or 0)
    if waiting and oldest is not None and float(oldest) > ATTENTION_S:
        out.append(f"{waiting} instant action(s) waiting up to {_secs(oldest)}")
    for count, what in ((link.get("rejections"), "rejection(s)"),
                        (link.get("schema_errors"), "schema error(s)")):
        if count:
            out.append(f"{count} {what}")
    out.extend(f"FATAL {e.get('error_type', '?')}" for e in link.get("errors") or []
               if e.get("level") == "FATAL")
    return out


def _order_ack(link: dict[str, Any]) -> str:
    if link.get("order_unacked_s") is not None:
        return f"order not acknowledged for {_secs(link['order_unacked_s'])}"
    return "acknowledged" if link.get("order_id") else "—"


def _instants(link: dict[str, Any]) -> str:
    waiting = int(link.get("instants_unacked") or 0)
    if not waiting:
        return "none awaiting"
    return f"{waiting} awaiting (oldest {_secs(link.get('oldest_instant_s'))})"


def vda_link_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per AGV of a ``GET /facilities/{id}/vda`` answer, by agent id; the first
    column flags the links that need attention (``link_trouble``), ``ok`` otherwise."""
    rows = []
    for link in sorted(report.get("links") or [], key=lambda k: str(k.get("agent_id"))):
        trouble = link_trouble(link)
        rows.append({
            "attention": f"⚠ {'; '.join(trouble)}" if trouble else "ok",
            "agv": link.get("agent_id", "?"),
            "connection": link.get("connection") or "UNKNOWN",
            "version": link.get("version") or "—",
            "mode": link.get("operating_mode") or "—",
            "state age": _secs(link.get("state_age_s")),
            "order": link.get("order_id") or "—",
            "order ack": _order_ack(link),
            "instant actions": _instants(link),
            "rejections": int(link.get("rejections") or 0),
            "schema errors": int(link.get("schema_errors") or 0),
            "errors": "; ".join(f"{e.get('level', '?')} {e.get('error_type', '?')}"
                                for e in link.get("errors") or []) or "none",
        })
    return rows


def vda_attention(report: dict[str, Any]) -> list[str]:
    """``agv: why`` for each link that needs attention, by agent id."""
    out = []
    for link in sorted(report.get("links") or [], key=lambda k: str(k.get("agent_id"))):
        if trouble := link_trouble(link):
            out.append(f"{link.get('agent_id', '?')}: {', '.join(trouble)}")
    return out


def vda_report_caption(report: dict[str, Any]) -> str:
    """Where the figures come from and how old they are; "No VDA 5050 AGVs" without any."""
    if not report.get("links"):
        heard = report.get("received_at") is not None
        return "No VDA 5050 AGVs" + ("." if heard else
                                     " (the edge has reported no VDA 5050 link).")
    parts = [f"As the edge's VDA 5050 master reported {_secs(report.get('age_s'))} ago "
             "(rejections and schema errors are counted since the edge started)"]
    if not report.get("edge_online"):
        parts.append("the edge is offline: these are its last figures")
    if report.get("left_out"):
        parts.append(f"{report['left_out']} more AGV(s) left out of the report for want "
                     "of room (the edge keeps those most in need)")
    return "; ".join(parts) + "."
