"""The hub's half of hub → edge delivery over plain MQTT, for tests that need no cloud hub.

Before ``cloud_hub`` existed a scripted planner played the hub over MQTT; ``fleetflow up``
now runs the real hub and plans through its REST API (``agents_sim.planner``). What stays
here serves tests of the edge's command delivery that want a hub without its store and API:
``HubClient`` sends ``HubCommand`` s and resends each until the edge's ``command_reply``
(docs/protocol.md, "Delivery"), and ``wait_edge_online`` waits for an edge's retained online
``edge/status``. Both log in as the hub user (role ``hub``) by default, so they pass the
broker's ACL exactly as the hub does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agents_sim._hub_client import HubClient, HubCommandRefused, HubStats
from topics import ProtocolError, decode_edge_status, edge_topic

__all__ = ["HubClient", "HubCommandRefused", "HubStats", "wait_edge_online"]


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

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or
                         f"edge-watch-{facility}", protocol=mqtt.MQTTv311)
    if username is not None:
        client.username_pw_set(username, password)
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
