"""A facility map with its agents, as an Altair chart: map nodes at their x/y, lanes as
lines, agents drawn at their node (spread a little when several stand on one), coloured by
status, with battery, mode and work in the tooltip.

``map_frames`` turns the hub's JSON (``GET /facilities/{id}/map`` and ``GET /agents``) into
three tables; ``map_chart`` draws them. Both are plain functions (tested without Streamlit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import altair as alt
import pandas as pd

__all__ = ["STATUS_COLOURS", "MapFrames", "agent_status", "map_chart", "map_frames"]

STATUS_COLOURS = {
    "idle": "#2ca02c", "busy": "#1f77b4", "paused": "#ff7f0e", "charging": "#9467bd",
    "error": "#d62728", "e-stop": "#b00000", "offline": "#7f7f7f",
}
"""What each status is drawn in (an unknown status gets Altair's next colour)."""
_SPREAD = 0.9
"""How far (map units) agents sharing a node are drawn from it, around a circle."""


@dataclass(frozen=True)
class MapFrames:
    """What the chart draws: ``nodes`` (id, x, y, zones, what), ``lanes`` (x, y, x2, y2),
    ``agents`` (id, x, y, status, battery, …) and the ids of agents not on the map."""

    nodes: pd.DataFrame
    lanes: pd.DataFrame
    agents: pd.DataFrame
    off_map: list[str]


def agent_status(agent: dict[str, Any]) -> str:
    """What the map shows an agent as: ``offline``, ``e-stop``, else its reported status."""
    if not agent.get("online", False):
        return "offline"
    if agent.get("e_stop"):
        return "e-stop"
    return str(agent.get("status") or "idle")


def _battery(value: Any) -> str:
    return "—" if value is None else f"{float(value):.0f} %"


def map_frames(facility_map: dict[str, Any], agents: list[dict[str, Any]]) -> MapFrames:
    """The tables of ``map_chart`` from the hub's map and agents (of that facility)."""
    at = {n["id"]: (float(n["x"]), float(n["y"])) for n in facility_map.get("nodes", [])}
    nodes = pd.DataFrame([{
        "id": n["id"], "x": float(n["x"]), "y": float(n["y"]),
        "zones": ", ".join(n.get("zones") or []) or "—",
        "what": "charger" if n.get("charger") else (n.get("station") or "node"),
    } for n in facility_map.get("nodes", [])], columns=["id", "x", "y", "zones", "what"])
    seen: set[tuple[str, str]] = set()
    lanes = []
    for e in facility_map.get("edges", []):
        a, b = e["source"], e["target"]
        if (b, a) in seen or a not in at or b not in at:
            continue  # a two-way lane is one line
        seen.add((a, b))
        lanes.append({"x": at[a][0], "y": at[a][1], "x2": at[b][0], "y2": at[b][1],
                      "lane": f"{a} - {b}"})
    by_node: dict[str, list[dict[str, Any]]] = {}
    off_map = []
    for agent in sorted(agents, key=lambda a: str(a["id"])):
        node = str(agent.get("node") or "")
        if node in at:
            by_node.setdefault(node, []).append(agent)
        else:
            off_map.append(str(agent["id"]))
    rows = []
    for node, here in by_node.items():
        x0, y0 = at[node]
        for i, agent in enumerate(here):
            angle = 2 * math.pi * i / len(here)
            r = _SPREAD if len(here) > 1 else 0.0
            rows.append({
                "id": agent["id"], "x": x0 + r * math.cos(angle), "y": y0 + r * math.sin(angle),
                "node": node, "status": agent_status(agent), "kind": agent.get("kind", ""),
                "battery": _battery(agent.get("battery")), "mode": agent.get("mode", ""),
                "work": "/".join(p for p in (agent.get("workflow_id"), agent.get("step_id"))
                                 if p) or "—",
            })
    agent_cols = ["id", "x", "y", "node", "status", "kind", "battery", "mode", "work"]
    return MapFrames(nodes, pd.DataFrame(lanes, columns=["x", "y", "x2", "y2", "lane"]),
                     pd.DataFrame(rows, columns=agent_cols), off_map)


def map_chart(frames: MapFrames) -> alt.LayerChart | alt.FacetChart:
    """Lanes, nodes with their names, and agents coloured by status (tooltips on both)."""
    lanes = alt.Chart(frames.lanes).mark_rule(color="#bbbbbb", strokeWidth=2).encode(
        x=alt.X("x:Q", title="x (m)"), y=alt.Y("y:Q", title="y (m)"), x2="x2:Q", y2="y2:Q")
    nodes = alt.Chart(frames.nodes).mark_square(size=90, color="#666666").encode(
        x="x:Q", y="y:Q", tooltip=["id:N", "what:N", "zones:N"])
    names = alt.Chart(frames.nodes).mark_text(dy=-12, fontSize=11, color="#444444").encode(
        x="x:Q", y="y:Q", text="id:N")
    known = list(STATUS_COLOURS)
    agents = alt.Chart(frames.agents).mark_circle(size=260, opacity=0.9).encode(
        x="x:Q", y="y:Q",
        color=alt.Color("status:N", scale=alt.Scale(domain=known,
                                                    range=[STATUS_COLOURS[s] for s in known]),
                        legend=alt.Legend(title="status")),
        tooltip=["id:N", "kind:N", "status:N", "battery:N", "mode:N", "node:N", "work:N"])
    labels = alt.Chart(frames.agents).mark_text(dy=14, fontSize=10, fontWeight="bold").encode(
        x="x:Q", y="y:Q", text="id:N")
    return alt.layer(lanes, nodes, names, agents, labels).properties(height=420)
