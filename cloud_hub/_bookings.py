"""Shared agents and resources across facilities: loans, and double-bookings detected and
settled (a ``RoundObserver`` of the hub's worker, docs/hub.md "Shared agents and resources
across facilities").

Edges are autonomous: during a partition two edges may each book the same shared agent
(or a lent resource), so lending alone cannot prevent every double-booking; the hub finds
them in its replicas after each round that applied events and settles them:

- ``priority`` (the edge's strategy): the holder whose workflow has the higher priority
  keeps it (``_bookings_detect.winner``); every other facility gets ``release_booking``
  through the durable outbox, with a command id made from the conflict (a resend after a
  restart is the same command, so it applies once);
- ``manual`` (the hub's default or the loan's): the conflict stays open until
  ``POST /api/v1/conflicts/{id}/resolve`` with ``keep:<facility>``.

A hub conflict is a ``ConflictOut`` with ``facility="*"`` and an ``x-`` id, kept in the
``conflicts`` family under ``*`` (so ``GET /api/v1/conflicts`` lists it beside the edges'
ones); it is resolved once the replicas show one holder left. Loans live in the ``loans``
family. The worker thread alone writes the store: what API threads record waits in
``_writes`` for the next round's batch (rounds run at least every 0.2 s).
"""

from __future__ import annotations

import threading
from typing import Any

from cloud_hub._bookings_detect import (
    Holder,
    Kind,
    conflict_id,
    holders,
    lent_resource_names,
    reclaim_id,
    release_id,
    shared_agents,
    winner,
)
from cloud_hub._bookings_model import BookingStrategy, Invalid, LoanOut
from cloud_hub._ingest import Applied, Ingest, Replica
from cloud_hub._model import CommandOut, ConflictOut
from cloud_hub._service import NotFound
from cloud_hub._store import HubStore, StoreBatch, key

__all__ = ["Bookings"]

_HUB = "*"
"""The ``facility`` of a hub conflict (it crosses facilities)."""


def _kind(c: ConflictOut) -> Kind:
    return "agent" if c.rule == "shared_agent" else "resource"


