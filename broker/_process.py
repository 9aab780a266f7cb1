"""``BrokerProcess``: the embedded broker as a child process (``python -m fleetflow broker``),
and the small process and port helpers every launcher of ours shares."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Any

__all__ = [
    "BrokerProcess",
    "BrokerStartError",
    "die_with_parent",
    "free_port",
    "mqtt_ready",
    "stop_process",
]

# MQTT 3.1.1 CONNECT: clean session, keep-alive 60, empty client id, no credentials.
# Any CONNACK (even "not authorized") proves the broker is serving MQTT.
_PROBE = bytes([0x10, 12, 0, 4]) + b"MQTT" + bytes([4, 0x02, 0, 60, 0, 0])


_READY_LINE = "fleetflow broker: listening on"


class BrokerStartError(RuntimeError):
    """The broker process exited or never answered; the message quotes its error."""


def mqtt_ready(host: str, port: int, timeout: float = 1.0) -> bool:
    """Does an MQTT broker answer a CONNECT on ``host:port`` right now?"""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(_PROBE)
            return s.recv(4)[:1] == b"\x20"
    except OSError:
        return False


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now (the OS picks it).

    Another process may take it before the caller binds it; tests and benchmarks accept
    that small race for the sake of running side by side.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def stop_process(proc: subprocess.Popen[Any], timeout: float = 10.0) -> int:
    """Stop a child process: SIGTERM, then SIGKILL after ``timeout``; returns its status."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def _parent_death_signal() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get SIGTERM when its parent dies (Linux only).

    Without it a parent killed with SIGKILL leaves its broker (or edge) running, holding the
    port. Resolved here, in the parent: the child only makes one system call before exec.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def set_signal() -> None:
        prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

    return set_signal


die_with_parent = _parent_death_signal()
"""``preexec_fn`` for child processes that must not outlive their parent (None off Linux)."""


class BrokerProcess:
    """Run ``fleetflow broker`` in a child process; a context manager.

    ``start()`` returns once the broker answers MQTT on ``host:port``; it raises
    ``BrokerStartError`` with the broker's own one-line error (e.g. port in use) if the
    process dies first.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 1883,
        passwd: str | os.PathLike[str] = ".fleetflow/passwd",
        *,
        allow_anonymous_dev: bool = False,
        tls_port: int | None = None,
        certfile: str | os.PathLike[str] | None = None,
        keyfile: str | os.PathLike[str] | None = None,
        log_file: str | os.PathLike[str] | None = None,
        start_timeout: float = 15.0,
    ) -> None:
        self.host: str = host
        """Address the broker listens on."""
        self.port: int = port
        """Plain MQTT port."""
        self.passwd: Path = Path(passwd)
        """The user file."""
        self.allow_anonymous_dev: bool = allow_anonymous_dev
        """Admit clients without user name (admin ACL)."""
        self.tls_port: int | None = tls_port
        """Optional TLS port."""
        self.certfile: Path | None = None if certfile is None else Path(certfile)
        """TLS certificate (PEM)."""
        self.keyfile: Path | None = None if keyfile is None else Path(keyfile)
        """TLS key (PEM)."""
        self.log_file: Path | None = None if log_file is None else Path(log_file)
        """Where the broker's stdout/stderr go (default: a temporary file)."""
        self.start_timeout: float = start_timeout
        """Seconds ``start()`` waits for the broker to answer."""
        self.process: subprocess.Popen[bytes] | None = None
        """The child process while it runs."""
        self._log: IO[bytes] | None = None
        self._log_start = 0

    def command(self) -> list[str]:
        """The command line of the child process."""
        cmd = [sys.executable, "-m", "fleetflow", "broker", "--host", self.host,
               "--port", str(self.port), "--passwd", str(self.passwd)]
        if self.allow_anonymous_dev:
            cmd.append("--allow-anonymous-dev")
        if self.tls_port is not None:
            cmd += ["--tls-port", str(self.tls_port), "--certfile", str(self.certfile),
                    "--keyfile", str(self.keyfile)]
        return cmd

    def start(self) -> BrokerProcess:
        """Spawn the broker and wait until it serves MQTT."""
        if self.process is not None:
            raise RuntimeError("the broker process is already running")
        # O_APPEND: the child writes at the end even while we seek around to read.
        if self.log_file is not None:
            self._log = open(self.log_file, "a+b")  # noqa: SIM115 (lives as long as the child)
        else:
            fd, name = tempfile.mkstemp(prefix="fleetflow-broker-", suffix=".log")
            os.close(fd)
            self._log = open(name, "a+b")  # noqa: SIM115
            os.unlink(name)
        self._log_start = self._log.seek(0, os.SEEK_END)
        self.process = subprocess.Popen(
            self.command(), stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
            start_new_session=True,  # the parent decides when it stops (Ctrl-C hits a group)
            preexec_fn=die_with_parent,
        )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                message = self._last_error()
                self._cleanup()
                raise BrokerStartError(message)
            # Our child's own "listening" line first: another broker may hold the port.
            if _READY_LINE in self._output() and mqtt_ready(self.host, self.port):
                return self
            time.sleep(0.05)
        self.stop()
        raise BrokerStartError(
            f"fleetflow broker: no MQTT answer on {self.host}:{self.port} "
            f"within {self.start_timeout:g} s"
        )

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the broker (SIGKILL after ``timeout``); returns its exit status."""
        proc = self.process
        if proc is None:
            return None
        status = stop_process(proc, timeout)
        self._cleanup()
        return status

    def _output(self) -> str:
        assert self._log is not None
        self._log.seek(self._log_start)
        return self._log.read().decode(errors="replace")

    def _last_error(self) -> str:
        lines = [ln for ln in self._output().splitlines() if ln]
        status = self.process.returncode if self.process is not None else None
        return lines[-1] if lines else f"fleetflow broker exited with status {status}"

    def _cleanup(self) -> None:
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> BrokerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
