"""The options of one hub (what ``fleetflow hub`` takes on its command line)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["HubConfig"]


@dataclass
class HubConfig:
    """Where the hub's broker and store are, and the bounds it keeps to.

    The broker options mirror the edge's (``EdgeConfig``) so one ``--broker`` URL and one
    set of credentials serve both; the hub's MQTT identity has the ``hub`` role.
    """

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = "hub"
    password: str | None = None
    tls: bool = False
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    client_id: str | None = None
    """MQTT client id; ``fleetflow-hub-<random>`` by default (a clean session)."""
    templates_dir: Path | None = None
    """The templates the edges run (their replicas need them); none: ``templates/``."""
    staleness_s: float = 5.0
    """The bound a ``bounded_staleness`` read uses when the request names none (the API
    passes it as ``max_staleness_s``; the hub itself marks a facility stale as soon as its
    edge is offline or ahead of the hub's view)."""
    command_timeout_s: float = 10.0
    """How long a ``strong`` write waits for its reply by default."""
    snapshot_every: int = 5_000
    """Events applied per facility between two snapshots of its replica."""
    replay_retry_s: float = 2.0
    """Least time between two ``replay`` requests to one edge while a gap stays open."""
    batch_max: int = 2_000
    """Most messages ingested per group commit."""
    cache_size: int = 10_000
    """Workflow views the memory tier keeps."""
    keepalive_s: int = 10
    booking_strategy: str = "priority"
    """How a cross-facility double-booking of a shared agent or resource is settled when
    its loan names none: ``priority`` or ``manual`` (``_bookings``)."""
    maps: Path | None = None
    """The facility maps the API serves (``_maps``): one map file for every facility, or
    a directory of ``{facility}.yaml|.yml|.json``; ``None``: no maps."""

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        if self.templates_dir is not None:
            self.templates_dir = Path(self.templates_dir)
        if self.maps is not None:
            self.maps = Path(self.maps)
        for name in ("staleness_s", "command_timeout_s", "replay_retry_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, not {getattr(self, name)}")
        for name in ("snapshot_every", "batch_max", "cache_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")
