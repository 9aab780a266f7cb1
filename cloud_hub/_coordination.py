"""What coordination is under way in each facility, as the hub's replicas show it: running
auctions and their bids, sync points (who arrived, who is awaited), teams of coalition and
composite steps (with their leader), and votes — ``GET /api/v1/coordination``.

The replicas belong to the worker thread, so the views are built there: ``Coordination`` is
a ``RoundObserver`` that rebuilds a facility's view after a round that applied its events
(at most every ``_EVERY_S``: a facility streaming thousands of events a second is read twice
a second, not per round — but at once in a round that applied a hub command's reply, so a
``strong`` write such as a sync arrival is in the view when its answer comes) and publishes
it copy-on-write for the API threads. Nothing is stored: the view is derived from the
replica, rebuilt after a restart from the restored one.
"""

from __future__ import annotations

from typing import Any

from cloud_hub._coordination_model import (
    AuctionOut,
    BidOut,
    CoordinationOut,
    SyncPointOut,
    TeamOut,
    VoteOut,
)
from cloud_hub._ingest import Applied, Ingest
from cloud_hub._model import CommandOut
from cloud_hub._store import HubStore, StoreBatch
from edge_runtime.core import FacilityState, WorkflowRun

__all__ = ["Coordination", "coordination_of"]

_EVERY_S = 0.5
"""Least time between two rebuilds of one facility's view."""
_OPEN_STEP = ("pending", "executing", "failed")
"""States of a sync step whose barrier may still take arrivals."""


def _auction(a: Any) -> AuctionOut:
    bids = [BidOut(agent=agent, cost=float(b[0]), eta_s=float(b[1]), proxy=bool(b[2]))
            for agent, b in a.bids.items()]
    left_out = set(a.excluded) | set(a.bids)
    return AuctionOut(id=a.id, workflow_id=a.workflow_id, step_id=a.step_id, round=a.round,
                      phase=a.phase, invited=list(a.invited), bids=bids,
                      awaited=[i for i in a.invited if i not in left_out], winner=a.winner,
                      deadline=a.deadline, due=a.due)


def _steps(wf: WorkflowRun, out: CoordinationOut) -> None:
    for st in wf.steps.values():
        spec = st.spec
        if spec.kind == "sync" and not spec.team and st.state in _OPEN_STEP:
            expected: list[str] = []
            for p in spec.participants:
                part = wf.steps[p]
                if part.state == "done" and part.last_agent and part.last_agent not in expected:
                    expected.append(part.last_agent)
            out.sync_points.append(SyncPointOut(
                workflow_id=wf.id, step_id=st.id, state=st.state,
                participants=list(spec.participants), expected=expected,
                arrived=list(st.arrived), awaited=[a for a in expected if a not in st.arrived],
                steps_to_finish=[p for p in spec.participants
                                 if wf.steps[p].state not in ("done", "skipped")]))
        if st.team or st.subs:
            members = dict(st.team) if st.team else {sub: m[0] for sub, m in st.subs.items()}
            leader = st.agent
            out.teams.append(TeamOut(
                workflow_id=wf.id, step_id=st.id, protocol=wf.coordination, state=st.state,
                leader=leader, members=members,
                followers=[a for a in dict.fromkeys(members.values()) if a != leader]))
        if st.ballot is not None:
            b = st.ballot
            votes = {str(k): str(v) for k, v in b.get("votes", {}).items()}
            out.votes.append(VoteOut(
                workflow_id=wf.id, step_id=st.id, id=str(b["id"]), voters=list(b["voters"]),
                quorum=int(b["quorum"]), votes=votes,
                awaited=[v for v in b["voters"] if v not in votes],
                deadline=float(b["deadline"]), default=str(b["default"]),
                result=b.get("result"), reason=b.get("reason")))


def coordination_of(state: FacilityState) -> CoordinationOut:
    """The coordination under way in one facility's state (read on its owner's thread)."""
    out = CoordinationOut(facility=state.facility, seq=state.seq,
                          auctions=[_auction(a) for a in state.auctions.values()])
    for wf in state.workflows.values():
        if wf.state.startswith(("active", "paused", "pausing")):
            _steps(wf, out)
    return out


class Coordination:
    """The worker's ``RoundObserver`` keeping every facility's ``CoordinationOut``."""

    def __init__(self) -> None:
        self.views: dict[str, CoordinationOut] = {}
        """Copy-on-write: replaced whole after a rebuild (API threads read it freely)."""
        self._built: dict[str, tuple[int, float]] = {}

    def load(self, ingest: Ingest, store: HubStore, now: float) -> None:
        self.after_apply(ingest, Applied(), store.batch(), now)

    def after_apply(self, ingest: Ingest, out: Applied, batch: StoreBatch,
                    now: float) -> list[CommandOut]:
        fresh = {}
        answered = {f for f, _ in out.replies}  # a strong writer reads its own write here
        for f, replica in list(ingest.replicas.items()):
            seq, at = self._built.get(f, (-1, 0.0))
            if replica.applied != seq and (now - at >= _EVERY_S or f in answered):
                fresh[f] = coordination_of(replica.core.state)
                self._built[f] = (replica.applied, now)
        if fresh:
            self.views = {**self.views, **fresh}
        return []

    def get(self, facility: str | None = None) -> list[CoordinationOut]:
        """Every facility's view (or one's), by facility id."""
        views = self.views
        return [views[f] for f in sorted(views) if facility is None or f == facility]
