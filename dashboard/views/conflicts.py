"""Conflicts: the live list (type, participants, age, status) filtered by facility and
status, and resolving one with a chosen strategy (supervisor)."""

from __future__ import annotations

import time
from typing import Any

import pandas as pd
import streamlit as st

from dashboard._api import ApiError
from dashboard._conflicts import (
    choices_for,
    conflict_rows,
    filter_status,
    how_it_ends,
    resolve_body,
)
from dashboard._ops_page import facilities_or_wait, may_act
from dashboard._ui import api, badge, call, live, show_error

EVERY = "every facility"
HUB = "* (across facilities)"
STATUSES = ("unresolved", "open", "escalated", "resolved", "all")
MOST = 2000

badge()
st.title("Conflicts")
hub = api()
ids = [f["id"] for f in facilities_or_wait(hub)]
cols = st.columns(2)
chosen: str = cols[0].selectbox("Facility", [EVERY, *ids, HUB], key="conflict_facility")
status: str = cols[1].selectbox("Status", STATUSES, key="conflict_status")
facility = None if chosen == EVERY else ("*" if chosen == HUB else chosen)
supervisor = may_act(hub)


def _conflicts() -> list[dict[str, Any]]:
    wanted = status if status in ("open", "escalated", "resolved") else None
    found = hub.pages("/conflicts", facility=facility, status=wanted, most=MOST)
    return filter_status(found, status)


@live
def _list() -> None:
    found = call(_conflicts)
    if found is None:
        return
    metrics = st.columns(3)
    metrics[0].metric("Shown", len(found))
    metrics[1].metric("Open", sum(1 for c in found if c.get("status") == "open"))
    metrics[2].metric("Escalated", sum(1 for c in found if c.get("status") == "escalated"))
    if found:
        st.dataframe(pd.DataFrame(conflict_rows(found, time.time())), hide_index=True,
                     width="stretch")
    else:
        st.caption("✅ No conflict matches.")


_list()

st.subheader("Resolve")
if not supervisor:
    st.caption("Read only: resolving conflicts needs the supervisor role.")
candidates = [c for c in call(_conflicts) or [] if c.get("status") != "resolved"]
if not candidates:
    st.caption("No unresolved conflict to settle.")
else:
    by_label = {f"{c['id']} · {c['facility']} · {c['rule']}": c for c in candidates}
    label: str = st.selectbox("Conflict", list(by_label), key="resolve_pick")
    conflict = by_label[label]
    if conflict.get("detail"):
        st.caption(conflict["detail"])
    blocked = how_it_ends(conflict)
    if blocked:
        st.info(f"Not settled here: {blocked}.")
    choice: str = st.selectbox("Strategy", choices_for(conflict), key="resolve_choice")
    note: str = st.text_input("Resolution (what was decided)", key="resolve_note")
    # The button is the conflict's own: a click that arrives after the list changed (the
    # conflict resolved meanwhile) finds no button, rather than another conflict's.
    if st.button("Resolve", key=f"resolve_{conflict['facility']}_{conflict['id']}",
                 type="primary", disabled=not supervisor or blocked is not None):
        try:
            out = hub.post(f"/conflicts/{conflict['id']}/resolve",
                           resolve_body(conflict, choice, note))
        except ApiError as exc:
            show_error(exc)
        else:
            st.success(f"{conflict['id']}: {out['state']}"
                       + (f" ({out['result'].get('resolution')})"
                          if isinstance(out.get("result"), dict)
                          and out["result"].get("resolution") else ""))
