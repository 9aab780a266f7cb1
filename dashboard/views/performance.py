"""Performance: the hub's cache tiers (hit rate, p50/p99 latency) against their targets, its
system figures, and event rates per facility — live (``dashboard._performance``)."""

from __future__ import annotations

import time
from typing import Any

import pandas as pd
import streamlit as st

from dashboard._api import ApiError
from dashboard._performance import facility_rates, system_rows, tier_rows
from dashboard._ui import api, badge, live, show_error

badge()
st.title("Performance")


def body() -> None:
    hub = api()
    try:
        cache: dict[str, Any] = hub.get("/performance/cache")
        system: dict[str, Any] = hub.get("/performance/system")
    except ApiError as exc:
        show_error(exc)  # the hub down: a banner; the next refresh tries again by itself
        return
    now = time.time()
    before: tuple[float, dict[str, Any]] | None = st.session_state.get("performance_last")
    st.session_state["performance_last"] = (now, system)

    st.subheader("Cache tiers")
    tiers = tier_rows(cache)
    for col, t in zip(st.columns(len(tiers) or 1), tiers, strict=False):
        rate = "—" if t["hit rate %"] is None else f"{t['hit rate %']} %"
        col.metric(f"{t['tier']} p99 (target {float(t['target p99 ms'] or 0):g} ms)",
                   "—" if t["p99 ms"] is None else f"{t['p99 ms']} ms",
                   help=t["what"])
        col.caption(f"{t['p99 vs target']} · hit rate {rate}")
    st.dataframe(pd.DataFrame(tiers).drop(columns=["what"], errors="ignore"), hide_index=True,
                 width="stretch")
    st.caption(f"Memory tier: {cache.get('memory_entries', 0)} of "
               f"{cache.get('memory_capacity', 0)} workflows cached.")

    st.subheader("Event rates per facility")
    rates = facility_rates(before[1] if before else None, system,
                           now - before[0] if before else 0.0)
    st.dataframe(pd.DataFrame(rates), hide_index=True, width="stretch")
    if before is None:
        st.caption("Rates appear with the next refresh (they need two readings).")
    elif rates:
        st.bar_chart(pd.DataFrame(rates).set_index("facility")[["events/s"]])

    st.subheader("System")
    st.dataframe(pd.DataFrame(system_rows(system)), hide_index=True, width="stretch")


live(body)()
