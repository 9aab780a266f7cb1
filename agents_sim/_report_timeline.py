"""One pass over a run's event logs: who was busy when, and when things began and ended.

Both the KPIs (``agents_sim._report_kpis``) and the plots (``agents_sim._report_plots``) read
a ``Timeline``; it is made from events alone, so it serves a virtual run, a live run and a
recorded edge store the same. Times are the events' HLC physical part (``hlc >> 16`` ms) in
seconds — never the wall clock — and every collection keeps the logs' order (facilities
sorted by name, each in ``seq`` order), so the same logs always give the same timeline.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from edge_runtime.core import Event

__all__ = ["BusySpan", "Timeline", "build_timeline", "event_time"]

STEP_ENDS = {"step_done": "done", "step_failed": "failed", "step_requeued": "released",
             "step_skipped": "released", "step_decided": "done"}
"""Events that end the attempt an agent holds, and the outcome each gives its span."""

WORKFLOW_ENDS = {"workflow_completed": "completed", "workflow_failed": "failed",
                 "workflow_cancelled": "cancelled"}
"""Events that end a workflow, and the outcome each records."""


def event_time(event: Event) -> float:
    """The event's time in seconds: the physical part of its HLC (ms)."""
    return (event.hlc >> 16) / 1000


@dataclass(frozen=True, slots=True)
class BusySpan:
    """An agent holding one attempt of a step, from its assignment to its end."""

    facility: str
    """Where the step ran."""
    agent: str
    """The agent that held it."""
    kind: str
    """The agent's kind (from its ``agent_joined``); ``unknown`` if the log never said."""
    workflow_id: str
    """The step's workflow."""
    step: str
    """The step's id."""
    start: float
    """When the step was assigned (s)."""
    end: float
    """When the attempt ended, or the end of the run if it had not (s)."""
    outcome: str
    """``done``, ``failed``, ``released`` (requeued, skipped, workflow ended) or ``open``."""


@dataclass(slots=True)
class Timeline:
    """What the KPIs and plots need from a run's events."""

    start: float | None = None
    """The run's first moment: the earliest event (s); ``None`` for an empty log."""
    end: float | None = None
    """The run's last moment: ``start + duration_s`` if given, else the latest event (s)."""
    events: dict[str, int] = field(default_factory=dict)
    """How many events each facility logged."""
    agents: dict[tuple[str, str], str] = field(default_factory=dict)
    """Each agent's kind, by (facility, agent id): the latest ``agent_joined`` says."""
    spans: list[BusySpan] = field(default_factory=list)
    """Every attempt an agent held, in the order they ended."""
    step_latencies: list[float] = field(default_factory=list)
    """``step_assigned`` → ``step_done`` of each step finished by an agent (s)."""
    created: dict[tuple[str, str], float] = field(default_factory=dict)
    """When each workflow was created, by (facility, workflow id)."""
    deadlines: dict[tuple[str, str], float] = field(default_factory=dict)
    """The deadline of each workflow that had one (s, the cores' clock)."""
    ended: dict[tuple[str, str], tuple[str, float]] = field(default_factory=dict)
    """How and when each workflow ended: (``completed``/``failed``/``cancelled``, s)."""
    completions: list[tuple[str, float]] = field(default_factory=list)
    """(facility, time) of each ``workflow_completed``, in time order."""
    workflow_latencies: list[float] = field(default_factory=list)
    """``workflow_created`` → ``workflow_completed`` of each completed workflow (s)."""

    @property
    def duration(self) -> float:
        """The run's length (s); 0 for an empty log."""
        if self.start is None or self.end is None:
            return 0.0
        return max(self.end - self.start, 0.0)


def check_logs(events_by_facility: Mapping[str, Sequence[Event]]) -> None:
    """``TypeError`` naming the first entry that is not a facility's list of events."""
    if not isinstance(events_by_facility, Mapping):
        raise TypeError("events_by_facility: expected a mapping of facility -> events, got "
                        f"{type(events_by_facility).__name__}")
    for facility, events in events_by_facility.items():
        if not isinstance(facility, str):
            raise TypeError(f"events_by_facility: facility names are strings, got {facility!r}")
        if isinstance(events, (str, bytes)) or not isinstance(events, Sequence):
            raise TypeError(f"events_by_facility[{facility!r}]: expected a sequence of Event, "
                            f"got {type(events).__name__}")
        for i, ev in enumerate(events):
            if not isinstance(ev, Event):
                raise TypeError(f"events_by_facility[{facility!r}][{i}]: expected an Event, "
                                f"got {type(ev).__name__}")


