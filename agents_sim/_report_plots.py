"""The report's PNG plots, drawn on matplotlib's Agg canvas (no pyplot, no display).

Each plot reads a ``Timeline`` (``agents_sim._report_timeline``) or the ``Kpis``; an empty
run gives the same files, each saying there was nothing to plot. Times on the axes are
seconds since the run's first event.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from agents_sim._report_kpis import Kpis
from agents_sim._report_timeline import Timeline

__all__ = ["PLOTS", "write_plots"]

PLOTS = ("throughput.png", "utilisation.png", "latency.png", "gantt.png")
"""The files ``write_plots`` writes, in order."""

_OUTCOME_COLOURS = {"done": "tab:green", "failed": "tab:red", "released": "tab:orange",
                    "open": "tab:gray"}
_GANTT_ROWS = 60
"""At most this many agents get a row in the Gantt chart (the busiest; the title says so)."""
_LINES = 10
"""At most this many facilities get their own line in the throughput plot."""
_METADATA = {"Software": None}
"""No matplotlib version in the PNGs: the same run gives the same bytes."""


def _empty(fig: Figure, title: str) -> None:
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.text(0.5, 0.5, "no events in the log: nothing to plot", ha="center", va="center",
            transform=ax.transAxes)
    ax.set_axis_off()


def _throughput(fig: Figure, tl: Timeline) -> None:
    """Cumulative workflows completed over time, per facility and in all."""
    ax = fig.add_subplot()
    start = tl.start or 0.0
    facilities = sorted(tl.events)
    drawn = facilities if len(facilities) <= _LINES else []  # else the total alone
    for fac in drawn:
        times = [t - start for f, t in tl.completions if f == fac]
        ax.step([0.0, *times, tl.duration], [0, *range(1, len(times) + 1), len(times)],
                where="post", label=fac)
    if len(facilities) > 1:
        times = [t - start for _, t in tl.completions]
        ax.step([0.0, *times, tl.duration], [0, *range(1, len(times) + 1), len(times)],
                where="post", label="all", color="black", linewidth=2)
    ax.set_title("Workflows completed over time" + (
        "" if drawn else f" ({len(facilities)} facilities, in all)"))
    ax.set_xlabel("time since start (s)")
    ax.set_ylabel("workflows completed")
    ax.legend(loc="upper left")


def _utilisation(fig: Figure, kpis: Kpis) -> None:
    """Utilisation of each agent kind (busy time / available time)."""
    ax = fig.add_subplot()
    kinds = list(kpis.utilisation_by_kind)
    values = [kpis.utilisation_by_kind[k] or 0.0 for k in kinds]
    bars = ax.bar(kinds, values, color="tab:blue")
    ax.bar_label(bars, labels=[f"{v:.0%}" for v in values])
    ax.set_ylim(0, 1.05)
    ax.set_title("Agent utilisation by kind")
    ax.set_ylabel("busy share of the run")
    if not kinds:
        ax.text(0.5, 0.5, "no agents in the log", ha="center", transform=ax.transAxes)


def _latency(fig: Figure, tl: Timeline) -> None:
    """Histograms of step and workflow latency."""
    for i, (values, what) in enumerate(((tl.step_latencies, "step (assigned → done)"),
                                        (tl.workflow_latencies,
                                         "workflow (created → completed)"))):
        ax = fig.add_subplot(1, 2, i + 1)
        if values:
            ax.hist(values, bins=min(30, max(5, len(values) // 5)), color="tab:purple")
        else:
            ax.text(0.5, 0.5, "none finished", ha="center", transform=ax.transAxes)
        ax.set_title(f"{what} latency")
        ax.set_xlabel("seconds")
        ax.set_ylabel("count")


def _gantt(fig: Figure, tl: Timeline) -> None:
    """Each agent's steps as bars over time, coloured by how the attempt ended."""
    ax = fig.add_subplot()
    start = tl.start or 0.0
    busy: dict[tuple[str, str], float] = {}
    for s in tl.spans:
        busy[(s.facility, s.agent)] = busy.get((s.facility, s.agent), 0.0) + s.end - s.start
    chosen = sorted(sorted(busy, key=lambda a: (-busy[a], a))[:_GANTT_ROWS])
    row = {a: i for i, a in enumerate(chosen)}
    bars: dict[tuple[str, int], list[tuple[float, float]]] = {}
    least = tl.duration / 1000  # an instant's attempt still shows
    for s in tl.spans:
        y = row.get((s.facility, s.agent))
        if y is not None:
            bars.setdefault((s.outcome, y), []).append(
                (s.start - start, max(s.end - s.start, least)))
    for outcome, colour in _OUTCOME_COLOURS.items():
        for y in range(len(chosen)):  # one call per row and outcome: fast on long runs
            if (outcome, y) in bars:
                ax.broken_barh(bars[(outcome, y)], (y - 0.4, 0.8), color=colour)
        ax.plot([], [], color=colour, linewidth=6, label=outcome)
    kinds = {(s.facility, s.agent): s.kind for s in tl.spans}
    ax.set_yticks(range(len(chosen)), [f"{f}/{a} ({kinds[(f, a)]})" for f, a in chosen],
                  fontsize=7)
    ax.set_xlim(0, max(tl.duration, 1e-3))
    more = f" (the {len(chosen)} busiest of {len(busy)})" if len(busy) > len(chosen) else ""
    ax.set_title(f"Agents' steps{more}")
    ax.set_xlabel("time since start (s)")
    ax.legend(loc="upper right", fontsize=7)


def write_plots(tl: Timeline, kpis: Kpis, out_dir: Path) -> list[Path]:
    """Draw the plots of ``PLOTS`` into ``out_dir``; their paths."""
    titles = ("Workflows completed over time", "Agent utilisation by kind",
              "Latency", "Agents' steps")
    paths = []
    for name, title in zip(PLOTS, titles, strict=True):
        # A Figure on its own Agg canvas: no pyplot, so no global state, no GUI.
        height = 6.0
        if name == "gantt.png":  # a row per agent, readable however many
            rows = min(len({(s.facility, s.agent) for s in tl.spans}), _GANTT_ROWS)
            height = max(height, 1.5 + 0.22 * rows)
        fig = Figure(figsize=(10, height), dpi=100)
        FigureCanvasAgg(fig)
        if kpis.empty:
            _empty(fig, title)
        elif name == "throughput.png":
            _throughput(fig, tl)
        elif name == "utilisation.png":
            _utilisation(fig, kpis)
        elif name == "latency.png":
            _latency(fig, tl)
        else:
            _gantt(fig, tl)
        fig.tight_layout()
        path = out_dir / name
        fig.savefig(path, format="png", metadata=_METADATA)
        paths.append(path)
    return paths
