"""``fleetflow up`` in a child process on free ports with a temporary data dir, for the
tests of ``up`` (no test here). Every stack is stopped — its whole process group killed if
it does not stop by itself — when the ``with`` block ends."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from broker import free_port

ROOT = Path(__file__).resolve().parent.parent
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else sys.executable
SCRIPT = ROOT / "scripts" / "test_workflow_state_management.sh"


def _free_pair() -> int:
    """A free port whose next one is free too: ``up`` serves its edges' metrics on
    ``--metrics-port`` and the one after it."""
    for _ in range(100):
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two free ports in a row on 127.0.0.1")


class Up:
    """One ``fleetflow up``: its ports, data dir, output lines, and an API client."""

    def __init__(self, tmp: Path, *extra: str, data: Path | None = None) -> None:
        self.mqtt_port, self.metrics_port, self.api_port = free_port(), _free_pair(), free_port()
        self.data = data or tmp / "ff"
        self.api = f"http://127.0.0.1:{self.api_port}"
        self.dashboard_port = free_port()
        self.dashboard = f"http://127.0.0.1:{self.dashboard_port}"
        self.out_path = tmp / f"up-{self.api_port}.out"
        self.err_path = tmp / f"up-{self.api_port}.err"
        self.cmd = [PYTHON, "-m", "fleetflow", "up", "--port", str(self.mqtt_port),
                    "--metrics-port", str(self.metrics_port), "--api-port", str(self.api_port),
                    "--dashboard-port", str(self.dashboard_port), "--data", str(self.data),
                    *extra]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Up:
        with self.out_path.open("wb") as out, self.err_path.open("wb") as err:
            self.proc = subprocess.Popen(self.cmd, cwd=ROOT, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=err, start_new_session=True)
        return self

    @property
    def output(self) -> str:
        return self.out_path.read_text(errors="replace")

    @property
    def errors(self) -> str:
        return self.err_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 120.0) -> str:
        """Wait for the ``ready`` line; the output so far (fails if ``up`` exits first)."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while "\nready" not in self.output:
            assert self.proc.poll() is None, f"`up` exited at start:\n{self.output}{self.errors}"
            assert time.monotonic() < deadline, f"`up` not ready:\n{self.output}{self.errors}"
            time.sleep(0.2)
        return self.output

    def token(self) -> str:
        return (self.data / "admin-token").read_text().strip()

    def client(self, token: str | None = None) -> httpx.Client:
        """An HTTP client of the hub's API with the admin token (or ``token``)."""
        return httpx.Client(base_url=self.api, timeout=30.0,
                            headers={"Authorization": f"Bearer {token or self.token()}"})

    def stop(self, sig: int = signal.SIGINT, timeout: float = 90.0) -> int:
        """Send ``sig`` (Ctrl-C by default) and wait; its exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def kill_all(self) -> None:
        """Kill ``up``'s whole process group, if anything of it is left."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def __enter__(self) -> Up:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.kill_all()


def ours(marker: str) -> list[str]:
    """Command lines of the live processes that mention ``marker`` (a data dir)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue  # gone meanwhile
        if marker in cmd and state != "Z":
            found.append(f"{pid}: {cmd.strip()}")
    return found


def wait_gone(marker: str, timeout: float = 30.0) -> None:
    """Wait until no live process mentions ``marker``; fail naming those left."""
    deadline = time.monotonic() + timeout
    while left := ours(marker):
        assert time.monotonic() < deadline, f"left running: {left}"
        time.sleep(0.2)


def workflows(client: httpx.Client, **params: Any) -> dict[str, Any]:
    """``GET /api/v1/workflows`` with ``params``; the page (fails on a non-200)."""
    r = client.get("/api/v1/workflows", params=params)
    assert r.status_code == 200, r.text
    page: dict[str, Any] = r.json()
    return page
