"""The facility state as deterministic msgpack bytes, and back (docs/design.md §4 snapshots).

Only what events set is stored; derived indexes (the allocation queue, the idle-agent
lists) are rebuilt on load. Lists and insertion-ordered dicts keep the bytes identical for
identical histories. Archived workflows are only their ids with a one-byte state (their
records are in the store). Format 1 snapshots (before archiving) still load.

From format 4 every entity row (and the whole snapshot) ends with a dict of the fields added
since, by name (``_*_extra`` / ``_load_*_extra``): a new field is one entry there, read back
with a default, so older snapshots still load and fields need no fixed positions.
"""

from __future__ import annotations

from typing import Any

import msgpack

from edge_runtime.core._auction_model import auction_from_row, auction_row
from edge_runtime.core._errors import CoreError
from edge_runtime.core._state import (
    Agent,
    Conflict,
    FacilityState,
    StepRun,
    WorkflowRun,
    compensation_step,
)

__all__ = ["dump_state", "load_state"]

_FORMAT = 4
_ARCHIVED_CODE = {"completed": 0, "cancelled": 1}
_ARCHIVED_STATE = ("completed", "cancelled")


def _agent(a: Agent) -> list[Any]:
    return [
        a.id, a.kind, sorted(a.caps), a.liveness, a.online, a.status, a.node, a.battery,
        a.mode, a.e_stop, list(a.task) if a.task else None, list(a.recent), a.stopped_by,
        _agent_extra(a),
    ]


def _agent_extra(a: Agent) -> dict[str, Any]:
    """Agent fields added from format 4 on (only those not at their default)."""
    extra: dict[str, Any] = {}
    if a.sub_task is not None:
        extra["sub_task"] = list(a.sub_task)
    if not a.bids:
        extra["bids"] = False
    if a.queued:
        extra["queued"] = [list(q) for q in a.queued]
    if a.lent_to is not None:
        extra["lent_to"] = a.lent_to
    return extra


def _load_agent_extra(a: Agent, extra: dict[str, Any]) -> None:
    """Read back what ``_agent_extra`` wrote (defaults for what is missing)."""
    sub_task = extra.get("sub_task")
    a.sub_task = (sub_task[0], sub_task[1], sub_task[2]) if sub_task else None
    a.bids = extra.get("bids", True)
    a.queued = [(wid, sid) for wid, sid in extra.get("queued", ())]
    a.lent_to = extra.get("lent_to")


def _conflict(c: Conflict) -> list[Any]:
    return [
        c.id, c.key, c.type, c.rule, c.participants, c.resource, c.strategy, c.detail,
        c.detected_at, c.workflow_id, c.status, c.resolution, c.resolved_at,
        _conflict_extra(c),
    ]


def _conflict_extra(c: Conflict) -> dict[str, Any]:
    """Conflict fields added from format 4 on (only those not at their default)."""
    extra: dict[str, Any] = {}
    if c.claims:
        extra["claims"] = c.claims
    return extra


def _load_conflict_extra(c: Conflict, extra: dict[str, Any]) -> None:
    """Read back what ``_conflict_extra`` wrote (defaults for what is missing)."""
    c.claims = extra.get("claims", [])


def _step(st: StepRun) -> list[Any]:
    return [
        st.id, st.state, st.attempt, st.failures, st.agent, st.outputs, st.error, st.retry_at,
        st.timeout_at, st.wait_until, st.progress, st.arrived, st.done_seq, st.avoid,
        st.comp_of, st.last_agent, list(st.preds), st.history, st.unconfirmed, st.stall_at,
        _step_extra(st),
    ]


def _step_extra(st: StepRun) -> dict[str, Any]:
    """Step fields added from format 4 on (only those not at their default)."""
    extra: dict[str, Any] = {}
    if st.assigned_at is not None:
        extra["assigned_at"] = st.assigned_at
    if st.queued_on is not None:
        extra["queued_on"] = st.queued_on
    if st.ballot is not None:
        extra["ballot"] = st.ballot
    if st.subs:
        extra["subs"] = st.subs
    if st.seen_version:
        extra["seen_version"] = st.seen_version
    if st.team:
        extra["team"] = st.team
    if st.members_done:
        extra["members_done"] = st.members_done
    if st.passes:
        extra["passes"] = st.passes
    return extra


def _load_step_extra(st: StepRun, extra: dict[str, Any]) -> None:
    """Read back what ``_step_extra`` wrote (defaults for what is missing)."""
    st.assigned_at = extra.get("assigned_at")
    st.queued_on = extra.get("queued_on")
    st.ballot = extra.get("ballot")
    st.subs = extra.get("subs", {})
    st.seen_version = extra.get("seen_version", 0)
    st.team = extra.get("team", {})
    st.members_done = extra.get("members_done", {})
    st.passes = extra.get("passes", 0)


