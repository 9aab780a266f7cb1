"""``fleetflow up``: the whole system on one machine, on embedded defaults (DESIGN §10).

Starts, in order: the embedded broker (own process) with generated per-component
credentials, one edge runtime per demo facility (own process), and a simulated fleet
(``agents_sim.native``) that works demo workflows created every few seconds by a scripted
planner (``agents_sim.planner``, standing in for the hub). Ctrl-C (or SIGTERM) stops
everything, in reverse order. This module only wires those parts together.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from fleetflow._errors import CliError

if TYPE_CHECKING:
    from agents_sim.native import FleetRunner
    from agents_sim.planner import DemoPlanner

_ROOT = Path(__file__).resolve().parents[1]


def _env(name: str, default: str) -> str:
    return os.environ.get(f"FLEETFLOW_{name}", default)


def register(sub: Any) -> None:
    """Add the ``up`` subcommand."""
    p = sub.add_parser("up", help="run broker, demo facility edge and a simulated fleet")
    p.add_argument("--host", default=_env("HOST", "127.0.0.1"), help="address to listen on")
    p.add_argument("--port", type=int, default=int(_env("BROKER_PORT", "1883")),
                   help="MQTT port of the embedded broker (FLEETFLOW_BROKER_PORT)")
    p.add_argument("--metrics-port", type=int, default=int(_env("METRICS_PORT", "9464")),
                   help="Prometheus port of the first edge; the next edges count up "
                        "(FLEETFLOW_METRICS_PORT)")
    p.add_argument("--data", default=_env("DATA", ".fleetflow"), metavar="DIR",
                   help="where stores, users and logs live (FLEETFLOW_DATA)")
    p.add_argument("--facility", action="append", dest="facilities", metavar="NAME",
                   help="demo facility (repeat for several; default: demo)")
    p.add_argument("--agents", type=int, default=int(_env("AGENTS", "8")),
                   help="simulated agents per facility (0: none)")
    p.add_argument("--workflow-every", type=float, default=float(_env("WORKFLOW_EVERY", "5")),
                   metavar="S", help="seconds between demo workflows (0: none)")
    p.add_argument("--map", default=_env("MAP", str(_ROOT / "maps" / "demo.yaml")))
    p.add_argument("--templates", default=_env("TEMPLATES", str(_ROOT / "templates")))
    p.set_defaults(handler=_run)


def _credentials(path: Path, names: list[str]) -> dict[str, str]:
    """Passwords for the local components, generated once and kept (mode 0600)."""
    known: dict[str, str] = {}
    if path.exists():
        known = yaml.safe_load(path.read_text()) or {}
    missing = [n for n in names if n not in known]
    if missing:
        known.update({n: secrets.token_urlsafe(18) for n in missing})
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump(known, f)
    return known


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _fleet_capabilities(templates: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    """Per agent kind, every capability some template step of that kind asks for."""
    caps: dict[str, set[str]] = {"robot": set(), "human": set(), "ai": set()}
    for template in templates.values():
        for step in template.steps:
            for s in (step, step.compensation):
                if s is not None and s.kind in caps:
                    caps[s.kind].update(s.capabilities)
    return {kind: tuple(sorted(c)) for kind, c in caps.items()}


def _run(args: argparse.Namespace) -> int:
    from broker import BrokerProcess, BrokerStartError, Identity, PasswordFile
    from edge_runtime.templates import load_templates

    facilities: list[str] = args.facilities or ["demo"]
    data = Path(args.data)
    (data / "logs").mkdir(parents=True, exist_ok=True)
    templates = load_templates(args.templates)
    demo_templates = sorted(k for k in templates if "@" not in k)  # latest version of each
    from agents_sim.native import mixed_fleet

    fleets = {f: mixed_fleet(args.agents, capabilities=_fleet_capabilities(templates),
                             prefix=f"{f}-agent") if args.agents else [] for f in facilities}
    agent_names = [s.agent_id for specs in fleets.values() for s in specs]
    names = ["hub", *(f"edge-{f}" for f in facilities), *agent_names]
    secrets_ = _credentials(data / "credentials.yaml", names)
    passwd = PasswordFile(data / "passwd")
    have = {u.identity.name for u in passwd.users()}
    for name in names:
        if name in have:
            continue
        if name == "hub":
            identity = Identity(name, "hub")
        elif name.startswith("edge-"):
            identity = Identity(name, "edge", facility=name.removeprefix("edge-"))
        else:
            facility = next(f for f, specs in fleets.items()
                            if any(s.agent_id == name for s in specs))
            identity = Identity(name, "agent", facility=facility)
        passwd.add(identity, secrets_[name])

    for i, _ in enumerate(facilities):
        if not _port_free(args.host, args.metrics_port + i):
            raise CliError(f"port {args.metrics_port + i} on {args.host} is already in use; "
                           "pick another with --metrics-port (or FLEETFLOW_METRICS_PORT)")

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    broker = BrokerProcess(args.host, args.port, data / "passwd",
                           log_file=data / "logs" / "broker.log")
    edges: dict[str, subprocess.Popen[bytes]] = {}
    runners: list[FleetRunner] = []
    planner: DemoPlanner | None = None
    try:
        try:
            broker.start()
        except BrokerStartError as exc:
            raise CliError(str(exc).removeprefix("fleetflow broker: ")) from None
        url = f"mqtt://{args.host}:{args.port}"
        print(f"broker      {url}  (users: {data / 'passwd'}, log: {data / 'logs'})", flush=True)
        for i, facility in enumerate(facilities):
            edges[facility] = _start_edge(args, facility, i, url, secrets_[f"edge-{facility}"])
        for i, facility in enumerate(facilities):
            _wait_edge_online(args, facility, secrets_["hub"], edges[facility])
            print(f"edge        facility {facility!r}  metrics "
                  f"http://{args.host}:{args.metrics_port + i}/metrics", flush=True)
        from agents_sim.native import FleetRunner

        for facility, specs in fleets.items():
            if not specs:
                continue
            runner = FleetRunner(facility, specs, host=args.host, port=args.port,
                                 credentials=lambda name: (name, secrets_[name]))
            runner.start()
            runners.append(runner)
            print(f"fleet       {len(specs)} simulated agents in {facility!r}", flush=True)
        if args.workflow_every > 0 and any(fleets.values()):
            from agents_sim.planner import DemoPlanner

            planner = DemoPlanner(args.host, args.port, facilities, demo_templates,
                                  every_s=args.workflow_every, password=secrets_["hub"],
                                  client_id="up-demo-planner").start()
            print(f"workflows   one demo workflow every {args.workflow_every:g} s "
                  f"({', '.join(demo_templates)})", flush=True)
        print("hub API     not part of this build yet (see docs/)", flush=True)
        print("ready; Ctrl-C stops everything", flush=True)
        while not stop.wait(0.5):
            for facility, proc in edges.items():
                if proc.poll() is not None:
                    raise CliError(f"the edge of {facility!r} exited with status "
                                   f"{proc.returncode}; see {data / 'logs'}")
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        print("stopping…", flush=True)
        if planner is not None:
            planner.stop()
        for runner in runners:
            runner.stop()
        for proc in edges.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in edges.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        broker.stop()
    return 0


def _start_edge(args: argparse.Namespace, facility: str, index: int, url: str,
                password: str) -> subprocess.Popen[bytes]:
    log = open(Path(args.data) / "logs" / f"edge-{facility}.log", "ab")  # noqa: SIM115
    env = {**os.environ, "FLEETFLOW_EDGE_PASSWORD": password}
    cmd = [sys.executable, "-m", "fleetflow", "edge", "--facility", facility, "--broker", url,
           "--username", f"edge-{facility}", "--data", str(Path(args.data) / f"edge-{facility}"),
           "--map", args.map, "--templates", args.templates,
           "--metrics-port", str(args.metrics_port + index), "--metrics-host", args.host]
    from broker import die_with_parent

    # Own session: Ctrl-C reaches only `up`, which stops the parts in order (edge before
    # broker); and if `up` itself is killed, the edge gets SIGTERM rather than living on.
    return subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                            start_new_session=True, preexec_fn=die_with_parent)


def _wait_edge_online(args: argparse.Namespace, facility: str, hub_password: str,
                      proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Wait for the edge's retained online status (what the hub would see)."""
    from agents_sim.planner import wait_edge_online

    online = wait_edge_online(args.host, args.port, facility, password=hub_password,
                              timeout=timeout, give_up=lambda: proc.poll() is not None,
                              client_id=f"up-wait-{facility}")
    if online:
        return
    if proc.poll() is not None:
        raise CliError(f"the edge of {facility!r} exited with status {proc.returncode}"
                       f" at start; see {Path(args.data) / 'logs'}")
    raise CliError(f"the edge of {facility!r} did not come online within "
                   f"{timeout:g} s; see {Path(args.data) / 'logs'}")
