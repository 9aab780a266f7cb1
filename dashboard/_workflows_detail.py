"""The detail view of one workflow on the Workflows page (Streamlit): its nested state,
steps with what each waits for, data, step timeline, audit trail a page at a time, and
the controls (pause/resume/cancel, priority, retry or skip a step, add a dependency),
each disabled below the role the hub asks for it (docs/hub.md, "Roles")."""

from __future__ import annotations

import time
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from dashboard._api import ApiError, HubApi
from dashboard._ui import call, live, show_error
from dashboard._workflows import audit_rows, state_path, step_rows
from dashboard._workflows_steps import (
    coordination_waits,
    template_of,
    timeline_rows,
    waiting_for,
)

__all__ = ["AUDIT_PAGE", "TIMELINE_MOST", "allowed", "detail"]

AUDIT_PAGE = 50
"""Events per page of the audit trail (one request per page, however long the trail)."""
TIMELINE_MOST = 2000
"""Most events read for the step timeline: a longer trail's timeline shows its newest."""
DEPENDENCY_TYPES = ("sequential", "parallel", "conditional", "resource_based", "data_flow")


def allowed(hub: HubApi, role: str) -> bool:
    """Whether the token may act as ``role`` (an unknown role: no, said readably)."""
    return bool(call(lambda: hub.may(role)))


def _done(what: str, out: Any) -> None:
    state = out.get("state", "?") if isinstance(out, dict) else "?"
    if state == "applied":
        st.success(f"{what}: applied by the edge.")
    elif state == "pending":
        st.info(f"{what}: sent; the edge has not answered yet ({out.get('command_id')}).")
    else:
        st.error(f"{what}: {state} — {out.get('error') if isinstance(out, dict) else out}")


def _act(what: str, fn: Any) -> None:
    try:
        _done(what, fn())
    except ApiError as exc:
        show_error(exc)


def _timeline(hub: HubApi, wid: str) -> None:
    events = hub.pages(f"/workflows/{wid}/events", limit=500, most=TIMELINE_MOST,
                       newest_first=True)[::-1]
    rows = timeline_rows(events, time.time())
    if not rows:
        st.caption("No step has started yet.")
        return
    df = pd.DataFrame(rows)
    df["start"] = pd.to_datetime(df["start"], unit="s", utc=True)
    df["end"] = pd.to_datetime(df["end"], unit="s", utc=True)
    chart = alt.Chart(df).mark_bar().encode(
        x=alt.X("start:T", title="time (UTC)"), x2="end:T", y=alt.Y("step:N", sort=None),
        color=alt.Color("outcome:N"), tooltip=["step", "outcome", "start", "end"])
    st.altair_chart(chart, width="stretch")
    if len(events) >= TIMELINE_MOST:
        st.caption(f"Timeline of the last {TIMELINE_MOST} events.")


def _state(hub: HubApi, wid: str) -> None:
    wf: dict[str, Any] | None = call(lambda: hub.get(f"/workflows/{wid}"))
    if wf is None:
        return
    st.markdown(f"**State:** `{state_path(wf['state'])}`")
    cols = st.columns(4)
    cols[0].metric("Facility", wf["facility"])
    cols[1].metric("Template", f"{wf['template']} v{wf['version']}")
    cols[2].metric("Priority", wf.get("priority", 0))
    cols[3].metric("Coordination", wf.get("coordination", "direct"))
    if wf.get("reason"):
        st.caption(f"Reason: {wf['reason']}")
    templates = call(lambda: hub.get("/templates")) or []
    coordination = call(lambda: hub.get("/coordination", facility=wf["facility"])) or []
    waiting = waiting_for(wf, template_of(templates, wf["template"], wf.get("version")),
                          coordination_waits(coordination, wid))
    st.dataframe(pd.DataFrame(step_rows(wf, waiting)), hide_index=True, width="stretch")
    with st.expander("Data", expanded=False):
        st.json(wf.get("data") or {})


