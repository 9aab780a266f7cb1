"""The text of ``fleetflow wf list`` (a table) and ``fleetflow wf show`` (one workflow:
its state path, steps with agents and what they wait for, outputs, the audit trail).

Pure functions of the API's JSON answers, so they are tested without a hub.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from fleetflow._wf_format import clock, event_line, paint, state_path

__all__ = ["render_show", "render_table", "step_agent", "waiting_for"]

_DONE = ("done", "skipped", "compensated")


def render_table(items: Sequence[Mapping[str, Any]], count: int | None = None) -> str:
    """Workflows as an aligned table, newest last as the API sends them; a footer when
    the page holds fewer than ``count``."""
    if not items:
        return "no workflows match"
    header = ("ID", "FACILITY", "TEMPLATE", "STATE", "PRI", "STEPS", "CREATED")
    rows = [header]
    for w in items:
        steps = w.get("steps") or []
        done = sum(1 for s in steps if s.get("state") in _DONE)
        rows.append((str(w.get("id", "?")), str(w.get("facility", "?")),
                     str(w.get("template", "?")), state_path(str(w.get("state", "?"))),
                     str(w.get("priority", 0)), f"{done}/{len(steps)}",
                     clock(w.get("created_at"))))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip() for r in rows]
    if count is not None and count > len(items):
        lines.append(f"({len(items)} of {count}; --limit shows more)")
    return "\n".join(lines)


def step_agent(step: Mapping[str, Any], trail: Sequence[Mapping[str, Any]] = ()) -> str | None:
    """Who works (or worked) on a step: the API's ``agent`` while it runs, else the agent
    its outputs name, else the last agent the audit trail assigned it."""
    if step.get("agent"):
        return str(step["agent"])
    outputs = step.get("outputs") or {}
    if isinstance(outputs, Mapping) and outputs.get("agent"):
        return str(outputs["agent"])
    for e in trail:  # newest first
        data = e.get("data") or {}
        if (e.get("kind") in ("step_assigned", "step_done")
                and data.get("step") == step.get("id") and data.get("agent")):
            return str(data["agent"])
    return None


def waiting_for(step: Mapping[str, Any], steps: Sequence[Mapping[str, Any]],
                template: Mapping[str, Any] | None) -> list[str]:
    """The steps a pending step still waits for, by its template's ``after`` (empty when
    the template is unknown or nothing holds it back)."""
    if step.get("state") not in ("pending", "waiting", "blocked") or not template:
        return []
    spec = next((s for s in template.get("steps") or [] if s.get("id") == step.get("id")), None)
    if spec is None:
        return []
    states = {s.get("id"): s.get("state") for s in steps}
    # A sync step waits for its participants as for its `after` steps.
    before = [*(spec.get("after") or []), *(spec.get("participants") or [])]
    return [a for a in dict.fromkeys(before) if states.get(a) not in _DONE]


def _outputs(outputs: Any) -> str:
    if not isinstance(outputs, Mapping) or not outputs:
        return ""
    shown = {k: v for k, v in outputs.items() if k != "agent"}
    return ", ".join(f"{k}={json.dumps(v, default=str)}" for k, v in shown.items())


def _step_lines(w: Mapping[str, Any], trail: Sequence[Mapping[str, Any]],
                template: Mapping[str, Any] | None, colour: bool) -> list[str]:
    steps = w.get("steps") or []
    if not steps:
        return ["  (none)"]
    width = max(len(str(s.get("id", ""))) for s in steps)
    state_width = max(len(state_path(str(s.get("state", "?")))) for s in steps)
    awaiting = set(w.get("awaiting_operator") or [])
    lines = []
    for s in steps:
        state = str(s.get("state", "?"))
        tone = ("green" if state == "done" else "red" if state == "failed"
                else "cyan" if state in ("executing", "assigned") else None)
        parts = [str(s.get("id", "?")).ljust(width), str(s.get("kind", "?")).ljust(6),
                 paint(state_path(state).ljust(state_width), tone, colour)]
        if s.get("attempt"):
            parts.append(f"attempt {s['attempt']}")
        if agent := step_agent(s, trail):
            parts.append(f"by {agent}")
        if state == "executing" and s.get("progress"):
            parts.append(f"{float(s['progress']):.0%}")
        if wait := waiting_for(s, steps, template):
            parts.append("waiting for " + ", ".join(wait))
        for key in ("waiting_for", "reason"):  # a step's own account, where the API gives one
            if s.get(key):
                parts.append(f"{key.replace('_', ' ')}: {s[key]}")
        if s.get("error"):
            parts.append(paint(f"error: {s['error']}", "red", colour))
        if s.get("id") in awaiting:
            parts.append(paint("awaits an operator (fleetflow wf recover)", "yellow", colour))
        lines.append("  " + "  ".join(parts))
        if out := _outputs(s.get("outputs")):
            lines.append("  " + " " * width + "  outputs: " + out)
    return lines


def _trail_who(e: Mapping[str, Any]) -> str:
    """``who`` and ``why`` of a hub command's reply in the audit trail."""
    hub = (e.get("data") or {}).get("hub_command")
    if not isinstance(hub, Mapping):
        return ""
    who = f" — by {hub.get('who') or '?'}"
    return who + (f": {hub['reason']}" if hub.get("reason") else "")


def render_show(w: Mapping[str, Any], trail: Sequence[Mapping[str, Any]], total: int | None,
                template: Mapping[str, Any] | None, colour: bool = False) -> str:
    """One workflow in full: ``trail`` newest first (``total``: the trail's length;
    ``None``: no events section)."""
    state = str(w.get("state", "?"))
    tone = ("green" if state == "completed" else "red" if state in ("failed", "cancelled")
            else None)
    lines = [paint(f"{w.get('id')}  {w.get('template')} v{w.get('version', '?')}", "bold",
                   colour) + f"  facility {w.get('facility')}  priority {w.get('priority', 0)}",
             f"state     {paint(state_path(state), tone, colour)}"]
    if w.get("reason"):
        lines.append(f"reason    {w['reason']}")
    ended = f"  ended {clock(w['ended_at'])}" if w.get("ended_at") else ""
    if w.get("ended_at") and w.get("created_at"):
        ended += f" ({float(w['ended_at']) - float(w['created_at']):.1f} s)"
    lines.append(f"created   {clock(w.get('created_at'))}{ended}")
    for key, label in (("data", "data"), ("labels", "labels"), ("depends_on", "after"),
                       ("awaiting_operator", "operator"), ("checkpoints", "checkpts")):
        if w.get(key):
            lines.append(f"{label.ljust(9)} {json.dumps(w[key], default=str)}")
    lines.append("steps")
    lines.extend(_step_lines(w, trail, template, colour))
    if total is None:  # not asked for (--events 0)
        return "\n".join(lines)
    shown = f"newest {len(trail)} of {total}" if total > len(trail) else "all"
    lines.append(f"events ({shown}, newest first)")
    if not trail:
        lines.append("  (none)")
    for e in trail:
        lines.append("  " + event_line(e, colour) + _trail_who(e))
    return "\n".join(lines)
