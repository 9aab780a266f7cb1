"""The global view as stored: edge views → read models, the secondary indexes that keep
every list query off a scan, and the paged reads the API threads make.

Workflow index keys: ``wf\\0{dim}\\0{value}\\0{created ms}\\0{facility}\\0{id}`` for the dims
``all`` (no value), ``f`` (facility), ``s`` (top-level state: ``active`` for
``active.running``), ``fs`` (facility + state), ``t`` (template), ``a`` (each agent that
took a step) and ``l`` (each label, ``key=value``). A list picks the narrowest index its
filters allow, seeks to ``since`` and stops at ``until`` (created time), and checks any
remaining filter on the records it reads.
Audit trail: ``ev\\0{workflow}\\0{facility}\\0{seq}``; agents and conflicts are keyed by
facility first, so a facility's list is a prefix read.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable
from typing import Any

from cloud_hub._model import (
    AgentOut,
    ConflictOut,
    DependencyOut,
    EventOut,
    Page,
    StepOut,
    WorkflowOut,
)
from cloud_hub._service import HubError
from cloud_hub._store import HubStore, hexn, key
from edge_runtime.core import AgentView, ConflictView, WorkflowView
from topics import unpack_edge_event

__all__ = [
    "agent_out", "conflict_out", "decode_cursor", "encode_cursor", "event_out",
    "list_workflows", "page_of", "workflow_index_keys", "workflow_out",
]


def workflow_out(facility: str, v: WorkflowView, seq: int) -> WorkflowOut:
    """The read model of an edge's workflow view."""
    steps = [StepOut(id=s.id, kind=s.kind, state=s.state, attempt=s.attempt, agent=s.agent,
                     outputs=s.outputs, error=s.error, progress=s.progress,
                     waiting_for=s.waiting_for)
             for s in v.steps.values()]
    return WorkflowOut(
        id=v.id, facility=facility, template=v.template, version=v.version, state=v.state,
        priority=v.priority, deadline=v.deadline, data=v.data, steps=steps,
        coordination=v.coordination, depends_on=list(v.depends_on),
        dependencies=[DependencyOut(source=d[0], type=d[1], conditions=dict(d[2]),
                                    facility=d[3], status=d[4])
                      for d in v.dependencies],
        checkpoints=list(v.checkpoints), awaiting_operator=list(v.awaiting_operator),
        labels=v.labels or {}, reason=v.reason,
        created_at=v.created_at,
        ended_at=v.ended_at, seq=seq)


def agent_out(facility: str, v: AgentView) -> AgentOut:
    return AgentOut(id=v.id, facility=facility, kind=v.kind, capabilities=list(v.capabilities),
                    online=v.online, status=v.status, node=v.node, battery=v.battery,
                    workflow_id=v.task[0] if v.task else None,
                    step_id=v.task[1] if v.task else None, lent_to=v.lent_to, mode=v.mode,
                    e_stop=v.e_stop, bids=v.bids)


def conflict_out(facility: str, v: ConflictView) -> ConflictOut:
    return ConflictOut(id=v.id, facility=facility, type=v.type, rule=v.rule,
                       participants=list(v.participants), resource=v.resource,
                       strategy=v.strategy, detail=v.detail, detected_at=v.detected_at,
                       status=v.status, resolution=v.resolution, resolved_at=v.resolved_at,
                       workflow_id=v.workflow_id)


def event_out(payload: bytes, extra: dict[str, Any] | None = None) -> EventOut:
    """An ``EventOut`` of a stored ``edge/events`` payload (validated when it arrived)."""
    seq, hlc, facility, kind, workflow_id, data = unpack_edge_event(payload)
    if extra:
        data = {**data, **extra}
    return EventOut(facility=facility, seq=seq, hlc=hlc, kind=kind, workflow_id=workflow_id,
                    data=data)


def _ms(t: float | None, plus: int = 0) -> bytes:
    """Unix seconds as 16 hex digits of milliseconds (rounded: HLC times are whole ms)."""
    return hexn(max(0, round((t or 0.0) * 1000) + plus))


def workflow_index_keys(w: WorkflowOut, agents: Iterable[str] = ()) -> set[bytes]:
    """Every index key of ``w`` (the worker swaps old ones for new ones on each change);
    ``agents``: those that ever took one of its steps (the steps only name the current)."""
    top = w.state.split(".", 1)[0]
    # The keys' common tail, joined once: ingest computes these on every workflow change.
    tail = b"\0" + key(_ms(w.created_at), w.facility, w.id)
    f = w.facility.encode()
    keys = {b"wf\0all\0" + tail, b"wf\0f\0" + f + tail, b"wf\0s\0" + top.encode() + tail,
            b"wf\0fs\0" + f + b"|" + top.encode() + tail, b"wf\0t\0" + w.template.encode() + tail}
    keys.update(b"wf\0a\0" + a.encode() + tail
                for a in {*agents, *(s.agent for s in w.steps if s.agent)})
    keys.update(b"wf\0l\0" + f"{k}={v}".encode() + tail for k, v in w.labels.items())
    return keys


