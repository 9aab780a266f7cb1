"""The edge's link to the broker: the MQTT client, paho's callbacks, connection and status.

paho's callbacks run on its network thread. An exception there silently kills that thread,
so they never block and never raise: each only puts a ``Received`` on the batch loop's
queue, connection changes included (as marker topics), and the loop thread hands the
markers back to ``BrokerLink.note``. The retained ``edge/status`` (and the will, its offline
twin) is published from here too.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge_runtime.shell._config import EdgeConfig
from edge_runtime.shell._metrics import EdgeMetrics
from edge_runtime.shell._mqtt import BufferedClient
from topics import EdgeStatus, edge_topic, encode

__all__ = ["BrokerLink", "Received"]

_log = logging.getLogger("fleetflow.edge")

_CONNECTED = "$connected"
_DISCONNECTED = "$disconnected"
"""Marker topics the paho callbacks queue, so that the loop thread (not paho's) reacts."""


@dataclass(slots=True)
class Received:
    """One message from the broker (or a connection marker), as queued for the batch loop."""

    topic: str
    payload: bytes
    at: float
    """Wall-clock time of receipt."""
    mid: int
    qos: int
    session: int = 0
    """Connection it came on: a PUBACK is only meaningful on that same connection."""


class BrokerLink:
    """The edge's MQTT client and what the batch loop needs to know of the connection."""

    def __init__(
        self,
        config: EdgeConfig,
        inbox: queue.SimpleQueue[Received],
        subscriptions: list[tuple[str, int]],
        metrics: EdgeMetrics,
        high_water: Callable[[], int],
        clock: Callable[[], float],
    ) -> None:
        self.config = config
        self.inbox = inbox
        """Where the callbacks put what arrives; the batch loop takes from it."""
        self.session = 0
        """Counts connections (paho's thread writes it): acks go only to the current one."""
        self.connected = False
        """As last seen by the batch loop (``note``)."""
        self.status_topic = edge_topic(config.facility, "status")
        self._subscriptions = subscriptions
        self._metrics = metrics
        self._high_water = high_water
        self._clock = clock
        self._subscribed = threading.Event()
        self._connect_failures = 0
        self._last_status = (-1.0, -1)
        self._heard_at = 0.0
        """When the broker last delivered the edge's own status (or the link came up)."""
        self.client = self._make_client()
        """The MQTT client; publish and ack from the batch loop's thread."""

    def status(self, online: bool) -> bytes:
        """The ``edge/status`` payload now."""
        return encode(EdgeStatus(facility=self.config.facility, online=online,
                                 high_water_seq=self._high_water(), ts=self._clock()))

    def _make_client(self) -> BufferedClient:
        c = self.config
        client = BufferedClient(
            CallbackAPIVersion.VERSION2,
            client_id=c.client_id or f"fleetflow-edge-{c.facility}",
            # No guarantee rests on a broker session (docs/protocol.md, "Delivery"): senders
            # resend what the edge has not acknowledged after commit. A clean session also
            # keeps clear of amqtt 0.12's session-resume defects (docs/broker.md).
            clean_session=True,
            protocol=mqtt.MQTTv311,
            manual_ack=True,
        )
        if c.username is not None:
            client.username_pw_set(c.username, c.password)
        if _tls(c):
            client.tls_set(ca_certs=c.tls_ca, certfile=c.tls_cert, keyfile=c.tls_key,
                           cert_reqs=ssl.CERT_REQUIRED)
        client.will_set(self.status_topic, self.status(False), qos=1, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        # Unlimited: with a window, paho scans every unacked message on each PUBACK.
        client.max_inflight_messages_set(0)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_raw_message = self._on_raw_message
        client.on_subscribe = self._on_subscribe
        return client

    # -- paho's thread -------------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, _userdata: object, _flags: object,
                    reason: Any, _props: object) -> None:
        try:
            if reason.is_failure:
                _log.error("broker %s:%d refused the connection: %s; retrying",
                           self.config.host, self.config.port, reason)
                return
            self._subscribed.clear()
            self.session += 1
            client.subscribe(self._subscriptions)
            self.inbox.put_nowait(Received(_CONNECTED, b"", time.time(), 0, 0))
        except Exception:  # a raise here would kill paho's thread
            _log.exception("on_connect failed")

    def _on_subscribe(self, *_args: object) -> None:
        self._subscribed.set()

    def _on_connect_fail(self, _client: mqtt.Client, _userdata: object) -> None:
        try:
            self._connect_failures += 1
            if self._connect_failures in (1, 10) or self._connect_failures % 60 == 0:
                _log.error("cannot reach broker %s; retrying with backoff (attempt %d)%s",
                           _url(self.config), self._connect_failures,
                           " (with TLS: is --tls-ca the broker's CA?)" if _tls(self.config)
                           else "")
        except Exception:
            pass

    def _on_disconnect(self, _client: mqtt.Client, _userdata: object, _flags: object,
                       reason: Any, _props: object) -> None:
        with contextlib.suppress(Exception):
            self.inbox.put_nowait(Received(_DISCONNECTED, str(reason).encode(), time.time(),
                                           0, 0))

    def _on_message(self, _client: mqtt.Client, _userdata: object,
                    msg: mqtt.MQTTMessage) -> None:
        with contextlib.suppress(Exception):
            self.inbox.put_nowait(Received(msg.topic, bytes(msg.payload), time.time(), msg.mid,
                                           msg.qos, self.session))

    def _on_raw_message(self, topic: bytes, payload: bytes, mid: int, qos: int) -> None:
        with contextlib.suppress(Exception):  # a topic that is not UTF-8 is dropped, as by paho
            self.inbox.put_nowait(Received(topic.decode(), payload, time.time(), mid, qos,
                                           self.session))

    # -- the batch loop's thread ---------------------------------------------------------

    def start(self) -> None:
        """Connect (asynchronously; paho retries with backoff) and start paho's thread."""
        c = self.config
        _probe(c.host, c.port)
        self.client.connect_async(c.host, c.port, keepalive=c.keepalive_s)
        self.client.loop_start()

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until the subscriptions of the current connection are in place."""
        return self._subscribed.wait(timeout)

    def note(self, item: Received) -> bool:
        """Take in a connection marker; ``False`` if ``item`` is a message, not a marker."""
        if item.topic == self.status_topic:  # our own status, echoed: the link delivers
            self._heard_at = self._clock()
            return True
        if item.topic == _CONNECTED:
            self.connected, self._connect_failures = True, 0
            self._heard_at = self._clock()
            self._metrics.connected.set(1)
            _log.info("connected to broker %s", _url(self.config))
            self._last_status = (-1.0, -1)  # announce ourselves on the new connection
            return True
        if item.topic == _DISCONNECTED:
            if self.connected:
                _log.warning("disconnected from the broker (%s); reconnecting",
                             item.payload.decode(errors="replace"))
            self.connected = False
            self._metrics.connected.set(0)
            return True
        return False

    def maybe_status(self, now: float) -> None:
        """Publish the retained online status if the seq moved and the interval passed, or
        as a heartbeat; drop a link on which even that has not come back (the watchdog)."""
        if not self.connected:
            return
        seq = self._high_water()
        last_at, last_seq = self._last_status
        watchdog = self.config.watchdog_s
        heartbeat = watchdog / 3 if watchdog > 0 else float("inf")
        if (seq != last_seq and now - last_at >= self.config.status_interval_s) or (
                now - last_at >= heartbeat):
            self.client.publish(self.status_topic, self.status(True), qos=1, retain=True)
            self._last_status = (now, seq)
        if watchdog > 0 and now - self._heard_at > watchdog:
            _log.warning("heard nothing from the broker for %.0f s, not even our own status: "
                         "the link is deaf; dropping it to reconnect", now - self._heard_at)
            self._metrics.watchdog_reconnects.inc()
            self._heard_at = now
            sock = self.client.socket()
            if isinstance(sock, socket.socket):
                with contextlib.suppress(OSError):  # paho sees the loss and reconnects
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Say "offline" (a clean DISCONNECT suppresses the will), disconnect, stop paho."""
        try:
            if self.connected:
                info = self.client.publish(self.status_topic, self.status(False), qos=1,
                                           retain=True)
                info.wait_for_publish(timeout=3.0)
            self.client.disconnect()
        finally:
            self.client.loop_stop()


def _tls(c: EdgeConfig) -> bool:
    """Whether the link to the broker is TLS."""
    return bool(c.tls or c.tls_ca or c.tls_cert)


def _url(c: EdgeConfig) -> str:
    """The broker's URL as logged: ``mqtts://`` when the link is TLS, so an operator sees
    whether it is encrypted."""
    return f"{'mqtts' if _tls(c) else 'mqtt'}://{c.host}:{c.port}"


def _probe(host: str, port: int) -> None:
    """Say in one line, at once, when the broker is not there (paho then keeps retrying)."""
    try:
        with socket.create_connection((host, port), timeout=2.0):
            pass
    except OSError as exc:
        _log.error("cannot reach broker mqtt://%s:%d: %s; retrying with backoff", host, port,
                   exc.strerror or exc)
