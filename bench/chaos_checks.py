"""The chaos run's end checks: what the edges' logs, their live state and the hub say.

After a run every edge is stopped gracefully (it saves its live projection as a snapshot
at its last seq) and the hub still runs. Per facility:

- **replay**: the whole log folds to exactly the state the edge stopped with
  (``edge_runtime.shell.verify_log``) — through every ``kill -9`` and restart in between;
- **lost**: an event somebody received (the simulator's collector: the edge publishes only
  what is durable) that the log does not hold byte for byte at its seq, a gap in the log's
  seqs, a workflow whose ``create_workflow`` the edge acknowledged but never created, or
  a hub that applied fewer events than the log holds;
- **duplicated**: a seq received with two different events, a workflow created twice, a
  step done twice without being made ready again in between (an acknowledged agent
  report applied twice would do that);
- **outcome**: each workflow terminal, or waiting for a reason a person can act on (a step
  awaiting an operator, paused, a step's ``waiting_for``, a dependency not released yet);
- **hub = edge**: every workflow of the edge's (live and archived) is in the hub's view
  with the same state, steps, agents, attempts, dependencies and times, and no other.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from edge_runtime.core import WORKFLOW_TERMINAL, Core, Event, WorkflowView, encode_event
from edge_runtime.shell import EdgeConfig, verify_log
from edge_runtime.store import (
    EventStore,
    StoreError,
    WorkflowCache,
    decode_workflow_record,
    store_path,
)
from edge_runtime.templates import load_templates

__all__ = ["EdgeSetup", "RunCheck", "check_run"]

_PAGE = 500
_MAX_PROBLEMS = 200


@dataclass(frozen=True)
class EdgeSetup:
    """How one edge of the run was started (what its log is replayed with)."""

    facility: str
    data_dir: Path
    templates_dir: Path
    map_path: Path | None = None


@dataclass
class RunCheck:
    """The figures of the end checks, and a line for each thing found wrong."""

    workflows_total: int = 0
    workflows_terminal: int = 0
    workflows_waiting_operator: int = 0
    """Not terminal, with a reason a person can act on (see the module docstring)."""
    workflows_unexplained: int = 0
    events_total: int = 0
    events_observed: int = 0
    events_lost: int = 0
    events_duplicated: int = 0
    hub_edge_mismatches: int = 0
    replay_mismatches: int = 0
    problems: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    """``facility/workflow: why`` for each workflow not terminal (the first 50)."""

    def problem(self, line: str) -> None:
        """Keep one finding (the first ``_MAX_PROBLEMS``)."""
        if len(self.problems) < _MAX_PROBLEMS:
            self.problems.append(line)

    def figures(self) -> dict[str, Any]:
        """The counts, for the benchmark's JSON."""
        return {k: v for k, v in vars(self).items() if isinstance(v, int)}


def check_run(edges: Sequence[EdgeSetup], hub_url: str, hub_token: str,
              observed: Mapping[str, Sequence[Event]],
              created: Mapping[str, Collection[str]]) -> RunCheck:
    """Run every check on every stopped edge against the running hub (``hub_url``)."""
    check = RunCheck()
    with httpx.Client(base_url=hub_url.rstrip("/"), timeout=30.0,
                      headers={"Authorization": f"Bearer {hub_token}"}) as hub:
        applied = {f["id"]: f["applied_seq"] for f in _get(hub, "/api/v1/facilities")}
        for edge in edges:
            _replay(check, edge)
            views, last_seq = _edge_log(check, edge, observed.get(edge.facility, ()),
                                        set(created.get(edge.facility, ())))
            if applied.get(edge.facility, 0) != last_seq:
                check.hub_edge_mismatches += 1
                check.events_lost += max(0, last_seq - applied.get(edge.facility, 0))
                check.problem(f"{edge.facility}: the hub applied seq "
                              f"{applied.get(edge.facility)}, the log holds 1..{last_seq}")
            _outcomes(check, edge.facility, views)
            _compare(check, edge.facility, views, _hub_workflows(hub, edge.facility))
    return check


