"""What needs a human now, counted from the hub's lists (the badge on every page).

- **Waiting for an operator**: workflows whose ``awaiting_operator`` names a step — its
  retries ran out and the edge took a checkpoint and waits (in
  ``active.waiting_for_resource``) for a manual-intervention action (docs/workflows.md,
  "Recovery"). The hub's list filters by top-level state only, so the active workflows are
  read and these picked out (at most ``MOST`` of them: beyond, the count says "at least").
- **Escalated conflicts**: conflicts of ``status`` ``escalated`` (an operator must choose;
  the edges escalate by strategy ``operator``, refused commands, battery shortfalls …).
- **Safety stops**: unresolved conflicts of rule ``facility_stop`` (a supervisor's facility
  or zone stop: ``POST /facilities/{id}/stop``) or ``e_stop`` (a robot's emergency stop
  pressed). ``FacilityOut`` carries no stop flag: the stop *is* that conflict.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from dashboard._api import HubApi

__all__ = ["MOST", "STOP_RULES", "Attention", "attention", "count"]

STOP_RULES = frozenset({"facility_stop", "e_stop"})
"""Conflict rules that are a safety stop standing."""
MOST = 2000
"""How many active workflows the badge reads at most per refresh."""


@dataclass(frozen=True)
class Attention:
    """The badge's counts, with what each counts."""

    manual: list[str] = field(default_factory=list)
    """``facility/workflow`` of each workflow waiting for an operator."""
    escalated: list[str] = field(default_factory=list)
    """``facility/conflict`` of each escalated conflict."""
    safety: list[str] = field(default_factory=list)
    """``facility/conflict`` of each standing safety stop (``facility_stop:*`` …)."""
    capped: bool = False
    """More active workflows than were read: ``manual`` is a lower bound."""

    @property
    def total(self) -> int:
        return len(self.manual) + len(self.escalated) + len(self.safety)


def count(active: Iterable[dict[str, Any]], conflicts: Iterable[dict[str, Any]], *,
          capped: bool = False) -> Attention:
    """The counts from active workflows (``WorkflowOut`` JSON) and unresolved conflicts
    (``ConflictOut`` JSON)."""
    manual = [f"{w['facility']}/{w['id']}" for w in active if w.get("awaiting_operator")]
    escalated: list[str] = []
    safety: list[str] = []
    for c in conflicts:
        if c.get("status") == "resolved":
            continue
        name = f"{c['facility']}/{c['id']}"
        if c.get("rule") in STOP_RULES:
            safety.append(name)
        elif c.get("status") == "escalated":
            escalated.append(name)
    return Attention(sorted(manual), sorted(escalated), sorted(safety), capped)


def attention(hub: HubApi) -> Attention:
    """Ask the hub and count (four to six requests; ``ApiError`` on failure)."""
    first = hub.get("/workflows", state="active", limit=500)
    active = first["items"]
    if first.get("next_cursor"):
        active = hub.pages("/workflows", state="active", most=MOST)
    conflicts = [*hub.pages("/conflicts", status="open", most=MOST),
                 *hub.pages("/conflicts", status="escalated", most=MOST)]
    return count(active, conflicts, capped=first["count"] > len(active))
