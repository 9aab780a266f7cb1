"""The hub's own figures on ``/metrics``: what ``/api/v1/performance/system`` reports, as
Prometheus series, read once per scrape from ``HubService.system_stats`` — each facility's
lag, staleness, edge link and replica health, events applied, replays asked, commands sent
and resent, the outbox and the broker link. The shipped alert rules watch them
(deploy/prometheus/fleetflow-alerts.yml, docs/operations.md)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["HubFigures"]


class HubFigures(Collector):
    """A collector over ``read()`` (``system_stats``); a failing read yields nothing, so a
    scrape never fails because the hub is stopping."""

    def __init__(self, read: Callable[[], dict[str, Any]]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        try:
            s = self._read()
        except Exception:
            return
        facilities: dict[str, dict[str, Any]] = s.get("facilities") or {}
        broken: dict[str, Any] = s.get("replica_errors") or {}
        per_facility = (
            ("fleetflow_hub_facility_lag_events", "Events the edge has that the hub has not "
             "applied yet", lambda f: f.get("lag", 0)),
            ("fleetflow_hub_facility_stale", "1 while the hub's view of the facility is not "
             "known current (offline edge, missing events)", lambda f: int(bool(f.get("stale")))),
            ("fleetflow_hub_facility_online", "1 while the facility's edge is online (its "
             "retained edge/status)", lambda f: int(bool(f.get("online")))),
        )
        for name, doc, value in per_facility:
            family = GaugeMetricFamily(name, doc, labels=["facility"])
            for fid, f in sorted(facilities.items()):
                family.add_metric([fid], float(value(f)))
            yield family
        family = GaugeMetricFamily(
            "fleetflow_hub_replica_broken", "1 when the hub's replica of the facility stopped "
            "on an error (its events no longer applied)", labels=["facility"])
        for fid in sorted(set(facilities) | set(broken)):
            family.add_metric([fid], 1.0 if fid in broken else 0.0)
        yield family
        yield CounterMetricFamily("fleetflow_hub_events_applied", "Edge events the hub "
                                  "applied", value=float(s.get("events_applied", 0)))
        yield CounterMetricFamily("fleetflow_hub_replays_asked", "Replays the hub asked edges "
                                  "for (a gap in their streams)",
                                  value=float(s.get("replays_asked", 0)))
        commands = CounterMetricFamily("fleetflow_hub_commands", "Hub commands to edges, by "
                                       "what became of them", labels=["outcome"])
        for outcome, total in sorted((s.get("commands") or {}).items()):
            commands.add_metric([str(outcome)], float(total))
        yield commands
        queues: dict[str, Any] = s.get("queues") or {}
        yield GaugeMetricFamily("fleetflow_hub_outbox_depth", "Commands stored and not yet "
                                "settled by their edge", value=float(queues.get("outbox", 0)))
        yield GaugeMetricFamily("fleetflow_hub_link_connected", "1 while the hub's broker "
                                "link is up and subscribed",
                                value=float(bool(s.get("link_connected"))))
