"""The edge's MQTT client: paho's, with the per-message overheads of its hot paths cut.

Stock paho reads every packet with at least three ``recv`` calls (command byte, length
bytes, body) and handles one packet per ``select``; for each PUBLISH it builds an
``MQTTMessage`` (with a ``Condition`` and an ``RLock``), logs, and matches the topic against
per-topic callbacks; for each PUBACK it builds a ``ReasonCode`` and a ``Properties``; and
each ``publish`` from another thread writes a byte to a socket pair to wake the network
thread. Every system call drops and retakes the GIL, which the edge's batch loop wants at
the same time. Under a flood of small messages the network thread spent most of its time
on this (docs/benchmarks-e2e.md). This client:

- fills a buffer with one ``recv`` of up to 64 KiB, serves paho's small reads from it,
  and parses packets until the socket is drained;
- hands an MQTT 3.1.1 QoS 0/1 PUBLISH straight to ``on_raw_message(topic, payload, mid,
  qos)`` when that is set (with manual acks, as paho itself does nothing more for them);
- takes the message id of an MQTT 3.1.1 PUBACK/PUBCOMP without building objects;
- inside ``with client.one_wakeup():`` queues publishes and acks with a single wake-up of
  the network thread for all of them;
- publishes MQTT 3.1.1 QoS 0/1 messages without a ``Condition`` (and its ``RLock``) per
  message: their ``MQTTMessageInfo`` share one, which ``wait_for_publish`` waits on and each
  completion notifies (``_LeanInfo``); a third of the cost of a publish went into them.

Everything else (connect, keepalive, reconnects, TLS, QoS 2, MQTT 5, inflight window) is
paho's own code; any packet the fast paths do not recognise goes to it unchanged.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.client import MQTTMessage, MQTTMessageInfo
from paho.mqtt.enums import MessageState, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

__all__ = ["BufferedClient", "RawMessageHandler"]

RawMessageHandler = Callable[[bytes, bytes, int, int], None]
"""``(topic, payload, mid, qos)``, called on the network thread; must not raise or block."""

_READ_SIZE = 65536
"""Bytes asked of the socket per ``recv``."""
_DRAIN_MIN = 1024
"""Packets parsed per wake-up before the client may go back to ``select`` (once its buffer
is empty: ``select`` knows nothing of bytes already read)."""
_WRITE_EVERY = 64
"""While draining, queued outgoing packets are written this often (publishes and acks of
the batch loop do not wait for the whole drain)."""
_ACKED = {"PUBACK": (ReasonCode(PacketTypes.PUBACK),
                     Properties(PacketTypes.PUBACK)),  # type: ignore[no-untyped-call]
          "PUBCOMP": (ReasonCode(PacketTypes.PUBCOMP),
                      Properties(PacketTypes.PUBCOMP))}  # type: ignore[no-untyped-call]
"""What paho decodes from an MQTT 3.1.1 PUBACK/PUBCOMP besides the mid: always these."""


_SHARED = threading.Condition()
"""The one condition every ``_LeanInfo`` waits on and notifies."""


class _LeanInfo(MQTTMessageInfo):
    """paho's ``MQTTMessageInfo`` with the shared condition instead of one of its own.

    ``wait_for_publish`` (paho's code) waits on ``_SHARED`` until its own ``_published``
    is true; every completion sets its flag under that lock and wakes all waiters, so none
    misses its own.
    """

    __slots__ = ()

    def __init__(self, mid: int) -> None:  # paho's, minus the Condition
        self.mid = mid
        self._published = False
        self._condition = _SHARED
        self.rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        self._iterpos = 0

    def _set_as_published(self) -> None:
        with _SHARED:
            self._published = True
            _SHARED.notify_all()


class BufferedClient(mqtt.Client):
    """``paho.mqtt.client.Client`` with buffered reads and lean hot paths (same API)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_raw_message: RawMessageHandler | None = None
        """If set (and acks are manual), receives QoS 0/1 messages instead of ``on_message``."""
        self._rbuf = b""
        self._rpos = 0
        self._held_by: int | None = None
        self._wake_owed = False

    # -- reading -------------------------------------------------------------------------

    def _sock_recv(self, bufsize: int) -> bytes:
        pos = self._rpos
        if pos >= len(self._rbuf):
            # Empty: one real recv (paho's, with its TLS and error handling).
            data = super()._sock_recv(max(bufsize, _READ_SIZE))
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

    def _buffered(self) -> bool:
        return self._rpos < len(self._rbuf)

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        """Parse packets until the socket has nothing more (paho's parses one per call)."""
        count = 0
        while True:
            if self._sock is None:
                return MQTTErrorCode.MQTT_ERR_NO_CONN
            rc = self._packet_read()
            if rc > 0:
                return self._loop_rc_handle(rc)
            if rc == MQTTErrorCode.MQTT_ERR_AGAIN:
                if self._buffered():  # paho stops a long body after 100 reads
                    continue
                return MQTTErrorCode.MQTT_ERR_SUCCESS
            count += 1
            if count % _WRITE_EVERY == 0 and self.want_write():
                rc = self.loop_write()
                if rc or self._sock is None:
                    return rc
            if count >= _DRAIN_MIN and not self._buffered():
                return MQTTErrorCode.MQTT_ERR_SUCCESS

    # -- inbound packets -----------------------------------------------------------------

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
        handler(topic, bytes(packet[start:]), mid, qos)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _handle_pubackcomp(self, cmd: Any) -> MQTTErrorCode:
        packet = self._in_packet["packet"]
        if len(packet) != 2 or self._protocol == MQTTProtocolVersion.MQTTv5:
            return super()._handle_pubackcomp(cmd)
        mid = (packet[0] << 8) | packet[1]
        with self._out_message_mutex:
            if mid in self._out_messages:
                reason, properties = _ACKED[cmd]
                return self._do_on_publish(mid, reason, properties)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    # -- outbound packets ----------------------------------------------------------------

    def publish(self, topic: str, payload: Any = None, qos: int = 0, retain: bool = False,
                properties: Properties | None = None) -> MQTTMessageInfo:
        """paho's ``publish``; for MQTT 3.1.1 QoS 0/1 ``bytes``, the same steps with a
        ``_LeanInfo`` (paho's ``publish`` otherwise)."""
        if (qos not in (0, 1) or type(payload) is not bytes or not topic or properties
                or self._protocol == MQTTProtocolVersion.MQTTv5):
            return super().publish(topic, payload, qos, retain, properties)
        topic_bytes = topic.encode()
        self._raise_for_invalid_topic(topic_bytes)
        if len(payload) > 268435455:
            raise ValueError("Payload too large.")
        mid = self._mid_generate()
        if qos == 0:
            info = _LeanInfo(mid)
            info.rc = self._send_publish(mid, topic_bytes, payload, 0, retain, False, info)
            return info
        message = MQTTMessage.__new__(MQTTMessage)  # its __init__ makes a Condition
        message.timestamp, message.dup = mqtt.time_func(), False
        message.mid, message._topic, message.payload = mid, topic_bytes, payload
        message.qos, message.retain, message.properties = 1, retain, None
        message.state = MessageState.MQTT_MS_INVALID
        message.info = info = _LeanInfo(mid)
        with self._out_message_mutex:  # from here on paho's steps for QoS 1, unchanged
            if (self._max_queued_messages > 0
                    and len(self._out_messages) >= self._max_queued_messages) \
                    or mid in self._out_messages:
                info.rc = MQTTErrorCode.MQTT_ERR_QUEUE_SIZE
                return info
            self._out_messages[mid] = message
            if (self._max_inflight_messages == 0
                    or self._inflight_messages < self._max_inflight_messages):
                self._inflight_messages += 1
                message.state = MessageState.MQTT_MS_WAIT_FOR_PUBACK
                rc = self._send_publish(mid, topic_bytes, payload, 1, retain, False, info)
                if rc == MQTTErrorCode.MQTT_ERR_NO_CONN:  # sent once connected
                    self._inflight_messages -= 1
                    message.state = MessageState.MQTT_MS_PUBLISH
                info.rc = rc
            else:
                message.state = MessageState.MQTT_MS_QUEUED
            return info

    @contextmanager
    def one_wakeup(self) -> Iterator[None]:
        """Publishes and acks of this thread inside the block wake the network thread once."""
        if self._thread is None:  # no network thread: paho writes at once, nothing to hold
            yield
            return
        self._held_by = threading.get_ident()
        try:
            yield
        finally:
            self._held_by = None
            if self._wake_owed:
                self._wake_owed = False
                self._wake()

    def _packet_queue(self, command: int, packet: bytes | bytearray, mid: int, qos: int,
                      info: mqtt.MQTTMessageInfo | None = None) -> MQTTErrorCode:
        if self._held_by is None or self._held_by != threading.get_ident():
            return super()._packet_queue(command, packet, mid, qos, info)
        self._out_packet.append({"command": command, "mid": mid, "qos": qos, "pos": 0,
                                 "to_process": len(packet), "packet": packet, "info": info})
        self._wake_owed = True
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _wake(self) -> None:
        """What paho's ``_packet_queue`` does after queueing, in threaded mode."""
        pair = self._sockpairW
        if pair is not None:
            with suppress(BlockingIOError):
                pair.send(b"0")
        self._call_socket_register_write()
