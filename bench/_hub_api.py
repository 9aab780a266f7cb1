"""The hub benchmark's API phase: concurrent clients reading workflows from a running
``fleetflow hub`` (its own process, uvicorn, the real app) whose store the ingest phase
filled.

Each client is a thread with one keep-alive ``http.client`` connection. A client sends its
next request ``1 / per_client_rate`` seconds after the previous one was *due* (not after it
returned), so a slow reply does not lower the offered load; a latency is measured from the
moment the request was due (coordinated omission included), to the end of the response
body. ``per_client_rate=None``: each client sends as soon as its previous reply is in
(closed loop: the server's saturation, latency = queueing). The baseline is ``GET /health``
by the same clients at the same rate: what the HTTP stack and the clients cost alone.
"""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
from typing import Any

__all__ = ["cache_tiers", "load", "percentile"]


def percentile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile (nearest rank) of ``values``, or ``None`` if there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _client(port: int, token: str, paths: list[str], seconds: float,
            per_client_rate: float | None, seed: int, start: float,
            latencies: list[float], errors: list[str]) -> None:
    rng = random.Random(seed)
    headers = {"Authorization": f"Bearer {token}"}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    gap = None if per_client_rate is None else 1.0 / per_client_rate
    due = start + (0.0 if gap is None else rng.random() * gap)  # spread the first requests
    end = start + seconds
    try:
        while True:
            now = time.perf_counter()
            if gap is None:
                due = now
            elif due > now:
                time.sleep(due - now)
            if due >= end:
                return
            try:
                conn.request("GET", rng.choice(paths), headers=headers)
                resp = conn.getresponse()
                resp.read()
            except (OSError, http.client.HTTPException) as exc:
                errors.append(type(exc).__name__)
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                continue
            done = time.perf_counter()
            if resp.status != 200:
                errors.append(str(resp.status))
            else:
                latencies.append(done - due)
            if gap is not None:
                due += gap
    finally:
        conn.close()


def load(port: int, token: str, paths: list[str], *, clients: int, seconds: float,
         per_client_rate: float | None) -> dict[str, Any]:
    """Run ``clients`` clients over ``paths`` for ``seconds``; latencies and throughput."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[str] = []
    start = time.perf_counter() + 0.2
    threads = [threading.Thread(target=_client, args=(port, token, paths, seconds,
                                                      per_client_rate, i, start,
                                                      latencies[i], errors), daemon=True)
               for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 60)
    flat = [x * 1000 for part in latencies for x in part]
    p50, p99 = percentile(flat, 0.50), percentile(flat, 0.99)
    return {"requests": len(flat), "errors": len(errors),
            "error_kinds": sorted(set(errors))[:5],
            "per_s": round(len(flat) / seconds, 1),
            "p50_ms": None if p50 is None else round(p50, 3),
            "p99_ms": None if p99 is None else round(p99, 3),
            "max_ms": round(max(flat), 3) if flat else None}


def cache_tiers(body: bytes) -> dict[str, Any]:
    """``GET /api/v1/performance/cache`` → flat figures per tier (``cache_<tier>_…``)."""
    tiers = json.loads(body)["tiers"]
    out: dict[str, Any] = {}
    for name, t in tiers.items():
        for field in ("hits", "misses", "p50_ms", "p99_ms", "target_ms"):
            out[f"cache_{name}_{field}"] = t.get(field)
    return out
