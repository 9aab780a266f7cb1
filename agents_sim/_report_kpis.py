"""The KPIs of a run, from its events alone (issue 11, item 4).

``kpis(events_by_facility)`` is a pure function: a virtual run, a live run and an edge's
recorded store give their KPIs the same way, and the same logs always give the same
``Kpis`` (its JSON byte for byte). Each KPI's definition is in docs/simulator.md, "Reports
and KPIs"; the model's attribute docstrings say the same in short.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence

from pydantic import BaseModel, ConfigDict

from agents_sim._report_timeline import Timeline, build_timeline
from edge_runtime.core import Event

__all__ = ["Kpis", "Latency", "Throughput", "check_duration", "kpis", "kpis_of", "percentile"]

RECOVERY_KINDS = {"checkpoint_restored": "restore", "compensation_started": "rollback",
                  "operator_needed": "operator_needed", "step_requeued": "reassign"}
"""Recovery events counted by kind (``step_retry`` is split in ``kpis``: automatic or not)."""


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) of ``values`` by linear interpolation between the
    closest ranks (numpy's default); ``None`` when there are none."""
    if not 0 <= q <= 100:
        raise ValueError(f"q: a percentile is between 0 and 100, got {q}")
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return round(xs[lo] + (xs[hi] - xs[lo]) * (pos - lo), 6)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


class Latency(_Model):
    """A latency distribution (seconds)."""

    count: int
    """How many were measured."""
    p50: float | None
    """Median; ``None`` when ``count`` is 0."""
    p95: float | None
    """95th percentile."""
    p99: float | None
    """99th percentile."""
    mean: float | None
    """Arithmetic mean."""
    max: float | None
    """Largest."""

    @classmethod
    def of(cls, values: Sequence[float]) -> Latency:
        """The distribution of ``values``."""
        return cls(count=len(values), p50=percentile(values, 50), p95=percentile(values, 95),
                   p99=percentile(values, 99),
                   mean=round(sum(values) / len(values), 6) if values else None,
                   max=round(max(values), 6) if values else None)


class Throughput(_Model):
    """Workflows completed."""

    completed: int
    """``workflow_completed`` events."""
    per_hour: float | None
    """``completed`` / run duration in hours; ``None`` for a run of no duration."""


class Kpis(_Model):
    """The KPIs of one run (all facilities); ``model_dump_json()`` is the report's JSON."""

    empty: bool
    """The logs held no event at all: every other figure is zero or ``None``."""
    duration_s: float
    """The run's length: ``duration_s`` if given, else last event - first event (s)."""
    events: int
    """Events in all facilities' logs."""
    events_per_s: float | None
    """``events`` / ``duration_s``."""
    events_per_s_by_facility: dict[str, float | None]
    """Each facility's events / ``duration_s``."""
    throughput: Throughput
    """Workflows completed, all facilities."""
    throughput_by_facility: dict[str, Throughput]
    """Workflows completed in each facility."""
    workflows: dict[str, int]
    """Workflows by outcome: ``created``, ``completed``, ``failed``, ``cancelled``, ``open``."""
    step_latency_s: Latency
    """``step_assigned`` → ``step_done`` of the attempt that finished, per step."""
    workflow_latency_s: Latency
    """``workflow_created`` → ``workflow_completed``, per completed workflow."""
    deadline_misses: int
    """Workflows with a deadline that did not complete by it (completed late, failed,
    cancelled, or still open when the run ended after it)."""
    deadline_at_risk: int
    """The core's ``deadline_at_risk`` conflicts (``conflict_detected`` with that rule)."""
    agents_by_kind: dict[str, int]
    """Agents seen (``agent_joined``), by kind."""
    utilisation_by_kind: dict[str, float | None]
    """Busy seconds of a kind's agents / (their number * ``duration_s``)."""
    busy_s_by_kind: dict[str, float]
    """Seconds agents of each kind held a step (assigned → done/failed/released)."""
    conflicts: int
    """``conflict_detected`` events."""
    conflicts_by_type: dict[str, int]
    """Conflicts by ``type`` (``safety``, ``resource``, ``temporal`` …)."""
    conflicts_by_strategy: dict[str, int]
    """Conflicts by the ``strategy`` chosen when detected (``stop``, ``priority`` …)."""
    conflicts_by_rule: dict[str, int]
    """Conflicts by ``rule`` (``person_in_robot_zone``, ``deadlock`` …)."""
    conflicts_resolved: int
    """``conflict_resolved`` events."""
    conflicts_escalated: int
    """``conflict_escalated`` events (an operator must act)."""
    deadlocks_avoided: int
    """``deadlock_detected`` events: each a wait-for cycle broken by releasing a victim."""
    recoveries_by_strategy: dict[str, int]
    """``retry`` (automatic ``step_retry``), ``operator_retry`` (``step_retry`` with
    ``fresh``), ``reassign`` (``step_requeued``), ``restore`` (``checkpoint_restored``),
    ``rollback`` (``compensation_started``), ``operator_needed``."""


def _rate(n: float, seconds: float) -> float | None:
    """``n`` per second of the run; ``None`` for a run of no duration."""
    return round(n / seconds, 6) if seconds > 0 else None


