"""The facility state as deterministic msgpack bytes, and back (DESIGN §4 snapshots).

Only what events set is stored; derived indexes (the allocation queue, the idle-agent
lists) are rebuilt on load. Lists and insertion-ordered dicts keep the bytes identical for
identical histories. Archived workflows are only their ids with a one-byte state (their
records are in the store). Format 1 snapshots (before archiving) still load.
"""

from __future__ import annotations

from typing import Any

import msgpack

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

_FORMAT = 3
_ARCHIVED_CODE = {"completed": 0, "cancelled": 1}
_ARCHIVED_STATE = ("completed", "cancelled")


def _agent(a: Agent) -> list[Any]:
    return [
        a.id, a.kind, sorted(a.caps), a.liveness, a.online, a.status, a.node, a.battery,
        a.mode, a.e_stop, list(a.task) if a.task else None, list(a.recent), a.stopped_by,
    ]


def _conflict(c: Conflict) -> list[Any]:
    return [
        c.id, c.key, c.type, c.rule, c.participants, c.resource, c.strategy, c.detail,
        c.detected_at, c.workflow_id, c.status, c.resolution, c.resolved_at,
    ]


def _step(st: StepRun) -> list[Any]:
    return [
        st.id, st.state, st.attempt, st.failures, st.agent, st.outputs, st.error, st.retry_at,
        st.timeout_at, st.wait_until, st.progress, st.arrived, st.done_seq, st.avoid,
        st.comp_of, st.last_agent, list(st.preds), st.history, st.unconfirmed, st.stall_at,
    ]


def _workflow(wf: WorkflowRun) -> list[Any]:
    return [
        wf.id, wf.template.key, wf.state, wf.history, wf.priority, wf.deadline, wf.data,
        wf.order, wf.awaiting, wf.checkpoints, wf.depends_on, wf.dependents, wf.rollback,
        wf.reason, [_step(st) for st in wf.steps.values()], wf.created_hlc, wf.ended_hlc,
    ]


def dump_state(p: FacilityState) -> bytes:
    """msgpack ``[format, facility, seq, hlc, agents, workflows, holds, commands, archived,
    conflicts]``."""
    code = _ARCHIVED_CODE
    return msgpack.packb([
        _FORMAT, p.facility, p.seq, p.hlc,
        [_agent(a) for a in p.agents.values()],
        [_workflow(wf) for wf in p.workflows.values()],
        [[res, *holder] for res, holder in p.holds.items()],
        [[cmd, seq] for cmd, seq in p.commands.items()],
        {wid: code[state] for wid, state in p.archived.items()},
        [_conflict(c) for c in p.conflicts.values()],
    ], use_bin_type=True)


def load_state(p: FacilityState, data: bytes) -> None:
    """Fill the empty state ``p`` from ``data``; ``CoreError`` if it does not fit."""
    try:
        fields = msgpack.unpackb(data, raw=False, strict_map_key=False)
        fmt = fields[0]
        if fmt not in (1, 2, _FORMAT):
            raise CoreError(f"snapshot has format {fmt}; this build reads 1 to {_FORMAT}")
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
            wf.steps[st.id] = st
            if st.state == "allocating":
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
         status, resolution, resolved_at) = row
        c = Conflict(cid, key, type_, rule, participants, resource, strategy, detail, at, wid)
        c.status, c.resolution, c.resolved_at = status, resolution, resolved_at
        p.conflicts[cid] = c
        if status != "resolved":
            p.open_conflicts[key] = c
