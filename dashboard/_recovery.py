"""The Recovery page's reading of the API: workflows waiting for an operator, a workflow's
checkpoints (ids from ``GET /workflows/{id}/checkpoints``, described by their
``checkpoint_taken`` events), and the ``POST /workflows/{id}/recover`` bodies of the
strategies and operator actions (docs/hub.md, docs/workflows.md "Recovery"). No Streamlit.
"""

from __future__ import annotations

from typing import Any

from dashboard._workflows import event_time, state_path, when

__all__ = [
    "OPERATOR_ACTIONS", "STRATEGIES", "checkpoint_rows", "operator_rows", "recover_body",
    "waiting_for_operator",
]

STRATEGIES = ("checkpoint_restore", "partial_rollback", "automatic_retry")
"""The recovery strategies a supervisor picks on the page (``manual_intervention`` is the
operator actions' form)."""
OPERATOR_ACTIONS = ("retry", "skip", "reassign", "abort")
"""What an operator does to a workflow waiting for manual intervention."""

_FIELDS = {
    "automatic_retry": ("step_id",), "checkpoint_restore": ("checkpoint",),
    "partial_rollback": ("step_id", "checkpoint", "then"),
    "manual_intervention": ("action", "step_id"),
}


def waiting_for_operator(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The workflows of a list that wait for an operator (``awaiting_operator`` steps)."""
    return [w for w in items if w.get("awaiting_operator")]


def operator_rows(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per workflow waiting for an operator: which steps, and why they failed."""
    rows = []
    for w in waiting_for_operator(items):
        errors = {s["id"]: s.get("error") or "" for s in w.get("steps", [])}
        rows.append({
            "id": w["id"], "facility": w["facility"], "template": w["template"],
            "state": state_path(w["state"]), "steps": ", ".join(w["awaiting_operator"]),
            "error": "; ".join(f"{s}: {errors.get(s, '')}" for s in w["awaiting_operator"]),
        })
    return rows


def checkpoint_rows(ids: list[str], events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The checkpoints (oldest first), each with its label, when it was taken and the
    workflow's state then, from its ``checkpoint_taken`` event when the trail has it."""
    taken = {(ev.get("data") or {}).get("id"): ev for ev in events
             if ev.get("kind") == "checkpoint_taken"}
    rows = []
    for cp in ids:
        ev = taken.get(cp)
        data = (ev or {}).get("data") or {}
        rows.append({"checkpoint": cp, "label": data.get("label", ""),
                     "taken": when(data.get("at") or (event_time(ev) if ev else None)),
                     "state": state_path(data.get("state", "")),
                     "seq": ev["seq"] if ev else None})
    return rows


def recover_body(strategy: str, *, action: str | None = None, step_id: str | None = None,
                 checkpoint: str | None = None, then: str | None = None,
                 reason: str = "") -> dict[str, Any]:
    """The ``POST /workflows/{id}/recover`` body of ``strategy``, with only the fields it
    takes (the hub refuses others: 422). ``ValueError`` for an unknown strategy, or an
    operator action that names no step (``retry``, ``skip``, ``reassign`` need one)."""
    if strategy not in _FIELDS:
        raise ValueError(f"unknown strategy {strategy!r}")
    given = {"action": action, "step_id": step_id, "checkpoint": checkpoint, "then": then}
    body: dict[str, Any] = {"strategy": strategy}
    for name in _FIELDS[strategy]:
        if given[name]:
            body[name] = given[name]
    if strategy == "manual_intervention":
        if not action:
            raise ValueError("choose the operator's action")
        if action != "abort" and not step_id:
            raise ValueError(f"{action} needs the step it applies to")
        if action == "abort":
            body.pop("step_id", None)
    if strategy == "partial_rollback" and step_id and checkpoint:
        raise ValueError("roll back to a step or to a checkpoint, not both")
    if reason.strip():
        body["reason"] = reason.strip()
    return body
