"""Overview: every facility with its edge's status and lag, workflows by state, throughput
and latency charts, open conflicts, agents by status — live (``dashboard._overview``)."""

from __future__ import annotations

import time
from typing import Any

import pandas as pd
import streamlit as st

from dashboard._api import ApiError
from dashboard._overview import (
    HISTORY,
    STATES,
    Sample,
    agent_rows,
    change_rows,
    conflict_rows,
    facility_rows,
    feed,
    read,
    sample,
    throughput_rows,
)
from dashboard._ui import api, badge, live, show_error

LATEST = 15  # events shown under "Latest events" (a bare string would be drawn: magic)

badge()
st.title("Overview")


def _table(rows: list[dict[str, Any]], empty: str) -> None:
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    else:
        st.caption(empty)


def _charts(history: list[Sample]) -> None:
    rows = throughput_rows(history)
    if not rows:
        st.caption("The charts start with the next refresh (they need two readings).")
        return
    frame = pd.DataFrame(rows)
    frame["at"] = pd.to_datetime(frame["at"], unit="s")
    frame = frame.set_index("at")
    left, right = st.columns(2)
    with left:
        st.markdown("**Events per second** by facility, and workflows finished per minute")
        st.line_chart(frame[[c for c in frame.columns if not c.startswith("API")]])
    with right:
        st.markdown("**API latency** (ms, p50 and p99 of the hub's recent requests)")
        st.line_chart(frame[["API p50 ms", "API p99 ms"]])


def _latest() -> None:
    """The newest events of every facility, from the hub's change feed (polled on from the
    last token this session saw)."""
    since, recent = st.session_state.get("overview_feed", (None, []))
    try:
        changes, since, behind = feed(api(), since)
    except ApiError as exc:
        show_error(exc)
        return
    recent = [*recent, *changes][-LATEST:]
    st.session_state["overview_feed"] = (since, recent)
    _table(change_rows(recent), "No events yet.")
    if behind:
        st.caption("Catching up with the hub's change feed…")


def body() -> None:
    try:
        view = read(api(), time.time())
    except ApiError as exc:
        show_error(exc)  # the hub down: a banner; the next refresh tries again by itself
        return
    history: list[Sample] = st.session_state.setdefault("overview_history", [])
    history.append(sample(view))
    del history[:-HISTORY]
    online = sum(1 for f in view.facilities if f.get("online"))
    top = st.columns(4)
    top[0].metric("Facilities online", f"{online} / {len(view.facilities)}")
    top[1].metric("Workflows", sum(view.states.values()))
    top[2].metric("Open conflicts", len(view.conflicts))
    top[3].metric("Agents", view.agents_total)

    st.subheader("Facilities")
    rows = facility_rows(view)
    for col, row in zip(st.columns(max(1, min(len(rows), 6))), rows, strict=False):
        col.metric(f"🏭 {row['facility']}", row["edge"],
                   help=f"view {row['view']}, lag {row['lag (events)']} events")
        col.caption(f"lag {row['lag (events)']} · view {row['view']} · "
                    f"{row['workflows']} workflows")
    _table(rows, "No facility has reported to the hub yet.")

    st.subheader("Workflows by state")
    for col, state in zip(st.columns(len(STATES)), STATES, strict=True):
        col.metric(state, view.states[state])

    st.subheader("Throughput and latency")
    _charts(history)

    st.subheader("Open conflicts")
    _table(conflict_rows(view.conflicts, view.at), "No open conflicts.")

    st.subheader("Agents by status")
    _table(agent_rows(view.agents), "No agents have joined.")

    st.subheader("Latest events")
    _latest()
    st.caption(f"Read at {time.strftime('%H:%M:%S', time.localtime(view.at))}; "
               f"hub ingest {view.system.get('ingest_events_per_s', 0)} events/s.")


live(body)()
