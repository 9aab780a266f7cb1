"""Prometheus metrics of one edge runtime, in a registry of its own.

A per-instance ``CollectorRegistry`` (never the global one) lets several runtimes, and
the tests, live in one process without "duplicated timeseries" errors.

>>> from prometheus_client import generate_latest
>>> m = EdgeMetrics()
>>> m.rejects.labels(reason="schema").inc()
>>> b'fleetflow_edge_rejects_total{reason="schema"} 1.0' in generate_latest(m.registry)
True
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

__all__ = ["EdgeMetrics"]

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class EdgeMetrics:
    """The counters, histograms and gauges the shell updates; names start ``fleetflow_edge_``."""

    def __init__(self) -> None:
        self.registry: CollectorRegistry = CollectorRegistry(auto_describe=True)
        """The registry all of these live in; serve it with ``serve``."""
        r = self.registry
        self.inputs: Counter = Counter(
            "fleetflow_edge_inputs", "Inputs handed to the core, by kind.", ["kind"], registry=r)
        """``kind``: agent_state, agent_event, agent_conn, hub_command, timer, vda_*."""
        self.rejects: Counter = Counter(
            "fleetflow_edge_rejects", "Inbound messages rejected, by reason.", ["reason"],
            registry=r)
        """``reason``: the ``ErrorReport.reason`` sent on ``edge/errors``."""
        self.events: Counter = Counter(
            "fleetflow_edge_events", "Events made durable, by kind.", ["kind"], registry=r)
        """Every appended event (a transition of the projection) by its ``kind``."""
        self.transitions: Counter = Counter(
            "fleetflow_edge_transitions", "Workflow and step state changes applied.",
            registry=r)
        """State-machine transitions of workflows and steps (durable ones only)."""
        self.batch_size: Histogram = Histogram(
            "fleetflow_edge_batch_size", "Inputs per batch of the loop.",
            buckets=_BATCH_BUCKETS, registry=r)
        """Group-commit batch sizes."""
        self.commit_seconds: Histogram = Histogram(
            "fleetflow_edge_commit_seconds", "Time to make one batch's events durable.",
            buckets=_LATENCY_BUCKETS, registry=r)
        """One ``EventStore.append`` (one WriteBatch)."""
        self.publish_seconds: Histogram = Histogram(
            "fleetflow_edge_publish_seconds", "Time to hand one batch's publishes to MQTT.",
            buckets=_LATENCY_BUCKETS, registry=r)
        """From the first to the last ``publish`` call of a batch."""
        self.input_latency_seconds: Histogram = Histogram(
            "fleetflow_edge_input_latency_seconds",
            "From receipt of a message to its effects being published.",
            buckets=_LATENCY_BUCKETS, registry=r)
        """Receipt by the MQTT thread → publish of the batch's effects."""
        self.high_water_seq: Gauge = Gauge(
            "fleetflow_edge_high_water_seq", "Highest durable event seq.", registry=r)
        """The store's last seq."""
        self.active_workflows: Gauge = Gauge(
            "fleetflow_edge_active_workflows", "Workflows not in a terminal state.", registry=r)
        """Pending, active and paused workflows."""
        self.agents: Gauge = Gauge(
            "fleetflow_edge_agents", "Known agents, by status.", ["status"], registry=r)
        """``status``: offline, idle, busy, charging, error, paused."""
        self.connected: Gauge = Gauge(
            "fleetflow_edge_connected", "1 while connected to the broker.", registry=r)
        """The MQTT connection state."""
        self.watchdog_reconnects: Counter = Counter(
            "fleetflow_edge_watchdog_reconnects",
            "Reconnects forced because the broker link went silent (not even the edge's own "
            "status came back).", registry=r)
        """The link was connected but deaf; the edge dropped it and reconnected."""
        self.outbox: Gauge = Gauge(
            "fleetflow_edge_outbox", "Commands sent to agents and not yet acknowledged.",
            registry=r)
        """The durable command outbox (docs/protocol.md, "Delivery")."""
        self.queue_depth: Gauge = Gauge(
            "fleetflow_edge_queue_depth", "Messages received but not yet handled.", registry=r)
        """Backlog between the MQTT thread and the batch loop."""

    def set_agents(self, counts: Mapping[str, int]) -> None:
        """Replace the agents-by-status gauge (statuses absent from ``counts`` read 0)."""
        for status in ("offline", "idle", "busy", "charging", "error", "paused", *counts):
            self.agents.labels(status=status).set(counts.get(status, 0))

    def serve(self, port: int, host: str = "127.0.0.1") -> int:
        """Serve ``/metrics`` on ``host:port`` from a daemon thread; returns the bound port."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return int(server.server_port)