def _replay(check: RunCheck, edge: EdgeSetup) -> None:
    config = EdgeConfig(facility=edge.facility, data_dir=edge.data_dir,
                        templates_dir=edge.templates_dir, map_path=edge.map_path)
    try:
        _facility, _seq, difference = verify_log(config)
    except StoreError as exc:
        difference = str(exc)
    if difference is not None:
        check.replay_mismatches += 1
        check.problem(f"{edge.facility}: {difference}")


def _edge_log(check: RunCheck, edge: EdgeSetup, observed: Sequence[Event],
              created: set[str]) -> tuple[dict[str, WorkflowView], int]:
    """Check the log against what was received; every workflow's view as the edge left it."""
    with EventStore(store_path(edge.data_dir), None, read_only=True) as store:
        log = list(store.read())
        views = _views(store, edge)
    check.events_total += len(log)
    check.events_observed += len(observed)
    gaps = [n for n, e in enumerate(log, 1) if e.seq != n]
    if gaps:
        check.events_lost += len(gaps)
        check.problem(f"{edge.facility}: the log's seqs break at position {gaps[0]}")
    stored = {e.seq: encode_event(e) for e in log}
    seen: dict[int, bytes] = {}
    for event in observed:
        raw = encode_event(event)
        if stored.get(event.seq) != raw:
            check.events_lost += 1
            check.problem(f"{edge.facility}: event {event.seq} ({event.kind}) was published "
                          "but the log does not hold it")
        if seen.setdefault(event.seq, raw) != raw:
            check.events_duplicated += 1
            check.problem(f"{edge.facility}: seq {event.seq} was published twice, differently")
    _duplicates(check, edge.facility, log)
    made = {e.workflow_id for e in log if e.kind == "workflow_created"}
    for workflow_id in sorted(created - made):
        check.events_lost += 1
        check.problem(f"{edge.facility}: {workflow_id} was acknowledged but never created")
    return views, len(log)


def _duplicates(check: RunCheck, facility: str, log: list[Event]) -> None:
    """A workflow created twice; a step done twice with no ``step_ready`` in between."""
    created = Counter(e.workflow_id for e in log if e.kind == "workflow_created")
    for workflow_id, n in created.items():
        if n > 1:
            check.events_duplicated += n - 1
            check.problem(f"{facility}: {workflow_id} created {n} times")
    done: set[tuple[str | None, Any]] = set()
    for e in log:
        step = (e.workflow_id, e.data.get("step"))
        if e.kind == "step_ready":
            done.discard(step)
        elif e.kind == "step_done":
            if step in done:
                check.events_duplicated += 1
                check.problem(f"{facility}: step {step[1]} of {step[0]} done twice "
                              f"(again at seq {e.seq})")
            done.add(step)


def _views(store: EventStore, edge: EdgeSetup) -> dict[str, WorkflowView]:
    """Every workflow as the edge stopped with it: the live ones from its last state, the
    archived ones from their records."""
    snap = store.latest_snapshot()
    core = Core(edge.facility, load_templates(edge.templates_dir))
    if snap is not None:
        core = Core.restore(snap.data, edge.facility, load_templates(edge.templates_dir))
    views = dict(core.workflows())
    cache = WorkflowCache(store, decode_workflow_record, 16, live=core.workflow)
    for workflow_id in core.archived_workflows():
        view = cache.get(workflow_id)
        if view is not None:
            views[workflow_id] = view
    return views


def _waiting_reason(view: WorkflowView) -> str | None:
    """Why a workflow that did not end waits, if a person can tell."""
    if view.awaiting_operator:
        return f"steps {', '.join(view.awaiting_operator)} await an operator"
    if view.state.startswith("paused"):
        return f"paused ({view.reason or 'no reason given'})"
    reasons = [f"{s.id}: {s.waiting_for}" for s in view.steps.values() if s.waiting_for]
    if reasons:
        return "; ".join(reasons)
    held = [f"{d[0]}{' in ' + d[3] if d[3] else ''}" for d in view.dependencies
            if d[4] == "waiting"]
    if held:
        return f"waits for {', '.join(held)}"
    return None


