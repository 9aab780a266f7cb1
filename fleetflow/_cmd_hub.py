"""``fleetflow hub``: run the cloud hub — ingest every facility's edge events from the
broker, keep the global view under ``--data``, serve the REST API and WebSocket on
``--port`` (docs/hub.md). ``fleetflow hub token …`` manages its API tokens
(``_cmd_hub_token``).

SIGTERM or Ctrl-C stops the HTTP server (open requests finish), then the hub (its worker
finishes the round in hand, the store closes).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from fleetflow._cmd_edge import parse_broker
from fleetflow._cmd_hub_token import hub_data_dir, register_token
from fleetflow._errors import CliError, port_in_use
from fleetflow._parser import add_log_level, setup_logging

_CONSISTENCY = ("strong", "eventual", "bounded_staleness")


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"FLEETFLOW_{name}", default)


def register(sub: Any) -> None:
    """Add ``hub`` (run) and its ``token`` sub-subcommand."""
    p = sub.add_parser("hub", help="run the cloud hub (REST API + WebSocket over every "
                                   "facility); `hub token` manages API tokens")
    p.add_argument("--broker", default=_env("BROKER", "mqtt://127.0.0.1:1883"),
                   help="broker URL, mqtt://host:port or mqtts://host:port "
                        "(default %(default)s)")
    p.add_argument("--username", default=_env("HUB_USERNAME", "hub"),
                   help="MQTT user name (default %(default)s: the hub role)")
    p.add_argument("--password", default=_env("HUB_PASSWORD"),
                   help="MQTT password (prefer env FLEETFLOW_HUB_PASSWORD)")
    p.add_argument("--tls-ca", default=_env("TLS_CA"), help="CA certificate file (PEM)")
    p.add_argument("--tls-cert", default=_env("TLS_CERT"), help="client certificate (PEM)")
    p.add_argument("--tls-key", default=_env("TLS_KEY"), help="client key (PEM)")
    p.add_argument("--data", default=None, metavar="DIR",
                   help="data directory: the hub's store and tokens.json (env "
                        "FLEETFLOW_HUB_DATA; default DATA/hub, DATA being env FLEETFLOW_DATA "
                        "or ./.fleetflow)")
    p.add_argument("--templates", default=_env("TEMPLATES"), metavar="DIR",
                   help="workflow templates directory (default ./templates)")
    p.add_argument("--maps", default=_env("HUB_MAPS"), metavar="PATH",
                   help="facility maps the API serves (GET /api/v1/facilities/{id}/map): "
                        "one map file for every facility, or a directory of "
                        "{facility}.yaml|.yml|.json (env FLEETFLOW_HUB_MAPS)")
    p.add_argument("--host", default=_env("HUB_HOST", "127.0.0.1"),
                   help="address the API binds (default %(default)s)")
    p.add_argument("--port", type=int, default=int(_env("HUB_PORT", "8003") or 8003),
                   help="API port (default %(default)s)")
    p.add_argument("--consistency", choices=_CONSISTENCY,
                   default=_env("HUB_CONSISTENCY", "strong"),
                   help="consistency of writes that name none (default %(default)s)")
    p.add_argument("--command-timeout", type=float, default=10.0, metavar="S",
                   help="how long a strong write waits for its edge (default %(default)s)")
    p.add_argument("--staleness", type=float, default=5.0, metavar="S",
                   help="a facility whose view is older is stale; also the default bound "
                        "of bounded_staleness reads (default %(default)s)")
    p.add_argument("--booking-strategy", choices=("priority", "manual"), default="priority",
                   help="how a double-booking of a shared agent or resource across "
                        "facilities is settled when its loan names none (default "
                        "%(default)s)")
    add_log_level(p, "info")
    p.set_defaults(handler=_run_hub)
    register_token(p.add_subparsers(dest="hub_command", metavar="{token}", required=False))


def _check(args: argparse.Namespace) -> None:
    if not 0 <= args.port <= 65535:
        raise CliError(f"--port {args.port} is not a port number")
    from fleetflow._up_parts import port_free

    if args.port and not port_free(args.host, args.port):
        raise port_in_use("--port", args.port, args.host, env="FLEETFLOW_HUB_PORT")
    for flag in ("command_timeout", "staleness"):
        value = getattr(args, flag)
        if not 0 < value < 1e6:
            raise CliError(f"--{flag.replace('_', '-')} must be a positive number of seconds")
    if args.templates is not None and not Path(args.templates).is_dir():
        what = "is a file, not a directory" if Path(args.templates).exists() else "does not exist"
        raise CliError(f"--templates: templates directory {Path(args.templates).absolute()} "
                       f"{what}")
    if args.consistency not in _CONSISTENCY:
        raise CliError(f"FLEETFLOW_HUB_CONSISTENCY {args.consistency!r} is not one of "
                       f"{', '.join(_CONSISTENCY)}")


def _say_loaded(hub: Any, args: argparse.Namespace) -> None:
    """One line of what the hub loaded: templates (and from where), maps, facilities known
    from its store — what a newcomer checks first when a workflow will not start."""
    names = sorted({str(t["name"]) for t in hub.templates()})
    where = (Path(args.templates).absolute() if args.templates
             else "the shipped templates/ (no --templates)")
    maps = Path(args.maps).absolute() if args.maps else "none (--maps)"
    known = sorted(f.id for f in hub.facilities())
    print(f"fleetflow hub: templates {', '.join(names) or 'none'} from {where}; maps {maps}; "
          f"facilities known {', '.join(known) or 'none yet'}", flush=True)


def _run_hub(args: argparse.Namespace) -> int:
    import signal

    import uvicorn

    from cloud_hub import Hub, HubConfig, TokenStore, create_app

    _check(args)
    host, port, tls = parse_broker(args.broker)
    setup_logging(args.log_level, "%(asctime)s hub %(levelname)s %(message)s")
    data = hub_data_dir(args.data)
    try:
        config = HubConfig(
            data_dir=data, host=host, port=port, username=args.username or None,
            password=args.password, tls=tls, tls_ca=args.tls_ca, tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            templates_dir=Path(args.templates) if args.templates else None,
            staleness_s=args.staleness, command_timeout_s=args.command_timeout,
            booking_strategy=args.booking_strategy,
            maps=Path(args.maps) if args.maps else None)
        hub = Hub(config)  # reads the maps: a bad one is refused before anything is made
        data.mkdir(parents=True, exist_ok=True)
        hub.start()
    except (ValueError, OSError) as exc:
        raise CliError(str(exc)) from None
    except Exception as exc:  # the store's own errors (a locked or corrupt store)
        raise CliError(f"cannot start the hub: {exc}") from None
    try:
        app = create_app(hub, TokenStore.in_dir(data), default_consistency=args.consistency,
                         command_timeout_s=args.command_timeout,
                         default_staleness_s=args.staleness)
        server = uvicorn.Server(uvicorn.Config(
            app, host=args.host, port=args.port, log_level=args.log_level.lower(),
            access_log=args.log_level == "DEBUG", lifespan="off"))
        print(f"fleetflow hub: API on http://{args.host}:{args.port} (docs at /docs), "
              f"broker {args.broker}, data {data}", flush=True)
        _say_loaded(hub, args)
        # uvicorn handles SIGTERM/SIGINT (stops accepting, finishes open requests), then
        # raises the signal again for the handler it found: make that one a no-op, so the
        # hub below is stopped and its store closed, rather than the process killed.
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: None)
        server.run()
        if not server.started:
            raise CliError(f"could not serve on {args.host}:{args.port} (is the port taken?)")
    finally:
        hub.stop()
    return 0
