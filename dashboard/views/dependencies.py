"""Dependencies: the dependency graph of one workflow, of a facility, or across every
facility, drawn with each workflow coloured by its state (dashboard/_graph.py)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from dashboard._api import ApiError, HubApi
from dashboard._graph import COLOURS, Graph, dot, from_dependencies, from_workflows, node
from dashboard._ui import api, badge, live, show_error

MOST = 500  # most workflows one facility's (or every facility's) graph reads

badge()
st.title("Dependencies")
hub = api()
# Opened from a workflow (?id=…): its graph; else the whole picture, across facilities.
scope = st.radio("Graph of", ("a workflow", "a facility", "every facility"), horizontal=True,
                 key="dep_scope", index=0 if st.query_params.get("id") else 2)
wid = ""
facility = ""
if scope == "a workflow":
    wid = st.text_input("Workflow id", value=st.query_params.get("id", ""), key="dep_wid")
elif scope == "a facility":
    try:
        choices = [f["id"] for f in hub.get("/facilities")]
    except ApiError as exc:
        show_error(exc)
        choices = []
    facility = st.selectbox("Facility", choices, key="dep_facility") or ""
live_only = st.checkbox("Only workflows that have not ended", value=True, key="dep_live")


def _states(hub: HubApi, names: list[str]) -> dict[str, str]:
    out = {}
    for name in names:
        try:
            w = hub.get(f"/workflows/{name.split('/', 1)[1]}")
            out[name] = w["state"]
        except ApiError:
            out[name] = ""
    return out


def _graph() -> tuple[Graph, str | None] | None:
    if scope == "a workflow":
        if not wid.strip():
            st.info("Name a workflow.")
            return None
        deps: dict[str, Any] = hub.get(f"/workflows/{wid.strip()}/dependencies")
        me = node(deps["facility"], deps["workflow_id"])
        around = [node(d["facility"], d["source"]) for d in deps["dependencies"]]
        return from_dependencies(deps, _states(hub, [me, *around, *deps["dependants"]])), me
    params: dict[str, Any] = {"facility": facility} if scope == "a facility" else {}
    items = []
    for state in (("pending", "active", "pausing", "paused", "cancelling") if live_only
                  else (None,)):
        items += hub.pages("/workflows", most=MOST, state=state, **params)
    return from_workflows(items[:MOST]), None


@live
def _draw() -> None:
    try:
        made = _graph()
    except ApiError as exc:
        show_error(exc)
        return
    if made is None:
        return
    g, focus = made
    if not g.edges:
        st.caption(f"No dependencies among these {len(g.states)} workflows.")
    else:
        st.graphviz_chart(dot(g, focus=focus), width="stretch")
    rows = [{"source": e.source, "target": e.target, "type": e.type, "status": e.status,
             "cross-facility": e.source.split("/")[0] != e.target.split("/")[0]}
            for e in g.edges]
    st.dataframe(pd.DataFrame(rows, columns=["source", "target", "type", "status",
                                             "cross-facility"]),
                 hide_index=True, width="stretch")
    st.caption("Colours: " + ", ".join(f"{s} {c}" for s, c in COLOURS.items())
               + "; dashed: across facilities; red: still holding its target.")


_draw()