class Bookings:
    """Loans, and double-bookings of shared agents and resources (one per hub)."""

    def __init__(self, strategy: str = "priority") -> None:
        if strategy not in ("priority", "manual"):
            raise ValueError(f"booking strategy must be priority or manual, not {strategy!r}")
        self.strategy: BookingStrategy = "manual" if strategy == "manual" else "priority"
        """The hub's default (``HubConfig.booking_strategy``); a loan may name its own."""
        self._lock = threading.Lock()
        self._loans: dict[str, LoanOut] = {}
        self._open: dict[tuple[Kind, str], ConflictOut] = {}
        self._chosen: dict[str, str] = {}
        """Open hub conflict id -> the facility an operator chose to keep it (manual)."""
        self._writes: list[tuple[str, bytes, bytes]] = []
        self._sent: set[str] = set()
        self._sizes: dict[str, int] = {}
        self._shared: list[str] = []
        self._store: HubStore | None = None

    # --- the worker's side (RoundObserver) -------------------------------------------------

    def load(self, ingest: Ingest, store: HubStore, now: float) -> None:
        """Loans and open hub conflicts back from the store."""
        self._store = store
        with self._lock:
            for _, raw in store.scan("loans", b""):
                loan = LoanOut.model_validate_json(raw)
                self._loans[loan.id] = loan
            for _, raw in store.scan("conflicts", key(_HUB, b"")):
                c = ConflictOut.model_validate_json(raw)
                if c.status != "resolved" and c.resource is not None:
                    self._open[(_kind(c), c.resource)] = c
                    if c.resolution.startswith("keep:"):
                        self._chosen[c.id] = c.resolution[5:].split(" ", 1)[0]

    def after_apply(self, ingest: Ingest, out: Applied, batch: StoreBatch,
                    now: float) -> list[CommandOut]:
        """Write what the API recorded; track loans; on new events, look for
        double-bookings and settle them (the commands returned go through the outbox)."""
        with self._lock:
            writes, self._writes = self._writes, []
            unsettled = [x for x in self._loans.values() if x.status in ("lending", "returning",
                                                                          "lent")]
            chosen = dict(self._chosen)
        for family, k, v in writes:
            batch.put(family, k, v)
        replicas = ingest.replicas
        if unsettled and out.changes:
            self._track_loans(replicas, unsettled, batch, now)
        if not out.changes and not writes:
            return []
        cmds: list[CommandOut] = []
        for kind, name in self._candidates(replicas):
            cmds += self._review(replicas, kind, name, batch, now, chosen)
        return cmds

    def _candidates(self, replicas: dict[str, Replica]) -> list[tuple[Kind, str]]:
        sizes = {f: len(r.core.state.agents) for f, r in replicas.items()}
        if sizes != self._sizes:  # an agent joined somewhere: who is shared may change
            self._sizes, self._shared = sizes, shared_agents(replicas)
        with self._lock:
            lent = {x.name for x in self._loans.values()
                    if x.kind == "resource" and x.status in ("lending", "lent", "returning")}
            opened = list(self._open)
        out: dict[tuple[Kind, str], None] = {("agent", a): None for a in self._shared}
        for name in sorted(lent | lent_resource_names(replicas)):
            out[("resource", name)] = None
        out.update(dict.fromkeys(opened))
        return list(out)

    def _track_loans(self, replicas: dict[str, Replica], loans: list[LoanOut],
                     batch: StoreBatch, now: float) -> None:
        """A loan is ``lent`` once its lender's edge shows it, ``returned`` once it no
        longer does (reclaimed, or re-lent elsewhere by a ``release_booking``)."""
        for loan in loans:
            replica = replicas.get(loan.from_facility)
            if replica is None:
                continue
            lent_to = _lent_by(replica, loan.kind, loan.name)
            status = loan.status
            if status == "lending" and lent_to == loan.to_facility:
                status = "lent"
            elif status in ("lent", "returning") and lent_to != loan.to_facility:
                status = "returned"
            if status != loan.status:
                self._put_loan(loan.model_copy(update={"status": status, "updated_at": now}),
                               batch)

    def _review(self, replicas: dict[str, Replica], kind: Kind, name: str,
                batch: StoreBatch, now: float, chosen: dict[str, str]) -> list[CommandOut]:
        found = holders(replicas, kind, name)
        with self._lock:
            c = self._open.get((kind, name))
        if len(found) < 2:
            if c is not None:
                kept = found[0].facility if found else None
                self._close(c.model_copy(update={
                    "status": "resolved", "resolved_at": now,
                    "resolution": f"kept by {kept}" if kept else "no longer held"}), batch)
            return []
        refs = [h.ref for h in found]
        if c is None or c.participants != refs:
            c = ConflictOut(
                id=conflict_id(kind, name, found), facility=_HUB, type="double_booking",
                rule=f"shared_{kind}", participants=refs, resource=name,
                strategy=self._strategy_of(kind, name), detected_at=now,
                detail=f"{kind} {name} is booked in {len(found)} facilities at once: "
                       f"{', '.join(refs)}",
            ) if c is None else c.model_copy(update={"participants": refs})
            self._keep_open(kind, name, c, batch)
        keep = winner(found).facility if c.strategy == "priority" else chosen.get(c.id)
        if keep is None:
            return []
        cmds = self._releases(c, kind, name, found, keep, now, batch)
        keeper = replicas.get(keep)
        if keeper is not None and _lent_by(keeper, kind, name) is not None:
            # The keeper had lent it away (its step ran on): it takes it back, else both
            # facilities would have lent it to each other and neither could use it.
            cid = reclaim_id(c.id, keep)
            if cid not in self._sent:
                self._sent.add(cid)
                thing = {"agent_id": name} if kind == "agent" else {"resource": name}
                cmds.append(CommandOut(
                    command_id=cid, facility=keep, action=f"reclaim_{kind}", args=thing,
                    consistency="eventual", who="hub",
                    reason=f"double-booking {c.id}: {keep} keeps {kind} {name}"[:1000],
                    created_at=now))
        return cmds

    def _releases(self, c: ConflictOut, kind: Kind, name: str, found: list[Holder],
                  keep: str, now: float, batch: StoreBatch) -> list[CommandOut]:
        """``release_booking`` to every holder but ``keep``; each is recorded as a loan to
        ``keep`` (so ``…/return`` can end it) unless one stands already."""
        cmds = []
        for h in found:
            cid = release_id(c.id, h, keep)
            if h.facility == keep or cid in self._sent:
                continue
            self._sent.add(cid)
            lid = f"{kind}:{name}:{h.facility}"
            with self._lock:
                standing = self._loans.get(lid)
            if standing is None or standing.status not in ("lending", "lent") \
                    or standing.to_facility != keep:
                self._put_loan(LoanOut(
                    id=lid, kind=kind, name=name, from_facility=h.facility, to_facility=keep,
                    strategy="manual" if c.strategy == "manual" else "priority", who="hub",
                    reason=f"double-booking {c.id}",
                    command_id=cid, created_at=now, updated_at=now), batch)
            cmds.append(CommandOut(
                command_id=cid, facility=h.facility, action="release_booking",
                args=release_args(kind, name, h, keep), consistency="eventual", who="hub",
                reason=f"double-booking {c.id}: {keep} keeps {kind} {name}"[:1000],
                created_at=now))
        return cmds

    def _strategy_of(self, kind: Kind, name: str) -> BookingStrategy:
        with self._lock:
            for loan in self._loans.values():
                if loan.kind == kind and loan.name == name \
                        and loan.status in ("lending", "lent"):
                    return loan.strategy
        return self.strategy

    def _keep_open(self, kind: Kind, name: str, c: ConflictOut, batch: StoreBatch) -> None:
        with self._lock:
            self._open[(kind, name)] = c
        batch.put("conflicts", key(_HUB, c.id), c.model_dump_json().encode())

    def _close(self, c: ConflictOut, batch: StoreBatch) -> None:
        with self._lock:
            assert c.resource is not None
            self._open.pop((_kind(c), c.resource), None)
            self._chosen.pop(c.id, None)
        batch.put("conflicts", key(_HUB, c.id), c.model_dump_json().encode())

    def _put_loan(self, loan: LoanOut, batch: StoreBatch) -> None:
        with self._lock:
            self._loans[loan.id] = loan
        batch.put("loans", loan.id.encode(), loan.model_dump_json().encode())

    # --- the API's side (any thread) ---------------------------------------------------------

    def loans(self) -> list[LoanOut]:
        """Every loan recorded, by id."""
        with self._lock:
            return [self._loans[k] for k in sorted(self._loans)]

    def agent_seen(self, facility: str, agent_id: str) -> bool:
        """Whether the hub has seen ``agent_id`` in ``facility`` (its stored agent view)."""
        store = self._store
        return store is not None and store.get("agents", key(facility, agent_id)) is not None

    def record(self, loan: LoanOut) -> LoanOut:
        """Keep ``loan`` (new or changed); written in the next round's batch."""
        with self._lock:
            self._loans[loan.id] = loan
            self._writes.append(("loans", loan.id.encode(), loan.model_dump_json().encode()))
        return loan

    def loan(self, kind: Kind, name: str, from_facility: str | None) -> LoanOut:
        """The loan of ``name`` still standing (lending or lent); ``NotFound`` if none,
        ``Invalid`` if it is lent by two facilities and ``from_facility`` is not named."""
        with self._lock:
            found = [x for x in self._loans.values()
                     if x.kind == kind and x.name == name and x.status in ("lending", "lent")
                     and from_facility in (None, x.from_facility)]
        if not found:
            raise NotFound(f"no standing loan of {kind} {name!r}"
                           + (f" from {from_facility}" if from_facility else ""))
        if len(found) > 1:
            raise Invalid(f"{kind} {name!r} is lent by {', '.join(x.from_facility for x in found)}"
                          ": name from_facility")
        return found[0]

    def choose(self, conflict: str, resolution: str, who: str
               ) -> list[tuple[str, dict[str, Any], str]]:
        """An operator settles hub conflict ``conflict`` with ``keep:<facility>``: the
        ``(facility, release_booking args, command id)`` to send to every other holder."""
        if not resolution.startswith("keep:"):
            raise Invalid(f"a hub conflict is settled by 'keep:<facility>', not {resolution!r}")
        keep = resolution[5:].strip()
        with self._lock:
            c = next((x for x in self._open.values() if x.id == conflict), None)
            if c is None:
                raise NotFound(f"no unresolved hub conflict {conflict!r}")
            found = [_ref_holder(r) for r in c.participants]
            if keep not in {h.facility for h in found}:
                raise Invalid(f"{keep!r} does not hold it; holders: "
                              f"{', '.join(c.participants)}")
            self._chosen[c.id] = keep
            c = c.model_copy(update={"resolution": f"keep:{keep} (by {who})"[:512]})
            self._open[(_kind(c), c.resource or "")] = c
            self._writes.append(("conflicts", key(_HUB, c.id), c.model_dump_json().encode()))
        kind = _kind(c)
        name = c.resource or ""
        return [(h.facility, release_args(kind, name, h, keep), release_id(c.id, h, keep))
                for h in found if h.facility != keep]


def release_args(kind: Kind, name: str, h: Holder, keep: str) -> dict[str, Any]:
    """``release_booking`` args taking ``h``'s step off ``name`` for facility ``keep``."""
    thing = {"agent_id": name} if kind == "agent" else {"resource": name}
    return {**thing, "workflow_id": h.workflow_id, "step_id": h.step_id, "to": keep}


def _lent_by(replica: Replica, kind: Kind, name: str) -> str | None:
    """Where ``replica``'s facility has lent the agent (or resource) ``name``, if anywhere."""
    state = replica.core.state
    if kind == "resource":
        return state.lent_resources.get(name)
    agent = state.agents.get(name)
    return None if agent is None else agent.lent_to


def _ref_holder(ref: str) -> Holder:
    facility, workflow_id, step_id = ref.split("/", 2)
    return Holder(facility, workflow_id, step_id, 0, 0.0)
