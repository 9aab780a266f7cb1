"""What a workflow's steps are waiting for, and when they ran: derived from the workflow
(``WorkflowOut``), its template (``GET /templates``) and its events, no Streamlit.

A step that has not started waits for one thing at a time, in this order: the workflow
itself (pending behind its dependencies, paused, waiting for an operator), the steps
before it (``after``, ``inputs``, a sync step's ``participants``), its resources, then —
ready or allocating — a free agent of its kind with its capabilities; a sync step waits
for its participants' agents at the barrier, a wait step for its signal or its time.
"""

from __future__ import annotations

from typing import Any

from dashboard._workflows import event_time

__all__ = ["coordination_waits", "template_of", "timeline_rows", "waiting_for"]

_FINISHED = frozenset({"done", "skipped", "compensated"})
_RUNNING = frozenset({"assigned", "preparing", "executing", "validating", "cleanup",
                      "cancelling"})
_AGENT_KINDS = frozenset({"robot", "human", "ai"})


def template_of(templates: list[dict[str, Any]], name: str,
                version: int | None = None) -> dict[str, Any] | None:
    """The template ``name`` at ``version`` (``None``: the newest) from ``GET /templates``."""
    found = [t for t in templates if t.get("name") == name
             and (version is None or t.get("version") == version)]
    return max(found, key=lambda t: int(t.get("version", 1))) if found else None


def _before(spec: dict[str, Any]) -> list[str]:
    """The steps a template step waits for (``after``, ``inputs`` sources, participants)."""
    out = list(spec.get("after") or [])
    out += [str(src).partition(".")[0] for src in (spec.get("inputs") or {}).values()]
    out += list(spec.get("participants") or [])
    return list(dict.fromkeys(out))


def _agent_needed(spec: dict[str, Any]) -> str:
    caps = ", ".join(spec.get("capabilities") or [])
    return f"a free {spec['kind']} agent" + (f" with capabilities {caps}" if caps else "")


def _names(agents: list[str]) -> str:
    return ", ".join(agents)


def coordination_waits(coordination: list[dict[str, Any]], workflow_id: str
                       ) -> dict[str, str]:
    """Step id → who its coordination waits for, from ``GET /coordination``: a sync
    point's awaited agents, an auction's awaited bids, a vote's awaited voters."""
    out: dict[str, str] = {}
    for c in coordination:
        for sp in c.get("sync_points", []):
            if sp.get("workflow_id") != workflow_id:
                continue
            if sp.get("awaited"):
                arrived = f" ({_names(sp['arrived'])} arrived)" if sp.get("arrived") else ""
                out[sp["step_id"]] = f"{_names(sp['awaited'])} at the sync point{arrived}"
            elif sp.get("steps_to_finish"):
                out[sp["step_id"]] = (f"steps {_names(sp['steps_to_finish'])} to finish "
                                      "before the sync point")
        for a in c.get("auctions", []):
            if a.get("workflow_id") != workflow_id:
                continue
            if a.get("phase") == "escalated":
                out[a["step_id"]] = "an operator: its auction found no agent"
            elif a.get("awaited"):
                out[a["step_id"]] = (f"bids from {_names(a['awaited'])} "
                                     f"(auction round {a.get('round', 1)})")
        for v in c.get("votes", []):
            if v.get("workflow_id") == workflow_id and v.get("result") is None \
                    and v.get("awaited"):
                out[v["step_id"]] = f"votes from {_names(v['awaited'])}"
    return out


