"""Run the embedded amqtt broker with Fleetflow's auth and ACL plugins until a signal."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["BrokerSettings", "PortInUseError", "amqtt_config", "run_broker", "serve"]

_PLUGINS = "broker._amqtt_plugins"


class PortInUseError(OSError):
    """The listening port is taken by another process."""

    def __init__(self, host: str, port: int, flag: str = "--port") -> None:
        super().__init__(errno.EADDRINUSE, f"port {port} on {host} is already in use")
        self.host: str = host
        """The address the broker tried to bind."""
        self.port: int = port
        """The port in use."""
        self.flag: str = flag
        """The command-line flag that picks another port."""


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    """How to run the embedded broker."""

    host: str = "127.0.0.1"
    """Address to listen on."""
    port: int = 1883
    """Plain MQTT port."""
    passwd: Path = Path(".fleetflow/passwd")
    """The user file (see ``PasswordFile``)."""
    allow_anonymous_dev: bool = False
    """Admit clients without a user name, with the admin ACL (development only)."""
    tls_port: int | None = None
    """Optional MQTT-over-TLS port (needs ``certfile`` and ``keyfile``)."""
    certfile: Path | None = None
    """PEM server certificate for the TLS listener."""
    keyfile: Path | None = None
    """PEM private key for the TLS listener."""


def amqtt_config(settings: BrokerSettings) -> dict[str, Any]:
    """The amqtt 0.12 broker config: our listeners, and ONLY our two plugins."""
    listeners: dict[str, Any] = {
        "default": {"type": "tcp", "bind": _bind(settings.host, settings.port)},
    }
    if settings.tls_port is not None:
        if settings.certfile is None or settings.keyfile is None:
            raise ValueError("a TLS listener needs both a certificate file and a key file")
        listeners["tls"] = {
            "type": "tcp",
            "bind": _bind(settings.host, settings.tls_port),
            "ssl": True,
            "certfile": str(settings.certfile),
            "keyfile": str(settings.keyfile),
        }
    return {
        "listeners": listeners,
        # Listing plugins replaces amqtt's defaults (anonymous auth, $SYS, loggers): wanted.
        "plugins": {
            f"{_PLUGINS}.FleetflowAuthPlugin": {
                "passwd_file": str(settings.passwd),
                "allow_anonymous_dev": settings.allow_anonymous_dev,
            },
            f"{_PLUGINS}.FleetflowTopicPlugin": {},
        },
    }


def _bind(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _check_free(host: str, port: int, flag: str) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        # As asyncio does: TIME_WAIT leftovers are no reason to refuse.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUseError(host, port, flag) from None
            raise


async def serve(
    settings: BrokerSettings,
    stop: asyncio.Event,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Run the broker until ``stop`` is set. Raises ``PortInUseError`` if a port is taken."""
    from amqtt.errors import BrokerError

    from broker._amqtt_broker import FleetflowBroker
    from broker._amqtt_version import check_amqtt_version

    check_amqtt_version()
    _check_free(settings.host, settings.port, "--port")
    if settings.tls_port is not None:
        _check_free(settings.host, settings.tls_port, "--tls-port")
    broker = FleetflowBroker(amqtt_config(settings))  # inside the running loop, as amqtt needs
    amqtt_log = logging.getLogger("amqtt")
    level = amqtt_log.level
    amqtt_log.setLevel(logging.CRITICAL)  # a failed start would log a traceback
    try:
        await broker.start()
    except BrokerError as exc:
        cause = exc.__cause__
        if isinstance(cause, OSError) and cause.errno == errno.EADDRINUSE:
            raise PortInUseError(settings.host, settings.port) from None
        raise
    finally:
        amqtt_log.setLevel(level)
    try:
        if on_ready is not None:
            on_ready()
        await stop.wait()
    finally:
        try:
            # amqtt 0.12.1 can hang after logging "Broker closed" (waiting on plugin events
            # that clients reconnecting during the shutdown keep firing; docs/broker.md,
            # defect 4): the broker is closed by then, so do not wait for ever.
            await asyncio.wait_for(broker.shutdown(), timeout=4.0)
        except TimeoutError:
            logging.getLogger("fleetflow.broker").warning(
                "amqtt's shutdown did not finish within 4 s; leaving it")


def run_broker(settings: BrokerSettings, *, log_level: str = "warning") -> int:
    """Serve until SIGTERM or SIGINT; returns the exit status (0 on a clean stop)."""
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.WARNING,
        format="fleetflow broker: %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("fleetflow.broker").setLevel(log_level.upper())
    # amqtt logs every dropped TCP probe and refused CONNECT as an error; keep it quiet.
    logging.getLogger("amqtt").setLevel(logging.DEBUG if log_level == "debug" else logging.CRITICAL)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)

        def ready() -> None:
            where = f"mqtt://{_bind(settings.host, settings.port)}"
            if settings.tls_port is not None:
                where += f" and mqtts://{_bind(settings.host, settings.tls_port)}"
            mode = " (ANONYMOUS DEV MODE)" if settings.allow_anonymous_dev else ""
            print(f"fleetflow broker: listening on {where}, users from {settings.passwd}{mode}",
                  flush=True)

        await serve(settings, stop, ready)
        await _leave_stragglers()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    return 0


async def _leave_stragglers(grace_s: float = 2.0) -> None:
    """After ``Broker.shutdown``: cancel what amqtt left running, and exit if it will not go.

    amqtt 0.12.1 can leave client tasks behind after a busy shutdown (clients reconnect while
    it closes sessions; docs/broker.md, defect 4) and ``asyncio.run`` would wait for them
    forever: a stopped broker that never exits. They get ``grace_s``; then the process
    leaves without them (the broker itself is closed by then).
    """
    current = asyncio.current_task()
    others = [t for t in asyncio.all_tasks() if t is not current]
    for task in others:
        task.cancel()
    if not others:
        return
    _done, pending = await asyncio.wait(others, timeout=grace_s)
    if pending:
        logging.getLogger("fleetflow.broker").warning(
            "%d amqtt task(s) ignored the stop after the broker closed; exiting without them",
            len(pending))
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
