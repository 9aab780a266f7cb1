"""A scripted stand-in for the cloud planner: it creates demo workflows over MQTT, as the hub
would, and waits for edges to come online the way the hub learns of them.

``DemoPlanner`` sends a ``create_workflow`` hub command on ``edge/cmd`` every ``every_s``
seconds, round-robin over facilities and templates, through a ``HubClient``: each command
is resent until the edge's ``command_reply`` names it (docs/protocol.md, "Delivery").
``HubClient`` is public for tests that need to send a hub command reliably and read the
reply. ``wait_edge_online`` waits for an edge's retained online ``edge/status``. All log in
as the hub user (role ``hub``), so they pass the broker's ACL exactly as the hub will.
``fleetflow up`` uses them.
"""

from __future__ import annotations

import itertools
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agents_sim._hub_client import HubClient, HubCommandRefused, HubStats
from topics import HubCommand, ProtocolError, decode_edge_status, edge_topic

__all__ = ["DemoPlanner", "HubClient", "HubCommandRefused", "HubStats", "wait_edge_online"]


def _client(client_id: str, username: str | None, password: str | None) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv311)
    if username is not None:
        client.username_pw_set(username, password)
    return client


def wait_edge_online(
    host: str,
    port: int,
    facility: str,
    *,
    username: str | None = "hub",
    password: str | None = None,
    timeout: float = 30.0,
    give_up: Callable[[], bool] = lambda: False,
    client_id: str | None = None,
) -> bool:
    """Wait until the edge of ``facility`` publishes its retained online status.

    Returns True once it did; False after ``timeout`` seconds, or as soon as ``give_up()``
    is true (checked five times a second: e.g. "the edge process exited").
    """
    online = threading.Event()

    def on_message(_c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            if decode_edge_status(bytes(msg.payload)).online:
                online.set()
        except ProtocolError:
            pass  # not an edge status we can read: keep waiting for one

    client = _client(client_id or f"edge-watch-{facility}", username, password)
    client.on_connect = lambda c, *_: c.subscribe(edge_topic(facility, "status"), qos=1)
    client.on_message = on_message
    # Asynchronous: a broker that is still starting is retried by paho's loop.
    client.connect_async(host, port)
    client.loop_start()
    try:
        deadline = time.monotonic() + timeout
        while not online.wait(0.2):
            if give_up() or time.monotonic() > deadline:
                return False
        return True
    finally:
        client.disconnect()
        client.loop_stop()


class DemoPlanner:
    """Create a demo workflow every ``every_s`` seconds on a background thread.

    Workflow ``n`` (from 1) goes to ``facilities[n % len]`` from ``templates[n % len]``
    with priority 1; ids are ``wf-{run}-{n}`` and commands ``demo-{run}-{n}``, where ``run``
    is random per planner so that a restarted planner never repeats a command id. Each
    command is resent until the edge replies (``hub`` does the delivery).
    """

    def __init__(
        self,
        host: str,
        port: int,
        facilities: Sequence[str],
        templates: Sequence[str],
        *,
        every_s: float,
        username: str | None = "hub",
        password: str | None = None,
        client_id: str = "demo-planner",
    ) -> None:
        if not facilities or not templates:
            raise ValueError("a demo planner needs at least one facility and one template")
        if every_s <= 0:
            raise ValueError("every_s must be positive")
        self.facilities: tuple[str, ...] = tuple(facilities)
        """Where workflows are created, in turn."""
        self.templates: tuple[str, ...] = tuple(templates)
        """Template names used in turn (latest version of each)."""
        self.every_s: float = every_s
        """Seconds between two workflows."""
        self.run: str = secrets.token_hex(3)
        """This planner's part of every workflow and command id."""
        self.sent: int = 0
        """Commands created so far (each is resent until answered)."""
        self.hub = HubClient(host, port, self.facilities, username=username, password=password,
                             client_id=client_id)
        """The client that delivers the commands; its ``stats`` count replies and resends."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def command(self, n: int, now: float) -> tuple[str, HubCommand]:
        """The topic and hub command of workflow ``n`` (pure: nothing is sent)."""
        facility = self.facilities[n % len(self.facilities)]
        template = self.templates[n % len(self.templates)]
        return edge_topic(facility, "cmd"), HubCommand(
            command_id=f"demo-{self.run}-{n}", action="create_workflow",
            args={"template": template, "workflow_id": f"wf-{self.run}-{n}", "priority": 1},
            ts=now)

    def start(self) -> DemoPlanner:
        """Connect (asynchronously) and start creating workflows."""
        self.hub.start(timeout=None)  # commands made before the subscription stands wait
        self._thread = threading.Thread(target=self._feed, name="demo-planner", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop creating workflows and disconnect (unanswered commands are given up)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.hub.stop()

    def _feed(self) -> None:
        for n in itertools.count(1):
            if self._stop.wait(self.every_s):
                return
            _, command = self.command(n, time.time())
            self.hub.send(self.facilities[n % len(self.facilities)], command)
            self.sent += 1

    def __enter__(self) -> DemoPlanner:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
