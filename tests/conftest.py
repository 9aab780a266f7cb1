"""Fixtures shared by the whole suite: free ports and the Mosquitto requirement."""

from __future__ import annotations

import os
import shutil
import socket

import pytest


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
