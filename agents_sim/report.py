"""The simulator's report: KPIs from event logs, as JSON and PNG plots (issue 11, item 4).

Pure over events: a virtual run's ``SimResult``, a live run's collected events and an
edge's recorded store all report the same way.

>>> from agents_sim.report import kpis
>>> kpis({}).empty
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agents_sim._report_kpis import (
    Kpis,
    Latency,
    Throughput,
    check_duration,
    kpis,
    kpis_of,
    percentile,
)
from agents_sim._report_plots import PLOTS, write_plots
from agents_sim._report_timeline import BusySpan, Timeline, build_timeline, check_logs
from edge_runtime.core import Event

__all__ = [
    "PLOTS",
    "BusySpan",
    "Kpis",
    "Latency",
    "Throughput",
    "Timeline",
    "build_timeline",
    "events_of",
    "kpis",
    "percentile",
    "write_report",
]

KPIS_FILE = "kpis.json"


def _duration_of(result: Any) -> float | None:
    """A run's length if ``result`` says: its ``duration_s``, else the simulated seconds it
    took (``SimResult.sim_s``: arrivals and the drain), else its scenario's ``duration_s``."""
    for holder, name in ((result, "duration_s"), (result, "sim_s"),
                         (getattr(result, "scenario", None), "duration_s")):
        value = getattr(holder, name, None)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and (
                math.isfinite(value) and value > 0):
            return float(value)
    return None


def events_of(result_or_events: Any) -> Mapping[str, Sequence[Event]]:
    """The events by facility of a run: the mapping itself, or an object's ``.events``
    (``SimResult``). ``TypeError`` naming ``result_or_events`` for anything else."""
    events = result_or_events
    if not isinstance(events, Mapping):
        events = getattr(result_or_events, "events", None)
    if not isinstance(events, Mapping):
        raise TypeError("result_or_events: expected a mapping of facility -> events or an "
                        f"object with .events, got {type(result_or_events).__name__}")
    check_logs(events)
    return events


def write_report(result_or_events: Any, out_dir: str | Path, *,
                 duration_s: float | None = None) -> list[Path]:
    """Write ``kpis.json`` and the plots of ``PLOTS`` into ``out_dir`` (made if missing);
    their paths, the JSON first. ``duration_s`` defaults to the result's ``duration_s``,
    its ``sim_s`` (a ``SimResult``) or its ``scenario.duration_s``, else the span of the
    events. Bad input raises before anything is written."""
    events = events_of(result_or_events)
    if duration_s is None:
        duration_s = _duration_of(result_or_events)
    check_duration(duration_s)
    timeline = build_timeline(events, duration_s)
    report = kpis_of(timeline, events)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"out_dir: {out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    path = out / KPIS_FILE
    path.write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return [path, *write_plots(timeline, report, out)]
