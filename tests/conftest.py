"""Fixtures shared by the whole suite: free ports, the Mosquitto requirement, a Mosquitto."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from broker import mqtt_ready


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def port() -> int:
    """A free port for this test."""
    return free_port()


@pytest.fixture(scope="session")
def mosquitto_bin() -> str:
    """Path of the ``mosquitto`` binary; skips without it unless FLEETFLOW_REQUIRE_MOSQUITTO=1."""
    path = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None
    )
    if path is None:
        if os.environ.get("FLEETFLOW_REQUIRE_MOSQUITTO") == "1":
            pytest.fail("mosquitto is required (FLEETFLOW_REQUIRE_MOSQUITTO=1) but not installed")
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    return path


@contextmanager
def run_mosquitto(binary: str, workdir: Path, port: int | None = None,
                  extra_conf: str = "") -> Iterator[int]:
    """Run an anonymous Mosquitto on ``port`` (a free one if None) until MQTT answers.

    ``extra_conf`` lines are appended to the config. Yields the port; the broker is
    stopped (killed if it lingers) on the way out.
    """
    port = port or free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    + extra_conf)
    proc = subprocess.Popen([binary, "-c", str(conf)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not mqtt_ready("127.0.0.1", port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mosquitto did not start on port {port}")
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def mosquitto_port(mosquitto_bin: str, tmp_path: Path) -> Iterator[int]:
    """An anonymous Mosquitto on a free port for this test; yields the port."""
    with run_mosquitto(mosquitto_bin, tmp_path) as port:
        yield port
