"""The Workflows page's reading of the API: list filters as query parameters, workflows and
steps as table rows, the hierarchical state as its nested path, and the audit trail as
rows of who did what and why. Plain functions over the hub's JSON (``WorkflowOut``,
``EventOut``), no Streamlit."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

__all__ = [
    "BATCH_ACTIONS", "FILTERS", "audit_rows", "event_time", "list_params", "state_path",
    "step_rows", "when", "workflow_rows",
]

FILTERS = ("facility", "state", "template", "agent", "label", "since", "until")
"""The ``GET /workflows`` filters (also a batch action's ``filter``)."""

BATCH_ACTIONS = ("pause", "resume", "cancel")
"""What ``POST /workflows/batch`` does to every workflow its filter takes."""

_SEP = " \u203a "  # a single right-pointing angle quotation mark


def state_path(state: str) -> str:
    """The hierarchical state as its nested path, ``active.executing.step_validation`` as
    ``active`` then ``executing`` then ``step_validation`` joined by ``_SEP``."""
    return _SEP.join(part for part in state.split(".") if part)


def _day_start(d: date) -> float:
    return datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()


def list_params(*, facility: str = "", state: str = "", template: str = "", agent: str = "",
                label: str = "", since: date | None = None, until: date | None = None
                ) -> dict[str, Any]:
    """The filters a supervisor chose as ``GET /workflows`` parameters (empty ones left
    out); ``since``/``until`` are whole UTC days, ``until`` included. ``ValueError`` with a
    readable sentence for a label that is not ``key=value`` or days in the wrong order."""
    params: dict[str, Any] = {}
    for name, value in (("facility", facility), ("state", state), ("template", template),
                        ("agent", agent), ("label", label)):
        value = value.strip()
        if value:
            params[name] = value
    if "label" in params:
        k, eq, v = params["label"].partition("=")
        if not (k and eq and v):
            raise ValueError(f"a label filter is key=value, not {params['label']!r}")
    if since is not None and until is not None and until < since:
        raise ValueError(f"'until' ({until}) is before 'since' ({since})")
    if since is not None:
        params["since"] = _day_start(since)
    if until is not None:
        params["until"] = _day_start(until + timedelta(days=1)) - 0.001
    return params


def when(t: float | None) -> str:
    """Unix seconds as ``YYYY-MM-DD HH:MM:SS`` UTC ('' for none)."""
    if t is None:
        return ""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")


def event_time(ev: dict[str, Any]) -> float | None:
    """The wall time (Unix seconds) an event's hybrid logical clock carries."""
    hlc = int(ev.get("hlc") or 0)
    return (hlc >> 16) / 1000 if hlc else None


def workflow_rows(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One table row per workflow of a ``GET /workflows`` page."""
    rows = []
    for w in items:
        steps = w.get("steps", [])
        finished = sum(1 for s in steps if s["state"] in ("done", "skipped", "compensated"))
        rows.append({
            "id": w["id"], "facility": w["facility"], "template": w["template"],
            "state": state_path(w["state"]), "priority": w.get("priority", 0),
            "steps": f"{finished}/{len(steps)}", "created": when(w.get("created_at")),
            "labels": ", ".join(f"{k}={v}" for k, v in sorted(w.get("labels", {}).items())),
        })
    return rows


def step_rows(wf: dict[str, Any], waiting: dict[str, str]) -> list[dict[str, Any]]:
    """One row per step of a workflow, with what it waits for (``waiting``: step → why)."""
    return [{
        "step": s["id"], "kind": s["kind"], "state": s["state"], "agent": s.get("agent") or "",
        "attempt": s.get("attempt", 0), "progress": round(100 * (s.get("progress") or 0.0)),
        "waiting for": waiting.get(s["id"], ""), "error": s.get("error") or "",
    } for s in wf.get("steps", [])]


_WHY_KEYS = ("reason", "error", "message")


def audit_rows(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The audit trail as rows: when, what, which step, who (the token behind a hub
    command, or the agent that reported) and why."""
    rows = []
    for ev in events:
        data = dict(ev.get("data") or {})
        hub = data.pop("hub_command", None) or {}
        who = hub.get("who") or data.get("agent") or data.get("reported_by") or ""
        why = hub.get("reason") or next((str(data[k]) for k in _WHY_KEYS if data.get(k)), "")
        action = hub.get("action")
        detail = {k: v for k, v in data.items() if k not in ("step", *_WHY_KEYS)}
        rows.append({
            "seq": ev["seq"], "at": when(event_time(ev)),
            "event": f"{ev['kind']} ({action})" if action else ev["kind"],
            "step": str(data.get("step", "")), "who": str(who), "why": why,
            "detail": json.dumps(detail, sort_keys=True, default=str)[:300] if detail else "",
        })
    return rows
