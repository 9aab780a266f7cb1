"""The hub's MQTT client: paho's, with the receive path of the edge's ``BufferedClient``
(edge_runtime/shell/_mqtt.py) — duplicated, minimally, because the hub may not import the
edge's shell and the layers keep ``edge_runtime`` and ``broker`` apart.

Stock paho reads every packet with at least three ``recv`` calls and handles one packet per
``select``, and builds an ``MQTTMessage`` (with a ``Condition`` and an ``RLock``) for each
PUBLISH; every system call drops and retakes the GIL, which the hub's worker wants at the
same time. Profiled with ten facilities streaming at once (docs/benchmarks.md, "Cloud
hub"), the worker did rounds of ~4 events, one synced commit each. This client:

- fills a buffer with one ``recv`` of up to 64 KiB, serves paho's small reads from it, and
  parses packets until the buffer is drained;
- hands an MQTT 3.1.1 QoS 0/1 PUBLISH straight to ``on_raw_message(topic, payload, mid,
  qos, retained)`` when that is set (acks are manual then, as for paho itself).

Only the receive path: the hub publishes little (commands, replay requests). Anything the
fast path does not recognise goes to paho unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode, MQTTProtocolVersion

__all__ = ["RawHandler", "ReadBufferedClient"]

RawHandler = Callable[[bytes, bytes, int, int, bool], None]
"""``(topic, payload, mid, qos, retained)``, on the network thread; must not raise or block."""

_READ_SIZE = 65536
"""Bytes asked of the socket per ``recv``."""
_DRAIN_MAX = 1024
"""Packets parsed per wake-up before going back to paho's loop (which then writes what is
queued, and checks keepalive), once the buffer is empty."""


class ReadBufferedClient(mqtt.Client):
    """``paho.mqtt.client.Client`` with a buffered, lean receive path (same API)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_raw_message: RawHandler | None = None
        """If set (and acks are manual), receives QoS 0/1 messages instead of ``on_message``."""
        self._rbuf = b""
        self._rpos = 0

    def _sock_recv(self, bufsize: int) -> bytes:
        pos = self._rpos
        if pos >= len(self._rbuf):
            data = super()._sock_recv(max(bufsize, _READ_SIZE))  # paho's: TLS, errors
            self._rbuf = data
            self._rpos = min(bufsize, len(data))
            return data if len(data) <= bufsize else data[:bufsize]
        end = pos + bufsize
        self._rpos = end
        return self._rbuf[pos:end]

    def _sock_close(self) -> None:
        # Bytes of a dead connection must not be parsed as the start of the next one.
        self._rbuf, self._rpos = b"", 0
        super()._sock_close()

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        """Parse packets until the buffer is drained (paho parses one per call)."""
        count = 0
        while True:
            if self._sock is None:
                return MQTTErrorCode.MQTT_ERR_NO_CONN
            rc = self._packet_read()
            if rc > 0:
                return self._loop_rc_handle(rc)
            buffered = self._rpos < len(self._rbuf)
            if rc == MQTTErrorCode.MQTT_ERR_AGAIN:
                if buffered:  # paho stops a long body after 100 reads
                    continue
                return MQTTErrorCode.MQTT_ERR_SUCCESS
            count += 1
            if count >= _DRAIN_MAX and not buffered:
                return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _handle_publish(self) -> MQTTErrorCode:
        handler = self.on_raw_message
        header = self._in_packet["command"]
        qos = (header & 0x06) >> 1
        packet = self._in_packet["packet"]
        size = len(packet)
        if (handler is None or not self._manual_ack or qos > 1 or size < 2
                or self._protocol == MQTTProtocolVersion.MQTTv5):
            return super()._handle_publish()
        start = 2 + ((packet[0] << 8) | packet[1])
        if start == 2 or start + 2 * qos > size:  # empty topic or truncated: paho says so
            return super()._handle_publish()
        topic = bytes(packet[2:start])
        mid = 0
        if qos:
            mid = (packet[start] << 8) | packet[start + 1]
            start += 2
        handler(topic, bytes(packet[start:]), mid, qos, bool(header & 0x01))
        return MQTTErrorCode.MQTT_ERR_SUCCESS
