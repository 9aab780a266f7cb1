"""``fleetflow dashboard``: the supervisors' Streamlit dashboard (``dashboard/app.py``) against
one hub's API (docs/dashboard.md).

It runs ``<python> -m streamlit run dashboard/app.py`` as a child with the hub's URL, the
token and the refresh period in the child's environment (``FLEETFLOW_API_URL``,
``FLEETFLOW_API_TOKEN``, ``FLEETFLOW_DASHBOARD_REFRESH_S``) — the token never on a command
line, where ``ps`` shows it. It prints the dashboard's URL once Streamlit answers, forwards
SIGINT/SIGTERM to the child and exits with the child's status. A port in use is one line,
exit 2. ``fleetflow up`` runs this command too (``_up_parts.start_dashboard``).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from fleetflow._errors import CliError, port_in_use

__all__ = ["APP", "register", "streamlit_command"]

APP = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"
"""The dashboard's entry script (a sibling package, installed with this one)."""
DEFAULT_API = "http://127.0.0.1:8003"
DEFAULT_PORT = 3000


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"FLEETFLOW_{name}", default)


def register(sub: Any) -> None:
    """Add the ``dashboard`` subcommand."""
    p = sub.add_parser("dashboard", help="run the supervisors' Streamlit dashboard against "
                                         "a hub's API")
    p.add_argument("--api", default=_env("API_URL", DEFAULT_API), metavar="URL",
                   help="the hub's API (env FLEETFLOW_API_URL; default %(default)s)")
    token = p.add_mutually_exclusive_group()
    token.add_argument("--token", default=None,
                       help="bearer token (prefer --token-file or env FLEETFLOW_API_TOKEN: "
                            "arguments show in ps)")
    token.add_argument("--token-file", default=None, metavar="FILE",
                       help="a file holding the bearer token (fleetflow up writes "
                            "DATA/dashboard-token)")
    p.add_argument("--host", default=_env("DASHBOARD_HOST", "127.0.0.1"),
                   help="address the dashboard binds (default %(default)s)")
    p.add_argument("--port", type=int,
                   default=int(_env("DASHBOARD_PORT", str(DEFAULT_PORT)) or DEFAULT_PORT),
                   help="the dashboard's port (env FLEETFLOW_DASHBOARD_PORT; default "
                        "%(default)s)")
    p.add_argument("--refresh", type=float,
                   default=float(_env("DASHBOARD_REFRESH_S", "2") or 2), metavar="S",
                   help="seconds between two refreshes of the live parts (default "
                        "%(default)s)")
    p.set_defaults(handler=_run)


def _token(args: argparse.Namespace) -> str:
    if args.token_file is not None:
        try:
            token = Path(args.token_file).read_text().strip()
        except OSError as exc:
            raise CliError(f"cannot read --token-file {args.token_file}: "
                           f"{exc.strerror or exc}") from None
        if not token:
            raise CliError(f"--token-file {args.token_file} is empty")
        return token
    token = (args.token or _env("API_TOKEN") or "").strip()
    if not token:
        raise CliError("no API token: pass --token-file FILE (or --token, or env "
                       "FLEETFLOW_API_TOKEN); `fleetflow hub token create --role supervisor` "
                       "makes one")
    return token


def _check(args: argparse.Namespace) -> None:
    from fleetflow._up_parts import port_free

    if not args.api.startswith(("http://", "https://")):
        raise CliError(f"--api {args.api!r} is not an http:// or https:// URL")
    if not 0 < args.port <= 65535:
        raise CliError(f"--port {args.port} is not a port number")
    if not 0 < args.refresh <= 3600:
        raise CliError("--refresh must be a number of seconds between 0 and 3600")
    if not port_free(args.host, args.port):
        raise port_in_use("--port", args.port, args.host, env="FLEETFLOW_DASHBOARD_PORT")


def streamlit_command(host: str, port: int) -> list[str]:
    """The child's command line (no token on it)."""
    return [sys.executable, "-m", "streamlit", "run", str(APP),
            "--server.port", str(port), "--server.address", host,
            "--server.headless", "true", "--browser.gatherUsageStats", "false",
            "--client.toolbarMode", "minimal",  # no "Deploy" button for supervisors
            # A deployed dashboard's sources do not change: no file watcher polling them.
            "--server.fileWatcherType", "none"]


def _child_env(api: str, token: str, refresh: float) -> dict[str, str]:
    root = str(APP.parent.parent)
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "FLEETFLOW_API_URL": api, "FLEETFLOW_API_TOKEN": token,
            "FLEETFLOW_DASHBOARD_REFRESH_S": f"{refresh:g}", "PYTHONPATH": path}


def _answers(url: str) -> bool:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _run(args: argparse.Namespace) -> int:
    from broker import die_with_parent

    token = _token(args)
    _check(args)
    url = f"http://{args.host}:{args.port}"
    proc = subprocess.Popen(streamlit_command(args.host, args.port),
                            env=_child_env(args.api, token, args.refresh),
                            stdin=subprocess.DEVNULL, start_new_session=True,
                            preexec_fn=die_with_parent)

    def forward(sig: int, _frame: Any) -> None:
        if proc.poll() is None:
            proc.send_signal(sig)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, forward)
    while proc.poll() is None and not _answers(url):
        time.sleep(0.2)
    if proc.poll() is None:
        print(f"fleetflow dashboard: {url}  (hub API {args.api}, refresh "
              f"{args.refresh:g} s)", flush=True)
    status = proc.wait()
    print(f"fleetflow dashboard: stopped at {time.time():.3f} (status {status})", flush=True)
    return 128 - status if status < 0 else status
