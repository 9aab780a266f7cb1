"""The API's own metrics, in a registry of its own (so two apps in one process, as in the
tests, never collide): requests by route template and status, their latency, open
WebSockets; and counters the hub keeps itself, read at each scrape (``count_by``).
``/metrics`` serves them to Prometheus; ``summary()`` feeds ``/api/v1/performance/system``
with recent p50/p99."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

__all__ = ["ApiMetrics"]

_RECENT = 2048
"""Latencies kept for the percentiles of ``summary``."""


class ApiMetrics:
    """Counters of one app; ``middleware`` records every HTTP request."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("fleetflow_hub_api_requests_total", "HTTP requests served",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram(
            "fleetflow_hub_api_request_seconds", "HTTP request latency", ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
            registry=self.registry)
        self.websockets = Gauge("fleetflow_hub_api_websockets", "Open WebSocket streams",
                                registry=self.registry)
        self._recent: collections.deque[float] = collections.deque(maxlen=_RECENT)
        self._count = 0
        self._errors = 0
        self._lock = threading.Lock()

    async def middleware(self, request: Request,
                         call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        """Time the request; label it by its route template, never the raw path (ids would
        make the label set grow without bound)."""
        start = time.perf_counter()
        response = await call_next(request)
        elapsed = time.perf_counter() - start
        route = request.scope.get("route")
        template = getattr(route, "path", "unmatched")
        self.requests.labels(request.method, template, str(response.status_code)).inc()
        self.latency.labels(request.method, template).observe(elapsed)
        with self._lock:
            self._recent.append(elapsed)
            self._count += 1
            self._errors += response.status_code >= 500
        return response

    def count_by(self, name: str, documentation: str, label: str,
                 read: Callable[[], Mapping[str, int]]) -> None:
        """Serve ``read()`` (label value → total so far) as the counter ``name`` at each
        scrape: for totals the hub keeps in its own thread (``read`` must be cheap)."""
        self.registry.register(_ReadCounter(name, documentation, label, read))

    def exposition(self) -> bytes:
        """The Prometheus text format of this registry."""
        return generate_latest(self.registry)

    def summary(self) -> dict[str, Any]:
        """Requests served, 5xx among them, and the p50/p99 (ms) of the recent ones."""
        with self._lock:
            recent = sorted(self._recent)
            count, errors = self._count, self._errors

        def pct(q: float) -> float | None:
            if not recent:
                return None
            return round(recent[min(len(recent) - 1, int(q * len(recent)))] * 1000, 3)

        return {"requests": count, "server_errors": errors, "p50_ms": pct(0.5),
                "p99_ms": pct(0.99), "window": len(recent)}


class _ReadCounter(Collector):
    """A labelled counter whose values are read from elsewhere when scraped."""

    def __init__(self, name: str, documentation: str, label: str,
                 read: Callable[[], Mapping[str, int]]) -> None:
        self._name, self._doc, self._label, self._read = name, documentation, label, read

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self._name, self._doc, labels=[self._label])
        try:
            values = dict(self._read())
        except Exception:  # a scrape must not fail because the hub is stopping
            values = {}
        for value, total in sorted(values.items()):
            family.add_metric([value], total)
        yield family
