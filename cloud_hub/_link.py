"""The hub's MQTT link (paho, one network thread): it subscribes to every facility's
``edge/events``, ``edge/status``, ``edge/errors`` and ``edge/vda`` and publishes ``edge/cmd``.

Callbacks never block or raise: they put a ``LinkItem`` on the worker's queue and return.
A clean session: what the broker drops while the hub is away is replayed from the edges'
logs (gap detection), not kept by the broker.

Speed (docs/benchmarks.md, "Cloud hub"): the client (``_link_client``) has the edge's raw
receive path: it reads the socket 64 KiB at a time and hands each PUBLISH to ``_on_raw``
without building paho's ``MQTTMessage``, so the network thread takes the GIL once for many
messages instead of fighting the worker for it once per message.
``edge/events`` is subscribed at QoS 0: the hub's at-least-once comes from the edges'
logs (seq gaps are replayed on request), not from broker acknowledgements, and a PUBACK
per event cost a write and a wake-up of the network thread each. ``edge/status`` stays at
QoS 1 (acked as soon as it is queued, as paho's automatic ack did).
"""

from __future__ import annotations

import logging
import queue
import secrets
import ssl
from dataclasses import dataclass
from typing import Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from cloud_hub._config import HubConfig
from cloud_hub._link_client import ReadBufferedClient

__all__ = ["SUBSCRIPTIONS", "Link", "LinkItem"]

_log = logging.getLogger("fleetflow.hub")

SUBSCRIPTIONS = [("fleetflow/v1/+/edge/events", 0), ("fleetflow/v1/+/edge/status", 1),
                 ("fleetflow/v1/+/edge/errors", 0), ("fleetflow/v1/+/edge/vda", 1)]
"""``edge/vda`` after ``edge/status``: the broker sends retained messages in this order, so
a facility's status (which makes it known) comes before its VDA 5050 links."""


@dataclass(frozen=True, slots=True)
class LinkItem:
    """What the network thread hands the worker."""

    kind: Literal["up", "down", "message"]
    topic: str = ""
    payload: bytes = b""
    retained: bool = False


class Link:
    """One paho client; ``start()`` connects in the background and keeps reconnecting."""

    def __init__(self, config: HubConfig, inbox: queue.SimpleQueue[Any]) -> None:
        self._config, self._inbox = config, inbox
        self.connected = False
        """Subscribed (set by the worker when it sees ``up``; read anywhere)."""
        c = self._client = ReadBufferedClient(
            CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311, manual_ack=True,
            client_id=config.client_id or f"fleetflow-hub-{secrets.token_hex(4)}")
        if config.username is not None:
            c.username_pw_set(config.username, config.password)
        if config.tls or config.tls_ca or config.tls_cert:
            c.tls_set(ca_certs=config.tls_ca, certfile=config.tls_cert,
                      keyfile=config.tls_key, cert_reqs=ssl.CERT_REQUIRED)
        c.reconnect_delay_set(min_delay=1, max_delay=10)
        c.max_inflight_messages_set(0)
        c.max_queued_messages_set(0)
        c.on_connect = self._on_connect
        c.on_subscribe = lambda *_a: inbox.put(LinkItem("up"))
        c.on_disconnect = lambda *_a: inbox.put(LinkItem("down"))
        c.on_message = self._on_message
        c.on_raw_message = self._on_raw

    def start(self) -> None:
        self._client.connect_async(self._config.host, self._config.port,
                                   keepalive=self._config.keepalive_s)
        self._client.loop_start()

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        """Queue a publish (paho's thread sends it; nothing is sent while disconnected —
        the command outbox resends when the link is up again)."""
        self._client.publish(topic, payload, qos=qos)

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self._inbox.put(LinkItem("down", topic=str(reason)))
            return
        client.subscribe(SUBSCRIPTIONS)

    def _on_raw(self, topic: bytes, payload: bytes, mid: int, qos: int, retained: bool
                ) -> None:
        """Every QoS 0/1 message of MQTT 3.1.1 (the fast path; on paho's network thread)."""
        try:
            topic_s = topic.decode()
        except UnicodeDecodeError:
            topic_s = ""  # not a topic of ours: the worker ignores it
        self._inbox.put(LinkItem("message", topic_s, payload, retained))
        if qos:
            self._client.ack(mid, qos)

    def _on_message(self, client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        """What the fast path leaves to paho (anything but MQTT 3.1.1 QoS 0/1)."""
        self._inbox.put(LinkItem("message", msg.topic, bytes(msg.payload), bool(msg.retain)))
        if msg.qos:
            client.ack(msg.mid, msg.qos)
