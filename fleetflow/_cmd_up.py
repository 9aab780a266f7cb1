"""``fleetflow up``: the whole system on one machine, on embedded defaults (docs/design.md §10).

Starts, in order: the embedded broker (own process) with generated per-component
credentials; one edge runtime per demo facility (own process; default ``north`` and
``south``); the cloud hub (``fleetflow hub``, own process, MQTT user ``hub``) serving the
REST API and WebSocket on ``--api-port``; the supervisors' dashboard (``fleetflow
dashboard``, own process, on ``--dashboard-port`` with a ``supervisor`` token named
``dashboard``); a simulated fleet per facility
(``agents_sim.native``); and the demo planner (``agents_sim.planner``), which creates
workflows through the REST API with a ``planner`` token. It prints the API URL, ``/docs``
and an admin token (also in ``DATA/admin-token``, mode 0600). Ctrl-C (or SIGTERM) stops
everything, in reverse order. This module only wires those parts together
(``_up_parts`` starts them).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleetflow._errors import CliError, port_in_use
from fleetflow._up_parts import (
    ADMIN_TOKEN_FILE,
    admin_token,
    credentials,
    dashboard_token,
    fleet_capabilities,
    planner_token,
    port_free,
    start_dashboard,
    start_edge,
    start_hub,
    stop_child,
)

if TYPE_CHECKING:
    from agents_sim.native import AgentSpec, FleetRunner
    from agents_sim.planner import DemoPlanner

_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_FACILITIES = ("north", "south")


def _env(name: str, default: str) -> str:
    return os.environ.get(f"FLEETFLOW_{name}", default)


def register(sub: Any) -> None:
    """Add the ``up`` subcommand."""
    p = sub.add_parser("up", help="run broker, two demo facility edges, the hub with its "
                                  "REST API, and a simulated fleet")
    p.add_argument("--host", default=_env("HOST", "127.0.0.1"), help="address to listen on")
    p.add_argument("--port", type=int, default=int(_env("BROKER_PORT", "1883")),
                   help="MQTT port of the embedded broker (FLEETFLOW_BROKER_PORT)")
    p.add_argument("--metrics-port", type=int, default=int(_env("METRICS_PORT", "9464")),
                   help="Prometheus port of the first edge; the next edges count up "
                        "(FLEETFLOW_METRICS_PORT)")
    p.add_argument("--api-port", type=int, default=int(_env("API_PORT", "8003")),
                   help="the hub's REST API and WebSocket port (FLEETFLOW_API_PORT)")
    p.add_argument("--dashboard-port", type=int, default=int(_env("DASHBOARD_PORT", "3000")),
                   help="the supervisors' dashboard's port (0: a free one; "
                        "FLEETFLOW_DASHBOARD_PORT)")
    p.add_argument("--data", default=_env("DATA", ".fleetflow"), metavar="DIR",
                   help="where stores, users, tokens and logs live (FLEETFLOW_DATA)")
    p.add_argument("--facility", action="append", dest="facilities", metavar="NAME",
                   help="demo facility (repeat for several; default: "
                        f"{' and '.join(DEFAULT_FACILITIES)})")
    p.add_argument("--agents", type=int, default=int(_env("AGENTS", "8")),
                   help="simulated agents per facility (0: none)")
    p.add_argument("--workflow-every", type=float, default=float(_env("WORKFLOW_EVERY", "5")),
                   metavar="S", help="seconds between demo workflows (0: none)")
    p.add_argument("--map", default=_env("MAP", str(_ROOT / "maps" / "demo.yaml")))
    p.add_argument("--templates", default=_env("TEMPLATES", str(_ROOT / "templates")))
    p.add_argument("-q", "--quiet", action="store_true",
                   help="after 'ready', print nothing (default: one line per workflow "
                        "transition, as `fleetflow wf watch` shows them)")
    p.set_defaults(handler=_run)


def _register_users(data: Path, facilities: list[str],
                    fleets: dict[str, list[AgentSpec]]) -> dict[str, str]:
    """Broker users for the hub, each edge and each agent (passwords kept in
    ``DATA/credentials.yaml``); the passwords by user name."""
    from broker import Identity, PasswordFile

    agent_facility = {s.agent_id: f for f, specs in fleets.items() for s in specs}
    names = ["hub", *(f"edge-{f}" for f in facilities), *agent_facility]
    secrets_ = credentials(data / "credentials.yaml", names)
    passwd = PasswordFile(data / "passwd")
    have = {u.identity.name for u in passwd.users()}
    for name in names:
        if name in have:
            continue
        if name == "hub":
            identity = Identity(name, "hub")
        elif name in agent_facility:
            identity = Identity(name, "agent", facility=agent_facility[name])
        else:
            identity = Identity(name, "edge", facility=name.removeprefix("edge-"))
        passwd.add(identity, secrets_[name])
    return secrets_


def _check_ports(args: argparse.Namespace, facilities: list[str]) -> None:
    # (flag, the flag's value, a port it makes, its env var, does it take 0)
    taken = [("--port", args.port, args.port, "FLEETFLOW_BROKER_PORT", False)]
    taken += [("--metrics-port", args.metrics_port, args.metrics_port + i,
               "FLEETFLOW_METRICS_PORT", False) for i in range(len(facilities))]
    taken.append(("--api-port", args.api_port, args.api_port, "FLEETFLOW_API_PORT", False))
    if args.dashboard_port != 0:
        taken.append(("--dashboard-port", args.dashboard_port, args.dashboard_port,
                      "FLEETFLOW_DASHBOARD_PORT", True))
    for flag, value, port, env, zero in taken:
        if not port_free(args.host, port):
            # A later edge's metrics port is --metrics-port + i: name the value given too.
            shown = value if port == value else f"{value} (+{port - value}: {port})"
            raise port_in_use(flag, shown, args.host, env=env, zero=zero)


def _run(args: argparse.Namespace) -> int:
    from agents_sim.native import mixed_fleet
    from broker import BrokerProcess, BrokerStartError
    from edge_runtime.core import TemplateError
    from edge_runtime.templates import load_templates

    facilities: list[str] = args.facilities or list(DEFAULT_FACILITIES)
    if len(set(facilities)) != len(facilities):
        raise CliError(f"--facility names a facility twice: {', '.join(facilities)}")
    data = Path(args.data)
    (data / "logs").mkdir(parents=True, exist_ok=True)
    try:
        templates = load_templates(args.templates)
    except TemplateError as exc:
        raise CliError(f"--templates: {exc}") from None
    demo_templates = sorted(k for k in templates if "@" not in k)  # latest version of each
    fleets = {f: mixed_fleet(args.agents, capabilities=fleet_capabilities(templates),
                             prefix=f"{f}-agent") if args.agents > 0 else []
              for f in facilities}
    secrets_ = _register_users(data, facilities, fleets)
    _check_ports(args, facilities)
    if args.dashboard_port == 0:
        from broker import free_port

        args.dashboard_port = free_port(args.host)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    broker = BrokerProcess(args.host, args.port, data / "passwd",
                           log_file=data / "logs" / "broker.log")
    children: dict[str, subprocess.Popen[bytes]] = {}  # edges, hub, dashboard: start order
    runners: list[FleetRunner] = []
    planner: DemoPlanner | None = None
    lines: threading.Thread | None = None  # the event lines after "ready" (not with -q)
    try:
        try:
            broker.start()
        except BrokerStartError as exc:
            raise CliError(str(exc).removeprefix("fleetflow broker: ")) from None
        url = f"mqtt://{args.host}:{args.port}"
        print(f"broker      {url}  (users: {data / 'passwd'}, log: {data / 'logs'})", flush=True)
        for i, facility in enumerate(facilities):
            children[f"edge {facility!r}"] = start_edge(args, facility, i, url,
                                                        secrets_[f"edge-{facility}"])
        children["hub"] = start_hub(args, url, secrets_["hub"])
        api = f"http://{args.host}:{args.api_port}"
        _wait_ready(api, facilities, children, stop, data)
        for i, facility in enumerate(facilities):
            print(f"edge        facility {facility!r}  metrics "
                  f"http://{args.host}:{args.metrics_port + i}/metrics", flush=True)
        token = admin_token(data)
        print(f"hub API     {api}  (OpenAPI docs: {api}/docs, live: "
              f"ws://{args.host}:{args.api_port}/ws/workflows)", flush=True)
        print(f"admin token {token}  (also in {data / ADMIN_TOKEN_FILE}; "
              "send as 'Authorization: Bearer …')", flush=True)
        children["dashboard"] = start_dashboard(args, args.dashboard_port, dashboard_token(data))
        board = f"http://{args.host}:{args.dashboard_port}"
        _wait_dashboard(board, children, stop, data)
        print(f"dashboard   {board}  (token 'dashboard', role supervisor)", flush=True)
        runners = _start_fleets(args, fleets, secrets_)
        if args.workflow_every > 0 and any(fleets.values()):
            from agents_sim.planner import DemoPlanner

            planner = DemoPlanner(api, planner_token(data), facilities, demo_templates,
                                  every_s=args.workflow_every).start()
            print(f"workflows   one every {args.workflow_every:g} s through the REST API "
                  f"({', '.join(demo_templates)})", flush=True)
        print("ready; Ctrl-C stops everything", flush=True)
        if not args.quiet:
            from fleetflow._wf_live import start_event_lines

            lines = start_event_lines(api, token, stop)
        while not stop.wait(0.5):
            _check_alive(children, data)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        if lines is not None:
            lines.join(2.0)  # its last line before "stopping…"
        print("stopping…", flush=True)
        if planner is not None:
            planner.stop()
        for runner in reversed(runners):
            runner.stop()
        if "dashboard" in children:  # a client of the hub: before it
            stop_child(children.pop("dashboard"))
        if "hub" in children:
            stop_child(children.pop("hub"))
        for proc in children.values():  # the edges: SIGTERM to all, then wait for each
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in children.values():
            stop_child(proc)
        broker.stop()
    return 0


def _start_fleets(args: argparse.Namespace, fleets: dict[str, list[AgentSpec]],
                  secrets_: dict[str, str]) -> list[FleetRunner]:
    from agents_sim.native import FleetRunner

    runners = []
    for facility, specs in fleets.items():
        if not specs:
            continue
        runner = FleetRunner(facility, specs, host=args.host, port=args.port,
                             credentials=lambda name: (name, secrets_[name]))
        runner.start()
        runners.append(runner)
        print(f"fleet       {len(specs)} simulated agents in {facility!r}", flush=True)
    return runners


def _check_alive(children: dict[str, subprocess.Popen[bytes]], data: Path) -> None:
    for name, proc in children.items():
        if proc.poll() is not None:
            raise CliError(f"the {name} process exited with status {proc.returncode}; "
                           f"see {data / 'logs'}")


def _wait_dashboard(url: str, children: dict[str, subprocess.Popen[bytes]],
                    stop: threading.Event, data: Path, timeout: float = 90.0) -> None:
    """Wait until the dashboard answers its health check; fail fast if a child exits."""
    import time
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stop.is_set():
            raise KeyboardInterrupt
        _check_alive(children, data)
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        stop.wait(0.3)
    raise CliError(f"the dashboard did not answer at {url} within {timeout:g} s; see "
                   f"{data / 'logs' / 'dashboard.log'}")


def _wait_ready(api: str, facilities: list[str], children: dict[str, subprocess.Popen[bytes]],
                stop: threading.Event, data: Path, timeout: float = 60.0) -> None:
    """Wait until the hub answers ``/health`` and sees every edge online (so both the API
    and the edges work when ``ready`` is printed); fail fast if a child exits."""
    from agents_sim.planner import wait_api_ready

    def give_up() -> bool:
        return stop.is_set() or any(p.poll() is not None for p in children.values())

    if wait_api_ready(api, len(facilities), timeout=timeout, give_up=give_up) is not None:
        return
    if stop.is_set():
        raise KeyboardInterrupt
    _check_alive(children, data)
    raise CliError(f"the hub did not see {len(facilities)} edges online at {api} within "
                   f"{timeout:g} s; see {data / 'logs'}")
