"""``fleetflow edge``: run one facility's edge runtime, or ``fleetflow edge backup``.

``fleetflow edge --facility F --broker URL --data DIR`` runs the edge (see docs/edge.md);
``fleetflow edge backup DEST --data DIR`` copies the event store, also while an edge holds it.
"""

from __future__ import annotations

import argparse
import os
from typing import Any
from urllib.parse import urlsplit

from fleetflow._errors import CliError


def register(sub: Any) -> None:
    """Add ``edge`` and its ``backup`` sub-subcommand."""
    p = sub.add_parser(
        "edge", help="run a facility's edge runtime; `edge backup` copies its event store"
    )
    _add_run_args(p)
    p.set_defaults(handler=_run_edge)
    modes = p.add_subparsers(dest="edge_command", metavar="{backup}", required=False)
    backup = modes.add_parser(
        "backup", help="copy the event store to DEST (works while the edge runs)"
    )
    backup.add_argument("dest", metavar="DEST", help="new directory for the copy")
    backup.add_argument(
        "--data", required=True, metavar="DIR",
        help="the edge's data directory (or its store directory)",
    )
    backup.set_defaults(handler=_backup)


# --- run mode ----------------------------------------------------------------------------
def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"FLEETFLOW_{name}", default)


def _add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--facility", default=_env("FACILITY"),
                   help="facility id (required; env FLEETFLOW_FACILITY)")
    p.add_argument("--broker", default=_env("BROKER", "mqtt://127.0.0.1:1883"),
                   help="broker URL, mqtt://host:port or mqtts://host:port "
                        "(default %(default)s)")
    p.add_argument("--username", default=_env("EDGE_USERNAME"), help="MQTT user name")
    p.add_argument("--password", default=_env("EDGE_PASSWORD"),
                   help="MQTT password (prefer env FLEETFLOW_EDGE_PASSWORD)")
    p.add_argument("--tls-ca", default=_env("TLS_CA"), help="CA certificate file (PEM)")
    p.add_argument("--tls-cert", default=_env("TLS_CERT"), help="client certificate (PEM)")
    p.add_argument("--tls-key", default=_env("TLS_KEY"), help="client key (PEM)")
    p.add_argument("--data", default=_env("DATA"), metavar="DIR",
                   help="data directory (default ./.fleetflow/edge-FACILITY)")
    p.add_argument("--map", default=_env("MAP"), help="facility map (YAML or JSON)")
    p.add_argument("--templates", default=_env("TEMPLATES"), metavar="DIR",
                   help="workflow templates directory (default ./templates)")
    p.add_argument("--metrics-port", type=int, default=int(_env("METRICS_PORT", "0") or 0),
                   help="Prometheus /metrics port; 0 = off (default)")
    p.add_argument("--metrics-host", default=_env("METRICS_HOST", "127.0.0.1"),
                   help="address the metrics endpoint binds (default %(default)s)")
    p.add_argument("--liveness-s", type=float, default=float(_env("LIVENESS_S", "10") or 10),
                   help="default agent liveness window in seconds (default %(default)s)")
    p.add_argument("--sync", choices=("batch", "interval", "none"),
                   default=_env("SYNC", "batch"),
                   help="when commits reach the disk (default %(default)s; see docs/store.md)")
    p.add_argument("--snapshot-every", type=int, default=10_000,
                   help="save a snapshot every N events (default %(default)s)")
    p.add_argument("--watchdog-s", type=float,
                   default=float(_env("WATCHDOG_S", "15") or 15),
                   help="drop and reconnect a broker link on which the edge has not heard its "
                        "own status for this long (0: off; default 15)")
    p.add_argument("--stall-factor", type=float, default=None,
                   help="a step still held this many times its estimated duration after "
                        "assignment is a step_stalled conflict (docs/coordination.md; "
                        "default: not checked)")
    p.add_argument("--batch-max", type=int, default=512,
                   help="most inputs per group commit (default %(default)s)")
    p.add_argument("--vda", action="store_true", default=_env("VDA") == "1",
                   help="act as VDA 5050 master for AGVs on uagv/v2/+/+/… (env FLEETFLOW_VDA=1); "
                        "orders are planned on --map, so an AGV must stand on one of its nodes: "
                        "with maps/demo.yaml, a test AGV is `python -m agents_sim.vda_agv "
                        "--serial agv1 --node dock --x 0 --y 0 --map-id demo_floor`")
    p.add_argument("--vda-capabilities", default=_env("VDA_CAPABILITIES", "transport"),
                   help="comma-separated capabilities of every VDA AGV (default %(default)s)")
    p.add_argument("--log-level", default=_env("LOG_LEVEL", "INFO"),
                   choices=("DEBUG", "INFO", "WARNING", "ERROR"))


