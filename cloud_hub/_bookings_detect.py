"""Who books what across facilities, read from the hub's replicas (pure functions).

A *shared* agent is an agent id known to two or more facilities (one machine that talks to
several facilities' topics); a *shared* resource is a name some facility lent (its edge's
``lent_resources``) or a loan the hub recorded. A double-booking is a shared agent holding
a step in two facilities at once, or a shared resource held by steps of two facilities.

The winner under the edge's ``priority`` strategy is the holder whose workflow has the
higher priority; ties go to the earlier assignment (its HLC time), then the lower facility
id, so every hub (and a restarted one) picks the same.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from cloud_hub._ingest import Replica

__all__ = [
    "Holder", "Kind", "agent_holders", "conflict_id", "holders", "lent_resource_names",
    "reclaim_id", "release_id", "shared_agents", "winner",
]

Kind = Literal["agent", "resource"]


@dataclass(frozen=True, slots=True)
class Holder:
    """One facility's step holding the shared thing now."""

    facility: str
    workflow_id: str
    step_id: str
    priority: int
    assigned_at: float

    @property
    def ref(self) -> str:
        """``facility/workflow/step`` (a hub conflict's participant)."""
        return f"{self.facility}/{self.workflow_id}/{self.step_id}"


def shared_agents(replicas: Mapping[str, Replica]) -> list[str]:
    """Agent ids known to two or more facilities, sorted."""
    seen: dict[str, int] = {}
    for replica in replicas.values():
        for aid in replica.core.state.agents:
            seen[aid] = seen.get(aid, 0) + 1
    return sorted(aid for aid, n in seen.items() if n > 1)


def lent_resource_names(replicas: Mapping[str, Replica]) -> set[str]:
    """Resource names some facility has lent now."""
    names: set[str] = set()
    for replica in replicas.values():
        names.update(replica.core.state.lent_resources)
    return names


def _holder(replica: Replica, workflow_id: str, step_id: str) -> Holder:
    wf = replica.core.state.workflows.get(workflow_id)
    st = None if wf is None else wf.steps.get(step_id)
    return Holder(replica.facility, workflow_id, step_id, 0 if wf is None else wf.priority,
                  (st.assigned_at or 0.0) if st is not None else 0.0)


def agent_holders(replicas: Mapping[str, Replica], agent_id: str) -> list[Holder]:
    """Each facility where ``agent_id`` holds a step now, by facility id."""
    out = []
    for f in sorted(replicas):
        agent = replicas[f].core.state.agents.get(agent_id)
        if agent is not None and agent.task is not None:
            out.append(_holder(replicas[f], *agent.task))
    return out


def holders(replicas: Mapping[str, Replica], kind: Kind, name: str) -> list[Holder]:
    """Each facility whose step holds the agent (or resource) ``name`` now."""
    if kind == "agent":
        return agent_holders(replicas, name)
    out = []
    for f in sorted(replicas):
        held = replicas[f].core.state.holds.get(name)
        if held is not None:
            out.append(_holder(replicas[f], *held))
    return out


def winner(found: Iterable[Holder]) -> Holder:
    """The holder that keeps it under ``priority``: higher priority, earlier assignment,
    lower facility id."""
    return min(found, key=lambda h: (-h.priority, h.assigned_at, h.facility))


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def conflict_id(kind: Kind, name: str, found: Iterable[Holder]) -> str:
    """``x-…``: the same double-booking gets the same id on every hub."""
    return "x-" + _digest(kind, name, *sorted(h.ref for h in found))[:16]


def release_id(conflict: str, loser: Holder, keep: str) -> str:
    """The command id of the ``release_booking`` sent to ``loser`` (a resend is a no-op)."""
    return "xr-" + _digest(conflict, loser.ref, keep)[:24]


def reclaim_id(conflict: str, keep: str) -> str:
    """The command id of the ``reclaim_*`` sent to a keeper that had lent the thing away."""
    return "xk-" + _digest(conflict, keep)[:24]
