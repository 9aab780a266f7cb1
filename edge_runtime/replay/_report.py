"""The report of a replay (``edge_runtime.replay``): where its log parts from the recorded
one, each workflow's outcome on both sides, refusals and totals."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from edge_runtime.core import Event
from topics import pack_edge_events

__all__ = ["ReplayReport", "compare", "workflow_outcomes"]

_TERMINAL = ("completed", "failed", "cancelled")
_STATES = frozenset(("created", "started", "paused", "pausing", "resumed", "recovered",
                     "cancelling", *_TERMINAL))
"""Workflow events whose kind (less ``workflow_``) is the workflow's state from then on."""


@dataclass
class ReplayReport:
    """Where a replay's outcome differs from the recorded run's (``to_dict`` is JSON-able)."""

    store: str
    facility: str
    inputs: int
    """Recorded inputs fed (boot records not counted)."""
    boots: int
    """Times the recorded edge started (boot records)."""
    recorded_events: int
    replayed_events: int
    first_difference: dict[str, Any] | None
    """The first seq where the logs part: its recorded and replayed event (kind, workflow),
    ``None`` on a side whose log ended, and the ``fields`` that differ (``kind``, ``hlc``,
    ``workflow``, ``data.<key>``); ``None`` if the logs are byte-identical."""
    workflows: dict[str, dict[str, Any]]
    """Workflow id → ``{"recorded": outcome, "replayed": outcome}``, for those that differ."""
    totals: dict[str, dict[str, int]]
    """``{"recorded": …, "replayed": …}``: workflows by final state, and events."""
    refusals: dict[str, Any]
    """Inputs the core refused, recorded and replayed, and the first input where they part."""
    timers: dict[str, int]
    """Recorded timer firings fed and skipped; timers the replay fired on its own."""
    changed: list[str] = field(default_factory=list)
    """What the replay was told to change (templates, strategies, options)."""
    events: list[Event] = field(default_factory=list, repr=False)
    """The replayed log (for KPI reports); not in ``to_dict``."""

    @property
    def identical(self) -> bool:
        """No difference: byte-identical logs and the same inputs refused."""
        return self.first_difference is None and self.refusals["first_difference"] is None

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-able data."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
               if f.name != "events"}
        return out | {"identical": self.identical}

    def summary(self) -> str:
        """A few lines for a person."""
        head = (f"replay of {self.store} (facility {self.facility}): {self.inputs} inputs, "
                f"{self.boots} boot(s)" + (f"; changed {', '.join(self.changed)}"
                                           if self.changed else ""))
        if self.identical:
            return f"{head}\nno difference: {self.recorded_events} events, byte-identical"
        lines = [head, f"DIFFERENT: {self.recorded_events} events recorded, "
                       f"{self.replayed_events} replayed"]
        first = self.first_difference
        if first is not None:
            fields = f" ({', '.join(first['fields'])} differ)" if first["fields"] else ""
            lines.append(f"first difference at seq {first['seq']}: recorded "
                         f"{_said(first['recorded'])}, replayed {_said(first['replayed'])}"
                         + fields)
        for side in ("recorded", "replayed"):
            t = self.totals[side]
            lines.append(f"  {side}: " + ", ".join(f"{k} {v}" for k, v in t.items()))
        for wf, both in list(self.workflows.items())[:10]:
            lines.append(f"  {wf}: {_outcome(both['recorded'])} -> {_outcome(both['replayed'])}")
        if len(self.workflows) > 10:
            lines.append(f"  … and {len(self.workflows) - 10} more workflows differ")
        r = self.refusals
        if r["first_difference"] is not None:
            lines.append(f"refusals: {r['recorded']} recorded, {r['replayed']} replayed; first "
                         f"differs at input {r['first_difference']['input']}")
        return "\n".join(lines)


def _said(event: dict[str, Any] | None) -> str:
    return "nothing (log ended)" if event is None else f"{event['kind']} ({event['workflow']})"


def _outcome(o: dict[str, Any] | None) -> str:
    if o is None:
        return "absent"
    return (f"{o['state']} at {o['finished_at']}, agents {','.join(o['agents']) or '-'}, "
            f"{o['attempts']} attempts")


