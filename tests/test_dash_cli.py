"""``fleetflow dashboard``: Streamlit as a child with the token in its environment only, the
URL printed once it answers, SIGTERM forwarded, the child's status as its own; bad input
(no token, a port in use) one line and exit 2."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

import httpx
import pytest
from conftest import free_port
from hub_stack import PYTHON, ROOT, wait_for

pytestmark = pytest.mark.slow
TOKEN = "ff_0123456789ab_" + "S" * 43


def _dashboard(*args: str, env: dict[str, str] | None = None,
               out: Path | None = None) -> subprocess.Popen[bytes]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FLEETFLOW_")}
    sink = out.open("wb") if out is not None else subprocess.PIPE
    try:
        return subprocess.Popen([PYTHON, "-m", "fleetflow", "dashboard", *args], cwd=ROOT,
                                env={**clean, **(env or {})}, stdout=sink,
                                stderr=subprocess.PIPE)
    finally:
        if out is not None:
            sink.close()  # type: ignore[union-attr]


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(stat[1]) == pid:
                found.append(int(entry))
    return found


def test_no_token_is_one_line_and_exit_2() -> None:
    """Without --token, --token-file or FLEETFLOW_API_TOKEN: one line naming them, exit 2."""
    proc = _dashboard("--port", str(free_port()))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert err.decode().strip().count("\n") == 0 and "--token-file" in err.decode()


def test_a_port_in_use_is_one_line_and_exit_2() -> None:
    """A port something listens on: one line naming it and --port, exit 2, no traceback."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = _dashboard("--port", str(port), "--token", TOKEN)
        _, err = proc.communicate(timeout=60)
    text = err.decode()
    assert proc.returncode == 2 and "Traceback" not in text
    assert str(port) in text and "--port" in text and text.strip().count("\n") == 0


def test_it_serves_keeps_the_token_off_command_lines_and_stops_on_sigterm(
        tmp_path: Path) -> None:
    """It prints the URL once Streamlit answers; the token is in the child's environment,
    not on its command line; SIGTERM stops both, exit 0."""
    port = free_port()
    out = tmp_path / "out"
    proc = _dashboard("--port", str(port), "--api", "http://127.0.0.1:9", "--refresh", "5",
                      env={"FLEETFLOW_API_TOKEN": TOKEN}, out=out)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: f"fleetflow dashboard: {url}" in out.read_text()
                 or proc.poll() is not None, 90, "the URL line")
        assert proc.poll() is None, out.read_text()
        assert httpx.get(f"{url}/_stcore/health", timeout=5).status_code == 200
        (child,) = _children(proc.pid)
        cmdline = Path(f"/proc/{child}/cmdline").read_bytes().decode()
        environ = Path(f"/proc/{child}/environ").read_bytes().decode()
        assert "streamlit" in cmdline and TOKEN not in cmdline
        assert f"FLEETFLOW_API_TOKEN={TOKEN}" in environ
        assert "FLEETFLOW_DASHBOARD_REFRESH_S=5" in environ
        assert "FLEETFLOW_API_URL=http://127.0.0.1:9" in environ
    finally:
        proc.send_signal(signal.SIGTERM)
        status = proc.wait(30)
    assert status == 0, out.read_text()
    assert not os.path.exists(f"/proc/{child}")  # stopped, and reaped by its parent
