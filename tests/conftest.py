"""Fixtures shared by the whole suite: free ports, the Mosquitto requirement, a Mosquitto."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bench._e2e_wire import free_port as free_port  # re-exported for the tests
from bench._e2e_wire import mosquitto


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
    with mosquitto(conf, port, binary):
        yield port


@pytest.fixture
def mosquitto_port(mosquitto_bin: str, tmp_path: Path) -> Iterator[int]:
    """An anonymous Mosquitto on a free port for this test; yields the port."""
    with run_mosquitto(mosquitto_bin, tmp_path) as port:
        yield port