class _Builder:
    """Walks one facility's log after another, filling a ``Timeline``."""

    def __init__(self, timeline: Timeline) -> None:
        self.tl = timeline
        self.open: dict[tuple[str, str], dict[str, dict[str, float]]] = {}
        """Held attempts: (facility, workflow) -> step -> {agent: assigned at}."""
        self.assigned: dict[tuple[str, str, str], float] = {}
        """When the current attempt of each step was assigned (for the step's latency)."""

    def facility(self, name: str, events: Sequence[Event]) -> None:
        """Read one facility's log, in order."""
        for ev in events:
            self.event(name, ev)

    def event(self, fac: str, ev: Event) -> None:
        """Take in one event (data it does not expect is passed over, never an error)."""
        t = event_time(ev)
        d: Mapping[str, Any] = ev.data if isinstance(ev.data, Mapping) else {}
        wid = ev.workflow_id
        kind = ev.kind
        if kind == "agent_joined" and isinstance(d.get("agent"), str):
            self.tl.agents[(fac, d["agent"])] = str(d.get("kind", "unknown"))
        if wid is None:
            return
        step = d.get("step")
        if kind == "step_assigned" and isinstance(step, str) and isinstance(d.get("agent"), str):
            self._close(fac, wid, step, t, "released")  # a stale attempt, if any
            self.open.setdefault((fac, wid), {})[step] = {d["agent"]: t}
            self.assigned[(fac, wid, step)] = t
        elif kind == "team_assigned" and isinstance(step, str) and isinstance(
                d.get("team"), Mapping):
            self._close(fac, wid, step, t, "released")
            self.open.setdefault((fac, wid), {})[step] = {
                str(a): t for a in d["team"].values()}
            self.assigned[(fac, wid, step)] = t
        elif kind == "member_dropped" and isinstance(step, str):
            held = self.open.get((fac, wid), {}).get(step, {})
            if d.get("agent") in held:
                self._span(fac, str(d["agent"]), wid, step, held.pop(str(d["agent"])), t,
                           "released")
        elif kind in STEP_ENDS and isinstance(step, str):
            at = self.assigned.pop((fac, wid, step), None)
            if kind == "step_done" and at is not None:
                self.tl.step_latencies.append(t - at)
            self._close(fac, wid, step, t, STEP_ENDS[kind])
        elif kind == "workflow_created":
            self.tl.created[(fac, wid)] = t
            deadline = d.get("deadline")
            if isinstance(deadline, (int, float)) and not isinstance(deadline, bool):
                self.tl.deadlines[(fac, wid)] = float(deadline)
        elif kind in WORKFLOW_ENDS:
            self._workflow_end(fac, wid, t, WORKFLOW_ENDS[kind])
        elif kind == "workflow_recovered":
            self.tl.ended.pop((fac, wid), None)

    def _workflow_end(self, fac: str, wid: str, t: float, outcome: str) -> None:
        """The workflow ended: what its agents still held is released."""
        self.tl.ended[(fac, wid)] = (outcome, t)
        for step in list(self.open.get((fac, wid), {})):
            self.assigned.pop((fac, wid, step), None)
            self._close(fac, wid, step, t, "released")
        if outcome == "completed":
            self.tl.completions.append((fac, t))
            created = self.tl.created.get((fac, wid))
            if created is not None:
                self.tl.workflow_latencies.append(t - created)

    def _close(self, fac: str, wid: str, step: str, t: float, outcome: str) -> None:
        """End the attempt held of ``step`` (every member of a team), if any."""
        steps = self.open.get((fac, wid))
        if steps is None or step not in steps:
            return
        for agent, start in steps.pop(step).items():
            self._span(fac, agent, wid, step, start, t, outcome)
        if not steps:
            del self.open[(fac, wid)]

    def _span(self, fac: str, agent: str, wid: str, step: str, start: float, end: float,
              outcome: str) -> None:
        kind = self.tl.agents.get((fac, agent), "unknown")
        self.tl.spans.append(BusySpan(fac, agent, kind, wid, step, start, end, outcome))

    def finish(self) -> None:
        """Attempts still held at the end of the run count as busy until then."""
        end = self.tl.end if self.tl.end is not None else 0.0
        for (fac, wid), steps in self.open.items():
            for step, held in steps.items():
                for agent, start in held.items():
                    self._span(fac, agent, wid, step, start, max(end, start), "open")
        self.open.clear()
        self.tl.completions.sort(key=lambda c: c[1])


def build_timeline(events_by_facility: Mapping[str, Sequence[Event]],
                   duration_s: float | None = None) -> Timeline:
    """The timeline of a run (facilities in name order); ``duration_s`` fixes its end at
    ``start + duration_s`` instead of the last event."""
    check_logs(events_by_facility)
    tl = Timeline()
    firsts = [event_time(evs[0]) for evs in events_by_facility.values() if evs]
    lasts = [max(event_time(e) for e in evs) for evs in events_by_facility.values() if evs]
    if firsts:
        tl.start = min(firsts)
        tl.end = tl.start + duration_s if duration_s is not None else max(lasts)
    builder = _Builder(tl)
    for name in sorted(events_by_facility):
        tl.events[name] = len(events_by_facility[name])
        builder.facility(name, events_by_facility[name])
    builder.finish()
    return tl
