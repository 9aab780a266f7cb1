"""The parts ``fleetflow up`` starts, each a small function: credentials, the edge and hub
processes, the API tokens, and stopping a child process.

The hub runs as its own ``fleetflow hub`` process, like each edge, rather than inside
``up``: it is then exactly what a deployment runs (same flags, same signal handling by
uvicorn, its own log file), its RocksDB store has one owner process, and a crash of the hub
shows as a process that exited — ``up`` notices and stops everything rather than serve a
half-dead system.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "ADMIN_TOKEN_FILE", "DASHBOARD_NAME", "DASHBOARD_TOKEN_FILE", "PLANNER_NAME", "admin_token",
    "credentials", "dashboard_token", "fleet_capabilities", "planner_token", "port_free",
    "start_dashboard", "start_edge", "start_hub", "stop_child",
]

ADMIN_TOKEN_FILE = "admin-token"
"""Under the data dir: the admin token ``up`` printed (mode 0600), for scripts."""
PLANNER_NAME = "up-planner"
"""The identity of the demo planner's token: the ``who`` of the workflows it creates."""
DASHBOARD_NAME = "dashboard"
"""The identity of the dashboard's ``supervisor`` token: the ``who`` of what it does."""
DASHBOARD_TOKEN_FILE = "dashboard-token"
"""Under the data dir: the dashboard's token (mode 0600), read by ``--token-file``."""


def credentials(path: Path, names: list[str]) -> dict[str, str]:
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


def port_free(host: str, port: int) -> bool:
    """Can ``port`` on ``host`` be bound right now?"""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def fleet_capabilities(templates: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    """Per agent kind, every capability some template step of that kind asks for."""
    caps: dict[str, set[str]] = {"robot": set(), "human": set(), "ai": set()}
    for template in templates.values():
        for step in template.steps:
            for s in (step, step.compensation):
                if s is not None and s.kind in caps:
                    caps[s.kind].update(s.capabilities)
    return {kind: tuple(sorted(c)) for kind, c in caps.items()}


def _spawn(cmd: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    from broker import die_with_parent

    with open(log_path, "ab") as log:
        # Own session: Ctrl-C reaches only `up`, which stops the parts in order; and if `up`
        # itself is killed, the child gets SIGTERM rather than living on.
        return subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=log, start_new_session=True,
                                preexec_fn=die_with_parent)


def start_edge(args: argparse.Namespace, facility: str, index: int, url: str,
               password: str) -> subprocess.Popen[bytes]:
    """``fleetflow edge`` for ``facility``: store ``DATA/edge-<facility>``, log
    ``DATA/logs/edge-<facility>.log``, metrics on ``--metrics-port`` + ``index``."""
    data = Path(args.data)
    cmd = [sys.executable, "-m", "fleetflow", "edge", "--facility", facility, "--broker", url,
           "--username", f"edge-{facility}", "--data", str(data / f"edge-{facility}"),
           "--map", args.map, "--templates", args.templates,
           "--metrics-port", str(args.metrics_port + index), "--metrics-host", args.host,
           "--record-inputs"]  # a stack to try things on: its runs can be replayed (sim --replay)
    env = {**os.environ, "FLEETFLOW_EDGE_PASSWORD": password}
    return _spawn(cmd, env, data / "logs" / f"edge-{facility}.log")


def start_hub(args: argparse.Namespace, url: str, password: str) -> subprocess.Popen[bytes]:
    """``fleetflow hub`` as MQTT user ``hub`` (the broker's hub role): store and tokens in
    ``DATA/hub``, API on ``--host``:``--api-port``, log ``DATA/logs/hub.log``."""
    data = Path(args.data)
    cmd = [sys.executable, "-m", "fleetflow", "hub", "--broker", url, "--username", "hub",
           "--data", str(data / "hub"), "--templates", args.templates,
           "--host", args.host, "--port", str(args.api_port),
           "--maps", args.map]  # the edges' map, for the dashboard's Agents page
    env = {**os.environ, "FLEETFLOW_HUB_PASSWORD": password}
    return _spawn(cmd, env, data / "logs" / "hub.log")


def admin_token(data: Path) -> str:
    """The admin token of this data dir: the one in ``DATA/admin-token`` while the hub's
    token file still accepts it (so scripts keep working across restarts of ``up``), else
    a new one (replacing a revoked or lost one), written there with mode 0600."""
    from broker import write_private
    from cloud_hub import Role, TokenStore

    store = TokenStore.in_dir(data / "hub")
    path = data / ADMIN_TOKEN_FILE
    if path.exists():
        kept = path.read_text().strip()
        info = store.check(kept)
        if info is not None and info.role is Role.admin:
            return kept
    token = store.create("admin", Role.admin, replace=True)
    write_private(path, token + "\n")
    return token


def planner_token(data: Path) -> str:
    """A fresh ``planner`` token for the demo planner (its previous one is revoked)."""
    from cloud_hub import Role, TokenStore

    return TokenStore.in_dir(data / "hub").create(PLANNER_NAME, Role.planner, replace=True)


def dashboard_token(data: Path) -> Path:
    """A fresh ``supervisor`` token named ``dashboard`` (its previous one is revoked), in
    ``DATA/dashboard-token`` (mode 0600); that file's path."""
    from broker import write_private
    from cloud_hub import Role, TokenStore

    token = TokenStore.in_dir(data / "hub").create(DASHBOARD_NAME, Role.supervisor,
                                                   replace=True)
    path = data / DASHBOARD_TOKEN_FILE
    write_private(path, token + "\n")
    return path


def start_dashboard(args: argparse.Namespace, port: int,
                    token_file: Path) -> subprocess.Popen[bytes]:
    """``fleetflow dashboard`` on ``--host``:``port`` against the hub's API, with the token
    of ``token_file``; log ``DATA/logs/dashboard.log``."""
    data = Path(args.data)
    cmd = [sys.executable, "-m", "fleetflow", "dashboard",
           "--api", f"http://{args.host}:{args.api_port}", "--token-file", str(token_file),
           "--host", args.host, "--port", str(port)]
    return _spawn(cmd, dict(os.environ), data / "logs" / "dashboard.log")


def stop_child(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout``; waits, so no zombie stays."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
