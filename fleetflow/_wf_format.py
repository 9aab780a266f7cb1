"""How ``fleetflow wf`` and ``fleetflow up`` show the hub's events: one readable line each.

``event_line(event)`` turns one change-feed event (``EventOut`` as JSON: facility, seq,
hlc, kind, workflow_id, data) into ``12:03:04 north #57 north-wf-1 step_done fetch by
robot-3``; ``TRANSITIONS`` are the kinds ``up`` prints (the workflow's and its steps'
turning points, conflicts), ``NOISY`` those ``watch`` leaves out unless ``--all``.
Colour (ANSI) only when asked: ``use_colour(stream)`` says whether a stream is a
terminal and ``NO_COLOR`` is unset.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import IO, Any

__all__ = ["NOISY", "TERMINAL", "TRANSITIONS", "clock", "event_line", "hlc_time",
           "paint", "state_path", "use_colour"]

TRANSITIONS = frozenset({
    "workflow_created", "workflow_started", "workflow_completed", "workflow_failed",
    "workflow_cancelled", "workflow_paused", "workflow_resumed", "workflow_recovered",
    "step_assigned", "step_done", "step_failed", "step_retry", "step_skipped",
    "conflict_detected", "conflict_resolved", "conflict_escalated",
})
"""Kinds ``fleetflow up`` prints after ``ready``: what an operator watches for."""
NOISY = frozenset({"agent_updated", "step_progress", "agent_heartbeat"})
"""Kinds ``watch`` skips by default: periodic reports, several a second in a busy fleet."""
TERMINAL = frozenset({"workflow_completed", "workflow_failed", "workflow_cancelled"})
"""A workflow's last transition: ``watch --workflow`` stops after it."""

_RESET = "\033[0m"
_COLOURS = {"green": "\033[32m", "red": "\033[31m", "yellow": "\033[33m", "cyan": "\033[36m",
            "dim": "\033[2m", "bold": "\033[1m"}


def use_colour(stream: IO[str]) -> bool:
    """Colour only on a terminal, and never when ``NO_COLOR`` is set (no-color.org)."""
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def paint(text: str, colour: str | None, on: bool) -> str:
    """``text`` in ``colour`` when ``on``, else unchanged."""
    if not on or colour is None:
        return text
    return f"{_COLOURS[colour]}{text}{_RESET}"


def hlc_time(hlc: int) -> float:
    """The wall-clock seconds of a hybrid logical clock value (milliseconds << 16)."""
    return (hlc >> 16) / 1000.0


def clock(ts: float | None) -> str:
    """``HH:MM:SS`` in local time, or ``-``."""
    return time.strftime("%H:%M:%S", time.localtime(ts)) if ts else "-"


# A single right-pointing angle quote: reads as a path, not as a dot inside a state's name.
_PATH_SEP = " \u203a "


def state_path(state: str) -> str:
    """``active.executing.step_execution`` as a path: the levels joined by an angle quote."""
    return _PATH_SEP.join(state.split("."))


def _colour_of(kind: str, data: Mapping[str, Any]) -> str | None:
    if kind in ("workflow_completed", "step_done"):
        return "green"
    if kind.endswith("_failed") or kind == "workflow_cancelled" or _refused(kind, data):
        return "red"
    if kind.startswith("conflict_") or kind in ("step_retry", "workflow_paused"):
        return "yellow"
    if kind in ("workflow_created", "workflow_started", "workflow_resumed"):
        return "cyan"
    if kind in NOISY:
        return "dim"
    return None


def _refused(kind: str, data: Mapping[str, Any]) -> bool:
    result = data.get("result")
    return kind == "command_reply" and isinstance(result, dict) and bool(result.get("refused"))


def _short(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _detail(kind: str, data: Mapping[str, Any]) -> str:
    """What follows the kind: the step, who did it, and the one fact that matters."""
    parts: list[str] = []
    if step := data.get("step"):
        parts.append(str(step))
    if kind == "workflow_created":
        parts.append(f"{data.get('template', '?')} priority {data.get('priority', 0)}")
    elif kind == "command_reply":
        result = data.get("result") if isinstance(data.get("result"), dict) else {}
        parts.append(str(data.get("action", "?")))
        if result and result.get("refused"):
            parts.append(f"refused: {_short(result.get('reason') or result['refused'])}")
        elif result and result.get("state"):
            parts.append(f"→ {state_path(str(result['state']))}")
    elif kind == "agent_joined":
        parts.append(f"{data.get('agent', '?')} ({data.get('kind', '?')})")
    elif kind == "agent_updated":
        parts.append(f"{data.get('agent', '?')} {data.get('status', '')}".rstrip())
    elif kind.startswith("conflict_"):
        for key in ("conflict", "conflict_id", "id", "type", "rule", "resource", "resolution"):
            if data.get(key):
                parts.append(f"{key} {_short(data[key], 30)}")
    agents = data.get("agents")
    if (agent := data.get("agent")) and kind not in ("agent_joined", "agent_updated"):
        parts.append(f"by {agent}")
    elif not agent and agents and isinstance(agents, list):
        parts.append("by " + ", ".join(map(str, agents)))
    if kind == "step_progress" and "progress" in data:
        parts.append(f"{float(data['progress']):.0%}")
    for key in ("attempt", "error", "reason"):
        if data.get(key) and not (key == "attempt" and data[key] == 1):
            parts.append(f"{key}: {_short(data[key])}" if key != "attempt"
                         else f"attempt {data[key]}")
    if kind == "workflow_archived" and data.get("state"):
        parts.append(str(data["state"]))
    return " ".join(parts)


def event_line(event: Mapping[str, Any], colour: bool = False) -> str:
    """One event as ``HH:MM:SS facility #seq workflow kind detail`` (coloured when
    ``colour``). Never raises on an odd event: it shows what it has."""
    try:
        data = event.get("data") or {}
        if not isinstance(data, Mapping):
            data = {"value": data}
        kind = str(event.get("kind", "?"))
        hlc = event.get("hlc")
        when = clock(hlc_time(hlc)) if isinstance(hlc, int) else "--:--:--"
        head = f"{when} {event.get('facility', '?')} #{event.get('seq', '?')}"
        wid = event.get("workflow_id") or "-"
        detail = _detail(kind, data)
        body = f"{wid} {paint(kind, _colour_of(kind, data), colour)}"
        return f"{paint(head, 'dim', colour)} {body}{' ' + detail if detail else ''}"
    except Exception as exc:  # a display must not stop the stream over one odd event
        return f"(an event that could not be shown: {type(exc).__name__}: {exc})"
