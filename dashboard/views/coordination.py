"""Coordination: running auctions and their bids, sync points (who arrived, who is
awaited), leader/follower and composite-step teams, votes — and a person's arrival at a
sync point, reported by a supervisor."""

from __future__ import annotations

import time
from typing import Any

import pandas as pd
import streamlit as st

from dashboard._api import ApiError
from dashboard._coordination import (
    arrivals,
    auction_rows,
    bid_rows,
    sync_rows,
    team_rows,
    vote_rows,
)
from dashboard._ops_page import facilities_or_wait, may_act
from dashboard._ui import api, badge, call, live, show_error

EVERY = "every facility"

badge()
st.title("Coordination")
hub = api()
ids = [f["id"] for f in facilities_or_wait(hub)]
chosen: str = st.selectbox("Facility", [EVERY, *ids], key="coord_facility")
facility = None if chosen == EVERY else chosen
supervisor = may_act(hub)


def _views() -> list[dict[str, Any]]:
    views: list[dict[str, Any]] = hub.get("/coordination", facility=facility)
    return views


def _table(title: str, rows: list[dict[str, Any]], empty: str) -> None:
    st.subheader(title)
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    else:
        st.caption(empty)


@live
def _figures() -> None:
    views = call(_views)
    if views is None:
        return
    now = time.time()
    cols = st.columns(4)
    for col, (label, part) in zip(cols, (("Auctions", "auctions"), ("Sync points", "sync_points"),
                                         ("Teams", "teams"), ("Votes", "votes")), strict=True):
        col.metric(label, sum(len(v.get(part, [])) for v in views))
    _table("Auctions", auction_rows(views, now), "No auction is running.")
    bids = bid_rows(views)
    if bids:
        st.dataframe(pd.DataFrame(bids), hide_index=True, width="stretch")
    _table("Sync points", sync_rows(views), "No sync point is open.")
    _table("Teams (leader / followers)", team_rows(views), "No team holds a step.")
    _table("Votes", vote_rows(views, now), "No vote is open.")


_figures()

st.subheader("Report an arrival")
st.caption("A person without the handheld app reached a sync point: report it for them "
           "(recorded with your token's name).")
waiting = arrivals(call(_views) or [])
if not waiting:
    st.caption("Nobody is awaited at an open sync point.")
else:
    labels = {f"{a} at {w}/{s}": (w, s, a) for w, s, a in waiting}
    pick: str = st.selectbox("Who arrived", list(labels), key="arrival")
    if st.button("Report arrival", key="arrive", type="primary", disabled=not supervisor):
        wid, step, agent = labels[pick]
        try:
            out = hub.post(f"/workflows/{wid}/sync/{step}/agent/{agent}",
                           reason="reported on the dashboard")
        except ApiError as exc:
            show_error(exc)
        else:
            result = out.get("result") or {}
            st.success(f"{agent} arrived at {wid}/{step}"
                       + (": the barrier is released" if result.get("released") else ""))
if not supervisor:
    st.caption("Read only: reporting arrivals needs the supervisor role.")