def waiting_for(wf: dict[str, Any], template: dict[str, Any] | None,
                notes: dict[str, str] | None = None) -> dict[str, str]:
    """Step id → what it waits for now, for each step that has not finished or started;
    ``notes`` (``coordination_waits``) name who, where a protocol is waiting."""
    specs = {s["id"]: s for s in (template or {}).get("steps", [])}
    states = {s["id"]: s["state"] for s in wf.get("steps", [])}
    top = wf["state"].split(".", 1)[0]
    awaiting = set(wf.get("awaiting_operator") or [])
    held = [f"{d.get('facility') + '/' if d.get('facility') else ''}{d['source']} "
            f"({d.get('type', 'sequential')})"
            for d in wf.get("dependencies", []) if d.get("status") == "waiting"]
    held += [f"{src} (sequential)" for src in wf.get("depends_on", [])]
    out: dict[str, str] = {}
    for step in wf.get("steps", []):
        sid, state = step["id"], step["state"]
        spec = specs.get(sid, {"kind": step["kind"]})
        if sid in awaiting:
            out[sid] = f"an operator: it failed ({step.get('error') or 'error'})"
        elif state in _FINISHED or (state in _RUNNING and spec["kind"] != "sync"):
            continue
        elif top == "pending":
            out[sid] = ("the workflow's dependencies: " + ", ".join(held)) if held \
                else "the workflow to start"
        elif top in ("paused", "pausing"):
            out[sid] = "the workflow to resume"
        elif state == "failed":
            out[sid] = f"a retry ({step.get('error') or 'failed'})"
        elif open_ := [p for p in _before(spec) if states.get(p) not in _FINISHED
                       and not (spec["kind"] == "sync" and states.get(p) in _RUNNING)]:
            out[sid] = "steps " + ", ".join(open_) + " to finish"
        elif spec["kind"] == "sync":
            out[sid] = ("the agents of " + ", ".join(spec.get("participants") or [])
                        + " at the sync point")
        elif spec["kind"] == "wait":
            out[sid] = (f"the signal {spec['signal']}" if spec.get("signal")
                        else f"{spec.get('duration_s') or 0:g} s to pass")
        elif state == "pending" and spec.get("resources"):
            out[sid] = "resources " + ", ".join(spec["resources"]) + " to be free"
        elif spec["kind"] in _AGENT_KINDS:
            needs = _agent_needed(spec)
            if spec.get("resources"):
                needs += " and resources " + ", ".join(spec["resources"])
            # The edge's own reason when it gives one ("no robot agent with capabilities
            # lift has joined", a held resource …), else what the template asks for.
            out[sid] = step.get("waiting_for") or needs
        else:
            out[sid] = "its turn"
        if notes and sid in notes and sid in out and sid not in awaiting \
                and top not in ("pending", "paused", "pausing"):
            out[sid] = notes[sid]
    return out


_END = {"step_done": "done", "step_failed": "failed", "step_skipped": "skipped"}


def timeline_rows(events: list[dict[str, Any]], now: float) -> list[dict[str, Any]]:
    """One bar per step run: ``{step, start, end, outcome}`` in Unix seconds, from the
    events (``step_started`` → ``step_done``/``failed``/``skipped``; from ``step_assigned``
    until a start is seen); a step still running ends at ``now``."""
    runs: list[dict[str, Any]] = []
    open_runs: dict[str, dict[str, Any]] = {}
    for ev in events:
        step = (ev.get("data") or {}).get("step")
        t = event_time(ev)
        if not isinstance(step, str) or t is None:
            continue
        kind = ev["kind"]
        if kind in ("step_assigned", "step_started"):
            run = open_runs.get(step)
            if run is None:
                run = {"step": step, "start": t, "end": now, "outcome": "running",
                       "started": False}
                open_runs[step] = run
                runs.append(run)
            if kind == "step_started" and not run["started"]:
                run["start"], run["started"] = t, True
        elif kind in _END:
            run = open_runs.pop(step, None)
            if run is None:  # skipped (or done) without ever starting: a point
                runs.append({"step": step, "start": t, "end": t, "outcome": _END[kind]})
            else:
                run["end"], run["outcome"] = max(t, run["start"]), _END[kind]
    return [{k: r[k] for k in ("step", "start", "end", "outcome")} for r in runs]
