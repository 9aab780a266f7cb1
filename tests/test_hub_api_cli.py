"""``fleetflow hub`` as a process: it serves until SIGTERM, then exits 0 and lets go of its
store (a second run on the same data starts); bad flags are one line and exit 2."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import httpx
import pytest
from conftest import free_port
from hub_stack import PYTHON, ROOT, wait_for

pytestmark = pytest.mark.slow


def _hub(port: int, api_port: int, data: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen([PYTHON, "-m", "fleetflow", "hub", "--broker",
                                 f"mqtt://127.0.0.1:{port}", "--data", str(data),
                                 "--port", str(api_port)], cwd=ROOT, stdout=out, stderr=out)


def test_sigterm_stops_cleanly_and_frees_the_store(mosquitto_port: int, tmp_path: Path
                                                   ) -> None:
    """SIGTERM: exit 0; the same data directory serves again at once."""
    log = tmp_path / "hub.log"
    for _ in range(2):
        api_port = free_port()
        proc = _hub(mosquitto_port, api_port, tmp_path / "hub", log)
        try:
            health = f"http://127.0.0.1:{api_port}/health"
            wait_for(lambda: httpx.get(health, timeout=2).status_code == 200,  # noqa: B023
                     what=log.read_text)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(20) == 0, log.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert "Traceback" not in log.read_text()
    loaded = next(line for line in log.read_text().splitlines()
                  if line.startswith("fleetflow hub: templates "))
    assert "pick_and_deliver" in loaded and "the shipped templates/" in loaded, loaded


@pytest.mark.parametrize("flags", [["--port", "70000"], ["--broker", "http://x"],
                                   ["--command-timeout", "0"]])
def test_bad_flags_exit_2(flags: list[str], tmp_path: Path) -> None:
    """A bad flag is one sentence on stderr and exit status 2; nothing is created."""
    r = subprocess.run([PYTHON, "-m", "fleetflow", "hub", "--data", str(tmp_path / "h"),
                        *flags], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.startswith("fleetflow hub: "), r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "h").exists()


def test_a_refused_login_is_said_once_in_the_log(tmp_path: Path) -> None:
    """A broker that refuses the hub's user: the hub logs why (once, not per retry) and
    keeps serving its API."""
    from broker import BrokerProcess, Identity, PasswordFile

    port, api_port = free_port(), free_port()
    PasswordFile(tmp_path / "passwd").add(Identity("hub", "hub"), "right")
    broker = BrokerProcess("127.0.0.1", port, tmp_path / "passwd")
    broker.start()
    log = tmp_path / "hub.log"
    try:
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                [PYTHON, "-m", "fleetflow", "hub", "--broker", f"mqtt://127.0.0.1:{port}",
                 "--username", "hub", "--password", "wrong", "--data", str(tmp_path / "hub"),
                 "--port", str(api_port)], cwd=ROOT, stdout=out, stderr=out)
        try:
            wait_for(lambda: "the broker refused the hub's connection" in log.read_text(),
                     what=log.read_text)
            health = httpx.get(f"http://127.0.0.1:{api_port}/health", timeout=5)
            assert health.status_code == 200
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(20)
    finally:
        broker.stop()
    said = [line for line in log.read_text().splitlines() if "refused the hub's" in line]
    assert len(said) == 1 and "retrying" in said[0], said
