"""Recovery: the workflows waiting for an operator (manual intervention) with a form each
(retry, skip, reassign, abort), and one workflow's checkpoints with restore and partial
rollback (docs/workflows.md, "Recovery")."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from dashboard._api import ApiError, HubApi
from dashboard._recovery import (
    OPERATOR_ACTIONS,
    checkpoint_rows,
    operator_rows,
    recover_body,
    waiting_for_operator,
)
from dashboard._ui import api, badge, call, live, show_error
from dashboard._workflows_detail import allowed

MOST = 2000  # most live workflows read to find those waiting for an operator

badge()
st.title("Recovery")
hub = api()
planner = allowed(hub, "planner")
if not planner:
    st.caption("Read only: recovering workflows needs the planner role.")


def _send(what: str, wid: str, body: dict[str, Any] | None, path: str = "recover") -> None:
    if body is None:
        return
    try:
        out = hub.post(f"/workflows/{wid}/{path}", body)
    except ApiError as exc:
        show_error(exc)
        return
    result = out.get("result") or {}
    st.success(f"{what} on {wid}: {out['state']}"
               + (f" (workflow now {result['state']})" if result.get("state") else "")
               + (f", checkpoint {result['checkpoint']}" if result.get("checkpoint") else ""))


def _body(strategy: str, **fields: Any) -> dict[str, Any] | None:
    try:
        return recover_body(strategy, **fields)
    except ValueError as exc:
        st.error(f"Not sent: {exc}")
        return None


def _waiting(hub: HubApi) -> list[dict[str, Any]]:
    return waiting_for_operator(hub.pages("/workflows", state="active", most=MOST))


st.subheader("Waiting for an operator")
waiting: list[dict[str, Any]] = call(lambda: _waiting(hub)) or []


@live
def _waiting_table() -> None:
    rows = call(lambda: operator_rows(_waiting(hub)))
    if rows is None:
        return
    if not rows:
        st.caption("✅ No workflow waits for an operator.")
        return
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")


_waiting_table()
for wf in waiting:
    wid = wf["id"]
    with st.form(f"op_{wid}"):
        st.markdown(f"**{wid}** ({wf['facility']}, {wf['template']}): "
                    f"steps {', '.join(wf['awaiting_operator'])} wait")
        a, s, r = st.columns(3)
        action = a.selectbox("Action", OPERATOR_ACTIONS, key=f"op_action_{wid}")
        step = s.selectbox("Step", wf["awaiting_operator"], key=f"op_step_{wid}")
        reason = r.text_input("Reason", key=f"op_reason_{wid}")
        if st.form_submit_button("Apply", key=f"op_apply_{wid}", disabled=not planner):
            _send(str(action), wid, _body("manual_intervention", action=action, step_id=step,
                                          reason=reason))

st.divider()
st.subheader("Checkpoints of a workflow")
wid = st.text_input("Workflow id", value=st.query_params.get("id", ""), key="cp_wid").strip()
if wid:
    cps = call(lambda: hub.get(f"/workflows/{wid}/checkpoints"))
    if cps is not None:
        events = call(lambda: hub.pages(f"/workflows/{wid}/events", limit=500, most=MOST,
                                        newest_first=True))
        rows = checkpoint_rows(cps["checkpoints"], events or [])
        if rows:
            st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
        else:
            st.caption("No checkpoint yet.")
        ids = [r["checkpoint"] for r in rows]
        label = st.text_input("Label of a new checkpoint", value="manual", key="cp_label")
        if st.button("📸 Take a checkpoint", key="cp_take", disabled=not planner):
            _send("checkpoint", wid, {"label": label.strip() or "manual"}, "checkpoint")
        if st.session_state.get("cp_chosen") not in ids:  # another workflow, or a new one
            st.session_state["cp_chosen"] = ids[-1] if ids else None
        chosen = st.selectbox("Checkpoint", ids[::-1], key="cp_chosen")
        reason = st.text_input("Reason", key="cp_reason")
        restore, rollback = st.columns(2)
        if restore.button("⟲ Restore this checkpoint", key="cp_restore",
                          disabled=not planner or not chosen):
            _send("restore", wid, _body("checkpoint_restore", checkpoint=chosen,
                                        reason=reason))
        wf = call(lambda: hub.get(f"/workflows/{wid}")) or {}
        steps = ["", *(s["id"] for s in wf.get("steps", []))]
        back_to = rollback.selectbox("Roll back to after step (or the checkpoint above)", steps,
                                     key="cp_back_step")
        then = rollback.selectbox("Then", ("retry", "abort"), key="cp_then")
        if rollback.button("↶ Partial rollback", key="cp_rollback", disabled=not planner):
            _send("rollback", wid, _body("partial_rollback", step_id=back_to or None,
                                         checkpoint=None if back_to else chosen, then=then,
                                         reason=reason))
