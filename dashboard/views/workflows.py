"""Workflows: a filterable list (a page at a time), batch actions previewed before they
run, creation from a template, and the detail view of one workflow (``?id=``)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from dashboard._api import ApiError
from dashboard._ui import api, badge, call, live, show_error
from dashboard._workflows import BATCH_ACTIONS, list_params, workflow_rows
from dashboard._workflows_detail import allowed, detail
from dashboard._workflows_form import create_body, params_of
from dashboard._workflows_steps import template_of

STATES = ("", "pending", "active", "pausing", "paused", "cancelling", "completed", "failed",
          "cancelled")

badge()
st.title("Workflows")
hub = api()
templates: list[dict[str, Any]] = call(lambda: hub.get("/templates")) or []
facilities = [f["id"] for f in call(lambda: hub.get("/facilities")) or []]
names = sorted({t["name"] for t in templates})
planner = allowed(hub, "planner")

with st.expander("Create from a template", expanded=False):
    chosen = st.selectbox("Template", names, key="new_template", disabled=not planner)
    template = template_of(templates, chosen) if chosen else None
    if template is not None:
        with st.form("create_workflow"):
            facility = st.selectbox("Facility", facilities, key="new_facility")
            priority = st.number_input("Priority", -1000, 1000, 0, key="new_priority")
            new_id = st.text_input("Workflow id (empty: the hub makes one)", key="new_id")
            labels = st.text_input("Labels (key=value, comma separated)", key="new_labels")
            values: dict[str, Any] = {}
            for p in params_of(template):
                k = f"new_param_{p.name}"
                if p.kind == "bool":
                    values[p.name] = st.checkbox(p.name, bool(p.default), key=k)
                elif p.kind == "int":
                    values[p.name] = int(st.number_input(p.name, value=int(p.default), key=k))
                elif p.kind == "float":
                    values[p.name] = st.number_input(p.name, value=float(p.default), key=k)
                else:
                    values[p.name] = st.text_input(f"{p.name} ({p.kind})", str(p.default),
                                                   key=k)
            if st.form_submit_button("Create", key="new_create", disabled=not planner):
                try:
                    out = hub.post("/workflows", create_body(
                        template, facility or "", values, priority=int(priority),
                        workflow_id=new_id, labels=labels))
                    made = out["args"]["workflow_id"]
                    st.success(f"Created {made} ({out['state']}).")
                    st.query_params["id"] = made
                except ValueError as exc:
                    st.error(f"Not created: {exc}")
                except ApiError as exc:
                    show_error(exc)

st.subheader("Find workflows")
c1, c2, c3, c4 = st.columns(4)
f_facility = c1.selectbox("Facility", ["", *facilities], key="f_facility")
f_state = c2.selectbox("State", STATES, key="f_state")
f_template = c3.selectbox("Template", ["", *names], key="f_template")
f_agent = c4.text_input("Agent", key="f_agent")
c5, c6, c7 = st.columns(3)
f_label = c5.text_input("Label (key=value)", key="f_label")
f_since = c6.date_input("Created since", value=None, key="f_since")
f_until = c7.date_input("Created until", value=None, key="f_until")
params: dict[str, Any] | None
try:
    params = list_params(facility=f_facility or "", state=f_state or "",
                         template=f_template or "", agent=f_agent, label=f_label,
                         since=f_since, until=f_until)  # type: ignore[arg-type]
except ValueError as exc:
    st.error(f"Filter: {exc}")
    params = None

if params is not None:
    query: dict[str, Any] = params
    signature = repr(sorted(query.items()))
    if st.session_state.get("list_filter") != signature:  # a new filter: back to page 1
        st.session_state["list_filter"] = signature
        st.session_state["list_cursors"] = [None]
    cursors: list[str | None] = st.session_state["list_cursors"]

    @live
    def _list() -> None:
        page = call(lambda: hub.get("/workflows", limit=50, cursor=cursors[-1], **query))
        if page is None:
            return
        first = (len(cursors) - 1) * 50
        st.caption(f"{page['count']} workflows match; showing {first + 1} to "
                   f"{first + len(page['items'])}.")
        st.dataframe(pd.DataFrame(workflow_rows(page["items"])), hide_index=True,
                     width="stretch")
        st.session_state["list_next"] = page.get("next_cursor")
        st.session_state["list_ids"] = [w["id"] for w in page["items"]]

    _list()
    prev_col, next_col, open_col = st.columns([1, 1, 3])
    if prev_col.button("◀ Previous page", key="list_prev", disabled=len(cursors) <= 1):
        cursors.pop()
        st.rerun()
    if next_col.button("Next page ▶", key="list_next_page",
                       disabled=not st.session_state.get("list_next")):
        cursors.append(st.session_state["list_next"])
        st.rerun()

    def _open() -> None:
        if st.session_state.get("list_open"):
            st.query_params["id"] = st.session_state["list_open"]

    open_col.selectbox("Open workflow", ["", *st.session_state.get("list_ids", [])],
                       key="list_open", on_change=_open)

    with st.expander("Batch action on every workflow of this filter", expanded=False):
        action = st.selectbox("Action", BATCH_ACTIONS, key="batch_action")
        body = {"action": action, "filter": query}
        preview, confirm = st.columns(2)
        if preview.button("Preview count", key="batch_preview", disabled=not planner):
            try:
                out = hub.post("/workflows/batch", {**body, "dry_run": True})
                st.session_state["batch"] = (repr(body), int(out["count"]))
            except ApiError as exc:
                show_error(exc)
        previewed: tuple[str, int] | None = st.session_state.get("batch")
        if previewed is not None and previewed[0] == repr(body):
            st.info(f"{action} would take {previewed[1]} workflows.")
        ready = previewed is not None and previewed[0] == repr(body)
        if confirm.button(f"Confirm {action}", key="batch_confirm",
                          disabled=not (planner and ready)):
            try:
                out = hub.post("/workflows/batch", body)
                sent = len(out.get("commands", []))
                st.success(f"{action}: {sent} commands sent, {len(out.get('errors', {}))} "
                           "not accepted.")
                for wid, why in (out.get("errors") or {}).items():
                    st.warning(f"{wid}: {why}")
            except ApiError as exc:
                show_error(exc)
            st.session_state.pop("batch", None)

wid = st.query_params.get("id")
if wid:
    st.divider()
    detail(hub, wid)
