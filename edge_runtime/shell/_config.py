"""The options of one edge runtime (what ``fleetflow edge`` takes on its command line)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["EdgeConfig"]


@dataclass
class EdgeConfig:
    """Everything ``fleetflow edge`` takes on its command line."""

    facility: str
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    tls: bool = False
    """Connect with TLS (system CAs unless ``tls_ca`` names one)."""
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    map_path: Path | None = None
    templates_dir: Path | None = None
    metrics_port: int = 0
    """0: no metrics endpoint."""
    metrics_host: str = "127.0.0.1"
    liveness_s: float = 10.0
    """Default liveness window of agents that do not announce their own."""
    batch_max: int = 512
    """Most inputs handled per group commit."""
    batch_wait_s: float = 0.05
    """Longest wait for the first message of a batch (timers are checked this often)."""
    sync: str = "batch"
    """``EventStore`` sync mode: batch, interval or none."""
    snapshot_every: int = 10_000
    status_interval_s: float = 1.0
    """Least time between two retained online statuses while the high-water seq moves."""
    watchdog_s: float = 15.0
    """The edge publishes its status at least every third of this and must hear it back
    from the broker; silent this long while connected, it drops the link and reconnects
    (a connected but deaf link). 0 turns the watchdog off."""
    keepalive_s: int = 10
    client_id: str | None = None
    """MQTT client id; ``fleetflow-edge-{facility}`` by default (a clean session)."""
    vda: bool = False
    """Act as VDA 5050 master for AGVs on ``uagv/v2/+/+/…`` of this broker."""
    vda_capabilities: tuple[str, ...] = ("transport",)
    """Capabilities every VDA 5050 AGV is given in the core."""
    record_inputs: bool = False
    """Record every core input in the store's ``inputs`` family, for ``fleetflow sim
    --replay`` (``--record-inputs``; off by default: it costs a write per input)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Further core options, passed through to ``CoreConfig``."""
