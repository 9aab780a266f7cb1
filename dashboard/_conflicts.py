"""The Conflicts page's logic, from the hub's JSON: the live list (type, participants, age,
status), which conflicts an operator can settle here and with which strategies, and the
body of ``POST /conflicts/{id}/resolve`` (docs/coordination.md, "Strategies" and
"``resolve_conflict``"; docs/hub.md for the hub's own ``x-`` conflicts).
"""

from __future__ import annotations

from typing import Any

__all__ = ["CONTENTION_RULES", "NO_CHOICE", "SELF_CLEARING", "STRATEGIES", "ages",
           "choices_for", "conflict_rows", "filter_status", "how_it_ends", "resolve_body"]

STRATEGIES = ("priority", "negotiation", "reallocation", "rescheduling")
"""The strategies an operator may choose for a contention conflict (``choice``)."""
CONTENTION_RULES = ("agent_double_booked", "resource_claimed_twice", "window_overlap")
"""Rules whose conflicts are settled by a strategy."""
SELF_CLEARING = ("person_in_robot_zone", "e_stop", "operating_mode", "battery_below_need")
"""Safety conditions: they resolve when the condition clears (the edge refuses before)."""
NO_CHOICE = "resolve (no strategy)"
"""The option that resolves without a strategy: the claimant keeps waiting in the queue."""


def ages(seconds: float) -> str:
    """``seconds`` as a short age: ``42 s``, ``3 min``, ``2 h 5 min``, ``3 d``."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d"


def conflict_rows(conflicts: list[dict[str, Any]], now: float) -> list[dict[str, Any]]:
    """One row per conflict, newest first: what the list shows."""
    rows = []
    for c in sorted(conflicts, key=lambda c: -(c.get("detected_at") or 0)):
        at = c.get("detected_at")
        rows.append({
            "id": c["id"], "facility": c.get("facility", ""), "type": c.get("type", ""),
            "rule": c.get("rule", ""), "participants": ", ".join(c.get("participants") or []),
            "resource": c.get("resource") or "", "workflow": c.get("workflow_id") or "",
            "age": "?" if at is None else ages(now - float(at)), "status": c.get("status", ""),
            "strategy": c.get("strategy", ""), "detail": c.get("detail", ""),
            "resolution": c.get("resolution", ""),
        })
    return rows


def filter_status(conflicts: list[dict[str, Any]], status: str) -> list[dict[str, Any]]:
    """``unresolved`` (open or escalated), one status, or ``all``."""
    if status == "all":
        return list(conflicts)
    if status == "unresolved":
        return [c for c in conflicts if c.get("status") != "resolved"]
    return [c for c in conflicts if c.get("status") == status]


def how_it_ends(conflict: dict[str, Any]) -> str | None:
    """Why the resolve form does not apply to ``conflict`` (``None``: it does)."""
    if conflict.get("status") == "resolved":
        return "it is resolved already"
    rule = conflict.get("rule")
    if rule == "facility_stop":
        return "a safety stop ends only by its release (Agents page)"
    if rule in SELF_CLEARING:
        return "it clears by itself once the condition is gone; the edge refuses it before"
    return None


def choices_for(conflict: dict[str, Any]) -> list[str]:
    """The strategies offered for ``conflict``: ``keep:<facility>`` for a hub double-booking
    (``x-…``), the four strategies for a contention conflict, else resolving plainly."""
    if str(conflict["id"]).startswith("x-"):
        held = sorted({p.split("/", 1)[0] for p in conflict.get("participants") or []})
        return [f"keep:{f}" for f in held]
    if conflict.get("rule") in CONTENTION_RULES:
        return [*STRATEGIES, NO_CHOICE]
    return [NO_CHOICE]


def resolve_body(conflict: dict[str, Any], choice: str, note: str) -> dict[str, Any]:
    """The request body settling ``conflict`` by ``choice`` (one of ``choices_for``), with
    the operator's ``note`` as the resolution text (a data conflict's names the step whose
    value stands)."""
    note = note.strip()
    if choice.startswith("keep:"):
        return {"resolution": choice, **({"reason": note} if note else {})}
    body: dict[str, Any] = {"facility": conflict["facility"],
                            "resolution": note or "resolved by operator"}
    if choice in STRATEGIES:
        body["choice"] = choice
    return body
