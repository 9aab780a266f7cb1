"""``fleetflow edge``: run one facility's edge runtime; ``edge backup``, ``edge verify``.

``fleetflow edge --facility F --broker URL --data DIR`` runs the edge (see docs/edge.md);
``fleetflow edge backup DEST --data DIR`` copies the event store, also while an edge holds it;
``fleetflow edge verify --data DIR`` replays a stopped edge's log against its last state.
"""

from __future__ import annotations

import argparse
import errno
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fleetflow._data import data_root
from fleetflow._errors import CliError, port_in_use
from fleetflow._parser import add_log_level, setup_logging


def register(sub: Any) -> None:
    """Add ``edge`` and its ``backup`` and ``verify`` sub-subcommands."""
    p = sub.add_parser(
        "edge", help="run a facility's edge runtime; `edge backup` copies its event store"
    )
    _add_run_args(p)
    p.set_defaults(handler=_run_edge)
    modes = p.add_subparsers(dest="edge_command", metavar="{backup,verify}", required=False)
    backup = modes.add_parser(
        "backup", help="copy the event store to DEST (works while the edge runs)"
    )
    backup.add_argument("dest", metavar="DEST", help="new directory for the copy")
    backup.add_argument(
        "--data", required=True, metavar="DIR",
        help="the edge's data directory (or its store directory)",
    )
    backup.set_defaults(handler=_backup)
    verify = modes.add_parser(
        "verify", help="check that a stopped edge's log replays to the state it stopped with")
    verify.add_argument("--data", required=True, metavar="DIR",
                        help="the edge's data directory (or its store directory)")
    verify.add_argument("--templates", default=_env("TEMPLATES"), metavar="DIR",
                        help="the templates the edge ran with (default ./templates)")
    verify.add_argument("--map", default=_env("MAP"), help="the map the edge ran with")
    verify.set_defaults(handler=_verify)


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
    p.add_argument("--data", default=None, metavar="DIR",
                   help="the edge's own store directory (default DATA/edge-FACILITY, DATA "
                        "being env FLEETFLOW_DATA or ./.fleetflow)")
    p.add_argument("--map", default=_env("MAP"), help="facility map (YAML or JSON)")
    p.add_argument("--templates", default=_env("TEMPLATES"), metavar="DIR",
                   help="workflow templates directory (env FLEETFLOW_TEMPLATES; default "
                        "./templates: the working directory's)")
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
    for figure, what in (("per-meter", "per metre of travel to a step"),
                         ("per-action", "for a step's action"),
                         ("reserve", "left when a step is done")):
        p.add_argument(f"--battery-{figure}", type=float, default=0.0, metavar="PERCENT",
                       help=f"battery a robot needs {what}: one above 0 turns on the "
                            "battery_below_need rule (docs/coordination.md; default 0)")
    p.add_argument("--stale-command-s", type=float, default=None,
                   help="refuse a hub command on a workflow whose ts is older than the "
                        "workflow's last change by more than this (stale_command; default: "
                        "ts not compared)")
    p.add_argument("--concurrent-write", default="operator",
                   choices=("operator", "last_writer_wins", "first_writer_wins"),
                   help="what a concurrent write to a workflow variable does with the later "
                        "write (default %(default)s: held for an operator)")
    p.add_argument("--bid-window", type=float, default=None, metavar="S",
                   help="auction_based workflows: seconds a call for proposals takes bids "
                        "(docs/coordination.md; default 5)")
    p.add_argument("--award-timeout", type=float, default=None, metavar="S",
                   help="auction_based workflows: seconds a winner has to accept before the "
                        "award goes to the next bid (default 10)")
    p.add_argument("--resource-order", default="names", metavar="ORDER",
                   help="deadlock prevention: acquire resources in this global order — "
                        "'names' (sorted), a comma-separated list (names not listed after "
                        "it), or 'off' (the wait-for graph still breaks cycles; "
                        "docs/coordination.md; default %(default)s)")
    p.add_argument("--max-queued-per-agent", type=int, default=0, metavar="K",
                   help="work queues: a ready step that finds no free agent may be queued on "
                        "a busy one with fewer than K queued (docs/coordination.md; default 0: "
                        "no queued work)")
    p.add_argument("--no-prefer-idle", dest="prefer_idle", action="store_false",
                   help="work queues: weigh a free agent's cost against busy agents' ETAs "
                        "(default: a free agent first, whatever the cost)")
    p.add_argument("--batch-window", type=float, default=0.0, metavar="S",
                   help="batch allocation: ready steps wait for the next multiple of S "
                        "seconds and are assigned together at least total cost (default 0: "
                        "at once)")
    p.add_argument("--conflict-strategy", action="append", default=[], metavar="RULE=STRATEGY",
                   help="how a contention rule or conflict type is settled, e.g. "
                        "agent_double_booked=negotiation or resource=rescheduling (repeatable; "
                        "templates may override; docs/coordination.md, \"Strategies\"; "
                        "default priority)")
    p.add_argument("--record-inputs", action="store_true",
                   default=_env("RECORD_INPUTS") == "1",
                   help="record every input the core is given in the store, for `fleetflow "
                        "sim --replay` (env FLEETFLOW_RECORD_INPUTS=1; default off: it costs "
                        "a write per input; docs/simulator.md)")
    p.add_argument("--batch-max", type=int, default=512,
                   help="most inputs per group commit (default %(default)s)")
    p.add_argument("--vda", action="store_true", default=_env("VDA") == "1",
                   help="act as VDA 5050 master for AGVs on uagv/v2/+/+/… (env FLEETFLOW_VDA=1); "
                        "orders are planned on --map, so an AGV must stand on one of its nodes: "
                        "with maps/demo.yaml, a test AGV is `python -m agents_sim.vda_agv "
                        "--serial agv1 --node dock --x 0 --y 0 --map-id demo_floor`")
    p.add_argument("--vda-capabilities", default=_env("VDA_CAPABILITIES", "transport"),
                   help="comma-separated capabilities of every VDA AGV (default %(default)s)")
    add_log_level(p, "info")


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
    from edge_runtime.core import TemplateError
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
    _check_metrics_port(args)
    if not args.liveness_s > 0:
        raise CliError("--liveness-s must be positive")
    if args.stall_factor is not None and not 0 < args.stall_factor < 1e6:
        raise CliError("--stall-factor must be a positive number")
    consistency = _consistency_config(args)
    setup_logging(args.log_level, "%(asctime)s edge %(levelname)s %(message)s")
    data = Path(args.data) if args.data else data_root() / f"edge-{args.facility}"
    templates = _templates_dir(args)
    config = EdgeConfig(
        facility=args.facility, data_dir=data, host=host, port=port, tls=tls,
        username=args.username, password=args.password,
        tls_ca=args.tls_ca, tls_cert=args.tls_cert, tls_key=args.tls_key,
        map_path=Path(args.map) if args.map else None,
        templates_dir=templates,
        metrics_port=args.metrics_port, metrics_host=args.metrics_host,
        liveness_s=args.liveness_s, sync=args.sync, snapshot_every=args.snapshot_every,
        batch_max=args.batch_max, vda=args.vda, watchdog_s=args.watchdog_s,
        record_inputs=args.record_inputs,
        vda_capabilities=capabilities,
        extra={**({} if args.stall_factor is None else {"stall_factor": args.stall_factor}),
               **consistency, **_auction_config(args), **_resource_order(args),
               **_allocation_config(args), **_strategy_config(args)},
    )
    try:
        runtime = EdgeRuntime(config)
    except TemplateError as exc:
        # The templates were read without fault above: the store's workflows need others.
        raise CliError(f"--templates {templates} does not fit the store in {data.absolute()}: "
                       f"{exc} (start with the templates the store was made with)") from None
    except (StoreError, MapError, OSError) as exc:
        raise CliError(str(exc)) from None
    try:
        return runtime.run()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:  # taken between the check and the bind
            raise port_in_use("--metrics-port", args.metrics_port, args.metrics_host,
                              env="FLEETFLOW_METRICS_PORT", zero=True) from None
        raise CliError(str(exc)) from None


