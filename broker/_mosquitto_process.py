"""Run Mosquitto as a child process: the one launcher that tests, benchmarks and demos share.

``write_mosquitto_config`` (``broker._mosquitto``) writes production files; this module only
starts a ``mosquitto`` binary on a config file, waits until it answers MQTT and stops it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from broker._process import mqtt_ready, stop_process

__all__ = ["MOSQUITTO_PATH", "find_mosquitto", "mosquitto"]

MOSQUITTO_PATH = "/usr/sbin/mosquitto"
"""Where Debian and Ubuntu install the broker; ``sbin`` is often not on a user's PATH."""


def find_mosquitto() -> str | None:
    """The ``mosquitto`` binary: on PATH, else ``MOSQUITTO_PATH``; None if not installed."""
    found = shutil.which("mosquitto")
    if found is not None:
        return found
    return MOSQUITTO_PATH if os.path.exists(MOSQUITTO_PATH) else None


@contextmanager
def mosquitto(conf: str | os.PathLike[str], port: int, binary: str | None = None,
              *, start_timeout: float = 10.0) -> Iterator[subprocess.Popen[bytes]]:
    """Run Mosquitto with the config file ``conf`` until it answers MQTT on ``port``.

    Its output goes to ``conf`` with the suffix ``.log``. Raises ``FileNotFoundError`` if no
    binary is found, and ``RuntimeError`` quoting Mosquitto's last words if it exits or stays
    silent for ``start_timeout`` seconds. Stopped (SIGTERM, then SIGKILL) on the way out.
    """
    binary = binary or find_mosquitto()
    if binary is None:
        raise FileNotFoundError("mosquitto is not installed (apt-get install mosquitto)")
    conf = Path(conf)
    log = conf.with_suffix(".log")
    with open(log, "wb") as out:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen([binary, "-c", str(conf)], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + start_timeout
        while not mqtt_ready("127.0.0.1", port):
            if proc.poll() is not None or time.monotonic() > deadline:
                said = log.read_text(errors="replace").strip().splitlines()[-3:]
                raise RuntimeError(f"mosquitto did not start on port {port}: "
                                   f"{' / '.join(said) or 'no output'}")
            time.sleep(0.02)
        yield proc
    finally:
        stop_process(proc)