def parse_broker(url: str) -> tuple[str, int, bool]:
    """``mqtt://host:port`` → (host, port, tls); ``mqtts`` means TLS (default port 8883)."""
    parts = urlsplit(url if "://" in url else f"mqtt://{url}")
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise CliError(f"--broker {url!r} is not mqtt://host:port or mqtts://host:port")
    try:
        port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
    except ValueError:
        raise CliError(f"--broker {url!r} has a bad port") from None
    return parts.hostname, port, parts.scheme == "mqtts"


def _run_edge(args: argparse.Namespace) -> int:
    import logging
    from pathlib import Path

    from edge_runtime.facility import MapError
    from edge_runtime.shell import EdgeConfig, EdgeRuntime
    from edge_runtime.store import StoreError
    from topics import ProtocolError, check_identifier

    if not args.facility:
        raise CliError("--facility is required (or set FLEETFLOW_FACILITY)")
    try:
        check_identifier(args.facility, "facility")
    except ProtocolError as exc:
        raise CliError(str(exc)) from None
    host, port, tls = parse_broker(args.broker)
    capabilities = tuple(c for c in args.vda_capabilities.split(",") if c)
    try:
        for capability in capabilities:
            check_identifier(capability, "VDA capability")
    except ProtocolError as exc:
        raise CliError(str(exc)) from None
    if not 0 <= args.metrics_port <= 65535:
        raise CliError(f"--metrics-port {args.metrics_port} is not a port number")
    if not args.liveness_s > 0:
        raise CliError("--liveness-s must be positive")
    if args.stall_factor is not None and not 0 < args.stall_factor < 1e6:
        raise CliError("--stall-factor must be a positive number")
    logging.basicConfig(level=args.log_level, format="%(asctime)s edge %(levelname)s %(message)s")
    data = Path(args.data or f".fleetflow/edge-{args.facility}")
    config = EdgeConfig(
        facility=args.facility, data_dir=data, host=host, port=port, tls=tls,
        username=args.username, password=args.password,
        tls_ca=args.tls_ca, tls_cert=args.tls_cert, tls_key=args.tls_key,
        map_path=Path(args.map) if args.map else None,
        templates_dir=Path(args.templates) if args.templates else None,
        metrics_port=args.metrics_port, metrics_host=args.metrics_host,
        liveness_s=args.liveness_s, sync=args.sync, snapshot_every=args.snapshot_every,
        batch_max=args.batch_max, vda=args.vda, watchdog_s=args.watchdog_s,
        vda_capabilities=capabilities,
        extra={} if args.stall_factor is None else {"stall_factor": args.stall_factor},
    )
    try:
        runtime = EdgeRuntime(config)
    except (StoreError, MapError, OSError) as exc:
        raise CliError(str(exc)) from None
    try:
        return runtime.run()
    except OSError as exc:  # e.g. the metrics port is taken
        raise CliError(str(exc)) from None


# --- backup ------------------------------------------------------------------------------
def _backup(args: argparse.Namespace) -> int:
    from edge_runtime.store import EventStore, StoreError, store_path

    source = store_path(args.data)
    try:
        # Read-only (a RocksDB secondary): never contends with a running edge's lock.
        with EventStore(source, None, read_only=True) as store:
            last_seq = store.backup(args.dest)
            facility = store.facility
    except StoreError as exc:
        raise CliError(str(exc)) from None
    print(f"backed up facility {facility}: events 1..{last_seq} from {source} to {args.dest}")
    return 0