def _label(label: str | None) -> tuple[str, str] | None:
    """``key=value`` split; ``HubError`` if it is not that."""
    if label is None:
        return None
    k, eq, v = label.partition("=")
    if not (k and eq and v):
        raise HubError(f"label must be key=value, not {label[:80]!r}")
    return k, v


def encode_cursor(k: bytes) -> str:
    return base64.urlsafe_b64encode(k).decode()


def decode_cursor(cursor: str | None, prefix: bytes) -> bytes | None:
    """The index key a cursor names; ``HubError`` if it is not one of this list's."""
    if cursor is None:
        return None
    try:
        k = base64.urlsafe_b64decode(cursor.encode())
    except (binascii.Error, ValueError):
        raise HubError(f"cursor {cursor[:40]!r} is not one this hub gave out") from None
    if not k.startswith(prefix):
        raise HubError("that cursor belongs to another list or filter; start without one")
    return k


def _check_limit(limit: int, most: int = 1000) -> None:
    if not 1 <= limit <= most:
        raise HubError(f"limit must be between 1 and {most}, not {limit}")


def list_workflows(store: HubStore, *, facility: str | None, state: str | None,
                   template: str | None, agent: str | None, since: float | None,
                   until: float | None, cursor: str | None, limit: int,
                   label: str | None = None) -> Page[WorkflowOut]:
    """A page of workflows matching every filter, oldest created first."""
    _check_limit(limit)
    if since is not None and until is not None and until < since:
        raise HubError(f"until ({until}) is before since ({since})")
    top = state.split(".", 1)[0] if state else None
    label_kv = _label(label)
    if agent:
        dim, value = b"a", agent
    elif label is not None:
        dim, value = b"l", label
    elif facility and top:
        dim, value = b"fs", f"{facility}|{top}"
    elif facility:
        dim, value = b"f", facility
    elif template:
        dim, value = b"t", template
    elif top:
        dim, value = b"s", top
    else:
        dim, value = b"all", ""
    prefix = key(b"wf", dim, value) + b"\0"
    first = prefix + _ms(since) if since is not None else None
    stop = prefix + _ms(until, plus=1) if until is not None else None
    start = decode_cursor(cursor, prefix)

    def wanted(w: WorkflowOut) -> bool:
        return ((facility is None or w.facility == facility)
                and (top is None or w.state.split(".", 1)[0] == top)
                and (template is None or w.template == template)
                and (label_kv is None or w.labels.get(label_kv[0]) == label_kv[1]))

    # What the chosen index does not cover is checked on the records read (and then the
    # count reads the whole range).
    covered = {b"a": {"agent"}, b"fs": {"facility", "state"}, b"f": {"facility"},
               b"t": {"template"}, b"s": {"state"}, b"l": {"label"}, b"all": set()}[dim]
    given = {n for n, v in (("facility", facility), ("state", top), ("template", template),
                            ("agent", agent), ("label", label)) if v}
    residual = bool(given - covered)
    items: list[WorkflowOut] = []
    last: bytes | None = None
    more, matched = False, 0
    for k, _ in store.scan("index", prefix, start=start, seek=first, stop=stop):
        if len(items) >= limit and not residual:
            more = True
            break
        w = _record(store, k)
        if w is None or (residual and not wanted(w)):
            continue
        matched += 1
        if len(items) < limit:
            items.append(w)
            last = k
        else:
            more = True
    if residual:
        count = matched + (0 if start is None else _before(store, prefix, start, first, wanted))
    else:
        count = store.count("index", prefix, start=first, stop=stop)
    return Page[WorkflowOut](items=items, count=count,
                             next_cursor=encode_cursor(last) if more and last else None)


def _before(store: HubStore, prefix: bytes, cursor: bytes, first: bytes | None,
            wanted: Any) -> int:
    """Matches up to the cursor (a residual-filtered count spans the whole range)."""
    n = 0
    for k, _ in store.scan("index", prefix, seek=first, stop=cursor + b"\0"):
        w = _record(store, k)
        n += w is not None and wanted(w)
    return n


def _record(store: HubStore, index_key: bytes) -> WorkflowOut | None:
    *_, facility, wid = index_key.split(b"\0")
    raw = store.get("workflows", key(facility, wid))
    return None if raw is None else WorkflowOut.model_validate_json(raw)


def page_of(store: HubStore, family: str, prefix: bytes, model: type[Any], cursor: str | None,
            limit: int, keep: Callable[[Any], bool] | None = None) -> Page[Any]:
    """A page of the JSON records of ``family`` under ``prefix``, in key order; ``keep``
    filters them (then the count reads the prefix: for small families, conflicts)."""
    _check_limit(limit)
    start = decode_cursor(cursor, prefix)
    if keep is None:
        rows = [(k, model.model_validate_json(v))
                for k, v in store.scan(family, prefix, start=start, limit=limit + 1)]
        count = store.count(family, prefix)
    else:
        rows, count = [], 0
        for k, v in store.scan(family, prefix):
            item = model.model_validate_json(v)
            if keep(item):
                count += 1
                if (start is None or k > start) and len(rows) <= limit:
                    rows.append((k, item))
    more = len(rows) > limit
    return Page[Any](items=[item for _, item in rows[:limit]], count=count,
                     next_cursor=encode_cursor(rows[limit - 1][0]) if more else None)
