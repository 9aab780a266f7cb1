"""Agents: the facility map with every agent at its node (status, battery), the agents'
table, an agent's workflows, the VDA 5050 AGVs (mode, e-stop, safety conflicts) and their
links' health (the links that need attention flagged), and the scoped safety stop with its
release (supervisor)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from dashboard._agents import (
    agent_rows,
    stop_label,
    stops_in_force,
    vda_attention,
    vda_link_rows,
    vda_report_caption,
    vda_rows,
    workflow_rows,
)
from dashboard._api import ApiError
from dashboard._map import map_chart, map_frames
from dashboard._ops_page import facilities_or_wait, may_act
from dashboard._ui import api, badge, call, live, show_error

badge()
st.title("Agents")
hub = api()
facilities = facilities_or_wait(hub)
if not facilities:
    st.info("No facility has reported to the hub yet.")
    st.stop()
facility: str = st.selectbox("Facility", [f["id"] for f in facilities], key="agents_facility")
supervisor = may_act(hub)
if not supervisor:
    st.caption("Read only: safety stops need the supervisor role.")


def _agents() -> list[dict[str, Any]]:
    return hub.pages("/agents", facility=facility)


def _conflicts() -> list[dict[str, Any]]:
    return [c for c in hub.pages("/conflicts", facility=facility, most=2000)
            if c.get("status") != "resolved"]


@live
def _figures() -> None:
    agents = call(_agents)
    if agents is None:
        return
    conflicts = call(_conflicts) or []
    for stop in stops_in_force(conflicts, facility):
        st.error(f"Safety stop in force: {stop_label(stop)}")
    try:
        fmap = hub.get(f"/facilities/{facility}/map")
    except ApiError as exc:
        st.caption(f"No map to draw: {exc.readable}")
    else:
        frames = map_frames(fmap, agents)
        st.altair_chart(map_chart(frames), width="stretch")
        if frames.off_map:
            st.caption(f"Not on the map (no known node): {', '.join(frames.off_map)}")
    online = sum(1 for a in agents if a.get("online"))
    cols = st.columns(3)
    cols[0].metric("Agents", len(agents))
    cols[1].metric("Online", online)
    cols[2].metric("Working", sum(1 for a in agents if a.get("online") and a.get("workflow_id")))
    if agents:
        st.dataframe(pd.DataFrame(agent_rows(agents)), hide_index=True, width="stretch")
    else:
        st.caption(f"No agent has joined {facility} yet.")
    st.subheader("VDA 5050 AGVs")
    vda = vda_rows(agents, conflicts)
    if vda:
        st.dataframe(pd.DataFrame(vda), hide_index=True, width="stretch")
    else:
        st.caption("No VDA 5050 AGV (nor other agent the edge bids for) in this facility.")
    st.subheader("VDA 5050 links")
    report = call(lambda: hub.vda_links(facility))
    if report is not None:
        if needing := vda_attention(report):
            st.warning("VDA 5050 links that need attention: " + " · ".join(needing), icon="⚠️")
        if rows := vda_link_rows(report):
            st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
        st.caption(vda_report_caption(report))


_figures()

st.subheader("An agent's workflows")
known: list[dict[str, Any]] = call(_agents) or []
if known:
    agent_id: str = st.selectbox("Agent", [a["id"] for a in sorted(known, key=lambda a: a["id"])],
                                 key="agent_pick")
    jobs = call(lambda: hub.pages(f"/agents/{agent_id}/workflows", limit=200, most=200))
    if jobs:
        st.dataframe(pd.DataFrame(workflow_rows(jobs, agent_id)), hide_index=True,
                     width="stretch")
    elif jobs is not None:
        st.caption(f"{agent_id} has taken no step of a workflow the hub keeps.")

st.subheader("Safety stop")
fmap = call(lambda: hub.get(f"/facilities/{facility}/map"))
zones = [z["id"] for z in (fmap or {}).get("zones", []) if z.get("mode") == "exclusive"]
whole = "the whole facility"
scope: str = st.selectbox("Scope", [whole, *zones], key="stop_zone",
                          help="A zone stop pauses the robots standing in that exclusive zone.")
reason: str = st.text_input("Why", key="stop_reason", placeholder="e.g. spill in the cold room")
if st.button("🛑 Stop", key="stop", type="primary", disabled=not supervisor):
    body: dict[str, Any] = {"reason": reason or "safety stop from the dashboard"}
    if scope != whole:
        body["zone"] = scope
    try:
        out = hub.post(f"/facilities/{facility}/stop", body)
    except ApiError as exc:
        show_error(exc)
    else:
        result = out.get("result") or {}
        st.success(f"Stopped {scope}: {out['state']}, "
                   f"{len(result.get('stopped') or [])} robot(s) paused")
for stop in stops_in_force(call(_conflicts) or [], facility):
    zone = stop.get("resource")
    label = f"Release {'zone ' + zone if zone else 'the facility'}"
    if st.button(label, key=f"release_{zone or 'facility'}", disabled=not supervisor):
        try:
            out = hub.post(f"/facilities/{facility}/release",
                           {"zone": zone} if zone else {})
        except ApiError as exc:
            show_error(exc)
        else:
            st.success(f"Released {zone or facility}: {out['state']}")