def _sorted(counter: Counter[str]) -> dict[str, int]:
    """A plain dict in key order: the JSON's order never depends on the log's."""
    return {k: counter[k] for k in sorted(counter)}


def check_duration(duration_s: float | None) -> None:
    """``TypeError``/``ValueError`` naming ``duration_s`` unless it is ``None`` or a positive
    finite number of seconds."""
    if duration_s is None:
        return
    if isinstance(duration_s, bool) or not isinstance(duration_s, (int, float)):
        raise TypeError(f"duration_s: expected a number of seconds, got {duration_s!r}")
    if not math.isfinite(duration_s) or duration_s <= 0:
        raise ValueError(f"duration_s: must be a positive finite number, got {duration_s}")


def _utilisation(tl: Timeline) -> tuple[dict[str, int], dict[str, float], dict[str, float | None]]:
    """Agents, busy seconds and utilisation, each by kind."""
    agents: Counter[str] = Counter(tl.agents.values())
    start = tl.start or 0.0
    end = tl.end or 0.0
    busy: dict[str, float] = dict.fromkeys(sorted(agents), 0.0)
    for span in tl.spans:  # clipped to the run: a given duration may end it early
        seconds = max(min(span.end, end) - max(span.start, start), 0.0)
        busy[span.kind] = busy.get(span.kind, 0.0) + seconds
    busy = {k: round(busy[k], 3) for k in sorted(busy)}  # times are whole ms
    util = {k: (round(busy[k] / (agents[k] * tl.duration), 6)
                if agents[k] and tl.duration > 0 else None) for k in busy}
    return _sorted(agents), busy, util


def _deadline_misses(tl: Timeline) -> int:
    """Workflows with a deadline that did not complete by it."""
    misses = 0
    end = tl.end if tl.end is not None else 0.0
    for key, deadline in tl.deadlines.items():
        outcome, at = tl.ended.get(key, ("open", end))
        if (outcome == "completed" and at > deadline) or (
                outcome in ("failed", "cancelled")) or (outcome == "open" and end > deadline):
            misses += 1
    return misses


def kpis(events_by_facility: Mapping[str, Sequence[Event]], *,
         duration_s: float | None = None) -> Kpis:
    """The KPIs of a run from each facility's events (in ``seq`` order). ``duration_s``:
    the run's length, if known (a scenario's); else the span of the events. ``TypeError`` /
    ``ValueError`` naming the argument for input that is not that."""
    check_duration(duration_s)
    return kpis_of(build_timeline(events_by_facility, duration_s), events_by_facility)


def kpis_of(tl: Timeline, events_by_facility: Mapping[str, Sequence[Event]]) -> Kpis:
    """The KPIs of logs already checked and read into ``tl`` (``build_timeline``)."""
    seconds = tl.duration
    by_type: Counter[str] = Counter()
    by_strategy: Counter[str] = Counter()
    by_rule: Counter[str] = Counter()
    recoveries: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    for name in sorted(events_by_facility):
        for ev in events_by_facility[name]:
            kind = ev.kind
            d = ev.data if isinstance(ev.data, Mapping) else {}
            counts[kind] += 1
            if kind == "conflict_detected":
                by_type[str(d.get("type"))] += 1
                by_strategy[str(d.get("strategy"))] += 1
                by_rule[str(d.get("rule"))] += 1
            elif kind == "step_retry":
                recoveries["operator_retry" if d.get("fresh") else "retry"] += 1
            elif kind in RECOVERY_KINDS:
                recoveries[RECOVERY_KINDS[kind]] += 1
    total = sum(tl.events.values())
    completed = Counter(fac for fac, _ in tl.completions)
    ended = Counter(outcome for outcome, _ in tl.ended.values())
    agents, busy, util = _utilisation(tl)
    return Kpis(
        empty=total == 0,
        duration_s=round(seconds, 6),
        events=total,
        events_per_s=_rate(total, seconds),
        events_per_s_by_facility={f: _rate(tl.events[f], seconds) for f in sorted(tl.events)},
        throughput=Throughput(completed=len(tl.completions),
                              per_hour=_rate(len(tl.completions) * 3600, seconds)),
        throughput_by_facility={f: Throughput(completed=completed[f],
                                              per_hour=_rate(completed[f] * 3600, seconds))
                                for f in sorted(tl.events)},
        workflows={"created": len(tl.created), "completed": ended["completed"],
                   "failed": ended["failed"], "cancelled": ended["cancelled"],
                   "open": len(tl.created) - sum(1 for k in tl.created if k in tl.ended)},
        step_latency_s=Latency.of(tl.step_latencies),
        workflow_latency_s=Latency.of(tl.workflow_latencies),
        deadline_misses=_deadline_misses(tl),
        deadline_at_risk=by_rule["deadline_at_risk"],
        agents_by_kind=agents,
        utilisation_by_kind=util,
        busy_s_by_kind=busy,
        conflicts=counts["conflict_detected"],
        conflicts_by_type=_sorted(by_type),
        conflicts_by_strategy=_sorted(by_strategy),
        conflicts_by_rule=_sorted(by_rule),
        conflicts_resolved=counts["conflict_resolved"],
        conflicts_escalated=counts["conflict_escalated"],
        deadlocks_avoided=counts["deadlock_detected"],
        recoveries_by_strategy=_sorted(recoveries),
    )