def _check_metrics_port(args: argparse.Namespace) -> None:
    from fleetflow._up_parts import port_free

    if args.metrics_port and not port_free(args.metrics_host, args.metrics_port):
        raise port_in_use("--metrics-port", args.metrics_port, args.metrics_host,
                          env="FLEETFLOW_METRICS_PORT", zero=True)


def _templates_dir(args: argparse.Namespace) -> Path:
    """The templates directory as an absolute path, its templates checked: a missing
    directory, a file, or a bad template is one line naming the full path."""
    from edge_runtime.core import TemplateError
    from edge_runtime.templates import check_templates_dir, load_templates

    given = args.templates is not None
    directory = Path(args.templates if given else "templates").absolute()
    try:
        check_templates_dir(directory)
    except TemplateError as exc:
        if given:
            raise CliError(f"--templates: {exc}") from None
        raise CliError(f"no --templates given and {exc} (the default is ./templates in the "
                       "working directory; pass --templates DIR)") from None
    try:
        load_templates(directory)  # the edge reads them again: here, one line, exit 2
    except TemplateError as exc:
        raise CliError(f"bad template: {exc}") from None
    return directory


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
    # An empty store has no range to name: "events 1..0" read as a bug.
    held = f"events 1..{last_seq}" if last_seq else "no events yet (an empty store)"
    print(f"backed up facility {facility}: {held} from {source} to {args.dest}")
    return 0


