"""Fixtures shared by the whole suite: free ports, required tools, a Mosquitto, and the
Hypothesis profiles ("ci" when the CI variable is set, else "dev")."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import pytest
from hypothesis import HealthCheck, settings

from broker import free_port as free_port  # re-exported for the tests
from broker import mosquitto

# Timing is not what these tests check (``fleetflow bench`` measures speed): no deadlines.
settings.register_profile("dev", deadline=None)
settings.register_profile("ci", deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")


def missing(what: str, install: str) -> NoReturn:
    """Skip a test for lack of ``what``; fail it instead when FLEETFLOW_REQUIRE_MOSQUITTO=1
    (CI), so that no area of the suite is skipped there unnoticed."""
    if os.environ.get("FLEETFLOW_REQUIRE_MOSQUITTO") == "1":
        pytest.fail(f"{what} is required (FLEETFLOW_REQUIRE_MOSQUITTO=1) but missing: {install}")
    pytest.skip(f"{what} is missing ({install})")


def require_tool(name: str, install: str) -> str:
    """Path of the command-line tool ``name``; if absent, see :func:`missing`."""
    return shutil.which(name) or missing(name, install)


@pytest.fixture
def port() -> int:
    """A free port for this test."""
    return free_port()


@pytest.fixture(scope="session")
def mosquitto_bin() -> str:
    """Path of the ``mosquitto`` binary; skips without it unless FLEETFLOW_REQUIRE_MOSQUITTO=1."""
    if shutil.which("mosquitto") is None and os.path.exists("/usr/sbin/mosquitto"):
        return "/usr/sbin/mosquitto"  # Debian puts it off a user's PATH
    return require_tool("mosquitto", "apt-get install mosquitto")


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