def _outcomes(check: RunCheck, facility: str, views: Mapping[str, WorkflowView]) -> None:
    for workflow_id, view in sorted(views.items()):
        check.workflows_total += 1
        if view.state.split(".")[0] in WORKFLOW_TERMINAL:
            check.workflows_terminal += 1
            continue
        why = _waiting_reason(view)
        if why is None:
            check.workflows_unexplained += 1
            steps = ", ".join(f"{s.id}={s.state}" for s in view.steps.values())
            check.problem(f"{facility}/{workflow_id}: {view.state} with no reason ({steps})")
            continue
        check.workflows_waiting_operator += 1
        if len(check.waiting) < 50:
            check.waiting.append(f"{facility}/{workflow_id}: {why}")


def _comparable(w: Mapping[str, Any]) -> dict[str, Any]:
    """What the hub and the edge must agree on for one workflow (``waiting_for`` is derived
    when read, from agents that change without the workflow: not compared)."""
    return {
        "state": w["state"], "template": w["template"], "version": w["version"],
        "priority": w["priority"], "reason": w["reason"],
        "awaiting_operator": sorted(w["awaiting_operator"]),
        "created_at": w["created_at"], "ended_at": w["ended_at"],
        "steps": sorted((s["id"], s["state"], s["attempt"], s["agent"]) for s in w["steps"]),
        "dependencies": sorted((d["source"], d["status"]) for d in w["dependencies"]),
    }


def _edge_side(view: WorkflowView) -> dict[str, Any]:
    return _comparable({
        "state": view.state, "template": view.template, "version": view.version,
        "priority": view.priority, "reason": view.reason,
        "awaiting_operator": list(view.awaiting_operator),
        "created_at": view.created_at, "ended_at": view.ended_at,
        "steps": [{"id": s.id, "state": s.state, "attempt": s.attempt, "agent": s.agent}
                  for s in view.steps.values()],
        "dependencies": [{"source": d[0], "status": d[4]} for d in view.dependencies],
    })


def _compare(check: RunCheck, facility: str, views: Mapping[str, WorkflowView],
             hub: Mapping[str, Mapping[str, Any]]) -> None:
    for workflow_id in sorted(set(views) | set(hub)):
        if workflow_id not in hub or workflow_id not in views:
            check.hub_edge_mismatches += 1
            side = "the hub" if workflow_id not in hub else "the edge"
            check.problem(f"{facility}/{workflow_id}: not in {side}'s view")
            continue
        edge_side, hub_side = _edge_side(views[workflow_id]), _comparable(hub[workflow_id])
        if edge_side != hub_side:
            check.hub_edge_mismatches += 1
            differ = [k for k in edge_side if edge_side[k] != hub_side[k]]
            check.problem(f"{facility}/{workflow_id}: hub and edge differ in "
                          + ", ".join(f"{k} (edge {edge_side[k]!r}, hub {hub_side[k]!r})"
                                      for k in differ))


def _get(hub: httpx.Client, path: str, **params: Any) -> Any:
    response = hub.get(path, params=params)
    response.raise_for_status()
    return response.json()


def _hub_workflows(hub: httpx.Client, facility: str) -> dict[str, dict[str, Any]]:
    """Every workflow of ``facility`` in the hub's view, page by page."""
    found: dict[str, dict[str, Any]] = {}
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"facility": facility, "limit": _PAGE}
        if cursor:
            params["cursor"] = cursor
        page = _get(hub, "/api/v1/workflows", **params)
        found.update((w["id"], w) for w in page["items"])
        cursor = page.get("next_cursor")
        if not cursor or not page["items"]:
            return found
