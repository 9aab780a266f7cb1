"""The soak's verdicts, computed after the run from what it recorded.

Each check returns its figures and appends a sentence to ``failures`` for anything wrong:

* ``stream_check`` — the ``edge/events`` messages received equal the store's log read
  after the edge stopped: seqs 1..N without a gap, byte for byte, duplicates identical;
* ``effects_check`` — every step report an agent sent (seen on the broker) is in the log
  (its ``eid``), and the log holds no step report the agents did not send;
* ``memory_check`` — the edge's resident memory after warm-up grows less than the limit.
"""

from __future__ import annotations

import statistics
from typing import Any

from topics import EdgeEvent, ProtocolError, decode_edge_event

__all__ = ["RSS_GROWTH_LIMIT_PCT", "effects_check", "memory_check", "quantiles",
           "stream_check"]

RSS_GROWTH_LIMIT_PCT = 10.0
"""Largest growth of the edge's RSS after warm-up that passes (issue 13: < 10 %)."""
_STEP_REPORTS = ("step_accepted", "step_started", "step_progress", "step_done", "step_failed")


def quantiles(values: list[float], name: str, scale: float = 1000.0, unit: str = "ms"
              ) -> dict[str, Any]:
    """``{name}_p50_{unit}``, ``_p99_``, ``_max_`` and ``{name}_samples`` of ``values``
    (seconds, multiplied by ``scale``)."""
    ordered = sorted(values)

    def q(p: float) -> float | None:
        if not ordered:
            return None
        return round(ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))] * scale, 2)

    return {f"{name}_p50_{unit}": q(0.50), f"{name}_p99_{unit}": q(0.99),
            f"{name}_max_{unit}": q(1.0), f"{name}_samples": len(ordered)}


def stream_check(received: list[tuple[bytes, float]], stored: list[bytes],
                 failures: list[str]) -> tuple[dict[str, Any], dict[int, tuple[EdgeEvent, float]]]:
    """Compare the received ``edge/events`` messages with the store's payloads (seq i at
    index i - 1). Returns the figures and the received events by seq, with the moment the
    first copy arrived."""
    first: dict[int, tuple[bytes, float]] = {}
    events: dict[int, tuple[EdgeEvent, float]] = {}
    duplicates = 0
    for payload, at in received:
        try:
            event = decode_edge_event(payload)
        except ProtocolError as exc:
            failures.append(f"an edge/events message does not decode: {exc.reason}: {exc}")
            continue
        if event.seq in first:
            duplicates += 1
            if first[event.seq][0] != payload:
                failures.append(f"edge event seq {event.seq} arrived twice with different bytes")
            continue
        first[event.seq] = (payload, at)
        events[event.seq] = (event, at)
    seqs = sorted(first)
    missing = [s for s in range(1, len(stored) + 1) if s not in first]
    extra = [s for s in seqs if s > len(stored) or s < 1]
    differ = [s for s in range(1, len(stored) + 1) if s in first and first[s][0] != stored[s - 1]]
    if missing:
        failures.append(f"{len(missing)} of the store's {len(stored)} events never arrived on "
                        f"edge/events (first {missing[:5]})")
    if extra:
        failures.append(f"{len(extra)} edge/events seqs are not in the store (first {extra[:5]})")
    if differ:
        failures.append(f"{len(differ)} events arrived with other bytes than the store holds "
                        f"(first {differ[:5]})")
    if not stored:
        failures.append("the store holds no event")
    return {
        "edge_events_stored": len(stored),
        "edge_events_received": len(first),
        "edge_events_duplicates": duplicates,
        "edge_events_missing": len(missing),
        "edge_events_contiguous": bool(seqs) and seqs == list(range(1, len(stored) + 1))
        and not differ,
    }, events


def effects_check(step_reports_sent: set[str], stored: dict[int, tuple[EdgeEvent, float]],
                  refused: dict[str, str], failures: list[str]) -> dict[str, Any]:
    """Every step report an agent sent (event ids; ``refused`` ones excepted) is an event of
    the log naming it (``data.eid``), and every such event of the log was sent."""
    logged = {str(e.data.get("eid")) for e, _ in stored.values()
              if e.kind in _STEP_REPORTS and "eid" in e.data}
    expected = step_reports_sent - set(refused)
    absent = sorted(expected - logged)
    unknown = sorted(logged - step_reports_sent)
    if absent:
        failures.append(f"{len(absent)} step reports the edge acknowledged have no event in "
                        f"its log (first {absent[:5]})")
    if unknown:
        failures.append(f"{len(unknown)} step events of the log name reports nobody was seen "
                        f"sending (first {unknown[:5]})")
    return {"step_reports_sent": len(step_reports_sent), "step_reports_logged": len(logged)}


def memory_check(samples: list[tuple[float, int]], warmup_s: float, load_s: float,
                 failures: list[str]) -> dict[str, Any]:
    """The edge's RSS over the run (``(seconds since the load started, KiB)`` samples).

    Growth compares the median of the samples in the first window after warm-up with the
    median of those in the last window of the load; a window is a third of the post-warm-up
    time, at most 30 s. Medians, not single samples: the allocator's and the garbage
    collector's breathing is not growth."""
    window = min(30.0, max(1.0, (load_s - warmup_s) / 3))
    early = [kb for t, kb in samples if warmup_s <= t < warmup_s + window]
    late = [kb for t, kb in samples if load_s - window <= t <= load_s]
    mb = 1024.0
    figures: dict[str, Any] = {
        "edge_rss_mb_start": round(samples[0][1] / mb, 1) if samples else None,
        "edge_rss_mb_max": round(max(kb for _, kb in samples) / mb, 1) if samples else None,
        "edge_rss_window_s": round(window, 1),
    }
    if not early or not late:
        failures.append(f"too few memory samples after warm-up ({len(early)} early, "
                        f"{len(late)} late)")
        return figures
    warm, end = statistics.median(early), statistics.median(late)
    growth = (end / warm - 1) * 100
    figures.update(edge_rss_mb_warm=round(warm / mb, 1), edge_rss_mb_end=round(end / mb, 1),
                   edge_rss_growth_pct=round(growth, 2))
    if growth >= RSS_GROWTH_LIMIT_PCT:
        failures.append(f"the edge's RSS grew {growth:.1f} % after warm-up "
                        f"({warm / mb:.1f} → {end / mb:.1f} MB), limit {RSS_GROWTH_LIMIT_PCT} %")
    step = max(1, len(samples) // 12)
    figures["edge_rss_series_mb"] = [[round(t), round(kb / mb, 1)] for t, kb in samples[::step]]
    return figures