def _audit(hub: HubApi, wid: str) -> None:
    st.subheader("Audit trail")
    newest = st.toggle("Newest first", value=True, key="audit_newest")
    key = f"audit_{wid}_{newest}"
    stack: list[str | None] = st.session_state.setdefault(key, [None])
    page = call(lambda: hub.get(f"/workflows/{wid}/events", limit=AUDIT_PAGE,
                                cursor=stack[-1], newest_first=newest))
    if page is None:
        return
    count, n, skipped = page["count"], len(page["items"]), (len(stack) - 1) * AUDIT_PAGE
    lo, hi = (count - skipped - n + 1, count - skipped) if newest else (skipped + 1,
                                                                         skipped + n)
    st.caption(f"Events {lo} to {hi} of {count} ({'newest' if newest else 'oldest'} first)")
    st.dataframe(pd.DataFrame(audit_rows(page["items"])), hide_index=True, width="stretch")
    left, right = st.columns(2)
    # One request per page, forward with the hub's cursor, back by the cursors kept.
    back, forward = (("audit_newer", "◀ Newer"), ("audit_older", "Older ▶")) if newest \
        else (("audit_older", "◀ Older"), ("audit_newer", "Newer ▶"))
    if left.button(back[1], key=back[0], disabled=len(stack) <= 1):
        stack.pop()
        st.rerun()
    if right.button(forward[1], key=forward[0], disabled=not page.get("next_cursor")):
        stack.append(page["next_cursor"])
        st.rerun()


def _controls(hub: HubApi, wf: dict[str, Any]) -> None:
    wid = wf["id"]
    supervisor, planner = allowed(hub, "supervisor"), allowed(hub, "planner")
    if not supervisor:
        st.caption("Read only: this token may not act on workflows.")
    # What the state allows (the hub would refuse the rest with a 409): no play on a running
    # workflow, nothing but a step's retry or skip (recovery) once it ended.
    state = str(wf.get("state", "")).split(".", 1)[0]  # "active.executing.…": its top
    ended = state in ("completed", "failed", "cancelled")
    reason = st.text_input("Reason (kept in the audit trail)", key="wf_reason")
    play, pause, stop = st.columns(3)
    if play.button("▶ Resume", key="wf_resume",
                   disabled=not supervisor or state not in ("paused", "pausing")):
        _act("resume", lambda: hub.post(f"/workflows/{wid}/resume", {"reason": reason}))
    if pause.button("⏸ Pause", key="wf_pause",
                    disabled=not supervisor or state not in ("pending", "active")):
        _act("pause", lambda: hub.post(f"/workflows/{wid}/pause", {"reason": reason}))
    if stop.button("⏹ Cancel", key="wf_cancel",
                   disabled=not planner or ended or state == "cancelling"):
        _act("cancel", lambda: hub.delete(f"/workflows/{wid}", reason=reason or None))
    prio, setp = st.columns([3, 1])
    priority = prio.number_input("Priority", min_value=-1000, max_value=1000, step=1,
                                 value=int(wf.get("priority", 0)), key=f"wf_priority_{wid}",
                                 disabled=not planner or ended)
    if setp.button("Set priority", key="wf_set_priority", disabled=not planner or ended):
        _act("priority", lambda: hub.put(f"/workflows/{wid}",
                                         {"priority": int(priority), "reason": reason}))
    steps = [s["id"] for s in wf.get("steps", [])]
    if st.session_state.get("wf_step") not in steps:  # another workflow's step
        st.session_state["wf_step"] = steps[0] if steps else None
    step = st.selectbox("Step", steps, key="wf_step", disabled=not planner)
    retry, skip = st.columns(2)
    for col, action, label in ((retry, "retry", "↻ Retry step"), (skip, "skip", "⤼ Skip step")):
        if col.button(label, key=f"wf_{action}_step", disabled=not planner or not step):
            _act(f"{action} {step}", lambda action=action: hub.post(
                f"/workflows/{wid}/recover",
                {"strategy": "manual_intervention", "action": action, "step_id": step,
                 "reason": reason}))
    src, typ, add = st.columns([2, 2, 1])
    source = src.text_input("Depends on (workflow id)", key="wf_dep_source",
                            disabled=not planner or ended)
    dtype = typ.selectbox("Type", DEPENDENCY_TYPES, key="wf_dep_type",
                          disabled=not planner or ended)
    if add.button("Add dependency", key="wf_add_dep",
                  disabled=not planner or ended or not source):
        _act(f"dependency on {source}", lambda: hub.post(
            f"/workflows/{wid}/dependencies",
            {"source": source.strip(), "type": dtype, "reason": reason}))


def detail(hub: HubApi, wid: str) -> None:
    """Everything about workflow ``wid``: controls first (so a write shows in the live
    part below on this run), then its state, steps, data, timeline and audit trail."""
    st.header(f"Workflow {wid}")
    try:
        wf = hub.get(f"/workflows/{wid}")
    except ApiError as exc:
        show_error(exc)
        return
    _controls(hub, wf)

    @live
    def _live() -> None:
        _state(hub, wid)
        with st.expander("Step timeline", expanded=True):
            try:
                _timeline(hub, wid)
            except ApiError as exc:
                show_error(exc)

    _live()

    @live
    def _trail() -> None:
        _audit(hub, wid)

    _trail()