def workflow_outcomes(events: Iterable[Event]) -> dict[str, dict[str, Any]]:
    """Each workflow's outcome in a log: final state, completion time (unix seconds, from
    the terminal event's hlc), agents assigned (sorted) and assignments (attempts)."""
    out: dict[str, dict[str, Any]] = {}
    for e in events:
        if e.workflow_id is None:
            continue
        o = out.get(e.workflow_id)
        if o is None:
            o = out[e.workflow_id] = {"state": "unknown", "finished_at": None, "agents": [],
                                      "attempts": 0}
        name = e.kind.removeprefix("workflow_")
        if e.kind.startswith("workflow_") and name in _STATES:
            o["state"] = name
            o["finished_at"] = (e.hlc >> 16) / 1000 if name in _TERMINAL else None
        elif e.kind == "step_assigned":
            o["attempts"] += 1
            agent = e.data.get("agent")
            if isinstance(agent, str) and agent not in o["agents"]:
                o["agents"] = sorted([*o["agents"], agent])
    return out


def _totals(outcomes: Mapping[str, Mapping[str, Any]], events: int) -> dict[str, int]:
    totals = dict.fromkeys(_TERMINAL, 0)
    for o in outcomes.values():
        if o["state"] in totals:
            totals[o["state"]] += 1
    return totals | {"workflows": len(outcomes), "events": events}


def compare(directory: str, facility: str, counts: tuple[int, int], recorded: list[Event],
            recorded_payloads: list[bytes], replayed: list[Event],
            refused: list[tuple[int, str | None, str | None]], timers: dict[str, int],
            changed: list[str]) -> ReplayReport:
    """The report of a replay: its log (``replayed``) against the recorded one; ``counts``:
    inputs fed and boot records; ``refused``: (input, recorded, replayed refusal)."""
    inputs, boots = counts
    payloads = pack_edge_events(replayed, facility)  # ProtocolError: the caller's to say
    first: dict[str, Any] | None = None
    for i in range(max(len(payloads), len(recorded_payloads))):
        a = recorded_payloads[i] if i < len(recorded_payloads) else None
        b = payloads[i] if i < len(payloads) else None
        if a != b:
            was = recorded[i] if i < len(recorded) else None
            now = replayed[i] if i < len(replayed) else None
            first = {"seq": i + 1, "recorded": _brief(was), "replayed": _brief(now),
                     "fields": _fields(was, now)}
            break
    before, after = workflow_outcomes(recorded), workflow_outcomes(replayed)
    differ = {wf: {"recorded": before.get(wf), "replayed": after.get(wf)}
              for wf in sorted(before.keys() | after.keys()) if before.get(wf) != after.get(wf)}
    parted = next(({"input": i, "recorded": r, "replayed": p}
                   for i, r, p in refused if r != p), None)
    refusals = {"recorded": sum(r is not None for _i, r, _p in refused),
                "replayed": sum(p is not None for _i, _r, p in refused),
                "first_difference": parted}
    return ReplayReport(
        store=directory, facility=facility, inputs=inputs, boots=boots,
        recorded_events=len(recorded), replayed_events=len(replayed),
        first_difference=first, workflows=differ,
        totals={"recorded": _totals(before, len(recorded)),
                "replayed": _totals(after, len(replayed))},
        refusals=refusals, timers=dict(timers), changed=changed, events=replayed)


def _brief(event: Event | None) -> dict[str, Any] | None:
    return None if event is None else {"seq": event.seq, "kind": event.kind,
                                       "workflow": event.workflow_id}


def _fields(a: Event | None, b: Event | None) -> list[str]:
    """What differs between two events at one seq: ``kind``, ``workflow``, ``hlc`` or
    ``data.<key>``; empty if one side's log ended."""
    if a is None or b is None:
        return []
    out = [name for name, x, y in (("kind", a.kind, b.kind), ("hlc", a.hlc, b.hlc),
                                   ("workflow", a.workflow_id, b.workflow_id)) if x != y]
    return out + [f"data.{k}" for k in sorted(a.data.keys() | b.data.keys(), key=str)
                  if a.data.get(k) != b.data.get(k)]