def _workflow(wf: WorkflowRun) -> list[Any]:
    return [
        wf.id, wf.template.key, wf.state, wf.history, wf.priority, wf.deadline, wf.data,
        wf.order, wf.awaiting, wf.checkpoints, wf.depends_on, wf.dependents, wf.rollback,
        wf.reason, [_step(st) for st in wf.steps.values()], wf.created_hlc, wf.ended_hlc,
        _workflow_extra(wf),
    ]


def _workflow_extra(wf: WorkflowRun) -> dict[str, Any]:
    """Workflow fields added from format 4 on (only those not at their default)."""
    extra: dict[str, Any] = {}
    if wf.coordination != wf.template.coordination:
        extra["coordination"] = wf.coordination
    if wf.allowed_agents is not None:
        extra["allowed_agents"] = wf.allowed_agents
    swapped = _swapped_resources(wf)
    if swapped:
        extra["resources"] = swapped
    if wf.data_version:  # workflow-variable writes (``_consistency``)
        extra["data_version"] = wf.data_version
        extra["writers"] = wf.writers
    if wf.held:
        extra["held"] = wf.held
    if wf.last_seq:
        extra["last"] = [wf.last_seq, wf.last_hlc]
    if wf.spans:  # resources held across steps (``_resources``)
        extra["spans"] = wf.spans
    if wf.deps is not None:  # typed and external dependencies (``_workflow_deps``)
        extra["deps"] = wf.deps
    if wf.labels:
        extra["labels"] = wf.labels
    return extra


def _swapped_resources(wf: WorkflowRun) -> dict[str, list[str]]:
    """Steps whose claim moved to another resource (``_contention_events``), by id."""
    swapped: dict[str, list[str]] = {}
    for sid, st in wf.steps.items():
        if st.spec.resources and st.comp_of is None:
            try:
                declared = wf.template.step(sid).resources
            except KeyError:  # a step the template does not declare
                continue
            if st.spec.resources != declared:
                swapped[sid] = list(st.spec.resources)
    return swapped


def _load_workflow_extra(wf: WorkflowRun, extra: dict[str, Any]) -> None:
    """Read back what ``_workflow_extra`` wrote (defaults for what is missing)."""
    wf.coordination = extra.get("coordination", wf.template.coordination)
    wf.allowed_agents = extra.get("allowed_agents")
    for sid, resources in extra.get("resources", {}).items():
        st = wf.steps[sid]
        st.spec = st.spec.model_copy(update={"resources": tuple(resources)})
    wf.data_version = extra.get("data_version", 0)
    wf.writers = extra.get("writers", {})
    wf.held = extra.get("held", {})
    wf.last_seq, wf.last_hlc = extra.get("last", (0, 0))
    wf.spans = extra.get("spans", {})
    wf.deps = extra.get("deps")
    wf.labels = extra.get("labels")


def _state_extra(p: FacilityState) -> dict[str, Any]:
    """Facility-wide fields added from format 4 on (auctions, votes …)."""
    extra: dict[str, Any] = {}
    if p.auctions:
        extra["auctions"] = [auction_row(a) for a in p.auctions.values()]
    if p.starving:
        extra["starving"] = [list(key) for key in p.starving]
    if p.lent_resources:
        extra["lent_resources"] = p.lent_resources
    return extra


def _load_state_extra(p: FacilityState, extra: dict[str, Any]) -> None:
    """Read back what ``_state_extra`` wrote (defaults for what is missing)."""
    for row in extra.get("auctions", ()):
        auction = p.auctions[row[0]] = auction_from_row(row)
        p.auction_of[auction.key] = auction.id
    p.starving = [(wid, sid) for wid, sid in extra.get("starving", ())]
    p.lent_resources = dict(extra.get("lent_resources", {}))
    p.agent_queued = sum(len(a.queued) for a in p.agents.values())  # derived (_workqueues)


def dump_state(p: FacilityState) -> bytes:
    """msgpack ``[format, facility, seq, hlc, agents, workflows, holds, commands, archived,
    conflicts, extra]``."""
    code = _ARCHIVED_CODE
    return msgpack.packb([
        _FORMAT, p.facility, p.seq, p.hlc,
        [_agent(a) for a in p.agents.values()],
        [_workflow(wf) for wf in p.workflows.values()],
        [[res, *holder] for res, holder in p.holds.items()],
        [[cmd, seq] for cmd, seq in p.commands.items()],
        {wid: code[state] for wid, state in p.archived.items()},
        [_conflict(c) for c in p.conflicts.values()],
        _state_extra(p),
    ], use_bin_type=True)


