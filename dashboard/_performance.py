"""The Performance page's tables (plain functions): cache tiers against their targets
(``/performance/cache``: memory < 1 ms, warm < 10 ms, storage < 100 ms p99, docs/hub.md
"Cache tiers"), the hub's system figures (``/performance/system``), and events per second
per facility from two readings of each facility's ``applied_seq``."""

from __future__ import annotations

from typing import Any

__all__ = ["TIERS", "facility_rates", "size", "system_rows", "tier_rows", "verdict"]

TIERS = ("memory", "warm", "storage")


def verdict(meets: bool | None) -> str:
    """A tier's p99 against its target, in words."""
    if meets is None:
        return "— no reads yet"
    return "✅ meets" if meets else "❌ misses"


def tier_rows(cache: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per tier: hits, misses, hit rate (%), p50 and p99 (ms) against the target."""
    rows = []
    tiers = cache.get("tiers", {})
    for name in [*TIERS, *sorted(set(tiers) - set(TIERS))]:
        t = tiers.get(name)
        if t is None:
            continue
        reads = int(t.get("hits", 0)) + int(t.get("misses", 0))
        rows.append({
            "tier": name, "hits": int(t.get("hits", 0)), "misses": int(t.get("misses", 0)),
            "hit rate %": round(100 * t["hits"] / reads, 1) if reads else None,
            "p50 ms": t.get("p50_ms"), "p99 ms": t.get("p99_ms"),
            "target p99 ms": t.get("target_ms"), "p99 vs target": verdict(t.get("meets_target")),
            "what": t.get("what", ""),
        })
    return rows


def size(n: float) -> str:
    """Bytes in B, KiB, MiB or GiB."""
    if n < 1024:
        return f"{n:.0f} B"
    for unit in ("KiB", "MiB"):
        n /= 1024
        if n < 1024:
            return f"{n:.1f} {unit}"
    return f"{n / 1024:.1f} GiB"


def system_rows(system: dict[str, Any]) -> list[dict[str, str]]:
    """The hub's figures as (figure, value) rows, in a supervisor's words."""
    api = system.get("api", {})
    queues = system.get("queues", {})
    commands = system.get("commands", {})
    broken = system.get("replica_errors") or {}
    figures = [
        ("events applied per second (last 10 s)", system.get("ingest_events_per_s")),
        ("events applied in all", system.get("events_applied")),
        ("duplicates dropped", system.get("duplicates_dropped")),
        ("replays asked of edges", system.get("replays_asked")),
        ("link to the broker", "connected" if system.get("link_connected") else "down"),
        ("inbox queue", queues.get("inbox")),
        ("command outbox (pending)", queues.get("outbox")),
        ("events held behind a gap", queues.get("buffered_events")),
        ("commands sent / resent / settled",
         f"{commands.get('sent', 0)} / {commands.get('resent', 0)} / {commands.get('settled', 0)}"),
        ("store on disk", size(float(system.get("store_bytes") or 0))),
        ("API requests served", api.get("requests")),
        ("API server errors (5xx)", api.get("server_errors")),
        ("API latency p50 / p99 (ms)", f"{api.get('p50_ms')} / {api.get('p99_ms')}"),
        ("facility replicas broken", ", ".join(f"{f}: {why}" for f, why in broken.items())
         or "none"),
    ]
    return [{"figure": k, "value": "—" if v is None else str(v)} for k, v in figures]


def facility_rates(before: dict[str, Any] | None, after: dict[str, Any],
                   dt: float) -> list[dict[str, Any]]:
    """Per facility: events per second between two ``/performance/system`` readings ``dt``
    seconds apart (``None`` without an earlier one), lag, online, stale."""
    rows = []
    old = (before or {}).get("facilities", {})
    for f, m in sorted(after.get("facilities", {}).items()):
        rate = None
        if f in old and dt > 0:
            rate = round(max(0, m.get("applied_seq", 0) - old[f].get("applied_seq", 0)) / dt, 2)
        rows.append({"facility": f, "events/s": rate, "applied seq": m.get("applied_seq"),
                     "lag": m.get("lag"), "online": bool(m.get("online")),
                     "stale": bool(m.get("stale"))})
    return rows