# --- verify ------------------------------------------------------------------------------
def _verify(args: argparse.Namespace) -> int:
    from edge_runtime.shell import EdgeConfig, verify_log
    from edge_runtime.store import StoreError

    config = EdgeConfig(facility="", data_dir=Path(args.data), templates_dir=_templates_dir(args),
                        map_path=Path(args.map) if args.map else None)
    try:
        facility, seq, difference = verify_log(config)
    except StoreError as exc:
        raise CliError(f"{exc} (a gracefully stopped edge leaves one at its last seq)") from None
    if difference is not None:
        print(f"facility {facility}: {difference}")
        return 1
    print(f"facility {facility}: events 1..{seq} replay to the state saved at seq {seq}")
    return 0


def _consistency_config(args: argparse.Namespace) -> dict[str, Any]:
    """``CoreConfig`` fields of the battery and data-consistency rules, checked."""
    extra: dict[str, Any] = {}
    for name in ("battery_per_meter", "battery_per_action", "battery_reserve"):
        value = getattr(args, name)
        if not 0 <= value <= 100:
            raise CliError(f"--{name.replace('_', '-')} must be a percentage (0 to 100)")
        if value:
            extra[name] = value
    if args.stale_command_s is not None:
        if not 0 < args.stale_command_s < 1e7:
            raise CliError("--stale-command-s must be a positive number of seconds")
        extra["stale_command_s"] = args.stale_command_s
    if args.concurrent_write != "operator":
        extra["concurrent_write"] = args.concurrent_write
    return extra


def _allocation_config(args: argparse.Namespace) -> dict[str, Any]:
    """``CoreConfig`` fields of batch allocation and work queues that were given, checked."""
    if not 0 <= args.max_queued_per_agent <= 1000:
        raise CliError("--max-queued-per-agent must be 0 to 1000")
    if not 0 <= args.batch_window < 3600:
        raise CliError("--batch-window must be 0 to 3600 seconds")
    extra: dict[str, Any] = {}
    if args.max_queued_per_agent:
        extra["max_queued_per_agent"] = args.max_queued_per_agent
    if not args.prefer_idle:
        extra["prefer_idle"] = False
    if args.batch_window:
        extra["batch_window_s"] = args.batch_window
    return extra


def _auction_config(args: argparse.Namespace) -> dict[str, Any]:
    """``CoreConfig`` fields of the ``auction_based`` protocol that were given, checked."""
    extra: dict[str, Any] = {}
    for flag, name in (("bid_window", "bid_window_s"), ("award_timeout", "award_timeout_s")):
        value = getattr(args, flag)
        if value is not None:
            if not 0 < value < 1e6:
                raise CliError(f"--{flag.replace('_', '-')} must be a positive number of "
                               "seconds")
            extra[name] = value
    return extra


def _resource_order(args: argparse.Namespace) -> dict[str, Any]:
    """``CoreConfig.resource_order`` from ``--resource-order``, checked (empty: default)."""
    from topics import ProtocolError, check_identifier

    order = args.resource_order.strip()
    if order == "names":
        return {}
    if order == "off":
        return {"resource_order": False}
    names = tuple(n.strip() for n in order.split(","))
    try:
        for name in names:
            check_identifier(name, "resource")
    except ProtocolError as exc:
        raise CliError(f"--resource-order: {exc}") from None
    if len(set(names)) != len(names):
        raise CliError("--resource-order names a resource twice")
    return {"resource_order": names}


def _strategy_config(args: argparse.Namespace) -> dict[str, Any]:
    """``CoreConfig.conflict_strategies`` from ``--conflict-strategy RULE=STRATEGY``."""
    from edge_runtime.core import check_strategies

    table: dict[str, str] = {}
    for item in args.conflict_strategy:
        key, eq, strategy = item.partition("=")
        if not eq:
            raise CliError(f"--conflict-strategy {item!r}: write RULE=STRATEGY")
        table[key.strip()] = strategy.strip()
    try:
        check_strategies(table)
    except ValueError as exc:
        raise CliError(f"--conflict-strategy: {exc}") from None
    return {"conflict_strategies": table} if table else {}