def load_state(p: FacilityState, data: bytes) -> None:
    """Fill the empty state ``p`` from ``data``; ``CoreError`` if it does not fit."""
    try:
        fields = msgpack.unpackb(data, raw=False, strict_map_key=False)
        fmt = fields[0]
        if fmt not in (1, 2, 3, _FORMAT):
            raise CoreError(f"snapshot has format {fmt}; this build reads 1 to {_FORMAT}")
        extra: dict[str, Any] = fields.pop() if fmt >= 4 else {}
        conflicts: list[list[Any]] = fields.pop() if fmt >= 3 else []
        archived: dict[str, int] = fields.pop() if fmt >= 2 else {}
        _, facility, seq, hlc, agents, workflows, holds, commands = fields
    except CoreError:
        raise
    except Exception as exc:  # msgpack raises many types; all mean "not a snapshot"
        raise CoreError(f"snapshot does not decode: {exc}") from None
    if facility != p.facility:
        raise CoreError(f"snapshot is of facility {facility}, not {p.facility}")
    p.seq, p.hlc = seq, hlc
    for row in agents:
        aid, kind, caps, liveness, online, status, node, battery, mode, e_stop, task, recent = (
            row[:12])
        a = p.agents[aid] = Agent(aid, kind, tuple(caps), liveness)
        a.online, a.status, a.node, a.battery, a.mode, a.e_stop = (
            online, status, node, battery, mode, e_stop)
        a.task = (task[0], task[1]) if task else None
        a.stopped_by = row[12] if len(row) > 12 else None
        _load_agent_extra(a, row[13] if len(row) > 13 else {})
        for eid in recent:
            a.recent.append(eid)
            a.recent_ids[eid] = None
        p.set_idle(a)
    for row in workflows:
        (wid, tkey, state, history, priority, deadline, wdata, order, awaiting, checkpoints,
         depends_on, dependents, rollback, reason, steps) = row[:15]
        wf = WorkflowRun(wid, p.template(tkey), priority, deadline, wdata, order)
        wf.state, wf.history, wf.awaiting, wf.checkpoints = state, history, awaiting, checkpoints
        wf.depends_on, wf.dependents, wf.rollback, wf.reason = (
            depends_on, dependents, rollback, reason)
        if len(row) > 15:
            wf.created_hlc, wf.ended_hlc = row[15], row[16]
        _load_workflow_extra(wf, row[17] if len(row) > 17 else {})
        template_steps = wf.steps
        wf.steps = {}
        for s in steps:
            comp_of = s[14]
            if comp_of is None:
                st = template_steps[s[0]]
            else:
                comp = wf.template.step(comp_of).compensation
                assert comp is not None
                st = StepRun(compensation_step(comp_of, comp), ())
            (st.id, st.state, st.attempt, st.failures, st.agent, st.outputs, st.error,
             st.retry_at, st.timeout_at, st.wait_until, st.progress, st.arrived, st.done_seq,
             st.avoid, st.comp_of, st.last_agent) = s[:16]
            st.preds = tuple(s[16])
            if len(s) > 17:  # older snapshots: no step history, nothing unconfirmed
                st.history, st.unconfirmed = s[17], s[18]
            if len(s) > 19:
                st.stall_at = s[19]
            _load_step_extra(st, s[20] if len(s) > 20 else {})
            wf.steps[st.id] = st
            if st.state == "allocating" and st.queued_on is None:  # else on an agent's queue
                p.enqueue(wf, st)
        p.workflows[wid] = wf
        if wf.deadline is not None:
            p.deadlines += 1
    for res, wid, sid in holds:
        p.holds[res] = (wid, sid)
    for cmd in commands:  # [id, seq of its reply]; older snapshots kept the id alone
        if isinstance(cmd, str):
            p.commands[cmd] = 0
        else:
            p.commands[cmd[0]] = cmd[1]
    for wid, code in archived.items():
        p.archived[wid] = _ARCHIVED_STATE[code]
    for row in conflicts:
        (cid, key, type_, rule, participants, resource, strategy, detail, at, wid,
         status, resolution, resolved_at) = row[:13]
        c = Conflict(cid, key, type_, rule, participants, resource, strategy, detail, at, wid)
        c.status, c.resolution, c.resolved_at = status, resolution, resolved_at
        _load_conflict_extra(c, row[13] if len(row) > 13 else {})
        p.conflicts[cid] = c
        if status != "resolved":
            p.open_conflicts[key] = c
    _load_state_extra(p, extra)
